"""Ownership: a tuned model belongs to exactly one (state lineage, workspace, name). Workspaces never share a
model, an id from an edited state never steers a delete, and a refused submission is recorded as failed."""

from __future__ import annotations

import json

import pytest

from runner.emulators.gemini import GeminiEmulator
from runner.identity import owner_tag
from tests.test_gemini_provider import KEY, ONE, sdk, spec

# -- workspaces never share a model ---------------------------------------------------------------------------


def test_local_workspaces_train_their_own_models_and_destroy_in_dev_leaves_prod_serving(project):
    assert project.run("apply", "--auto-approve", "-w", "dev").code == 0
    prod = project.run("apply", "--auto-approve", "-w", "prod")
    assert prod.code == 0, prod.output
    assert "adopting" not in prod.output
    dev_id = project.state("dev")["models"]["sentiment"]["tuned_model_id"]
    prod_id = project.state("prod")["models"]["sentiment"]["tuned_model_id"]
    assert dev_id != prod_id
    assert project.run("destroy", "--auto-approve", "-w", "dev").code == 0
    assert project.artifacts() == [prod_id]
    answer = project.run("predict", "-w", "prod", "sentiment", "I love it, works perfectly")
    assert answer.code == 0, answer.output


@pytest.fixture
def emulator():
    from tests.conftest import SteppingClock

    server = GeminiEmulator(job_seconds=3.0, clock=SteppingClock(), api_keys={KEY}).start()
    yield server
    server.stop()


@pytest.fixture
def gemini(project, emulator, monkeypatch):
    monkeypatch.setenv("TUNER_TEST_GEMINI_KEY", KEY)
    monkeypatch.delenv("TUNER_GEMINI_ENDPOINT", raising=False)
    project.spec(spec(emulator, ONE))
    return project


def test_gemini_workspaces_never_adopt_each_others_model(gemini, emulator):
    assert gemini.run("apply", "--auto-approve", "-w", "dev").code == 0
    prod = gemini.run("apply", "--auto-approve", "-w", "prod")
    assert prod.code == 0, prod.output
    assert "adopting" not in prod.output
    dev, prod_state = gemini.state("dev"), gemini.state("prod")
    dev_id, prod_id = dev["models"]["reviews"]["tuned_model_id"], prod_state["models"]["reviews"]["tuned_model_id"]
    assert dev_id != prod_id
    assert owner_tag(dev["lineage"], "dev") in dev_id and owner_tag(prod_state["lineage"], "prod") in prod_id
    assert emulator.stats["creates"] == 2
    assert gemini.run("destroy", "--auto-approve", "-w", "dev").code == 0
    assert [m.name for m in sdk(emulator).list_tuned_models()] == [prod_id]
    answer = gemini.run("predict", "-w", "prod", "reviews", "Terrible quality, it broke after one day")
    assert answer.code == 0, answer.output


def _steal(project, victim: str, thief: str, name: str) -> str:
    """Make the thief's state record the victim's model as its own current model, as the old bug did."""
    stolen = project.state(victim)["models"][name]["tuned_model_id"]
    path = project.root / "state" / f"{thief}.json"
    state = json.loads(path.read_text())
    state["models"][name]["tuned_model_id"] = stolen
    path.write_text(json.dumps(state))
    return stolen


def test_destroy_never_deletes_a_gemini_model_of_another_workspace(gemini, emulator):
    assert gemini.run("apply", "--auto-approve", "-w", "dev").code == 0
    assert gemini.run("apply", "--auto-approve", "-w", "prod").code == 0
    stolen = _steal(gemini, "dev", "prod", "reviews")
    result = gemini.run("destroy", "--auto-approve", "-w", "prod")
    assert result.code == 0, result.output
    assert "not deleted" in result.output and "does not carry this state's identity" in result.output
    assert stolen in [m.name for m in sdk(emulator).list_tuned_models()]
    assert gemini.state("prod")["models"] == {}  # forgotten, not deleted
    assert gemini.run("predict", "-w", "dev", "reviews", "great").code == 0


def test_destroy_never_deletes_a_local_model_of_another_workspace(project):
    assert project.run("apply", "--auto-approve", "-w", "dev").code == 0
    assert project.run("apply", "--auto-approve", "-w", "prod").code == 0
    stolen = _steal(project, "dev", "prod", "sentiment")
    result = project.run("destroy", "--auto-approve", "-w", "prod")
    assert result.code == 0, result.output
    assert "belongs to another tuner state or workspace" in result.output
    assert stolen in project.artifacts()
    assert project.run("predict", "-w", "dev", "sentiment", "great").code == 0


def test_a_resumed_job_is_adopted_only_when_it_carries_this_states_identity(gemini, emulator):
    assert gemini.run("apply", "--auto-approve", "-w", "dev").code == 0
    dev_id = gemini.state("dev")["models"]["reviews"]["tuned_model_id"]
    gemini.spec(spec(emulator, ONE.replace("dataset:", "hyperparameters: {learning_rate: 0.4}\n    dataset:")))
    assert gemini.run("apply", "--auto-approve", "-w", "prod").code == 0
    path = gemini.root / "state" / "prod.json"
    state = json.loads(path.read_text())
    record = state["models"]["reviews"]
    # An edited state whose pending job names dev's model: a crash-resume would "adopt" it.
    record["pending"] = {**{k: v for k, v in record.items() if k not in ("handle", "metrics")},
                         "status": "submitting", "tuned_model_id": dev_id,
                         "fingerprint": gemini.state("dev")["models"]["reviews"]["fingerprint"]}
    gemini.spec(spec(emulator, ONE))
    path.write_text(json.dumps(state))
    result = gemini.run("apply", "--auto-approve", "-w", "prod")
    assert result.code == 1
    assert "adopting" not in result.output and "does not carry this state's identity" in result.output
    assert json.loads(path.read_text())["models"]["reviews"]["pending"]["status"] == "failed"


# -- import -------------------------------------------------------------------------------------------------


TWO = """\
defaults:
  provider: local
  base_model: local/linear-ngram
  hyperparameters: {epoch_count: 4, batch_size: 8, learning_rate: 0.5}
models:
  sentiment:
    dataset: {train: ../data/train.jsonl}
  other:
    dataset: {train: ../data/train.jsonl}
    hyperparameters: {epoch_count: 5}
"""


def test_import_refuses_an_id_another_name_already_manages(project):
    project.spec(TWO)
    assert project.run("apply", "--auto-approve", "--target", "sentiment").code == 0
    managed = project.state()["models"]["sentiment"]["tuned_model_id"]
    result = project.run("import", "other", managed)
    assert result.code == 1
    assert f"{managed} is already managed by sentiment" in result.err
    assert "other" not in project.state()["models"]


def test_import_refuses_a_model_of_another_workspace(project):
    assert project.run("apply", "--auto-approve", "-w", "dev").code == 0
    dev_id = project.state("dev")["models"]["sentiment"]["tuned_model_id"]
    result = project.run("import", "-w", "prod", "sentiment", dev_id)
    assert result.code == 1
    assert "created by another tuner state or workspace" in result.err


def test_gemini_import_refuses_a_model_another_name_manages(gemini, emulator):
    gemini.spec(spec(emulator, ONE + ONE.replace("reviews:", "copy:")))
    assert gemini.run("apply", "--auto-approve", "--target", "reviews").code == 0
    managed = gemini.state()["models"]["reviews"]["tuned_model_id"]
    result = gemini.run("import", "copy", managed.removeprefix("tunedModels/"))
    assert result.code == 1
    assert "is already managed by reviews" in result.err


# -- ids from state never steer a path ------------------------------------------------------------------------


@pytest.mark.parametrize("evil", ["../../../victim", "/ABSOLUTE", "..", "x/../../victim"])
def test_an_id_from_an_edited_state_never_steers_rmtree(project, tmp_path, evil):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    evil = evil.replace("/ABSOLUTE", str(victim))
    assert project.run("apply", "--auto-approve").code == 0
    path = project.root / "state" / "default.json"
    state = json.loads(path.read_text())
    state["models"]["sentiment"]["tuned_model_id"] = evil
    path.write_text(json.dumps(state))
    result = project.run("destroy", "--auto-approve")
    assert result.code == 1
    assert "not a valid local tuned model id" in result.output and "Traceback" not in result.output
    assert (victim / "precious.txt").read_text() == "keep me"


def test_a_symlinked_artifact_folder_is_never_followed_by_delete(project, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "meta.json").write_text("{}")
    assert project.run("apply", "--auto-approve").code == 0
    tuned_id = project.state()["models"]["sentiment"]["tuned_model_id"]
    folder = project.models_dir() / tuned_id
    import shutil

    shutil.rmtree(folder)
    folder.symlink_to(victim)
    result = project.run("destroy", "--auto-approve")
    assert result.code == 1 and "resolves outside" in result.output
    assert (victim / "meta.json").exists()


def test_a_gemini_id_from_an_edited_state_never_reaches_a_url(gemini, emulator):
    assert gemini.run("apply", "--auto-approve").code == 0
    path = gemini.root / "state" / "default.json"
    state = json.loads(path.read_text())
    state["models"]["reviews"]["tuned_model_id"] = "tunedModels/../../models/gemini-1.5-flash-001-tuning"
    path.write_text(json.dumps(state))
    result = gemini.run("destroy", "--auto-approve")
    assert result.code == 1 and "not a valid Gemini tuned model id" in result.output
    assert emulator.stats["delete_calls"] == 0 and emulator.stats["tuned_models"] == 1


# -- a refused create is recorded as failed, never stuck --------------------------------------------------------


def test_a_refused_create_is_recorded_failed_and_the_next_plan_tells_the_truth(gemini, emulator):
    gemini.spec(spec(emulator, ONE.replace("dataset:", "base_model: models/no-such-model\n    dataset:")))
    result = gemini.run("apply", "--auto-approve")
    assert result.code == 1
    pending = gemini.state()["models"]["reviews"]["pending"]
    assert pending["status"] == "failed" and "no-such-model was not found" in pending["error"]
    assert "handle" not in pending
    plan = gemini.run("plan")
    assert "resuming" not in plan.out and "nothing new is paid for" not in plan.out
    assert "retry: the previous job failed" in plan.out and "no-such-model was not found" in plan.out
    gemini.spec(spec(emulator, ONE))  # fixed: a new fingerprint
    changes = json.loads(gemini.run("plan", "--json").out)["changes"]
    assert changes[0]["cleanup"] == []  # nothing was ever created, so nothing "superseded" to delete
    fixed = gemini.run("apply", "--auto-approve")
    assert fixed.code == 0, fixed.output
    assert "superseded" not in fixed.output and "cancelling" not in fixed.output
    assert "pending" not in gemini.state()["models"]["reviews"]
