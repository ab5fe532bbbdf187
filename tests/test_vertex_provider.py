"""The vertex provider end to end through the CLI: real google-genai and google-cloud-storage clients
against the Vertex emulator and a fake GCS server, both on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator

import google.oauth2.credentials
import pytest
from google import genai
from google.genai import types

from runner.emulators.vertex import VertexEmulator
from runner.errors import DatasetChangedError
from runner.identity import Owner, owner_tag
from runner.providers.vertex import VertexProvider
from tests.conftest import SteppingClock, bucket, edit_one_example_in_place, planned_model, storage_client
from tests.test_vertex_emulator import rest

PROJECT, LOCATION, BUCKET = "tuner-test", "us-central1", "tuner-staging"
OWNER = Owner("test-lineage", "default")



@pytest.fixture(scope="module")


def gcs(gcs_server):
    bucket(BUCKET)
    return gcs_server


@pytest.fixture
def emulator(gcs) -> Iterator[VertexEmulator]:
    server = VertexEmulator(job_seconds=3.0, clock=SteppingClock(), quota=3,
                            storage_client_factory=storage_client).start()
    yield server
    server.stop()


def spec(emulator: VertexEmulator, models: str) -> str:
    return f"""\
providers:
  vertex:
    project: {PROJECT}
    location: {LOCATION}
    staging_bucket: gs://{BUCKET}/tuner
    endpoint: {emulator.url}
    poll_seconds: 0.01
defaults:
  provider: vertex
  base_model: gemini-2.5-flash
  hyperparameters: {{epoch_count: 10, learning_rate_multiplier: 1.0, adapter_size: 4}}
models:
{models}"""


TWO_SHARING_DATA = """\
  reviews:
    display_name: Reviews
    description: Review sentiment
    dataset: {train: ../data/train.jsonl, validation: ../data/valid.jsonl}
  reviews-copy:
    dataset: {train: ../data/train.jsonl}
    hyperparameters: {epoch_count: 12}
"""


@pytest.fixture
def vertex(project, emulator, monkeypatch):
    monkeypatch.delenv("TUNER_VERTEX_ENDPOINT", raising=False)
    project.spec(spec(emulator, TWO_SHARING_DATA))
    return project


def sdk(emulator: VertexEmulator) -> genai.Client:
    """One client per emulator, kept alive: a collected client closes its connection under its pagers."""
    if not hasattr(emulator, "test_client"):
        emulator.test_client = genai.Client(vertexai=True, project=PROJECT, location=LOCATION,
                                            credentials=google.oauth2.credentials.Credentials(token="t"),
                                            http_options=types.HttpOptions(base_url=emulator.url))
    return emulator.test_client


def delete_by_hand(emulator: VertexEmulator, model_id: str) -> None:
    """As a user does in the console: undeploy the model, wait for that, delete it."""
    for deployment in sdk(emulator).models.get(model=model_id).endpoints:
        _, operation = rest(emulator, "POST", f"{deployment.name}:undeployModel",
                            {"deployedModelId": deployment.deployed_model_id})
        while not operation["done"]:  # the stepping clock moves on with every request
            operation = rest(emulator, "GET", operation["name"])[1]
    sdk(emulator).models.delete(model=model_id)


def staged_objects() -> dict[str, int]:
    return {b.name: b.generation for b in storage_client().list_blobs(BUCKET, prefix="tuner/datasets/")}


def test_apply_stages_each_dataset_once_tunes_and_records_job_model_and_endpoint(vertex, emulator):
    for blob in storage_client().list_blobs(BUCKET):
        blob.delete()
    result = vertex.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    models = vertex.state()["models"]
    train_sha = models["reviews"]["dataset"]["train"]["sha256"]
    valid_sha = models["reviews"]["dataset"]["validation"]["sha256"]
    assert sorted(staged_objects()) == sorted(f"tuner/datasets/{sha}.jsonl" for sha in (train_sha, valid_sha))
    stats = emulator.stats
    assert stats["jobs_by_dataset"] == {f"gs://{BUCKET}/tuner/datasets/{train_sha}.jsonl": 2}
    record = models["reviews"]
    assert record["status"] == "active"
    assert record["tuned_model_id"].startswith(f"projects/{PROJECT}/locations/{LOCATION}/models/")
    assert record["resources"]["job"] == record["handle"]
    assert record["resources"]["endpoint"].startswith(f"projects/{PROJECT}/locations/{LOCATION}/endpoints/")
    assert record["provider_info"]["sdk"] == "google-genai"
    assert record["hyperparameters"] == {"epoch_count": 10, "learning_rate_multiplier": 1.0, "adapter_size": 4}
    assert record["metrics"]["eval_set"]["examples"] == 66
    assert vertex.run("plan", "--detailed-exitcode").code == 0
    answer = vertex.run("predict", "reviews", "Awful. It broke the first week and the seller ignored my emails")
    assert answer.out.strip() == "negative"


def test_a_second_apply_of_the_same_data_reuses_the_staged_object(vertex, emulator):
    vertex.run("apply", "--auto-approve")
    before = staged_objects()
    vertex.spec(spec(emulator, TWO_SHARING_DATA.replace("epoch_count: 12", "epoch_count: 13")))
    assert vertex.run("apply", "--auto-approve").code == 0
    assert staged_objects() == before  # same names, same generations: nothing uploaded again


def test_hyperparameter_change_replaces_and_deletes_the_old_model(vertex, emulator):
    vertex.run("apply", "--auto-approve")
    old_id = vertex.state()["models"]["reviews-copy"]["tuned_model_id"]
    vertex.spec(spec(emulator, TWO_SHARING_DATA.replace("{epoch_count: 12}", "{epoch_count: 13}\n    "
                                                                          "lifecycle: {keep_previous: 0}")))
    change = next(c for c in json.loads(vertex.run("plan", "--json").out)["changes"] if c["name"] == "reviews-copy")
    assert change["action"] == "replace"
    assert vertex.run("apply", "--auto-approve").code == 0
    new_id = vertex.state()["models"]["reviews-copy"]["tuned_model_id"]
    assert new_id != old_id
    remaining = {m.name.split("@")[0] for m in sdk(emulator).models.list(config={"query_base": False})}
    assert old_id not in remaining and new_id in remaining


def test_reverting_a_hyperparameter_change_restores_the_retained_model_without_a_job(vertex, emulator):
    vertex.run("apply", "--auto-approve")
    first = vertex.state()["models"]["reviews-copy"]["tuned_model_id"]
    vertex.spec(spec(emulator, TWO_SHARING_DATA.replace("epoch_count: 12", "epoch_count: 13")))
    assert vertex.run("apply", "--auto-approve").code == 0
    second = vertex.state()["models"]["reviews-copy"]["tuned_model_id"]
    jobs = emulator.stats["create_accepted"]
    vertex.spec(spec(emulator, TWO_SHARING_DATA))
    assert f"<= reviews-copy (vertex) will be restored to {first} (retained; no training, $0)" in \
        vertex.run("plan").out
    result = vertex.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    assert emulator.stats["create_accepted"] == jobs == 3  # two first models, one replacement; no job for the restore
    record = vertex.state()["models"]["reviews-copy"]
    assert record["tuned_model_id"] == first and [r["tuned_model_id"] for r in record["retained"]] == [second]
    remaining = {m.name.split("@")[0] for m in sdk(emulator).models.list(config={"query_base": False})}
    assert {first, second} <= remaining
    assert vertex.run("plan", "--detailed-exitcode").code == 0


def test_description_change_updates_the_model_in_place(vertex, emulator):
    vertex.run("apply", "--auto-approve")
    tuned_id = vertex.state()["models"]["reviews"]["tuned_model_id"]
    vertex.spec(spec(emulator, TWO_SHARING_DATA.replace("Review sentiment", "Sentiment of reviews")))
    assert vertex.run("apply", "--auto-approve").code == 0
    assert sdk(emulator).models.get(model=tuned_id).description == "Sentiment of reviews"
    assert emulator.stats["create_accepted"] == 2


def test_plan_detects_a_model_deleted_outside_tuner(vertex, emulator):
    vertex.run("apply", "--auto-approve")
    tuned_id = vertex.state()["models"]["reviews"]["tuned_model_id"]
    delete_by_hand(emulator, tuned_id)
    result = vertex.run("plan", "--detailed-exitcode")  # refresh is the default
    assert result.code == 2 and "deleted outside tuner" in result.out


def test_batch_size_is_refused_with_the_vertex_alternative(vertex, emulator):
    vertex.spec(spec(emulator, TWO_SHARING_DATA.replace("epoch_count: 12", "epoch_count: 12, batch_size: 8")))
    result = vertex.run("validate")
    assert result.code == 1
    assert "models.reviews-copy.hyperparameters.batch_size: Vertex AI chooses the batch size" in result.err


def test_missing_project_or_bucket_is_a_plan_time_error(project, emulator):
    project.spec(spec(emulator, TWO_SHARING_DATA).replace(f"    project: {PROJECT}\n", ""))
    result = project.run("plan")
    assert result.code == 1 and "providers.vertex.project is required" in result.err


def test_more_models_than_the_quota_all_finish(project, emulator):
    models = "".join(f"  task-{i}:\n    dataset: {{train: ../data/train.jsonl}}\n"
                     f"    hyperparameters: {{epoch_count: {i + 1}}}\n" for i in range(5))
    project.spec(spec(emulator, models).replace("    poll_seconds: 0.01", "    poll_seconds: 0.01\n"
                                                "    max_concurrent_jobs: 5"))
    result = project.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    assert emulator.stats["states"] == {"JOB_STATE_SUCCEEDED": 5}
    assert emulator.stats["rejected_by_status"].get("429", 0) > 0


def provider_of(gcs, emulator) -> VertexProvider:
    return VertexProvider({"project": PROJECT, "location": LOCATION, "staging_bucket": f"gs://{BUCKET}/tuner",
                           "endpoint": emulator.url}, environ={"STORAGE_EMULATOR_HOST": gcs.url})


def killed_before_the_job_name_reached_state(project, workspace: str = "default") -> dict:
    """Apply, then rewrite the state as if the process died after Vertex accepted the job but before the job's name
    reached state: a submission recorded under its label-borne tuner id, with no handle. The record applied."""
    path = project.root / "state" / f"{workspace}.json"
    state = json.loads(path.read_text())
    record = state["models"]["reviews"]
    intent = {key: value for key, value in record.items() if key not in ("handle", "resources", "metrics")}
    tag = owner_tag(state["lineage"], workspace)
    intent |= {"status": "submitting", "tuned_model_id": f"reviews-{tag}-{record['fingerprint'][:10]}"}
    state["models"]["reviews"] = {"pending": intent}
    path.write_text(json.dumps(state))
    return record


def test_a_crashed_submission_is_adopted_not_paid_twice(vertex, emulator):
    assert vertex.run("apply", "--auto-approve").code == 0
    jobs_before = emulator.stats["create_accepted"]
    record = killed_before_the_job_name_reached_state(vertex)
    result = vertex.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    assert emulator.stats["create_accepted"] == jobs_before  # found by its labels and adopted
    assert vertex.state()["models"]["reviews"]["tuned_model_id"] == record["tuned_model_id"]


def test_hyperparameters_left_to_vertex_are_recorded_as_null_and_apply_works(project, emulator):
    project.spec(spec(emulator, "  plain:\n    dataset: {train: ../data/train.jsonl}\n    hyperparameters: {}\n")
                 .replace("  hyperparameters: {epoch_count: 10, learning_rate_multiplier: 1.0, adapter_size: 4}\n", ""))
    result = project.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    assert project.state()["models"]["plain"]["hyperparameters"] == {
        "epoch_count": None, "learning_rate_multiplier": None, "adapter_size": None}


def test_data_changed_since_the_plan_is_neither_staged_nor_tuned(gcs, emulator, vertex):
    for blob in storage_client().list_blobs(BUCKET):
        blob.delete()
    model = planned_model("reviews")
    edit_one_example_in_place(vertex.root / "data" / "train.jsonl")
    provider = provider_of(gcs, emulator)
    with pytest.raises(DatasetChangedError, match=r"^data/train.jsonl changed since it was planned: planned sha256:"):
        provider.submit(model, provider.tuned_model_id(model, OWNER), OWNER)
    assert staged_objects() == {}  # nothing uploaded, under the planned name or any other
    assert emulator.stats["create_accepted"] == 0


def test_an_object_already_staged_under_the_planned_hash_does_not_vouch_for_a_changed_file(gcs, emulator, vertex):
    model = planned_model("reviews")
    provider = provider_of(gcs, emulator)
    staged = provider.stage_dataset(model, "train")
    assert staged.endswith(f"/datasets/{model.train.sha256}.jsonl")
    before = staged_objects()
    edit_one_example_in_place(vertex.root / "data" / "train.jsonl")
    with pytest.raises(DatasetChangedError, match=r"^data/train.jsonl changed since it was planned"):
        provider.submit(model, provider.tuned_model_id(model, OWNER), OWNER)
    assert staged_objects() == before
    assert emulator.stats["create_accepted"] == 0


def test_state_records_the_vertex_settings_and_a_project_change_is_shown_in_the_plan(vertex, emulator):
    assert vertex.run("apply", "--auto-approve").code == 0
    assert vertex.state()["providers"]["vertex"] == {"endpoint": emulator.url, "project": PROJECT,
                                                     "location": LOCATION, "staging_bucket": f"gs://{BUCKET}/tuner"}
    vertex.spec(spec(emulator, TWO_SHARING_DATA).replace(f"project: {PROJECT}", "project: someone-else"))
    result = vertex.run("plan", "--detailed-exitcode")
    assert result.code == 2
    assert f'project = "{PROJECT}" -> "someone-else"' in result.out


@pytest.mark.parametrize("where", ["spec", "environment"])
def test_a_plain_http_vertex_endpoint_off_this_machine_is_refused(vertex, emulator, monkeypatch, where):
    if where == "spec":
        vertex.spec(spec(emulator, TWO_SHARING_DATA).replace(emulator.url, "http://evil.example"))
    else:
        monkeypatch.setenv("TUNER_VERTEX_ENDPOINT", "http://evil.example")
    result = vertex.run("plan")
    assert result.code == 1
    setting = "providers.vertex.endpoint" if where == "spec" else "TUNER_VERTEX_ENDPOINT"
    assert f"{setting}: 'http://evil.example': an endpoint must be https://" in result.err, result.err


def test_apply_prints_no_warning_of_the_sdk(project, emulator):
    """google-genai calls tuning experimental (an ExperimentalWarning, once per process, at the first job): a user
    of tuner sees only tuner."""
    from tests.test_sdk_warnings import run_showing_warnings

    project.spec(spec(emulator, "  reviews:\n    dataset: {train: ../data/train.jsonl}\n"))
    result = run_showing_warnings(project, "apply", "--auto-approve")
    assert result.returncode == 0, result.stderr
    assert emulator.stats["jobs_by_dataset"]  # the SDK tuned for real
    assert "Warning" not in result.stderr, result.stderr
