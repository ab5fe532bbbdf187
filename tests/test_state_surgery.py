"""`tuner state mv` and `tuner state rm` on the local provider (and the Gemini emulator): no training, no deletion."""

from __future__ import annotations

import json

from tests.conftest import SENTIMENT_SPEC
from tests.test_gemini_provider import ONE, emulator, gemini, sdk, spec  # noqa: F401 (fixtures)


def _applied(project) -> str:
    assert project.run("apply", "--auto-approve").code == 0
    return project.state()["models"]["sentiment"]["tuned_model_id"]


def test_state_mv_then_renaming_the_spec_plans_no_change(project):
    tuned_id = _applied(project)
    serial = project.state()["serial"]
    result = project.run("state", "mv", "sentiment", "reviews")
    assert result.code == 0, result.output
    assert "Moved sentiment to reviews" in result.out
    state = project.state()
    assert list(state["models"]) == ["reviews"] and state["models"]["reviews"]["tuned_model_id"] == tuned_id
    assert state["serial"] == serial + 1
    assert json.loads((project.root / "state" / "default.json.backup").read_text())["serial"] == serial
    outputs = json.loads((project.root / "state" / "default.outputs.json").read_text())
    assert list(outputs["models"]) == ["reviews"]
    project.spec(SENTIMENT_SPEC.replace("  sentiment:", "  reviews:"))
    assert project.run("plan", "--detailed-exitcode").code == 0
    assert project.artifacts() == [tuned_id]


def test_state_mv_without_renaming_the_spec_plans_a_create_and_a_delete(project):
    _applied(project)
    assert project.run("state", "mv", "sentiment", "reviews").code == 0
    out = project.run("plan").out
    assert "+ sentiment" in out and "- reviews" in out


def test_state_mv_errors_name_what_is_wrong_and_change_nothing(project):
    project.spec(SENTIMENT_SPEC + """\
  other:
    dataset: {train: ../data/train.jsonl, validation: ../data/valid.jsonl}
""")
    _applied(project)
    before = project.state_bytes()
    unknown = project.run("state", "mv", "nosuch", "reviews")
    assert unknown.code == 1 and "no model named 'nosuch' in state" in unknown.err and "other, sentiment" in unknown.err
    taken = project.run("state", "mv", "sentiment", "other")
    assert taken.code == 1 and "cannot move sentiment to other: other is already in state" in taken.err
    invalid = project.run("state", "mv", "sentiment", "Bad_Name")
    assert invalid.code == 1 and "'Bad_Name' is not a valid model name" in invalid.err
    assert "Traceback" not in unknown.output + taken.output + invalid.output
    assert project.state_bytes() == before


def test_state_rm_forgets_without_deleting_and_names_what_it_left(project):
    tuned_id = _applied(project)
    serial = project.state()["serial"]
    result = project.run("state", "rm", "sentiment")
    assert result.code == 0, result.output
    assert f"Left behind, not deleted: {tuned_id}" in result.out
    assert project.state()["models"] == {} and project.state()["serial"] == serial + 1
    assert project.artifacts() == [tuned_id]  # the model is still there
    assert project.run("state", "rm", "sentiment").code == 1  # already forgotten
    assert project.run("import", "sentiment", tuned_id).code == 0  # and can be adopted again
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_state_rm_of_an_unknown_name_fails_and_the_commands_take_the_lock(project):
    _applied(project)
    assert "no model named 'nosuch'" in project.run("state", "rm", "nosuch").err
    (project.root / "state" / "default.json.lock").write_text(json.dumps({"id": "x", "operation": "apply",
                                                                          "host": "elsewhere", "pid": 1}))
    for args in (("state", "rm", "sentiment"), ("state", "mv", "sentiment", "reviews")):
        locked = project.run(*args)
        assert locked.code == 1 and "is locked by apply" in locked.err
    assert "sentiment" in project.state()["models"]


def test_gemini_state_mv_and_rm_call_no_provider_and_leave_the_model(gemini, emulator):  # noqa: F811
    assert gemini.run("apply", "--auto-approve").code == 0
    tuned_id = gemini.state()["models"]["reviews"]["tuned_model_id"]
    requests = emulator.stats["requests"]
    assert gemini.run("state", "mv", "reviews", "feedback").code == 0
    assert emulator.stats["requests"] == requests  # no provider call
    gemini.spec(spec(emulator, ONE.replace("  reviews:", "  feedback:")))
    assert gemini.run("plan", "--detailed-exitcode").code == 0
    requests = emulator.stats["requests"]
    result = gemini.run("state", "rm", "feedback")
    assert result.code == 0 and tuned_id in result.out
    assert emulator.stats["requests"] == requests
    assert tuned_id in [m.name for m in sdk(emulator).list_tuned_models()]
    assert gemini.run("import", "feedback", tuned_id).code == 0  # it carries this state's identity: ours again


def test_redeclaring_a_moved_name_never_adopts_the_model_its_new_name_manages(project):
    tuned_id = _applied(project)
    assert project.run("state", "mv", "sentiment", "reviews").code == 0
    project.spec(SENTIMENT_SPEC + SENTIMENT_SPEC.split("models:\n")[1].replace("  sentiment:", "  reviews:"))
    result = project.run("apply", "--auto-approve")  # sentiment's deterministic id is the one reviews manages
    assert result.code == 1
    assert f"{tuned_id}, the id sentiment would be tuned as, is managed by reviews" in result.err
    models = project.state()["models"]
    assert models["reviews"]["tuned_model_id"] == tuned_id and "tuned_model_id" not in models.get("sentiment", {})
