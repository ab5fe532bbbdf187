"""Refresh, drift, import and destroy on the local provider (the Gemini ones run against its emulator)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import SENTIMENT_SPEC


def _applied(project) -> str:
    assert project.run("apply", "--auto-approve").code == 0
    return project.state()["models"]["sentiment"]["tuned_model_id"]


def test_plan_and_apply_refresh_by_default_so_a_model_deleted_out_of_band_is_recreated(project):
    tuned_id = _applied(project)
    shutil.rmtree(project.models_dir() / tuned_id)
    assert project.run("plan", "--refresh=false", "--detailed-exitcode").code == 0  # recorded state cannot know
    assert project.run("plan", "--no-refresh", "--detailed-exitcode").code == 0
    result = project.run("plan", "--detailed-exitcode")
    assert result.code == 2
    assert "+ sentiment (local) will be created" in result.out
    assert "deleted outside tuner" in result.out
    assert project.run("apply", "--auto-approve").code == 0  # no flag: apply refreshes too
    assert project.artifacts() == [tuned_id]
    assert (project.models_dir() / tuned_id / "model.npz").exists()
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_plan_saved_without_refresh_says_so(project):
    _applied(project)
    project.run("plan", "--refresh=false", "--out", "offline.json")
    project.run("plan", "--out", "refreshed.json")
    assert json.loads((project.root / "offline.json").read_text())["plan"]["refreshed"] is False
    assert json.loads((project.root / "refreshed.json").read_text())["plan"]["refreshed"] is True


@pytest.mark.parametrize("damage", ["npz missing", "npz truncated", "meta unreadable", "meta not an object"])
def test_a_damaged_local_artifact_is_not_active_and_apply_rebuilds_it(project, damage):
    tuned_id = _applied(project)
    folder = project.models_dir() / tuned_id
    if damage == "npz missing":
        (folder / "model.npz").unlink()
    elif damage == "npz truncated":
        data = (folder / "model.npz").read_bytes()
        (folder / "model.npz").write_bytes(data[: len(data) // 2])
    elif damage == "meta unreadable":
        (folder / "meta.json").write_bytes(b"\xff{ not json")
    else:
        (folder / "meta.json").write_text("[1, 2]")
    result = project.run("plan", "--detailed-exitcode")
    assert result.code == 2, result.output
    assert "+ sentiment (local) will be created" in result.out and "Traceback" not in result.output
    assert project.run("apply", "--auto-approve").code == 0
    assert project.run("predict", "sentiment", "great film").code == 0
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_refresh_true_and_bad_values_are_understood(project):
    _applied(project)
    assert project.run("plan", "--refresh=true", "--detailed-exitcode").code == 0
    result = project.run("plan", "--refresh=maybe")
    assert result.code == 1 and "'maybe' is not true or false" in result.err
    assert "--refresh=false" in project.run("plan", "--help").out
    assert project.run("apply", "tfplan.json", "--refresh=false").code == 1  # a saved plan is already made


def test_refresh_records_drift_and_the_next_plan_updates_it_back(project):
    tuned_id = _applied(project)
    meta_path = project.models_dir() / tuned_id / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["display_name"] = "Renamed in the console"
    meta_path.write_text(json.dumps(meta))
    change = json.loads(project.run("plan", "--json").out)["changes"][0]
    assert change["action"] == "update"
    assert change["fields"]["display_name"] == {"old": "Renamed in the console", "new": "Sentiment",
                                                "forces_replacement": False}
    before = project.state()["serial"]
    result = project.run("refresh")
    assert "display_name changed outside tuner: 'Sentiment' -> 'Renamed in the console'" in result.out
    assert project.state()["serial"] == before + 1
    assert project.state()["models"]["sentiment"]["display_name"] == "Renamed in the console"
    assert project.run("apply", "--auto-approve").code == 0
    assert json.loads(meta_path.read_text())["display_name"] == "Sentiment"


def test_refresh_removes_models_gone_at_the_provider(project):
    tuned_id = _applied(project)
    shutil.rmtree(project.models_dir() / tuned_id)
    assert "no longer exists at local" in project.run("refresh").out
    assert project.state()["models"] == {}


def test_unmanaged_models_are_reported(project):
    tuned_id = _applied(project)
    shutil.copytree(project.models_dir() / tuned_id, project.models_dir() / "stray-model")
    meta_path = project.models_dir() / "stray-model" / "meta.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "tuned_model_id": "stray-model"}))
    result = project.run("plan")
    assert "stray-model exists at local but is not managed" in result.out
    assert json.loads(project.run("plan", "--json").out)["unmanaged"] == [
        {"provider": "local", "tuned_model_id": "stray-model"}]


def test_import_adopts_an_existing_model_and_plan_compares_it_with_the_spec(project):
    tuned_id = _applied(project)
    state_path = project.root / "state" / "default.json"
    state = json.loads(state_path.read_text())
    state["models"] = {}
    state_path.write_text(json.dumps(state))  # as if the model had been made by hand
    result = project.run("import", "sentiment", tuned_id)
    assert result.code == 0, result.output
    assert f"Imported {tuned_id} as sentiment" in result.out
    assert project.state()["models"]["sentiment"]["provider_info"]["imported"] is True
    assert project.run("plan", "--detailed-exitcode").code == 0
    project.spec(SENTIMENT_SPEC.replace("Reviews to labels", "Other"))
    assert json.loads(project.run("plan", "--json").out)["changes"][0]["action"] == "update"


def test_import_of_a_missing_model_or_an_undeclared_name_fails(project):
    assert "was not found at provider local" in project.run("import", "sentiment", "nope").err
    assert "'other' is not declared in the configs" in project.run("import", "other", "nope").err


def test_destroy_deletes_everything_managed(project):
    tuned_id = _applied(project)
    result = project.run("destroy", "--auto-approve")
    assert result.code == 0, result.output
    assert f"- sentiment (local) will be destroyed [{tuned_id}]" in result.out
    assert project.state()["models"] == {}
    assert project.artifacts() == []


def test_destroy_honours_prevent_destroy(project):
    project.spec(SENTIMENT_SPEC + "    lifecycle: {prevent_destroy: true}\n")
    _applied(project)
    result = project.run("destroy", "--auto-approve")
    assert result.code == 1
    assert "refusing to destroy sentiment: lifecycle.prevent_destroy is set" in result.err
    assert len(project.artifacts()) == 1


def test_destroy_with_target_leaves_the_rest(project):
    project.spec(SENTIMENT_SPEC + "  second:\n    dataset: {train: ../data/train.jsonl}\n")
    _applied(project)
    assert project.run("destroy", "--target", "second", "--auto-approve").code == 0
    assert list(project.state()["models"]) == ["sentiment"]
