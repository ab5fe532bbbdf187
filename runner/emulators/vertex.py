"""A loopback emulator of the Vertex AI tuning-jobs REST surface, as the google-genai SDK uses it in Vertex mode.

Point the real SDK at it with
`genai.Client(vertexai=True, project=P, location=L, credentials=Credentials(token="t"),
http_options=types.HttpOptions(base_url=emulator.url))`. It serves (under /v1beta1 and /v1):

    POST   projects/P/locations/L/tuningJobs                  client.tunings.tune
    GET    projects/P/locations/L/tuningJobs?pageSize&pageToken client.tunings.list (real paging)
    GET    projects/P/locations/L/tuningJobs/ID               client.tunings.get
    POST   projects/P/locations/L/tuningJobs/ID:cancel        client.tunings.cancel
    GET    projects/P/locations/L/models?filter&pageSize&pageToken   client.models.list(config={"query_base": False})
    GET    projects/P/locations/L/models/ID[@1]               client.models.get
    PATCH  projects/P/locations/L/models/ID[@1]               client.models.update
    DELETE projects/P/locations/L/models/ID[@1]               client.models.delete (refused while deployed)
    POST   projects/P/locations/L/endpoints/E:generateContent client.models.generate_content(model=endpoint)
    GET    projects/P/locations/L/endpoints/E                 endpoints.get (REST; google-genai has no call)
    DELETE projects/P/locations/L/endpoints/E                 endpoints.delete (refused while a model is deployed)
    POST   projects/P/locations/L/endpoints/E:undeployModel   endpoints.undeployModel (an operation, done shortly)
    GET    projects/P/locations/L/.../operations/O            operations.get
    GET    /_emulator/stats                                   counters (no auth, never faulted)

Jobs move PENDING -> RUNNING -> SUCCEEDED lazily, by the injectable clock, whenever a request looks at them. The
training JSONL is read from GCS when a job starts running (a missing, unreadable or poisoned dataset fails the job,
as Vertex's dataset validation does), and a job that succeeds trains runner.trainer on it, so its endpoint answers
generateContent with real predictions. A job's labels are copied to the model and the endpoint it generates (the
API's TuningJob.labels: "to organize TuningJob and generated resources such as Model and Endpoint"). A deployed
model cannot be deleted (FAILED_PRECONDITION, as models.delete documents) until undeployModel's operation is done.
Request bodies with a field the API does not define, and list filters it cannot parse, are refused with 400 as the
API does. Errors use Google's body shape `{"error": {"code", "message", "status"}}`. Routes, request fields and
enum values are checked against Google's discovery document by tests/test_vertex_emulator.py. Faults (fault_rate,
ambiguous_create_rate, fail_next) are common.Faults: drawn from the seed, the request and its attempt, so they do
not depend on how concurrent requests interleave.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from runner.emulators.common import POISON_OUTPUT, Emulator, Request, Route, TrainedModels, routes
from runner.emulators.google import GoogleError, cursor_page, rfc3339, snake_case, usage
from runner.trainer import TunedModel, train

__all__ = ["PARTIAL_OUTPUT", "POISON_OUTPUT", "VertexEmulator", "parse_dataset", "parse_gcs_uri", "serve"]
PARTIAL_OUTPUT = "__tuner_emulator_unusable__"  # such examples are skipped: the job ends PARTIALLY_SUCCEEDED

PENDING, RUNNING, SUCCEEDED = "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"
FAILED, CANCELLED = "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"
PARTIALLY_SUCCEEDED = "JOB_STATE_PARTIALLY_SUCCEEDED"
BATCH_SIZE = 8  # the emulator's training batch: a job's steps are its epochs of ceil(examples / BATCH_SIZE)
ACTIVE_STATES = frozenset({PENDING, RUNNING})
JOB_STATES = frozenset({PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED, PARTIALLY_SUCCEEDED})
UNDEPLOY_SECONDS = 0.5  # undeployModel is a long-running operation: the model stays deployed until it is done

# The writable fields of each request message (from the aiplatform v1beta1 discovery document); a nested message
# is named by its schema, None accepts any value. A field outside these is refused as the API refuses it.
REQUEST_FIELDS: dict[str, dict[str, str | None]] = {
    "TuningJob": dict.fromkeys((
        "baseModel", "customBaseModel", "description", "distillationSpec", "encryptionSpec", "fullFineTuningSpec",
        "labels", "outputUri", "partnerModelTuningSpec", "preTunedModel", "preferenceOptimizationSpec",
        "reinforcementTuningSpec", "serviceAccount", "tunedModelDisplayName", "veoLoraTuningSpec", "veoTuningSpec"))
    | {"supervisedTuningSpec": "SupervisedTuningSpec"},
    "SupervisedTuningSpec": dict.fromkeys(("evaluationConfig", "exportLastCheckpointOnly", "trainingDatasetUri",
                                           "tuningMode", "validationDatasetUri")) | {
        "hyperParameters": "SupervisedHyperParameters"},
    "SupervisedHyperParameters": dict.fromkeys(("adapterSize", "batchSize", "epochCount", "learningRate",
                                                "learningRateMultiplier")),
    "Model": dict.fromkeys(("artifactUri", "baseModelSource", "containerSpec", "defaultCheckpointId", "description",
                            "displayName", "encryptionSpec", "etag", "explanationSpec", "labels", "metadata",
                            "metadataSchemaUri", "name", "predictSchemata", "versionAliases", "versionDescription")),
    "UndeployModelRequest": dict.fromkeys(("deployedModelId", "trafficSplit")),
    "GenerateContentRequest": dict.fromkeys((
        "cachedContent", "contents", "continuationToken", "generationConfig", "labels", "modelArmorConfig",
        "outputConfig", "safetySettings", "systemInstruction", "toolConfig", "tools")),
}
# Each route's method in the discovery document ("resource.method" -> HTTP method), checked by the tests.
PUBLISHED_METHODS = {
    "tuningJobs.create": "POST", "tuningJobs.list": "GET", "tuningJobs.get": "GET", "tuningJobs.cancel": "POST",
    "models.list": "GET", "models.get": "GET", "models.patch": "PATCH", "models.delete": "DELETE",
    "endpoints.generateContent": "POST", "endpoints.get": "GET", "endpoints.delete": "DELETE",
    "endpoints.undeployModel": "POST", "endpoints.operations.get": "GET",
}

TUNABLE_BASE_MODELS = frozenset({
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash-001",
    "gemini-2.0-flash-lite-001",
})
# SupervisedHyperParameters.AdapterSize values Vertex accepts for Gemini (THIRTY_TWO is rejected for these bases).
ADAPTER_SIZES = frozenset({"ADAPTER_SIZE_ONE", "ADAPTER_SIZE_TWO", "ADAPTER_SIZE_FOUR",
                           "ADAPTER_SIZE_EIGHT", "ADAPTER_SIZE_SIXTEEN"})
DEFAULT_EPOCH_COUNT = 5
DEFAULT_ADAPTER_SIZE = "ADAPTER_SIZE_FOUR"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_DISPLAY_NAME = 128
_ID_BASE = 4_000_000_000_000_000_000  # Vertex resource ids are 19-digit numbers

# google.rpc.Code values used in TuningJob.error (not HTTP statuses).
_RPC_CANCELLED, _RPC_INVALID_ARGUMENT, _RPC_INTERNAL = 1, 3, 13
_LABEL_FILTER = re.compile(r'labels\.([a-z0-9_-]+)(?::\*|=(?:"([^"\\]*)"|([A-Za-z0-9_.-]+)))|labels:([a-z0-9_-]+)')

_UNAUTHENTICATED_MESSAGE = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)

StorageClientFactory = Callable[[], Any]  # returns a google.cloud.storage.Client


def _invalid(message: str) -> GoogleError:
    return GoogleError.invalid(message)


def _not_found(message: str) -> GoogleError:
    return GoogleError.not_found(message)


class DatasetProblem(Exception):
    """The training or validation dataset cannot be used; the job fails with this message."""


@dataclass
class _Located:
    """A resource under projects/P/locations/L, named COLLECTION/ID there."""

    collection: ClassVar[str]
    id: str
    project: str
    location: str

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def name(self) -> str:
        return f"{self.parent}/{self.collection}/{self.id}"


@dataclass
class _Job(_Located):
    collection = "tuningJobs"
    base_model: str
    training_uri: str
    validation_uri: str | None
    display_name: str | None
    description: str | None
    epoch_count: int
    learning_rate_multiplier: float
    adapter_size: str
    labels: dict[str, str]
    create_time: float
    update_time: float
    state: str = PENDING
    start_time: float | None = None
    end_time: float | None = None
    error: dict[str, Any] | None = None
    model_id: str | None = None
    endpoint_id: str | None = None
    example_count: int | None = None
    character_count: int | None = None


@dataclass
class _Model(_Located):
    collection = "models"
    display_name: str
    description: str | None
    job_id: str
    base_model: str
    endpoint_id: str
    create_time: float
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class _Endpoint(_Located):
    collection = "endpoints"
    display_name: str
    labels: dict[str, str]
    deployed: dict[str, str]  # deployed model id -> model id
    create_time: float


@dataclass
class _Operation:
    id: str
    resource: str  # the resource it acts on; the operation is named under it
    kind: str  # the metadata type, e.g. UndeployModelOperationMetadata
    done_at: float
    undeploy: list[str] | None = None  # [endpoint id, deployed model id], removed once done

    @property
    def name(self) -> str:
        return f"{self.resource}/operations/{self.id}"


@dataclass
class _State:
    jobs: dict[str, _Job] = field(default_factory=dict)
    models: dict[str, _Model] = field(default_factory=dict)
    endpoints: dict[str, _Endpoint] = field(default_factory=dict)
    operations: dict[str, _Operation] = field(default_factory=dict)
    next_id: int = 1


def parse_gcs_uri(uri: str) -> tuple[str, str]:
    """(bucket, object) of gs://bucket/object; ValueError otherwise."""
    match = re.fullmatch(r"gs://([^/]+)/(.+)", uri or "")
    if not match:
        raise ValueError(f"{uri!r} is not a gs://bucket/object URI")
    return match.group(1), match.group(2)


def _text_of(content: Any) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def parse_dataset(text: str, uri: str) -> list[tuple[str, str]]:
    """(input, output) pairs of a Gemini supervised-tuning JSONL: the last user turn before the last model turn.

    Raises DatasetProblem naming the line when a line is not such an example, or when any model turn is POISON_OUTPUT.
    """
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{uri} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetProblem(f"{where}: invalid JSON ({error.msg})") from error
        contents = record.get("contents") if isinstance(record, dict) else None
        if not isinstance(contents, list) or not contents:
            raise DatasetProblem(f"{where}: expected an object with a non-empty 'contents' list")
        roles = [c.get("role") if isinstance(c, dict) else None for c in contents]
        if any(role not in ("user", "model") for role in roles):
            raise DatasetProblem(f"{where}: every content needs role 'user' or 'model'")
        if roles[-1] != "model" or "user" not in roles:
            raise DatasetProblem(f"{where}: an example needs a user turn followed by a final model turn")
        if any(role == "model" and _text_of(c) == POISON_OUTPUT for role, c in zip(roles, contents)):
            raise DatasetProblem(f"{where}: the model output is {POISON_OUTPUT!r}; tuning failed on this example")
        last_user = max(i for i, role in enumerate(roles) if role == "user")
        examples.append((_text_of(contents[last_user]), _text_of(contents[-1])))
    if not examples:
        raise DatasetProblem(f"{uri}: the dataset has no examples")
    return examples


def default_storage_client() -> Any:
    """A GCS client: anonymous against STORAGE_EMULATOR_HOST when set, else application default credentials."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project="emulator", credentials=AnonymousCredentials())
    return storage.Client()


class VertexEmulator(Emulator):
    """The Vertex AI tuning-jobs emulator. Bind with start() (port 0 picks a free port); `url` is its base URL.

    Options beyond common.Emulator's: where datasets are read from (`storage_client_factory`), and
    `honour_filters=False` to ignore list filters (a caller must not depend on them).
    """

    thread_name = "vertex-emulator"
    errors = GoogleError
    title = "Vertex AI emulator"

    def __init__(self, port: int = 0, *, storage_client_factory: StorageClientFactory = default_storage_client,
                 honour_filters: bool = True, **options: Any):
        super().__init__(port, **options)
        self._honour_filters = honour_filters
        self._pending_seconds = self.job_seconds / 10  # "briefly": a tenth of the job
        self._storage_client_factory = storage_client_factory
        self._storage_client: Any = None
        self._state = _State()
        self._examples: dict[str, list[tuple[str, str]]] = {}  # job id -> training pairs (in memory only)
        self._trained = TrainedModels()  # model id -> trained model (retrained lazily after a restart or eviction)
        self._calls: Counter[str] = Counter()
        self._events: Counter[str] = Counter()
        self._rejected: Counter[int] = Counter()
        self._routes = self._build_routes()
        self._advanced_at = 0.0  # when the jobs were last advanced: a job's steps are counted at that time

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot: accepted creates, jobs per display name and dataset, calls per method, jobs per state."""
        with self._lock:
            self._advance_all()
            jobs = list(self._state.jobs.values())
            return {
                "create_accepted": len(jobs),
                "jobs_by_display_name": dict(Counter(j.display_name or "" for j in jobs)),
                "jobs_by_dataset": dict(Counter(j.training_uri for j in jobs)),
                "states": dict(Counter(j.state for j in jobs)),
                "calls": dict(self._calls),
                "rejected_by_status": {str(code): n for code, n in self._rejected.items()},
                "faults_injected": self._events["faults_unavailable"],
                "ambiguous_creates": self._events["ambiguous_creates"],
                "tuned_models": len(self._state.models),
                "endpoints": len(self._state.endpoints),
            }

    # ---- what common.Emulator asks ---------------------------------------------------------------------------

    def _admit(self, request: Request) -> None:
        self._authenticate(request)  # Vertex checks the credentials before anything else can fail
        self._faults.inject(request, self.errors)

    def _authenticate(self, request: Request) -> None:
        authorization = request.headers.get("Authorization")
        if not authorization or not authorization.startswith("Bearer ") or not authorization[7:].strip():
            raise GoogleError("UNAUTHENTICATED", _UNAUTHENTICATED_MESSAGE)

    def _dispatch(self, route: Route, request: Request) -> dict[str, Any]:
        with self._lock:  # one request at a time: jobs advance and train inside it
            self._calls[route.name] += 1
            self._advance_all()
            return route.handler(request)

    def _count(self, counter: str) -> None:
        with self._lock:
            self._events[counter] += 1

    def _count_error(self, error: GoogleError) -> None:  # type: ignore[override]
        with self._lock:
            self._rejected[error.http_code] += 1

    def _build_routes(self) -> list[Route]:
        parent = r"/v1(?:beta1)?/projects/(?P<project>[^/:]+)/locations/(?P<location>[^/:]+)"
        job = parent + r"/tuningJobs/(?P<id>[^/:]+)"
        model = parent + r"/models/(?P<id>[^/:@]+)(?:@(?P<version>[^/:]+))?"
        endpoint = parent + r"/endpoints/(?P<id>[^/:]+)"
        operation = parent + r"/(?:endpoints|models|tuningJobs)/[^/:]+/operations/(?P<id>[^/:]+)"
        return routes([
            ("POST", parent + "/tuningJobs", "create", self._create_job),
            ("GET", parent + "/tuningJobs", "list", self._list_jobs),
            ("GET", job, "get", self._get_job),
            ("POST", job + ":cancel", "cancel", self._cancel_job),
            ("GET", parent + "/models", "model_list", self._list_models),
            ("GET", model, "model_get", self._get_model),
            ("PATCH", model, "model_update", self._update_model),
            ("DELETE", model, "delete", self._delete_model),
            ("POST", endpoint + ":generateContent", "generate", self._generate),
            ("GET", endpoint, "endpoint_get", self._get_endpoint),
            ("DELETE", endpoint, "endpoint_delete", self._delete_endpoint),
            ("POST", endpoint + ":undeployModel", "undeploy", self._undeploy),
            ("GET", operation, "operation_get", self._get_operation),
        ])

    # ---- tuning jobs -----------------------------------------------------------------------------------------

    def _create_job(self, request: Request) -> dict[str, Any]:
        project, location = request.params["project"], request.params["location"]
        fields = self._validated_job_fields(_known_fields(request.json(), "TuningJob", "tuning_job"))
        active = sum(1 for j in self._state.jobs.values() if j.project == project and j.state in ACTIVE_STATES)
        if active >= self.quota:
            raise GoogleError("RESOURCE_EXHAUSTED", (
                f"Quota exceeded for concurrent tuning jobs in project {project}: {active} of {self.quota} "
                "are pending or running. Wait for one to finish or cancel one."))
        now = self._now()
        job = _Job(id=self._new_id(), project=project, location=location, create_time=now, update_time=now, **fields)
        self._state.jobs[job.id] = job
        self._save()
        if self._ambiguous(request):  # the job was accepted, but the client only sees a 503
            raise GoogleError.unavailable()
        return self._job_json(job)

    @staticmethod
    def _validated_job_fields(body: dict[str, Any]) -> dict[str, Any]:
        """_Job fields of a TuningJob body, validated like Vertex does: every field problem at once (BadRequest)."""
        violations: list[tuple[str, str]] = []
        base_model = body.get("baseModel")
        if not isinstance(base_model, str) or not base_model:
            violations.append(("tuning_job.base_model", "base_model is required."))
        elif base_model.rsplit("/", 1)[-1] not in TUNABLE_BASE_MODELS:
            violations.append(("tuning_job.base_model", f"Base model {base_model} is not supported for tuning."))
        spec = body.get("supervisedTuningSpec")
        if not isinstance(spec, dict):
            violations.append(("tuning_job.supervised_tuning_spec", "supervised_tuning_spec is required."))
            spec = {}
        for key, field_name in (("trainingDatasetUri", "training_dataset_uri"),
                                ("validationDatasetUri", "validation_dataset_uri")):
            uri = spec.get(key)
            if (uri is not None or key == "trainingDatasetUri") and not _is_jsonl_gcs_uri(uri):
                violations.append((f"tuning_job.supervised_tuning_spec.{field_name}",
                                   f"{field_name} should be a GCS object of type JSONL."))
        hyper = spec.get("hyperParameters") or {}
        epoch_count = _as_number(hyper.get("epochCount", DEFAULT_EPOCH_COUNT), int)
        if epoch_count is None or epoch_count <= 0:
            violations.append(("tuning_job.supervised_tuning_spec.hyper_parameters.epoch_count",
                               "epoch_count must be a positive integer."))
        multiplier = _as_number(hyper.get("learningRateMultiplier", 1.0), float)
        if multiplier is None or multiplier <= 0:
            violations.append(("tuning_job.supervised_tuning_spec.hyper_parameters.learning_rate_multiplier",
                               "learning_rate_multiplier must be positive."))
        display_name = body.get("tunedModelDisplayName")
        if display_name is not None and (not isinstance(display_name, str) or len(display_name) > MAX_DISPLAY_NAME):
            violations.append(("tuning_job.tuned_model_display_name",
                               f"tuned_model_display_name must be a string of at most {MAX_DISPLAY_NAME} characters."))
        if violations:
            raise _bad_request(violations)
        adapter_size = hyper.get("adapterSize") or DEFAULT_ADAPTER_SIZE
        if adapter_size == "ADAPTER_SIZE_UNSPECIFIED":
            adapter_size = DEFAULT_ADAPTER_SIZE
        if adapter_size not in ADAPTER_SIZES:
            raise _invalid("The adapter size is not supported for this base model.")
        return {
            "base_model": base_model, "training_uri": spec["trainingDatasetUri"],
            "validation_uri": spec.get("validationDatasetUri"), "display_name": display_name,
            "description": body.get("description"), "epoch_count": epoch_count,
            "learning_rate_multiplier": multiplier, "adapter_size": adapter_size,
            "labels": _string_map(body.get("labels")),
        }

    def _get_job(self, request: Request) -> dict[str, Any]:
        return self._job_json(self._find_job(request.params))

    def _list_jobs(self, request: Request) -> dict[str, Any]:
        return self._listed(request, "tuningJobs", self._state.jobs.values(), self._job_json)

    def _cancel_job(self, request: Request) -> dict[str, Any]:
        job = self._find_job(request.params)
        if job.state not in ACTIVE_STATES:
            raise GoogleError("FAILED_PRECONDITION",
                              f"Cannot cancel tuning job {job.name} because it is in state {job.state}.")
        self._end(job, self._now(), CANCELLED, {"code": _RPC_CANCELLED, "message": "CANCELED"})
        self._save()
        return {}

    def _find_job(self, params: dict[str, str]) -> _Job:
        job = self._state.jobs.get(params["id"])
        if not job or (job.project, job.location) != (params["project"], params["location"]):
            name = f"projects/{params['project']}/locations/{params['location']}/tuningJobs/{params['id']}"
            raise _not_found(f"TuningJob {name} does not exist.")
        return job

    def _job_json(self, job: _Job) -> dict[str, Any]:
        hyper = {"epochCount": str(job.epoch_count),  # int64 fields travel as JSON strings
                 "learningRateMultiplier": job.learning_rate_multiplier, "adapterSize": job.adapter_size}
        spec: dict[str, Any] = {"trainingDatasetUri": job.training_uri, "hyperParameters": hyper}
        if job.validation_uri:
            spec["validationDatasetUri"] = job.validation_uri
        result: dict[str, Any] = {
            "name": job.name,
            "baseModel": job.base_model,
            "supervisedTuningSpec": spec,
            "state": job.state,
            "createTime": rfc3339(job.create_time),
            "updateTime": rfc3339(job.update_time),
        }
        optional = {
            "tunedModelDisplayName": job.display_name,
            "description": job.description,
            "labels": job.labels or None,
            "startTime": rfc3339(job.start_time) if job.start_time is not None else None,
            "endTime": rfc3339(job.end_time) if job.end_time is not None else None,
            "error": job.error,
        }
        result.update({k: v for k, v in optional.items() if v is not None})
        if job.example_count is not None:
            steps_per_epoch = math.ceil(job.example_count / BATCH_SIZE)
            result["tuningDataStats"] = {"supervisedTuningDataStats": {
                "tuningDatasetExampleCount": str(job.example_count),
                "totalTuningCharacterCount": str(job.character_count or 0),
                "tuningStepCount": str(steps_per_epoch * job.epoch_count),
            }}
            if job.state in (RUNNING, SUCCEEDED):
                steps = self._completed_steps(job, steps_per_epoch * job.epoch_count)
                result["tuningJobMetadata"] = {"completedEpochCount": str(steps // steps_per_epoch),
                                               "completedStepCount": str(steps)}
        if job.state in (SUCCEEDED, PARTIALLY_SUCCEEDED) and job.model_id and job.endpoint_id:
            result["tunedModel"] = {"model": f"{job.parent}/models/{job.model_id}@1",
                                    "endpoint": f"{job.parent}/endpoints/{job.endpoint_id}"}
        return result

    def _completed_steps(self, job: _Job, total: int) -> int:
        """A running job's steps go by evenly from its start to its end; a succeeded one has done them all."""
        if job.state == SUCCEEDED:
            return total
        running = self.job_seconds - self._pending_seconds
        fraction = (self._advanced_at - job.start_time) / running if running > 0 else 1.0
        return min(total, math.floor(total * max(0.0, fraction)))

    # ---- lifecycle of a job, driven lazily by the clock ------------------------------------------------------

    def _advance_all(self) -> None:
        now = self._advanced_at = self._now()  # the request's time (a stepping test clock moves on each read)
        changed = [self._advance(job, now) for job in list(self._state.jobs.values())]
        changed += [self._complete(operation, now) for operation in self._state.operations.values()]
        if any(changed):
            self._save()

    def _advance(self, job: _Job, now: float) -> bool:
        before = job.state
        if job.state == PENDING and now >= job.create_time + self._pending_seconds:
            self._begin_running(job, job.create_time + self._pending_seconds)
        if job.state == RUNNING and now >= job.create_time + self.job_seconds:
            self._finish(job, job.create_time + self.job_seconds)
        return job.state != before

    def _complete(self, operation: _Operation, now: float) -> bool:
        if operation.undeploy is None or now < operation.done_at:
            return False
        endpoint_id, deployed_id = operation.undeploy
        endpoint = self._state.endpoints.get(endpoint_id)
        if endpoint is not None:
            endpoint.deployed.pop(deployed_id, None)
        operation.undeploy = None
        return True

    def _begin_running(self, job: _Job, at: float) -> None:
        job.state, job.start_time, job.update_time = RUNNING, at, at
        try:
            examples = self._training_examples(job)
            if job.validation_uri:
                parse_dataset(self._read_gcs(job.validation_uri), job.validation_uri)
        except DatasetProblem as problem:
            self._end(job, at, FAILED, {"code": _RPC_INVALID_ARGUMENT, "message": str(problem)})
            return
        job.example_count = len(examples)
        job.character_count = sum(len(i) + len(o) for i, o in examples)

    def _finish(self, job: _Job, at: float) -> None:
        try:
            model = self._train(job)
        except DatasetProblem as problem:
            self._end(job, at, FAILED, {"code": _RPC_INVALID_ARGUMENT, "message": str(problem)})
            return
        labels = {**job.labels, "google-vertex-llm-tuning-base-model-id":
                  job.base_model.rsplit("/", 1)[-1].replace(".", "-"),
                  "google-vertex-llm-tuning-job-id": job.id, "tune-type": "sft"}
        record = _Model(
            id=self._new_id(), project=job.project, location=job.location,
            display_name=job.display_name or f"{job.base_model}-tuned-{job.id}", description=job.description,
            job_id=job.id, base_model=job.base_model, endpoint_id=self._new_id(), create_time=at, labels=labels,
        )
        self._state.models[record.id] = record
        self._state.endpoints[record.endpoint_id] = _Endpoint(
            id=record.endpoint_id, project=job.project, location=job.location, display_name=record.display_name,
            labels=dict(job.labels), deployed={self._new_id(): record.id}, create_time=at)
        self._trained.put(record.id, model)
        job.model_id, job.endpoint_id = record.id, record.endpoint_id
        examples = self._training_examples(job)
        unusable = sum(1 for _, output in examples if output == PARTIAL_OUTPUT)
        if unusable:
            self._end(job, at, PARTIALLY_SUCCEEDED, {"code": _RPC_INVALID_ARGUMENT, "message": (
                f"{unusable} of {len(examples)} examples could not be used; the model was tuned on the rest.")})
        else:
            self._end(job, at, SUCCEEDED, None)

    def _end(self, job: _Job, at: float, state: str, error: dict[str, Any] | None) -> None:
        job.state, job.end_time, job.update_time, job.error = state, at, at, error
        self._examples.pop(job.id, None)  # a succeeded job keeps its trained model instead

    def _training_examples(self, job: _Job) -> list[tuple[str, str]]:
        if job.id not in self._examples:
            self._examples[job.id] = parse_dataset(self._read_gcs(job.training_uri), job.training_uri)
        return self._examples[job.id]

    def _train(self, job: _Job) -> TunedModel:
        examples = [e for e in self._training_examples(job) if e[1] != PARTIAL_OUTPUT]
        try:
            return train(examples, job.epoch_count, batch_size=BATCH_SIZE,
                         learning_rate=0.5 * job.learning_rate_multiplier, seed=self.seed)
        except ValueError as error:
            raise DatasetProblem(f"{job.training_uri}: {error}") from error

    def _read_gcs(self, uri: str) -> str:
        try:
            bucket, name = parse_gcs_uri(uri)
        except ValueError as error:
            raise DatasetProblem(str(error)) from error
        from google.api_core import exceptions as gcs_errors  # a dependency of google-cloud-storage

        try:
            if self._storage_client is None:
                self._storage_client = self._storage_client_factory()
            return self._storage_client.bucket(bucket).blob(name).download_as_text()
        except gcs_errors.NotFound as error:
            raise DatasetProblem(f"Dataset {uri} does not exist or is not readable: {error.message}") from error
        except (gcs_errors.GoogleAPICallError, UnicodeDecodeError, OSError) as error:
            raise DatasetProblem(f"Dataset {uri} could not be read: {error}") from error

    # ---- tuned models and their endpoints --------------------------------------------------------------------

    def _list_models(self, request: Request) -> dict[str, Any]:
        # Every model here is a tuned one, so the SDK's `labels.tune-type:*` filter keeps them all.
        return self._listed(request, "models", self._state.models.values(), self._model_json)

    def _listed(self, request: Request, collection: str, resources: Iterable[_Located],
                to_json: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        """A list method's answer: one page of the RESOURCES under the request's parent that match its filters."""
        parent = f"projects/{request.params['project']}/locations/{request.params['location']}"
        here = [resource for resource in resources if resource.parent == parent]
        page, token = _page(self._filtered(here, request), request, collection)
        result: dict[str, Any] = {collection: [to_json(resource) for resource in page]}
        if token:
            result["nextPageToken"] = token
        return result

    def _get_model(self, request: Request) -> dict[str, Any]:
        return self._model_json(self._find_model(request.params))

    def _update_model(self, request: Request) -> dict[str, Any]:
        """models.update: display name and description change in place (the SDK sends only those set)."""
        model = self._find_model(request.params)
        body = _known_fields(request.json(), "Model", "model")
        if "displayName" in body:
            if not isinstance(body["displayName"], str) or not body["displayName"].strip():
                raise _invalid("display_name must not be empty.")
            model.display_name = body["displayName"]
        if "description" in body:
            model.description = body["description"] or None
        self._save()
        return self._model_json(model)

    def _delete_model(self, request: Request) -> dict[str, Any]:
        model = self._find_model(request.params)
        endpoints = [e.name for e in self._endpoints_of(model)]
        if endpoints:  # models.delete: "cannot be deleted if any Endpoint resource has a DeployedModel based on it"
            raise GoogleError("FAILED_PRECONDITION", f'The Model "{model.name}" is deployed or being deployed at '
                                                      f"the following Endpoint(s): {', '.join(endpoints)}.")
        del self._state.models[model.id]
        self._trained.forget(model.id)
        return self._operation_json(self._operation(model.name, "DeleteOperationMetadata"))

    def _endpoints_of(self, model: _Model) -> list[_Endpoint]:
        return [e for e in self._state.endpoints.values() if model.id in e.deployed.values()]

    # ---- endpoints and operations ----------------------------------------------------------------------------

    def _get_endpoint(self, request: Request) -> dict[str, Any]:
        endpoint = self._find_endpoint(request.params)
        deployed = [{"id": deployed_id, "model": f"projects/{endpoint.project}/locations/{endpoint.location}/models/"
                     f"{model_id}", "displayName": endpoint.display_name} for deployed_id, model_id
                    in endpoint.deployed.items()]
        result: dict[str, Any] = {"name": endpoint.name, "displayName": endpoint.display_name,
                                  "createTime": rfc3339(endpoint.create_time), "updateTime": rfc3339(self._now())}
        if deployed:
            result["deployedModels"] = deployed
            result["trafficSplit"] = {deployed[0]["id"]: 100}
        if endpoint.labels:
            result["labels"] = endpoint.labels
        return result

    def _delete_endpoint(self, request: Request) -> dict[str, Any]:
        endpoint = self._find_endpoint(request.params)
        if endpoint.deployed:
            raise GoogleError("FAILED_PRECONDITION", f"Endpoint {endpoint.name} has deployed models; undeploy "
                                                      "them before deleting the endpoint.")
        del self._state.endpoints[endpoint.id]
        return self._operation_json(self._operation(endpoint.name, "DeleteOperationMetadata"))

    def _undeploy(self, request: Request) -> dict[str, Any]:
        endpoint = self._find_endpoint(request.params)
        deployed_id = _known_fields(request.json(), "UndeployModelRequest", "").get("deployedModelId")
        if deployed_id not in endpoint.deployed:
            raise GoogleError("FAILED_PRECONDITION", f"Endpoint {endpoint.name} has no DeployedModel with id "
                                                      f"{deployed_id!r}.")
        return self._operation_json(self._operation(endpoint.name, "UndeployModelOperationMetadata",
                                                    UNDEPLOY_SECONDS, [endpoint.id, deployed_id]))

    def _find_endpoint(self, params: dict[str, str]) -> _Endpoint:
        endpoint = self._state.endpoints.get(params["id"])
        if not endpoint or (endpoint.project, endpoint.location) != (params["project"], params["location"]):
            raise _not_found(f"Endpoint projects/{params['project']}/locations/{params['location']}/endpoints/"
                             f"{params['id']} not found.")
        return endpoint

    def _operation(self, resource: str, kind: str, seconds: float = 0.0, undeploy: list[str] | None = None
                   ) -> _Operation:
        operation = _Operation(self._new_id(), resource, kind, self._now() + seconds, undeploy)
        self._state.operations[operation.id] = operation
        self._save()
        return operation

    def _get_operation(self, request: Request) -> dict[str, Any]:
        operation = self._state.operations.get(request.params["id"])
        if operation is None:
            raise _not_found(f"Operation {request.params['id']} not found.")
        return self._operation_json(operation)

    def _operation_json(self, operation: _Operation) -> dict[str, Any]:
        done = operation.undeploy is None
        created = rfc3339(operation.done_at)
        result: dict[str, Any] = {
            "name": operation.name,
            "metadata": {"@type": f"type.googleapis.com/google.cloud.aiplatform.v1beta1.{operation.kind}",
                         "genericMetadata": {"createTime": created, "updateTime": created}},
            "done": done,
        }
        if done:
            result["response"] = {"@type": "type.googleapis.com/google.protobuf.Empty"}
        return result

    def _filtered(self, items: list[Any], request: Request) -> list[Any]:
        """Items matching every `filter` parameter (the SDK may send two); the supported grammar is the labels
        part of the API's: labels.KEY=VALUE, labels.KEY="VALUE", labels.KEY:*, labels:KEY, joined with AND."""
        terms = [term for expression in request.query.get("filter", []) if expression
                 for term in _filter_terms(expression)]
        if not self._honour_filters:
            return items
        return [item for item in items if all(_matches(item.labels, term) for term in terms)]

    def _find_model(self, params: dict[str, str]) -> _Model:
        model = self._state.models.get(params["id"])
        if not model or (model.project, model.location) != (params["project"], params["location"]) or \
                params.get("version", "1") != "1":
            raise _not_found(f"Model projects/{params['project']}/locations/{params['location']}/models/"
                             f"{params['id']} does not exist.")
        return model

    def _model_json(self, model: _Model) -> dict[str, Any]:
        created = rfc3339(model.create_time)
        result = {
            "name": model.name,
            "displayName": model.display_name,
            "versionId": "1",
            "versionAliases": ["default"],
            "labels": model.labels,
            "createTime": created,
            "updateTime": created,
        }
        if model.description:
            result["description"] = model.description
        deployed = [{"endpoint": e.name, "deployedModelId": deployed_id} for e in self._endpoints_of(model)
                    for deployed_id, model_id in e.deployed.items() if model_id == model.id]
        if deployed:
            result["deployedModels"] = deployed
        return result

    def _generate(self, request: Request) -> dict[str, Any]:
        endpoint = self._find_endpoint(request.params)
        if not endpoint.deployed:
            raise GoogleError("FAILED_PRECONDITION", f"Endpoint {endpoint.name} has no deployed model.")
        model = self._state.models[next(iter(endpoint.deployed.values()))]
        prompt = _last_user_text(_known_fields(request.json(), "GenerateContentRequest", ""))
        try:  # retrained from the job's dataset after a restart
            tuned = self._trained.get(model.id, lambda: self._train(self._state.jobs[model.job_id]))
        except DatasetProblem as problem:
            raise GoogleError.internal(f"The tuned model cannot be loaded: {problem}") from problem
        answer = tuned.predict(prompt)
        return {
            "candidates": [{"content": {"role": "model", "parts": [{"text": answer}]}, "finishReason": "STOP"}],
            "usageMetadata": {**usage(prompt, answer), "trafficType": "ON_DEMAND"},
            "modelVersion": f"{model.name}@1",
            "createTime": rfc3339(self._now()),
            "responseId": self._new_id(),
        }

    # ---- ids and persistence ---------------------------------------------------------------------------------

    def _new_id(self) -> str:
        number = self._state.next_id
        self._state.next_id += 1
        return str(_ID_BASE + number)

    def _snapshot(self) -> dict[str, Any]:
        return {
            "format": 1,
            "next_id": self._state.next_id,
            "jobs": [asdict(j) for j in self._state.jobs.values()],
            "models": [asdict(m) for m in self._state.models.values()],
            "endpoints": [asdict(e) for e in self._state.endpoints.values()],
            "operations": [asdict(o) for o in self._state.operations.values()],
        }

    def _restore(self, snapshot: dict[str, Any]) -> None:
        with self._lock:
            self._state = _State(
                jobs={j["id"]: _Job(**j) for j in snapshot["jobs"]},
                models={m["id"]: _Model(**m) for m in snapshot["models"]},
                endpoints={e["id"]: _Endpoint(**e) for e in snapshot["endpoints"]},
                operations={o["id"]: _Operation(**o) for o in snapshot["operations"]},
                next_id=int(snapshot["next_id"]),
            )


def _is_jsonl_gcs_uri(uri: Any) -> bool:
    return isinstance(uri, str) and re.fullmatch(r"gs://[^/]+/.+\.jsonl", uri) is not None


def _string_map(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _invalid("labels must be a map of string to string.")
    return dict(value)


def _known_fields(body: dict[str, Any], message: str, path: str) -> dict[str, Any]:
    """The body, unless it (or a nested message) has a field the API does not define: then 400, worded as Google's
    JSON transcoding words it."""
    fields = REQUEST_FIELDS[message]
    for key, value in body.items():
        if key not in fields:
            where = f" at '{path}'" if path else ""
            text = f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.'
            raise GoogleError.invalid(text, path)
        nested = fields[key]
        if nested is not None and isinstance(value, dict):
            _known_fields(value, nested, f"{path}.{snake_case(key)}" if path else snake_case(key))
    return body


def _filter_terms(expression: str) -> list[tuple[str, str | None]]:
    """(label key, value or None for "has the key") of each AND-ed term; 400 for anything else."""
    terms = []
    for term in re.split(r"\s+AND\s+", expression.strip()):
        match = _LABEL_FILTER.fullmatch(term.strip())
        if not match:
            raise _invalid(f'Invalid filter "{expression}": unsupported or malformed term "{term}".')
        key = match.group(1) or match.group(4)
        value = match.group(2) if match.group(2) is not None else match.group(3)
        terms.append((key, value))
    return terms


def _matches(labels: dict[str, str], term: tuple[str, str | None]) -> bool:
    key, value = term
    return key in labels if value is None else labels.get(key) == value


def _as_number(value: Any, kind: type) -> Any:
    """int/float from a JSON number or numeric string (proto int64 arrives as a string); None if not numeric."""
    if isinstance(value, bool):
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        return None
    if kind is int and isinstance(value, float) and value != number:
        return None
    return number


def _bad_request(violations: list[tuple[str, str]]) -> GoogleError:
    listed = "".join(f"{i}.Field: {f}; Message: {d}\t" for i, (f, d) in enumerate(violations, start=1))
    return GoogleError.bad_request(violations, f"List of found errors:\t{listed}")


def _page(items: list[Any], request: Request, kind: str) -> tuple[list[Any], str | None]:
    """Newest first; the page token names the last id served, so creates between pages don't shift pages."""
    size = _as_number(request.arg("pageSize") or DEFAULT_PAGE_SIZE, int)
    if size is None or size < 0:
        raise _invalid("pageSize must be a non-negative integer.")
    token = request.arg("pageToken")
    return cursor_page(items, lambda item: int(item.id), kind, token, min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
                       lambda: _invalid(f"Invalid page token {token!r}."), newest_first=True)


def _last_user_text(body: dict[str, Any]) -> str:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _invalid("Unable to submit request because it has an empty contents field.")
    users = [c for c in contents if isinstance(c, dict) and c.get("role", "user") == "user"]
    text = _text_of(users[-1]) if users else ""
    if not text.strip():
        raise _invalid("Unable to submit request because the last user content has no text part.")
    return text


serve = VertexEmulator.serve  # `tuner emulator vertex`
