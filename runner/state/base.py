"""What every state backend promises, written once: locked reads, writes that keep a backup, and a lock that
names its holder, waits, and can be forced.

A backend supplies only its storage primitives: load/store the state bytes (with its own guard against a
concurrent writer), keep the previous version, load/append/clear the journal (runner.state.journal: the
records apply writes between two full writes), and create (atomically, at most one winner), read and delete
the lock. tests/test_state_backends.py holds every backend to the same promises.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from runner.errors import StateError, StateLockedError
from runner.state import journal
from runner.state.model import State

WORKSPACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
STATE_SUFFIX, OUTPUTS_SUFFIX = ".json", ".outputs.json"
# A journal is compacted once it outgrows the state file (a read then parses at most twice the state), but not
# below this size: folding a few records into a small state each time would save nothing.
JOURNAL_MIN_BOUND = 256 * 1024
READ_ATTEMPTS = 3  # a read without the lock can meet a compaction between the file and the journal: read again


def workspace_of(file_name: str) -> str | None:
    """The workspace whose state FILE_NAME (<workspace>.json) is, or None for any other file (backup, lock,
    outputs file, a name no workspace can have)."""
    if not file_name.endswith(STATE_SUFFIX) or file_name.endswith(OUTPUTS_SUFFIX):
        return None
    name = file_name.removesuffix(STATE_SUFFIX)
    return name if WORKSPACE_NAME.match(name) else None


class StateBackend(ABC):
    """One workspace's state in one place: read, version, write, delete, lock, unlock, locked, lock_info,
    force_unlock; and the workspaces whose state lives in the same place."""

    workspace: str
    display: str  # where the state is, as messages name it (a path or a gs:// URL)
    max_journal_records = 100_000  # a backend where a reader pays per record lowers it

    def __init__(self, workspace: str, display: str, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.workspace = workspace
        self.display = display
        self._sleep = sleep
        self._monotonic = monotonic
        self._lock_id: str | None = None
        self._state_bytes = 0  # size of the state file last read or written: the journal's bound
        self._journal_bytes = self._journal_records = 0  # the journal as last read, plus what was appended since

    # -- the primitives a backend supplies --------------------------------------------------------------
    @abstractmethod
    def exists(self) -> bool: ...

    @abstractmethod
    def workspaces(self) -> list[str]:
        """The workspaces that have a state in this backend's location (this one's siblings), sorted."""

    @abstractmethod
    def version(self) -> Hashable:
        """What read() would return now, identified without reading it (a stat, a listing): it changes with every
        write, journal record and delete, by anyone, and stays as it is through reads and locks. So a reader that
        probes it first, then reads, keeps a state only as long as the probe says nothing moved since."""

    @abstractmethod
    def _remove(self) -> None:
        """Remove the state and its backup (the lock is held, and stays until unlock)."""

    @abstractmethod
    def _load(self) -> bytes | None:
        """The state's bytes, or None when there is none; remembers what it read for _store's guard."""

    @abstractmethod
    def _keep_backup(self) -> None:
        """Keep the version last read (or written) as the backup, before it is replaced."""

    @abstractmethod
    def _store(self, payload: bytes) -> None:
        """Replace the state, or raise StateError if the backend sees that someone wrote since it read."""

    @abstractmethod
    def _load_journal(self) -> list[bytes]:
        """The journal's records, oldest first ([] when there is none); a torn last record (a crash in the
        middle of an append, which therefore never returned) is left out."""

    @abstractmethod
    def _append_journal(self, serial: int, record: bytes) -> None:
        """Store one record durably after the others (lock held), or raise StateError if the backend sees that
        someone wrote since it read."""

    @abstractmethod
    def _clear_journal(self) -> None:
        """Remove the journal, whose records the state file now holds (lock held)."""

    @abstractmethod
    def _claim(self, state: State) -> None:
        """Before a full write at state.serial: a backend whose guard against a concurrent writer is not the lock
        alone makes sure no journal record of that serial was written behind its back."""

    @abstractmethod
    def _restore_remedy(self) -> str:
        """How to bring back a readable state when this one is corrupt."""

    @abstractmethod
    def _create_lock(self, lock_id: str, payload: bytes) -> bool:
        """Create the lock holding `payload` unless one exists: True when it is now ours (at most one winner)."""

    @abstractmethod
    def _read_lock(self) -> tuple[bytes | None, Any]:
        """The lock's bytes (None: not locked) and a token that _delete_lock uses to remove only that lock."""

    @abstractmethod
    def _delete_lock(self, token: Any) -> None:
        """Remove the lock read with `token`; one already gone or replaced since is left alone."""

    # -- state -------------------------------------------------------------------------------------------
    def read(self) -> State:
        """The recorded state with its journal replayed, or a new empty one (not yet written) when there is none."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            raw = self._load()
            state = self._decoded(raw)
            try:
                records = self._load_journal()
                journal.replay(state, records, self.journal_display)
                break
            except journal.JournalGap:
                if self._lock_id is not None or attempt == READ_ATTEMPTS:  # under the lock nothing moves
                    raise
        self._journal_bytes, self._journal_records = sum(map(len, records)), len(records)
        return state


    @property
    def journal_display(self) -> str:
        return f"{self.display}.journal"

    def _decoded(self, raw: bytes | None) -> State:
        self._state_bytes = len(raw or b"")
        if raw is None:
            return State.new(self.workspace)
        try:
            return State.from_json(raw, self.display)
        except StateError as exc:
            if exc.remedy is None:  # an unsupported format version: the message already says what to do
                raise
            raise StateError(exc.message, remedy=self._restore_remedy()) from None

    def write(self, state: State) -> None:
        """Keep the previous version as the backup, bump the serial, and replace the state (lock held); the
        journal, whose records the state now holds, is removed."""
        self._check_locked("written")
        self._keep_backup()
        state.next_version()
        self._claim(state)
        payload = state.to_json()
        self._store(payload)
        self._state_bytes = len(payload)
        self._clear_journal()
        self._journal_bytes = self._journal_records = 0

    def write_record(self, state: State, name: str) -> None:
        """Record durably that model NAME changed (lock held): one journal record, or a full write when the state
        was never written or the journal has outgrown its bound (compaction). Either way the serial grows by one."""
        self._check_locked("written")
        if not state.lineage or self._journal_outgrown():
            self.write(state)
            return
        state.next_version()
        record = journal.encode(state, name)
        self._append_journal(state.serial, record)
        self._journal_bytes += len(record)
        self._journal_records += 1

    def compact(self, state: State) -> None:
        """Fold the journal into the state file, if there is one (the end of apply: the file is what git keeps)."""
        if self._journal_records:
            self.write(state)

    def _journal_outgrown(self) -> bool:
        return (self._journal_bytes > max(JOURNAL_MIN_BOUND, self._state_bytes)
                or self._journal_records >= self.max_journal_records)

    def _check_locked(self, done: str) -> None:
        if self._lock_id is None:
            raise StateError(f"internal: state {done} without holding the lock")

    def delete(self) -> None:
        """Forget this workspace's state (and its backup); the lock must be held."""
        self._check_locked("deleted")
        self._clear_journal()  # first: a journal left without its state would be refused by the next read
        self._remove()

    @contextmanager
    def locked(self, operation: str, timeout: float = 0.0) -> Iterator[State]:
        """Hold the lock for `operation` and yield the state read under it; the lock is released on every
        path out, Ctrl-C included (DVC's @locked, as a with-block)."""
        self.lock(operation, timeout)
        try:
            yield self.read()
        finally:
            self.unlock()

    # -- lock --------------------------------------------------------------------------------------------
    def lock(self, operation: str, timeout: float = 0.0) -> None:
        """Take the lock or fail at once (or after `timeout` seconds) naming who holds it."""
        lock_id = str(uuid.uuid4())
        payload = json.dumps(_holder(lock_id, operation), indent=2).encode("utf-8")
        deadline = self._monotonic() + timeout
        while not self._create_lock(lock_id, payload):
            if self._monotonic() >= deadline:
                raise locked_error(self.display, self.lock_info() or {})
            self._sleep(min(1.0, max(0.05, deadline - self._monotonic())))
        self._lock_id = lock_id

    def unlock(self) -> None:
        """Release the lock this object took, if it is still ours (a force-unlock may have given it away)."""
        if self._lock_id is None:
            return
        try:
            holder, token = self._holder_and_token()
            if holder and holder.get("id") == self._lock_id:
                self._delete_lock(token)
        finally:
            self._lock_id = None

    def lock_info(self) -> dict | None:
        """Who holds the lock (id, operation, pid, host, who, created), or None."""
        return self._holder_and_token()[0]

    def force_unlock(self, lock_id: str, confirm: Callable[[dict], bool] = lambda holder: True,
                     force: bool = False) -> dict | None:
        """Remove the lock LOCK_ID after confirm(holder) says yes, and return its holder; None when declined.
        A lock held by a process still running on this host is refused unless forced: removing it lets a
        second apply run beside it. `force` also skips the confirmation."""
        if not force:
            holder = self._held(lock_id)[0]
            if is_live_local_holder(holder):
                raise StateError(f"lock {lock_id} is held by {holder.get('operation', '?')}, pid {holder['pid']} on "
                                 f"this host, which is still running",
                                 remedy="wait for it to finish or stop it (Ctrl-C resumes safely later); "
                                        "`tuner force-unlock --force ID` removes the lock anyway")
            if not confirm(holder):
                return None
        holder, token = self._held(lock_id)  # (again after asking: an answer can take a while)
        self._delete_lock(token)
        return holder

    def _held(self, lock_id: str) -> tuple[dict, Any]:
        holder, token = self._holder_and_token()
        if holder is None:
            raise StateError(f"{self.display} is not locked")
        if holder.get("id") != lock_id:
            raise StateError(f"lock id {lock_id!r} does not match the lock held ({holder.get('id')!r})",
                             remedy="copy the id from the 'state is locked' message")
        return holder, token

    def _holder_and_token(self) -> tuple[dict | None, Any]:
        raw, token = self._read_lock()
        if raw is None:
            return None, token
        try:
            return json.loads(raw), token
        except ValueError:
            return {"id": "?", "note": "unreadable lock"}, token


def locked_error(display: str, holder: dict) -> StateLockedError:
    """What every backend says when another process holds the lock: who, where, since when, what to do."""
    return StateLockedError(
        f"state {display} is locked by {holder.get('operation', '?')} "
        f"(pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('created', '?')})",
        remedy=f"wait for it to finish, pass --lock-timeout SECONDS to wait, or if it is stale run "
               f"`tuner force-unlock {holder.get('id', '?')}`",
    )


def _holder(lock_id: str, operation: str) -> dict:
    pid = os.getpid()
    return {"id": lock_id, "operation": operation, "pid": pid, "pid_start": _process_start(pid),
            "host": socket.gethostname(), "who": os.environ.get("USER", ""),
            "created": datetime.now(UTC).isoformat(timespec="seconds")}


def is_live_local_holder(holder: dict) -> bool:
    """True when the holder ran on this host and its process is still running (a live apply, not a stale lock)."""
    return (holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int)
            and not is_dead_local_holder(holder))


def is_dead_local_holder(holder: dict) -> bool:
    """True only when certain: same host, and the pid is gone or now belongs to another process."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    started = holder.get("pid_start")
    return started is not None and _process_start(pid) not in (None, started)


def _process_start(pid: int) -> int | None:
    """The process start time in clock ticks (Linux), which tells a reused pid from the original."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
