"""Nothing lost, nothing paid twice: locking, stale saved plans, interrupted applies."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from runner.state import LocalBackend
from tests.conftest import SENTIMENT_SPEC, _env

THREE_SLOW_MODELS = """\
defaults:
  base_model: local/linear-ngram
  hyperparameters: {epoch_count: 150, batch_size: 8, learning_rate: 0.5}
  dataset: {train: ../data/train.jsonl}
models:
  alpha: {}
  bravo: {}
  charlie: {}
"""


def _start_apply(project, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "runner", "apply", "--auto-approve", *args], cwd=project.root,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def _active(project) -> set[str]:
    try:
        models = project.state()["models"]
    except (FileNotFoundError, ValueError):
        return set()
    return {name for name, rec in models.items() if rec.get("status") == "active"}


def test_second_apply_is_refused_naming_the_holder_and_state_is_intact(project):
    project.run("apply", "--auto-approve")
    before = project.state_bytes()
    holder = LocalBackend(project.root / "state", "default")
    holder.lock("apply")
    try:
        project.spec(SENTIMENT_SPEC.replace("epoch_count: 4", "epoch_count: 6"))
        result = project.run("apply", "--auto-approve")
        assert result.code == 1
        assert f"locked by apply (pid {os.getpid()} on " in result.err
        assert f"tuner force-unlock {holder.lock_info()['id']}" in result.err
        assert project.state_bytes() == before
    finally:
        holder.unlock()


def test_two_concurrent_apply_processes_one_is_refused(project):
    project.spec(THREE_SLOW_MODELS)
    first = _start_apply(project, "--parallelism", "1")
    _wait_for(lambda: (project.root / "state" / "default.json.lock").exists())
    second = project.run_process("apply", "--auto-approve")
    assert second.returncode == 1
    assert f"pid {first.pid}" in second.stderr
    assert first.wait(timeout=120) == 0
    assert _active(project) == {"alpha", "bravo", "charlie"}
    assert not (project.root / "state" / "default.json.lock").exists()


def test_lock_timeout_waits_for_the_holder(project):
    holder = LocalBackend(project.root / "state", "default")
    holder.lock("apply")
    waiter = _start_apply(project, "--lock-timeout", "30")
    time.sleep(0.5)  # a real second process must be kept waiting: nothing to inject across processes
    assert waiter.poll() is None
    holder.unlock()
    assert waiter.wait(timeout=60) == 0


class _Terminal(io.StringIO):
    """Standard input as a terminal where the user types `text`."""

    def isatty(self) -> bool:
        return True


def _lock_held_elsewhere(project) -> str:
    """A lock whose holder ran on another host: tuner cannot tell whether it still runs."""
    holder = LocalBackend(project.root / "state", "default")
    holder.lock("apply")
    info = holder.lock_info()
    info.update(host="ci-runner-7", pid=4242)
    (project.root / "state" / "default.json.lock").write_text(json.dumps(info))
    return info["id"]


def test_force_unlock_asks_before_removing_a_lock(project, monkeypatch):
    lock_id = _lock_held_elsewhere(project)
    assert project.run("force-unlock", "wrong-id").code == 1
    monkeypatch.setattr(sys, "stdin", _Terminal("no\n"))
    result = project.run("force-unlock", lock_id)
    assert result.code == 1 and "Cancelled" in result.out + result.err
    assert (project.root / "state" / "default.json.lock").exists()
    monkeypatch.setattr(sys, "stdin", _Terminal("yes\n"))
    result = project.run("force-unlock", lock_id)
    assert result.code == 0 and lock_id in result.out and "ci-runner-7" in result.out
    assert project.run("apply", "--auto-approve").code == 0


def test_force_unlock_without_a_terminal_refuses_unless_forced(project):
    lock_id = _lock_held_elsewhere(project)
    result = project.run("force-unlock", lock_id)  # pytest's stdin is not a terminal
    assert result.code == 1 and "standard input is not a terminal" in result.err and "--force" in result.err
    assert (project.root / "state" / "default.json.lock").exists()
    assert project.run("force-unlock", "--force", lock_id).code == 0
    assert not (project.root / "state" / "default.json.lock").exists()


def test_force_unlock_refuses_the_lock_of_a_live_process_on_this_host(project, monkeypatch):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        holder = LocalBackend(project.root / "state", "default")
        holder.lock("apply")
        info = holder.lock_info()
        info.update(pid=sleeper.pid, pid_start=None)
        (project.root / "state" / "default.json.lock").write_text(json.dumps(info))
        monkeypatch.setattr(sys, "stdin", _Terminal("yes\n"))  # even a yes does not remove a live holder's lock
        result = project.run("force-unlock", info["id"])
        assert result.code == 1
        assert f"pid {sleeper.pid}" in result.err and "still running" in result.err and "--force" in result.err
        assert (project.root / "state" / "default.json.lock").exists()
        result = project.run("force-unlock", "--force", info["id"])
        assert result.code == 0 and info["id"] in result.out
        assert not (project.root / "state" / "default.json.lock").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_saved_plan_applies_exactly_and_refuses_when_configs_changed(project):
    assert project.run("plan", "--out", "tfplan.json").code == 0
    saved = json.loads((project.root / "tfplan.json").read_text())
    assert saved["plan"]["summary"]["create"] == 1
    assert saved["state"] == {"lineage": saved["state"]["lineage"], "serial": 0}
    project.spec(SENTIMENT_SPEC.replace("learning_rate: 0.5", "learning_rate: 0.4"))
    result = project.run("apply", "tfplan.json")
    assert result.code == 1
    assert "stale plan: configs or datasets changed" in result.err
    assert project.state_bytes() is None


def test_saved_plan_is_refused_when_state_moved_on(project):
    project.run("plan", "--out", "tfplan.json")
    assert project.run("apply", "--auto-approve").code == 0
    result = project.run("apply", "tfplan.json")
    assert result.code == 1
    assert "stale plan: the state changed since it was made (serial 0, now" in result.err


def test_saved_plan_applies_without_confirmation(project):
    project.run("plan", "--out", "tfplan.json")
    result = project.run("apply", "tfplan.json")
    assert result.code == 0, result.output
    assert _active(project) == {"sentiment"}


def test_killed_apply_resumes_without_retraining_what_finished(project):
    project.spec(THREE_SLOW_MODELS)
    process = _start_apply(project, "--parallelism", "1")
    _wait_for(lambda: len(_active(project)) >= 1 or process.poll() is not None)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = _active(project)
    assert 1 <= len(finished) < 3, "the kill should land between jobs"
    artifacts = {p.parent.name: p.stat().st_mtime_ns for p in project.models_dir().glob("*/model.npz")}
    state = project.state()
    result = project.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    assert _active(project) == {"alpha", "bravo", "charlie"}
    for name in finished:
        tuned_id = state["models"][name]["tuned_model_id"]
        assert f"submitting ({tuned_id})" not in result.err
        assert (project.models_dir() / tuned_id / "model.npz").stat().st_mtime_ns == artifacts[tuned_id]
    assert project.state()["serial"] > state["serial"]
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_ctrl_c_stops_cleanly_and_releases_the_lock(project):
    project.spec(THREE_SLOW_MODELS)
    process = _start_apply(project, "--parallelism", "1")
    _wait_for(lambda: bool(_active(project)) or process.poll() is not None)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    assert not (project.root / "state" / "default.json.lock").exists()
    project.state()  # parses
    assert project.run("apply", "--auto-approve").code == 0
    assert _active(project) == {"alpha", "bravo", "charlie"}


@pytest.mark.parametrize("command", [["apply", "--auto-approve"], ["destroy", "--auto-approve"], ["refresh"],
                                     ["import", "sentiment", "tuned-elsewhere"], ["eval", "sentiment"]])
def test_a_command_refused_under_the_lock_releases_it(project, command):
    """Every locked command reads and checks the state under the lock, and leaves no lock when it refuses."""
    moved = {"format_version": 1, "lineage": "l", "serial": 2, "workspace": "default", "models": {},
             "moved_to": "gs://team-state/tuner/default.json"}
    (project.root / "state").mkdir()
    (project.root / "state" / "default.json").write_text(json.dumps(moved))
    result = project.run(*command)
    assert result.code == 1
    assert "was migrated to gs://team-state/tuner/default.json" in result.err
    assert not (project.root / "state" / "default.json.lock").exists()
