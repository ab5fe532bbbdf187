"""The Gemini API emulator, driven only through the real google-generativeai SDK over loopback HTTP.

Time is a fake clock the tests advance, so no test sleeps. genai.configure is global state: every
test configures it again through the `emulator` fixture (or `_configure`).
"""

from __future__ import annotations

import json
import urllib.request
import warnings
from collections.abc import Iterator

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the SDK's deprecation notice, raised at import
    import google.generativeai as genai
from google.api_core import exceptions
from google.api_core.retry import Retry, if_exception_type
from google.auth.credentials import AnonymousCredentials

from runner.emulators.gemini import POISON_OUTPUT, GeminiEmulator
from tests.conftest import FakeClock

KEY = "test-key"
TUNABLE = "models/gemini-1.5-flash-001-tuning"
JOB_SECONDS = 30.0
NO_RETRY = {"retry": None}  # the SDK retries 503 for up to 60 s by default; these tests want to see them

POSITIVE = ["great", "wonderful", "delightful", "excellent", "brilliant", "lovely"]
NEGATIVE = ["awful", "terrible", "boring", "dreadful", "horrible", "dull"]
SUBJECTS = ["film", "plot", "acting", "ending", "soundtrack"]
SENTIMENT = [{"text_input": f"the {subject} was {word}", "output": label}
             for words, label in ((POSITIVE, "positive"), (NEGATIVE, "negative"))
             for word in words for subject in SUBJECTS]  # 60 examples, two labels
TINY = SENTIMENT[::10]



def _configure(emulator: GeminiEmulator, key: str = KEY) -> None:
    genai.configure(api_key=key, transport="rest", client_options={"api_endpoint": emulator.url})


def _create(model_id: str | None, data: list[dict] = TINY, **kwargs):
    return genai.create_tuned_model(TUNABLE, data, id=model_id, epoch_count=kwargs.pop("epoch_count", 2),
                                    batch_size=kwargs.pop("batch_size", 4), learning_rate=0.5, **kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[GeminiEmulator]:
    with GeminiEmulator(job_seconds=JOB_SECONDS, clock=clock, api_keys={KEY}) as running:
        _configure(running)
        yield running


def test_job_is_creating_until_its_time_has_passed_then_active(emulator, clock):
    operation = _create("lifecycle", display_name="Lifecycle", description="first")

    assert operation.name.startswith("tunedModels/lifecycle/operations/")
    assert operation.metadata.tuned_model == "tunedModels/lifecycle"
    assert operation.metadata.total_steps == 2 * 2  # 2 epochs of ceil(6 / 4) batches
    assert genai.get_tuned_model("tunedModels/lifecycle").state == genai.types.TunedModelState.CREATING
    assert not operation.done()

    clock.advance(JOB_SECONDS)

    assert operation.done()
    assert operation.metadata.completed_percent == 100
    result = operation.result()
    assert result.name == "tunedModels/lifecycle"
    assert result.state == genai.types.TunedModelState.ACTIVE
    model = genai.get_tuned_model("tunedModels/lifecycle")
    assert (model.display_name, model.description, model.base_model) == ("Lifecycle", "first", TUNABLE)
    assert model.tuning_task.hyperparameters.epoch_count == 2
    assert [s["epoch"] for s in model.tuning_task.snapshots] == [1, 2]
    assert model.tuning_task.complete_time is not None


def test_tuned_model_answers_with_what_it_learned(emulator, clock):
    _create("sentiment", SENTIMENT, epoch_count=5, batch_size=8)
    clock.advance(JOB_SECONDS)

    model = genai.GenerativeModel(model_name="tunedModels/sentiment")

    assert model.generate_content("a wonderful and brilliant soundtrack").text == "positive"
    assert model.generate_content("what a dreadful boring plot").text == "negative"


def test_generating_with_a_model_still_in_training_is_refused(emulator):
    _create("not-yet")

    with pytest.raises(exceptions.BadRequest, match=r"not ready.*CREATING"):
        genai.GenerativeModel(model_name="tunedModels/not-yet").generate_content("hello")


def test_listing_pages_through_every_model(emulator):
    for index in range(5):
        _create(f"paged-{index}")

    names = [m.name for m in genai.list_tuned_models(page_size=2)]

    assert names == [f"tunedModels/paged-{index}" for index in range(5)]
    assert emulator.stats["list_calls"] == 3  # pages of 2, 2 and 1, followed through nextPageToken


def test_display_name_and_description_are_updated_in_place(emulator):
    _create("renamed", display_name="Before", description="old")

    updated = genai.update_tuned_model("tunedModels/renamed", {"display_name": "After", "description": "new"})

    assert (updated.display_name, updated.description) == ("After", "new")
    model = genai.get_tuned_model("tunedModels/renamed")
    assert (model.display_name, model.description) == ("After", "new")


def test_deleted_model_is_not_found(emulator):
    _create("doomed")

    genai.delete_tuned_model("tunedModels/doomed")

    with pytest.raises(exceptions.NotFound):
        genai.get_tuned_model("tunedModels/doomed")


def test_duplicate_id_is_a_conflict_and_creates_no_second_job(emulator):
    _create("once")

    with pytest.raises(exceptions.Conflict, match="already exists") as raised:
        _create("once")

    assert raised.value.code == 409  # HTTP 409 maps to Conflict, not its AlreadyExists subclass
    assert emulator.stats["creates_by_id"] == {"once": 1}


def test_sixth_concurrent_job_exhausts_the_quota_until_one_finishes(emulator, clock):
    for index in range(5):
        _create(f"busy-{index}")

    with pytest.raises(exceptions.TooManyRequests) as raised:
        _create("busy-5")

    assert raised.value.code == 429
    assert "type.googleapis.com/google.rpc.QuotaFailure" in [d["@type"] for d in raised.value.details]
    clock.advance(JOB_SECONDS)
    _create("busy-5")
    assert emulator.stats["states"] == {"CREATING": 1, "ACTIVE": 5, "FAILED": 0}


def test_generated_id_comes_from_the_display_name(emulator):
    operation = _create(None, display_name="Sentence Translator")

    assert operation.metadata.tuned_model.startswith("tunedModels/sentence-translator-")


def test_invalid_requests_name_what_is_wrong(emulator):
    with pytest.raises(exceptions.BadRequest, match="tunedModelId"):
        _create("Not_Valid")
    with pytest.raises(exceptions.BadRequest, match=r"models/gemini-2\.5-flash does not support tuning"):
        genai.create_tuned_model("models/gemini-2.5-flash", TINY, id="untunable")
    with pytest.raises(exceptions.NotFound, match="models/no-such-model"):
        genai.create_tuned_model("models/no-such-model", TINY, id="missing-base")
    with pytest.raises(exceptions.BadRequest, match="example 2: output must not be empty"):
        _create("empty-output", [*TINY[:2], {"text_input": "x", "output": ""}])
    assert emulator.stats["creates"] == 0


def test_base_models_are_listed_and_described(emulator):
    tunable = {m.name for m in genai.list_models() if "createTunedModel" in m.supported_generation_methods}

    assert tunable == {TUNABLE}
    assert "generateContent" in genai.get_model("models/gemini-2.5-flash").supported_generation_methods


def test_an_invalid_key_is_rejected_as_google_does(emulator):
    _configure(emulator, key="wrong-key")

    with pytest.raises(exceptions.BadRequest, match="API key not valid") as raised:
        genai.get_tuned_model("tunedModels/any")

    # On REST, api_core keeps the ErrorInfo as a dict, so `raised.value.reason` would itself raise.
    error_info = next(d for d in raised.value.details if d["@type"].endswith("google.rpc.ErrorInfo"))
    assert error_info["reason"] == "API_KEY_INVALID"


def test_a_missing_key_is_permission_denied(emulator):
    genai.configure(credentials=AnonymousCredentials(), transport="rest",
                    client_options={"api_endpoint": emulator.url})

    with pytest.raises(exceptions.Forbidden, match="unregistered callers"):
        list(genai.list_models())  # a lazy generator: nothing is sent until it is iterated


def test_poisoned_example_fails_the_job_with_a_message(emulator, clock):
    operation = _create("poisoned", [*TINY, {"text_input": "boom", "output": POISON_OUTPUT}])
    clock.advance(JOB_SECONDS)

    assert genai.get_tuned_model("tunedModels/poisoned").state == genai.types.TunedModelState.FAILED
    with pytest.raises(exceptions.InvalidArgument, match="training example 6"):
        operation.result()


def test_state_survives_a_restart(tmp_path, clock):
    state_file = tmp_path / "gemini.json"
    with GeminiEmulator(job_seconds=JOB_SECONDS, clock=clock, persist_path=state_file) as first:
        _configure(first)
        _create("kept", SENTIMENT, epoch_count=5, batch_size=8, display_name="Kept")
        clock.advance(JOB_SECONDS)
        assert genai.get_tuned_model("tunedModels/kept").state == genai.types.TunedModelState.ACTIVE
        _create("still-running")

    with GeminiEmulator(job_seconds=JOB_SECONDS, clock=FakeClock(), persist_path=state_file) as second:
        _configure(second)
        assert [m.name for m in genai.list_tuned_models()] == ["tunedModels/kept", "tunedModels/still-running"]
        assert genai.get_tuned_model("tunedModels/still-running").state == genai.types.TunedModelState.CREATING
        answer = genai.GenerativeModel(model_name="tunedModels/kept").generate_content("a lovely ending").text
        assert answer == "positive"  # retrained lazily from the persisted examples
        assert second.stats["creates_by_id"] == {"kept": 1, "still-running": 1}


def test_faults_are_seeded_and_a_failed_create_creates_nothing(clock):
    with GeminiEmulator(job_seconds=JOB_SECONDS, clock=clock, fault_rate=0.5, seed=7,
                        fault_delay_seconds=0.0, quota=100) as flaky:
        _configure(flaky)
        outcomes = []
        for index in range(12):
            try:
                _create(f"flaky-{index}", request_options=NO_RETRY)
                outcomes.append("created")
            except exceptions.ServiceUnavailable:
                outcomes.append("unavailable")
        stats = flaky.stats

    assert {"created", "unavailable"} <= set(outcomes)
    assert stats["creates"] == outcomes.count("created") == stats["tuned_models"]
    assert stats["faults_unavailable"] == outcomes.count("unavailable")
    assert stats["faults_slow"] > 0


def _outcomes(order: list[str], clock: FakeClock) -> dict[str, list[str]]:
    """What each of three attempts to create each model meets, trying the models in ORDER."""
    outcomes: dict[str, list[str]] = {name: [] for name in order}
    with GeminiEmulator(job_seconds=JOB_SECONDS, clock=clock, fault_rate=0.5, seed=7, fault_delay_seconds=0.0,
                        ambiguous_create_rate=0.5, quota=100) as flaky:
        _configure(flaky)
        for _ in range(3):
            for name in order:
                try:
                    _create(name, request_options=NO_RETRY)
                    outcomes[name].append("created")
                except exceptions.GoogleAPICallError as error:
                    outcomes[name].append(type(error).__name__)
    return outcomes


def test_a_fault_depends_on_the_request_and_its_attempt_not_on_what_other_requests_came_first(clock):
    names = [f"order-{index}" for index in range(8)]

    forward, backward = _outcomes(names, clock), _outcomes(names[::-1], clock)

    assert forward == backward  # threads interleave requests differently on every run: faults must not care
    assert {"created", "ServiceUnavailable", "Conflict"} <= {o for attempts in forward.values() for o in attempts}


def test_an_ambiguous_create_is_found_by_the_sdk_retry(clock):
    with GeminiEmulator(job_seconds=JOB_SECONDS, clock=clock, ambiguous_create_rate=1.0) as ambiguous:
        _configure(ambiguous)
        quick_retry = Retry(predicate=if_exception_type(exceptions.ServiceUnavailable), initial=0.01, timeout=5)

        with pytest.raises(exceptions.Conflict):  # the first attempt created it; the retry learns it exists
            _create("accepted", request_options={"retry": quick_retry})

        assert genai.get_tuned_model("tunedModels/accepted").state == genai.types.TunedModelState.CREATING
        assert ambiguous.stats["creates_by_id"] == {"accepted": 1}


def test_stats_are_served_as_json_outside_the_google_paths(emulator):
    _create("counted")

    with urllib.request.urlopen(f"{emulator.url}/_emulator/stats", timeout=5) as response:
        stats = json.load(response)

    assert stats["creates"] == 1
    assert stats["states"]["CREATING"] == 1


def test_snapshots_are_published_epoch_by_epoch_and_the_provider_reads_them_as_progress(emulator, clock):
    from runner.providers.gemini import GeminiProvider

    provider = GeminiProvider({"api_key_env": "TUNER_TEST_GEMINI_KEY", "endpoint": emulator.url},
                              environ={"TUNER_TEST_GEMINI_KEY": KEY})
    _create("halfway", SENTIMENT, epoch_count=5, batch_size=8)
    assert provider.poll("tunedModels/halfway", None).progress is None  # no epoch done yet
    clock.advance(JOB_SECONDS * 2 / 5)

    model = genai.get_tuned_model("tunedModels/halfway")
    assert model.state == genai.types.TunedModelState.CREATING
    assert [s["epoch"] for s in model.tuning_task.snapshots] == [1, 2]
    status = provider.poll("tunedModels/halfway", None)
    assert (status.state, status.progress, status.epoch, status.epochs) == ("creating", 0.4, 2, 5)
    assert status.loss == model.tuning_task.snapshots[-1]["mean_loss"] > 0
