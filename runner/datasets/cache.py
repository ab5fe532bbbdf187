"""The hash cache: what scan() found for each valid dataset, so a warm plan re-reads nothing unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from runner import __version__
from runner.datasets.reader import CANONICAL_VERSION
from runner.datasets.ref import DatasetRef

# The code that computed what the cache holds: an entry from another version is ignored, never trusted
# (a changed canonical form would otherwise keep old hashes that no longer match what open_examples reads).
CODE_VERSION = f"canonical-{CANONICAL_VERSION}|tuner-{__version__}"


class Entry(msgspec.Struct, forbid_unknown_fields=True):
    """What scan() found for one dataset under one key mapping: exactly these fields, of these types (a bool is
    not an int, null is not a string), or the cache file is not trusted at all."""

    sha256: str
    examples: int
    max_input_chars: int
    max_output_chars: int
    text_bytes: int
    warnings: tuple[str, ...]


class _Stored(msgspec.Struct):
    version: str
    refs: dict[str, Entry]


class HashCache:
    """DatasetRefs of valid datasets keyed by (path, stat_key, key mapping), under the code version that
    computed them. It lives under .tuner/ (git-ignored); a corrupt or foreign file is only a slower plan: it is
    decoded and checked in one typed pass (10,000 entries in milliseconds), and any damage discards it whole."""

    def __init__(self, path: Path | None):
        self.path = path
        self._entries: dict[str, Entry] | None = None
        self._dirty = False

    def _load(self) -> dict[str, Entry]:
        if self._entries is None:
            self._entries = {}
            try:
                stored = msgspec.json.decode(self.path.read_bytes(), type=_Stored) if self.path else None
            except (OSError, msgspec.DecodeError):
                stored = None  # missing, unreadable, damaged, or not a cache this code wrote: scanned again
            if stored is not None and stored.version == CODE_VERSION:
                self._entries = stored.refs
        return self._entries

    @staticmethod
    def key(path: Path, file_stat: str, input_key: str, output_key: str) -> str:
        return f"{path}|{file_stat}|{input_key}|{output_key}"

    def get(self, path: Path, display: str, input_key: str, output_key: str, file_stat: str) -> DatasetRef | None:
        entry = self._load().get(self.key(path, file_stat, input_key, output_key))
        if entry is None:
            return None
        return DatasetRef(path, display, input_key, output_key, file_stat, entry.sha256, entry.examples,
                          entry.max_input_chars, entry.max_output_chars, entry.text_bytes, entry.warnings)

    def put(self, ref: DatasetRef) -> None:
        self._load()[self.key(ref.path, ref.stat, ref.input_key, ref.output_key)] = Entry(
            ref.sha256, ref.examples, ref.max_input_chars, ref.max_output_chars, ref.text_bytes, tuple(ref.warnings))
        self._dirty = True

    def save(self) -> None:
        if not (self.path and self._dirty):
            return
        from runner.fsutil import atomic_write

        live = {k: v for k, v in self._load().items() if os.path.exists(k.split("|", 1)[0])}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, msgspec.json.encode(_Stored(CODE_VERSION, live), order="sorted"))
        self._dirty = False
