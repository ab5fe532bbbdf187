"""Ownership on the local provider: a tuned model belongs to exactly one (state lineage, workspace, name).
Workspaces never share a model and an id from an edited state never steers a delete. (The Gemini API's
versions of these tests are in test_gemini_provider.py, Vertex's in test_vertex_provider.py.)"""

from __future__ import annotations

import json

import pytest

from tests.conftest import SENTIMENT_SPEC

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


def test_destroy_never_deletes_a_local_model_of_another_workspace(project):
    assert project.run("apply", "--auto-approve", "-w", "dev").code == 0
    assert project.run("apply", "--auto-approve", "-w", "prod").code == 0
    stolen = project.record_foreign_model("dev", "prod", "sentiment")
    # dev forgets it, so no state of the backend references it (runner.references): only its owner tag guards it
    assert project.run("state", "rm", "sentiment", "-w", "dev").code == 0
    result = project.run("destroy", "--auto-approve", "-w", "prod")
    assert result.code == 0, result.output
    assert "belongs to another tuner state or workspace" in result.output
    assert stolen in project.artifacts()


# -- import -------------------------------------------------------------------------------------------------


TWO = SENTIMENT_SPEC + "  other:\n    dataset: {train: ../data/train.jsonl}\n    hyperparameters: {epoch_count: 5}\n"


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


# -- a refused create is recorded as failed, never stuck --------------------------------------------------------
