"""Crash safety against the Gemini and OpenAI emulators: SIGKILL and Ctrl-C at random moments lose nothing and pay
nothing twice.

A small, seeded run of bench/crash.py's loop per provider (the bench runs 30 rounds; this runs 4), plus Ctrl-C
rounds (gemini). The invariants hold whatever the kill timing, so asserting them cannot flake.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import sys
import time
import urllib.request
from pathlib import Path

import openai
import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location("tuner_crash_bench", REPO / "bench" / "crash.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


crash = _load_bench()


@pytest.fixture
def make_lab(tmp_path):
    """A project of N models of a provider over its fresh emulator whose jobs take `job_seconds` of real time."""
    emulators = []

    def make(models: int, job_seconds: float = 1.0, max_concurrent_jobs: int = 5, quota: int = 5,
             provider: str = "gemini", clock=None):
        emulator = crash.make_emulator(provider, job_seconds, quota, clock).start()
        emulators.append(emulator)
        return crash.CrashLab(tmp_path / f"project-{len(emulators)}", crash.CLOUDS[provider](emulator),
                              models=models, max_concurrent_jobs=max_concurrent_jobs)

    yield make
    for emulator in emulators:
        emulator.stop()


# -- SIGKILL ---------------------------------------------------------------------------------------------

# Kills right after one of a run's first two state writes, up to 300 ms after its first, or right after the
# emulator accepted the run's first job: every round bumps a model, so a job of one second is running then,
# and each kill lands.
FOUR_KILLS = crash.Settings(rounds=4, seed=20240611, job_seconds=1.0, max_delay=0.3, max_write=2, max_create=1,
                            modes=("write", "after-write", "create"), complete_every=2, change_rate=1.0)


@pytest.mark.parametrize("provider", ["gemini", "openai"])
def test_sigkill_at_random_moments_never_pays_twice_orphans_a_job_or_corrupts_state(make_lab, provider):
    lab = make_lab(models=6, provider=provider)
    log: list[str] = []
    report = crash.CrashLoop(lab, FOUR_KILLS, out=log.append).run()
    assert report.violations == [], "\n".join(log)
    assert report.kills == 4, "\n".join(log)
    assert report.reruns == 2
    assert all(n == 1 for n in lab.creates_by_identity().values())
    held = lab.held()
    assert {thing.status for thing in held.values()} == {crash.ACTIVE}
    assert set(held) == crash.current_ids(lab.state()) | crash.retained_ids(lab.state())


def test_the_invariant_checks_catch_a_job_paid_twice_and_a_model_state_does_not_know(make_lab):
    lab = make_lab(models=1)
    _create_at_emulator(lab, "orphan")
    _create_twice_at_emulator(lab, "twice")
    ledger = crash.Ledger()
    problems = ledger.check(lab, "probe")
    assert "tunedModels/orphan exists at the emulator but not in state" in problems
    assert "tunedModels/twice was created 2 times" in problems
    assert ledger.violations == [f"probe: {p}" for p in problems]


def test_the_openai_invariant_checks_catch_an_identity_paid_twice_and_a_job_state_does_not_know(make_lab):
    lab = make_lab(models=1, job_seconds=600.0, provider="openai")  # the jobs stay unfinished while checked
    client = openai.OpenAI(api_key=crash.KEY, base_url=f"{lab.emulator.url}/v1", max_retries=0)
    examples = "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                {"role": "assistant", "content": "a"}]}) + "\n" for i in range(10))
    training = client.files.create(file=("train.jsonl", examples.encode()), purpose="fine-tune").id
    orphan, *_ = [client.fine_tuning.jobs.create(model=crash.OpenAICloud.base_model, training_file=training,
                                                 metadata={"tuner_id": tuner_id}).id
                  for tuner_id in ("orphan", "twice", "twice")]
    problems = crash.Ledger().check(lab, "probe")
    assert f"{orphan} exists at the emulator but not in state" in problems
    assert "twice was created 2 times" in problems


def _create_at_emulator(lab, tuned_id: str) -> None:
    body = {"baseModel": crash.GeminiCloud.base_model, "displayName": tuned_id,
            "tuningTask": {"trainingData": {"examples": {"examples": [{"textInput": "in", "output": "out"}]}}}}
    _request(lab, "POST", f"/v1beta/tunedModels?tunedModelId={tuned_id}", body)


def _create_twice_at_emulator(lab, tuned_id: str) -> None:
    """Create, delete and create again: the emulator counts two creates of one id."""
    _create_at_emulator(lab, tuned_id)
    _request(lab, "DELETE", f"/v1beta/tunedModels/{tuned_id}")
    _create_at_emulator(lab, tuned_id)


def _request(lab, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(lab.emulator.url + path, data=data, method=method,
                                     headers={"x-goog-api-key": crash.KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


# -- Ctrl-C ----------------------------------------------------------------------------------------------


def _creating(lab) -> int:
    """Jobs state records as submitted and running (their handle written before the first poll)."""
    try:
        models = (lab.state() or {}).get("models", {})
    except ValueError:
        return 0
    return sum((record.get("pending") or {}).get("status") == "creating" for record in models.values())


def _wait_for(condition, process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"apply ended early:\n{crash.output(process)}"
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


class HeldClock:
    """The emulator's time, standing still until the test moves it: no job can finish before Ctrl-C lands,
    however slowly a loaded machine runs the test (with real time, a 1 s job sometimes did)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _interrupt_when_running(lab, jobs: int):
    """Start an apply, press Ctrl-C once `jobs` jobs are running, and wait for it to exit."""
    process = lab.start_apply()
    _wait_for(lambda: _creating(lab) >= jobs, process)
    creates_at_interrupt = lab.emulator.stats["creates"]
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    return process.returncode, crash.output(process), creates_at_interrupt


def test_ctrl_c_exits_130_releases_the_lock_and_the_next_apply_resumes_without_resubmitting(make_lab):
    clock = HeldClock()
    lab = make_lab(models=3, clock=clock)
    code, err, _ = _interrupt_when_running(lab, jobs=3)
    assert code == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    assert not lab.lock_path.exists()
    interrupted = lab.state()  # parses
    assert crash.describe(interrupted) == "creating=3"
    clock.now += 60  # the jobs finish while no tuner runs
    rerun = lab.run("apply", "--auto-approve")  # --lock-timeout 0: the lock must be free at once
    assert rerun.returncode == 0, rerun.stderr
    for name, record in interrupted["models"].items():
        assert f"{name}: resuming ({record['pending']['handle']})" in rerun.stderr
    assert sorted(lab.creates_by_identity().values()) == [1, 1, 1]
    assert crash.unfinished(lab.names, lab.state()) == []
    assert crash.leaks(lab.held(), lab.state()) == []


def test_ctrl_c_submits_no_job_that_was_still_waiting_for_a_concurrency_slot(make_lab):
    """Ctrl-C frees the running job's slot (its thread stops waiting): the job queued for it must not be submitted."""
    lab = make_lab(models=2, max_concurrent_jobs=1, clock=HeldClock())  # the running job never frees its slot
    code, err, creates_at_interrupt = _interrupt_when_running(lab, jobs=1)
    assert code == 130, err
    assert creates_at_interrupt == 1
    assert lab.emulator.stats["creates"] == 1, f"a job was submitted after Ctrl-C:\n{err}"
