"""The local file backend: state/<workspace>.json, atomic writes, a backup, and an exclusive lock file.

The journal (runner.state.journal) is state/<workspace>.json.journal: one JSON record a line, each appended and
fsynced before apply goes on (one small write instead of rewriting the whole file)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from runner.fsutil import atomic_write, file_stat, fsync_dir
from runner.state.base import StateBackend, is_dead_local_holder, workspace_of


class LocalBackend(StateBackend):
    """The lock is the only guard against a concurrent writer. A lock left by a process of this host that is no
    longer running (SIGKILL, power loss) is broken automatically; a lock from another host needs
    `tuner force-unlock`."""

    def __init__(self, directory: Path, workspace: str, display_root: Path | None = None,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic):
        self.path = directory / f"{workspace}.json"
        self.backup_path = directory / f"{workspace}.json.backup"
        self.lock_path = directory / f"{workspace}.json.lock"
        self.journal_path = directory / f"{workspace}.json.journal"
        super().__init__(workspace, _display(self.path, display_root), sleep, monotonic)
        self._journal_end = 0  # where the journal's last whole record ends: a torn tail after it is cut off

    def exists(self) -> bool:
        return self.path.exists()

    def workspaces(self) -> list[str]:
        if not self.path.parent.is_dir():
            return []
        return sorted(filter(None, (workspace_of(entry.name) for entry in self.path.parent.iterdir())))

    def version(self) -> tuple[str | None, str | None]:
        """The stat identities of the state file and of its journal (None: absent). A write replaces the file (a new
        inode), a record grows the journal and a delete removes them."""
        return file_stat(self.path), file_stat(self.journal_path)

    def _remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.backup_path.unlink(missing_ok=True)

    def _load(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def _keep_backup(self) -> None:
        """The previous version becomes the backup by a hard link: O(1) whatever the state's size, and atomic
        (the link is made under a temporary name, then renamed over the old backup)."""
        if not self.path.exists():
            return
        staging = self.backup_path.with_name(f".{self.backup_path.name}.{os.getpid()}.tmp")
        staging.unlink(missing_ok=True)
        try:
            os.link(self.path, staging)
        except OSError:  # a filesystem without hard links: copy instead
            atomic_write(self.backup_path, self.path.read_bytes())
            return
        os.replace(staging, self.backup_path)

    def _store(self, payload: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, payload)

    def _load_journal(self) -> list[bytes]:
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            raw = b""
        *records, torn = raw.split(b"\n")  # whatever follows the last newline never finished being appended
        self._journal_end = len(raw) - len(torn)
        return records

    def _append_journal(self, serial: int, record: bytes) -> None:
        created = not self.journal_path.exists()
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, self._journal_end)  # a record torn by a crash would swallow this one
            os.pwrite(fd, record + b"\n", self._journal_end)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.journal_path.parent)  # the new file's name is durable too
        self._journal_end += len(record) + 1

    def _claim(self, state) -> None:
        pass  # the lock is the only guard of the local file (see the class docstring)

    def _clear_journal(self) -> None:
        self.journal_path.unlink(missing_ok=True)
        self._journal_end = 0

    def _restore_remedy(self) -> str:
        return f"restore it from git or from {self.display}.backup"

    def _create_lock(self, lock_id: str, payload: bytes) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The guard serialises check-and-break, so a stale lock is never confused with a fresh one.
        with open(self.path.parent / f".{self.path.name}.lock-guard", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            holder = self.lock_info()
            if holder is not None and is_dead_local_holder(holder):
                self.lock_path.unlink(missing_ok=True)
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            return True

    def _read_lock(self) -> tuple[bytes | None, None]:
        try:
            return self.lock_path.read_bytes(), None
        except FileNotFoundError:
            return None, None

    def _delete_lock(self, token: None) -> None:
        self.lock_path.unlink(missing_ok=True)


def _display(path: Path, root: Path | None) -> str:
    if root is None:
        return str(path)
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
