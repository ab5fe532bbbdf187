"""Top-level `moved: [{from, to}]` blocks: a rename in the specs is a move in state, never a retraining."""

from __future__ import annotations

import json

from tests.conftest import SENTIMENT_SPEC
from tests.test_gemini_provider import ONE, emulator, gemini, spec  # noqa: F401 (fixtures)

RENAMED = SENTIMENT_SPEC.replace("  sentiment:", "  reviews:") + """\
moved:
  - {from: sentiment, to: reviews}
"""
OTHER = """\
  other:
    dataset: {train: ../data/train.jsonl, validation: ../data/valid.jsonl}
"""


def _applied(project) -> str:
    assert project.run("apply", "--auto-approve").code == 0
    return project.state()["models"]["sentiment"]["tuned_model_id"]


def test_a_moved_block_plans_a_move_in_every_format_and_nothing_is_retrained(project):
    _applied(project)
    project.spec(RENAMED)
    text = project.run("plan", "--detailed-exitcode")
    assert text.code == 2, text.output
    assert "# sentiment has moved to reviews" in text.out
    assert "State only: 1 to move, 0 to import (no job, $0)." in text.out
    assert "will be created" not in text.out and "destroyed" not in text.out and "training cost" not in text.out
    document = json.loads(project.run("plan", "--json").out)
    assert document["moved"] == [{"from": "sentiment", "to": "reviews"}]
    assert [(c["name"], c["action"]) for c in document["changes"]] == [("reviews", "noop")]
    assert "**Moved:** `sentiment` → `reviews`" in project.run("plan", "--markdown").out


def test_apply_records_the_move_and_the_next_plan_is_empty(project):
    tuned_id = _applied(project)
    serial = project.state()["serial"]
    project.spec(RENAMED)
    result = project.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    state = project.state()
    assert list(state["models"]) == ["reviews"] and state["models"]["reviews"]["tuned_model_id"] == tuned_id
    assert state["serial"] == serial + 1
    assert project.artifacts() == [tuned_id]
    assert project.run("plan", "--detailed-exitcode").code == 0  # the block may stay: the move is done


def test_a_moved_model_whose_spec_also_changed_is_updated_under_its_new_name(project):
    tuned_id = _applied(project)
    project.spec(RENAMED.replace("display_name: Sentiment", "display_name: Reviews"))
    change = json.loads(project.run("plan", "--json").out)["changes"][0]
    assert (change["name"], change["action"], change["prior_id"]) == ("reviews", "update", tuned_id)


def test_a_saved_plan_with_a_move_applies_it(project):
    tuned_id = _applied(project)
    project.spec(RENAMED)
    assert project.run("plan", "--out", "tfplan.json").code == 0
    result = project.run("apply", "tfplan.json")
    assert result.code == 0, result.output
    assert project.state()["models"]["reviews"]["tuned_model_id"] == tuned_id


def test_a_move_onto_a_name_in_state_is_an_error_naming_the_file_and_line(project):
    project.spec(SENTIMENT_SPEC + OTHER)
    _applied(project)
    before = project.state_bytes()
    project.spec(SENTIMENT_SPEC.replace("  sentiment:", "  renamed:") + OTHER + """\
moved:
  - {from: sentiment, to: other}
""")
    result = project.run("plan")
    assert result.code == 1
    assert "configs/models.yaml:15: moved: cannot move sentiment to other: both are in state" in result.err
    assert project.run("apply", "--auto-approve").code == 1 and project.state_bytes() == before


def test_chains_and_conflicting_moves_are_spec_errors_naming_file_and_line(project):
    project.spec(SENTIMENT_SPEC.replace("  sentiment:", "  c:") + """\
moved:
  - {from: a, to: b}
  - {from: b, to: c}
  - {from: x, to: c}
  - {from: c, to: d}
""")
    errors = project.run("validate").err
    assert "configs/models.yaml:13: moved: a -> b -> c is a chain (also at configs/models.yaml:14)" in errors
    assert "configs/models.yaml:15: moved: x -> c: two moves to c (also at configs/models.yaml:14)" in errors
    assert "configs/models.yaml:16: moved: c -> d: c is still declared at configs/models.yaml:6" in errors


def test_moves_in_two_files_are_checked_together(project):
    project.spec("moved:\n  - {from: a, to: sentiment}\n", name="a.yaml")
    project.spec("moved:\n  - {from: b, to: sentiment}\n", name="b.yaml")
    errors = project.run("validate").err
    assert "configs/b.yaml:2: moved: b -> sentiment: two moves to sentiment (also at configs/a.yaml:2)" in errors


def test_a_move_with_an_invalid_name_is_a_schema_error(project):
    project.spec(SENTIMENT_SPEC + "moved:\n  - {from: Bad_Name, to: sentiment}\n")
    result = project.run("validate")
    assert result.code == 1 and "moved.0.from" in result.err


def test_a_saved_plan_whose_moves_the_specs_no_longer_make_is_refused(project):
    _applied(project)
    project.spec(RENAMED)
    assert project.run("plan", "--out", "tfplan.json").code == 0
    project.spec(RENAMED.split("moved:")[0])
    result = project.run("apply", "tfplan.json")
    assert result.code == 1 and "moved: the plan file's moves are not those of the specs and state" in result.err
    assert list(project.state()["models"]) == ["sentiment"]


def test_gemini_a_moved_block_renames_without_a_new_job(gemini, emulator):  # noqa: F811
    assert gemini.run("apply", "--auto-approve").code == 0
    tuned_id = gemini.state()["models"]["reviews"]["tuned_model_id"]
    creates = emulator.stats["creates"]
    renamed = spec(emulator, ONE.replace("  reviews:", "  feedback:"))
    gemini.spec(renamed + "moved:\n  - {from: reviews, to: feedback}\n")
    plan = gemini.run("plan")
    assert "# reviews has moved to feedback" in plan.out and "will be" not in plan.out
    assert gemini.run("apply", "--auto-approve").code == 0
    assert gemini.state()["models"]["feedback"]["tuned_model_id"] == tuned_id
    assert emulator.stats["creates"] == creates
    assert gemini.run("plan", "--detailed-exitcode").code == 0
