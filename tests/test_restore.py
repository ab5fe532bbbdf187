"""lifecycle.keep_previous: a replaced model is retained, and a reverted config restores it for $0, without a job."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from runner.errors import PlanError
from runner.plan import plan
from runner.planned import PlannedModel
from runner.state.model import State
from tests.conftest import SENTIMENT_SPEC
from tests.test_planner_applier import planned, recorded

CHANGED = SENTIMENT_SPEC.replace("learning_rate: 0.5", "learning_rate: 0.25")


def plan_json(project, *args):
    result = project.run("plan", "--json", *args)
    assert result.code == 0, result.output
    return json.loads(result.out)


def artifact_files(project) -> dict[str, bytes]:
    """Every file of every local artifact, by path: a training run rewrites them; a restore must not."""
    return {str(p.relative_to(project.models_dir())): p.read_bytes()
            for p in sorted(project.models_dir().rglob("*")) if p.is_file()}


def apply_change_then_revert(project, reverted: str = SENTIMENT_SPEC, changed: str = CHANGED) -> tuple[str, str]:
    """apply, change learning_rate, apply, revert the spec: returns (first id, second id)."""
    project.spec(reverted)
    assert project.run("apply", "--auto-approve").code == 0
    first = project.state()["models"]["sentiment"]["tuned_model_id"]
    project.spec(changed)
    assert project.run("apply", "--auto-approve").code == 0
    second = project.state()["models"]["sentiment"]["tuned_model_id"]
    project.spec(reverted)
    return first, second


def test_a_replaced_model_is_retained_with_its_fingerprint_and_metrics(project):
    project.run("apply", "--auto-approve")
    old = project.state()["models"]["sentiment"]
    project.spec(CHANGED)
    assert project.run("apply", "--auto-approve").code == 0
    record = project.state()["models"]["sentiment"]
    (retained,) = record["retained"]
    assert (retained["tuned_model_id"], retained["fingerprint"], retained["metrics"]) == \
        (old["tuned_model_id"], old["fingerprint"], old["metrics"])
    assert project.artifacts() == sorted([old["tuned_model_id"], record["tuned_model_id"]])
    assert "retained (restorable)" in project.run("state", "list").out


def test_reverting_a_hyperparameter_change_restores_the_retained_model_for_0_without_training(project):
    first, second = apply_change_then_revert(project)
    before = artifact_files(project)

    text = project.run("plan").out
    assert f"<= sentiment (local) will be restored to {first} (retained; no training, $0)" in text
    accuracy = project.state()["models"]["sentiment"]["retained"][0]["metrics"]["accuracy"]
    assert f"# the restored model's recorded accuracy: {accuracy:.2%}" in text
    assert "hyperparameters.learning_rate = 0.25 -> 0.5\n" in text  # no "forces replacement": nothing is replaced
    assert "1 to restore ($0)" in text
    assert "Estimated training cost" not in text
    plan = plan_json(project)
    (change,) = plan["changes"]
    assert (change["action"], change["restore_id"], change["prior_id"]) == ("restore", first, second)
    assert plan["cost"]["total_usd"] == 0 and plan["cost"]["models"] == {}
    assert "🔵 restore" in project.run("plan", "--markdown").out

    result = project.run("apply", "--auto-approve")  # its speed is measured by hand, never in a unit test
    assert result.code == 0, result.output
    assert "submitting" not in result.err and "restored" in result.err
    assert "1 restored" in result.out
    assert artifact_files(project) == before  # no artifact written, none deleted: the trainer never ran
    record = project.state()["models"]["sentiment"]
    assert record["tuned_model_id"] == first and record["hyperparameters"]["learning_rate"] == 0.5
    assert [r["tuned_model_id"] for r in record["retained"]] == [second]  # the previous current, in turn
    assert project.run("plan", "--detailed-exitcode").code == 0
    assert project.run("predict", "sentiment", "great product, works well").code == 0


def test_redoing_the_change_restores_the_other_model_in_turn(project):
    first, second = apply_change_then_revert(project)
    assert project.run("apply", "--auto-approve").code == 0
    project.spec(CHANGED)
    (change,) = plan_json(project)["changes"]
    assert (change["action"], change["restore_id"]) == ("restore", second)
    assert project.run("apply", "--auto-approve").code == 0
    record = project.state()["models"]["sentiment"]
    assert record["tuned_model_id"] == second and [r["tuned_model_id"] for r in record["retained"]] == [first]
    assert project.artifacts() == sorted([first, second])


def test_keep_previous_0_deletes_the_replaced_model_and_a_revert_trains_again(project):
    no_retention = SENTIMENT_SPEC.replace("    dataset:", "    lifecycle: {keep_previous: 0}\n    dataset:")
    _, second = apply_change_then_revert(project, no_retention,
                                         no_retention.replace("learning_rate: 0.5", "learning_rate: 0.25"))
    assert project.artifacts() == [second]
    assert "retained" not in project.state()["models"]["sentiment"]
    (change,) = plan_json(project)["changes"]
    assert change["action"] == "replace"


def test_models_beyond_keep_previous_are_deleted_oldest_first(project):
    first, second = apply_change_then_revert(project)
    project.spec(SENTIMENT_SPEC.replace("learning_rate: 0.5", "learning_rate: 0.125"))
    (change,) = plan_json(project)["changes"]
    assert (change["action"], change["cleanup"]) == ("replace", [first])
    assert f"- superseded {first} will be deleted" in project.run("plan").out
    assert project.run("apply", "--auto-approve").code == 0
    record = project.state()["models"]["sentiment"]
    assert [r["tuned_model_id"] for r in record["retained"]] == [second]
    assert project.artifacts() == sorted([second, record["tuned_model_id"]])


def test_lowering_keep_previous_deletes_the_retained_models_without_touching_the_current(project):
    first, second = apply_change_then_revert(project)
    project.spec(CHANGED.replace("    dataset:", "    lifecycle: {keep_previous: 0}\n    dataset:"))
    (change,) = plan_json(project)["changes"]
    assert (change["action"], change["cleanup"]) == ("noop", [first])
    assert project.run("apply", "--auto-approve").code == 0
    assert project.artifacts() == [second]
    assert "retained" not in project.state()["models"]["sentiment"]


def test_a_retained_model_gone_at_the_provider_is_trained_again_saying_why(project):
    first, second = apply_change_then_revert(project)
    shutil.rmtree(project.models_dir() / first)
    (change,) = plan_json(project)["changes"]
    assert change["action"] == "replace"
    assert change["reason"] == f"retained {first} no longer exists at local: training anew"
    assert plan_json(project, "--no-refresh")["changes"][0]["action"] == "restore"  # state alone cannot know
    assert project.run("apply", "--auto-approve").code == 0
    record = project.state()["models"]["sentiment"]
    assert record["tuned_model_id"] == first and (project.models_dir() / first).is_dir()
    assert [r["tuned_model_id"] for r in record["retained"]] == [second]


def test_a_saved_restore_plan_applies(project, tmp_path):
    first, _ = apply_change_then_revert(project)
    assert project.run("plan", "--out", str(tmp_path / "restore.plan")).code == 0
    assert project.run("apply", str(tmp_path / "restore.plan")).code == 0
    assert project.state()["models"]["sentiment"]["tuned_model_id"] == first


def test_a_restore_also_applies_in_place_changes(project):
    first, _ = apply_change_then_revert(project)
    project.spec(SENTIMENT_SPEC.replace("Reviews to labels", "Product reviews"))
    assert project.run("apply", "--auto-approve").code == 0
    record = project.state()["models"]["sentiment"]
    assert (record["tuned_model_id"], record["description"]) == (first, "Product reviews")
    meta = json.loads((project.models_dir() / first / "meta.json").read_text())
    assert meta["description"] == "Product reviews"
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_destroy_deletes_retained_models_too(project):
    apply_change_then_revert(project)
    project.spec("models: {}\n")
    assert project.run("apply", "--auto-approve").code == 0
    assert project.artifacts() == [] and project.state()["models"] == {}


def test_keep_previous_must_be_a_count(project):
    project.spec(SENTIMENT_SPEC.replace("    dataset:", "    lifecycle: {keep_previous: -1}\n    dataset:"))
    result = project.run("plan")
    assert result.code != 0 and "keep_previous" in result.err


# -- the pure planner: which retained model, and when not -------------------------------------------------------

def _with_retained(old: PlannedModel, new: PlannedModel) -> State:
    """`new` is current; `old` was replaced by it and is retained."""
    state = recorded(new)
    state.models[new.name].retained = [recorded(old, tuned_model_id="reviews-0").models[old.name].current]
    return state


def test_a_pending_job_for_the_desired_fingerprint_is_waited_for_not_restored():
    old, new = planned(epochs=2), planned(epochs=3)
    state = _with_retained(old, new)
    state.models["reviews"].pending = recorded(old, tuned_model_id="reviews-2", status="creating",
                                               handle="job-2").models["reviews"].current
    (change,) = plan([old], state).changes
    assert (change.action, change.resume, change.restore_id) == ("replace", True, None)


def test_a_restore_under_prevent_destroy_is_refused_only_when_nothing_is_retained():
    old, new = planned(epochs=2), planned(epochs=3)
    assert plan([replace(old, prevent_destroy=True)], _with_retained(old, new)).changes[0].action == "restore"
    with pytest.raises(PlanError, match=r"lifecycle\.prevent_destroy is set"):
        plan([replace(old, prevent_destroy=True, keep_previous=0)], _with_retained(old, new))
