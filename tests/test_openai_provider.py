"""The openai provider end to end through the CLI: the real `openai` SDK against the OpenAI emulator on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import openai
import pytest

from runner.emulators.openai import POISON_OUTPUT, OpenAIEmulator
from runner.errors import DatasetChangedError, NotOwnedError, ProviderError
from runner.identity import Owner, owner_tag
from runner.providers.openai import OpenAIProvider, _limits, owner_of
from tests.conftest import FakeClock, NoWaitClock, SteppingClock, edit_one_example_in_place, planned_model

KEY = "sk-tuner-test-0123456789abcdef"  # what must never reach state, plans, outputs or logs
KEY_ENV = "TUNER_TEST_OPENAI_KEY"
OWNER = Owner("test-lineage", "default")


@pytest.fixture
def emulator() -> Iterator[OpenAIEmulator]:
    server = OpenAIEmulator(job_seconds=3.0, clock=SteppingClock(), api_keys={KEY}).start()
    yield server
    server.stop()


def spec(emulator: OpenAIEmulator, models: str) -> str:
    return f"""\
providers:
  openai:
    api_key_env: {KEY_ENV}
    base_url: {emulator.url}/v1
    poll_seconds: 0.01
defaults:
  provider: openai
  base_model: gpt-4o-mini-2024-07-18
models:
{models}"""


THREE = """\
  intent:
    display_name: Intent
    description: Review sentiment
    dataset: {train: ../data/train.jsonl, validation: ../data/valid.jsonl, system_prompt: "Label the review."}
    hyperparameters: {epoch_count: 10, batch_size: 8, learning_rate_multiplier: 1.0, seed: 7}
  intent-copy:
    dataset: {train: ../data/train.jsonl, system_prompt: "Label the review."}
  small:
    dataset: {train: ../data/valid.jsonl}
    hyperparameters: {epoch_count: 2}
"""


# One small model (66 examples, no eval set): what most tests need, trained in a fraction of THREE's time.
ONE = """\
  small:
    description: Review sentiment
    dataset: {train: ../data/valid.jsonl, system_prompt: "Label the review."}
    hyperparameters: {epoch_count: 2, seed: 7}
"""


@pytest.fixture
def oai(project, emulator, monkeypatch):
    monkeypatch.delenv("TUNER_OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv(KEY_ENV, KEY)
    project.spec(spec(emulator, THREE))
    return project


@pytest.fixture
def one(oai, emulator):
    oai.spec(spec(emulator, ONE))
    return oai


def sdk(emulator: OpenAIEmulator) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=f"{emulator.url}/v1", max_retries=0)


def provider_of(emulator: OpenAIEmulator) -> OpenAIProvider:
    return OpenAIProvider({"api_key_env": KEY_ENV, "base_url": f"{emulator.url}/v1"}, environ={KEY_ENV: KEY})


def fine_tuned_models(emulator: OpenAIEmulator) -> set[str]:
    return {m.id for m in sdk(emulator).models.list() if m.id.startswith("ft:")}


def test_apply_of_three_models_uploads_a_shared_dataset_once_and_keeps_the_key_out_of_every_file(oai, emulator):
    planned = oai.run("plan", "--out", "saved.plan")
    result = oai.run("apply", "saved.plan")
    assert result.code == 0, result.output
    stats = emulator.stats
    assert stats["file_uploads"] == 3  # train with the prompt (shared by two models), valid with it, valid without
    assert stats["creates"] == 3 and stats["states"] == {"succeeded": 3}
    assert sorted(stats["jobs_by_training_file"].values()) == [1, 2]
    models = oai.state()["models"]
    record = models["intent"]
    assert record["status"] == "active" and record["tuned_model_id"].startswith("ft:gpt-4o-mini-2024-07-18:")
    assert owner_of(record["tuned_model_id"]) == owner_tag(oai.state()["lineage"], "default")
    assert record["handle"].startswith("ftjob-") and record["provider_info"]["sdk"] == "openai"
    assert record["hyperparameters"] == {"epoch_count": 10, "batch_size": 8, "learning_rate_multiplier": 1.0,
                                         "seed": 7}
    assert models["intent-copy"]["hyperparameters"] == {"epoch_count": None, "batch_size": None,
                                                        "learning_rate_multiplier": None, "seed": None}
    job = sdk(emulator).fine_tuning.jobs.retrieve(record["handle"])
    assert job.seed == 7 and job.metadata["tuner_display_name"] == "Intent"
    assert job.method.supervised.hyperparameters.n_epochs == 10
    assert oai.run("plan", "--detailed-exitcode").code == 0
    answer = oai.run("predict", "intent", "Awful. It broke the first week and the seller ignored my emails")
    assert answer.out.strip() == "negative"
    outputs = [planned.output, result.output, answer.output, oai.run("output", "--json").output,
               oai.run("show").output]
    files = [oai.state_bytes().decode(), (oai.root / "saved.plan").read_bytes().decode(errors="replace")]
    assert all(KEY not in text for text in outputs + files)


def test_a_description_change_is_kept_in_state_with_no_new_job(one, emulator):
    assert one.run("apply", "--auto-approve").code == 0
    one.spec(spec(emulator, ONE.replace("Review sentiment", "Sentiment of reviews")))
    assert one.run("apply", "--auto-approve").code == 0
    assert one.state()["models"]["small"]["description"] == "Sentiment of reviews"
    assert emulator.stats["creates"] == 1
    assert one.run("plan", "--detailed-exitcode").code == 0  # refresh keeps state's description


def test_a_seed_or_system_prompt_change_replaces_the_model(one, emulator):
    assert one.run("apply", "--auto-approve").code == 0
    for changed in (ONE.replace("seed: 7", "seed: 8"), ONE.replace("Label the review.", "Label it.")):
        one.spec(spec(emulator, changed))
        assert [c["action"] for c in json.loads(one.run("plan", "--json").out)["changes"]] == ["replace"]


def _killed_before_the_job_id_reached_state(project, emulator) -> dict:
    """Apply `small`, then rewrite its state as if the process died after OpenAI accepted the job but before the
    job's id reached state: a submission recorded under its tuner id, with no handle. The record applied."""
    assert project.run("apply", "--auto-approve").code == 0
    state_path = project.root / "state" / "default.json"
    state = json.loads(state_path.read_text())
    record = state["models"]["small"]
    intent = {key: value for key, value in record.items() if key not in ("handle", "resources", "metrics")}
    tuner_id = next(job.metadata["tuner_id"] for job in sdk(emulator).fine_tuning.jobs.list()
                    if job.id == record["handle"])
    state["models"]["small"] = {"pending": intent | {"status": "submitting", "tuned_model_id": tuner_id}}
    state_path.write_text(json.dumps(state))
    return record


def test_a_crashed_submission_is_adopted_not_paid_twice(one, emulator):
    record = _killed_before_the_job_id_reached_state(one, emulator)
    result = one.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    assert emulator.stats["creates"] == 1  # found by its metadata and adopted
    assert one.state()["models"]["small"]["tuned_model_id"] == record["tuned_model_id"]


def test_a_crashed_submission_superseded_by_a_new_config_leaves_no_orphan_model(one, emulator):
    """A SIGKILL between jobs.create and the state write, then a config change: the abandoned submission has no job
    id, and ending it must find its job by the metadata, or that job's model stays on, unknown to state."""
    record = _killed_before_the_job_id_reached_state(one, emulator)
    one.spec(spec(emulator, ONE.replace("epoch_count: 2", "epoch_count: 3")))
    result = one.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    assert fine_tuned_models(emulator) == {one.state()["models"]["small"]["tuned_model_id"]}
    assert record["tuned_model_id"] not in fine_tuned_models(emulator)


def test_a_model_deleted_outside_tuner_is_detected_and_repaired(one, emulator):
    assert one.run("apply", "--auto-approve").code == 0
    gone = one.state()["models"]["small"]["tuned_model_id"]
    sdk(emulator).models.delete(gone)
    result = one.run("plan", "--detailed-exitcode")
    assert result.code == 2 and "deleted outside tuner" in result.out
    assert one.run("apply", "--auto-approve").code == 0
    repaired = one.state()["models"]["small"]["tuned_model_id"]
    assert repaired != gone and repaired in fine_tuned_models(emulator)
    assert one.run("plan", "--detailed-exitcode").code == 0


def test_destroy_deletes_every_fine_tuned_model(one, emulator):
    assert one.run("apply", "--auto-approve").code == 0
    assert len(fine_tuned_models(emulator)) == 1
    result = one.run("destroy", "--auto-approve")
    assert result.code == 0, result.output
    assert fine_tuned_models(emulator) == set() and one.state()["models"] == {}


@pytest.mark.parametrize("faults", [{"fault_rate": 0.2}, {"ambiguous_create_rate": 0.5}], ids=["20%", "ambiguous"])
def test_with_faults_the_apply_completes_with_one_job_per_model(project, monkeypatch, faults):
    """20 % of requests answered 429 or 500 (doing nothing); or half the uploads and creates done but answered 500."""
    server = OpenAIEmulator(job_seconds=0.0, clock=SteppingClock(), api_keys={KEY}, seed=7, **faults).start()
    try:
        monkeypatch.setenv(KEY_ENV, KEY)
        project.spec(spec(server, ONE + "  other:\n    dataset: {train: ../data/valid.jsonl}\n"))
        project.record_applied_settings("openai")
        clock = NoWaitClock()  # the backoff between retries takes no real time
        result = project.run("apply", "--auto-approve", clock=clock)  # faults meet refresh, uploads, creates, polls
        assert result.code == 0, result.output
        stats = server.stats
        assert clock.waited and stats["creates"] == 2 and stats["states"] == {"succeeded": 2}
        assert stats["files"] == 2  # with and without the system prompt; one answered 500 is found, not sent again
        assert stats["faults_unavailable" if "fault_rate" in faults else "ambiguous_creates"] > 0
    finally:
        server.stop()


def test_workspaces_never_share_a_model_and_destroy_in_dev_leaves_prod(one, emulator):
    for workspace in ("dev", "prod"):
        assert one.run("apply", "--auto-approve", "-w", workspace).code == 0
    dev, prod = (one.state(w)["models"]["small"]["tuned_model_id"] for w in ("dev", "prod"))
    assert dev != prod and emulator.stats["creates"] == 2
    assert one.run("destroy", "--auto-approve", "-w", "dev").code == 0
    assert fine_tuned_models(emulator) == {prod}


def test_another_owners_model_or_job_is_never_deleted(one, emulator):
    assert one.run("apply", "--auto-approve").code == 0
    record = one.state()["models"]["small"]
    stranger = Owner("another-lineage", "default")
    provider = provider_of(emulator)
    with pytest.raises(NotOwnedError):
        provider.delete(record["tuned_model_id"], None, stranger)
    with pytest.raises(NotOwnedError):
        provider.delete(f"small-{stranger.tag}-0123456789", record["handle"], stranger)
    assert record["tuned_model_id"] in fine_tuned_models(emulator)


@pytest.mark.parametrize("recorded", [True, False], ids=["job-id-in-state", "killed-before-the-job-id-reached-state"])
def test_deleting_a_model_whose_job_still_runs_cancels_the_job(oai, recorded):
    """With no job id recorded (a SIGKILL between jobs.create and the state write) the job's metadata names it."""
    with OpenAIEmulator(job_seconds=3.0, clock=FakeClock(), api_keys={KEY}) as frozen:  # the job never finishes
        model = planned_model("intent-copy")
        provider = provider_of(frozen)
        tuner_id = provider.tuned_model_id(model, OWNER)
        job = provider.submit(model, tuner_id, OWNER)
        provider.delete(tuner_id, job if recorded else None, OWNER)
        assert sdk(frozen).fine_tuning.jobs.retrieve(job).status == "cancelled"


def test_data_changed_since_the_plan_is_neither_uploaded_nor_tuned(oai, emulator):
    model = planned_model("intent-copy")
    edit_one_example_in_place(oai.root / "data" / "train.jsonl")
    provider = provider_of(emulator)
    with pytest.raises(DatasetChangedError, match=r"^data/train.jsonl changed since it was planned"):
        provider.submit(model, provider.tuned_model_id(model, OWNER), OWNER)
    assert emulator.stats["file_uploads"] == 0 and emulator.stats["creates"] == 0


@pytest.mark.parametrize("handle", ["../../v1/models", "ftjob-x/../y", "file-abc"])
def test_an_edited_job_id_never_reaches_a_url(emulator, handle):
    with pytest.raises(ProviderError, match="not a valid OpenAI fine-tuning job id"):
        provider_of(emulator).poll(f"intent-{OWNER.tag}-0123456789", handle)
    assert emulator.stats["requests"] == 0


def test_a_wrong_key_stops_with_a_remedy_naming_the_variable(oai, emulator, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-wrong")
    result = oai.run("apply", "--auto-approve")
    assert result.code != 0 and KEY_ENV in result.err and "sk-wrong" not in result.output
    assert emulator.stats["creates"] == 0


def test_the_plan_refuses_learning_rate_and_names_the_alternative(oai, emulator):
    oai.spec(spec(emulator, THREE.replace("learning_rate_multiplier: 1.0", "learning_rate: 0.001")))
    result = oai.run("validate")
    assert result.code == 1
    assert "models.intent.hyperparameters.learning_rate: OpenAI takes learning_rate_multiplier" in result.err


def test_openai_limits_are_checked_at_plan_time_naming_file_and_line(oai, emulator):
    oai.write("data/few.jsonl", "".join(f'{{"text_input": "t{i}", "output": "o"}}\n' for i in range(8)))
    long_line = json.dumps({"text_input": "word " * 70_000, "output": "positive"})
    lines = (oai.root / "data" / "train.jsonl").read_text().splitlines()
    oai.write("data/long.jsonl", "\n".join(lines[:3] + [long_line] + lines[3:]) + "\n")
    oai.spec(spec(emulator, "  few:\n    dataset: {train: ../data/few.jsonl, allow_small: true}\n"
                            "  long:\n    dataset: {train: ../data/long.jsonl}\n"))
    result = oai.run("plan")
    assert result.code == 1
    assert "data/few.jsonl: 8 examples; OpenAI fine-tuning needs at least 10" in result.err
    assert "data/long.jsonl:4: about " in result.err and "takes at most 65536 per training example" in result.err


def test_the_plan_says_how_tokens_were_counted(oai, emulator, monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))  # no encoding on this machine
    out = oai.run("plan").out
    assert "tokens: estimated at 4 bytes per token: no tiktoken encoding available offline" in out


def test_a_system_prompt_is_refused_by_providers_that_do_not_train_with_one(project):
    project.spec(project.root.joinpath("configs/models.yaml").read_text().replace(
        "validation: ../data/valid.jsonl", "validation: ../data/valid.jsonl\n      system_prompt: Be brief."))
    result = project.run("validate")
    assert result.code == 1 and "models.sentiment.dataset.system_prompt: provider local trains" in result.err


def test_a_new_base_url_is_shown_in_the_plan_and_the_environment_overrides_it(one, emulator, monkeypatch):
    assert one.run("apply", "--auto-approve").code == 0
    assert one.state()["providers"]["openai"] == {"base_url": f"{emulator.url}/v1", "api_key_env": KEY_ENV}
    monkeypatch.setenv("TUNER_OPENAI_BASE_URL", "https://api.openai.com/v1")
    result = one.run("plan", "--detailed-exitcode")
    assert result.code == 2
    assert f'base_url = "{emulator.url}/v1" -> "https://api.openai.com/v1"' in result.out


def test_a_plain_http_base_url_off_this_machine_is_refused(oai, emulator):
    oai.spec(spec(emulator, THREE).replace(f"{emulator.url}/v1", "http://evil.example/v1"))
    result = oai.run("plan")
    assert result.code == 1 and "providers.openai.base_url: 'http://evil.example/v1'" in result.err


def test_a_failed_job_records_the_apis_code_and_message(one, emulator):
    lines = (one.root / "data" / "valid.jsonl").read_text().splitlines()
    lines[5] = json.dumps({"text_input": "poisoned example", "output": POISON_OUTPUT})
    one.write("data/poisoned.jsonl", "\n".join(lines) + "\n")
    one.spec(spec(emulator, "  broken:\n    dataset: {train: ../data/poisoned.jsonl}\n"))
    result = one.run("apply", "--auto-approve")
    assert result.code == 1 and "broken: tuning job failed:" in result.err
    pending = one.state()["models"]["broken"]["pending"]
    assert pending["status"] == "failed" and pending["error"].startswith("invalid_training_file: ")


def test_a_running_job_reports_its_progress_from_the_job_events(oai, emulator):
    model = planned_model("small")
    provider = provider_of(emulator)
    job = provider.submit(model, provider.tuned_model_id(model, OWNER), OWNER)
    seen = [provider.poll("unused", job) for _ in range(12)]  # the stepping clock moves on with every request
    running = [s.progress for s in seen if s.detail == "running" and s.progress is not None]  # None: no step yet
    assert running and all(0 < progress <= 1 for progress in running) and running == sorted(running)
    losses = [s.loss for s in seen if s.detail == "running" and s.progress is not None]
    assert all(isinstance(loss, float) and loss >= 0 for loss in losses)  # the live table shows it
    assert seen[-1].state == "active" and seen[-1].tuned_model_id.startswith("ft:")


def test_an_unknown_base_model_stops_with_the_apis_message_and_a_remedy(one, emulator):
    one.spec(spec(emulator, ONE).replace("gpt-4o-mini-2024-07-18", "gpt-unknown"))
    result = one.run("apply", "--auto-approve")
    assert result.code == 1 and "Model gpt-unknown is not available for fine-tuning" in result.err
    assert "fix the field the message names" in result.err and emulator.stats["creates"] == 0


def test_a_model_tuned_by_hand_is_imported_with_the_specs_display_name(one, emulator):
    client = sdk(emulator)
    lines = [json.loads(line) for line in (one.root / "data" / "valid.jsonl").read_text().splitlines()]
    chat = "".join(json.dumps({"messages": [{"role": "user", "content": e["text_input"]},
                                            {"role": "assistant", "content": e["output"]}]}) + "\n" for e in lines)
    uploaded = client.files.create(file=("by-hand.jsonl", chat.encode()), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=uploaded.id)
    while (job := client.fine_tuning.jobs.retrieve(job.id)).status != "succeeded":  # the clock steps per request
        pass
    result = one.run("import", "small", job.fine_tuned_model)
    assert result.code == 0, result.output
    record = one.state()["models"]["small"]
    assert record["tuned_model_id"] == job.fine_tuned_model and record["description"] == "Review sentiment"
    assert record["base_model"] == "gpt-4o-mini-2024-07-18"


def test_promote_serves_devs_model_in_prod_with_its_recorded_description(one, emulator):
    assert one.run("-w", "dev", "apply", "--auto-approve").code == 0
    tuned = one.state("dev")["models"]["small"]["tuned_model_id"]
    result = one.run("-w", "prod", "promote", "small", "--from", "dev")
    assert result.code == 0 and f"promoted {tuned} from workspace dev to prod" in result.out, result.output
    record = one.state("prod")["models"]["small"]
    assert record["tuned_model_id"] == tuned and record["description"] == "Review sentiment"  # OpenAI holds none
    assert emulator.stats["creates"] == 1 and one.run("-w", "prod", "plan", "--detailed-exitcode").code == 0
    assert one.run("-w", "dev", "destroy", "--auto-approve").code == 0
    assert tuned in fine_tuned_models(emulator)  # still served by prod


def test_a_training_file_over_the_files_api_limit_is_refused_at_plan_time(one):
    model = planned_model("small")
    huge = replace(model, train=replace(model.train, text_bytes=600 * 1024 * 1024))
    assert [p for p in _limits(huge) if "512 MB" in p] == [
        f"data/valid.jsonl: about {600 * 1024 * 1024 + 66 * (96 + 17)} bytes as chat JSONL; the OpenAI Files API "
        f"takes files up to {512 * 1024 * 1024} bytes (512 MB)"]
    assert _limits(model) == []
