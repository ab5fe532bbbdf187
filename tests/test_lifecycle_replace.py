"""`--replace NAME`: a new job for an unchanged model, under an id of its own, crash-resumable, savable in a plan."""

from __future__ import annotations

import json
import signal
from dataclasses import replace

from runner.identity import owner_tag
from tests.conftest import SENTIMENT_SPEC, planned_model
from tests.test_crash_loop import crash, make_lab  # noqa: F401 (the crash bench and its fixture)
from tests.test_gemini_provider import emulator, gemini, sdk  # noqa: F401 (fixtures)


def test_plan_replace_shows_an_unchanged_model_must_be_replaced_because_of_the_flag(project):
    assert project.run("apply", "--auto-approve").code == 0
    old_id = project.state()["models"]["sentiment"]["tuned_model_id"]
    result = project.run("plan", "--replace", "sentiment", "--detailed-exitcode")
    assert result.code == 2, result.output
    assert f"-/+ sentiment (local) must be replaced [{old_id}]" in result.out
    assert "# --replace" in result.out
    assert "Plan: 0 to add, 1 to replace, 0 to change, 0 to destroy." in result.out
    assert project.run("plan", "--detailed-exitcode").code == 0  # without the flag nothing changes


def test_apply_replace_trains_a_new_model_under_a_new_id_and_deletes_the_old(project):
    project.spec(SENTIMENT_SPEC.replace("    display_name: Sentiment\n",
                                        "    display_name: Sentiment\n    lifecycle: {keep_previous: 0}\n"))
    assert project.run("apply", "--auto-approve").code == 0
    old = project.state()["models"]["sentiment"]
    result = project.run("apply", "--auto-approve", "--replace", "sentiment")
    assert result.code == 0, result.output
    new = project.state()["models"]["sentiment"]
    assert new["tuned_model_id"] != old["tuned_model_id"]
    assert new["fingerprint"] == old["fingerprint"] and new["generation"] == 1
    assert project.artifacts() == [new["tuned_model_id"]]
    assert project.run("plan", "--detailed-exitcode").code == 0
    assert project.run("apply", "--auto-approve", "--replace", "sentiment").code == 0
    again = project.state()["models"]["sentiment"]
    assert again["generation"] == 2 and again["tuned_model_id"] not in (old["tuned_model_id"], new["tuned_model_id"])


def test_replace_of_an_unknown_name_is_an_error_naming_the_known_ones(project):
    for command in (("plan",), ("apply", "--auto-approve")):
        result = project.run(*command, "--replace", "sentimnet")
        assert result.code == 1
        assert "--replace sentimnet: no such model in the configs" in result.err
        assert "known models: sentiment" in result.err
    assert not (project.root / "state" / "default.json").exists()


def test_a_saved_plan_with_replace_applies_the_replacement(project, tmp_path):
    assert project.run("apply", "--auto-approve").code == 0
    old_id = project.state()["models"]["sentiment"]["tuned_model_id"]
    saved = tmp_path / "replace.plan"
    assert project.run("plan", "--replace", "sentiment", "--out", str(saved)).code == 0
    assert json.loads(saved.read_text())["replace"] == ["sentiment"]
    result = project.run("apply", str(saved))
    assert result.code == 0, result.output
    new = project.state()["models"]["sentiment"]
    assert new["tuned_model_id"] != old_id and sorted(project.artifacts()) == sorted([old_id, new["tuned_model_id"]])
    assert [r["tuned_model_id"] for r in new["retained"]] == [old_id]  # lifecycle.keep_previous: 1 (the default)


def test_a_saved_plan_without_replace_is_not_a_replacement(project, tmp_path):
    """The re-plan at apply time uses the file's own replace list: an unforced file cannot turn into a job."""
    assert project.run("apply", "--auto-approve").code == 0
    saved = tmp_path / "empty.plan"
    assert project.run("plan", "--out", str(saved)).code == 0
    assert project.run("apply", str(saved), "--replace", "sentiment").code == 1  # usage error: the plan is made
    assert project.run("apply", str(saved)).code == 0
    assert "generation" not in project.state()["models"]["sentiment"]


def test_a_forced_replacement_interrupted_after_its_intent_was_recorded_is_resumed_not_started_again(project):
    """As after a crash between recording the intent and submitting (apply.py's rule 1): the next apply, with or
    without --replace, resumes that job under the recorded id; it never derives a third one."""
    assert project.run("apply", "--auto-approve").code == 0
    path = project.root / "state" / "default.json"
    state = json.loads(path.read_text())
    record = state["models"]["sentiment"]
    old_id = record["tuned_model_id"]
    model = replace(planned_model("sentiment"), generation=1)
    forced_id = f"sentiment-{owner_tag(state['lineage'], state['workspace'])}-{model.job_key[:10]}"
    record["pending"] = {**{k: v for k, v in record.items() if k not in ("handle", "metrics")},
                         "status": "submitting", "tuned_model_id": forced_id, "generation": 1}
    path.write_text(json.dumps(state))
    for flags in ((), ("--replace", "sentiment")):
        planned = project.run("plan", *flags)
        assert "# resuming: job already submitted" in planned.out, planned.output
    result = project.run("apply", "--auto-approve", "--replace", "sentiment")
    assert result.code == 0, result.output
    assert project.state()["models"]["sentiment"]["tuned_model_id"] == forced_id
    assert sorted(project.artifacts()) == sorted([forced_id, old_id])  # the replaced one is retained
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_replace_on_the_gemini_api_trains_a_second_model_and_retains_the_first(gemini, emulator):  # noqa: F811 (fixtures)
    assert gemini.run("apply", "--auto-approve").code == 0
    old_id = gemini.state()["models"]["reviews"]["tuned_model_id"]
    result = gemini.run("apply", "--auto-approve", "--replace", "reviews")
    assert result.code == 0, result.output
    new_id = gemini.state()["models"]["reviews"]["tuned_model_id"]
    assert new_id != old_id and new_id.startswith("tunedModels/reviews-")
    assert "deleting" not in result.err  # lifecycle.keep_previous: 1 (the default) retains the first
    assert {m.name for m in sdk(emulator).list_tuned_models()} == {new_id, old_id}
    assert [r["tuned_model_id"] for r in gemini.state()["models"]["reviews"]["retained"]] == [old_id]
    assert gemini.run("plan", "--detailed-exitcode").code == 0


def test_a_forced_replacement_killed_while_tuning_is_resumed_by_a_plain_apply(make_lab):  # noqa: F811 (fixture)
    """bench/crash.py's invariants over a SIGKILL once the forced job is submitted: the next `apply` (no flag)
    waits for that job; nothing is paid twice, no model is orphaned, the old one is retained."""
    lab = make_lab(models=1)
    assert lab.run("apply", "--auto-approve").returncode == 0
    old_id = crash.current_ids(lab.state()).pop()
    base = lab.serial()
    process = lab.start("apply", "--auto-approve", "--replace", "task-0")
    assert crash._wait_until(lambda: lab.serial() >= base + 2, process)  # the intent, then the job handle
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert lab.state()["models"]["task-0"]["pending"]["status"] == "creating"
    rerun = lab.run("apply", "--auto-approve")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "resuming" in rerun.stdout + rerun.stderr
    assert len(lab.creates_by_identity()) == 2 and set(lab.creates_by_identity().values()) == {1}
    assert crash.current_ids(lab.state()) != {old_id} and crash.retained_ids(lab.state()) == {old_id}
    assert set(lab.held()) == crash.current_ids(lab.state()) | {old_id}


def test_replace_completes_model_names(project):
    from tests.test_completion import TWO_MODELS, candidates

    project.spec(TWO_MODELS)
    assert candidates(["plan", "--replace"], "s") == ["sentiment", "spam"]
    assert candidates(["apply", "--replace", "spam", "--replace"], "t") == ["topics"]
