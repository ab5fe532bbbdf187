"""The OpenAI provider: supervised fine-tuning jobs on the official `openai` SDK. Every call goes through it.

Datasets become chat JSONL (`messages`: the spec's system prompt, the input as the user's turn, the output as
the assistant's) and are uploaded with files.create(purpose="fine-tune") under a name carrying their canonical
hash (and the system prompt's), so a file already uploaded with that name is reused, never sent twice.

Jobs take no client-chosen id: each carries tuner's identity in its metadata (tuner id, fingerprint, owner tag
from runner.identity) and its suffix is the tuner id, so the fine-tuned model's id (`ft:<base>:<org>:<suffix>:
<id>`) carries the owner tag too. A submission first adopts a live or finished job carrying this identity (what
keeps a crash or a retried create from paying twice); a job or model of another owner is never adopted or deleted.
OpenAI holds no display name or description for a model: they live in state (and the job's metadata at creation).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from runner.datasets import DatasetRef, open_examples
from runner.errors import ProviderError, first_line, is_network_error
from runner.identity import Owner, model_digest
from runner.planned import PlannedModel, TrainingEstimate
from runner.providers import ProviderContext, planning
from runner.providers.base import (
    ACTIVE,
    CREATING,
    FAILED,
    Capabilities,
    JobStatus,
    ObservedModel,
    checked,
    checked_endpoint,
    checked_key_variable,
    guarded,
)
from runner.providers.planning import Hyperparameters, ModelDatasets, PlanResponse, plan_model

if TYPE_CHECKING:
    from runner.spec import ModelSpec

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "TUNER_OPENAI_BASE_URL"
# Ids read from state, plan files or the API, checked before they reach a URL path.
JOB_ID = re.compile(r"ftjob-[A-Za-z0-9_-]{1,64}")
FILE_ID = re.compile(r"file-[A-Za-z0-9_-]{1,64}")
FT_MODEL = re.compile(r"ft:[A-Za-z0-9._-]{1,128}(?::[A-Za-z0-9._-]{0,128}){1,3}")
# The tuner id a job carries until it succeeds (and the fine-tuned model's suffix): <name>-<owner tag>-<digest>.
TUNER_ID = re.compile(r"[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?-[0-9a-f]{8}-[0-9a-f]{10}")
OWNED = re.compile(r"[a-z][a-z0-9-]*-([0-9a-f]{8})-[0-9a-f]{10}")
META_ID, META_FINGERPRINT, META_OWNER = "tuner_id", "tuner_fingerprint", "tuner_owner"
META_NAME, META_DISPLAY_NAME, META_DESCRIPTION = "tuner_name", "tuner_display_name", "tuner_description"
METADATA_VALUE_MAX = 512  # the API's limit on one metadata value
# OpenAI's fine-tuning guide: at least 10 examples; the Files API takes files up to 512 MB; each training
# example fits the model's training context (65,536 tokens for gpt-4o-mini, gpt-4o and gpt-4.1; 16,385 for
# gpt-3.5-turbo-0125/1106, 4,096 for gpt-3.5-turbo-0613; 16,384 for babbage-002 and davinci-002).
MIN_EXAMPLES = 10
FILE_BYTES_MAX = 512 * 1024 * 1024
EXAMPLE_TOKENS = {"gpt-4.1": 65_536, "gpt-4o": 65_536, "gpt-3.5-turbo-0613": 4_096, "gpt-3.5-turbo": 16_385,
                  "babbage-002": 16_384, "davinci-002": 16_384}
DEFAULT_EXAMPLE_TOKENS = 65_536
MESSAGE_FRAMING_TOKENS = 4  # per message of a chat example (role and separators), OpenAI's cookbook count
JSONL_FRAMING_BYTES = 96  # per line: {"messages": [{"role": ...}, ...]} around the texts
LIST_PAGE_SIZE = 100
REPORTED_LINES = 5  # lines named per problem; the rest are counted
_STATES = {"validating_files": CREATING, "queued": CREATING, "running": CREATING, "succeeded": ACTIVE,
           "failed": FAILED, "cancelled": FAILED}
_LIVE = ("validating_files", "queued", "running", "succeeded")
STEP = re.compile(r"[Ss]tep (\d+)\s*/\s*(\d+)")
# None: left to OpenAI ("auto"), recorded as null.
HYPERPARAMETERS = Hyperparameters(
    defaults={"epoch_count": None, "batch_size": None, "learning_rate_multiplier": None, "seed": None},
    refused={"learning_rate": "OpenAI takes learning_rate_multiplier (a factor on its own rate), not an absolute "
                              "learning_rate",
             "adapter_size": "a Vertex AI setting; OpenAI does not expose the adapter size"})
_SDK_NAMES = {"epoch_count": "n_epochs", "batch_size": "batch_size",
              "learning_rate_multiplier": "learning_rate_multiplier"}


def create(context: ProviderContext) -> OpenAIProvider:
    return OpenAIProvider(context.settings, context.environ)


class OpenAIProvider:
    name = "openai"

    def __init__(self, settings: dict, environ: dict | None = None):
        self._environ = os.environ if environ is None else environ
        self.api_key_env = checked_key_variable(settings.get("api_key_env", DEFAULT_KEY_ENV),
                                                "providers.openai.api_key_env", own=DEFAULT_KEY_ENV)
        self.base_url = checked_endpoint(self._environ.get(BASE_URL_ENV), BASE_URL_ENV) or \
            checked_endpoint(settings.get("base_url"), "providers.openai.base_url")
        self.organization = settings.get("organization")
        self.project = settings.get("project")
        self.capabilities = Capabilities(max_concurrent_jobs=settings.get("max_concurrent_jobs", 5),
                                         poll_seconds=settings.get("poll_seconds", 30.0), system_prompt=True)
        self._client = None
        self._lock = threading.Lock()
        self._uploads: dict[str, threading.Lock] = {}  # file name -> lock: two models sharing data upload once
        self._uploaded: dict[str, str] = {}  # file name -> file id, found or uploaded by this run
        self._absent: set[str] = set()  # tuner ids with no job, as listed by this run, and no create tried since

    # -- plan time -------------------------------------------------------------------------------------
    def plan(self, spec: ModelSpec, datasets: ModelDatasets | None) -> PlanResponse:
        def estimate(hyperparameters: dict, train: DatasetRef) -> TrainingEstimate:
            return _estimate(hyperparameters, train, spec.base_model, spec.dataset.system_prompt)

        # Data (its system prompt included), base model and hyperparameters (seed included) need a new model.
        return plan_model(spec, datasets, HYPERPARAMETERS, estimate, _limits,
                          takes_system_prompt=self.capabilities.system_prompt)

    def import_attributes(self, planned: PlannedModel, seen: ObservedModel) -> dict:
        return planning.imported_attributes(planned, seen)

    def tuned_model_id(self, model, owner: Owner) -> str:
        """<name>-<owner tag>-<digest of name and fingerprint>: the job's metadata and the model's suffix carry it."""
        return f"{model.name}-{owner.tag}-{model_digest(model.name, model.job_key)}"

    def recorded_settings(self) -> dict:
        """Those set: organization and project are optional, and unset ones are not recorded."""
        settings = {"base_url": self.base_url, "api_key_env": self.api_key_env, "organization": self.organization,
                    "project": self.project}
        return {key: value for key, value in settings.items() if value is not None}

    # -- SDK access --------------------------------------------------------------------------------------
    def preflight(self) -> None:
        self._sdk()

    def _sdk(self):
        with self._lock:
            if self._client is None:
                key = self._environ.get(self.api_key_env)
                if not key:
                    raise ProviderError(f"the OpenAI API key is missing: environment variable {self.api_key_env} "
                                        f"is not set", remedy=f"export {self.api_key_env}=<your API key> (or set "
                                        f"providers.openai.api_key_env to the variable that holds it)")
                import openai

                # tuner owns retries (runner.retry: bounded, jittered, quota-aware): the SDK's would hide faults.
                self._client = openai.OpenAI(api_key=key, base_url=self.base_url, organization=self.organization,
                                             project=self.project, max_retries=0, timeout=60.0)
            return self._client

    def _call(self, fn: Callable, *, on_not_found: Callable | None = None):
        return guarded(lambda: fn(self._sdk()), self._map_error, on_not_found)

    def _map_error(self, exc: Exception) -> ProviderError:
        import openai

        message = self._redact(_api_message(exc))
        code = getattr(exc, "code", None) or ""
        if isinstance(exc, openai.RateLimitError):
            return ProviderError(message, ProviderError.QUOTA, code or "rate_limit_exceeded")
        if isinstance(exc, openai.InternalServerError) or getattr(exc, "status_code", 0) >= 500:
            return ProviderError(message, ProviderError.RETRYABLE, code or "server_error")
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return ProviderError(message, ProviderError.FATAL, code or "permission_denied",
                                 remedy=f"check the key in {self.api_key_env}: it must be an OpenAI API key of the "
                                        f"organization and project set under providers.openai, allowed to fine-tune")
        if isinstance(exc, openai.NotFoundError):
            return ProviderError(message, ProviderError.FATAL, "NOT_FOUND")
        if isinstance(exc, openai.APIConnectionError) or is_network_error(exc):  # APITimeoutError included
            return ProviderError(f"cannot reach the OpenAI API at {self.base_url or 'the default endpoint'}: "
                                 f"{first_line(message)}", ProviderError.RETRYABLE, "UNAVAILABLE",
                                 remedy=f"check the network, or the endpoint (providers.openai.base_url, "
                                        f"{BASE_URL_ENV})")
        if isinstance(exc, openai.APIStatusError):  # 400, 409, 422: the request itself is wrong
            return ProviderError(message, ProviderError.FATAL, code or "invalid_request_error",
                                 remedy="fix the field the message names, then plan and apply again")
        return ProviderError(f"{type(exc).__name__}: {message}", ProviderError.FATAL)

    def _redact(self, text: str) -> str:
        key = self._environ.get(self.api_key_env)
        return text.replace(key, "***") if key else text

    # -- datasets --------------------------------------------------------------------------------------
    def upload_dataset(self, model: PlannedModel, which: str) -> str:
        """The id of the model's dataset as chat JSONL, uploaded unless a file of its name is there. The
        conversion checks the planned hash as it streams, before the name is looked up: a file changed since
        the plan raises DatasetChangedError and nothing is uploaded or reused."""
        dataset = model.dataset(which)
        name = _file_name(dataset, model.system_prompt)
        with tempfile.NamedTemporaryFile("w+b", suffix=".jsonl") as staging:
            for example in open_examples(dataset):
                staging.write(_chat_line(example.input, example.output, model.system_prompt))
            staging.flush()
            with self._lock:
                lock = self._uploads.setdefault(name, threading.Lock())
            with lock:
                if name not in self._uploaded:  # a retried submission (or another model) asks no second time
                    self._uploaded[name] = self._find_file(name) or self._upload(name, staging)
                return self._uploaded[name]

    def _upload(self, name: str, staging) -> str:
        staging.seek(0)
        uploaded = self._call(lambda client: client.files.create(file=(name, staging), purpose="fine-tune"))
        return checked(FILE_ID, uploaded.id, "OpenAI file id")

    def _find_file(self, name: str) -> str | None:
        def search(client):
            files = client.files.list(purpose="fine-tune", limit=LIST_PAGE_SIZE)
            return next((f.id for f in files if f.filename == name and f.status != "error"), None)

        found = self._call(search)
        return checked(FILE_ID, found, "OpenAI file id") if found else None

    # -- jobs ------------------------------------------------------------------------------------------
    def submit(self, model: PlannedModel, tuned_model_id: str, owner: Owner) -> str:
        _check_owner(checked(TUNER_ID, tuned_model_id, "OpenAI tuner id"), owner, strict=True)
        if tuned_model_id not in self._absent:  # a retry whose last attempt failed before the create asks no more
            existing = self._find_job(tuned_model_id, model.fingerprint, owner)
            if existing is not None:
                return existing  # started by an earlier attempt (or run): adopt, never pay twice
            self._absent.add(tuned_model_id)
        training = self.upload_dataset(model, "train")
        validation = self.upload_dataset(model, "validation") if model.validation is not None else None
        hp = model.hyperparameters
        metadata = {META_ID: tuned_model_id, META_FINGERPRINT: model.fingerprint, META_OWNER: owner.tag,
                    META_NAME: model.name, META_DISPLAY_NAME: model.display_name[:METADATA_VALUE_MAX],
                    META_DESCRIPTION: model.description[:METADATA_VALUE_MAX]}
        hyperparameters = {sdk: hp[key] if hp.get(key) is not None else "auto" for key, sdk in _SDK_NAMES.items()}
        optional = {"validation_file": validation, "seed": hp.get("seed")}
        self._absent.discard(tuned_model_id)  # from here a job may exist even if the answer is lost (ambiguous)
        job = self._call(lambda client: client.fine_tuning.jobs.create(
            model=model.base_model, training_file=training, suffix=tuned_model_id, metadata=metadata,
            method={"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
            **{key: value for key, value in optional.items() if value is not None}))
        return checked(JOB_ID, job.id, "OpenAI fine-tuning job id")

    def _find_job(self, tuned_model_id: str, fingerprint: str, owner: Owner) -> str | None:
        """A running job carrying this model's identity, or a finished one whose model still exists (one deleted
        outside tuner is tuned again)."""
        jobs = self._live_jobs(tuned_model_id, owner, {META_FINGERPRINT: fingerprint})
        found = next((job.id for job in jobs if job.status != "succeeded" or self._exists(job.fine_tuned_model)), None)
        return checked(JOB_ID, found, "OpenAI fine-tuning job id") if found else None

    def _live_jobs(self, tuned_model_id: str, owner: Owner, also: dict[str, str] | None = None) -> list:
        """The running or succeeded jobs whose metadata carries this tuner id and owner tag (and ALSO). The list is
        filtered by metadata (the API offers it), and each job's metadata is checked again here: a filter ignored
        must never decide adoption or deletion."""
        wanted = {META_ID: tuned_model_id, META_OWNER: owner.tag, **(also or {})}
        return self._call(lambda client: [job for job in client.fine_tuning.jobs.list(
            limit=LIST_PAGE_SIZE, metadata={META_ID: tuned_model_id}) if wanted.items() <= (job.metadata or {}).items()
            and job.status in _LIVE])

    def _exists(self, model_id: str | None) -> bool:
        if not model_id:
            return False
        model_id = checked(FT_MODEL, model_id, "OpenAI fine-tuned model id")
        return self._call(lambda client: client.models.retrieve(model_id), on_not_found=lambda: None) is not None

    def poll(self, tuned_model_id: str, handle: str | None) -> JobStatus:
        if not handle:
            return JobStatus(FAILED, "NO_HANDLE", "no fine-tuning job was recorded for this model")
        job_id = checked(JOB_ID, handle, "OpenAI fine-tuning job id")
        job = self._call(lambda client: client.fine_tuning.jobs.retrieve(job_id), on_not_found=lambda: None)
        if job is None:
            return JobStatus(FAILED, "NOT_FOUND", f"fine-tuning job {job_id} no longer exists")
        state = _STATES.get(job.status, CREATING)
        if state == FAILED:
            return JobStatus(FAILED, job.status, self._redact(_failure(job)))
        if state == ACTIVE:
            model_id = checked(FT_MODEL, job.fine_tuned_model, "OpenAI fine-tuned model id")
            return JobStatus(ACTIVE, job.status, tuned_model_id=model_id,
                             resources={"job": job_id, "training_file": job.training_file})
        if job.status != "running":
            return JobStatus(CREATING, job.status)
        progress, loss = self._progress(job_id)
        return JobStatus(CREATING, job.status, progress=progress, loss=loss)

    def _progress(self, job_id: str) -> tuple[float | None, float | None]:
        """step/total and the training loss of the newest event that reports a step (events come newest first)."""
        events = self._call(lambda client: client.fine_tuning.jobs.list_events(job_id, limit=20).data)
        for event in events:
            data = event.data if isinstance(event.data, dict) else {}
            step, total = data.get("step"), data.get("total_steps")
            if not (step and total):
                match = STEP.search(event.message or "")
                step, total = (int(match[1]), int(match[2])) if match else (None, None)
            if step and total:
                loss = data.get("train_loss")
                return min(1.0, step / total), float(loss) if isinstance(loss, int | float) else None
        return None, None

    def update(self, tuned_model_id: str, display_name: str, description: str) -> None:
        """OpenAI holds no display name or description: state is where they live, so nothing is sent."""
        _checked_model_or_tuner_id(tuned_model_id)

    def delete(self, tuned_model_id: str, handle: str | None, owner: Owner) -> None:
        """Delete the fine-tuned model; while its job still runs, cancel the job instead. The owner tag in the
        model's suffix (or the job's metadata) must be this state's: another's is refused before any call."""
        if tuned_model_id.startswith("ft:"):
            model_id = checked(FT_MODEL, tuned_model_id, "OpenAI fine-tuned model id")
            owner.refuse_foreign(owner_of(model_id), model_id)
            self._call(lambda client: client.models.delete(model_id), on_not_found=lambda: None)
            return
        checked(TUNER_ID, tuned_model_id, "OpenAI tuner id")
        if not handle:  # a crash between jobs.create and the state write leaves no job id: its metadata names it
            for job in self._live_jobs(tuned_model_id, owner):
                self._end_job(checked(JOB_ID, job.id, "OpenAI fine-tuning job id"), owner)
            return
        self._end_job(checked(JOB_ID, handle, "OpenAI fine-tuning job id"), owner)

    def _end_job(self, job_id: str, owner: Owner) -> None:
        """Cancel the job while it runs, or delete the model it made."""
        job = self._call(lambda client: client.fine_tuning.jobs.retrieve(job_id), on_not_found=lambda: None)
        if job is None:
            return
        owner.refuse_foreign((job.metadata or {}).get(META_OWNER), job_id)
        if _STATES.get(job.status) == CREATING:
            self._call(lambda client: client.fine_tuning.jobs.cancel(job_id))
        elif job.fine_tuned_model:  # it finished meanwhile: delete what it made
            self.delete(job.fine_tuned_model, None, owner)

    def list_models(self) -> list[ObservedModel]:
        """The organization's fine-tuned models (one models.list call), described by the jobs that made them
        (jobs.list, paged by `after` while `has_more`)."""
        models = self._call(lambda client: [m.id for m in client.models.list() if m.id.startswith("ft:")])
        jobs = self._call(lambda client: {job.fine_tuned_model: job for job in
                                          client.fine_tuning.jobs.list(limit=LIST_PAGE_SIZE) if job.fine_tuned_model})
        return [_observed(model_id, jobs.get(model_id)) for model_id in models if FT_MODEL.fullmatch(model_id)]

    def get_model(self, tuned_model_id: str) -> ObservedModel | None:
        model_id = checked(FT_MODEL, tuned_model_id, "OpenAI fine-tuned model id")
        found = self._call(lambda client: client.models.retrieve(model_id), on_not_found=lambda: None)
        return _observed(model_id, None) if found is not None else None

    def predict(self, tuned_model_id: str, text: str, system_prompt: str = "") -> str:
        model_id = checked(FT_MODEL, tuned_model_id, "OpenAI fine-tuned model id")
        messages = _messages(text, None, system_prompt)
        response = self._call(lambda client: client.chat.completions.create(model=model_id, messages=messages))
        return response.choices[0].message.content or ""

    def info(self) -> dict:
        import openai

        return {"sdk": "openai", "version": openai.__version__}


def owner_of(model_id: str) -> str | None:
    """The owner tag a fine-tuned model's suffix carries (tuner's suffixes end in -<tag>-<digest>); None for others."""
    match = next((OWNED.fullmatch(part) for part in model_id.split(":")[2:] if OWNED.fullmatch(part)), None)
    return match.group(1) if match else None


def _check_owner(tuner_id: str, owner: Owner, strict: bool = False) -> None:
    match = OWNED.fullmatch(tuner_id)
    owner.refuse_foreign(match.group(1) if match else None, tuner_id, strict)


def _checked_model_or_tuner_id(tuned_model_id: str) -> str:
    if tuned_model_id.startswith("ft:"):
        return checked(FT_MODEL, tuned_model_id, "OpenAI fine-tuned model id")
    return checked(TUNER_ID, tuned_model_id, "OpenAI tuner id")


def _observed(model_id: str, job) -> ObservedModel:
    """Display name and description are None: OpenAI does not hold them, so state's are never overwritten."""
    metadata = (job.metadata or {}) if job is not None else {}
    base_model = job.model if job is not None else model_id.split(":")[1]
    return ObservedModel(model_id, None, None, ACTIVE, base_model, _reported_hyperparameters(job),
                         metadata.get(META_OWNER) or owner_of(model_id))


def _reported_hyperparameters(job) -> dict:
    method = getattr(job, "method", None) if job is not None else None
    supervised = getattr(method, "supervised", None)
    reported = getattr(supervised, "hyperparameters", None) or getattr(job, "hyperparameters", None)
    if reported is None:
        return {}
    values = {key: getattr(reported, sdk, None) for key, sdk in _SDK_NAMES.items()}
    return {key: value for key, value in values.items() if isinstance(value, int | float)}


def _failure(job) -> str:
    error = job.error
    if error is None or not (error.message or error.code):
        return f"the fine-tuning job {job.status}"
    return f"{error.code}: {error.message}" if error.code else error.message


def _api_message(exc: Exception) -> str:
    """The API's own message ({"error": {"message"}}) rather than the SDK's "Error code: 400 - {...}" text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return getattr(exc, "message", None) or str(exc)


# -- datasets as OpenAI reads them --------------------------------------------------------------------------
def _messages(text: str, answer: str | None, system_prompt: str) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": text})
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def _chat_line(text: str, answer: str, system_prompt: str) -> bytes:
    return (json.dumps({"messages": _messages(text, answer, system_prompt)}, ensure_ascii=False) + "\n").encode()


def _file_name(dataset: DatasetRef, system_prompt: str) -> str:
    """The canonical hash names the file; a system prompt is part of its content, so of its name too."""
    prompt = f"-{hashlib.sha256(system_prompt.encode()).hexdigest()[:16]}" if system_prompt else ""
    return f"tuner-{dataset.sha256}{prompt}.jsonl"


# -- plan-time limits and estimate --------------------------------------------------------------------------
def _limits(model: PlannedModel) -> list[str]:
    problems = []
    for dataset in filter(None, (model.train, model.validation)):
        if dataset.examples < MIN_EXAMPLES:
            problems.append(f"{dataset.display}: {dataset.examples} examples; OpenAI fine-tuning needs at least "
                            f"{MIN_EXAMPLES}")
        size = _file_bytes(dataset, model.system_prompt)
        if size > FILE_BYTES_MAX:
            problems.append(f"{dataset.display}: about {size} bytes as chat JSONL; the OpenAI Files API takes files "
                            f"up to {FILE_BYTES_MAX} bytes (512 MB)")
        problems += _long_examples(model, dataset)
    return problems


def _file_bytes(dataset: DatasetRef, system_prompt: str) -> int:
    return dataset.text_bytes + dataset.examples * (JSONL_FRAMING_BYTES + len(system_prompt.encode()))


def _long_examples(model: PlannedModel, dataset: DatasetRef) -> list[str]:
    """Examples over the base model's per-example token limit, by file:line. The file is read only when its
    longest input and output together could exceed the limit (tokens never exceed UTF-8 bytes)."""
    limit = _example_token_limit(model.base_model)
    counter = _token_counter(model.base_model)
    bound = 4 * (dataset.max_input_chars + dataset.max_output_chars + len(model.system_prompt))
    if bound + 3 * MESSAGE_FRAMING_TOKENS <= limit:
        return []
    over = [(example.line, tokens) for example in open_examples(dataset)
            if (tokens := counter.example(example.input, example.output, model.system_prompt)) > limit]
    problems = [f"{dataset.display}:{line}: about {tokens} tokens ({counter.rule}); {model.base_model} takes at "
                f"most {limit} per training example" for line, tokens in over[:REPORTED_LINES]]
    if len(over) > REPORTED_LINES:
        problems.append(f"{dataset.display}: {len(over) - REPORTED_LINES} more examples over {limit} tokens")
    return problems


def _example_token_limit(base_model: str) -> int:
    prefixes = sorted((p for p in EXAMPLE_TOKENS if base_model.startswith(p)), key=len, reverse=True)
    return EXAMPLE_TOKENS[prefixes[0]] if prefixes else DEFAULT_EXAMPLE_TOKENS


class _TokenCounter:
    """tiktoken's count when the base model's encoding is on this machine, else the 4-bytes rule (said in the plan)."""

    def __init__(self, encoding):
        self.encoding = encoding
        self.rule = f"tiktoken {encoding.name}" if encoding else "estimated at 4 bytes per token: no tiktoken " \
                                                                    "encoding available offline"

    def text(self, text: str) -> int:
        return len(self.encoding.encode(text, disallowed_special=())) if self.encoding else -(-len(text.encode()) // 4)

    def example(self, text: str, answer: str, system_prompt: str) -> int:
        parts = [part for part in (system_prompt, text, answer) if part]
        return sum(self.text(part) + MESSAGE_FRAMING_TOKENS for part in parts)


@functools.lru_cache(maxsize=8)
def _token_counter(base_model: str) -> _TokenCounter:
    return _TokenCounter(_offline_encoding(base_model))


def _offline_encoding(base_model: str):
    """tiktoken downloads an encoding on first use: it is used only when already in tiktoken's cache, so a plan
    never waits on the network (tiktoken's cache file is the sha1 of the encoding's URL)."""
    try:
        import tiktoken
        import tiktoken.registry
    except ImportError:
        return None
    try:
        name = tiktoken.encoding_name_for_model(base_model)
    except KeyError:
        name = "o200k_base"  # every fine-tunable chat model since gpt-4o
    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or \
        os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not os.path.exists(os.path.join(cache, hashlib.sha1(url.encode()).hexdigest())):
        return None
    try:
        return tiktoken.get_encoding(name)
    except Exception:  # a corrupt cache entry makes tiktoken download again: fall back rather than wait
        return None


def _estimate(hyperparameters: dict, train: DatasetRef, base_model: str, system_prompt: str) -> TrainingEstimate:
    """Tokens of one pass over the chat examples: tiktoken's count when the encoding is on this machine (one read
    of the file), else the 4-bytes rule; the note says which."""
    counter = _token_counter(base_model)
    if counter.encoding is not None:
        tokens = sum(counter.example(e.input, e.output, system_prompt) for e in open_examples(train))
    else:
        tokens = planning.estimate_tokens(train.text_bytes + train.examples * len(system_prompt.encode()),
                                          train.examples)
    rule = f"tokens: {counter.rule}"
    if hyperparameters["epoch_count"] is not None:
        return TrainingEstimate(tokens, hyperparameters["epoch_count"], rule)
    return TrainingEstimate(tokens, 1, f"{rule}; epoch_count not set: OpenAI picks it ('auto') from the dataset "
                                       f"size, so 1 epoch is assumed; multiply by the epochs the job reports")
