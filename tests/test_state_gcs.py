"""The GCS state backend and migrate(), against a real fake-gcs-server driven by google-cloud-storage."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path
from unittest import mock

import pytest
from google.api_core.exceptions import Forbidden, PreconditionFailed
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import storage

from runner.errors import StateError, StateLockedError
from runner.state import LocalBackend
from runner.state.gcs import GcsBackend
from runner.state.migrate import migrate
from tests.conftest import bucket, storage_client
from tests.test_state_backends import instance, write_once

REPO = Path(__file__).resolve().parents[1]
BUCKET, PREFIX = "tuner-state", "teams/ml"


@pytest.fixture(scope="module")
def gcs(gcs_server):
    bucket(BUCKET)
    return gcs_server


@pytest.fixture
def workspace(gcs) -> str:
    """A workspace of its own for each test, so tests share the bucket without sharing objects."""
    return f"ws-{uuid.uuid4().hex[:8]}"


def backend(workspace: str, **kwargs) -> GcsBackend:
    return GcsBackend(BUCKET, PREFIX, workspace, **kwargs)


def stored(name: str) -> storage.Blob | None:
    return storage_client().bucket(BUCKET).get_blob(f"{PREFIX}/{name}")


# -- read / write ----------------------------------------------------------------------------------
def test_missing_state_reads_with_generation_zero(workspace):
    state_backend = backend(workspace)
    state_backend.read()
    assert state_backend.generation == 0
    assert state_backend.display == f"gs://{BUCKET}/{PREFIX}/{workspace}.json"


def test_serial_and_generation_grow_once_per_write(workspace):
    state_backend = backend(workspace)
    state_backend.lock("apply")
    state = state_backend.read()
    generations = [state_backend.generation]
    for expected_serial in (1, 2, 3):
        state_backend.write(state)  # successive writes of one run chain on the generation last written
        assert state.serial == expected_serial
        assert state_backend.generation > generations[-1]
        assert stored(f"{workspace}.json").generation == state_backend.generation
        generations.append(state_backend.generation)
    state_backend.unlock()
    assert len(set(generations)) == 4


def test_writer_refused_when_state_appears_after_it_read_nothing(workspace):
    early = backend(workspace)
    early_state = early.read()
    write_once(backend(workspace), model="a")
    early.lock("apply")
    with pytest.raises(StateError, match=r"changed by someone else since it was read \(generation 0, now \d+\)"):
        early.write(early_state)
    early.unlock()


def lose_upload_responses(monkeypatch) -> None:
    """Uploads land, then report 412: what the client's retry of a request whose response was lost sees."""
    upload = storage.Blob.upload_from_string

    def landed_then_412(blob: storage.Blob, data, **kwargs) -> None:
        upload(blob, data, **kwargs)
        raise PreconditionFailed("412 the retried request found the generation changed")

    monkeypatch.setattr(storage.Blob, "upload_from_string", landed_then_412)


def test_a_retried_write_that_already_landed_is_adopted(workspace, monkeypatch):
    state_backend = backend(workspace)
    state_backend.lock("apply")
    state = state_backend.read()
    lose_upload_responses(monkeypatch)
    state_backend.write(state)
    monkeypatch.undo()
    assert state_backend.generation == stored(f"{workspace}.json").generation
    state_backend.write(state)  # and the next write chains on it
    assert backend(workspace).read().serial == 2
    state_backend.unlock()


def test_a_retried_lock_that_already_landed_is_ours(workspace, monkeypatch):
    state_backend = backend(workspace)
    lose_upload_responses(monkeypatch)
    state_backend.lock("apply")
    monkeypatch.undo()
    with pytest.raises(StateLockedError):
        backend(workspace).lock("plan")
    state_backend.unlock()
    assert state_backend.lock_info() is None


def test_corrupt_state_says_how_to_restore_the_backup_or_an_older_generation(workspace):
    storage_client().bucket(BUCKET).blob(f"{PREFIX}/{workspace}.json").upload_from_string(b"{not json")
    with pytest.raises(StateError) as corrupt:
        backend(workspace).read()
    url = f"gs://{BUCKET}/{PREFIX}/{workspace}.json"
    assert f"`gcloud storage cp {url}.backup {url}`" in corrupt.value.remedy
    assert "object versioning" in corrupt.value.remedy


# -- errors ----------------------------------------------------------------------------------------
def test_missing_bucket_is_a_state_error_naming_it(gcs):
    with pytest.raises(StateError) as missing:
        GcsBackend("no-such-bucket", PREFIX, "default").lock("apply")
    assert "bucket gs://no-such-bucket does not exist" in str(missing.value)
    assert "gcloud storage buckets create gs://no-such-bucket" in missing.value.remedy


def test_permission_denied_names_the_permission_and_bucket():
    client = mock.MagicMock()
    blob = client.bucket.return_value.blob.return_value
    blob.download_as_bytes.side_effect = Forbidden("caller does not have storage.objects.get access")
    blob.upload_from_string.side_effect = Forbidden("caller does not have storage.objects.create access")
    denied = GcsBackend(BUCKET, PREFIX, "default", client_factory=lambda: client)
    with pytest.raises(StateError, match=r"cannot read .* permission denied") as reading:
        denied.read()
    assert f"storage.objects.get on gs://{BUCKET}" in reading.value.remedy
    with pytest.raises(StateError, match=r"cannot lock .* permission denied") as locking:
        denied.lock("apply")
    assert f"storage.objects.create on gs://{BUCKET}" in locking.value.remedy


def test_missing_credentials_is_a_state_error():
    def no_credentials() -> storage.Client:
        raise DefaultCredentialsError("Your default credentials were not found.")

    with pytest.raises(StateError, match="no Google credentials found") as missing:
        GcsBackend(BUCKET, PREFIX, "default", client_factory=no_credentials).read()
    assert "gcloud auth application-default login" in missing.value.remedy


# -- migrate ---------------------------------------------------------------------------------------
def test_migrate_local_to_gcs_and_back_keeps_lineage_and_models(workspace, tmp_path):
    local = LocalBackend(tmp_path / "state", workspace)
    original = write_once(local, model="sentiment")
    remote = backend(workspace)

    uploaded = migrate(local, remote)
    assert (uploaded.lineage, uploaded.serial) == (original.lineage, original.serial + 1)
    assert backend(workspace).read().to_json() == uploaded.to_json()
    assert uploaded.models == original.models

    changed = write_once(backend(workspace), model="summary")  # the team works on the shared state a while
    downloaded = migrate(backend(workspace), LocalBackend(tmp_path / "state", workspace))
    assert (downloaded.lineage, downloaded.serial) == (original.lineage, changed.serial + 1)
    assert set(local.read().models) == {"sentiment", "summary"}
    assert local.read().to_json() == downloaded.to_json()
    assert local.lock_info() is None and remote.lock_info() is None

    with pytest.raises(StateError, match="already at serial"):  # the target moved past the source
        migrate(backend(workspace), local)


def test_migrate_refuses_a_target_with_another_lineage(workspace, tmp_path):
    local = LocalBackend(tmp_path / "state", workspace)
    write_once(local, model="sentiment")
    write_once(backend(workspace), model="other")
    before = stored(f"{workspace}.json").download_as_bytes()
    with pytest.raises(StateError, match="the target holds a different state") as refused:
        migrate(local, backend(workspace))
    assert "choose another workspace" in refused.value.remedy
    assert stored(f"{workspace}.json").download_as_bytes() == before
    assert local.lock_info() is None and backend(workspace).lock_info() is None


def test_migrate_refuses_an_empty_source(workspace, tmp_path):
    with pytest.raises(StateError, match="nothing to migrate"):
        migrate(LocalBackend(tmp_path / "state", workspace), backend(workspace))
    assert not backend(workspace).exists()


# -- two processes ---------------------------------------------------------------------------------
WORKER = textwrap.dedent("""
    import json, sys, time
    from runner.state.gcs import GcsBackend

    bucket, prefix, workspace, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    backend = GcsBackend(bucket, prefix, workspace, sleep=lambda _seconds: time.sleep(0.005))
    print("ready", flush=True)
    sys.stdin.readline()  # start together, so the two really compete for the lock
    writes = []
    for _ in range(rounds):
        backend.lock("stress", timeout=30)
        try:
            state = backend.read()
            base = backend.generation
            backend.write(state)
            writes.append({"base": base, "generation": backend.generation, "serial": state.serial})
        finally:
            backend.unlock()
    print(json.dumps(writes), flush=True)
""")


def test_two_processes_never_lose_a_write(gcs, workspace):
    env = {**os.environ, "STORAGE_EMULATOR_HOST": gcs.url, "PYTHONPATH": str(REPO),
           "PYTHONWARNINGS": "ignore"}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, BUCKET, PREFIX, workspace, "5"], env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(2)]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outputs = [worker.communicate(timeout=60) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert [worker.returncode for worker in workers] == [0, 0], [err for _, err in outputs]
    writes = sorted((w for out, _ in outputs for w in json.loads(out)), key=lambda w: w["serial"])

    # Every write started from the one before it: one linear history, nothing overwritten.
    assert [w["serial"] for w in writes] == list(range(1, len(writes) + 1))
    assert writes[0]["base"] == 0
    for earlier, later in itertools.pairwise(writes):
        assert later["base"] == earlier["generation"] < later["generation"]
    final = backend(workspace)
    assert final.read().serial == len(writes) == 10
    assert final.generation == writes[-1]["generation"]
    assert final.lock_info() is None


def test_migrate_keeps_the_recorded_provider_settings(workspace, tmp_path):
    """Dropping them would make the next plan show every provider's settings as new, and skip its refresh."""
    local = LocalBackend(tmp_path / "state", workspace)
    local.lock("apply")
    state = local.read()
    state.providers["gemini"] = {"endpoint": "https://gemini.example", "api_key_env": "GOOGLE_API_KEY"}
    local.write(state)
    local.unlock()
    assert migrate(local, backend(workspace)).providers == state.providers
    assert backend(workspace).read().providers == state.providers


# -- reading the journal ---------------------------------------------------------------------------
def journal_of(workspace: str, records: int) -> GcsBackend:
    """A state written once, then RECORDS journal records (one object each), unlocked."""
    writer = backend(workspace)
    with writer.locked("apply") as state:
        writer.write(state)
        for index in range(records):
            state.record(f"m{index}").current = instance(f"tuned-{index}")
            writer.write_record(state, f"m{index}")
    return backend(workspace)


def test_journal_records_are_downloaded_side_by_side(workspace, monkeypatch):
    """Each record is a small object: a reader fetching them one after another pays a round trip each (500 at
    most before compaction). Two downloads must be in flight at once: sequential reads never meet the barrier."""
    reader = journal_of(workspace, 4)
    meeting = threading.Barrier(2, timeout=10)
    download = GcsBackend._download

    def meeting_another(self, name):
        if "journal" in name:
            meeting.wait()
        return download(self, name)

    monkeypatch.setattr(GcsBackend, "_download", meeting_another)
    assert sorted(reader.read().models) == ["m0", "m1", "m2", "m3"]


def test_a_journal_record_removed_while_the_journal_is_read_is_a_gap(workspace, monkeypatch):
    """A compaction between the listing and the downloads: the read is retried, then refused as changed."""
    reader = journal_of(workspace, 3)
    download = GcsBackend._download
    monkeypatch.setattr(GcsBackend, "_download",
                        lambda self, name: (None, 0) if name.endswith("0000000003") else download(self, name))
    with pytest.raises(StateError, match="changed while it was read"):
        reader.read()
