"""`tuner plan --destroy`: a preview of `tuner destroy` by its rules, savable and applied with `tuner apply FILE`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SENTIMENT_SPEC
from tests.test_gemini_provider import emulator, gemini, sdk  # noqa: F401 (fixtures)


def applied_then_destroy_planned(project, tmp_path: Path) -> Path:
    """Apply the specs, then save `plan --destroy` of the result."""
    assert project.run("apply", "--auto-approve").code == 0
    saved = tmp_path / "destroy.plan"
    assert project.run("plan", "--destroy", "--out", str(saved)).code == 0
    return saved


def test_plan_destroy_previews_the_destruction_and_changes_nothing(project):
    assert project.run("apply", "--auto-approve").code == 0
    tuned_id = project.state()["models"]["sentiment"]["tuned_model_id"]
    before = project.state_bytes()
    result = project.run("plan", "--destroy", "--detailed-exitcode")
    assert result.code == 2, result.output
    assert f"- sentiment (local) will be destroyed [{tuned_id}]" in result.out
    assert "Plan: 0 to add, 0 to replace, 0 to change, 1 to destroy." in result.out
    assert project.state_bytes() == before and project.artifacts() == [tuned_id]


def test_plan_destroy_refuses_a_prevent_destroy_model_as_destroy_does(project):
    project.spec(SENTIMENT_SPEC + "    lifecycle: {prevent_destroy: true}\n")
    assert project.run("apply", "--auto-approve").code == 0
    for command in (("plan", "--destroy"), ("destroy", "--auto-approve")):
        result = project.run(*command)
        assert result.code == 1
        assert "refusing to destroy sentiment: lifecycle.prevent_destroy is set" in result.err
    assert len(project.artifacts()) == 1


def test_a_saved_destroy_plan_is_applied_with_apply_file(project, tmp_path):
    saved = applied_then_destroy_planned(project, tmp_path)
    assert json.loads(saved.read_text())["destroy"] is True
    result = project.run("apply", str(saved))
    assert result.code == 0, result.output
    assert "1 destroyed" in result.out
    assert project.state()["models"] == {} and project.artifacts() == []


def test_a_saved_destroy_plan_is_refused_once_the_model_is_protected(project, tmp_path):
    """apply re-makes the destroy plan by the same rules: prevent_destroy set since the file was saved wins."""
    saved = applied_then_destroy_planned(project, tmp_path)
    project.spec(SENTIMENT_SPEC + "    lifecycle: {prevent_destroy: true}\n")
    result = project.run("apply", str(saved))
    assert result.code == 1
    assert "prevent_destroy" in result.err
    assert len(project.artifacts()) == 1


def test_a_saved_destroy_plan_is_stale_once_the_state_changed(project, tmp_path):
    saved = applied_then_destroy_planned(project, tmp_path)
    project.spec(SENTIMENT_SPEC.replace("Reviews to labels", "Product reviews"))
    assert project.run("apply", "--auto-approve").code == 0
    result = project.run("apply", str(saved))
    assert result.code == 1 and "stale plan: the state changed since it was made" in result.err
    assert len(project.artifacts()) == 1


def test_a_destroy_plan_file_cannot_smuggle_in_a_create(project, tmp_path):
    """A normal plan file marked `destroy` (checksum recomputed) is checked against a destroy plan and refused."""
    from runner.planfile import body_checksum, inputs_digest

    saved = tmp_path / "create.plan"
    assert project.run("plan", "--out", str(saved)).code == 0
    document = json.loads(saved.read_text())
    document["destroy"], document["inputs_digest"] = True, inputs_digest([])  # as a destroy plan is bound
    document["checksum"] = body_checksum(document)
    saved.write_text(json.dumps(document))
    result = project.run("apply", str(saved))
    assert result.code == 1
    assert "sentiment: the plan file says create, the configs and state say nothing" in result.err
    assert project.artifacts() == []


def test_a_saved_destroy_plan_deletes_the_gemini_model(gemini, emulator, tmp_path):  # noqa: F811 (fixtures)
    saved = applied_then_destroy_planned(gemini, tmp_path)
    assert len(list(sdk(emulator).list_tuned_models())) == 1
    result = gemini.run("apply", str(saved))
    assert result.code == 0, result.output
    assert list(sdk(emulator).list_tuned_models()) == []
    assert gemini.state()["models"] == {}
