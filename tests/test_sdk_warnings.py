"""The Google SDKs' support-policy banners (FutureWarning) never reach a user of tuner's commands."""

from __future__ import annotations

import subprocess
import sys

from runner.emulators.gemini import GeminiEmulator
from tests.conftest import _env
from tests.test_gemini_provider import KEY, ONE, spec
from tests.test_network_errors import VERTEX_SPEC


def run_showing_warnings(project, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`python -W default -m runner ...`: every warning is printed unless tuner itself filters it."""
    return subprocess.run([sys.executable, "-W", "default", "-m", "runner", *args], cwd=project.root,
                          capture_output=True, text=True, timeout=120, env={**_env(), **env})


def test_a_gemini_command_prints_no_future_warning(project):
    with GeminiEmulator(api_keys={KEY}) as emulator:
        project.spec(spec(emulator, ONE))
        project.record_applied_settings("gemini")
        result = run_showing_warnings(project, "refresh", TUNER_TEST_GEMINI_KEY=KEY)
        assert emulator.stats["list_calls"] == 1  # the SDK was imported and used
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr


def test_a_vertex_command_prints_no_future_warning(project, monkeypatch):
    project.spec(VERTEX_SPEC)
    closed = {"TUNER_VERTEX_ENDPOINT": "http://127.0.0.1:9", "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9"}
    for name, value in closed.items():
        monkeypatch.setenv(name, value)
    project.record_applied_settings("vertex")
    result = run_showing_warnings(project, "refresh", **closed)
    assert result.returncode == 1 and "cannot reach Vertex AI" in result.stderr, result.stderr
    assert "Warning" not in result.stderr, result.stderr
