"""Vertex ownership and deletion, as the real service behaves: a tuned model carries its owner's tag in labels
(copied from the job), workspaces never share one, a delete never touches another state's model, a deployed
model is undeployed (and its endpoint deleted) before the model is deleted, an id from an edited state never
reaches a URL, and an imported model's base model is read from the job that made it."""

from __future__ import annotations

import json

import pytest
from google.genai import types

from runner.emulators.vertex import PARTIAL_OUTPUT, VertexEmulator
from runner.errors import NotOwnedError
from runner.identity import Owner, owner_tag
from tests.conftest import FakeClock, SteppingClock, planned_model, storage_client
from tests.test_vertex_provider import (
    BUCKET,
    LOCATION,
    PROJECT,
    killed_before_the_job_name_reached_state,
    provider_of,
    sdk,
    spec,
)

ONE = """\
  reviews:
    display_name: Reviews
    dataset: {train: ../data/train.jsonl}
"""


@pytest.fixture(scope="module")
def gcs(gcs_server):
    from tests.conftest import bucket

    bucket(BUCKET)
    return gcs_server


@pytest.fixture
def emulator(gcs):
    # Filters ignored: adoption must never depend on the service honouring a label filter.
    server = VertexEmulator(job_seconds=3.0, clock=SteppingClock(), quota=3, honour_filters=False,
                            storage_client_factory=storage_client).start()
    yield server
    server.stop()


@pytest.fixture
def vertex(project, emulator, monkeypatch):
    monkeypatch.delenv("TUNER_VERTEX_ENDPOINT", raising=False)
    project.spec(spec(emulator, ONE))
    return project


def models(emulator) -> list[str]:
    return [m.name for m in sdk(emulator).models.list(config={"query_base": False})]


def _apply_dev_and_prod(project) -> tuple[str, str]:
    """Both workspaces applied from the same configs; their tuned model ids."""
    for workspace in ("dev", "prod"):
        result = project.run("apply", "--auto-approve", "-w", workspace)
        assert result.code == 0 and "adopting" not in result.output, result.output
    return tuple(project.state(w)["models"]["reviews"]["tuned_model_id"] for w in ("dev", "prod"))


def _steal(project, victim: str, thief: str) -> str:
    stolen = project.state(victim)["models"]["reviews"]["tuned_model_id"]
    path = project.root / "state" / f"{thief}.json"
    state = json.loads(path.read_text())
    state["models"]["reviews"]["tuned_model_id"] = stolen
    path.write_text(json.dumps(state))
    return stolen


# -- workspaces never share a model --------------------------------------------------------------------------


def test_vertex_workspaces_never_share_a_model_and_destroy_in_dev_leaves_prod_serving(vertex, emulator):
    dev_id, prod_id = _apply_dev_and_prod(vertex)
    assert dev_id != prod_id and emulator.stats["create_accepted"] == 2
    labels = sdk(emulator).models.get(model=prod_id).labels
    assert labels["tuner-owner"] == owner_tag(vertex.state("prod")["lineage"], "prod")  # copied from the job
    destroyed = vertex.run("destroy", "--auto-approve", "-w", "dev")
    assert destroyed.code == 0, destroyed.output
    assert models(emulator) == [prod_id]
    answer = vertex.run("predict", "-w", "prod", "reviews", "Terrible quality, it broke after one day")
    assert answer.code == 0, answer.output


def test_destroy_never_deletes_a_vertex_model_of_another_workspace(vertex, emulator):
    _apply_dev_and_prod(vertex)
    stolen = _steal(vertex, "dev", "prod")
    # dev forgets it, so no state of the backend references it (runner.references): only its owner tag guards it
    assert vertex.run("state", "rm", "reviews", "-w", "dev").code == 0
    result = vertex.run("destroy", "--auto-approve", "-w", "prod")
    assert result.code == 0, result.output
    assert "not deleted" in result.output and "does not carry this state's identity" in result.output
    assert stolen in models(emulator)
    assert emulator.stats["calls"].get("undeploy", 0) == 0  # nothing of it was touched, not even its endpoint


def test_a_crashed_vertex_submission_adopts_its_own_job_even_when_filters_are_ignored(vertex, emulator):
    _apply_dev_and_prod(vertex)
    jobs_before = emulator.stats["create_accepted"]
    record = killed_before_the_job_name_reached_state(vertex, "prod")
    result = vertex.run("apply", "--auto-approve", "-w", "prod")
    assert result.code == 0, result.output
    assert emulator.stats["create_accepted"] == jobs_before
    assert vertex.state("prod")["models"]["reviews"]["handle"] == record["handle"]  # its own, not dev's


def test_a_crashed_vertex_submission_superseded_by_a_new_config_leaves_no_orphan_model(vertex, emulator):
    """A SIGKILL between tunings.tune and the state write, then a config change: the abandoned submission has no
    job name, and ending it must find its job by the labels, or that job's model stays on, unknown to state."""
    assert vertex.run("apply", "--auto-approve").code == 0
    record = killed_before_the_job_name_reached_state(vertex)
    vertex.spec(spec(emulator, ONE.replace("dataset:", "hyperparameters: {epoch_count: 3}\n    dataset:")))
    result = vertex.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    assert models(emulator) == [vertex.state()["models"]["reviews"]["tuned_model_id"]]
    assert record["tuned_model_id"] not in models(emulator)


@pytest.fixture
def frozen(gcs):
    """An emulator whose jobs never finish: what a delete finds is still training."""
    with VertexEmulator(job_seconds=3.0, clock=FakeClock(), storage_client_factory=storage_client) as server:
        yield server


def _running_job_labelled(gcs, emulator, tuner_id: str, owner: Owner) -> str:
    uri = provider_of(gcs, emulator).stage_dataset(planned_model("reviews"), "train")
    return sdk(emulator).tunings.tune(
        base_model="gemini-2.5-flash", training_dataset=types.TuningDataset(gcs_uri=uri),
        config=types.CreateTuningJobConfig(labels={"tuner-id": tuner_id, "tuner-owner": owner.tag})).name


RECORDED = pytest.mark.parametrize("recorded", [True, False],
                                   ids=["job-name-in-state", "killed-before-the-job-name-reached-state"])


@RECORDED
def test_deleting_a_model_whose_job_still_runs_cancels_the_job(gcs, frozen, vertex, recorded):
    """With no job name recorded (a SIGKILL between tunings.tune and the state write) the job's labels name it."""
    owner = Owner("lineage", "default")
    tuner_id = f"reviews-{owner.tag}-0123456789"
    job = _running_job_labelled(gcs, frozen, tuner_id, owner)
    provider_of(gcs, frozen).delete(tuner_id, job if recorded else None, owner)
    assert sdk(frozen).tunings.get(name=job).state.value == "JOB_STATE_CANCELLED"


@RECORDED
def test_a_running_job_of_another_workspace_is_never_cancelled(gcs, frozen, vertex, recorded):
    """Even one labelled with this submission's tuner id (an edited or forged label): its owner label decides."""
    owner = Owner("lineage", "prod")
    tuner_id = f"reviews-{owner.tag}-0123456789"
    job = _running_job_labelled(gcs, frozen, tuner_id, Owner("lineage", "dev"))
    with pytest.raises(NotOwnedError):
        provider_of(gcs, frozen).delete(tuner_id, job if recorded else None, owner)
    assert sdk(frozen).tunings.get(name=job).state.value == "JOB_STATE_PENDING"  # untouched: the clock is frozen


def test_a_resumed_vertex_job_is_adopted_only_when_it_carries_this_states_identity(vertex, emulator):
    assert vertex.run("apply", "--auto-approve", "-w", "dev").code == 0
    dev = vertex.state("dev")
    dev_fingerprint = dev["models"]["reviews"]["fingerprint"]
    dev_label_id = f"reviews-{owner_tag(dev['lineage'], 'dev')}-{dev_fingerprint[:10]}"
    vertex.spec(spec(emulator, ONE.replace("dataset:", "hyperparameters: {epoch_count: 3}\n    dataset:")))
    assert vertex.run("apply", "--auto-approve", "-w", "prod").code == 0
    path = vertex.root / "state" / "prod.json"
    state = json.loads(path.read_text())
    record = state["models"]["reviews"]
    # An edited state whose pending job names dev's job: a crash-resume would "adopt" it.
    record["pending"] = {**{k: v for k, v in record.items() if k not in ("handle", "metrics", "resources")},
                         "status": "submitting", "tuned_model_id": dev_label_id, "fingerprint": dev_fingerprint}
    path.write_text(json.dumps(state))
    vertex.spec(spec(emulator, ONE))
    jobs_before = emulator.stats["create_accepted"]
    result = vertex.run("apply", "--auto-approve", "-w", "prod")
    assert result.code == 1
    assert "adopting" not in result.output and "does not carry this state's identity" in result.output
    assert emulator.stats["create_accepted"] == jobs_before
    assert json.loads(path.read_text())["models"]["reviews"]["pending"]["status"] == "failed"


# -- ids from state never reach a URL unchecked ----------------------------------------------------------------


@pytest.mark.parametrize("field, evil", [
    ("tuned_model_id", f"projects/{PROJECT}/locations/{LOCATION}/models/../../../../v1/projects/x/models/1"),
    ("tuned_model_id", f"projects/{PROJECT}/locations/europe-west4/models/123"),  # another location
    ("tuned_model_id", f"projects/{PROJECT}/locations/{LOCATION}/models/1?alt=media"),
    ("handle", f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/1/../../models/2"),
])
def test_a_vertex_id_from_an_edited_state_never_reaches_a_url(vertex, emulator, field, evil):
    assert vertex.run("apply", "--auto-approve").code == 0
    path = vertex.root / "state" / "default.json"
    state = json.loads(path.read_text())
    record = state["models"]["reviews"]
    record[field] = evil
    if field == "handle":  # as if the job were still running: the delete goes through the handle
        record["tuned_model_id"] = "reviews-00000000-0000000000"
    path.write_text(json.dumps(state))
    calls_before = dict(emulator.stats["calls"])
    result = vertex.run("destroy", "--auto-approve")
    assert result.code == 1 and "not a valid Vertex" in result.output and "Traceback" not in result.output
    assert emulator.stats["calls"] == calls_before and emulator.stats["tuned_models"] == 1


# -- a deployed model is undeployed before it is deleted ---------------------------------------------------------


def test_destroy_undeploys_the_model_deletes_its_endpoint_then_the_model(vertex, emulator):
    assert vertex.run("apply", "--auto-approve").code == 0
    record = vertex.state()["models"]["reviews"]
    result = vertex.run("destroy", "--auto-approve")
    assert result.code == 0, result.output
    stats = emulator.stats
    assert stats["tuned_models"] == 0 and stats["endpoints"] == 0
    assert stats["calls"]["undeploy"] == 1 and stats["calls"]["endpoint_delete"] == 1
    assert record["resources"]["endpoint"].rsplit("/", 1)[-1] not in json.dumps(stats)


# -- import ---------------------------------------------------------------------------------------------------------


def _tuned_outside_tuner(vertex, emulator, gcs) -> str:
    """A model made by a tuning job run by hand (console, gcloud): no tuner labels."""
    uri = provider_of(gcs, emulator).stage_dataset(planned_model("reviews"), "train")
    client = sdk(emulator)
    job = client.tunings.tune(base_model="gemini-2.5-flash", training_dataset=types.TuningDataset(gcs_uri=uri),
                              config=types.CreateTuningJobConfig(tuned_model_display_name="Reviews", epoch_count=10,
                                                                 learning_rate_multiplier=1.0,
                                                                 adapter_size="ADAPTER_SIZE_FOUR"))
    while not (job := client.tunings.get(name=job.name)).tuned_model:
        pass  # the stepping clock moves the job on with every request
    return job.tuned_model.model.split("@")[0]


def test_import_of_a_vertex_model_made_outside_tuner_plans_no_replacement(vertex, emulator, gcs):
    tuned_id = _tuned_outside_tuner(vertex, emulator, gcs)
    result = vertex.run("import", "reviews", tuned_id)
    assert result.code == 0, result.output
    assert vertex.state()["models"]["reviews"]["base_model"] == "gemini-2.5-flash"  # from the job, not the label
    plan = vertex.run("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.output
    assert vertex.run("destroy", "--auto-approve").code == 0  # an imported model carries no tag: ours to delete
    assert models(emulator) == []


def test_import_refuses_a_vertex_model_of_another_workspace(vertex, emulator):
    assert vertex.run("apply", "--auto-approve", "-w", "dev").code == 0
    dev_id = vertex.state("dev")["models"]["reviews"]["tuned_model_id"]
    result = vertex.run("import", "-w", "prod", "reviews", dev_id)
    assert result.code == 1
    assert "created by another tuner state or workspace" in result.err


# -- a job that only partially succeeded --------------------------------------------------------------------------


def test_a_partially_succeeded_job_is_a_failure_with_a_clear_message(vertex, emulator):
    rows = (vertex.root / "data" / "train.jsonl").read_text().splitlines()
    rows.append(json.dumps({"text_input": "anything", "output": PARTIAL_OUTPUT}))
    (vertex.root / "data" / "train.jsonl").write_text("\n".join(rows) + "\n")
    result = vertex.run("apply", "--auto-approve")
    assert result.code == 1
    assert "partially succeeded" in result.output and "not trained on the data the plan showed" in result.output
    pending = vertex.state()["models"]["reviews"]["pending"]
    assert pending["status"] == "failed"


def test_a_refusal_of_a_rest_call_reads_like_an_sdk_error(vertex, emulator, gcs):
    """The endpoint calls google-genai lacks go over REST; their errors carry Vertex's status and message."""
    assert vertex.run("apply", "--auto-approve").code == 0
    endpoint = vertex.state()["models"]["reviews"]["resources"]["endpoint"]
    provider = provider_of(gcs, emulator)
    from runner.errors import ProviderError

    with pytest.raises(ProviderError) as refused:
        provider._rest("DELETE", endpoint)  # a model is still deployed on it
    assert refused.value.code == "FAILED_PRECONDITION" and refused.value.remedy is None
    assert refused.value.message.startswith(f"Endpoint {endpoint} has deployed models")
