"""A loopback emulator of the Gemini API (generativelanguage v1beta, REST) tuning surface.

It speaks the wire format the real google-generativeai SDK expects: the same paths, camelCase JSON,
enums as numbers when the request carries `$alt=json;enum-encoding=int` (names otherwise), long-running
operations with typed `Any` payloads, and google.rpc.Status error bodies with Google's status codes.

Jobs run on an injectable clock and are settled lazily on every read: CREATING for `job_seconds`, then
ACTIVE, or FAILED when a training example's output is POISON_OUTPUT. An ACTIVE model is really trained
with runner.trainer, and generateContent answers with its prediction.

Faults are common.Faults, drawn from (seed, the request, its attempt number): 503 UNAVAILABLE with probability
fault_rate (nothing is created), a slow answer with probability fault_rate / 2, and with ambiguous_create_rate a
create that succeeds but is answered 503.
"""

from __future__ import annotations

import copy
import math
import random
import re
import string
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from runner import trainer
from runner.emulators.common import POISON_OUTPUT, Emulator, Request, TrainedModels, routes
from runner.emulators.google import STATUS_CODES, TYPE_PREFIX, GoogleError, cursor_page, rfc3339, snake_case, usage

__all__ = ["POISON_OUTPUT", "GeminiEmulator", "serve"]

TUNED_MODEL_ID = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")
CREATING, ACTIVE, FAILED = "CREATING", "ACTIVE", "FAILED"
STATE_NUMBERS = {"STATE_UNSPECIFIED": 0, CREATING: 1, ACTIVE: 2, FAILED: 3}  # TunedModel.State
FINISH_STOP = ("STOP", 1)  # Candidate.FinishReason

METADATA_TYPE = TYPE_PREFIX + "google.ai.generativelanguage.v1beta.CreateTunedModelMetadata"
TUNED_MODEL_TYPE = TYPE_PREFIX + "google.ai.generativelanguage.v1beta.TunedModel"
SERVICE = "generativelanguage.googleapis.com"

# Documented limits: display name up to 40 characters, inputs up to 40,000 and outputs up to 5,000 characters.
MAX_DISPLAY_NAME = 40
MAX_INPUT_CHARS = 40_000
MAX_OUTPUT_CHARS = 5_000
DEFAULT_EPOCHS = 5
# Google documents "4 or 16" and "0.001 or 0.0002" chosen by dataset size without the threshold; ours is a guess.
LARGE_DATASET = 500
TUNED_PAGE = (10, 1000)  # (default, maximum) pageSize of tunedModels.list
MODEL_PAGE = (50, 1000)  # ... and of models.list

_TUNED_MODEL_FIELDS = {
    "name", "baseModel", "tunedModelSource", "displayName", "description", "temperature", "topP", "topK",
    "state", "createTime", "updateTime", "tuningTask", "readerProjectNumbers",
}
_TUNED_MODEL_SNAKE_FIELDS = {snake_case(f) for f in _TUNED_MODEL_FIELDS}
_UPDATABLE = {"display_name", "description", "temperature", "top_p", "top_k"}


def _base_model(model_id: str, base_model_id: str, version: str, display: str, description: str,
                limits: tuple[int, int], methods: list[str]) -> dict:
    return {
        "name": f"models/{model_id}", "baseModelId": base_model_id, "version": version, "displayName": display,
        "description": description, "inputTokenLimit": limits[0], "outputTokenLimit": limits[1],
        "supportedGenerationMethods": methods, "temperature": 1.0, "maxTemperature": 2.0, "topP": 0.95, "topK": 64,
    }


BASE_MODELS: list[dict] = [
    _base_model("gemini-1.5-flash-001", "gemini-1.5-flash", "001", "Gemini 1.5 Flash 001",
                "Fast and versatile multimodal model.", (1_000_000, 8192),
                ["generateContent", "countTokens", "createCachedContent"]),
    _base_model("gemini-1.5-flash-001-tuning", "gemini-1.5-flash", "001", "Gemini 1.5 Flash 001 Tuning",
                "Version of Gemini 1.5 Flash that supports tuning.", (16_384, 8192),
                ["generateContent", "countTokens", "createTunedModel"]),
    _base_model("gemini-2.5-flash", "gemini-2.5-flash", "2.5", "Gemini 2.5 Flash",
                "Stable version of Gemini 2.5 Flash.", (1_048_576, 65_536),
                ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]),
]


def _invalid(field_path: str, message: str) -> GoogleError:
    return GoogleError.invalid(message, field_path)


def _unregistered_caller() -> GoogleError:
    return GoogleError("PERMISSION_DENIED",
                       "Method doesn't allow unregistered callers (callers without established identity). "
                       "Please use API Key or other form of API consumer identity to call this API.")


def _invalid_key() -> GoogleError:
    message = "API key not valid. Please pass a valid API key."
    return GoogleError("INVALID_ARGUMENT", message, [
        {"@type": TYPE_PREFIX + "google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
         "metadata": {"service": SERVICE}},
        {"@type": TYPE_PREFIX + "google.rpc.LocalizedMessage", "locale": "en-US", "message": message},
    ])


def _get(message: dict, camel: str, default: Any = None) -> Any:
    """A proto JSON field: parsers accept the lowerCamel and the original snake_case spelling."""
    if camel in message:
        return message[camel]
    return message.get(snake_case(camel), default)


def _arg(request: Request, camel: str, default: str = "") -> str:
    """A query parameter, in either spelling."""
    return request.arg(camel) or request.arg(snake_case(camel)) or default


def _api_key(request: Request) -> str:
    return request.headers.get("x-goog-api-key") or request.arg("key") or ""


def _int_enums(request: Request) -> bool:
    """Whether the client asked for enums as numbers ($alt=json;enum-encoding=int), as the SDK does."""
    return "enum-encoding=int" in (request.arg("$alt") or "")


@dataclass
class _Record:
    """One tuned model and its job, persisted as is. Times are the emulator's (common.EmulatedTime)."""

    id: str
    base_model: str
    display_name: str
    description: str
    temperature: float
    top_p: float
    top_k: int
    epoch_count: int
    batch_size: int
    learning_rate: float
    examples: list[tuple[str, str]]
    owner: str  # the API key that created it: concurrent-job quota is per key
    operation_id: str
    duration: float  # job_seconds when it was created
    create_time: float  # the job started then
    update_time: float
    seq: int  # creation order: list order and page tokens
    training_seed: int
    failure: str | None = None  # the FAILED message, known at create time (poison example)
    failure_index: int | None = None
    snapshots: list[dict] = field(default_factory=list)  # filled once an epoch has passed and the model is trained

    @property
    def name(self) -> str:
        return f"tunedModels/{self.id}"

    @property
    def cache_key(self) -> str:
        return f"{self.id}#{self.seq}"  # a deleted and re-created id must not reuse the old weights

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.examples) / self.batch_size)

    @property
    def total_steps(self) -> int:
        return self.epoch_count * self.steps_per_epoch

    @classmethod
    def from_json(cls, data: dict) -> _Record:
        return cls(**{**data, "examples": [tuple(pair) for pair in data["examples"]]})


def _new_counters() -> dict:
    return {
        "requests": 0, "faults_unavailable": 0, "faults_slow": 0, "ambiguous_creates": 0,
        "create_calls": 0, "creates": 0, "creates_by_id": {}, "list_calls": 0, "get_calls": 0,
        "update_calls": 0, "delete_calls": 0, "operation_calls": 0, "generate_calls": 0,
        "model_list_calls": 0, "model_get_calls": 0, "model_generate_calls": 0, "errors_by_status": {},
    }


class GeminiEmulator(Emulator):
    """The emulator. `start()` serves it on 127.0.0.1; use it as a context manager in tests.

    Options beyond common.Emulator's: `api_keys` (None accepts any non-empty key). A fault_rate also slows half as
    many answers down by fault_delay_seconds.
    """

    thread_name = "gemini-emulator"
    errors = GoogleError
    title = "Gemini API emulator"

    def __init__(self, port: int = 0, *, api_keys: set[str] | None = None, fault_rate: float = 0.0, **options: Any):
        super().__init__(port, fault_rate=fault_rate, slow_rate=fault_rate / 2, **options)
        self.api_keys = api_keys
        self._names = random.Random(f"names:{self.seed}")
        self._models: dict[str, _Record] = {}
        self._trained = TrainedModels()
        self._counters = _new_counters()
        self._seq = 0
        model_id, tuned = r"/v1beta/models/(?P<model>[^/:]+)", r"/v1beta/tunedModels/(?P<id>[^/:]+)"
        self._routes = routes([
            ("GET", r"/v1beta/models", "model_list_calls", self._list_models),
            ("GET", model_id, "model_get_calls", self._get_model),
            ("POST", model_id + ":generateContent", "model_generate_calls", self._generate_with_base_model),
            ("GET", r"/v1beta/tunedModels", "list_calls", self._list_tuned_models),
            ("POST", r"/v1beta/tunedModels", "create_calls", self._create_tuned_model),
            ("GET", tuned, "get_calls", self._get_tuned_model),
            ("PATCH", tuned, "update_calls", self._update_tuned_model),
            ("DELETE", tuned, "delete_calls", self._delete_tuned_model),
            ("POST", tuned + ":generateContent", "generate_calls", self._generate_content),
            ("GET", tuned + "/operations", "operation_calls", self._list_operations),
            ("GET", tuned + "/operations/(?P<op>[^/:]+)", "operation_calls", self._get_operation),
        ])

    @property
    def stats(self) -> dict:
        """A snapshot: call counters, accepted creates per tuned model id, and current counts by state."""
        with self._lock:
            snapshot = copy.deepcopy(self._counters)
            now = self._now()
            states = {CREATING: 0, ACTIVE: 0, FAILED: 0}
            for model in self._models.values():
                states[self._state(model, now)] += 1
            snapshot["states"] = states
            snapshot["tuned_models"] = len(self._models)
        return snapshot

    # -- what common.Emulator asks ---------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        key = _api_key(request)
        if not key:
            raise _unregistered_caller()
        if self.api_keys is not None and key not in self.api_keys:
            raise _invalid_key()

    def _count(self, counter: str) -> None:
        with self._lock:
            self._counters[counter] += 1

    def _count_error(self, error: GoogleError) -> None:  # type: ignore[override]
        with self._lock:
            counts = self._counters["errors_by_status"]
            counts[error.status] = counts.get(error.status, 0) + 1

    # -- base models -------------------------------------------------------------------------------

    def _list_models(self, request: Request) -> dict:
        numbered = list(enumerate(BASE_MODELS, start=1))
        page, token = _page(request, "models", numbered, lambda pair: pair[0], MODEL_PAGE)
        response: dict[str, Any] = {"models": copy.deepcopy([model for _, model in page])}
        if token:
            response["nextPageToken"] = token
        return response

    def _get_model(self, request: Request) -> dict:
        return copy.deepcopy(_find_base_model(f"models/{request.params['model']}"))

    def _generate_with_base_model(self, request: Request) -> dict:
        _find_base_model(f"models/{request.params['model']}")
        raise GoogleError("UNIMPLEMENTED", "The emulator answers generateContent for tuned models only.")

    # -- tuned models: create ----------------------------------------------------------------------

    def _create_tuned_model(self, request: Request) -> dict:
        wanted_id = _arg(request, "tunedModelId")
        if wanted_id and not TUNED_MODEL_ID.fullmatch(wanted_id):
            raise _invalid("tuned_model_id", f"tunedModelId '{wanted_id}' is invalid: it must match "
                           f"{TUNED_MODEL_ID.pattern} (lowercase letters, digits and hyphens, up to 40 characters).")
        fields = self._parse_new_model(request.json())
        with self._lock:
            now = self._now()
            model_id = wanted_id or self._generate_id(fields["display_name"])
            if model_id in self._models:
                raise GoogleError("ALREADY_EXISTS", f"Tuned model tunedModels/{model_id} already exists.")
            self._check_quota(_api_key(request), now)
            model = self._add_model(model_id, fields, _api_key(request), now)
            ambiguous = self._ambiguous(request)
        if ambiguous:  # the job was accepted, but the client only sees a 503
            raise GoogleError.unavailable()
        self._settle([model])
        with self._lock:
            return self._operation_json(model, self._now(), _int_enums(request))

    def _parse_new_model(self, body: dict) -> dict:
        _reject_unknown_fields(body)
        if _get(body, "tunedModelSource"):
            raise _invalid("tuned_model.tuned_model_source",
                           "Tuning a tuned model is not supported: set tuned_model.base_model to a base model.")
        base = _get(body, "baseModel", "")
        if not base:
            raise _invalid("tuned_model.base_model", "tuned_model.base_model is required.")
        base_model = _find_base_model(base, method="createTunedModel")
        if "createTunedModel" not in base_model["supportedGenerationMethods"]:
            raise _invalid("tuned_model.base_model",
                           f"Base model {base} does not support tuning: createTunedModel is not among its "
                           "supportedGenerationMethods. Use models/gemini-1.5-flash-001-tuning.")
        display_name = _display_name(body)
        task = _get(body, "tuningTask") or {}
        examples = _parse_examples(task)
        hyper = _parse_hyperparameters(_get(task, "hyperparameters") or {}, len(examples))
        return {
            "base_model": base, "display_name": display_name, "description": str(_get(body, "description", "")),
            "temperature": float(_get(body, "temperature", base_model["temperature"])),
            "top_p": float(_get(body, "topP", base_model["topP"])),
            "top_k": int(_get(body, "topK", base_model["topK"])),
            "examples": examples, **hyper,
        }

    def _generate_id(self, display_name: str) -> str:
        """As Google does: the display name's words joined by hyphens plus a random part, else all random."""
        slug = "-".join(re.findall(r"[a-z0-9]+", display_name.lower()))[:34].strip("-")
        if slug and not slug[0].isalpha():
            slug = f"m-{slug}"[:34].strip("-")
        alphabet = string.ascii_lowercase + string.digits
        while True:
            if slug:
                candidate = f"{slug}-{''.join(self._names.choices(alphabet, k=5))}"
            else:
                candidate = self._names.choice(string.ascii_lowercase) + "".join(self._names.choices(alphabet, k=10))
            if candidate not in self._models:
                return candidate

    def _check_quota(self, key: str, now: float) -> None:
        running = [m for m in self._models.values() if m.owner == key and self._state(m, now) == CREATING]
        if len(running) < self.quota:
            return
        wait = min(m.duration - (now - m.create_time) for m in running)
        raise GoogleError("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", [
            {"@type": TYPE_PREFIX + "google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": f"{SERVICE}/tuning_jobs_in_progress", "quotaId": "ConcurrentTuningJobsPerApiKey",
                "quotaValue": str(self.quota),
                "description": f"At most {self.quota} tuning jobs may be in progress at once; {len(running)} are.",
            }]},
            {"@type": TYPE_PREFIX + "google.rpc.Help", "links": [
                {"description": "Learn more about Gemini API quotas",
                 "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
            {"@type": TYPE_PREFIX + "google.rpc.RetryInfo", "retryDelay": f"{max(1, math.ceil(wait))}s"},
        ])

    def _add_model(self, model_id: str, fields: dict, owner: str, now: float) -> _Record:
        self._seq += 1
        failure_index = next((i for i, (_, out) in enumerate(fields["examples"]) if out == POISON_OUTPUT), None)
        model = _Record(
            id=model_id, owner=owner, operation_id=self._operation_id(), duration=self.job_seconds,
            create_time=now, update_time=now, seq=self._seq, training_seed=self.seed,
            failure_index=failure_index, **fields,
        )
        if failure_index is not None:
            model.failure = (f"Tuning job for {model.name} failed: training example {failure_index} could not be "
                             f"processed (its output is the emulator failure marker {POISON_OUTPUT!r}).")
        self._models[model_id] = model
        self._counters["creates"] += 1
        by_id = self._counters["creates_by_id"]
        by_id[model_id] = by_id.get(model_id, 0) + 1
        self._save()
        return model

    def _operation_id(self) -> str:
        return "".join(self._names.choices(string.ascii_lowercase + string.digits, k=12))

    # -- tuned models: read, update, delete ----------------------------------------------------------

    def _get_tuned_model(self, request: Request) -> dict:
        model = self._lookup(request.params["id"])
        self._settle([model])
        with self._lock:
            return self._tuned_model_json(model, self._now(), _int_enums(request))

    def _list_tuned_models(self, request: Request) -> dict:
        with self._lock:
            models = list(self._models.values())
        page, token = _page(request, "tunedModels", models, lambda m: m.seq, TUNED_PAGE)
        self._settle(page)
        with self._lock:
            now = self._now()
            response: dict[str, Any] = {}
            if page:  # Google omits empty repeated fields: an empty list is {}
                response["tunedModels"] = [self._tuned_model_json(m, now, _int_enums(request)) for m in page]
            if token:
                response["nextPageToken"] = token
        return response

    def _update_tuned_model(self, request: Request) -> dict:
        body = request.json()
        _reject_unknown_fields(body)
        paths = _update_paths(_arg(request, "updateMask"), body)
        changes = {path: _updated_value(path, body) for path in paths}
        with self._lock:
            model = self._lookup(request.params["id"])
            for path, value in changes.items():
                setattr(model, path, value)
            model.update_time = self._now()
            self._save()
        self._settle([model])
        with self._lock:
            return self._tuned_model_json(model, self._now(), _int_enums(request))

    def _delete_tuned_model(self, request: Request) -> dict:
        with self._lock:
            model = self._lookup(request.params["id"])
            del self._models[model.id]
            self._trained.forget(model.cache_key)
            self._save()
        return {}

    def _get_operation(self, request: Request) -> dict:
        model = self._lookup(request.params["id"])
        if request.params["op"] != model.operation_id:
            raise GoogleError("NOT_FOUND", f"Operation {model.name}/operations/{request.params['op']} not found.")
        self._settle([model])
        with self._lock:
            return self._operation_json(model, self._now(), _int_enums(request))

    def _list_operations(self, request: Request) -> dict:
        model = self._lookup(request.params["id"])
        self._settle([model])
        with self._lock:
            return {"operations": [self._operation_json(model, self._now(), _int_enums(request))]}

    def _lookup(self, model_id: str) -> _Record:
        with self._lock:
            model = self._models.get(model_id)
        if model is None:
            raise GoogleError("NOT_FOUND", f"Tuned model tunedModels/{model_id} does not exist.")
        return model

    # -- generation --------------------------------------------------------------------------------

    def _generate_content(self, request: Request) -> dict:
        model = self._lookup(request.params["id"])
        state = self._state(model, self._now())
        if state != ACTIVE:
            raise GoogleError("FAILED_PRECONDITION", f"Tuned model {model.name} is not ready for use: its state is "
                           f"{state}. Wait until the tuning job finishes and the state is ACTIVE.")
        prompt = _prompt_text(request.json())
        answer = self._ensure_trained(model).predict(prompt)
        return {
            "candidates": [{
                "content": {"parts": [{"text": answer}], "role": "model"},
                "finishReason": FINISH_STOP[1] if _int_enums(request) else FINISH_STOP[0],
                "index": 0,
            }],
            "usageMetadata": usage(prompt, answer),
            "modelVersion": model.name,
        }

    # -- job lifecycle and training ----------------------------------------------------------------

    def _state(self, model: _Record, now: float) -> str:
        if now - model.create_time < model.duration:
            return CREATING
        return FAILED if model.failure else ACTIVE

    def _settle(self, models: Iterable[_Record]) -> None:
        """Train each model that has shown an epoch but was not trained yet (outside the main lock): its loss
        snapshots are published epoch by epoch as the job's time passes, as Google's are."""
        now = self._now()
        for model in models:
            if not model.snapshots and not model.failure and self._epochs_done(model, now):
                self._ensure_trained(model)

    @staticmethod
    def _epochs_done(model: _Record, now: float) -> int:
        if model.duration <= 0:
            return model.epoch_count
        return min(model.epoch_count, math.floor(model.epoch_count * (now - model.create_time) / model.duration))

    def _published(self, model: _Record, now: float) -> list[dict]:
        """The snapshots of the epochs whose time has passed."""
        done = self._epochs_done(model, now)
        return [copy.deepcopy(snapshot) for snapshot in model.snapshots if snapshot["epoch"] <= done]

    def _ensure_trained(self, model: _Record) -> trainer.TunedModel:
        return self._trained.get(model.cache_key, lambda: self._train(model))

    def _train(self, model: _Record) -> trainer.TunedModel:
        """Train on the job's examples; the first training also records the job's loss snapshots."""
        losses: list[tuple[int, float]] = []
        tuned = trainer.train(model.examples, model.epoch_count, model.batch_size, model.learning_rate,
                              seed=model.training_seed, on_epoch=lambda epoch, loss: losses.append((epoch, loss)))
        with self._lock:
            if not model.snapshots and self._models.get(model.id) is model:
                model.snapshots = self._snapshots(model, losses)
                self._save()
        return tuned

    def _snapshots(self, model: _Record, losses: list[tuple[int, float]]) -> list[dict]:
        return [{
            "step": epoch * model.steps_per_epoch, "epoch": epoch, "meanLoss": loss,
            "computeTime": rfc3339(model.create_time + model.duration * epoch / model.epoch_count),
        } for epoch, loss in losses]

    def _progress(self, model: _Record, now: float) -> tuple[int, float]:
        """(completedSteps, completedPercent). A failed job stops at its poisoned example's first batch."""
        state = self._state(model, now)
        if state == ACTIVE:
            return model.total_steps, 100.0
        if state == FAILED:
            steps = (model.failure_index or 0) // model.batch_size
        else:
            fraction = (now - model.create_time) / model.duration if model.duration > 0 else 1.0
            steps = int(model.total_steps * max(0.0, min(fraction, 1.0)))
        return steps, 100.0 * steps / model.total_steps

    def _tuned_model_json(self, model: _Record, now: float, int_enums: bool) -> dict:
        state = self._state(model, now)
        task: dict[str, Any] = {
            "startTime": rfc3339(model.create_time),
            "hyperparameters": {"epochCount": model.epoch_count, "batchSize": model.batch_size,
                                "learningRate": model.learning_rate},
        }
        update_time = model.update_time
        if state != CREATING:
            complete = model.create_time + model.duration
            task["completeTime"] = rfc3339(complete)
            update_time = max(update_time, complete)
        if snapshots := self._published(model, now):
            task["snapshots"] = snapshots
        # trainingData is input-only: Google never returns it (and the SDK's TuningTask would reject it).
        return {
            "name": model.name, "baseModel": model.base_model, "displayName": model.display_name,
            "description": model.description, "temperature": model.temperature, "topP": model.top_p,
            "topK": model.top_k, "state": STATE_NUMBERS[state] if int_enums else state,
            "createTime": rfc3339(model.create_time), "updateTime": rfc3339(update_time), "tuningTask": task,
        }

    def _operation_json(self, model: _Record, now: float, int_enums: bool) -> dict:
        steps, percent = self._progress(model, now)
        metadata: dict[str, Any] = {
            "@type": METADATA_TYPE, "tunedModel": model.name, "totalSteps": model.total_steps,
            "completedSteps": steps, "completedPercent": percent,
        }
        if snapshots := self._published(model, now):
            metadata["snapshots"] = snapshots
        operation: dict[str, Any] = {"name": f"{model.name}/operations/{model.operation_id}", "metadata": metadata}
        state = self._state(model, now)
        if state == CREATING:
            return operation
        operation["done"] = True
        if state == FAILED:
            operation["error"] = {"code": STATUS_CODES["INVALID_ARGUMENT"][1], "message": model.failure}
        else:
            operation["response"] = {"@type": TUNED_MODEL_TYPE, **self._tuned_model_json(model, now, int_enums)}
        return operation

    # -- persistence -------------------------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        return {
            "version": 2, "seq": self._seq, "counters": self._counters,
            "tunedModels": [asdict(m) for m in sorted(self._models.values(), key=lambda m: m.seq)],
        }

    def _restore(self, snapshot: dict[str, Any]) -> None:
        models = {m["id"]: _Record.from_json(m) for m in snapshot["tunedModels"]}
        with self._lock:
            self._seq = snapshot["seq"]
            self._counters = {**_new_counters(), **snapshot["counters"]}
            self._models = models


# -- request parsing helpers ------------------------------------------------------------------------


def _find_base_model(name: str, method: str = "getModel") -> dict:
    for model in BASE_MODELS:
        if model["name"] == name:
            return model
    raise GoogleError("NOT_FOUND", f"{name} is not found for API version v1beta, or is not supported for {method}. "
                   "Call ListModels to see the list of available models and their supported methods.")


def _reject_unknown_fields(body: dict) -> None:
    for key in body:
        if key not in _TUNED_MODEL_FIELDS and key not in _TUNED_MODEL_SNAKE_FIELDS:
            message = f"Invalid JSON payload received. Unknown name \"{key}\" at 'tuned_model': Cannot find field."
            raise _invalid(f"tuned_model.{key}", message)


def _display_name(body: dict) -> str:
    display_name = str(_get(body, "displayName", ""))
    if len(display_name) > MAX_DISPLAY_NAME:
        raise _invalid("tuned_model.display_name", f"tuned_model.display_name must be at most {MAX_DISPLAY_NAME} "
                       f"characters; it has {len(display_name)}.")
    return display_name


def _parse_examples(task: dict) -> list[tuple[str, str]]:
    dataset = _get(task, "trainingData") or {}
    raw = (_get(dataset, "examples") or {}).get("examples") or []
    if not raw:
        raise _invalid("tuned_model.tuning_task.training_data",
                       "tuned_model.tuning_task.training_data must contain at least one example.")
    examples = []
    for index, example in enumerate(raw):
        where = f"tuned_model.tuning_task.training_data.examples.examples[{index}]"
        text_input, output = _get(example, "textInput", ""), _get(example, "output", "")
        for name, value, limit in (("text_input", text_input, MAX_INPUT_CHARS), ("output", output, MAX_OUTPUT_CHARS)):
            if not isinstance(value, str) or not value.strip():
                raise _invalid(f"{where}.{name}", f"Training example {index}: {name} must not be empty.")
            if len(value) > limit:
                raise _invalid(f"{where}.{name}", f"Training example {index}: {name} has {len(value)} characters; "
                               f"the limit is {limit}.")
        examples.append((text_input, output))
    return examples


def _parse_hyperparameters(hyper: dict, example_count: int) -> dict:
    where = "tuned_model.tuning_task.hyperparameters"
    large = example_count > LARGE_DATASET
    learning_rate, multiplier = _get(hyper, "learningRate"), _get(hyper, "learningRateMultiplier")
    if learning_rate is not None and multiplier is not None:
        raise _invalid(f"{where}.learning_rate", "Set learning_rate or learning_rate_multiplier, not both.")
    default_rate = 0.0002 if large else 0.001
    values = {
        "epoch_count": _number(hyper, "epochCount", DEFAULT_EPOCHS, int, where),
        "batch_size": _number(hyper, "batchSize", 16 if large else 4, int, where),
        "learning_rate": (_number(hyper, "learningRateMultiplier", 1.0, float, where) * default_rate
                          if multiplier is not None else _number(hyper, "learningRate", default_rate, float, where)),
    }
    return values


def _number(message: dict, camel: str, default: float, kind: type, where: str) -> Any:
    raw = _get(message, camel)
    if raw is None:
        return default
    field_path = f"{where}.{snake_case(camel)}"
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise _invalid(field_path, f"{field_path} must be a number, got {raw!r}.") from None
    if kind is int and value != float(raw):
        raise _invalid(field_path, f"{field_path} must be a whole number, got {raw!r}.")
    if not value > 0:
        raise _invalid(field_path, f"{field_path} must be positive, got {raw!r}.")
    return value


def _update_paths(mask: str, body: dict) -> list[str]:
    """The snake_case paths to update: the updateMask (the SDK sends lowerCamel), else the fields present."""
    paths = [snake_case(p.strip()) for p in mask.split(",") if p.strip()] if mask else [
        snake_case(key) for key in body if snake_case(key) in _UPDATABLE]
    refused = [p for p in paths if p not in _UPDATABLE]
    if refused:
        raise _invalid("update_mask", f"update_mask contains fields that cannot be updated: {', '.join(refused)}. "
                       f"Updatable fields: {', '.join(sorted(_UPDATABLE))}.")
    return paths


def _updated_value(path: str, body: dict) -> Any:
    value = body.get(path, body.get(re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)))
    if path == "display_name":
        return _display_name({"displayName": value or ""})
    if path == "description":
        return str(value or "")
    if value is None:
        raise _invalid(f"tuned_model.{path}", f"tuned_model.{path} is in update_mask but has no value.")
    return int(value) if path == "top_k" else float(value)


def _prompt_text(body: dict) -> str:
    contents = _get(body, "contents") or []
    if not contents:
        raise _invalid("contents", "* GenerateContentRequest.contents: contents is not specified\n")
    parts = contents[-1].get("parts") or []
    text = "\n".join(part["text"] for part in parts if isinstance(part.get("text"), str))
    if not text:
        raise _invalid(f"contents[{len(contents) - 1}].parts",
                       f"* GenerateContentRequest.contents[{len(contents) - 1}].parts: contents.parts must not be "
                       "empty.\n")
    return text


def _page(request: Request, kind: str, items: Iterable[Any], position: Any, sizes: tuple[int, int]
          ) -> tuple[list[Any], str | None]:
    """A page of ITEMS in order of POSITION (their creation order) and the token of the next one, if any."""
    return cursor_page(items, position, kind, _arg(request, "pageToken"), _page_size(request, *sizes),
                       lambda: _invalid("page_token", "Invalid page token."))


def _page_size(request: Request, default: int, maximum: int) -> int:
    raw = _arg(request, "pageSize")
    if raw in ("", "0"):
        return default
    try:
        size = int(raw)
    except ValueError:
        raise _invalid("page_size", f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"") from None
    if size < 0:
        raise _invalid("page_size", "page_size must not be negative.")
    return min(size, maximum)


serve = GeminiEmulator.serve  # `tuner emulator gemini`
