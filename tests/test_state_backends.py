"""One conformance suite for every state backend (Terraform's statemgr.TestFull): the local file and GCS
(fake-gcs-server driven by the real google-cloud-storage client) must keep the same promises."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from runner.errors import StateError, StateLockedError
from runner.state import ACTIVE, Instance, LocalBackend, State
from runner.state.base import StateBackend
from tests.conftest import FakeClock, bucket, storage_client

BUCKET, PREFIX = "tuner-conformance", "suite"


@dataclass
class Location:
    """Where one test's state lives, and how to reach it behind the backend's back."""

    kind: str
    workspace: str
    make: Callable[..., StateBackend]  # a new backend object on this same state (kwargs: sleep, monotonic)
    stored: Callable[[str], bytes | None]  # the raw bytes of <workspace>.json<suffix>, None when absent
    put: Callable[[str, bytes], None]  # replace <workspace>.json<suffix> as another writer would
    records: Callable[[], list[bytes]]  # the journal's records as stored, oldest first
    put_record: Callable[[int, bytes], None]  # add a journal record for a serial as another writer would


def _local(tmp_path, workspace: str) -> Location:
    directory = tmp_path / "state"

    def stored(suffix: str) -> bytes | None:
        path = directory / f"{workspace}.json{suffix}"
        return path.read_bytes() if path.exists() else None

    def put(suffix: str, payload: bytes) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{workspace}.json{suffix}").write_bytes(payload)

    journal = directory / f"{workspace}.json.journal"

    def records() -> list[bytes]:
        return journal.read_bytes().splitlines() if journal.exists() else []

    def put_record(serial: int, payload: bytes) -> None:
        with open(journal, "ab") as handle:
            handle.write(payload + b"\n")

    return Location("local", workspace, lambda **kwargs: LocalBackend(directory, workspace, **kwargs), stored, put,
                    records, put_record)


def _gcs(workspace: str) -> Location:
    from runner.state.gcs import GcsBackend

    bucket(BUCKET)
    objects = storage_client().bucket(BUCKET)

    def stored(suffix: str) -> bytes | None:
        blob = objects.get_blob(f"{PREFIX}/{workspace}.json{suffix}")
        return blob.download_as_bytes() if blob else None

    def put(suffix: str, payload: bytes) -> None:
        objects.blob(f"{PREFIX}/{workspace}.json{suffix}").upload_from_string(payload)

    journal = f"{PREFIX}/{workspace}.json.journal/"

    def records() -> list[bytes]:
        return [blob.download_as_bytes() for blob in sorted(objects.list_blobs(prefix=journal), key=lambda b: b.name)]

    def put_record(serial: int, payload: bytes) -> None:
        objects.blob(f"{journal}{serial:010d}").upload_from_string(payload)

    return Location("gcs", workspace, lambda **kwargs: GcsBackend(BUCKET, PREFIX, workspace, **kwargs), stored, put,
                    records, put_record)


@pytest.fixture(params=["local", "gcs"])
def location(request, tmp_path) -> Location:
    workspace = f"ws-{uuid.uuid4().hex[:8]}"  # the bucket is shared by the session: one workspace per test
    if request.param == "gcs":
        request.getfixturevalue("gcs_server")
        return _gcs(workspace)
    return _local(tmp_path, workspace)


def instance(tuned_model_id: str) -> Instance:
    return Instance(tuned_model_id=tuned_model_id, provider="local", fingerprint="f" * 16, status=ACTIVE,
                    base_model="base", display_name="Sentiment é", description="", hyperparameters={"epochs": 2},
                    dataset={"train": {"path": "data/train.jsonl", "sha256": "0" * 64, "examples": 60},
                             "input_key": "text_input", "output_key": "output"},
                    created_at="2026-11-25T00:00:00Z", updated_at="2026-11-25T00:00:00Z")


def write_once(backend: StateBackend, model: str | None = None) -> State:
    """One locked read-modify-write, as a tuner command does it."""
    with backend.locked("apply") as state:
        if model:
            state.record(model).current = instance(f"tuned-{model}")
        backend.write(state)
        return state


def foreign_holder(location: Location) -> str:
    """A lock left by a run on another machine: nothing here can tell whether it still runs."""
    lock_id = str(uuid.uuid4())
    holder = {"id": lock_id, "operation": "apply", "pid": 4242, "host": "ci-runner-7", "who": "ci",
              "created": "2026-11-25T00:00:00+00:00"}
    location.put(".lock", json.dumps(holder).encode())
    return lock_id


# -- read / write ----------------------------------------------------------------------------------------
def test_an_empty_location_reads_as_a_new_state(location):
    backend = location.make()
    state = backend.read()
    assert (state.lineage, state.serial, state.workspace, state.models) == ("", 0, location.workspace, {})
    assert not backend.exists()
    assert backend.lock_info() is None


def test_what_is_written_reads_back_byte_for_byte(location):
    written = write_once(location.make(), model="sentiment")
    assert location.stored("") == written.to_json()
    again = location.make()
    assert again.exists()
    assert again.read().to_json() == written.to_json()
    assert again.read().models["sentiment"].current == instance("tuned-sentiment")


def test_the_serial_grows_once_per_write_and_the_lineage_is_born_once(location):
    backend = location.make()
    with backend.locked("apply") as state:
        for expected_serial in (1, 2, 3):  # successive writes of one run
            backend.write(state)
            assert state.serial == expected_serial
        lineage = state.lineage
    assert lineage
    write_once(location.make())  # and a later run
    again = location.make().read()
    assert (again.lineage, again.serial) == (lineage, 4)


def test_the_backup_holds_the_previous_version(location):
    first = write_once(location.make(), model="a").to_json()
    assert location.stored(".backup") is None  # nothing before the first write
    second = write_once(location.make(), model="b").to_json()
    assert location.stored(".backup") == first
    assert location.stored("") == second


def test_a_write_without_the_lock_is_refused(location):
    backend = location.make()
    with pytest.raises(StateError, match="without holding the lock"):
        backend.write(backend.read())
    assert location.stored("") is None


def test_a_corrupt_state_names_where_it_is_and_its_backup(location):
    location.put("", b"{not json")
    backend = location.make()
    with pytest.raises(StateError) as corrupt:
        backend.read()
    assert f"{backend.display}: state file is corrupt" in str(corrupt.value)
    assert f"{backend.display}.backup" in corrupt.value.remedy


# -- locked() --------------------------------------------------------------------------------------------
def test_locked_yields_the_state_read_under_the_lock_and_then_unlocks(location):
    write_once(location.make(), model="a")
    backend = location.make()
    with backend.locked("eval") as state:
        assert set(state.models) == {"a"}
        assert backend.lock_info()["operation"] == "eval"
    assert backend.lock_info() is None


@pytest.mark.parametrize("interruption", [RuntimeError, KeyboardInterrupt])
def test_locked_unlocks_when_the_body_fails_or_is_interrupted(location, interruption):
    backend = location.make()
    with pytest.raises(interruption), backend.locked("apply"):
        raise interruption()
    assert backend.lock_info() is None
    write_once(location.make())  # the next run gets in


def test_locked_unlocks_when_the_state_cannot_be_read(location):
    location.put("", b"{not json")
    backend = location.make()
    with pytest.raises(StateError, match="state file is corrupt"), backend.locked("plan"):
        pytest.fail("the body never runs without a state")
    assert backend.lock_info() is None


# -- lock ------------------------------------------------------------------------------------------------
def test_a_second_locker_is_refused_naming_the_holder(location):
    holder = location.make()
    with holder.locked("apply"):
        lock_id = holder.lock_info()["id"]
        with pytest.raises(StateLockedError) as locked:
            location.make().lock("plan")
        assert (f"state {holder.display} is locked by apply (pid {os.getpid()} on {socket.gethostname()}, since "
                in str(locked.value))
        assert f"`tuner force-unlock {lock_id}`" in locked.value.remedy
        assert holder.lock_info()["id"] == lock_id  # the refused locker left the lock alone


def test_waiting_for_the_lock_ends_when_the_holder_unlocks(location):
    holder = location.make()
    holder.lock("apply")
    clock, naps = FakeClock(), []

    def nap(seconds: float) -> None:  # no real sleeping: time moves, and the holder finishes on the 2nd nap
        naps.append(seconds)
        clock.advance(seconds)
        if len(naps) == 2:
            holder.unlock()

    waiter = location.make(sleep=nap, monotonic=clock)
    waiter.lock("plan", timeout=30)
    assert len(naps) == 2 and all(0 < seconds <= 1.0 for seconds in naps)
    assert waiter.lock_info()["operation"] == "plan"
    waiter.unlock()


def test_waiting_for_the_lock_gives_up_after_the_timeout_and_never_breaks_it(location):
    holder = location.make()
    holder.lock("apply")
    clock = FakeClock()
    waiter = location.make(sleep=clock.advance, monotonic=clock)
    with pytest.raises(StateLockedError, match="is locked by apply"):
        waiter.lock("plan", timeout=5)
    assert clock.now >= 1005.0
    assert holder.lock_info()["operation"] == "apply"
    holder.unlock()


def test_unlock_lets_the_next_locker_in(location):
    first = location.make()
    first.lock("apply")
    first.unlock()
    assert first.lock_info() is None
    second = location.make()
    second.lock("refresh")
    assert second.lock_info()["operation"] == "refresh"
    second.unlock()


def test_unlock_leaves_someone_elses_lock_alone(location):
    first, second = location.make(), location.make()
    first.lock("apply")
    location.make().force_unlock(first.lock_info()["id"], force=True)  # an operator judged it stale
    second.lock("apply")
    second_id = second.lock_info()["id"]
    first.unlock()
    assert location.make().lock_info()["id"] == second_id
    second.unlock()
    assert location.make().lock_info() is None


# -- force-unlock ----------------------------------------------------------------------------------------
def test_force_unlock_needs_a_lock_and_its_id(location):
    admin = location.make()
    with pytest.raises(StateError, match="is not locked"):
        admin.force_unlock("anything", force=True)
    lock_id = foreign_holder(location)
    with pytest.raises(StateError, match="does not match the lock held") as wrong:
        admin.force_unlock("wrong-id", force=True)
    assert "copy the id" in wrong.value.remedy
    assert admin.lock_info()["id"] == lock_id


def test_force_unlock_asks_and_removes_only_on_yes(location):
    lock_id = foreign_holder(location)
    admin, asked = location.make(), []
    assert admin.force_unlock(lock_id, lambda holder: asked.append(holder) or False) is None
    assert asked[0]["host"] == "ci-runner-7"
    assert admin.lock_info()["id"] == lock_id
    assert admin.force_unlock(lock_id, lambda holder: True)["host"] == "ci-runner-7"
    assert admin.lock_info() is None


def test_force_unlock_refuses_a_holder_still_running_on_this_host_unless_forced(location):
    holder = location.make()
    holder.lock("apply")
    lock_id = holder.lock_info()["id"]
    with pytest.raises(StateError, match=f"pid {os.getpid()} on this host, which is still running") as live:
        location.make().force_unlock(lock_id, lambda holder: True)  # even a yes does not remove it
    assert "--force" in live.value.remedy
    assert holder.lock_info()["id"] == lock_id
    forced = location.make().force_unlock(lock_id, lambda holder: pytest.fail("--force never asks"), force=True)
    assert forced["id"] == lock_id
    assert holder.lock_info() is None


# -- what only some backends can do ----------------------------------------------------------------------
def _dead_holder(location: Location) -> None:
    """The lock of a process of this host that is gone (SIGKILL, power loss)."""
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    location.put(".lock", json.dumps({"id": "stale", "operation": "apply", "pid": gone.pid,
                                      "host": socket.gethostname(), "created": "2026-11-25T00:00:00+00:00"}).encode())


@pytest.mark.parametrize("location", ["local"], indirect=True)
def test_the_local_backend_breaks_the_lock_of_a_dead_process_of_this_host(location):
    _dead_holder(location)
    backend = location.make()
    backend.lock("apply")
    assert backend.lock_info()["operation"] == "apply"
    backend.unlock()


@pytest.mark.parametrize("location", ["gcs"], indirect=True)
def test_the_gcs_backend_never_breaks_a_lock_by_itself(location):
    _dead_holder(location)  # a shared lock: who wrote it cannot be judged from the bucket alone
    with pytest.raises(StateLockedError):
        location.make().lock("apply")
    assert location.make().lock_info()["id"] == "stale"


@pytest.mark.parametrize("location", ["gcs"], indirect=True)  # the local file trusts the lock alone
def test_a_writer_that_missed_a_newer_version_is_refused(location):
    write_once(location.make(), model="a")
    stale = location.make()
    stale_state = stale.read()
    read_generation = stale.generation
    newer = location.make()
    write_once(newer, model="b")
    live, backup = location.stored(""), location.stored(".backup")
    stale.lock("apply")
    with pytest.raises(StateError) as refused:
        stale.write(stale_state)
    stale.unlock()
    assert (f"state {stale.display} was changed by someone else since it was read "
            f"(generation {read_generation}, now {newer.generation})" in str(refused.value))
    assert "nothing was overwritten" in refused.value.remedy
    assert (location.stored(""), location.stored(".backup")) == (live, backup)


# -- workspaces ------------------------------------------------------------------------------------------
def test_the_backend_lists_the_workspaces_with_a_state_beside_it(location):
    assert location.workspace not in location.make().workspaces()
    write_once(location.make(), model="sentiment")
    write_once(location.make())  # a second write leaves a backup, which is no workspace
    location.put(".lock", b"{}")  # nor is a lock
    listed = location.make().workspaces()
    assert location.workspace in listed and listed == sorted(listed)
    assert not [name for name in listed if name.startswith(location.workspace) and name != location.workspace]


def test_delete_forgets_the_state_and_its_backup_under_the_lock(location):
    write_once(location.make(), model="sentiment")
    write_once(location.make())
    journaled(location, "reviews")[0].unlock()  # and a journal an apply killed mid-run left
    backend = location.make()
    with pytest.raises(StateError, match="without holding the lock"):
        backend.delete()
    with backend.locked("workspace delete"):
        backend.delete()
    assert location.stored("") is None and location.stored(".backup") is None and location.stored(".lock") is None
    assert location.records() == []
    assert location.workspace not in location.make().workspaces()


# -- the journal (runner.state.journal): apply's records between two full writes ----------------------------
def journaled(location: Location, *models: str) -> tuple[StateBackend, State]:
    """A locked backend whose state was written once (serial 1), then changed model by model in the journal."""
    backend = location.make()
    backend.lock("apply")
    state = backend.read()
    backend.write(state)
    for model in models:
        state.record(model).current = instance(f"tuned-{model}")
        backend.write_record(state, model)
    return backend, state


def test_journal_records_are_replayed_by_every_read_and_leave_the_state_file_alone(location):
    backend, state = journaled(location)
    written = location.stored("")
    for model in ("alpha", "bravo"):
        state.record(model).current = instance(f"tuned-{model}")
        backend.write_record(state, model)
    del state.models["alpha"]  # a name forgotten is a record too
    backend.write_record(state, "alpha")
    assert location.stored("") == written and len(location.records()) == 3
    seen = location.make().read()  # another process, without the lock
    assert (seen.serial, seen.to_json()) == (4, state.to_json())
    assert set(seen.models) == {"bravo"}
    backend.unlock()


def test_compact_folds_the_journal_into_the_state_file_and_removes_it(location):
    backend, state = journaled(location, "alpha", "bravo")
    backend.compact(state)
    assert location.records() == [] and location.stored("") == state.to_json()
    assert state.serial == 4
    backend.compact(state)  # nothing left to fold: no write
    assert state.serial == 4
    backend.unlock()


def test_a_journal_outgrowing_its_bound_is_compacted_by_the_next_record(location):
    backend, state = journaled(location, "alpha")
    backend.max_journal_records = 2
    for model in ("bravo", "charlie"):
        state.record(model).current = instance(f"tuned-{model}")
        backend.write_record(state, model)
    assert location.records() == [] and location.stored("") == state.to_json()
    backend.unlock()


def test_records_already_in_the_state_file_are_skipped_so_replay_is_idempotent(location):
    backend, state = journaled(location, "alpha", "bravo")
    records = location.records()
    backend.compact(state)
    for serial, record in zip((2, 3), records, strict=True):  # as a crash between the write and the removal leaves
        location.put_record(serial, record)
    assert location.make().read().to_json() == state.to_json()
    state.record("charlie").current = instance("tuned-charlie")
    backend.write_record(state, "charlie")  # a later record goes on from the file's serial
    assert location.make().read().to_json() == state.to_json()
    backend.unlock()


def test_a_reader_without_the_lock_that_meets_a_compaction_reads_again(location):
    writer, state = journaled(location, "alpha")
    reader, interleaved = location.make(), []
    load_journal = reader._load_journal

    def compaction_between_file_and_journal() -> list[bytes]:
        if not interleaved:  # the reader has the file at serial 2; the writer compacts, then records on
            interleaved.append(writer.compact(state))
            state.record("bravo").current = instance("tuned-bravo")
            writer.write_record(state, "bravo")
        return load_journal()

    reader._load_journal = compaction_between_file_and_journal
    assert reader.read().to_json() == state.to_json()
    writer.unlock()


def test_the_version_changes_with_every_write_record_and_delete_but_not_with_a_read_or_the_lock(location):
    probe, loads = location.make(), []  # a sibling reader's probe: it must never read what it identifies
    probe._load = probe._load_journal = lambda: loads.append("read") or []
    absent = probe.version()
    backend, state = journaled(location)  # locked, written once
    seen = [absent, probe.version()]
    location.make().read()
    backend.read()
    backend.unlock()
    backend.lock("apply")
    assert probe.version() == seen[-1]  # a plain read, a lock and an unlock leave what read() returns alone

    def record(name: str) -> None:
        state.record(name).current = instance(f"tuned-{name}")
        backend.write_record(state, name)

    for change in (lambda: record("alpha"), lambda: record("bravo"), lambda: backend.compact(state),
                   lambda: backend.write(state), lambda: location.put("", location.stored("") + b" "),
                   backend.delete):  # (the put: another writer, behind this backend's back)
        change()
        seen.append(probe.version())
    backend.unlock()
    assert len(set(seen[1:])) == len(seen) - 1 and seen[-1] == absent and loads == []


@pytest.mark.parametrize("location", ["local"], indirect=True)  # a GCS object is created whole or not at all
def test_a_torn_last_record_is_ignored_and_the_next_append_cuts_it_off(location, tmp_path):
    backend, state = journaled(location, "alpha")
    journal = tmp_path / "state" / f"{location.workspace}.json.journal"
    with open(journal, "ab") as handle:  # a crash in the middle of an append, which therefore never returned
        handle.write(b'{"lineage":"' + state.lineage.encode()[:5])
    assert location.make().read().to_json() == state.to_json()
    backend.unlock()
    backend = location.make()
    backend.lock("apply")
    state = backend.read()
    state.record("bravo").current = instance("tuned-bravo")
    backend.write_record(state, "bravo")
    assert location.make().read().to_json() == state.to_json()
    assert len(location.records()) == 2
    backend.unlock()


def _record(state: State, **changes) -> bytes:
    entry = {"lineage": state.lineage, "serial": state.serial + 1, "model": "bravo",
             "record": json.loads(state.to_json())["models"]["alpha"]}
    return json.dumps({**entry, **changes}).encode()


@pytest.mark.parametrize("forge, problem", [
    (lambda state: _record(state, lineage=str(uuid.uuid4())), "belongs to another state"),
    (lambda state: _record(state, serial=state.serial + 2), "records are missing in between"),
    (lambda state: _record(state, serial=True), "serial: must be an integer"),
    (lambda state: _record(state, model="../../escape"), "is not a model name"),
    (lambda state: _record(state, record={"tuned_model_id": 7}), "models.bravo.tuned_model_id: must be a string"),
    (lambda state: b'{"lineage": NaN}', "is corrupt"),
])
def test_a_journal_record_tuner_would_not_write_is_refused(location, forge, problem):
    backend, state = journaled(location, "alpha")
    backend.unlock()
    location.put_record(state.serial + 1, forge(state))
    with pytest.raises(StateError) as refused:
        location.make().read()
    assert problem in str(refused.value)
    assert f"{location.make().journal_display}" in refused.value.remedy
    with pytest.raises(StateError, match=problem.replace("(", r"\(")), location.make().locked("apply"):
        pytest.fail("no command runs on a state it cannot read")


@pytest.mark.parametrize("location", ["gcs"], indirect=True)
def test_an_object_in_the_journal_that_is_not_a_record_is_refused(location):
    journaled(location, "alpha")[0].unlock()
    stray = f"{PREFIX}/{location.workspace}.json.journal/notes.txt"
    storage_client().bucket(BUCKET).blob(stray).upload_from_string(b"{}")
    with pytest.raises(StateError, match="is not a journal record") as refused:
        location.make().read()
    assert "gcloud storage rm" in refused.value.remedy


@pytest.mark.parametrize("location", ["gcs"], indirect=True)  # the local file trusts the lock alone
def test_a_journaling_writer_that_missed_a_newer_state_is_refused(location):
    stale, state = journaled(location, "alpha")
    location.make().force_unlock(stale.lock_info()["id"], force=True)  # an operator judged the apply stale
    write_once(location.make(), model="bravo")
    state.record("charlie").current = instance("tuned-charlie")
    with pytest.raises(StateError, match="was changed by someone else since it was read"):
        stale.write_record(state, "charlie")
    assert "charlie" not in location.make().read().models  # its record was taken back
    assert set(location.make().read().models) == {"alpha", "bravo"}


@pytest.mark.parametrize("location", ["gcs"], indirect=True)
def test_a_full_writer_that_missed_a_journal_record_is_refused(location):
    first, _ = journaled(location)
    first.unlock()
    stale = location.make()
    stale_state = stale.read()  # before the record below
    applying, state = journaled(location, "alpha")
    location.make().force_unlock(applying.lock_info()["id"], force=True)
    stale.lock("import")
    with pytest.raises(StateError, match="was changed by someone else since it was read"):
        stale.write(stale_state)
    stale.unlock()
    assert location.make().read().to_json() == state.to_json()
