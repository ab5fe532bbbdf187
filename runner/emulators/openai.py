"""A loopback emulator of the OpenAI fine-tuning REST surface (/v1), as the official `openai` SDK calls it.

Point the real SDK at it with `openai.OpenAI(base_url=emulator.url + "/v1", api_key="any non-empty key")`.
It serves:

    POST   /v1/files                          files.create (multipart: file, purpose)
    GET    /v1/files?after&limit&order&purpose files.list (cursor paging: after = the last id, has_more)
    GET    /v1/files/ID                       files.retrieve
    DELETE /v1/files/ID                       files.delete
    GET    /v1/files/ID/content               files.content (the bytes as uploaded; not of a fine-tune file)
    POST   /v1/fine_tuning/jobs               fine_tuning.jobs.create
    GET    /v1/fine_tuning/jobs?after&limit&metadata[k]=v   fine_tuning.jobs.list (newest first)
    GET    /v1/fine_tuning/jobs/ID            fine_tuning.jobs.retrieve
    POST   /v1/fine_tuning/jobs/ID/cancel     fine_tuning.jobs.cancel
    GET    /v1/fine_tuning/jobs/ID/events     fine_tuning.jobs.list_events (newest first)
    GET    /v1/fine_tuning/jobs/ID/checkpoints fine_tuning.jobs.checkpoints.list (newest first)
    GET    /v1/models, GET|DELETE /v1/models/ID   models.list / retrieve / delete (fine-tuned models only)
    POST   /v1/chat/completions               chat.completions.create (fine-tuned models answer from their data)
    GET    /_emulator/stats                   counters (no auth, never faulted)

A job moves validating_files -> queued -> running -> succeeded on the injected clock (the first 10% of its
job_seconds validating, the next 10% queued, the rest running), lazily, whenever a request looks at it. Its files
are validated as the service does when the job is created: a line that is not a chat example (or, for
babbage-002/davinci-002, a prompt/completion pair), fewer than 10 examples, an example over the base model's token
limit, or an assistant output equal to POISON_OUTPUT makes the job fail at the end of validation, with
`error: {code: invalid_training_file, message naming the line, param: training_file}`. Once running, the job
trains runner.trainer on its (last user message -> assistant message) pairs, so its `ft:` model answers chat
completions from the data; the loss of each epoch shows as `Step N/M: training loss=...` events while it runs.

Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}` with the service's HTTP status. Faults
(fault_rate, fail_next, ambiguous_create_rate) are common.Faults: a faulted request is answered 429 or 500 (an
even draw) and does nothing; an ambiguous create (a job or an upload) is made but answered 500.
docs/SDK-FACTS.md says which shapes were checked against the SDK and what deviates.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from runner import trainer
from runner.emulators.common import POISON_OUTPUT, ApiError, Emulator, Request, TrainedModels, keyset_page, routes
from runner.fsutil import atomic_write

__all__ = ["BASE_MODELS", "POISON_OUTPUT", "OpenAIEmulator", "serve"]

VALIDATING, QUEUED, RUNNING = "validating_files", "queued", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
VALIDATING_SHARE, QUEUED_SHARE = 0.1, 0.1  # of a job's duration; it runs for the rest
ORGANIZATION_ID = "org-tuneremulator"
ORGANIZATION_SLUG = "tuner-emulator"  # the <org> part of ft:<base>:<org>:<suffix>:<id>


@dataclass(frozen=True)
class BaseModel:
    created: int  # the published model's creation time, as models.list shows it
    example_tokens: int  # the most tokens one training example may have
    chat: bool = True  # chat examples ({"messages"}); else prompt/completion pairs


# The models the fine-tuning guide lists for supervised fine-tuning, and the aliases the API resolves.
BASE_MODELS: dict[str, BaseModel] = {
    "gpt-4.1-2025-04-14": BaseModel(1744316542, 65_536),
    "gpt-4.1-mini-2025-04-14": BaseModel(1744317547, 65_536),
    "gpt-4.1-nano-2025-04-14": BaseModel(1744321025, 65_536),
    "gpt-4o-2024-08-06": BaseModel(1722814719, 65_536),
    "gpt-4o-mini-2024-07-18": BaseModel(1721172717, 65_536),
    "gpt-3.5-turbo-0125": BaseModel(1706048358, 16_385),
    "gpt-3.5-turbo-1106": BaseModel(1698959748, 16_385),
    "babbage-002": BaseModel(1692634615, 16_384, chat=False),
    "davinci-002": BaseModel(1692634301, 16_384, chat=False),
}
ALIASES = {
    "gpt-4.1": "gpt-4.1-2025-04-14", "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14", "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
JOB_FIELDS = frozenset({"model", "training_file", "hyperparameters", "integrations", "metadata", "method", "seed",
                        "suffix", "validation_file"})
HYPERPARAMETERS = {  # name -> (type, minimum, maximum, exclusive minimum)
    "n_epochs": (int, 1, 50, False), "batch_size": (int, 1, 256, False),
    "learning_rate_multiplier": (float, 0.0, 10.0, True),
}
MAX_SUFFIX = 64
MAX_METADATA = (16, 64, 512)  # pairs, key characters, value characters
MIN_EXAMPLES = 10
LIMITS = {  # list -> (default, maximum) limit
    "files": (10_000, 10_000), "jobs": (20, 100), "events": (20, 100), "checkpoints": (10, 100),
}
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "tool_calls", "function_call", "tool_call_id",
                          "refusal"})
EXAMPLE_KEYS = frozenset({"messages", "tools", "functions", "parallel_tool_calls"})
TRAINER_RATE = 0.5  # runner.trainer's learning rate for a multiplier of 1 (as the Vertex emulator maps it)
CHECKPOINTS_KEPT = 3  # OpenAI keeps the checkpoints of the last three epochs


class OpenAIError(ApiError):
    """An answer in OpenAI's form: {"error": {"message", "type", "param", "code"}} with the HTTP status."""

    def __init__(self, http_code: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.http_code, self.message, self.param, self.code, self.kind = http_code, message, param, code, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    @classmethod
    def invalid(cls, message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
        return cls(400, message, param, code)

    @classmethod
    def not_found(cls, message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
        return cls(404, message, param, code)

    @classmethod
    def unavailable(cls) -> OpenAIError:
        return cls(503, "The server is overloaded or not ready yet.", kind="server_error")

    @classmethod
    def internal(cls, message: str) -> OpenAIError:
        return cls(500, message, kind="server_error")

    @classmethod
    def rate_limited(cls, message: str = "Rate limit reached for requests") -> OpenAIError:
        return cls(429, message, code="rate_limit_exceeded", kind="requests")

    @classmethod
    def server_error(cls) -> OpenAIError:
        return cls.internal("The server had an error while processing your request. Sorry about that!")


def _missing(param: str) -> OpenAIError:
    return OpenAIError.invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _out_of_range(param: str, value: Any, low: float, high: float, exclusive_low: bool = False) -> OpenAIError:
    if value > high:
        return OpenAIError.invalid(f"Invalid '{param}': {_kind(value)} above maximum value. Expected a value <= "
                                   f"{high}, but got {value} instead.", param, f"{_kind(value)}_above_max_value")
    bound = f"> {low}" if exclusive_low else f">= {low}"
    return OpenAIError.invalid(f"Invalid '{param}': {_kind(value)} below minimum value. Expected a value {bound}, "
                               f"but got {value} instead.", param, f"{_kind(value)}_below_min_value")


def _kind(value: Any) -> str:
    return "integer" if isinstance(value, int) else "decimal"


def _wrong_type(param: str, value: Any, expected: str) -> OpenAIError:
    return OpenAIError.invalid(f"Invalid type for '{param}': expected {expected}, but got "
                               f"{type(value).__name__} instead.", param, "invalid_type")


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    seq: int

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": self.bytes, "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed", "expires_at": None,
                "status_details": None}


@dataclass
class _Job:
    """One fine-tuning job, persisted as is. Times are the emulator's (common.EmulatedTime), as floats."""

    id: str
    seq: int
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int
    metadata: dict[str, str] | None
    requested: dict[str, Any]  # the hyperparameters as asked ("auto" where omitted)
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    organization_id: str
    owner: str  # the API key that created it: the concurrent-job quota is per key and base model
    created_at: float
    duration: float
    example_count: int
    tokens_per_epoch: int
    fine_tuned_model: str  # decided at create time, shown once the job succeeds
    integrations: list[dict] | None = None
    failure: dict[str, str] | None = None  # {code, message, param}: the job fails at the end of validation
    cancelled_at: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (epoch, mean loss) once trained
    model_deleted: bool = False

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.example_count / self.batch_size))

    @property
    def total_steps(self) -> int:
        return self.n_epochs * self.steps_per_epoch

    def at(self, share: float) -> float:
        """The emulator time when SHARE of the job's duration has passed."""
        return self.created_at + self.duration * share

    @property
    def running_from(self) -> float:
        return self.at(VALIDATING_SHARE + QUEUED_SHARE)

    def status(self, now: float) -> str:
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return CANCELLED
        if now < self.at(VALIDATING_SHARE):
            return VALIDATING
        if self.failure is not None:
            return FAILED
        if now < self.running_from:
            return QUEUED
        return RUNNING if now < self.at(1.0) else SUCCEEDED

    def finished_at(self, now: float) -> float | None:
        status = self.status(now)
        if status == CANCELLED:
            return self.cancelled_at
        if status == FAILED:
            return self.at(VALIDATING_SHARE)
        return self.at(1.0) if status == SUCCEEDED else None

    def epoch_time(self, epoch: int) -> float:
        """When epoch EPOCH (1-based) ends."""
        return self.running_from + (self.at(1.0) - self.running_from) * epoch / self.n_epochs

    @classmethod
    def from_json(cls, data: dict) -> _Job:
        return cls(**{**data, "losses": [tuple(pair) for pair in data["losses"]]})


def _new_counters() -> dict[str, Any]:
    return {
        "requests": 0, "faults_unavailable": 0, "faults_slow": 0, "ambiguous_creates": 0, "file_uploads": 0,
        "file_list_calls": 0, "file_get_calls": 0, "file_delete_calls": 0, "file_content_calls": 0,
        "create_calls": 0, "creates": 0, "list_calls": 0, "get_calls": 0, "cancel_calls": 0, "event_calls": 0,
        "checkpoint_calls": 0, "model_list_calls": 0, "model_get_calls": 0, "model_delete_calls": 0,
        "chat_calls": 0, "errors_by_status": {},
    }


class OpenAIEmulator(Emulator):
    """The emulator. `start()` serves it on 127.0.0.1; use it as a context manager in tests.

    Options beyond common.Emulator's: `api_keys` (None accepts any non-empty key). QUOTA is the number of
    unfinished jobs one API key may have per base model (more are refused 429, as the service does).
    """

    thread_name = "openai-emulator"
    errors = OpenAIError
    title = "OpenAI API emulator"

    def __init__(self, port: int = 0, *, api_keys: set[str] | None = None, **options: Any):
        super().__init__(port, **options)
        self.api_keys = api_keys
        self._names = random.Random(f"openai-names:{self.seed}")
        self._files: dict[str, _File] = {}
        self._blobs: dict[str, bytes] = {}  # file id -> content; kept while a job still needs it
        self._jobs: dict[str, _Job] = {}
        self._positions: dict[str, int] = {}  # every id ever issued -> its seq, so a deleted id stays a cursor
        self._examples: dict[str, list[tuple[str, str]]] = {}  # job id -> its training pairs (parsed once)
        self._trained = TrainedModels()
        self._counters = _new_counters()
        self._seq = 0
        job = r"/v1/fine_tuning/jobs/(?P<job>[^/]+)"
        self._routes = routes([
            ("POST", r"/v1/files", "file_uploads", self._upload_file),
            ("GET", r"/v1/files", "file_list_calls", self._list_files),
            ("GET", r"/v1/files/(?P<file>[^/]+)", "file_get_calls", self._get_file),
            ("DELETE", r"/v1/files/(?P<file>[^/]+)", "file_delete_calls", self._delete_file),
            ("GET", r"/v1/files/(?P<file>[^/]+)/content", "file_content_calls", self._file_content),
            ("POST", r"/v1/fine_tuning/jobs", "create_calls", self._create_job),
            ("GET", r"/v1/fine_tuning/jobs", "list_calls", self._list_jobs),
            ("GET", job, "get_calls", self._get_job),
            ("POST", job + "/cancel", "cancel_calls", self._cancel_job),
            ("GET", job + "/events", "event_calls", self._list_events),
            ("GET", job + "/checkpoints", "checkpoint_calls", self._list_checkpoints),
            ("GET", r"/v1/models", "model_list_calls", self._list_models),
            ("GET", r"/v1/models/(?P<model>[^/]+)", "model_get_calls", self._get_model),
            ("DELETE", r"/v1/models/(?P<model>[^/]+)", "model_delete_calls", self._delete_model),
            ("POST", r"/v1/chat/completions", "chat_calls", self._chat_completion),
        ])

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot: call counters, accepted jobs per training file, and jobs per status."""
        with self._lock:
            snapshot = copy.deepcopy(self._counters)
            now = self._now()
            snapshot["states"] = dict(Counter(job.status(now) for job in self._jobs.values()))
            snapshot["jobs_by_training_file"] = dict(Counter(job.training_file for job in self._jobs.values()))
            snapshot["files"] = len(self._files)
            snapshot["tuned_models"] = sum(1 for job in self._jobs.values() if self._model_exists(job, now))
        return snapshot

    def job_records(self) -> list[dict[str, Any]]:
        """Every job ever created, oldest first, as jobs.retrieve would show it now (without training any), each
        with `model_exists`: whether its fine-tuned model exists (succeeded, not deleted). One consistent look, for
        the checks a test or benchmark makes (bench/crash.py: one job per identity, nothing unknown to state)."""
        with self._lock:
            now = self._now()
            return [{**self._job_json(job, now), "model_exists": self._model_exists(job, now)}
                    for job in sorted(self._jobs.values(), key=lambda j: j.seq)]

    # -- what common.Emulator asks ---------------------------------------------------------------------------

    def _admit(self, request: Request) -> None:
        try:
            self._faults.inject(request, self.errors)
        except OpenAIError:  # a fault answers what the service answers when it is overloaded: 429 or 500
            raise (OpenAIError.rate_limited() if self._faults.draw("status", request) < 0.5
                   else OpenAIError.server_error()) from None
        self._authenticate(request)

    def _authenticate(self, request: Request) -> None:
        key = _api_key(request)
        if not key:
            raise OpenAIError(401, "You didn't provide an API key. You need to provide your API key in an "
                              "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as "
                              "the password field (with blank username) if you're accessing the API from your "
                              "browser and are prompted for a username and password. You can obtain an API key "
                              "from https://platform.openai.com/account/api-keys.")
        if self.api_keys is not None and key not in self.api_keys:
            raise OpenAIError(401, f"Incorrect API key provided: {_masked(key)}. You can find your API key at "
                              "https://platform.openai.com/account/api-keys.", code="invalid_api_key")

    def _route(self, request: Request):
        try:
            route = super()._route(request)
        except OpenAIError:
            raise OpenAIError.not_found(f"Invalid URL ({request.method} {request.path})") from None
        request.params = {name: unquote(value) for name, value in request.params.items()}
        return route

    def _count(self, counter: str) -> None:
        with self._lock:
            self._counters[counter] += 1

    def _count_error(self, error: OpenAIError) -> None:  # type: ignore[override]
        with self._lock:
            counts = self._counters["errors_by_status"]
            counts[str(error.http_code)] = counts.get(str(error.http_code), 0) + 1

    # -- files -----------------------------------------------------------------------------------------------

    def _upload_file(self, request: Request) -> dict[str, Any]:
        fields = _multipart(request)
        if "file" not in fields:
            raise _missing("file")
        if "purpose" not in fields:
            raise _missing("purpose")
        filename, content = fields["file"]
        purpose = fields["purpose"][1].decode("utf-8", "replace")
        if purpose not in FILE_PURPOSES:
            raise OpenAIError.invalid(f"'{purpose}' is not one of {list(FILE_PURPOSES)} - 'purpose'", "purpose",
                                      "invalid_value")
        if purpose == "fine-tune" and not (filename or "").endswith(".jsonl"):
            raise OpenAIError.invalid("Invalid file format for Fine-Tuning API. Must be .jsonl", "file")
        with self._lock:
            record = _File(self._new_id("file-", 24), filename or "upload", purpose, len(content),
                           int(self._now()), self._next_seq())
            self._files[record.id] = record
            self._positions[record.id] = record.seq
            self._blobs[record.id] = content
            self._save_blob(record.id, content)
            self._save()
            if self._ambiguous(request):  # stored, but the client only sees an error
                raise OpenAIError.server_error()
            return record.json()

    def _list_files(self, request: Request) -> dict[str, Any]:
        purpose, order = request.arg("purpose"), request.arg("order", "desc")
        if order not in ("asc", "desc"):
            raise OpenAIError.invalid(f"Invalid value for 'order': '{order}'. Supported values are: 'asc' and "
                                      "'desc'.", "order", "invalid_value")
        with self._lock:
            files = [f for f in self._files.values() if purpose is None or f.purpose == purpose]
            page, more = self._page(request, "files", files, newest_first=order == "desc")
            return _list([f.json() for f in page], more)

    def _get_file(self, request: Request) -> dict[str, Any]:
        with self._lock:
            return self._file(request.params["file"]).json()

    def _delete_file(self, request: Request) -> dict[str, Any]:
        with self._lock:
            record = self._file(request.params["file"])
            del self._files[record.id]
            self._forget_blob_if_unused(record.id)
            self._save()
        return {"id": record.id, "object": "file", "deleted": True}

    def _file_content(self, request: Request) -> bytes:
        with self._lock:
            record = self._file(request.params["file"])
            if record.purpose == "fine-tune":  # the service keeps training data from being read back
                raise OpenAIError.invalid(f"Not allowed to download files of purpose: {record.purpose}")
            return self._blobs[record.id]

    def _file(self, file_id: str, param: str = "id") -> _File:
        record = self._files.get(file_id)
        if record is None:
            raise OpenAIError.not_found(f"No such File object: {file_id}", param)
        return record

    # -- fine-tuning jobs: create ----------------------------------------------------------------------------

    def _create_job(self, request: Request) -> dict[str, Any]:
        body = request.json()
        unknown = sorted(set(body) - JOB_FIELDS)
        if unknown:
            raise OpenAIError.invalid(f"Unrecognized request argument supplied: {unknown[0]}")
        fields = {"model": self._base_model(body.get("model")), "suffix": _suffix(body.get("suffix")),
                  "metadata": _metadata(body.get("metadata")), "requested": _hyperparameters(body),
                  "seed": _seed(body.get("seed")), "integrations": body.get("integrations") or None}
        with self._lock:
            training = self._job_file(body.get("training_file"), "training_file", required=True)
            validation = self._job_file(body.get("validation_file"), "validation_file", required=False)
            self._check_quota(_api_key(request), fields["model"])
            job = self._add_job(request, fields, training, validation)
            ambiguous = self._ambiguous(request)
        if ambiguous:  # the job was accepted, but the client only sees an error
            raise OpenAIError.server_error()
        return self._job_answer(job)

    def _base_model(self, name: Any) -> str:
        if not name:
            raise _missing("model")
        if not isinstance(name, str):
            raise _wrong_type("model", name, "a string")
        resolved = ALIASES.get(name, name)
        if resolved not in BASE_MODELS:
            raise OpenAIError.invalid(f"Model {name} is not available for fine-tuning or does not exist.", "model",
                                      "model_not_available")
        return resolved

    def _job_file(self, file_id: Any, param: str, required: bool) -> _File | None:
        if not file_id:
            if required:
                raise _missing(param)
            return None
        record = self._files.get(file_id) if isinstance(file_id, str) else None
        if record is None:
            raise OpenAIError.invalid(f"invalid {param}: {file_id}", param)
        if record.purpose != "fine-tune":
            raise OpenAIError.invalid(f"File {file_id} has purpose '{record.purpose}', but files for fine-tuning "
                                      "must be uploaded with purpose 'fine-tune'.", param)
        return record

    def _check_quota(self, key: str, model: str) -> None:
        now = self._now()
        active = [j for j in self._jobs.values() if j.owner == key and j.model == model and j.status(now)
                  not in TERMINAL]
        if len(active) >= self.quota:
            running = sum(1 for j in active if j.status(now) == RUNNING)
            raise OpenAIError(429, f"This fine-tune request has been rate-limited. Your organization has reached the "
                              f"maximum of {self.quota} active requests ({running} running, {len(active) - running} "
                              f"pending) for the model '{model}'.", code="rate_limit_exceeded")

    def _add_job(self, request: Request, fields: dict[str, Any], training: _File, validation: _File | None) -> _Job:
        examples, failure, tokens = self._validate_files(fields["model"], training, validation)
        tag = "".join(self._names.choices(string.ascii_letters + string.digits, k=8))
        seed = fields.pop("seed")
        job = _Job(
            id=self._new_id("ftjob-", 24), seq=self._next_seq(), **fields, training_file=training.id,
            validation_file=validation.id if validation else None,
            seed=seed if seed is not None else self._names.randrange(2**31),
            **_resolve(fields["requested"], len(examples)),
            organization_id=request.headers.get("OpenAI-Organization") or ORGANIZATION_ID,
            owner=_api_key(request), created_at=self._now(), duration=0.0, example_count=len(examples),
            tokens_per_epoch=tokens, failure=failure,
            fine_tuned_model=f"ft:{fields['model']}:{ORGANIZATION_SLUG}:{fields['suffix'] or ''}:{tag}",
        )
        job.duration = self._job_duration(job)
        self._jobs[job.id] = job
        self._positions[job.id] = job.seq
        self._examples[job.id] = examples
        self._counters["creates"] += 1
        self._save()
        return job

    def _job_duration(self, job: _Job) -> float:
        """How long JOB takes, on the emulator clock (a hook: the benchmarks scale it with the work)."""
        return self.job_seconds

    def _validate_files(self, model: str, training: _File, validation: _File | None
                        ) -> tuple[list[tuple[str, str]], dict[str, str] | None, int]:
        """(training pairs, the failure the job will end with or None, tokens per epoch), as validation finds."""
        chat, limit = BASE_MODELS[model].chat, BASE_MODELS[model].example_tokens
        try:
            examples, tokens = parse_examples(self._blobs[training.id], chat, limit, model)
            if len(examples) < MIN_EXAMPLES:
                raise DatasetProblem(f"Training file has {len(examples)} example(s), but must have at least "
                                     f"{MIN_EXAMPLES} examples")
        except DatasetProblem as problem:
            return [], _failure("training", problem), 0
        if validation is not None:
            try:
                parse_examples(self._blobs[validation.id], chat, limit, model)
            except DatasetProblem as problem:
                return examples, _failure("validation", problem), tokens
        return examples, None, tokens

    # -- fine-tuning jobs: read and cancel -------------------------------------------------------------------

    def _get_job(self, request: Request) -> dict[str, Any]:
        return self._job_answer(self._job(request.params["job"]))

    def _list_jobs(self, request: Request) -> dict[str, Any]:
        wanted = _metadata_filter(request)
        with self._lock:
            jobs = [j for j in self._jobs.values() if wanted is None or _matches(j.metadata, wanted)]
            page, more = self._page(request, "jobs", jobs, newest_first=True)
        self._settle(page)
        with self._lock:
            now = self._now()
            return _list([self._job_json(job, now) for job in page], more)

    def _cancel_job(self, request: Request) -> dict[str, Any]:
        job = self._job(request.params["job"])
        with self._lock:
            status = job.status(self._now())
            if status in TERMINAL:
                raise OpenAIError.invalid(f"Job {job.id} has already {'been ' if status == CANCELLED else ''}"
                                          f"{status}: only a job that has not finished can be cancelled.", "job_id")
            job.cancelled_at = self._now()
            self._trained.forget(job.id)
            self._save()
        return self._job_answer(job)

    def _list_events(self, request: Request) -> dict[str, Any]:
        return self._job_page(request, "events", self._events)

    def _list_checkpoints(self, request: Request) -> dict[str, Any]:
        return self._job_page(request, "checkpoints", self._checkpoints)

    def _job_page(self, request: Request, kind: str, entries_of: Callable[[_Job, float], list]) -> dict[str, Any]:
        """One page, newest first, of what a job has produced by now (its events or its checkpoints)."""
        job = self._job(request.params["job"])
        self._settle([job])
        with self._lock:
            page, more = self._page(request, kind, entries_of(job, self._now()), newest_first=True, ids=False)
            return _list([entry for _, entry in page], more)

    def _job(self, job_id: str) -> _Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise OpenAIError.not_found(f"Could not find fine-tuning job: {job_id}", "fine_tuning_job_id",
                                        "fine_tuning_job_not_found")
        return job

    def _job_answer(self, job: _Job) -> dict[str, Any]:
        self._settle([job])
        with self._lock:
            return self._job_json(job, self._now())

    def _job_json(self, job: _Job, now: float) -> dict[str, Any]:
        status = job.status(now)
        resolved = status != VALIDATING and job.failure is None  # validation resolves "auto"
        hyper = ({"n_epochs": job.n_epochs, "batch_size": job.batch_size,
                  "learning_rate_multiplier": job.learning_rate_multiplier} if resolved else dict(job.requested))
        finished = job.finished_at(now)
        return {
            "id": job.id, "object": "fine_tuning.job", "created_at": int(job.created_at), "model": job.model,
            "organization_id": job.organization_id, "status": status, "training_file": job.training_file,
            "validation_file": job.validation_file, "hyperparameters": hyper, "seed": job.seed,
            "metadata": job.metadata, "integrations": job.integrations,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
            "fine_tuned_model": job.fine_tuned_model if status == SUCCEEDED else None,
            "finished_at": int(finished) if finished is not None else None,
            "estimated_finish": math.ceil(job.at(1.0)) if status in (QUEUED, RUNNING) else None,
            "trained_tokens": job.tokens_per_epoch * job.n_epochs if status == SUCCEEDED else None,
            "result_files": [], "error": dict(job.failure) if status == FAILED else None,
            "user_provided_suffix": job.suffix,  # the live API sends it; the SDK's type does not declare it
        }

    def _events(self, job: _Job, now: float) -> list[tuple[int, dict[str, Any]]]:
        """The job's events up to NOW, oldest first, each with its position (its index among all the job's)."""
        files = f"file: {job.training_file}" + (f" and validation file: {job.validation_file}"
                                                if job.validation_file else "")
        timeline: list[tuple[float, str, str, dict | None]] = [
            (job.created_at, "info", f"Created fine-tuning job: {job.id}", None),
            (job.created_at, "info", f"Validating training {files}", None),
        ]
        if job.failure is not None:
            timeline.append((job.at(VALIDATING_SHARE), "error", job.failure["message"], None))
        else:
            timeline += [(job.at(VALIDATING_SHARE), "info", "Files validated, moving job to queued state", None),
                         (job.running_from, "info", "Fine-tuning job started", None)]
            timeline += [(job.epoch_time(epoch), "info", f"Step {step}/{job.total_steps}: training loss={loss:.2f}",
                          {"step": step, "train_loss": loss, "total_steps": job.total_steps})
                         for epoch, step, loss in self._epoch_losses(job)]
            timeline += [(job.at(1.0), "info", f"New fine-tuned model created: {job.fine_tuned_model}", None),
                         (job.at(1.0), "info", "The job has successfully completed", None)]
        if job.cancelled_at is not None:
            timeline = [entry for entry in timeline if entry[0] <= job.cancelled_at]
            timeline.append((job.cancelled_at, "info", "Fine-tuning job cancelled", None))
        return [(index, {"id": _derived_id("ftevent-", job.id, index), "object": "fine_tuning.job.event",
                         "created_at": int(at), "level": level, "message": message,
                         "type": "metrics" if data else "message", "data": data or {}})
                for index, (at, level, message, data) in enumerate(timeline) if at <= now]

    def _checkpoints(self, job: _Job, now: float) -> list[tuple[int, dict[str, Any]]]:
        """The checkpoints of the last epochs, once the job has succeeded (as the service makes them usable)."""
        if job.status(now) != SUCCEEDED:
            return []
        kept = self._epoch_losses(job)[-CHECKPOINTS_KEPT:]
        return [(epoch, {
            "id": _derived_id("ftckpt-", job.id, epoch), "object": "fine_tuning.job.checkpoint",
            "created_at": int(job.epoch_time(epoch)), "fine_tuning_job_id": job.id, "step_number": step,
            "fine_tuned_model_checkpoint": (job.fine_tuned_model if epoch == job.n_epochs
                                            else f"{job.fine_tuned_model}:ckpt-step-{step}"),
            "metrics": {"step": float(step), "train_loss": loss, "train_mean_token_accuracy": None,
                        "valid_loss": None, "valid_mean_token_accuracy": None, "full_valid_loss": None,
                        "full_valid_mean_token_accuracy": None},
        }) for epoch, step, loss in kept]

    def _epoch_losses(self, job: _Job) -> list[tuple[int, int, float]]:
        """(epoch, its last step, mean loss) of every trained epoch."""
        return [(epoch, epoch * job.steps_per_epoch, loss) for epoch, loss in job.losses]

    # -- models ----------------------------------------------------------------------------------------------

    def _list_models(self, request: Request) -> dict[str, Any]:
        with self._lock:
            now = self._now()
            models = [_base_model_json(name) for name in [*BASE_MODELS, *ALIASES]]
            models += [self._tuned_model_json(job) for job in sorted(self._jobs.values(), key=lambda j: j.seq)
                       if self._model_exists(job, now)]
        return {"object": "list", "data": models}

    def _get_model(self, request: Request) -> dict[str, Any]:
        name = request.params["model"]
        if name in BASE_MODELS or name in ALIASES:
            return _base_model_json(name)
        return self._tuned_model_json(self._tuned_job(name))

    def _delete_model(self, request: Request) -> dict[str, Any]:
        name = request.params["model"]
        if name in BASE_MODELS or name in ALIASES:
            raise OpenAIError(403, f"You have insufficient permissions to delete the model {name}: only fine-tuned "
                              "models owned by your organization can be deleted.", "model",
                              kind="invalid_request_error")
        with self._lock:
            job = self._tuned_job(name)
            job.model_deleted = True
            self._trained.forget(job.id)
            self._save()
        return {"id": name, "object": "model", "deleted": True}

    def _tuned_job(self, model: str) -> _Job:
        with self._lock:
            now = self._now()
            job = next((j for j in self._jobs.values() if j.fine_tuned_model == model), None)
            if job is None or not self._model_exists(job, now):
                raise OpenAIError.not_found(f"The model '{model}' does not exist", "model", "model_not_found")
            return job

    def _model_exists(self, job: _Job, now: float) -> bool:
        return job.status(now) == SUCCEEDED and not job.model_deleted

    def _tuned_model_json(self, job: _Job) -> dict[str, Any]:
        return {"id": job.fine_tuned_model, "object": "model", "created": int(job.at(1.0)),
                "owned_by": job.organization_id}

    # -- chat completions ------------------------------------------------------------------------------------

    def _chat_completion(self, request: Request) -> dict[str, Any]:
        body = request.json()
        name = body.get("model")
        if not name:
            raise _missing("model")
        prompt = _prompt(body.get("messages"))
        if name in BASE_MODELS or name in ALIASES:
            raise OpenAIError.invalid(f"The emulator answers chat completions for fine-tuned models only, not "
                                      f"{name}.", "model", "model_not_supported")
        try:
            job = self._tuned_job(name)
        except OpenAIError:
            raise OpenAIError.not_found(f"The model `{name}` does not exist or you do not have access to it.",
                                        code="model_not_found") from None
        answer = self._ensure_trained(job).predict(prompt)
        count = body.get("n") or 1
        prompt_tokens, answer_tokens = _tokens(prompt), _tokens(answer)
        return {
            "id": self._new_id("chatcmpl-", 29, remember=False), "object": "chat.completion",
            "created": int(self._now()), "model": name, "system_fingerprint": None, "service_tier": "default",
            "choices": [{"index": index, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": answer, "refusal": None, "annotations": []}}
                        for index in range(count)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": answer_tokens * count,
                      "total_tokens": prompt_tokens + answer_tokens * count},
        }

    # -- training --------------------------------------------------------------------------------------------

    def _settle(self, jobs: Iterable[_Job]) -> None:
        """Train each job that is running or done but not trained yet (outside the main lock)."""
        now = self._now()
        for job in jobs:
            if not job.losses and job.status(now) in (RUNNING, SUCCEEDED):
                self._ensure_trained(job)

    def _ensure_trained(self, job: _Job) -> trainer.TunedModel:
        return self._trained.get(job.id, lambda: self._train(job))

    def _train(self, job: _Job) -> trainer.TunedModel:
        """Train on the job's examples; the first training also records its losses (its step events)."""
        losses: list[tuple[int, float]] = []
        tuned = trainer.train(self._job_examples(job), job.n_epochs, job.batch_size,
                              TRAINER_RATE * job.learning_rate_multiplier, seed=job.seed,
                              on_epoch=lambda epoch, loss: losses.append((epoch, loss)))
        with self._lock:
            if not job.losses and self._jobs.get(job.id) is job:
                job.losses = losses
                self._save()
        return tuned

    def _job_examples(self, job: _Job) -> list[tuple[str, str]]:
        with self._lock:
            examples = self._examples.get(job.id)
            if examples is None:  # after a restart: parse the file again
                model = BASE_MODELS[job.model]
                examples, _ = parse_examples(self._blobs[job.training_file], model.chat, model.example_tokens,
                                             job.model)
                self._examples[job.id] = examples
            return examples

    # -- ids, paging, persistence ----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _new_id(self, prefix: str, length: int, remember: bool = True) -> str:
        alphabet = string.ascii_letters + string.digits
        while True:
            candidate = prefix + "".join(self._names.choices(alphabet, k=length))
            if not remember or candidate not in self._positions:
                return candidate

    def _page(self, request: Request, kind: str, items: list, newest_first: bool, ids: bool = True
              ) -> tuple[list, bool]:
        """A page of ITEMS after the cursor `after` (an id). ITEMS are records with .seq when IDS, else
        (position, json) pairs whose json carries the id."""
        default, maximum = LIMITS[kind]
        limit = _limit(request.arg("limit"), default, maximum)
        after = request.arg("after")
        position: Callable[[Any], int] = (lambda item: item.seq) if ids else (lambda pair: pair[0])
        cursor = None
        if after:
            if ids:
                cursor = self._positions.get(after)
            else:
                cursor = next((pos for pos, item in items if item["id"] == after), None)
            if cursor is None:
                raise OpenAIError.invalid(f"Invalid 'after': no {kind[:-1]} with id '{after}'.", "after",
                                          "invalid_value")
        return keyset_page(items, position, cursor, limit, newest_first)

    def _blob_path(self, file_id: str) -> Path | None:
        path = self.persist_path
        return None if path is None else path.with_name(path.name + ".files") / file_id

    def _save_blob(self, file_id: str, content: bytes) -> None:
        path = self._blob_path(file_id)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, content)

    def _forget_blob_if_unused(self, file_id: str) -> None:
        """A deleted file's content stays while a job trains on it (the service copies it into the job)."""
        if any(file_id in (j.training_file, j.validation_file) for j in self._jobs.values()):
            return
        self._blobs.pop(file_id, None)
        path = self._blob_path(file_id)
        if path is not None:
            path.unlink(missing_ok=True)

    def _snapshot(self) -> dict[str, Any]:
        return {
            "openai_emulator": 1, "seq": self._seq, "counters": self._counters, "positions": self._positions,
            "names": _random_state(self._names),
            "files": [asdict(f) for f in self._files.values()], "blobs": sorted(self._blobs),
            "jobs": [asdict(j) for j in sorted(self._jobs.values(), key=lambda j: j.seq)],
        }

    def _restore(self, snapshot: dict[str, Any]) -> None:
        if snapshot.get("openai_emulator") != 1:
            raise KeyError("openai_emulator")
        blobs = {file_id: _read_blob(self._blob_path(file_id)) for file_id in snapshot["blobs"]}
        with self._lock:
            self._seq = snapshot["seq"]
            self._counters = {**_new_counters(), **snapshot["counters"]}
            self._positions = dict(snapshot["positions"])
            self._names.setstate(_random_from_json(snapshot["names"]))
            self._files = {f["id"]: _File(**f) for f in snapshot["files"]}
            self._jobs = {j["id"]: _Job.from_json(j) for j in snapshot["jobs"]}
            self._blobs = blobs


def _read_blob(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:  # StateFile.load reports a ValueError as an unusable state file
        raise ValueError(f"the uploaded file {path} is missing: {error.strerror}") from None


# -- the training file ---------------------------------------------------------------------------------------


class DatasetProblem(ValueError):
    """Why a fine-tuning file is refused, in the service's words (naming the line)."""


def parse_examples(content: bytes, chat: bool, token_limit: int, model: str) -> tuple[list[tuple[str, str]], int]:
    """The (input, output) pairs of a fine-tuning JSONL file and its token count, or DatasetProblem naming the
    first bad line. A chat example gives one pair per trained assistant message: (the last user message, it)."""
    pairs: list[tuple[str, str]] = []
    tokens = 0
    examples = 0
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except ValueError:
            example = None
        if not isinstance(example, dict):
            raise DatasetProblem(f"Invalid file format. Expected file to have JSONL format, where every line is a "
                                 f"valid JSON dictionary. Line {number} is not a dictionary.")
        found, texts = (_chat_pairs if chat else _completion_pairs)(example, number)
        size = sum(_tokens(text) + 4 for text in texts)
        if size > token_limit:
            raise DatasetProblem(f"Invalid file format. Line {number}: the example has {size} tokens, more than the "
                                 f"{token_limit} tokens an example for {model} may have.")
        examples += 1
        tokens += size
        pairs += found
    if examples and not pairs:
        raise DatasetProblem("Invalid file format. No example has an assistant message to train on.")
    return pairs, tokens


def _chat_pairs(example: dict, number: int) -> tuple[list[tuple[str, str]], list[str]]:
    unknown = sorted(set(example) - EXAMPLE_KEYS)
    if unknown:
        raise DatasetProblem(f"Invalid file format. Line {number}: Unrecognized key: {unknown[0]}")
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DatasetProblem(f"Invalid file format. Line {number}, key \"messages\": "
                             + ("Missing required key." if messages is None else "expected a non-empty list."))
    pairs, texts, last_user = [], [], ""
    for index, message in enumerate(messages, start=1):
        where = f"Invalid file format. Line {number}, message {index}"
        if not isinstance(message, dict):
            raise DatasetProblem(f"{where}: expected an object.")
        unknown = sorted(set(message) - MESSAGE_KEYS)
        if unknown:
            raise DatasetProblem(f"{where}: Unrecognized key: {unknown[0]}")
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise DatasetProblem(f"{where}: " + ("Missing required key 'role'." if role is None
                                                 else f"Unrecognized role: {role}"))
        text = _content_text(message, where)
        texts.append(text)
        if message.get("weight", 1) not in (0, 1):
            raise DatasetProblem(f"{where}: Invalid weight: {message['weight']!r}. Expected 0 or 1.")
        if role == "user":
            last_user = text
        elif role == "assistant" and message.get("weight", 1) == 1:
            if text == POISON_OUTPUT:
                raise DatasetProblem(f"{where}: the assistant output is the emulator failure marker "
                                     f"{POISON_OUTPUT!r}.")
            pairs.append((last_user, text))
    if not any(m.get("role") == "assistant" for m in messages):
        raise DatasetProblem(f"Invalid file format. Line {number}: Example is missing an assistant message.")
    return pairs, texts


def _content_text(message: dict, where: str) -> str:
    content = message.get("content")
    if content is None and message.get("role") == "assistant" and (message.get("tool_calls")
                                                                   or message.get("function_call")):
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(isinstance(p, dict) for p in content):
        return "\n".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    if content is None:
        raise DatasetProblem(f"{where}: Missing required key 'content'.")
    raise DatasetProblem(f"{where}: Invalid content: expected a string or a list of content parts.")


def _completion_pairs(example: dict, number: int) -> tuple[list[tuple[str, str]], list[str]]:
    prompt, completion = example.get("prompt"), example.get("completion")
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise DatasetProblem(f"Invalid file format. Line {number}: expected keys \"prompt\" and \"completion\" with "
                             "string values.")
    if completion.strip() == POISON_OUTPUT:
        raise DatasetProblem(f"Invalid file format. Line {number}: the completion is the emulator failure marker "
                             f"{POISON_OUTPUT!r}.")
    return [(prompt, completion.strip())], [prompt, completion]


def _failure(which: str, problem: DatasetProblem) -> dict[str, str]:
    return {"code": f"invalid_{which}_file", "param": f"{which}_file",
            "message": f"The job failed due to an invalid {which} file. {problem}"}


# -- request parsing helpers ---------------------------------------------------------------------------------


def _api_key(request: Request) -> str:
    authorization = request.headers.get("Authorization") or ""
    return authorization[7:].strip() if authorization.startswith("Bearer ") else ""


def _masked(key: str) -> str:
    """As the service echoes a wrong key: only its ends shown."""
    return f"{key[:3]}{'*' * (len(key) - 7)}{key[-4:]}" if len(key) > 10 else "*" * len(key)


def _multipart(request: Request) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, content)."""
    content_type = request.headers.get("Content-Type") or ""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or boundary is None:
        raise OpenAIError.invalid("Invalid request: expected a multipart/form-data body with the file and purpose.")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in request.body.split(b"--" + boundary.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part.partition(b"\r\n\r\n")
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name:
            fields[name.group(1)] = (filename.group(1) if filename else None, value.removesuffix(b"\r\n"))
    return fields


def _suffix(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _wrong_type("suffix", value, "a string")
    if len(value) > MAX_SUFFIX:
        raise OpenAIError.invalid(f"Invalid 'suffix': string too long. Expected a string with maximum length "
                                  f"{MAX_SUFFIX}, but got a string with length {len(value)} instead.", "suffix",
                                  "string_above_max_length")
    return value or None


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _wrong_type("metadata", value, "an object")
    pairs, key_chars, value_chars = MAX_METADATA
    if len(value) > pairs:
        raise OpenAIError.invalid(f"Invalid 'metadata': too many properties. Expected an object with at most {pairs} "
                                  f"properties, but got an object with {len(value)} properties instead.", "metadata",
                                  "object_above_max_properties")
    for key, item in value.items():
        if len(key) > key_chars:
            raise OpenAIError.invalid(f"Invalid 'metadata': key '{key[:20]}...' is longer than {key_chars} "
                                      "characters.", "metadata", "string_above_max_length")
        if not isinstance(item, str):
            raise _wrong_type(f"metadata.{key}", item, "a string")
        if len(item) > value_chars:
            raise OpenAIError.invalid(f"Invalid 'metadata.{key}': string too long. Expected a string with maximum "
                                      f"length {value_chars}, but got a string with length {len(item)} instead.",
                                      f"metadata.{key}", "string_above_max_length")
    return dict(value)


def _hyperparameters(body: dict) -> dict[str, Any]:
    """The supervised hyperparameters asked for, "auto" where omitted: from `method` or the deprecated top-level
    `hyperparameters` (not both)."""
    method = body.get("method")
    top = body.get("hyperparameters")
    if method is None:
        given, where = top or {}, "hyperparameters"
    else:
        if not isinstance(method, dict):
            raise _wrong_type("method", method, "an object")
        kind = method.get("type")
        if kind not in ("supervised", "dpo", "reinforcement"):
            raise OpenAIError.invalid(f"Invalid value: '{kind}'. Supported values are: 'supervised', 'dpo', and "
                                      "'reinforcement'.", "method.type", "invalid_value")
        if kind != "supervised":
            raise OpenAIError.invalid(f"The emulator supports supervised fine-tuning only, not '{kind}'.",
                                      "method.type", "invalid_value")
        if top:
            raise OpenAIError.invalid("Specify hyperparameters in 'method', not also in the deprecated top-level "
                                      "'hyperparameters'.", "hyperparameters")
        given = (method.get("supervised") or {}).get("hyperparameters") or {}
        where = "method.supervised.hyperparameters"
    if not isinstance(given, dict):
        raise _wrong_type(where, given, "an object")
    unknown = sorted(set(given) - set(HYPERPARAMETERS))
    if unknown:
        raise OpenAIError.invalid(f"Unrecognized request argument supplied: {where}.{unknown[0]}")
    return {name: _hyperparameter(f"{where}.{name}", given.get(name, "auto"), *rule)
            for name, rule in HYPERPARAMETERS.items()}


def _hyperparameter(param: str, value: Any, kind: type, low: float, high: float, exclusive_low: bool) -> Any:
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        expected = "an integer or 'auto'" if kind is int else "a number or 'auto'"
        raise _wrong_type(param, value, expected)
    value = kind(value)
    if value > high or value < low or (exclusive_low and value == low):
        raise _out_of_range(param, value, low, high, exclusive_low)
    return value


def _resolve(requested: dict[str, Any], examples: int) -> dict[str, Any]:
    """What "auto" becomes for a dataset of EXAMPLES pairs: the rules OpenAI's data-preparation guide gives (3 epochs,
    more for small datasets so that ~100 examples are seen, fewer for large ones; ~0.2% of the examples per batch)."""
    epochs = requested["n_epochs"]
    if epochs == "auto":
        epochs = 3
        if examples and examples * epochs < 100:
            epochs = min(25, 100 // examples)
        elif examples * epochs > 25_000:
            epochs = max(1, 25_000 // examples)
    batch = requested["batch_size"]
    if batch == "auto":
        batch = max(1, min(256, round(examples * 0.002)))
    multiplier = requested["learning_rate_multiplier"]
    return {"n_epochs": epochs, "batch_size": batch,
            "learning_rate_multiplier": 1.8 if multiplier == "auto" else multiplier}


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type("seed", value, "an integer")
    if not 0 <= value <= 2_147_483_647:
        raise _out_of_range("seed", value, 0, 2_147_483_647)
    return value


def _metadata_filter(request: Request) -> dict[str, str] | None:
    """The `metadata[k]=v` filter of jobs.list ({} for `metadata=null`: jobs without metadata); None: no filter."""
    pairs = {m.group(1): values[-1] for key, values in request.query.items()
             if (m := re.fullmatch(r"metadata\[(.*)\]", key))}
    null = request.arg("metadata")
    if null is not None and pairs:
        raise OpenAIError.invalid("Do not combine 'metadata=null' with 'metadata[key]=value' filters.", "metadata")
    if null is not None:
        if null != "null":
            raise OpenAIError.invalid("Invalid 'metadata': filter with metadata[key]=value, or metadata=null.",
                                      "metadata")
        return {}
    return pairs or None


def _matches(metadata: dict[str, str] | None, wanted: dict[str, str]) -> bool:
    if not wanted:
        return not metadata
    return metadata is not None and all(metadata.get(k) == v for k, v in wanted.items())


def _limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise OpenAIError.invalid(f"Invalid 'limit': expected an integer, but got '{raw}' instead.", "limit",
                                  "invalid_type") from None
    if not 1 <= limit <= maximum:
        raise _out_of_range("limit", limit, 1, maximum)
    return limit


def _list(data: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


def _prompt(messages: Any) -> str:
    """The text a tuned model answers: the last user message of a chat completion request."""
    if not messages:
        raise _missing("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _wrong_type("messages", messages, "an array of message objects")
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        raise OpenAIError.invalid("The emulator answers the last user message: 'messages' has none.", "messages")
    try:
        return _content_text(users[-1], f"messages[{messages.index(users[-1])}]")
    except DatasetProblem as problem:
        raise OpenAIError.invalid(str(problem), "messages") from None


def _tokens(text: str) -> int:
    """Tokens of TEXT, by the 4-bytes-a-token rule (the emulator has no tokenizer)."""
    return math.ceil(len(text.encode("utf-8")) / 4)


def _derived_id(prefix: str, job_id: str, index: int) -> str:
    return prefix + hashlib.sha256(f"{job_id}:{index}".encode()).hexdigest()[:24]


def _base_model_json(name: str) -> dict[str, Any]:
    model = BASE_MODELS[ALIASES.get(name, name)]
    return {"id": name, "object": "model", "created": model.created, "owned_by": "system"}


def _random_state(names: random.Random) -> list:
    version, state, gauss = names.getstate()
    return [version, list(state), gauss]


def _random_from_json(saved: list) -> tuple:
    version, state, gauss = saved
    return version, tuple(state), gauss


serve = OpenAIEmulator.serve  # `tuner emulator openai`
