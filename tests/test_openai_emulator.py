"""The OpenAI emulator, driven only through the real `openai` SDK over loopback HTTP.

Time is a fake clock the tests advance, so no test sleeps; clients never retry (max_retries=0), so every error
the emulator answers is seen as the SDK raises it.
"""

from __future__ import annotations

import http.client
import io
import json
import typing
import urllib.error
import urllib.request
from collections.abc import Iterator

import openai
import pydantic
import pytest
from openai import types
from openai.types import FilePurpose, fine_tuning
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import JobCreateParams, SupervisedHyperparametersParam
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from runner.emulators.openai import (
    CANCELLED,
    FAILED,
    FILE_PURPOSES,
    HYPERPARAMETERS,
    JOB_FIELDS,
    POISON_OUTPUT,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    VALIDATING,
    OpenAIEmulator,
)
from tests.conftest import FakeClock

KEY = "sk-test-emulator-key"
JOB_SECONDS = 100.0
BASE = "gpt-4o-mini-2024-07-18"

POSITIVE = ["great", "wonderful", "delightful", "excellent", "brilliant"]
NEGATIVE = ["awful", "terrible", "boring", "dreadful", "horrible"]
SUBJECTS = ["film", "plot", "acting"]
PAIRS = [(f"the {subject} was {word}", label) for words, label in ((POSITIVE, "positive"), (NEGATIVE, "negative"))
         for word in words for subject in SUBJECTS]  # 30 examples, two labels


def _chat_line(prompt: str, answer: str) -> dict:
    return {"messages": [{"role": "system", "content": "Classify the review."}, {"role": "user", "content": prompt},
                         {"role": "assistant", "content": answer}]}


def _jsonl(rows: list) -> bytes:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows).encode()


GOOD = _jsonl([_chat_line(p, a) for p, a in PAIRS])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(job_seconds=JOB_SECONDS, clock=clock, api_keys={KEY}, quota=3) as running:
        yield running


@pytest.fixture
def client(emulator: OpenAIEmulator) -> openai.OpenAI:
    return _client(emulator)


def _client(emulator: OpenAIEmulator, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=emulator.url + "/v1", api_key=key, max_retries=0)


def _upload(client: openai.OpenAI, content: bytes = GOOD, name: str = "train.jsonl", purpose: str = "fine-tune"):
    return client.files.create(file=(name, io.BytesIO(content)), purpose=purpose)


def _job(client: openai.OpenAI, content: bytes = GOOD, **options):
    training = _upload(client, content)
    options.setdefault("model", BASE)
    return client.fine_tuning.jobs.create(training_file=training.id, **options)


# -- files ---------------------------------------------------------------------------------------------------


def test_files_upload_read_page_and_delete(client):
    uploaded = [_upload(client, GOOD, f"part-{n}.jsonl") for n in range(3)]
    other = _upload(client, b"notes", "notes.txt", purpose="assistants")

    first = uploaded[0]
    assert (first.object, first.purpose, first.bytes, first.filename) == ("file", "fine-tune", len(GOOD),
                                                                          "part-0.jsonl")
    assert first.id.startswith("file-") and client.files.retrieve(first.id) == first
    assert client.files.content(other.id).read() == b"notes"
    with pytest.raises(openai.BadRequestError) as unreadable:
        client.files.content(first.id)
    assert unreadable.value.body["message"] == "Not allowed to download files of purpose: fine-tune"

    newest_first = [f.id for f in client.files.list(purpose="fine-tune", limit=2)]  # the SDK follows `after`
    assert newest_first == [f.id for f in reversed(uploaded)]
    page = client.files.list(limit=2, order="asc")
    assert ([f.id for f in page.data], page.has_more) == ([uploaded[0].id, uploaded[1].id], True)

    deleted = client.files.delete(uploaded[1].id)
    assert (deleted.id, deleted.deleted) == (uploaded[1].id, True)
    after_deleted = client.files.list(after=uploaded[1].id, order="asc")  # a deleted id is still a cursor
    assert [f.id for f in after_deleted.data] == [uploaded[2].id, other.id]
    with pytest.raises(openai.NotFoundError) as missing:
        client.files.retrieve(uploaded[1].id)
    assert missing.value.body == {"message": f"No such File object: {uploaded[1].id}",
                                  "type": "invalid_request_error", "param": "id", "code": None}


def test_fine_tune_files_must_be_jsonl(client):
    with pytest.raises(openai.BadRequestError) as refused:
        _upload(client, GOOD, "train.json")
    assert refused.value.body["message"] == "Invalid file format for Fine-Tuning API. Must be .jsonl"


# -- the job lifecycle -----------------------------------------------------------------------------------------


def test_a_job_validates_queues_runs_and_succeeds_on_the_clock(client, clock):
    job = _job(client, suffix="reviews", seed=7, metadata={"tuner_name": "reviews"},
               method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 4}}})

    assert (job.object, job.status, job.model, job.seed) == ("fine_tuning.job", "validating_files", BASE, 7)
    assert job.user_provided_suffix == "reviews"
    assert job.metadata == {"tuner_name": "reviews"} and job.fine_tuned_model is None
    assert job.hyperparameters.model_dump() == {"n_epochs": 4, "batch_size": "auto",
                                                "learning_rate_multiplier": "auto"}
    clock.advance(0.15 * JOB_SECONDS)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "queued"

    clock.advance(0.5 * JOB_SECONDS)  # running since 20%: two of the four epochs (each 20%) are done
    running = client.fine_tuning.jobs.retrieve(job.id)
    assert running.status == "running"
    assert job.created_at + JOB_SECONDS <= running.estimated_finish <= job.created_at + JOB_SECONDS + 1
    assert running.hyperparameters.model_dump() == {"n_epochs": 4, "batch_size": 1, "learning_rate_multiplier": 1.8}
    steps = [e for e in client.fine_tuning.jobs.list_events(job.id) if e.type == "metrics"]
    assert [e.message.split(":")[0] for e in steps] == ["Step 60/120", "Step 30/120"]  # epochs 1-2 of 4 are done
    assert steps[0].data["step"] == 60 and steps[0].data["train_loss"] < steps[1].data["train_loss"]
    assert running.fine_tuned_model is None and running.trained_tokens is None

    clock.advance(0.35 * JOB_SECONDS)
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded" and done.finished_at >= done.created_at
    assert done.fine_tuned_model.startswith(f"ft:{BASE}:tuner-emulator:reviews:")
    assert done.trained_tokens > 0 and done.estimated_finish is None and done.error is None
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=2)]
    assert messages[:2] == ["The job has successfully completed",
                            f"New fine-tuned model created: {done.fine_tuned_model}"]
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert [c.step_number for c in checkpoints] == [120, 90, 60]
    assert checkpoints[0].fine_tuned_model_checkpoint == done.fine_tuned_model
    assert checkpoints[1].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-90"


def test_the_tuned_model_answers_from_its_data(client, clock):
    job = _job(client, suffix="sentiment")
    clock.advance(JOB_SECONDS)
    model = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model

    def ask(text: str) -> str:
        answer = client.chat.completions.create(model=model, messages=[
            {"role": "system", "content": "Classify the review."}, {"role": "user", "content": text}])
        assert answer.object == "chat.completion" and answer.choices[0].finish_reason == "stop"
        return answer.choices[0].message.content

    assert ask("the acting was wonderful") == "positive"
    assert ask("the soundtrack was horrible") == "negative"  # a subject it never saw


def test_jobs_list_newest_first_in_pages_and_by_metadata(client, clock):
    training = _upload(client)
    jobs = [client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id,
                                           metadata={"tuner_name": name})
            for name in ("a", "b", "a")]
    page = client.fine_tuning.jobs.list(limit=2)
    assert ([j.id for j in page.data], page.has_more) == ([jobs[2].id, jobs[1].id], True)
    assert [j.id for j in client.fine_tuning.jobs.list(limit=1)] == [j.id for j in reversed(jobs)]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"tuner_name": "a"})] == [jobs[2].id, jobs[0].id]
    assert list(client.fine_tuning.jobs.list(metadata={"tuner_name": "c"})) == []
    bare = client.fine_tuning.jobs.create(model="gpt-4.1-nano", training_file=training.id)  # quota is per model
    assert [j.id for j in client.fine_tuning.jobs.list(extra_query={"metadata": "null"})] == [bare.id]
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.list(after="ftjob-never-issued")
    assert (refused.value.body["param"], refused.value.body["code"]) == ("after", "invalid_value")


def test_cancel_stops_a_job_and_refuses_a_finished_one(client, clock):
    job = _job(client)
    clock.advance(0.5 * JOB_SECONDS)
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    clock.advance(JOB_SECONDS)
    assert client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model is None
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id)]
    assert events[0] == "Fine-tuning job cancelled" and "The job has successfully completed" not in events
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.cancel(job.id)
    assert refused.value.body["type"] == "invalid_request_error" and "cancelled" in refused.value.body["message"]


# -- a bad training file fails the job --------------------------------------------------------------------------


BAD_FILES = {
    "not JSON": ([*GOOD.decode().splitlines()[:11], "{not json"],
                 "Expected file to have JSONL format, where every line is a valid JSON dictionary. Line 12 is not a "
                 "dictionary."),
    "no messages": ([*[_chat_line(p, a) for p, a in PAIRS[:12]], {"prompt": "x"}],
                    "Line 13: Unrecognized key: prompt"),
    "bad role": ([_chat_line(p, a) for p, a in PAIRS[:12]]
                 + [{"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}],
                 "Line 13, message 1: Unrecognized role: robot"),
    "no assistant": ([_chat_line(p, a) for p, a in PAIRS[:12]] + [{"messages": [{"role": "user", "content": "x"}]}],
                     "Line 13: Example is missing an assistant message."),
    "too few": ([_chat_line(p, a) for p, a in PAIRS[:4]],
                "Training file has 4 example(s), but must have at least 10 examples"),
    "poisoned": ([_chat_line(p, a) for p, a in PAIRS[:12]] + [_chat_line("x", POISON_OUTPUT)],
                 "Line 13, message 3: the assistant output is the emulator failure marker"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_training_file_fails_the_job_naming_the_line(client, clock, case):
    rows, expected = BAD_FILES[case]
    job = _job(client, _jsonl(rows))
    assert job.status == "validating_files"  # accepted: the service validates the file after the create
    clock.advance(0.1 * JOB_SECONDS)
    failed = client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and failed.fine_tuned_model is None
    assert (failed.error.code, failed.error.param) == ("invalid_training_file", "training_file")
    assert failed.error.message.startswith("The job failed due to an invalid training file. ")
    assert expected in failed.error.message
    last = next(iter(client.fine_tuning.jobs.list_events(job.id)))
    assert (last.level, last.message) == ("error", failed.error.message)


def test_a_bad_validation_file_fails_the_job_as_the_validation_file(client, clock):
    validation = _upload(client, _jsonl(["[1, 2]"]), "valid.jsonl")
    job = _job(client, validation_file=validation.id)
    clock.advance(JOB_SECONDS)
    error = client.fine_tuning.jobs.retrieve(job.id).error
    assert (error.code, error.param) == ("invalid_validation_file", "validation_file")
    assert "Line 1 is not a dictionary" in error.message


def test_completion_models_take_prompt_completion_pairs(client, clock):
    pairs = _jsonl([{"prompt": p, "completion": f" {a}"} for p, a in PAIRS])
    job = _job(client, pairs, model="babbage-002")
    clock.advance(JOB_SECONDS)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded"

    chat_for_babbage = _job(client, GOOD, model="davinci-002")
    clock.advance(JOB_SECONDS)
    message = client.fine_tuning.jobs.retrieve(chat_for_babbage.id).error.message
    assert message.endswith('Line 1: expected keys "prompt" and "completion" with string values.')


def test_an_example_over_the_base_models_token_limit_fails_the_job(client, clock):
    rows = [_chat_line(p, a) for p, a in PAIRS[:11]] + [_chat_line("x" * 70_000, "positive")]
    job = _job(client, _jsonl(rows), model="gpt-3.5-turbo")  # an alias: the job names the snapshot
    assert job.model == "gpt-3.5-turbo-0125"
    clock.advance(JOB_SECONDS)
    message = client.fine_tuning.jobs.retrieve(job.id).error.message
    assert "Line 12: the example has 17" in message and "more than the 16385 tokens" in message


def test_an_upload_may_come_chunked(emulator):
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="t.jsonl"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + GOOD + f"\r\n--{boundary}--\r\n".encode()
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port)
    connection.request("POST", "/v1/files", body=iter([body[:100], body[100:]]), encode_chunked=True, headers={
        "Authorization": f"Bearer {KEY}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    answer = json.loads(connection.getresponse().read())
    connection.close()
    assert (answer["filename"], answer["bytes"]) == ("t.jsonl", len(GOOD))


# -- refusals and error shapes ------------------------------------------------------------------------------------


def _refusal(client, training_id, **overrides):
    options = {"model": BASE, "training_file": training_id, **overrides}
    with pytest.raises(openai.APIStatusError) as refused:
        client.fine_tuning.jobs.create(**options)
    return refused.value


REFUSALS = {
    "unknown base model": ({"model": "gpt-5-turbo"}, "model", "model_not_available",
                           "Model gpt-5-turbo is not available for fine-tuning or does not exist."),
    "no training file": ({"training_file": ""}, "training_file", "missing_required_parameter",
                         "Missing required parameter: 'training_file'."),
    "unknown training file": ({"training_file": "file-nope"}, "training_file", None,
                              "invalid training_file: file-nope"),
    "suffix too long": ({"suffix": "s" * 65}, "suffix", "string_above_max_length",
                        "Invalid 'suffix': string too long. Expected a string with maximum length 64, but got a "
                        "string with length 65 instead."),
    "epochs above maximum": ({"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 51}}}},
                             "method.supervised.hyperparameters.n_epochs", "integer_above_max_value",
                             "Invalid 'method.supervised.hyperparameters.n_epochs': integer above maximum value. "
                             "Expected a value <= 50, but got 51 instead."),
    "zero learning rate": ({"hyperparameters": {"learning_rate_multiplier": 0}},
                           "hyperparameters.learning_rate_multiplier", "decimal_below_min_value",
                           "Invalid 'hyperparameters.learning_rate_multiplier': decimal below minimum value. "
                           "Expected a value > 0.0, but got 0.0 instead."),
    "unknown method": ({"method": {"type": "distillation"}}, "method.type", "invalid_value",
                       "Invalid value: 'distillation'. Supported values are: 'supervised', 'dpo', and "
                       "'reinforcement'."),
    "too many metadata": ({"metadata": {f"k{n}": "v" for n in range(17)}}, "metadata", "object_above_max_properties",
                          "Invalid 'metadata': too many properties. Expected an object with at most 16 properties, "
                          "but got an object with 17 properties instead."),
    "unknown field": ({"extra_body": {"learning_rate": 0.1}}, None, None,
                      "Unrecognized request argument supplied: learning_rate"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_the_service_refuses_a_bad_job(client, case):
    overrides, param, code, message = REFUSALS[case]
    error = _refusal(client, _upload(client).id, **overrides)
    assert error.status_code == 400 and isinstance(error, openai.BadRequestError)
    assert error.body == {"message": message, "type": "invalid_request_error", "param": param, "code": code}


def test_a_file_uploaded_for_another_purpose_is_refused(client):
    other = _upload(client, GOOD, "train.jsonl", purpose="assistants")
    error = _refusal(client, other.id)
    assert (error.status_code, error.body["param"]) == (400, "training_file")
    assert "purpose 'assistants'" in error.body["message"] and "'fine-tune'" in error.body["message"]


def test_unknown_ids_are_404_in_the_service_shape(client):
    with pytest.raises(openai.NotFoundError) as job:
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    assert job.value.body == {"message": "Could not find fine-tuning job: ftjob-nope", "type": "invalid_request_error",
                              "param": "fine_tuning_job_id", "code": "fine_tuning_job_not_found"}
    with pytest.raises(openai.NotFoundError) as model:
        client.chat.completions.create(model=f"ft:{BASE}:org::nope", messages=[{"role": "user", "content": "hi"}])
    assert model.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError) as route:
        client.get("/fine_tuning/nothing", cast_to=object)
    assert route.value.body["message"] == "Invalid URL (GET /v1/fine_tuning/nothing)"


def test_a_wrong_or_missing_key_is_401(emulator):
    with pytest.raises(openai.AuthenticationError) as wrong:
        _client(emulator, "sk-wrong-key-1234").models.list()
    assert wrong.value.body["code"] == "invalid_api_key"
    assert "sk-wrong-key-1234" not in wrong.value.body["message"] and "1234" in wrong.value.body["message"]
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(emulator.url + "/v1/models")
    assert missing.value.code == 401
    assert json.loads(missing.value.read())["error"]["message"].startswith("You didn't provide an API key.")


def test_a_paging_limit_out_of_range_is_refused(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.list(limit=0)
    assert refused.value.body == {
        "message": "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        "type": "invalid_request_error", "param": "limit", "code": "integer_below_min_value"}


def test_more_unfinished_jobs_than_the_quota_are_rate_limited(client, clock):
    training = _upload(client)
    for _ in range(3):
        client.fine_tuning.jobs.create(model=BASE, training_file=training.id)
    with pytest.raises(openai.RateLimitError) as limited:
        client.fine_tuning.jobs.create(model=BASE, training_file=training.id)
    assert limited.value.body["code"] == "rate_limit_exceeded"
    assert "maximum of 3 active requests" in limited.value.body["message"]
    client.fine_tuning.jobs.create(model="gpt-4.1-mini-2025-04-14", training_file=training.id)  # per base model
    clock.advance(JOB_SECONDS)
    client.fine_tuning.jobs.create(model=BASE, training_file=training.id)  # finished jobs free the quota


# -- models ---------------------------------------------------------------------------------------------------


def test_models_list_retrieve_and_delete(client, clock):
    job = _job(client, suffix="m")
    clock.advance(JOB_SECONDS)
    name = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model

    listed = {m.id: m for m in client.models.list()}
    assert listed[BASE].owned_by == "system" and listed[name].owned_by == "org-tuneremulator"
    assert client.models.retrieve(name) == listed[name]
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete(BASE)

    deleted = client.models.delete(name)
    assert (deleted.id, deleted.deleted) == (name, True)
    assert name not in {m.id for m in client.models.list()}
    with pytest.raises(openai.NotFoundError):
        client.models.delete(name)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "the plot was great"}])
    assert client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model == name  # the job still names it


# -- faults and persistence -----------------------------------------------------------------------------------


def _outcomes(seed: int) -> list[str]:
    with OpenAIEmulator(fault_rate=0.5, seed=seed, clock=FakeClock()) as emulator:
        client = _client(emulator)
        outcomes = []
        for _ in range(24):
            try:
                client.models.list()
                outcomes.append("ok")
            except openai.APIStatusError as error:
                assert error.body["type"] in ("requests", "server_error")
                outcomes.append(str(error.status_code))
        assert emulator.stats["faults_unavailable"] == outcomes.count("429") + outcomes.count("500")
        return outcomes


def test_faults_answer_429_or_500_reproducibly_from_the_seed():
    outcomes = _outcomes(seed=3)
    assert {"ok", "429", "500"} <= set(outcomes)
    assert _outcomes(seed=3) == outcomes


def test_an_ambiguous_create_made_the_upload_and_the_job(clock):
    with OpenAIEmulator(clock=clock, ambiguous_create_rate=1.0) as emulator:
        client = _client(emulator)
        with pytest.raises(openai.InternalServerError):
            _upload(client, GOOD, "hash-1.jsonl")
        [training] = client.files.list()
        assert training.filename == "hash-1.jsonl"
        with pytest.raises(openai.InternalServerError):
            client.fine_tuning.jobs.create(model=BASE, training_file=training.id, metadata={"tuner_name": "x"})
        assert [j.metadata for j in client.fine_tuning.jobs.list(metadata={"tuner_name": "x"})] == [
            {"tuner_name": "x"}]
        assert emulator.stats["ambiguous_creates"] == 2


def test_state_survives_a_restart(tmp_path, clock):
    state = tmp_path / "openai.json"
    with OpenAIEmulator(clock=clock, job_seconds=JOB_SECONDS, persist_path=state) as first:
        client = _client(first)
        job = _job(client, suffix="kept")
        notes = _upload(client, b"kept notes", "notes.txt", purpose="user_data")
        doomed = _upload(client, b"{}\n", "doomed.jsonl")
        client.files.delete(doomed.id)
        clock.advance(0.5 * JOB_SECONDS)
        client.fine_tuning.jobs.retrieve(job.id)  # running: trained, its losses recorded

    with OpenAIEmulator(clock=clock, job_seconds=JOB_SECONDS, persist_path=state) as second:
        client = _client(second)
        clock.advance(0.5 * JOB_SECONDS)  # the restarted emulator resumes its time from the save
        done = client.fine_tuning.jobs.retrieve(job.id)
        assert done.status == "succeeded" and done.user_provided_suffix == "kept"
        assert client.files.content(notes.id).read() == b"kept notes"
        assert [f.id for f in client.files.list()] == [notes.id, done.training_file]
        assert not (tmp_path / "openai.json.files" / doomed.id).exists()
        answer = client.chat.completions.create(model=done.fine_tuned_model,
                                                messages=[{"role": "user", "content": "the plot was excellent"}])
        assert answer.choices[0].message.content == "positive"
        again = _job(client)  # ids and seqs go on from the saved ones
        assert again.id != job.id and [j.id for j in client.fine_tuning.jobs.list()] == [again.id, job.id]


# -- fidelity to the SDK's own definitions ------------------------------------------------------------------------

# What the live API sends beyond the SDK's types (docs/SDK-FACTS.md): nothing else may be extra.
UNDECLARED = {"FineTuningJob": {"user_provided_suffix"}}


def _undeclared(model: pydantic.BaseModel, path: str = "") -> set[str]:
    """The fields of MODEL (recursively) that its SDK type does not declare, as 'Type.field'."""
    extra = {f"{type(model).__name__}.{key}" for key in (model.model_extra or {})
             if key not in UNDECLARED.get(type(model).__name__, set())}
    for value in dict(model).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, pydantic.BaseModel):
                extra |= _undeclared(item)
    return extra


def test_every_answer_validates_against_the_sdk_types(client, clock):
    job = _job(client, suffix="types", validation_file=_upload(client).id, metadata={"k": "v"},
               method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}})
    clock.advance(JOB_SECONDS)
    model = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    raw = [
        (types.FileObject, client.files.with_raw_response.retrieve(job.training_file)),
        (fine_tuning.FineTuningJob, client.fine_tuning.jobs.with_raw_response.retrieve(job.id)),
        (types.Model, client.models.with_raw_response.retrieve(model)),
        (types.Model, client.models.with_raw_response.retrieve(BASE)),
        (ChatCompletion, client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "the plot was dull"}])),
        (types.FileDeleted, client.files.with_raw_response.delete(_upload(client).id)),
        (types.ModelDeleted, client.models.with_raw_response.delete(model)),
    ]
    pages = [
        (types.FileObject, client.files.with_raw_response.list()),
        (fine_tuning.FineTuningJob, client.fine_tuning.jobs.with_raw_response.list()),
        (fine_tuning.FineTuningJobEvent, client.fine_tuning.jobs.with_raw_response.list_events(job.id, limit=100)),
        (FineTuningJobCheckpoint, client.fine_tuning.jobs.checkpoints.with_raw_response.list(job.id)),
        (types.Model, client.models.with_raw_response.list()),
    ]
    for kind, response in raw + [(kind, item) for kind, page in pages for item in page.http_response.json()["data"]]:
        data = response if isinstance(response, dict) else response.http_response.json()
        assert _undeclared(kind.model_validate(data)) == set(), data  # model_validate checks types and Literals
    for _, page in pages:
        assert set(page.http_response.json()) <= {"object", "data", "has_more", "first_id", "last_id"}
    events = pages[2][1].http_response.json()["data"]
    assert {e["type"] for e in events} == {"message", "metrics"} and {e["level"] for e in events} == {"info"}


def test_the_emulator_knows_the_sdk_request_fields_and_enums():
    assert set(JobCreateParams.__annotations__) == JOB_FIELDS
    assert set(HYPERPARAMETERS) == set(SupervisedHyperparametersParam.__annotations__)
    assert set(FILE_PURPOSES) == set(typing.get_args(FilePurpose))
    statuses = typing.get_args(fine_tuning.FineTuningJob.model_fields["status"].annotation)
    assert set(statuses) == {VALIDATING, QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED}


def test_a_state_file_whose_uploads_are_gone_is_a_clear_error(project, tmp_path, clock):
    state = tmp_path / "openai.json"
    with OpenAIEmulator(clock=clock, persist_path=state) as emulator:
        _upload(_client(emulator))
    for upload in (tmp_path / "openai.json.files").iterdir():
        upload.unlink()
    result = project.run("emulator", "openai", "--port", "0", "--state", str(state))
    assert result.code == 1 and "internal error" not in result.err, result.output
    assert f"Error: {state}: not a OpenAI API emulator state file" in result.err and "is missing" in result.err
