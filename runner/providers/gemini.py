"""The Gemini API provider, on google-generativeai (tunedModels). Every call goes through the SDK.

States are CREATING -> ACTIVE or FAILED. Tuned model ids derive from the model's name and fingerprint, so
a create retried after an ambiguous failure meets ALREADY_EXISTS and adopts the job it started.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from runner.datasets import DatasetRef, open_examples
from runner.errors import AlreadyExistsError, ProviderError, first_line, is_network_error
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
from runner.sdkwarnings import quiet_sdk_banners

if TYPE_CHECKING:
    from runner.spec import ModelSpec

DEFAULT_KEY_ENV = "GOOGLE_API_KEY"
ENDPOINT_ENV = "TUNER_GEMINI_ENDPOINT"
ID_MAX = 40  # the API's rule: [a-z]([a-z0-9-]{0,38}[a-z0-9])?
TUNED_ID = re.compile(r"tunedModels/[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?")
HANDLE = re.compile(r"tunedModels/[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?/operations/[A-Za-z0-9_-]{1,128}")
OWNED_ID = re.compile(r"tunedModels/[a-z][a-z0-9-]*-([0-9a-f]{8})-[0-9a-f]{10}")  # <stem>-<owner tag>-<digest>
# Limits from the API reference and tuning guide: display name up to 40 characters; each example's input up
# to 40,000 characters and output up to 5,000; the inline training data of one request up to 4 MB.
DISPLAY_NAME_MAX = 40
INPUT_CHARS_MAX = 40_000
OUTPUT_CHARS_MAX = 5_000
REQUEST_BYTES_MAX = 4 * 1024 * 1024
LIST_PAGE_SIZE = 50
# The API's defaults, made explicit so the fingerprint does not move if Google changes them.
HYPERPARAMETERS = Hyperparameters(
    defaults={"epoch_count": 5, "batch_size": 4, "learning_rate": 0.001},
    refused={"learning_rate_multiplier": "a Vertex AI setting; the Gemini API takes learning_rate",
             "adapter_size": "a Vertex AI setting; the Gemini API does not expose the adapter size"})
_STATES = {"CREATING": CREATING, "ACTIVE": ACTIVE, "FAILED": FAILED}
# tuner owns retries (bounded, jittered, quota-aware); the SDK's own 60 s retry loop would hide faults.
REQUEST = {"retry": None, "timeout": 60.0}
_configure_lock = threading.Lock()
quiet_sdk_banners()  # google-generativeai is imported lazily, on first use


def create(context: ProviderContext) -> GeminiProvider:
    return GeminiProvider(context.settings, context.environ)


class GeminiProvider:
    name = "gemini"

    def __init__(self, settings: dict, environ: dict | None = None):
        self._environ = os.environ if environ is None else environ
        self.api_key_env = checked_key_variable(settings.get("api_key_env", DEFAULT_KEY_ENV),
                                                "providers.gemini.api_key_env")
        self.endpoint = checked_endpoint(self._environ.get(ENDPOINT_ENV), ENDPOINT_ENV) or \
            checked_endpoint(settings.get("endpoint"), "providers.gemini.endpoint")
        self.capabilities = Capabilities(
            max_concurrent_jobs=settings.get("max_concurrent_jobs", 5),
            poll_seconds=settings.get("poll_seconds", 10.0),
        )
        self._genai = None

    # -- plan time -------------------------------------------------------------------------------------
    def plan(self, spec: ModelSpec, datasets: ModelDatasets | None) -> PlanResponse:
        return plan_model(spec, datasets, HYPERPARAMETERS, _estimate, self._limits)

    def import_attributes(self, planned: PlannedModel, seen: ObservedModel) -> dict:
        """The API reports base models as `models/<id>`; a spec may name the same model without the prefix."""
        same = seen.base_model == f"models/{planned.base_model}"
        return planning.imported_attributes(planned, seen, planned.base_model if same else None)

    def _limits(self, model: PlannedModel) -> list[str]:
        problems = []
        if len(model.display_name) > DISPLAY_NAME_MAX:
            problems.append(f"display_name: {len(model.display_name)} characters; the Gemini API allows "
                            f"{DISPLAY_NAME_MAX}")
        for info in filter(None, (model.train, model.validation)):
            if info.max_input_chars > INPUT_CHARS_MAX:
                problems.append(f"{info.display}: an input has {info.max_input_chars} characters; the Gemini API "
                                f"allows {INPUT_CHARS_MAX}")
            if info.max_output_chars > OUTPUT_CHARS_MAX:
                problems.append(f"{info.display}: an output has {info.max_output_chars} characters; the Gemini API "
                                f"allows {OUTPUT_CHARS_MAX}")
        if model.train.text_bytes > REQUEST_BYTES_MAX:
            problems.append(f"{model.train.display}: {model.train.text_bytes} bytes of examples; the Gemini API "
                            f"takes at most {REQUEST_BYTES_MAX} bytes inline (4 MB)")
        return problems

    def tuned_model_id(self, model, owner: Owner) -> str:
        """tunedModels/<name>-<owner tag>-<digest of name and fingerprint>: deterministic, so a retry finds the
        job it started, and carrying this state's identity, so no other workspace or state ever finds it."""
        suffix = f"-{owner.tag}-{model_digest(model.name, model.job_key)}"
        stem = model.name[: ID_MAX - len(suffix)].rstrip("-")
        return f"tunedModels/{stem}{suffix}"

    def recorded_settings(self) -> dict:
        return {"endpoint": self.endpoint, "api_key_env": self.api_key_env}

    # -- SDK access --------------------------------------------------------------------------------------
    def preflight(self) -> None:
        self._sdk()

    def _sdk(self):
        if self._genai is None:
            key = self._environ.get(self.api_key_env)
            if not key:
                raise ProviderError(f"the Gemini API key is missing: environment variable {self.api_key_env} "
                                    f"is not set", remedy=f"export {self.api_key_env}=<your API key> "
                                    f"(or set providers.gemini.api_key_env to the variable that holds it)")
            import google.generativeai as genai

            options = {"api_endpoint": self.endpoint} if self.endpoint else None
            with _configure_lock:
                genai.configure(api_key=key, transport="rest", client_options=options)
            self._genai = genai
        return self._genai

    def _call(self, fn: Callable, *, on_not_found: Callable | None = None):
        return guarded(lambda: fn(self._sdk()), self._map_error, on_not_found)

    def _map_error(self, exc: Exception) -> ProviderError:
        from google.api_core import exceptions as gexc

        message = self._redact(getattr(exc, "message", None) or str(exc))
        # Over REST the SDK raises the HTTP-level classes (Conflict, TooManyRequests, BadRequest, Forbidden);
        # the gRPC-named ones are their subclasses, so matching the HTTP classes covers both transports.
        if isinstance(exc, gexc.Conflict):
            return AlreadyExistsError(message)
        if isinstance(exc, gexc.TooManyRequests):
            return ProviderError(message, ProviderError.QUOTA, "RESOURCE_EXHAUSTED")
        if isinstance(exc, gexc.ServerError | gexc.DeadlineExceeded | gexc.RetryError):
            return ProviderError(message, ProviderError.RETRYABLE, type(exc).__name__.upper())
        if isinstance(exc, gexc.Forbidden | gexc.Unauthorized):
            return ProviderError(message, ProviderError.FATAL, "PERMISSION_DENIED",
                                 remedy=f"check the key in {self.api_key_env}: it must be a Gemini API key of a "
                                        f"project with the Generative Language API enabled and tuning allowed")
        if isinstance(exc, gexc.BadRequest):
            if "api key" in message.lower():
                return ProviderError(message, ProviderError.FATAL, "API_KEY_INVALID",
                                     remedy=f"set a valid Gemini API key in {self.api_key_env}")
            return ProviderError(message, ProviderError.FATAL, "INVALID_ARGUMENT",
                                 remedy="fix the field the message names, then plan and apply again")
        if isinstance(exc, gexc.NotFound):
            return ProviderError(message, ProviderError.FATAL, "NOT_FOUND")
        if is_network_error(exc):
            return ProviderError(f"cannot reach the Gemini API at {self.endpoint or 'the default endpoint'}: "
                                 f"{first_line(message)}", ProviderError.RETRYABLE, "UNAVAILABLE",
                                 remedy=f"check the network, or the endpoint (providers.gemini.endpoint, "
                                        f"{ENDPOINT_ENV})")
        return ProviderError(f"{type(exc).__name__}: {message}", ProviderError.FATAL)

    def _redact(self, text: str) -> str:
        key = self._environ.get(self.api_key_env)
        return text.replace(key, "***") if key else text

    # -- jobs --------------------------------------------------------------------------------------------
    def submit(self, model, tuned_model_id: str, owner: Owner) -> str:
        _check_owner(checked(TUNED_ID, tuned_model_id, "Gemini tuned model id"), owner, strict=True)
        examples = [{"text_input": e.input, "output": e.output} for e in open_examples(model.train)]
        hp = model.hyperparameters
        base = model.base_model if model.base_model.startswith("models/") else f"models/{model.base_model}"
        operation = self._call(
            lambda genai: genai.create_tuned_model(
                source_model=base, training_data=examples, id=tuned_model_id.removeprefix("tunedModels/"),
                display_name=model.display_name, description=model.description,
                epoch_count=hp["epoch_count"], batch_size=hp["batch_size"], learning_rate=hp["learning_rate"],
                request_options=REQUEST),
            on_not_found=lambda: self._raise_unknown_base_model(base),
        )
        return operation.name

    def _raise_unknown_base_model(self, base: str):
        models = self._call(lambda genai: list(genai.list_models(page_size=LIST_PAGE_SIZE, request_options=REQUEST)))
        tunable = [m.name for m in models if "createTunedModel" in (m.supported_generation_methods or [])]
        raise ProviderError(f"base model {base} was not found", code="NOT_FOUND",
                            remedy=f"use a base model that supports tuning: {', '.join(tunable) or 'none listed'}")

    def poll(self, tuned_model_id: str, handle: str | None) -> JobStatus:
        checked(TUNED_ID, tuned_model_id, "Gemini tuned model id")
        tuned = self._call(lambda genai: genai.get_tuned_model(tuned_model_id, request_options=REQUEST),
                           on_not_found=lambda: None)
        if tuned is None:
            return JobStatus(FAILED, "NOT_FOUND", f"{tuned_model_id} no longer exists (deleted while tuning?)")
        state = _STATES.get(tuned.state.name, CREATING)
        if state == FAILED:
            return JobStatus(FAILED, tuned.state.name, self._failure_message(handle))
        return _with_progress(JobStatus(state, tuned.state.name), tuned)

    def _failure_message(self, handle: str | None) -> str:
        if not handle or "/operations/" not in handle:
            return "the tuning job failed (no operation recorded to read the reason from)"
        checked(HANDLE, handle, "Gemini operation name")
        from google.generativeai import operations

        operation = self._call(lambda genai: operations.get_operation(handle))
        error = operation.exception() if operation.done() else None
        return self._redact(str(getattr(error, "message", None) or error or "the tuning job failed"))

    def update(self, tuned_model_id: str, display_name: str, description: str) -> None:
        checked(TUNED_ID, tuned_model_id, "Gemini tuned model id")
        self._call(lambda genai: genai.update_tuned_model(
            tuned_model_id, {"display_name": display_name, "description": description}, request_options=REQUEST))

    def delete(self, tuned_model_id: str, handle: str | None, owner: Owner) -> None:
        """The owner is read from the id itself: no call is made for a model that is not this state's."""
        _check_owner(checked(TUNED_ID, tuned_model_id, "Gemini tuned model id"), owner)
        self._call(lambda genai: genai.delete_tuned_model(tuned_model_id, request_options=REQUEST),
                   on_not_found=lambda: None)

    def list_models(self) -> list[ObservedModel]:
        """One paged list call (pages of 50), whatever the number of models."""
        return [_observed(m) for m in self._call(lambda genai: list(genai.list_tuned_models(
            page_size=LIST_PAGE_SIZE, request_options=REQUEST)))]

    def get_model(self, tuned_model_id: str) -> ObservedModel | None:
        resource = checked(TUNED_ID, _resource(tuned_model_id), "Gemini tuned model id")
        tuned = self._call(lambda genai: genai.get_tuned_model(resource, request_options=REQUEST),
                           on_not_found=lambda: None)
        return _observed(tuned) if tuned is not None else None

    def predict(self, tuned_model_id: str, text: str) -> str:
        checked(TUNED_ID, tuned_model_id, "Gemini tuned model id")
        response = self._call(lambda genai: genai.GenerativeModel(model_name=tuned_model_id).generate_content(
            text, request_options=REQUEST))
        return response.text

    def info(self) -> dict:
        import google.generativeai as genai

        return {"sdk": "google-generativeai", "version": genai.__version__}


def _resource(tuned_model_id: str) -> str:
    return tuned_model_id if tuned_model_id.startswith("tunedModels/") else f"tunedModels/{tuned_model_id}"


def owner_of(tuned_model_id: str) -> str | None:
    """The owner tag a Gemini id carries (tuner's ids end in -<tag>-<digest>); None for any other id."""
    match = OWNED_ID.fullmatch(tuned_model_id)
    return match.group(1) if match else None


def _check_owner(tuned_model_id: str, owner: Owner, strict: bool = False) -> None:
    """Another state's id is never touched; `strict` (a create) also refuses an id carrying no identity."""
    owner.refuse_foreign(owner_of(tuned_model_id), tuned_model_id, strict)


def _observed(tuned) -> ObservedModel:
    hp = _field(tuned.tuning_task, "hyperparameters") if tuned.tuning_task else None
    hyperparameters = {key: _field(hp, key) for key in ("epoch_count", "batch_size", "learning_rate")} if hp else {}
    return ObservedModel(tuned.name, tuned.display_name or "", tuned.description or "",
                         _STATES.get(tuned.state.name, CREATING), tuned.base_model or "",
                         {k: v for k, v in hyperparameters.items() if v}, owner_of(tuned.name))


def _with_progress(status: JobStatus, tuned) -> JobStatus:
    """How far the job is, from its tuning snapshots (one per epoch done, with its mean loss): unknown until the
    first one."""
    task = tuned.tuning_task
    snapshots = list(_field(task, "snapshots") or []) if task else []
    hyperparameters = _field(task, "hyperparameters") if task else None
    epochs = _field(hyperparameters, "epoch_count") if hyperparameters else None
    if not snapshots or not epochs:
        return status
    epoch = _field(snapshots[-1], "epoch") or 0
    return replace(status, progress=min(1.0, epoch / epochs), epoch=epoch, epochs=epochs,
                   loss=_field(snapshots[-1], "mean_loss"))


def _field(value, name: str):
    """The SDK decodes some nested messages to dataclasses and others (snapshots) to plain dicts."""
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


def _estimate(hyperparameters: dict, train: DatasetRef) -> TrainingEstimate:
    """Gemini's token rule; epoch_count is always set (HYPERPARAMETERS' default is the API's own)."""
    return TrainingEstimate(planning.estimate_tokens(train.text_bytes, train.examples), hyperparameters["epoch_count"])
