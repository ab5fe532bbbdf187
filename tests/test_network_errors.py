"""An unreachable service (a closed port on 127.0.0.1) is a one-line error with a remedy on every provider
and on the GCS state backend: exit 1, no traceback, never "internal error"."""

from __future__ import annotations

import socket

import pytest
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from runner.environment import Environment
from runner.errors import ProviderError, StateError
from runner.ops.apply import apply
from runner.ops.plan import plan
from runner.project import Project
from runner.providers.vertex import VertexProvider
from runner.state.gcs import GcsBackend
from tests.conftest import NoWaitClock, planned_model

# One attempt, then give up: the storage client's own retry would otherwise back off for 120 s.
NO_STORAGE_RETRY = Retry(timeout=0.0)


@pytest.fixture
def closed_url() -> str:
    """The URL of a port that was free a moment ago and is now closed: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_one_line_error_with_remedy(result, says: str) -> None:
    assert result.code == 1, result.output
    assert "internal error" not in result.err and "Traceback" not in result.err, result.err
    lines = [line for line in result.err.splitlines() if not line.startswith("Warning:")]
    assert len(lines) == 2, result.err
    assert lines[0].startswith("Error: ") and says in lines[0], result.err
    assert lines[1].startswith("  -> "), result.err


VERTEX_SPEC = """\
providers:
  vertex: {project: p, location: us-central1, staging_bucket: gs://b/t}
defaults: {provider: vertex, base_model: gemini-2.5-flash}
models:
  reviews:
    dataset: {train: ../data/train.jsonl}
"""

GEMINI_SPEC = """\
providers:
  gemini: {api_key_env: TUNER_TEST_GEMINI_KEY, endpoint: %s}
defaults:
  provider: gemini
  base_model: models/gemini-1.5-flash-001-tuning
  hyperparameters: {epoch_count: 10, batch_size: 16, learning_rate: 0.5}
models:
  reviews:
    dataset: {train: ../data/train.jsonl}
"""


@pytest.mark.parametrize("command", [("refresh",), ("plan", "--refresh")])
def test_vertex_unreachable_is_a_clear_error(project, closed_url, monkeypatch, command):
    monkeypatch.setenv("TUNER_VERTEX_ENDPOINT", closed_url)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", closed_url)  # staging credentials pass preflight; nothing listens
    project.spec(VERTEX_SPEC)
    project.record_applied_settings("vertex")
    clock = NoWaitClock()
    result = project.run(*command, clock=clock)
    assert_one_line_error_with_remedy(result, f"cannot reach Vertex AI at {closed_url}")
    assert "gave up after 8 attempts" in result.err and len(clock.waited) == 7
    assert "TUNER_VERTEX_ENDPOINT" in result.err


@pytest.mark.parametrize("command", [("refresh",), ("plan", "--refresh")])
def test_gemini_unreachable_is_a_clear_error(project, closed_url, monkeypatch, command):
    monkeypatch.setenv("TUNER_TEST_GEMINI_KEY", "key")
    monkeypatch.delenv("TUNER_GEMINI_ENDPOINT", raising=False)
    project.spec(GEMINI_SPEC % closed_url)
    project.record_applied_settings("gemini")
    clock = NoWaitClock()
    result = project.run(*command, clock=clock)
    assert_one_line_error_with_remedy(result, f"cannot reach the Gemini API at {closed_url}")
    assert "gave up after 8 attempts" in result.err and len(clock.waited) == 7
    assert "providers.gemini.endpoint" in result.err


class Events:
    def event(self, name: str, status: str, detail: str = "", elapsed: float | None = None,
              progress: float | None = None, epoch: int | None = None, epochs: int | None = None,
              loss: float | None = None) -> None:
        pass


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
def test_apply_gives_up_on_an_unreachable_provider_after_its_retries_with_one_line(project, closed_url, monkeypatch,
                                                                                   provider):
    monkeypatch.setenv("TUNER_TEST_GEMINI_KEY", "key")
    monkeypatch.setenv("TUNER_VERTEX_ENDPOINT", closed_url)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", closed_url)  # anonymous storage client: no credentials lookup
    monkeypatch.delenv("TUNER_GEMINI_ENDPOINT", raising=False)
    project.spec(GEMINI_SPEC % closed_url if provider == "gemini" else VERTEX_SPEC)
    clock = NoWaitClock()
    _, result = apply(Project.open(None, None, env=Environment(clock=clock)), None, None, lambda plan: True, Events())
    message = result.failures["reviews"]
    assert "cannot reach" in message and closed_url in message and "gave up after 8 attempts" in message
    assert "check the network" in message and "\n" not in message
    assert len(clock.waited) == 7  # the retries backed off, on the injected clock


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
def test_a_refresh_gives_up_on_an_unreachable_provider_after_its_retries_on_the_injected_clock(
        project, closed_url, monkeypatch, provider):
    monkeypatch.setenv("TUNER_TEST_GEMINI_KEY", "key")
    monkeypatch.setenv("TUNER_VERTEX_ENDPOINT", closed_url)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", closed_url)
    monkeypatch.delenv("TUNER_GEMINI_ENDPOINT", raising=False)
    project.spec(GEMINI_SPEC % closed_url if provider == "gemini" else VERTEX_SPEC)
    project.record_applied_settings(provider)
    clock = NoWaitClock()
    with pytest.raises(ProviderError) as unreachable:
        plan(Project.open(None, None, env=Environment(clock=clock)))
    assert unreachable.value.message.startswith("refresh failed: cannot reach")
    assert "gave up after 8 attempts" in unreachable.value.message
    assert len(clock.waited) == 7  # the list call backed off, on the injected clock


def test_vertex_staging_with_cloud_storage_unreachable_is_a_retryable_error(project, closed_url, monkeypatch):
    project.spec(VERTEX_SPEC)
    model = planned_model("reviews")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", closed_url)
    provider = VertexProvider({"project": "p", "staging_bucket": "gs://b/t", "endpoint": "http://127.0.0.1:9"},
                              storage_retry=NO_STORAGE_RETRY)
    with pytest.raises(ProviderError) as unreachable:
        provider.stage_dataset(model, "train")
    assert unreachable.value.kind == ProviderError.RETRYABLE
    assert f"cannot reach Cloud Storage at {closed_url}" in unreachable.value.message
    assert "\n" not in unreachable.value.message
    assert "STORAGE_EMULATOR_HOST" in unreachable.value.remedy


def test_gcs_state_backend_unreachable_is_a_state_error(closed_url, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", closed_url)
    backend = GcsBackend("b", "st", "default", retry=NO_STORAGE_RETRY,
                         client_factory=lambda: storage.Client(project="p", credentials=AnonymousCredentials()))
    with pytest.raises(StateError) as unreachable:
        backend.read()
    assert "Cloud Storage is unreachable" in unreachable.value.message
    assert "\n" not in unreachable.value.message
    assert "STORAGE_EMULATOR_HOST" in unreachable.value.remedy
