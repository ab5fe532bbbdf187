"""The Vertex AI emulator, driven only through the real google-genai SDK, with datasets in a real fake-gcs-server."""

from __future__ import annotations

import json
import random
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import google.oauth2.credentials
import pytest
from google import genai
from google.genai import errors, types

from runner.emulators import vertex as vertex_emulator
from runner.emulators.vertex import PARTIAL_OUTPUT, POISON_OUTPUT, VertexEmulator
from tests.conftest import FakeClock, bucket, storage_client

PROJECT, LOCATION, BUCKET = "tuner-test", "us-central1", "tuner-datasets"
TRAIN_URI = f"gs://{BUCKET}/sentiment/train.jsonl"
POISON_URI = f"gs://{BUCKET}/poison/train.jsonl"
MISSING_URI = f"gs://{BUCKET}/missing/train.jsonl"
JOB_SECONDS = 10.0

POSITIVE = ["wonderful", "delightful", "brilliant", "superb", "lovely", "charming", "excellent", "joyful"]
NEGATIVE = ["terrible", "awful", "dreadful", "boring", "horrible", "miserable", "painful", "disappointing"]
SUBJECTS = ["the film", "this meal", "our trip", "the concert", "that book", "the service"]


def example(text: str, label: str) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}, {"role": "model", "parts": [{"text": label}]}]}


def sentiment_lines(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        words, label = (POSITIVE, "positive") if i % 2 == 0 else (NEGATIVE, "negative")
        lines.append(example(f"{rng.choice(SUBJECTS)} was {rng.choice(words)} and {rng.choice(words)}", label))
    return lines


def to_jsonl(lines: list[dict]) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)



@pytest.fixture(scope="module")
def gcs(gcs_server):
    datasets = bucket(BUCKET)
    datasets.blob("sentiment/train.jsonl").upload_from_string(to_jsonl(sentiment_lines(60, seed=1)))
    poisoned = sentiment_lines(10, seed=2) + [example("anything at all", POISON_OUTPUT)]
    datasets.blob("poison/train.jsonl").upload_from_string(to_jsonl(poisoned))
    return gcs_server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_emulator(gcs, clock, tmp_path) -> Iterator:
    started: list[VertexEmulator] = []

    def make(**options) -> VertexEmulator:
        options = {"job_seconds": JOB_SECONDS, "clock": clock, "quota": 3,
                   "storage_client_factory": storage_client} | options
        emulator = VertexEmulator(**options).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(make_emulator) -> VertexEmulator:
    return make_emulator()


def sdk(emulator: VertexEmulator) -> genai.Client:
    return genai.Client(
        vertexai=True, project=PROJECT, location=LOCATION,
        credentials=google.oauth2.credentials.Credentials(token="t"),
        http_options=types.HttpOptions(base_url=emulator.url),
    )


@pytest.fixture
def client(emulator) -> genai.Client:
    return sdk(emulator)


def tune(client: genai.Client, uri: str = TRAIN_URI, name: str = "sentiment", **config) -> types.TuningJob:
    settings = {"epoch_count": 4, "learning_rate_multiplier": 1.0, "adapter_size": types.AdapterSize.ADAPTER_SIZE_FOUR,
                "tuned_model_display_name": name} | config
    return client.tunings.tune(base_model="gemini-2.5-flash", training_dataset=types.TuningDataset(gcs_uri=uri),
                               config=types.CreateTuningJobConfig(**settings))


def run_to_end(client: genai.Client, clock: FakeClock, job: types.TuningJob) -> types.TuningJob:
    clock.advance(JOB_SECONDS)
    return client.tunings.get(name=job.name)


def ask(client: genai.Client, endpoint: str, text: str) -> str:
    return client.models.generate_content(model=endpoint, contents=text).text


def test_a_tuning_job_runs_succeeds_and_its_endpoint_answers_like_the_data(client, clock, emulator):
    job = tune(client, validation_dataset=types.TuningValidationDataset(gcs_uri=TRAIN_URI), description="smoke")
    assert re.fullmatch(rf"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/\d+", job.name)
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.tuned_model_display_name == "sentiment" and job.description == "smoke"
    hyper = job.supervised_tuning_spec.hyper_parameters
    assert (hyper.epoch_count, hyper.learning_rate_multiplier) == (4, 1.0)
    assert hyper.adapter_size == types.AdapterSize.ADAPTER_SIZE_FOUR

    clock.advance(JOB_SECONDS / 2)
    running = client.tunings.get(name=job.name)
    assert running.state == types.JobState.JOB_STATE_RUNNING and running.start_time and not running.tuned_model

    done = run_to_end(client, clock, job)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.end_time and not done.error
    assert re.fullmatch(rf"projects/{PROJECT}/locations/{LOCATION}/models/\d+@1", done.tuned_model.model)
    assert re.fullmatch(rf"projects/{PROJECT}/locations/{LOCATION}/endpoints/\d+", done.tuned_model.endpoint)
    assert done.tuning_data_stats.supervised_tuning_data_stats.tuning_dataset_example_count == 60

    assert ask(client, done.tuned_model.endpoint, "the weather was lovely and delightful") == "positive"
    assert ask(client, done.tuned_model.endpoint, "the queue was dreadful and boring") == "negative"

    stats = emulator.stats
    assert stats["create_accepted"] == 1
    assert stats["jobs_by_display_name"] == {"sentiment": 1} and stats["jobs_by_dataset"] == {TRAIN_URI: 1}
    assert stats["states"] == {"JOB_STATE_SUCCEEDED": 1}
    assert stats["calls"]["get"] == 2 and stats["calls"]["generate"] == 2
    with urllib.request.urlopen(f"{emulator.url}/_emulator/stats") as response:
        assert json.load(response)["create_accepted"] == 1


def test_list_pages_through_every_job_newest_first(client, clock, emulator):
    names = [tune(client, name=f"job-{i}").name for i in range(3)]
    clock.advance(JOB_SECONDS)  # frees the quota of 3
    names += [tune(client, name=f"job-{i}").name for i in range(3, 5)]

    pager = client.tunings.list(config={"page_size": 2})
    assert len(pager.page) == 2
    listed = [job.name for job in pager]
    assert listed == names[::-1]
    assert emulator.stats["calls"]["list"] == 3


def test_cancel_stops_an_active_job_and_refuses_a_finished_one(client, clock):
    job = tune(client)
    client.tunings.cancel(name=job.name)
    cancelled = client.tunings.get(name=job.name)
    assert cancelled.state == types.JobState.JOB_STATE_CANCELLED and cancelled.error.code == 1
    clock.advance(JOB_SECONDS)
    assert client.tunings.get(name=job.name).state == types.JobState.JOB_STATE_CANCELLED

    with pytest.raises(errors.ClientError) as refused:
        client.tunings.cancel(name=job.name)
    assert (refused.value.code, refused.value.status) == (400, "FAILED_PRECONDITION")


def test_quota_of_active_jobs_answers_429_until_one_ends(client, emulator):
    jobs = [tune(client) for _ in range(3)]
    with pytest.raises(errors.ClientError) as exhausted:
        tune(client)
    assert (exhausted.value.code, exhausted.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert emulator.stats["create_accepted"] == 3

    client.tunings.cancel(name=jobs[0].name)
    assert tune(client).state == types.JobState.JOB_STATE_PENDING


@pytest.mark.parametrize(("uri", "message"), [(POISON_URI, POISON_OUTPUT), (MISSING_URI, "does not exist")])
def test_a_bad_dataset_fails_the_job_with_a_clear_message(client, clock, uri, message):
    job = tune(client, uri=uri)
    failed = run_to_end(client, clock, job)
    assert failed.state == types.JobState.JOB_STATE_FAILED and not failed.tuned_model
    assert failed.error.code == 3 and message in failed.error.message and uri in failed.error.message


@pytest.mark.parametrize(("base_model", "config", "fragment"), [
    ("gemini-9-ultra", {}, "base_model"),
    ("gemini-2.5-flash", {"epoch_count": 0}, "epoch_count"),
    ("gemini-2.5-flash", {"learning_rate_multiplier": -1.0}, "learning_rate_multiplier"),
    ("gemini-2.5-flash", {"adapter_size": types.AdapterSize.ADAPTER_SIZE_THIRTY_TWO}, "adapter size"),
])
def test_invalid_creates_are_rejected_like_vertex(client, emulator, base_model, config, fragment):
    with pytest.raises(errors.ClientError) as rejected:
        client.tunings.tune(base_model=base_model, training_dataset=types.TuningDataset(gcs_uri=TRAIN_URI),
                            config=types.CreateTuningJobConfig(**config))
    assert (rejected.value.code, rejected.value.status) == (400, "INVALID_ARGUMENT")
    assert fragment in rejected.value.message
    assert emulator.stats["create_accepted"] == 0


def test_a_dataset_that_is_not_jsonl_is_rejected_at_create(client):
    with pytest.raises(errors.ClientError) as rejected:
        tune(client, uri=f"gs://{BUCKET}/data.csv")
    assert rejected.value.code == 400 and "training_dataset_uri should be a GCS object of type JSONL" in str(
        rejected.value)


def test_requests_without_a_bearer_token_are_unauthenticated(emulator):
    # With an API key instead of credentials, the SDK sends x-goog-api-key and no Authorization header.
    keyed = genai.Client(vertexai=True, api_key="key", http_options=types.HttpOptions(base_url=emulator.url))
    with pytest.raises(errors.ClientError) as refused:
        keyed.tunings.get(name=f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/1")
    assert (refused.value.code, refused.value.status) == (401, "UNAUTHENTICATED")


def rest(emulator: VertexEmulator, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """A raw REST call, for the calls google-genai does not make (endpoints, operations) and for malformed ones."""
    request = urllib.request.Request(f"{emulator.url}/v1beta1/{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": "Bearer t", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_deployed_model_is_refused_deletion_until_undeployed_as_vertex_does(client, clock, emulator):
    done = run_to_end(client, clock, tune(client, name="to-delete", labels={"team": "search"}))
    model_name, endpoint = done.tuned_model.model.split("@")[0], done.tuned_model.endpoint
    model = client.models.get(model=done.tuned_model.model)
    assert model.name == model_name and model.display_name == "to-delete"
    assert model.endpoints[0].name == endpoint
    assert model.tuned_model_info.base_model == "gemini-2-5-flash"
    assert model.labels["team"] == "search"  # the job's labels reach the model it generates ...
    assert rest(emulator, "GET", endpoint)[1]["labels"]["team"] == "search"  # ... and its endpoint
    assert [m.name for m in client.models.list(config={"query_base": False})] == [model_name]

    with pytest.raises(errors.ClientError) as refused:
        client.models.delete(model=model_name)
    assert (refused.value.code, refused.value.status) == (400, "FAILED_PRECONDITION")
    assert refused.value.message == (f'The Model "{model_name}" is deployed or being deployed at the following '
                                     f"Endpoint(s): {endpoint}.")
    status, body = rest(emulator, "DELETE", endpoint)
    assert (status, body["error"]["status"]) == (400, "FAILED_PRECONDITION")

    status, operation = rest(emulator, "POST", f"{endpoint}:undeployModel",
                             {"deployedModelId": model.endpoints[0].deployed_model_id})
    assert status == 200 and operation["done"] is False and "/operations/" in operation["name"]
    with pytest.raises(errors.ClientError):  # still being undeployed
        client.models.delete(model=model_name)
    clock.advance(1.0)
    assert rest(emulator, "GET", operation["name"])[1]["done"] is True
    with pytest.raises(errors.ClientError) as idle:
        ask(client, endpoint, "lovely")
    assert (idle.value.code, idle.value.status) == (400, "FAILED_PRECONDITION")

    client.models.delete(model=model_name)
    assert rest(emulator, "DELETE", endpoint)[1]["done"] is True
    assert rest(emulator, "GET", endpoint)[0] == 404
    with pytest.raises(errors.ClientError) as missing:
        client.models.get(model=model_name)
    assert missing.value.code == 404
    assert list(client.models.list(config={"query_base": False})) == []


@pytest.mark.parametrize("body, message", [
    ({"epochs": 3}, 'Invalid JSON payload received. Unknown name "epochs" at \'tuning_job\': Cannot find field.'),
    ({"supervisedTuningSpec": {"trainingDatasetUri": TRAIN_URI, "hyperParameters": {"epochs": 3}}},
     'Invalid JSON payload received. Unknown name "epochs" at \'tuning_job.supervised_tuning_spec.hyper_parameters\': '
     "Cannot find field."),
])
def test_unknown_request_fields_are_rejected_like_the_api(emulator, body, message):
    status, answer = rest(emulator, "POST", f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs",
                          {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": TRAIN_URI}}
                          | body)
    assert status == 400
    assert answer["error"]["status"] == "INVALID_ARGUMENT" and answer["error"]["message"] == message
    assert answer["error"]["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert emulator.stats["create_accepted"] == 0


def test_list_filters_select_by_label_and_malformed_ones_are_400(client):
    mine = tune(client, labels={"tuner-id": "reviews-1"})
    tune(client, labels={"tuner-id": "other-2"})
    tune(client)
    assert [j.name for j in client.tunings.list(config={"filter": 'labels.tuner-id="reviews-1"'})] == [mine.name]
    assert len(list(client.tunings.list(config={"filter": "labels.tuner-id:*"}))) == 2
    for malformed in ("labels.tuner-id=", "labels.", 'labels.tuner-id="x', "state=((", "tuner-id"):
        with pytest.raises(errors.ClientError) as rejected:
            list(client.tunings.list(config={"filter": malformed}))
        assert (rejected.value.code, rejected.value.status) == (400, "INVALID_ARGUMENT"), malformed


def test_a_job_trained_on_part_of_its_data_ends_partially_succeeded(client, clock, gcs):
    lines = sentiment_lines(20, seed=3) + [example("anything at all", PARTIAL_OUTPUT)]
    bucket(BUCKET).blob("partial/train.jsonl").upload_from_string(to_jsonl(lines))
    done = run_to_end(client, clock, tune(client, uri=f"gs://{BUCKET}/partial/train.jsonl"))
    assert done.state == types.JobState.JOB_STATE_PARTIALLY_SUCCEEDED
    assert done.tuned_model.model and "1 of 21 examples could not be used" in done.error.message


def test_the_emulator_speaks_the_published_api_definition():
    """Every route, request field and enum value the emulator knows is in Google's discovery document of the
    aiplatform v1beta1 API (shipped with google-api-python-client, a dependency of google-generativeai)."""
    import googleapiclient

    document = json.loads((Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" /
                           "aiplatform.v1beta1.json").read_text())
    schemas, found = document["schemas"], set()
    for name, fields in vertex_emulator.REQUEST_FIELDS.items():
        published = schemas[f"GoogleCloudAiplatformV1beta1{name}"]["properties"]
        assert set(fields) <= set(published), name
        found.add(name)
    assert found >= {"TuningJob", "Model", "UndeployModelRequest", "GenerateContentRequest"}
    states = set(schemas["GoogleCloudAiplatformV1beta1TuningJob"]["properties"]["state"]["enum"])
    assert states >= vertex_emulator.JOB_STATES
    sizes = set(schemas["GoogleCloudAiplatformV1beta1SupervisedHyperParameters"]["properties"]["adapterSize"]["enum"])
    assert sizes >= vertex_emulator.ADAPTER_SIZES
    resources = document["resources"]["projects"]["resources"]["locations"]["resources"]
    published_methods = {f"{name}.{method}": spec["httpMethod"] for name, resource in resources.items()
                         for method, spec in resource.get("methods", {}).items()}
    published_methods |= {f"{name}.{sub}.{method}": spec["httpMethod"] for name, resource in resources.items()
                          for sub, inner in resource.get("resources", {}).items()
                          for method, spec in inner.get("methods", {}).items()}
    assert vertex_emulator.PUBLISHED_METHODS.items() <= published_methods.items()


def test_state_survives_a_restart_and_running_jobs_finish_after_it(make_emulator, clock, tmp_path: Path):
    state = tmp_path / "vertex.json"
    first = make_emulator(persist_path=state)
    done = run_to_end(sdk(first), clock, tune(sdk(first), name="before"))
    running = tune(sdk(first), name="during")
    first.stop()
    assert state.exists() and not state.with_name("vertex.json.tmp").exists()

    second = make_emulator(persist_path=state)
    client = sdk(second)
    assert client.tunings.get(name=done.name).tuned_model.endpoint == done.tuned_model.endpoint
    assert ask(client, done.tuned_model.endpoint, "that book was superb and charming") == "positive"  # retrained
    finished = run_to_end(client, clock, running)
    assert finished.state == types.JobState.JOB_STATE_SUCCEEDED
    assert second.stats["jobs_by_display_name"] == {"before": 1, "during": 1}


def test_faults_answer_503_without_side_effects(make_emulator):
    flaky = make_emulator(fault_rate=1.0)
    with pytest.raises(errors.ServerError) as unavailable:
        tune(sdk(flaky))
    assert (unavailable.value.code, unavailable.value.status) == (503, "UNAVAILABLE")
    stats = flaky.stats
    assert stats["create_accepted"] == 0 and stats["faults_injected"] == 1


def _create_outcome(client: genai.Client, name: str) -> str:
    try:
        tune(client, name=name)
    except errors.APIError as error:
        return str(error.code)
    return "created"


def _fault_outcomes(make_emulator, order: list[str]) -> dict[str, list[str]]:
    """What each of three attempts to create each job meets, trying the jobs in ORDER."""
    client = sdk(make_emulator(fault_rate=0.5, seed=7, quota=100))
    return {name: [_create_outcome(client, name) for _ in range(3)] for name in order}


def test_a_fault_depends_on_the_request_and_its_attempt_not_on_what_other_requests_came_first(make_emulator):
    names = [f"order-{index}" for index in range(8)]

    forward, backward = _fault_outcomes(make_emulator, names), _fault_outcomes(make_emulator, names[::-1])

    assert forward == backward  # threads interleave requests differently on every run: faults must not care
    assert {"created", "503"} <= {outcome for attempts in forward.values() for outcome in attempts}


def test_an_ambiguous_create_starts_the_job_but_answers_503(make_emulator):
    ambiguous = make_emulator(ambiguous_create_rate=1.0)
    with pytest.raises(errors.ServerError) as unavailable:
        tune(sdk(ambiguous), name="accepted")
    assert unavailable.value.code == 503
    stats = ambiguous.stats
    assert stats["create_accepted"] == 1 and stats["ambiguous_creates"] == 1
    assert stats["jobs_by_display_name"] == {"accepted": 1}


def test_a_job_reports_its_steps_and_epochs_as_it_runs_and_the_provider_reads_them_as_progress(
        client, clock, gcs, emulator):
    from runner.providers.vertex import VertexProvider

    provider = VertexProvider({"project": PROJECT, "location": LOCATION, "staging_bucket": f"gs://{BUCKET}/tuner",
                               "endpoint": emulator.url}, environ={"STORAGE_EMULATOR_HOST": gcs.url})
    job = tune(client)  # 60 examples in batches of 8: 8 steps an epoch, 4 epochs
    assert provider.poll("sentiment", job.name).progress is None  # pending: no statistics yet
    clock.advance(JOB_SECONDS / 10 + 0.9 * JOB_SECONDS / 2)  # half way through the running time

    running = client.tunings.get(name=job.name)
    assert running.tuning_data_stats.supervised_tuning_data_stats.tuning_step_count == 32
    assert (running.tuning_job_metadata.completed_step_count, running.tuning_job_metadata.completed_epoch_count) \
        == (16, 2)
    status = provider.poll("sentiment", job.name)
    assert (status.state, status.progress, status.epoch, status.epochs) == ("creating", 0.5, 2, 4)
    clock.advance(JOB_SECONDS)
    done = provider.poll("sentiment", job.name)
    assert (done.state, done.progress, done.epoch, done.epochs) == ("active", 1.0, 4, 4)
