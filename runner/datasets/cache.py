"""The hash cache: what scan() found for each valid dataset, so a warm plan re-reads nothing unchanged."""

from __future__ import annotations

import json
import os
from pathlib import Path

from runner import __version__
from runner.datasets.reader import CANONICAL_VERSION
from runner.datasets.ref import DatasetRef

# The code that computed what the cache holds: an entry from another version is ignored, never trusted
# (a changed canonical form would otherwise keep old hashes that no longer match what open_examples reads).
CODE_VERSION = f"canonical-{CANONICAL_VERSION}|tuner-{__version__}"


class HashCache:
    """DatasetRefs of valid datasets keyed by (path, stat_key, key mapping), under the code version that
    computed them. It lives under .tuner/ (git-ignored); a corrupt or foreign file is only a slower plan."""

    def __init__(self, path: Path | None):
        self.path = path
        self._entries: dict[str, dict] | None = None
        self._dirty = False

    def _load(self) -> dict[str, dict]:
        if self._entries is None:
            self._entries = {}
            if self.path and self.path.exists():
                try:
                    stored = json.loads(self.path.read_text(encoding="utf-8"))
                    if stored.get("version") == CODE_VERSION and isinstance(stored.get("refs"), dict):
                        self._entries = stored["refs"]
                except (OSError, ValueError, AttributeError):
                    pass  # unreadable, or not a cache this code wrote: every dataset is scanned again
        return self._entries

    @staticmethod
    def key(path: Path, file_stat: str, input_key: str, output_key: str) -> str:
        return f"{path}|{file_stat}|{input_key}|{output_key}"

    def get(self, path: Path, display: str, input_key: str, output_key: str, file_stat: str) -> DatasetRef | None:
        entry = self._load().get(self.key(path, file_stat, input_key, output_key))
        if not _well_formed(entry):
            return None  # damaged: scanned again
        return DatasetRef(path, display, input_key, output_key, file_stat,
                          **{**entry, "warnings": tuple(entry["warnings"])})

    def put(self, ref: DatasetRef) -> None:
        self._load()[self.key(ref.path, ref.stat, ref.input_key, ref.output_key)] = {
            "sha256": ref.sha256, "examples": ref.examples, "max_input_chars": ref.max_input_chars,
            "max_output_chars": ref.max_output_chars, "text_bytes": ref.text_bytes, "warnings": list(ref.warnings)}
        self._dirty = True

    def save(self) -> None:
        if not (self.path and self._dirty):
            return
        from runner.fsutil import atomic_write

        live = {k: v for k, v in self._load().items() if os.path.exists(k.split("|", 1)[0])}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"version": CODE_VERSION, "refs": live}, sort_keys=True).encode())
        self._dirty = False


_ENTRY_TYPES = {"sha256": str, "examples": int, "max_input_chars": int, "max_output_chars": int, "text_bytes": int,
                "warnings": list}


def _well_formed(entry) -> bool:
    """Exactly the fields put() writes, of its types: anything else is not trusted as a dataset's facts."""
    return (isinstance(entry, dict) and entry.keys() == _ENTRY_TYPES.keys()
            and all(type(entry[name]) is kind for name, kind in _ENTRY_TYPES.items())
            and all(type(warning) is str for warning in entry["warnings"]))
