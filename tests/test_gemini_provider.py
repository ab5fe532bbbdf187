"""The gemini provider end to end through the CLI, against the loopback emulator, with the real SDK."""

from __future__ import annotations

import json
import re
import warnings
from types import SimpleNamespace

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import google.generativeai as genai

from runner.emulators.gemini import POISON_OUTPUT, GeminiEmulator
from runner.environment import Environment
from runner.errors import DatasetChangedError
from runner.identity import Owner, owner_tag
from runner.ops.plan import plan
from runner.project import Project as Engine
from tests.conftest import NoWaitClock, SteppingClock, edit_one_example_in_place, planned_model

KEY = "emulator-key-1234"
BASE = "models/gemini-1.5-flash-001-tuning"
OWNER = Owner("test-lineage", "default")



@pytest.fixture
def emulator():
    server = GeminiEmulator(job_seconds=3.0, clock=SteppingClock(), api_keys={KEY}).start()
    yield server
    server.stop()


def spec(emulator, models: str, extra_provider: str = "") -> str:
    return f"""\
providers:
  gemini:
    api_key_env: TUNER_TEST_GEMINI_KEY
    endpoint: {emulator.url}
    poll_seconds: 0.01
{extra_provider}
defaults:
  provider: gemini
  base_model: {BASE}
  hyperparameters: {{epoch_count: 10, batch_size: 16, learning_rate: 0.5}}
models:
{models}"""


ONE = """\
  reviews:
    display_name: Reviews
    description: Review sentiment
    dataset: {train: ../data/train.jsonl}
"""


@pytest.fixture
def gemini(project, emulator, monkeypatch):
    monkeypatch.setenv("TUNER_TEST_GEMINI_KEY", KEY)
    monkeypatch.delenv("TUNER_GEMINI_ENDPOINT", raising=False)
    project.spec(spec(emulator, ONE))
    return project


def sdk(emulator):
    genai.configure(api_key=KEY, transport="rest", client_options={"api_endpoint": emulator.url})
    return genai


def test_apply_creates_a_tuned_model_and_the_next_plan_is_empty(gemini, emulator):
    result = gemini.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    record = gemini.state()["models"]["reviews"]
    state = gemini.state()
    tag = owner_tag(state["lineage"], state["workspace"])
    assert re.fullmatch(rf"tunedModels/reviews-{tag}-[0-9a-f]{{10}}", record["tuned_model_id"])
    assert record["handle"].startswith(record["tuned_model_id"] + "/operations/")
    assert record["status"] == "active"
    assert record["provider_info"]["sdk"] == "google-generativeai"
    assert sdk(emulator).get_tuned_model(record["tuned_model_id"]).state.name == "ACTIVE"
    assert gemini.run("plan", "--detailed-exitcode").code == 0
    answer = gemini.run("predict", "reviews", "Terrible quality, it broke after one day, I want a refund")
    assert answer.out.strip() == "negative"


def test_the_api_key_never_lands_in_state_plans_or_output(gemini):
    result = gemini.run("apply", "--auto-approve")
    gemini.run("plan", "--out", "plan.json")
    assert KEY not in result.output
    assert KEY not in (gemini.root / "state" / "default.json").read_text()
    assert KEY not in (gemini.root / "plan.json").read_text()


def test_missing_key_fails_before_anything_is_submitted(gemini, emulator, monkeypatch):
    monkeypatch.delenv("TUNER_TEST_GEMINI_KEY")
    result = gemini.run("apply", "--auto-approve")
    assert result.code == 1
    assert "environment variable TUNER_TEST_GEMINI_KEY is not set" in result.err
    assert emulator.stats["tuned_models"] == 0
    assert gemini.state_bytes() is None


def test_a_wrong_key_is_a_clear_error_without_traceback(gemini, monkeypatch):
    monkeypatch.setenv("TUNER_TEST_GEMINI_KEY", "wrong-key")
    result = gemini.run("apply", "--auto-approve")
    assert result.code == 1
    assert "API key not valid" in result.err and "set a valid Gemini API key in TUNER_TEST_GEMINI_KEY" in result.err
    assert "Traceback" not in result.output and "wrong-key" not in result.output


def test_hyperparameter_change_replaces_new_active_before_old_deleted(gemini, emulator):
    gemini.run("apply", "--auto-approve")
    old_id = gemini.state()["models"]["reviews"]["tuned_model_id"]
    gemini.spec(spec(emulator, ONE.replace("dataset:", "lifecycle: {keep_previous: 0}\n    "
                                                      "hyperparameters: {learning_rate: 0.4}\n    dataset:")))
    plan = json.loads(gemini.run("plan", "--json").out)
    assert plan["changes"][0]["action"] == "replace"
    result = gemini.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    new_id = gemini.state()["models"]["reviews"]["tuned_model_id"]
    assert new_id != old_id
    assert result.err.index("reviews: active") < result.err.index(f"deleting (superseded {old_id})")
    names = [m.name for m in sdk(emulator).list_tuned_models()]
    assert names == [new_id]


def test_reverting_a_hyperparameter_change_restores_the_retained_model_without_a_job(gemini, emulator):
    gemini.run("apply", "--auto-approve")
    first = gemini.state()["models"]["reviews"]["tuned_model_id"]
    gemini.spec(spec(emulator, ONE.replace("dataset:", "hyperparameters: {learning_rate: 0.4}\n    dataset:")))
    assert gemini.run("apply", "--auto-approve").code == 0
    second = gemini.state()["models"]["reviews"]["tuned_model_id"]
    creates = emulator.stats["creates"]
    gemini.spec(spec(emulator, ONE))
    assert f"<= reviews (gemini) will be restored to {first} (retained; no training, $0)" in gemini.run("plan").out
    result = gemini.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    assert emulator.stats["creates"] == creates == 2  # the restore started no job
    record = gemini.state()["models"]["reviews"]
    assert record["tuned_model_id"] == first and [r["tuned_model_id"] for r in record["retained"]] == [second]
    assert sorted(m.name for m in sdk(emulator).list_tuned_models()) == sorted([first, second])
    assert gemini.run("plan", "--detailed-exitcode").code == 0


def test_description_change_is_updated_in_place(gemini, emulator):
    gemini.run("apply", "--auto-approve")
    tuned_id = gemini.state()["models"]["reviews"]["tuned_model_id"]
    gemini.spec(spec(emulator, ONE.replace("Review sentiment", "Sentiment of product reviews")))
    assert json.loads(gemini.run("plan", "--json").out)["changes"][0]["action"] == "update"
    assert gemini.run("apply", "--auto-approve").code == 0
    assert sdk(emulator).get_tuned_model(tuned_id).description == "Sentiment of product reviews"
    assert emulator.stats["creates"] == 1


def test_removal_deletes_the_tuned_model(gemini, emulator):
    gemini.run("apply", "--auto-approve")
    gemini.spec(spec(emulator, "  {}\n").replace("models:\n  {}", "models: {}"))
    assert gemini.run("apply", "--auto-approve").code == 0
    assert list(sdk(emulator).list_tuned_models()) == []
    assert gemini.state()["models"] == {}


def test_a_model_deleted_through_the_sdk_is_recreated_by_plain_plan_and_apply(gemini, emulator):
    gemini.run("apply", "--auto-approve")
    tuned_id = gemini.state()["models"]["reviews"]["tuned_model_id"]
    sdk(emulator).delete_tuned_model(tuned_id)
    calls_before = emulator.stats["list_calls"]
    assert gemini.run("plan", "--refresh=false", "--detailed-exitcode").code == 0  # state alone cannot know
    assert emulator.stats["list_calls"] == calls_before  # and no provider was asked
    result = gemini.run("plan", "--detailed-exitcode")  # refresh is the default
    assert result.code == 2 and "deleted outside tuner" in result.out
    assert emulator.stats["list_calls"] == calls_before + 1  # one paged list, not one call per model
    assert gemini.run("apply", "--auto-approve").code == 0
    assert sdk(emulator).get_tuned_model(tuned_id).state.name == "ACTIVE"


def test_an_offline_plan_needs_no_key_and_no_reachable_provider(project, monkeypatch):
    monkeypatch.delenv("TUNER_TEST_GEMINI_KEY", raising=False)
    monkeypatch.delenv("TUNER_GEMINI_ENDPOINT", raising=False)
    project.spec(spec(SimpleNamespace(url="http://127.0.0.1:9"), ONE))  # port 9: nothing listens
    result = project.run("plan", "--refresh=false", "--detailed-exitcode")
    assert result.code == 2 and "+ reviews (gemini) will be created" in result.out
    project.record_applied_settings("gemini")  # so a refresh would call it
    result = project.run("plan")
    assert result.code == 1
    assert "TUNER_TEST_GEMINI_KEY is not set" in result.err and "pass --refresh=false" in result.err


def test_import_adopts_a_model_made_outside_tuner(gemini, emulator):
    genai_ = sdk(emulator)
    examples = [json.loads(line) for line in (gemini.root / "data" / "train.jsonl").read_text().splitlines()]
    genai_.create_tuned_model(BASE, examples, id="made-by-hand", display_name="Reviews", description="Review sentiment",
                              epoch_count=10, batch_size=16, learning_rate=0.5)
    # Settings never applied: refresh does not send the key where the spec points before a plan shows them.
    assert "gemini was not refreshed" in gemini.run("plan", "--refresh").out
    result = gemini.run("import", "reviews", "made-by-hand")  # asked for by hand: records the settings used
    assert result.code == 0, result.output
    assert gemini.state()["models"]["reviews"]["tuned_model_id"] == "tunedModels/made-by-hand"
    assert gemini.run("plan", "--detailed-exitcode").code == 0
    genai_.create_tuned_model(BASE, examples, id="made-by-hand-too", epoch_count=10, batch_size=16,
                              learning_rate=0.5)
    result = gemini.run("plan", "--refresh")
    assert "tunedModels/made-by-hand-too exists at gemini but is not managed" in result.out


def test_a_failed_job_is_reported_and_the_rest_of_the_apply_succeeds(gemini, emulator):
    poisoned = gemini.root / "data" / "poisoned.jsonl"
    lines = (gemini.root / "data" / "train.jsonl").read_text().splitlines()
    lines[5] = json.dumps({"text_input": "poisoned example", "output": POISON_OUTPUT})
    poisoned.write_text("\n".join(lines) + "\n")
    gemini.spec(spec(emulator, ONE + "  broken:\n    dataset: {train: ../data/poisoned.jsonl}\n"))
    result = gemini.run("apply", "--auto-approve")
    assert result.code == 1
    assert "broken: tuning job failed:" in result.err
    models = gemini.state()["models"]
    assert models["reviews"]["status"] == "active"
    assert models["broken"]["pending"]["status"] == "failed"
    assert models["broken"]["pending"]["error"]
    plan = json.loads(gemini.run("plan", "--json").out)
    assert [c["action"] for c in plan["changes"] if c["name"] == "broken"] == ["create"]


def test_eight_models_with_a_quota_of_five_all_finish(project, monkeypatch):
    server = GeminiEmulator(job_seconds=3.0, clock=SteppingClock(step=0.01), api_keys={KEY}).start()
    try:
        monkeypatch.setenv("TUNER_TEST_GEMINI_KEY", KEY)
        models = "".join(f"  task-{i}:\n    dataset: {{train: ../data/train.jsonl}}\n"
                         f"    hyperparameters: {{epoch_count: {i + 1}}}\n" for i in range(8))
        project.spec(spec(server, models, "    max_concurrent_jobs: 8"))
        result = project.run("apply", "--auto-approve")
        assert result.code == 0, result.output
        stats = server.stats
        assert stats["errors_by_status"].get("RESOURCE_EXHAUSTED", 0) > 0  # beyond five, submissions waited
        assert "RESOURCE_EXHAUSTED" in result.err
        assert stats["states"]["ACTIVE"] == 8
        assert sorted(stats["creates_by_id"].values()) == [1] * 8
    finally:
        server.stop()


def test_with_faults_the_apply_completes_with_exactly_one_model_per_spec(project, monkeypatch):
    # Reproducible whatever the threads' timing: faults follow each request and its attempt, the tuned model ids
    # (which the requests carry) derive from a fixed lineage, and jobs end at once, so how many polls a job takes
    # does not depend on how the threads' reads of a shared clock interleave.
    server = GeminiEmulator(job_seconds=0.0, clock=SteppingClock(), api_keys={KEY}, fault_rate=0.1, seed=7,
                            fault_delay_seconds=0.05, ambiguous_create_rate=0.2).start()
    try:
        monkeypatch.setenv("TUNER_TEST_GEMINI_KEY", KEY)
        models = "".join(f"  task-{i}:\n    dataset: {{train: ../data/train.jsonl}}\n"
                         f"    hyperparameters: {{epoch_count: {i + 1}}}\n" for i in range(6))
        project.spec(spec(server, models))
        project.record_applied_settings("gemini")
        result = project.run("apply", "--auto-approve")  # faults meet the refresh, submissions, polls, retries
        assert result.code == 0, result.output
        stats = server.stats
        assert stats["faults_unavailable"] > 0 and stats["ambiguous_creates"] > 0
        assert sorted(stats["creates_by_id"].values()) == [1] * 6
        assert stats["states"]["ACTIVE"] == 6
    finally:
        server.stop()


def test_a_refresh_survives_a_brief_outage_waiting_on_the_injected_clock(gemini, emulator):
    gemini.record_applied_settings("gemini")  # so refresh calls the provider
    emulator.fail_next(2)
    clock = NoWaitClock()
    the_plan, _ = plan(Engine.open(None, None, env=Environment(clock=clock)))
    assert [(c.name, c.action) for c in the_plan.changes] == [("reviews", "create")]
    assert len(clock.waited) == 2
    assert emulator.stats["faults_unavailable"] == 2 and emulator.stats["list_calls"] == 1


def test_an_unknown_base_model_lists_the_tunable_ones(gemini, emulator):
    gemini.spec(spec(emulator, ONE.replace("dataset:", "base_model: models/no-such-model\n    dataset:")))
    result = gemini.run("apply", "--auto-approve")
    assert result.code == 1
    assert "models/no-such-model was not found" in result.err
    assert "use a base model that supports tuning: models/gemini-1.5-flash-001-tuning" in result.err


def test_display_name_longer_than_the_api_allows_fails_at_plan_time(gemini, emulator):
    gemini.spec(spec(emulator, ONE.replace("display_name: Reviews", "display_name: " + "R" * 41)))
    result = gemini.run("plan")
    assert result.code == 1
    assert "display_name: 41 characters; the Gemini API allows 40" in result.err


def test_metrics_are_recorded_and_a_worse_model_is_rejected_on_the_gemini_api(gemini, emulator):
    gated = ONE.replace("dataset: {train: ../data/train.jsonl}",
                        "dataset: {train: ../data/train.jsonl, validation: ../data/valid.jsonl}\n"
                        "    gate: {no_regression: true}")
    gemini.spec(spec(emulator, gated))
    assert gemini.run("apply", "--auto-approve").code == 0
    good = gemini.state()["models"]["reviews"]
    assert good["metrics"]["accuracy"] > 0.6 and good["metrics"]["eval_set"]["examples"] == 66
    rows = [json.loads(line) for line in (gemini.root / "data" / "train.jsonl").read_text().splitlines()]
    flipped = {"positive": "negative", "negative": "positive", "neutral": "positive"}
    (gemini.root / "data" / "flipped.jsonl").write_text(
        "".join(json.dumps({"text_input": r["text_input"], "output": flipped[r["output"]]}) + "\n" for r in rows))
    gemini.spec(spec(emulator, gated.replace("../data/train.jsonl", "../data/flipped.jsonl")))
    result = gemini.run("apply", "--auto-approve")
    assert result.code == 1 and "rejected by the quality gate" in result.err
    record = gemini.state()["models"]["reviews"]
    assert record["tuned_model_id"] == good["tuned_model_id"]
    assert record["pending"]["status"] == "rejected"
    names = {m.name for m in sdk(emulator).list_tuned_models()}
    assert names == {good["tuned_model_id"], record["pending"]["tuned_model_id"]}  # nothing deleted


# -- ownership: a model belongs to one (lineage, workspace, name) ----------------------------------------------

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


def test_destroy_never_deletes_a_gemini_model_of_another_workspace(gemini, emulator):
    assert gemini.run("apply", "--auto-approve", "-w", "dev").code == 0
    assert gemini.run("apply", "--auto-approve", "-w", "prod").code == 0
    stolen = gemini.record_foreign_model("dev", "prod", "reviews")
    # dev forgets it, so no state of the backend references it (runner.references): only its owner tag guards it
    assert gemini.run("state", "rm", "reviews", "-w", "dev").code == 0
    result = gemini.run("destroy", "--auto-approve", "-w", "prod")
    assert result.code == 0, result.output
    assert "not deleted" in result.output and "does not carry this state's identity" in result.output
    assert stolen in [m.name for m in sdk(emulator).list_tuned_models()]
    assert gemini.state("prod")["models"] == {}  # forgotten, not deleted


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


def test_gemini_import_refuses_a_model_another_name_manages(gemini, emulator):
    gemini.spec(spec(emulator, ONE + ONE.replace("reviews:", "copy:")))
    assert gemini.run("apply", "--auto-approve", "--target", "reviews").code == 0
    managed = gemini.state()["models"]["reviews"]["tuned_model_id"]
    result = gemini.run("import", "copy", managed.removeprefix("tunedModels/"))
    assert result.code == 1
    assert "is already managed by reviews" in result.err


def test_a_gemini_id_from_an_edited_state_never_reaches_a_url(gemini, emulator):
    assert gemini.run("apply", "--auto-approve").code == 0
    path = gemini.root / "state" / "default.json"
    state = json.loads(path.read_text())
    state["models"]["reviews"]["tuned_model_id"] = "tunedModels/../../models/gemini-1.5-flash-001-tuning"
    path.write_text(json.dumps(state))
    result = gemini.run("destroy", "--auto-approve")
    assert result.code == 1 and "not a valid Gemini tuned model id" in result.output
    assert emulator.stats["delete_calls"] == 0 and emulator.stats["tuned_models"] == 1


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


def test_training_data_changed_since_the_plan_is_never_sent(gemini, emulator):
    model = planned_model("reviews")
    edit_one_example_in_place(gemini.root / "data" / "train.jsonl")
    provider = Engine.open(None, None).providers["gemini"]
    with pytest.raises(DatasetChangedError, match=r"^data/train.jsonl changed since it was planned: planned sha256:"):
        provider.submit(model, provider.tuned_model_id(model, OWNER), OWNER)
    assert emulator.stats["tuned_models"] == 0


# -- provider settings are part of what a plan shows (they decide where the key is sent) ------------------

@pytest.fixture
def other_emulator():
    """A second endpoint, standing for one a pull request points the provider at."""
    server = GeminiEmulator(job_seconds=3.0, clock=SteppingClock(), api_keys={KEY}).start()
    yield server
    server.stop()


def test_state_records_the_provider_settings_without_any_secret(gemini, emulator):
    assert gemini.run("apply", "--auto-approve").code == 0
    state = gemini.state()
    assert state["providers"] == {"gemini": {"endpoint": emulator.url, "api_key_env": "TUNER_TEST_GEMINI_KEY"}}
    assert KEY not in json.dumps(state)


def test_a_spec_only_change_of_endpoint_and_key_variable_is_a_change_and_refresh_does_not_follow_it(
        gemini, emulator, other_emulator, monkeypatch):
    assert gemini.run("apply", "--auto-approve").code == 0
    monkeypatch.setenv("OTHER_GEMINI_KEY", "a-secret-the-old-endpoint-never-saw")
    gemini.spec(spec(emulator, ONE).replace(emulator.url, other_emulator.url)
                .replace("TUNER_TEST_GEMINI_KEY", "OTHER_GEMINI_KEY"))
    result = gemini.run("plan", "--detailed-exitcode")
    assert result.code == 2, result.output
    assert f'endpoint    = "{emulator.url}" -> "{other_emulator.url}"' in result.out
    assert 'api_key_env = "TUNER_TEST_GEMINI_KEY" -> "OTHER_GEMINI_KEY"' in result.out
    refreshed = gemini.run("plan", "--refresh", "--json")
    assert refreshed.code == 0, refreshed.output
    document = json.loads(refreshed.out)
    assert document["not_refreshed"] == ["gemini"]
    assert document["provider_settings"][0]["fields"]["endpoint"]["new"] == other_emulator.url
    assert "OTHER_GEMINI_KEY" in gemini.run("plan", "--markdown").out
    assert "gemini: not refreshed" in gemini.run("refresh").out
    assert other_emulator.stats["requests"] == 0  # nothing, least of all the key, went to the new endpoint
    assert gemini.run("apply", "--auto-approve").code == 0
    assert gemini.state()["providers"]["gemini"]["endpoint"] == other_emulator.url
    # Applied: now a refresh may call the new endpoint (which does not know this key, so plan offline).
    assert gemini.run("plan", "--refresh=false", "--detailed-exitcode").code == 0


def test_a_saved_plan_with_a_settings_change_applies_it_and_refuses_other_settings(gemini, emulator,
                                                                                   other_emulator):
    assert gemini.run("apply", "--auto-approve").code == 0
    gemini.spec(spec(emulator, ONE).replace(emulator.url, other_emulator.url))
    assert gemini.run("plan", "--out", "plan.json").code == 0
    assert gemini.run("apply", "plan.json").code == 0
    assert gemini.state()["providers"]["gemini"]["endpoint"] == other_emulator.url


@pytest.mark.parametrize("setting, value", [("endpoint", "http://evil.example"),
                                            ("api_key_env", "HOME"),
                                            ("api_key_env", "GITHUB_TOKEN")])
def test_an_unsafe_provider_setting_is_refused_naming_it(gemini, emulator, setting, value):
    text = spec(emulator, ONE)
    old = emulator.url if setting == "endpoint" else "TUNER_TEST_GEMINI_KEY"
    gemini.spec(text.replace(old, value))
    result = gemini.run("plan")
    assert result.code == 1
    assert f"providers.gemini.{setting}: '{value}'" in result.err, result.err
    assert "internal error" not in result.err


def test_a_plain_http_endpoint_from_the_environment_is_refused_naming_the_variable(gemini, monkeypatch):
    monkeypatch.setenv("TUNER_GEMINI_ENDPOINT", "http://evil.example:8080")
    result = gemini.run("validate")
    assert result.code == 1
    assert "TUNER_GEMINI_ENDPOINT: 'http://evil.example:8080'" in result.err, result.err


@pytest.mark.parametrize("command", [("import", "other", "made-by-hand"), ("predict", "reviews", "Great!"),
                                     ("eval", "reviews")])
def test_a_direct_provider_call_with_changed_settings_is_refused_before_any_call(gemini, emulator, other_emulator,
                                                                                 command):
    assert gemini.run("apply", "--auto-approve").code == 0
    second = ONE.replace("dataset: {train: ../data/train.jsonl}",
                         "dataset: {train: ../data/train.jsonl, validation: ../data/valid.jsonl}")
    second += "  other:\n    dataset: {train: ../data/train.jsonl}\n"
    gemini.spec(spec(emulator, second).replace(emulator.url, other_emulator.url))
    result = gemini.run(*command)
    assert result.code == 1
    assert "the settings of provider gemini changed since the last apply" in result.err, result.err
    assert other_emulator.stats["requests"] == 0


LOCAL_GEMINI_VERTEX = f"""\
providers:
  vertex: {{project: tuner-test, staging_bucket: gs://tuner-staging/tuner}}
models:
  on-this-machine:
    provider: local
    base_model: local/linear-ngram
    dataset: {{train: ../data/train.jsonl}}
  at-gemini:
    provider: gemini
    base_model: {BASE}
    dataset: {{train: ../data/train.jsonl}}
  at-vertex:
    provider: vertex
    base_model: gemini-2.5-flash
    dataset: {{train: ../data/train.jsonl}}
"""


def test_every_provider_missing_credentials_is_named_before_anything_is_trained(project, monkeypatch):
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("TUNER_GEMINI_ENDPOINT", raising=False)
    monkeypatch.delenv("TUNER_VERTEX_ENDPOINT", raising=False)
    monkeypatch.delenv("TUNER_VERTEX_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(project.root / "no-such-key.json"))
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)  # set for the session by the GCS fixture
    project.spec(LOCAL_GEMINI_VERTEX)
    for flag in ("--refresh=false", "--refresh"):
        result = project.run("apply", "--auto-approve", flag)
        assert result.code == 1, result.output
        assert "GOOGLE_API_KEY" in result.err and "no-such-key.json" in result.err  # both, in one error
        assert "Traceback" not in result.output
        assert project.artifacts() == [] and project.state_bytes() is None  # the local model was not trained
