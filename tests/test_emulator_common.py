"""The emulators' common base is not Google-only: a toy emulator with OpenAI's error body
(`{"error": {"message", "type", "param", "code"}}`) and cursor pages (`after`, `has_more`) is only its surface."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from runner.emulators.common import ApiError, Emulator, Request, TrainedModels, keyset_page, routes
from runner.errors import TunerError
from tests.conftest import FakeClock


class OpenAIError(ApiError):
    def __init__(self, http_code: int, kind: str, message: str, code: str | None = None):
        super().__init__(message)
        self.http_code, self.kind, self.message, self.code = http_code, kind, message, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": None, "code": self.code}}

    @classmethod
    def invalid(cls, message: str) -> OpenAIError:
        return cls(400, "invalid_request_error", message)

    @classmethod
    def not_found(cls, message: str) -> OpenAIError:
        return cls(404, "invalid_request_error", message, "not_found")

    @classmethod
    def unavailable(cls) -> OpenAIError:
        return cls(503, "server_error", "The server is overloaded.")

    @classmethod
    def internal(cls, message: str) -> OpenAIError:
        return cls(500, "server_error", message)


class ToyOpenAI(Emulator):
    errors = OpenAIError
    title = "toy emulator"

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.jobs: list[str] = []
        self.events: dict[str, int] = {}
        self._routes = routes([("POST", r"/v1/fine_tuning/jobs", "create", self._create),
                               ("GET", r"/v1/fine_tuning/jobs", "list", self._list)])

    @property
    def stats(self) -> dict[str, Any]:
        return {"jobs": len(self.jobs), **self.events}

    def _count(self, counter: str) -> None:
        self.events[counter] = self.events.get(counter, 0) + 1

    def _authenticate(self, request: Request) -> None:
        if not (request.headers.get("Authorization") or "").startswith("Bearer sk-"):
            raise OpenAIError(401, "invalid_request_error", "Incorrect API key provided.", "invalid_api_key")

    def _create(self, request: Request) -> dict[str, Any]:
        model = request.json().get("model")
        if not model:
            raise OpenAIError.invalid("Missing required parameter: 'model'.")
        self.jobs.append(f"ftjob-{len(self.jobs) + 1}")
        self._save()
        return {"object": "fine_tuning.job", "id": self.jobs[-1], "model": model}

    def _list(self, request: Request) -> dict[str, Any]:
        after = request.arg("after")
        position = self.jobs.index(after) + 1 if after in self.jobs else None  # newest first, by creation
        page, more = keyset_page(self.jobs, lambda job: self.jobs.index(job) + 1, position, int(request.arg("limit")),
                                 newest_first=True)
        return {"object": "list", "data": [{"id": job} for job in page], "has_more": more}

    def _snapshot(self) -> dict[str, Any]:
        return {"jobs": self.jobs}

    def _restore(self, snapshot: dict[str, Any]) -> None:
        self.jobs = list(snapshot["jobs"])


def call(emulator: ToyOpenAI, method: str, path: str, body: bytes | None = None,
         key: str = "sk-test") -> tuple[int, dict]:
    request = urllib.request.Request(emulator.url + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture
def toy(tmp_path: Path):
    with ToyOpenAI(clock=FakeClock(), persist_path=tmp_path / "toy.json") as emulator:
        yield emulator


def test_errors_come_in_the_emulators_own_body_shape(toy):
    assert call(toy, "GET", "/v1/models") == (404, {"error": {
        "message": "The requested URL /v1/models was not found on this server (GET).",
        "type": "invalid_request_error", "param": None, "code": "not_found"}})
    status, body = call(toy, "POST", "/v1/fine_tuning/jobs", b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("Invalid JSON payload received.")
    assert call(toy, "POST", "/v1/fine_tuning/jobs", b"{}")[1]["error"]["message"] == (
        "Missing required parameter: 'model'.")
    assert call(toy, "GET", "/v1/fine_tuning/jobs?limit=1", key="wrong")[1]["error"]["code"] == "invalid_api_key"


def test_pages_follow_the_emulators_own_cursor_style(toy):
    for _ in range(3):
        call(toy, "POST", "/v1/fine_tuning/jobs", b'{"model": "gpt-4o-mini"}')

    first = call(toy, "GET", "/v1/fine_tuning/jobs?limit=2")[1]
    rest = call(toy, "GET", f"/v1/fine_tuning/jobs?limit=2&after={first['data'][-1]['id']}")[1]

    assert [job["id"] for job in first["data"]] == ["ftjob-3", "ftjob-2"] and first["has_more"] is True
    assert [job["id"] for job in rest["data"]] == ["ftjob-1"] and rest["has_more"] is False


def test_an_outage_answers_503_in_the_emulators_shape_and_then_passes(toy):
    toy.fail_next(1)

    assert call(toy, "GET", "/v1/fine_tuning/jobs?limit=1") == (503, {"error": {
        "message": "The server is overloaded.", "type": "server_error", "param": None, "code": None}})
    assert call(toy, "GET", "/v1/fine_tuning/jobs?limit=1")[0] == 200
    assert toy.stats["faults_unavailable"] == 1


def test_the_state_file_survives_a_restart_and_a_foreign_one_is_refused(tmp_path: Path):
    state = tmp_path / "toy.json"
    with ToyOpenAI(persist_path=state) as first:
        call(first, "POST", "/v1/fine_tuning/jobs", b'{"model": "gpt-4o-mini"}')
    with ToyOpenAI(persist_path=state) as second:
        assert second.jobs == ["ftjob-1"]

    state.write_text('{"something": "else"}', encoding="utf-8")
    with pytest.raises(TunerError, match=r"not a toy emulator state file") as refused:
        ToyOpenAI(persist_path=state).start()
    assert refused.value.remedy == "delete it to start empty"


def test_the_trained_model_cache_keeps_the_latest_and_retrains_an_evicted_one():
    trainings: list[str] = []

    def trainer_for(key: str):
        return lambda: trainings.append(key) or f"model {key}"

    cache = TrainedModels(capacity=2)
    for key in ["a", "b", "a", "c", "b", "a"]:
        assert cache.get(key, trainer_for(key)) == f"model {key}"

    # "a" was used after "b", so "b" made room for "c"; "b" then pushed out "a", the least recently used
    assert trainings == ["a", "b", "c", "b", "a"]


def test_forgetting_a_model_does_not_wait_for_a_training_in_progress():
    cache, started, release = TrainedModels(), threading.Event(), threading.Event()

    def slow_training():
        started.set()
        release.wait(5)
        return "model"

    training = threading.Thread(target=cache.get, args=("slow", slow_training))
    training.start()
    started.wait(5)
    forgetting = threading.Thread(target=cache.forget, args=("other",))  # a model deleted meanwhile
    forgetting.start()
    forgetting.join(5)
    forgot_during_the_training = not forgetting.is_alive()
    release.set()
    training.join(5)
    forgetting.join(5)

    assert forgot_during_the_training and cache.get("slow", lambda: "retrained") == "model"
