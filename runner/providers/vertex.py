"""The Vertex AI provider: Gemini supervised tuning jobs on google-genai, datasets staged in GCS.

Datasets are converted to Vertex's JSONL (`contents` with user/model roles) and uploaded once to
`<staging_bucket>/datasets/<canonical-hash>.jsonl`: the hash is the name, so an object already there is
never uploaded again. Tuning jobs take no client-chosen id, so each job carries labels with the model's
tuner id and fingerprint; a submission first looks for a live job with those labels and adopts it, which
is what keeps a retry after an ambiguous failure (or a crash) from paying twice.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable

from runner.datasets import open_examples
from runner.errors import ProviderError, first_line, is_network_error
from runner.identity import Owner
from runner.providers import ProviderContext
from runner.providers.base import (
    ACTIVE,
    CREATING,
    FAILED,
    Capabilities,
    JobStatus,
    ObservedModel,
    checked_endpoint,
    guarded,
    is_loopback,
)
from runner.sdkwarnings import quiet_sdk_banners

ENDPOINT_ENV = "TUNER_VERTEX_ENDPOINT"
TOKEN_ENV = "TUNER_VERTEX_ACCESS_TOKEN"  # e.g. from `gcloud auth print-access-token`, for CI without ADC
DEFAULT_LOCATION = "us-central1"
DISPLAY_NAME_MAX = 128  # the API reference: up to 128 UTF-8 characters
ADAPTER_SIZES = {1: "ADAPTER_SIZE_ONE", 2: "ADAPTER_SIZE_TWO", 4: "ADAPTER_SIZE_FOUR", 8: "ADAPTER_SIZE_EIGHT",
                 16: "ADAPTER_SIZE_SIXTEEN"}
LABEL_ID, LABEL_FINGERPRINT, LABEL_OWNER = "tuner-id", "tuner-fingerprint", "tuner-owner"
LIST_PAGE_SIZE = 100
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024  # resumable upload in 8 MB chunks: never the whole file in memory
_STATES = {
    "JOB_STATE_QUEUED": CREATING, "JOB_STATE_PENDING": CREATING, "JOB_STATE_RUNNING": CREATING,
    "JOB_STATE_UPDATING": CREATING, "JOB_STATE_PAUSED": CREATING, "JOB_STATE_SUCCEEDED": ACTIVE,
    "JOB_STATE_FAILED": FAILED, "JOB_STATE_CANCELLING": FAILED, "JOB_STATE_CANCELLED": FAILED,
    "JOB_STATE_EXPIRED": FAILED,
}
_LIVE = ("JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_UPDATING", "JOB_STATE_PAUSED",
         "JOB_STATE_SUCCEEDED")
quiet_sdk_banners()  # google-genai and google-cloud-storage are imported lazily, on first use


def create(context: ProviderContext) -> VertexProvider:
    return VertexProvider(context.settings)


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
            in_place_fields=frozenset({"display_name", "description"}),
            # None: Vertex picks the value from the dataset size and base model (recorded as such).
            hyperparameter_defaults={"epoch_count": None, "learning_rate_multiplier": None, "adapter_size": None},
            refused_hyperparameters={
                "batch_size": "Vertex AI chooses the batch size for Gemini tuning; remove batch_size",
                "learning_rate": "Vertex AI takes learning_rate_multiplier (a factor on its recommended rate)",
            },
            max_concurrent_jobs=settings.get("max_concurrent_jobs", 5),
            poll_seconds=settings.get("poll_seconds", 30.0),
        )
        self._client = None
        self._storage = None
        self._lock = threading.Lock()
        self._endpoints: dict[str, str] = {}

    # -- plan time -------------------------------------------------------------------------------------
    def plan_problems(self, model) -> list[str]:
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
        return f"{model.name}-{owner.tag}-{model.fingerprint[:10]}"

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
            if code == 412:
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
        jobs = self._call(lambda: list(self._genai().tunings.list(config={
            "page_size": LIST_PAGE_SIZE, "filter": f'labels.{LABEL_ID}="{tuned_model_id}"'})))
        return next((job for job in jobs if (job.labels or {}).get(LABEL_ID) == tuned_model_id
                     and (job.labels or {}).get(LABEL_FINGERPRINT) == fingerprint[:40]
                     and (job.labels or {}).get(LABEL_OWNER) == owner.tag
                     and _state_name(job) in _LIVE), None)

    def poll(self, tuned_model_id: str, handle: str | None) -> JobStatus:
        if not handle:
            return JobStatus(FAILED, "NO_HANDLE", "no tuning job was recorded for this model")
        job = self._call(lambda: self._genai().tunings.get(name=handle), on_not_found=lambda: None)
        if job is None:
            return JobStatus(FAILED, "NOT_FOUND", f"tuning job {handle} no longer exists")
        state = _state_name(job)
        if _STATES.get(state, CREATING) == FAILED:
            message = job.error.message if job.error and job.error.message else state
            return JobStatus(FAILED, state, message)
        if _STATES.get(state) == ACTIVE and job.tuned_model and job.tuned_model.model:
            model_id = _unversioned(job.tuned_model.model)
            self._endpoints[model_id] = job.tuned_model.endpoint
            return JobStatus(ACTIVE, state, tuned_model_id=model_id,
                             resources={"job": job.name, "model": job.tuned_model.model,
                                        "endpoint": job.tuned_model.endpoint})
        return JobStatus(CREATING, state)

    def update(self, tuned_model_id: str, display_name: str, description: str) -> None:
        from google.genai import types

        self._call(lambda: self._genai().models.update(
            model=tuned_model_id, config=types.UpdateModelConfig(display_name=display_name, description=description)))

    def delete(self, tuned_model_id: str, handle: str | None, owner: Owner) -> None:
        """Delete the tuned model; while the job is still running, cancel it instead."""
        if tuned_model_id.startswith("projects/"):
            self._call(lambda: self._genai().models.delete(model=tuned_model_id), on_not_found=lambda: None)
            return
        if not handle:
            return  # nothing was ever submitted
        job = self._call(lambda: self._genai().tunings.get(name=handle), on_not_found=lambda: None)
        if job is None:
            return
        if _STATES.get(_state_name(job)) == CREATING:
            self._call(lambda: self._genai().tunings.cancel(name=handle))
        elif job.tuned_model and job.tuned_model.model:  # it finished meanwhile: delete what it made
            self.delete(_unversioned(job.tuned_model.model), None, owner)

    def list_models(self) -> list[ObservedModel]:
        """Tuned models of the project and location, one paged list call."""
        models = self._call(lambda: list(self._genai().models.list(
            config={"page_size": LIST_PAGE_SIZE, "query_base": False})))
        return [_observed(m) for m in models]

    def get_model(self, tuned_model_id: str) -> ObservedModel | None:
        model = self._call(lambda: self._genai().models.get(model=tuned_model_id), on_not_found=lambda: None)
        return _observed(model) if model is not None else None

    def predict(self, tuned_model_id: str, text: str) -> str:
        endpoint = self._endpoints.get(tuned_model_id) or self._endpoint_of(tuned_model_id)
        response = self._call(lambda: self._genai().models.generate_content(model=endpoint, contents=text))
        return response.text or ""

    def _endpoint_of(self, tuned_model_id: str) -> str:
        model = self._call(lambda: self._genai().models.get(model=tuned_model_id))
        endpoint = next((e.name for e in model.endpoints or [] if e.name), None)
        if not endpoint:
            raise ProviderError(f"{tuned_model_id} is not deployed to an endpoint to answer from", code="NOT_FOUND")
        self._endpoints[tuned_model_id] = endpoint
        return endpoint

    def info(self) -> dict:
        from google.genai import version

        return {"sdk": "google-genai", "version": version.__version__, "project": self.project,
                "location": self.location}


def _write_vertex_jsonl(examples, out) -> None:
    for example in examples:
        record = {"contents": [{"role": "user", "parts": [{"text": example.input}]},
                               {"role": "model", "parts": [{"text": example.output}]}]}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _observed(model) -> ObservedModel:
    labels = model.labels or {}
    return ObservedModel(_unversioned(model.name), model.display_name or "", model.description or "", ACTIVE,
                         labels.get("google-vertex-llm-tuning-base-model-id", ""))


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


