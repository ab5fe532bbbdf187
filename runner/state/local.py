"""The local file backend: state/<workspace>.json, atomic writes, a backup, and an exclusive lock file."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from runner.errors import StateError, StateLockedError
from runner.fsutil import atomic_write
from runner.state.model import State, locked_error


class LocalBackend:
    def __init__(self, directory: Path, workspace: str, display_root: Path | None = None,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic):
        self.workspace = workspace
        self.path = directory / f"{workspace}.json"
        self.backup_path = directory / f"{workspace}.json.backup"
        self.lock_path = directory / f"{workspace}.json.lock"
        self.display = _display(self.path, display_root)
        self._sleep = sleep
        self._monotonic = monotonic
        self._lock_id: str | None = None

    def read(self) -> State:
        """The recorded state, or a new empty one (not yet written) when there is none."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return State.new(self.workspace)
        return State.from_json(raw, self.display)

    def exists(self) -> bool:
        return self.path.exists()

    def write(self, state: State) -> None:
        """Bump the serial and replace the file atomically, keeping the previous version as a backup."""
        if self._lock_id is None:
            raise StateError("internal: state written without holding the lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            _keep_backup(self.path, self.backup_path)
        state.next_version()
        atomic_write(self.path, state.to_json())

    def lock(self, operation: str, timeout: float = 0.0) -> None:
        """Take the lock or fail at once (or after `timeout` seconds) naming who holds it.

        A lock left by a process of this host that is no longer running (SIGKILL, power loss) is broken
        automatically; a lock from another host needs `tuner force-unlock`.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_id = str(uuid.uuid4())
        info = {"id": lock_id, "operation": operation, "pid": os.getpid(), "pid_start": _process_start(os.getpid()),
                "host": socket.gethostname(), "who": os.environ.get("USER", ""),
                "created": datetime.now(UTC).isoformat(timespec="seconds")}
        deadline = self._monotonic() + timeout
        while not self._try_lock(info):
            if self._monotonic() >= deadline:
                raise self._locked_error()
            self._sleep(min(1.0, max(0.05, deadline - self._monotonic())))
        self._lock_id = lock_id

    def _try_lock(self, info: dict) -> bool:
        # The guard serialises check-and-break, so a stale lock is never confused with a fresh one.
        with open(self.path.parent / f".{self.path.name}.lock-guard", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            holder = self.lock_info()
            if holder is not None and _is_dead_local_holder(holder):
                self.lock_path.unlink(missing_ok=True)
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as handle:
                json.dump(info, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            return True

    def unlock(self) -> None:
        if self._lock_id is None:
            return
        holder = self.lock_info()
        if holder and holder.get("id") == self._lock_id:
            self.lock_path.unlink(missing_ok=True)
        self._lock_id = None

    def lock_info(self) -> dict | None:
        try:
            return json.loads(self.lock_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError:
            return {"id": "?", "note": "unreadable lock file"}

    def force_unlock(self, lock_id: str) -> dict:
        holder = self.lock_info()
        if holder is None:
            raise StateError(f"{self.display} is not locked")
        if holder.get("id") != lock_id:
            raise StateError(f"lock id {lock_id!r} does not match the lock held ({holder.get('id')!r})",
                             remedy="copy the id from the 'state is locked' message")
        self.lock_path.unlink(missing_ok=True)
        return holder

    def _locked_error(self) -> StateLockedError:
        return locked_error(self.display, self.lock_info() or {})


def _keep_backup(path: Path, backup: Path) -> None:
    """The previous version becomes the backup by a hard link: O(1) whatever the state's size, and atomic
    (the link is made under a temporary name, then renamed over the old backup)."""
    staging = backup.with_name(f".{backup.name}.{os.getpid()}.tmp")
    staging.unlink(missing_ok=True)
    try:
        os.link(path, staging)
    except OSError:  # a filesystem without hard links: copy instead
        atomic_write(backup, path.read_bytes())
        return
    os.replace(staging, backup)


def is_live_local_holder(holder: dict) -> bool:
    """True when the holder ran on this host and its process is still running (a live apply, not a stale lock)."""
    return (holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int)
            and not _is_dead_local_holder(holder))


def _is_dead_local_holder(holder: dict) -> bool:
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


def _display(path: Path, root: Path | None) -> str:
    if root is None:
        return str(path)
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
