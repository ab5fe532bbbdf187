"""The Vertex AI provider: Gemini supervised tuning jobs on google-genai, datasets staged in GCS.

Datasets are converted to Vertex's JSONL (`contents` with user/model roles) and uploaded once to
`<staging_bucket>/datasets/<canonical-hash>.jsonl`: the hash is the name, so an object already there is
never uploaded again. Tuning jobs take no client-chosen id, so each job carries labels with the model's
tuner id, fingerprint and owner tag (runner.identity); Vertex copies a job's labels to the model and endpoint it
generates. A submission first looks for a live job with all three labels and adopts it, which is what keeps a
retry after an ambiguous failure (or a crash) from paying twice; a model or job whose tuner-owner label is
another state's is never adopted or deleted.

Deleting a tuned model: Vertex refuses models.delete while the model is deployed (the tuned model always is),
so the provider undeploys it from each endpoint, waits for that operation, deletes the endpoint once nothing is
deployed on it, then deletes the model. google-genai has no endpoint calls, so those few go over REST with a
google.auth AuthorizedSession against the same endpoint and API version google-genai uses (see _rest).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from runner.datasets import DatasetRef, open_examples
from runner.errors import ProviderError, first_line, is_network_error
from runner.identity import Owner
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
    guarded,
    is_loopback,
)
from runner.providers.planning import Hyperparameters, ModelDatasets, PlanResponse, plan_model
from runner.sdkwarnings import quiet_sdk_banners

if TYPE_CHECKING:
    from runner.spec import ModelSpec

ENDPOINT_ENV = "TUNER_VERTEX_ENDPOINT"
TOKEN_ENV = "TUNER_VERTEX_ACCESS_TOKEN"  # e.g. from `gcloud auth print-access-token`, for CI without ADC
DEFAULT_LOCATION = "us-central1"
DISPLAY_NAME_MAX = 128  # the API reference: up to 128 UTF-8 characters
ADAPTER_SIZES = {1: "ADAPTER_SIZE_ONE", 2: "ADAPTER_SIZE_TWO", 4: "ADAPTER_SIZE_FOUR", 8: "ADAPTER_SIZE_EIGHT",
                 16: "ADAPTER_SIZE_SIXTEEN"}
LABEL_ID, LABEL_FINGERPRINT, LABEL_OWNER = "tuner-id", "tuner-fingerprint", "tuner-owner"
LABEL_JOB = "google-vertex-llm-tuning-job-id"  # set by Vertex on a tuned model: the job that made it
LIST_PAGE_SIZE = 100
API_VERSION = "v1beta1"  # google-genai's default for Vertex; the REST calls use the same
OPERATION_TIMEOUT_SECONDS = 1800.0  # an undeploy takes minutes on the real service
# A tuner id carried in labels while the job runs: <name>-<owner tag>-<fingerprint prefix> (a label value).
LABEL_BORNE_ID = re.compile(r"[a-z][a-z0-9-]{0,40}-[0-9a-f]{8}-[0-9a-f]{10}|[a-z][a-z0-9-]{0,40}-v[0-9a-f]{10}")
OWNED_LABEL_ID = re.compile(r"[a-z][a-z0-9-]*-([0-9a-f]{8})-[0-9a-f]{10}")
DEPLOYED_MODEL_ID = re.compile(r"[0-9]{1,20}|[a-z][a-z0-9-]{0,62}")
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024  # resumable upload in 8 MB chunks: never the whole file in memory
_STATES = {
    "JOB_STATE_QUEUED": CREATING, "JOB_STATE_PENDING": CREATING, "JOB_STATE_RUNNING": CREATING,
    "JOB_STATE_UPDATING": CREATING, "JOB_STATE_PAUSED": CREATING, "JOB_STATE_SUCCEEDED": ACTIVE,
    "JOB_STATE_FAILED": FAILED, "JOB_STATE_CANCELLING": FAILED, "JOB_STATE_CANCELLED": FAILED,
    "JOB_STATE_EXPIRED": FAILED,
}
PARTIALLY_SUCCEEDED = "JOB_STATE_PARTIALLY_SUCCEEDED"
# None: Vertex picks the value from the dataset size and base model (recorded as such).
HYPERPARAMETERS = Hyperparameters(
    defaults={"epoch_count": None, "learning_rate_multiplier": None, "adapter_size": None},
    refused={"batch_size": "Vertex AI chooses the batch size for Gemini tuning; remove batch_size",
             "learning_rate": "Vertex AI takes learning_rate_multiplier (a factor on its recommended rate)"})
_LIVE = ("JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_UPDATING", "JOB_STATE_PAUSED",
         "JOB_STATE_SUCCEEDED")
quiet_sdk_banners()  # google-genai and google-cloud-storage are imported lazily, on first use


def create(context: ProviderContext) -> VertexProvider:
    return VertexProvider(context.settings, context.environ)


class VertexProvider:
    name = "vertex"

    def __init__(self, settings: dict, environ: dict | None = None, storage_retry=None):
        self._environ = os.environ if environ is None else environ
        # google-cloud-storage's retry (None: its default, up to 120 s of backoff); tests inject a short one.
        self._storage_retry = storage_retry
        self.project = settings.get("project")
        self.location = settings.get("location", DEFAULT_LOCATION)
        self.staging_bucket = settings.get("staging_bucket")
        self.endpoint = checked_endpoint(self._environ.get(ENDPOINT_ENV), ENDPOINT_ENV) or \
            checked_endpoint(settings.get("endpoint"), "providers.vertex.endpoint")
        self.capabilities = Capabilities(
            max_concurrent_jobs=settings.get("max_concurrent_jobs", 5),
            poll_seconds=settings.get("poll_seconds", 30.0),
        )
        self._ids = _Grammar(self.project or "", self.location)
        self._client = None
        self._session = None
        self._storage = None
        self._lock = threading.Lock()
        self._endpoints: dict[str, str] = {}

    # -- plan time -------------------------------------------------------------------------------------
    def plan(self, spec: ModelSpec, datasets: ModelDatasets | None) -> PlanResponse:
        return plan_model(spec, datasets, HYPERPARAMETERS, _estimate, self._limits)

    def import_attributes(self, planned: PlannedModel, seen: ObservedModel) -> dict:
        return planning.imported_attributes(planned, seen)

    def _limits(self, model: PlannedModel) -> list[str]:
        problems = [f"providers.vertex.{key} is required" for key, value in
                    (("project", self.project), ("staging_bucket", self.staging_bucket)) if not value]
        size = model.hyperparameters.get("adapter_size")
        if size is not None and size not in ADAPTER_SIZES:
            problems.append(f"hyperparameters.adapter_size: {size} is not supported for Gemini tuning "
                            f"(use one of {', '.join(map(str, ADAPTER_SIZES))})")
        if len(model.display_name) > DISPLAY_NAME_MAX:
            problems.append(f"display_name: {len(model.display_name)} characters; Vertex AI allows "
                            f"{DISPLAY_NAME_MAX}")
        return problems

    def tuned_model_id(self, model, owner: Owner) -> str:
        """The label-borne id of the job until it succeeds; then the model resource replaces it."""
        return f"{model.name}-{owner.tag}-{model.job_key[:10]}"

    def recorded_settings(self) -> dict:
        return {"endpoint": self.endpoint, "project": self.project, "location": self.location,
                "staging_bucket": self.staging_bucket}

    # -- clients ---------------------------------------------------------------------------------------
    def preflight(self) -> None:
        self._genai()
        self._bucket()

    def _credentials(self):
        token = self._environ.get(TOKEN_ENV)
        if token or is_loopback(self.endpoint):
            import google.oauth2.credentials

            return google.oauth2.credentials.Credentials(token=token or "emulator")
        return None  # Application Default Credentials, resolved by the SDK

    def _genai(self):
        with self._lock:
            if self._client is None:
                from google import genai
                from google.genai import types

                options = types.HttpOptions(base_url=self.endpoint) if self.endpoint else None
                try:
                    self._client = genai.Client(vertexai=True, project=self.project, location=self.location,
                                                credentials=self._credentials(), http_options=options)
                except Exception as exc:  # missing ADC surfaces here
                    raise self._map_error(exc) from None
            return self._client

    def _bucket(self):
        with self._lock:
            if self._storage is None:
                from google.cloud import storage

                try:
                    if self._environ.get("STORAGE_EMULATOR_HOST"):
                        from google.auth.credentials import AnonymousCredentials

                        client = storage.Client(project=self.project, credentials=AnonymousCredentials())
                    else:
                        client = storage.Client(project=self.project)
                except Exception as exc:
                    raise self._map_error(exc) from None
                bucket, _ = _split_gcs(self.staging_bucket)
                self._storage = client.bucket(bucket)
            return self._storage

    def _call(self, fn: Callable, *, on_not_found: Callable | None = None):
        return guarded(fn, self._map_error, on_not_found)

    def _storage_call(self, fn: Callable):
        return guarded(fn, self._map_storage_error)

    def _map_storage_error(self, exc: Exception) -> ProviderError:
        if is_network_error(exc):
            host = self._environ.get("STORAGE_EMULATOR_HOST") or "storage.googleapis.com"
            return ProviderError(f"cannot reach Cloud Storage at {host} to stage datasets in {self.staging_bucket}: "
                                 f"{first_line(exc)}", ProviderError.RETRYABLE, "UNAVAILABLE",
                                 remedy="check the network (or STORAGE_EMULATOR_HOST when using an emulator)")
        return self._map_error(exc)

    def _map_error(self, exc: Exception) -> ProviderError:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc
        from google.genai import errors

        message = getattr(exc, "message", None) or str(exc)
        code = getattr(exc, "code", None)
        status = getattr(exc, "status", None) or ""
        if isinstance(exc, auth_exc.DefaultCredentialsError):
            return ProviderError(f"no Google Cloud credentials: {message}", code="UNAUTHENTICATED",
                                 remedy="run `gcloud auth application-default login` (or set "
                                        f"GOOGLE_APPLICATION_CREDENTIALS, or {TOKEN_ENV})")
        if isinstance(exc, errors.APIError | gexc.GoogleAPICallError):
            if code == 429 or status == "RESOURCE_EXHAUSTED":
                return ProviderError(message, ProviderError.QUOTA, "RESOURCE_EXHAUSTED")
            if code is not None and code >= 500:
                return ProviderError(message, ProviderError.RETRYABLE, status or str(code))
            if code in (401, 403):
                return ProviderError(message, ProviderError.FATAL, status or "PERMISSION_DENIED",
                                     remedy=f"the credentials need roles/aiplatform.user on project {self.project} "
                                            f"and roles/storage.objectAdmin on {self.staging_bucket}")
            if code == 404:
                return ProviderError(message, ProviderError.FATAL, "NOT_FOUND")
            if code == 412 or status == "FAILED_PRECONDITION":  # the resource's state forbids it: no field to fix
                return ProviderError(message, ProviderError.FATAL, "FAILED_PRECONDITION")
            return ProviderError(message, ProviderError.FATAL, status or "INVALID_ARGUMENT",
                                 remedy="fix the field the message names, then plan and apply again")
        if is_network_error(exc):
            return ProviderError(f"cannot reach Vertex AI at {self.endpoint or 'the default endpoint'}: "
                                 f"{first_line(message)}", ProviderError.RETRYABLE, "UNAVAILABLE",
                                 remedy=f"check the network, or the endpoint (providers.vertex.endpoint, "
                                        f"{ENDPOINT_ENV})")
        return ProviderError(f"{type(exc).__name__}: {message}", ProviderError.FATAL)

    # -- datasets --------------------------------------------------------------------------------------
    def stage_dataset(self, model, which: str) -> str:
        """Upload one of the model's datasets as Vertex JSONL named by its planned hash, unless an object of
        that name is already there. The conversion verifies the hash as it streams, before the name is even
        looked up: a file changed since the plan raises DatasetChangedError and nothing is uploaded or
        reused, so an object's name always matches its content."""
        _, prefix = _split_gcs(self.staging_bucket)
        dataset = model.dataset(which)
        name = f"{prefix}datasets/{dataset.sha256}.jsonl"
        from google.cloud.storage.retry import DEFAULT_RETRY

        retry = self._storage_retry or DEFAULT_RETRY  # the upload's default too, as it names a generation
        blob = self._bucket().blob(name, chunk_size=UPLOAD_CHUNK_BYTES)
        uri = f"gs://{blob.bucket.name}/{name}"
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".jsonl") as staging:
            _write_vertex_jsonl(open_examples(dataset), staging)
            staging.flush()
            if self._storage_call(lambda: blob.exists(retry=retry)):
                return uri
            try:
                self._storage_call(lambda: blob.upload_from_filename(
                    staging.name, content_type="application/jsonl", if_generation_match=0, retry=retry))
            except ProviderError as error:
                if error.code != "FAILED_PRECONDITION":
                    raise  # 412: another run uploaded the same content meanwhile, which is just as good
        return uri

    # -- jobs ------------------------------------------------------------------------------------------
    def submit(self, model, tuned_model_id: str, owner: Owner) -> str:
        _check_label_id_owner(checked(LABEL_BORNE_ID, tuned_model_id, "Vertex tuner id"), owner)
        existing = self._find_job(tuned_model_id, model.fingerprint, owner)
        if existing is not None:
            return existing.name  # started by an earlier attempt: adopt, never pay twice
        from google.genai import types

        train = self.stage_dataset(model, "train")
        validation = None
        if model.validation is not None:
            validation = types.TuningValidationDataset(gcs_uri=self.stage_dataset(model, "validation"))
        hp = model.hyperparameters
        config = types.CreateTuningJobConfig(
            tuned_model_display_name=model.display_name, description=model.description or None,
            epoch_count=hp.get("epoch_count"), learning_rate_multiplier=hp.get("learning_rate_multiplier"),
            adapter_size=ADAPTER_SIZES.get(hp.get("adapter_size")), validation_dataset=validation,
            labels={LABEL_ID: tuned_model_id, LABEL_FINGERPRINT: model.fingerprint[:40], LABEL_OWNER: owner.tag},
        )
        job = self._call(lambda: self._genai().tunings.tune(
            base_model=model.base_model, training_dataset=types.TuningDataset(gcs_uri=train), config=config))
        return job.name

    def _find_job(self, tuned_model_id: str, fingerprint: str, owner: Owner):
        """A live job carrying all of this model's labels: the first found, as the search stops there."""
        wanted = {LABEL_ID: tuned_model_id, LABEL_FINGERPRINT: fingerprint[:40], LABEL_OWNER: owner.tag}
        return self._call(lambda: next(self._live_jobs_labelled(wanted), None))

    def _live_jobs_labelled(self, wanted: dict[str, str]) -> Iterator:
        """The live jobs carrying all WANTED labels, read page by page as consumed (inside _call). No list filter is
        sent: the API documents no label filter for tuningJobs.list, and a filter it refused or ignored must never
        decide adoption or deletion; the labels are checked here."""
        jobs = self._genai().tunings.list(config={"page_size": LIST_PAGE_SIZE})
        return (job for job in jobs if wanted.items() <= (job.labels or {}).items() and _state_name(job) in _LIVE)

    def poll(self, tuned_model_id: str, handle: str | None) -> JobStatus:
        if not handle:
            return JobStatus(FAILED, "NO_HANDLE", "no tuning job was recorded for this model")
        handle = checked(self._ids.job, handle, "Vertex tuning job name")
        job = self._call(lambda: self._genai().tunings.get(name=handle), on_not_found=lambda: None)
        if job is None:
            return JobStatus(FAILED, "NOT_FOUND", f"tuning job {handle} no longer exists")
        state = _state_name(job)
        if state == PARTIALLY_SUCCEEDED:
            # The API: "some results may be missing due to errors". For a tuning job that means a model tuned on
            # less than the planned data: tuner promises what is trained is what was planned, so this is a failure
            # (a retry deletes the model it made and tunes again on the whole dataset).
            detail = job.error.message if job.error and job.error.message else "no reason given"
            return JobStatus(FAILED, state, f"the tuning job only partially succeeded ({detail}): its model is not "
                                            "trained on the data the plan showed, so tuner does not use it")
        if _STATES.get(state, CREATING) == FAILED:
            message = job.error.message if job.error and job.error.message else state
            return JobStatus(FAILED, state, message)
        if _STATES.get(state) == ACTIVE and job.tuned_model and job.tuned_model.model:
            model_id = _unversioned(job.tuned_model.model)
            self._endpoints[model_id] = job.tuned_model.endpoint
            return JobStatus(ACTIVE, state, tuned_model_id=model_id,
                             resources={"job": job.name, "model": job.tuned_model.model,
                                        "endpoint": job.tuned_model.endpoint}, **_how_far(job))
        return JobStatus(CREATING, state, **_how_far(job))

    def update(self, tuned_model_id: str, display_name: str, description: str) -> None:
        from google.genai import types

        checked(self._ids.model, tuned_model_id, "Vertex model name")
        self._call(lambda: self._genai().models.update(
            model=tuned_model_id, config=types.UpdateModelConfig(display_name=display_name, description=description)))

    def delete(self, tuned_model_id: str, handle: str | None, owner: Owner) -> None:
        """Delete the tuned model; while the job is still running, cancel it instead. The model or job is read
        first: one whose tuner-owner label is another state's is refused (a model with no such label, made by
        hand and imported, is this state's to delete)."""
        if tuned_model_id.startswith("projects/"):
            self._delete_model(checked(self._ids.model, tuned_model_id, "Vertex model name"), owner)
            return
        checked(LABEL_BORNE_ID, tuned_model_id, "Vertex tuner id")
        if not handle:  # a crash between tunings.tune and the state write leaves no job name: its labels name it
            for job in self._call(lambda: list(self._live_jobs_labelled({LABEL_ID: tuned_model_id}))):
                self._end_job(job, owner)
            return
        handle = checked(self._ids.job, handle, "Vertex tuning job name")
        job = self._call(lambda: self._genai().tunings.get(name=handle), on_not_found=lambda: None)
        if job is not None:
            self._end_job(job, owner)

    def _end_job(self, job, owner: Owner) -> None:
        """Cancel the job while it runs, or delete the model it made; refused when its owner label is another's."""
        name = checked(self._ids.job, job.name, "Vertex tuning job name")
        _check_owner(job.labels, owner, name)
        if _STATES.get(_state_name(job)) == CREATING:
            self._call(lambda: self._genai().tunings.cancel(name=name))
        elif job.tuned_model and job.tuned_model.model:  # it finished meanwhile: delete what it made
            self.delete(_unversioned(job.tuned_model.model), None, owner)

    def _delete_model(self, model_id: str, owner: Owner) -> None:
        model = self._call(lambda: self._genai().models.get(model=model_id), on_not_found=lambda: None)
        if model is None:
            return  # already gone
        _check_owner(model.labels, owner, model_id)
        for endpoint in model.endpoints or []:
            self._undeploy(endpoint.name, endpoint.deployed_model_id, owner)
        self._call(lambda: self._genai().models.delete(model=model_id), on_not_found=lambda: None)

    def _undeploy(self, endpoint: str | None, deployed_model_id: str | None, owner: Owner) -> None:
        """models.delete is refused while the model is deployed: undeploy it (waiting for the operation), then
        delete the endpoint if nothing else is deployed on it and it is not another state's."""
        endpoint = checked(self._ids.endpoint, endpoint, "Vertex endpoint name")
        deployed_model_id = checked(DEPLOYED_MODEL_ID, deployed_model_id, "Vertex deployed model id")
        operation = self._rest("POST", f"{endpoint}:undeployModel", {"deployedModelId": deployed_model_id},
                               missing_ok=True)
        if operation is not None:
            self._wait_for(operation)
        left = self._rest("GET", endpoint, missing_ok=True)
        if left is None or left.get("deployedModels"):
            return  # gone already, or serving other models: kept
        if (left.get("labels") or {}).get(LABEL_OWNER) in (None, owner.tag):
            self._rest("DELETE", endpoint, missing_ok=True)

    def _wait_for(self, operation: dict) -> None:
        name = checked(self._ids.operation, operation.get("name"), "Vertex operation name")
        deadline = time.monotonic() + OPERATION_TIMEOUT_SECONDS
        while not operation.get("done"):
            if time.monotonic() > deadline:
                raise ProviderError(f"{name} did not finish in {OPERATION_TIMEOUT_SECONDS:.0f} s",
                                    ProviderError.RETRYABLE, "DEADLINE_EXCEEDED")
            time.sleep(self.capabilities.poll_seconds)
            operation = self._rest("GET", name)
        if operation.get("error"):
            raise ProviderError(f"{name} failed: {operation['error'].get('message', operation['error'])}",
                                code="OPERATION_FAILED")

    def _rest(self, method: str, path: str, body: dict | None = None, missing_ok: bool = False) -> dict | None:
        """One REST call for what google-genai has no call for (endpoints, operations): an AuthorizedSession of
        google-auth (already loaded by google-cloud-storage, imported lazily) against the base URL and API version
        google-genai uses; an error answer becomes google-genai's own APIError, so _map_error reads its status and
        message as for every SDK call. None when missing_ok and the resource is gone."""
        def call():
            from google.genai import errors

            response = self._authorized().request(method, f"{self._base_url()}/{API_VERSION}/{path}", json=body,
                                                  timeout=60)
            if response.status_code >= 400:
                try:
                    answer = response.json()
                except ValueError:
                    answer = {"error": {"message": response.text[:500]}}
                kind = errors.ServerError if response.status_code >= 500 else errors.ClientError
                raise kind(response.status_code, answer, response)
            return response.json() if response.content else {}

        return self._call(call, on_not_found=(lambda: None) if missing_ok else None)

    def _authorized(self):
        with self._lock:
            if self._session is None:
                import google.auth
                from google.auth.transport.requests import AuthorizedSession

                credentials = self._credentials()
                if credentials is None:
                    try:
                        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
                    except Exception as exc:
                        raise self._map_error(exc) from None
                self._session = AuthorizedSession(credentials)
            return self._session

    def _base_url(self) -> str:
        """Where google-genai sends Vertex calls: the configured endpoint, else the regional (or global) host."""
        if self.endpoint:
            return self.endpoint.rstrip("/")
        region = "" if self.location == "global" else f"{self.location}-"
        return f"https://{region}aiplatform.googleapis.com"

    def list_models(self) -> list[ObservedModel]:
        """Tuned models of the project and location, one paged list call."""
        models = self._call(lambda: list(self._genai().models.list(
            config={"page_size": LIST_PAGE_SIZE, "query_base": False})))
        return [_observed(m) for m in models]

    def get_model(self, tuned_model_id: str) -> ObservedModel | None:
        """One model (a full name or a bare id, as `tuner import` takes it), with the base model read from the job
        that made it: the model's own label spells it without dots (gemini-2-5-flash), which no spec matches."""
        if "/" not in tuned_model_id:
            tuned_model_id = f"projects/{self.project}/locations/{self.location}/models/{tuned_model_id}"
        model_id = checked(self._ids.model, tuned_model_id, "Vertex model name")
        model = self._call(lambda: self._genai().models.get(model=model_id), on_not_found=lambda: None)
        return _observed(model, self._base_model_of(model)) if model is not None else None

    def _base_model_of(self, model) -> str:
        job_id = (model.labels or {}).get(LABEL_JOB)
        if not job_id:
            return ""  # not made by a tuning job: the core records the spec's base model
        parent = _unversioned(model.name).rsplit("/models/", 1)[0]
        name = checked(self._ids.job, f"{parent}/tuningJobs/{job_id}", "Vertex tuning job name")
        job = self._call(lambda: self._genai().tunings.get(name=name), on_not_found=lambda: None)
        return (job.base_model or "").removeprefix("publishers/google/models/") if job is not None else ""

    def predict(self, tuned_model_id: str, text: str) -> str:
        endpoint = self._endpoints.get(tuned_model_id) or self._endpoint_of(tuned_model_id)
        response = self._call(lambda: self._genai().models.generate_content(model=endpoint, contents=text))
        return response.text or ""

    def _endpoint_of(self, tuned_model_id: str) -> str:
        model_id = checked(self._ids.model, tuned_model_id, "Vertex model name")
        model = self._call(lambda: self._genai().models.get(model=model_id))
        endpoint = next((e.name for e in model.endpoints or [] if e.name), None)
        if not endpoint:
            raise ProviderError(f"{tuned_model_id} is not deployed to an endpoint to answer from", code="NOT_FOUND")
        self._endpoints[tuned_model_id] = checked(self._ids.endpoint, endpoint, "Vertex endpoint name")
        return endpoint

    def info(self) -> dict:
        from google.genai import version

        return {"sdk": "google-genai", "version": version.__version__, "project": self.project,
                "location": self.location}


def _estimate(hyperparameters: dict, train: DatasetRef) -> TrainingEstimate:
    """Gemini models' token rule. For epochs, Vertex AI "automatically adjusts the default value to your training
    dataset size" and publishes no number."""
    tokens = planning.estimate_tokens(train.text_bytes, train.examples)
    if hyperparameters["epoch_count"] is not None:
        return TrainingEstimate(tokens, hyperparameters["epoch_count"])
    return TrainingEstimate(tokens, 1, "epoch_count not set: vertex picks it from the dataset size and publishes no "
                                       "default, so 1 epoch is assumed; multiply by the epochs the job reports")


def _write_vertex_jsonl(examples, out) -> None:
    for example in examples:
        record = {"contents": [{"role": "user", "parts": [{"text": example.input}]},
                               {"role": "model", "parts": [{"text": example.output}]}]}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")


class _Grammar:
    """Vertex resource names this provider accepts from state, a plan file or the service before they reach a URL:
    under its own location, and its project (by id, or by number as Vertex names resources)."""

    def __init__(self, project: str, location: str):
        parent = rf"projects/(?:{re.escape(project)}|[0-9]{{1,20}})/locations/{re.escape(location)}"
        self.model = re.compile(rf"{parent}/models/[a-z0-9][a-z0-9_-]{{0,62}}")
        self.job = re.compile(rf"{parent}/tuningJobs/[0-9]{{1,20}}")
        self.endpoint = re.compile(rf"{parent}/endpoints/[a-z0-9][a-z0-9-]{{0,62}}")
        self.operation = re.compile(rf"{parent}/(?:models|endpoints|tuningJobs)/[a-z0-9][a-z0-9_-]{{0,62}}"
                                    r"/operations/[0-9]{1,20}")


def _check_owner(labels: dict | None, owner: Owner, resource: str) -> None:
    owner.refuse_foreign((labels or {}).get(LABEL_OWNER), resource)


def _check_label_id_owner(tuned_model_id: str, owner: Owner) -> None:
    """A submission adopts or labels a job with this id: it must carry this state's tag (like Gemini's ids)."""
    match = OWNED_LABEL_ID.fullmatch(tuned_model_id)
    owner.refuse_foreign(match.group(1) if match else None, tuned_model_id, strict=True)


def _observed(model, base_model: str = "") -> ObservedModel:
    return ObservedModel(_unversioned(model.name), model.display_name or "", model.description or "", ACTIVE,
                         base_model, owner=(model.labels or {}).get(LABEL_OWNER))


def _how_far(job) -> dict:
    """JobStatus's progress fields for a job: its completed steps of the data statistics' step count and its
    completed epochs of the hyperparameters' (none until the job runs, or when Vertex does not say)."""
    metadata, stats = job.tuning_job_metadata, job.tuning_data_stats
    total = stats.supervised_tuning_data_stats.tuning_step_count if stats and stats.supervised_tuning_data_stats \
        else None
    if metadata is None or metadata.completed_step_count is None or not total:
        return {}
    spec = job.supervised_tuning_spec
    epochs = spec.hyper_parameters.epoch_count if spec and spec.hyper_parameters else None
    return {"progress": min(1.0, metadata.completed_step_count / total), "epochs": epochs,
            "epoch": metadata.completed_epoch_count if epochs else None}


def _state_name(job) -> str:
    state = job.state
    return getattr(state, "value", None) or str(state or "")


def _unversioned(resource: str) -> str:
    return resource.split("@", 1)[0]


def _split_gcs(uri: str | None) -> tuple[str, str]:
    """gs://bucket/some/prefix -> ("bucket", "some/prefix/")."""
    rest = (uri or "").removeprefix("gs://")
    bucket, _, prefix = rest.partition("/")
    return bucket, (prefix.strip("/") + "/") if prefix.strip("/") else ""


