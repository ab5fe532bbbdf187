"""The local provider's listing cache: what list_models derived from each artifact folder, keyed by the stat
identity of its meta.json and of its weights, so a warm listing of 10,000 models stats files instead of reading
and parsing every meta.json. It lives under .tuner/cache/ (git-ignored), beside the models directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from runner import __version__
from runner.fsutil import read_bytes, write_cache

# Bumped when what list_models derives from a folder changes: entries another version derived are not trusted.
LISTING_VERSION = 1


class Model(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """What list_models reports of a complete artifact, typed as its meta.json check types them (base_model and
    the owner tag are not checked there: they are reported as meta.json holds them)."""

    tuned_model_id: str
    display_name: str
    description: str
    base_model: Any
    hyperparameters: dict[str, Any]
    owner: Any


class Folder(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    meta: str  # runner.fsutil.stat_key of meta.json
    weights: str  # and of model.npz
    model: Model | None  # None: not a complete artifact (damaged meta.json, weights not the size it records)


class _Stored(msgspec.Struct, forbid_unknown_fields=True):
    salt: str
    folders: dict[str, Folder]


_DECODER = msgspec.json.Decoder(_Stored)


class ListingCache:
    """One listing's view of the cache. Untrusted like any file: decoded and type-checked in one pass, any damage
    discards it whole (a slower listing, never a different one), and an entry is only ever asked for by the name
    of a folder the listing found, with both stats identical. Saved (atomically) only when something changed,
    holding the folders this listing found and no others."""

    def __init__(self, path: Path, directory: Path):
        self.path = path
        self._salt = f"local-listing-{LISTING_VERSION}|tuner-{__version__}|{directory}"
        self._stored = self._load()
        self._kept: dict[str, Folder] = {}
        self._changed = False

    def _load(self) -> dict[str, Folder]:
        try:
            stored = _DECODER.decode(read_bytes(str(self.path)))
        except (OSError, msgspec.DecodeError):
            return {}  # missing, unreadable, damaged or of the wrong shape: every folder is read again
        return stored.folders if stored.salt == self._salt else {}

    def get(self, name: str, meta: str, weights: str) -> Folder | None:
        entry = self._stored.get(name)
        if entry is None or entry.meta != meta or entry.weights != weights:
            return None
        self._kept[name] = entry
        return entry

    def put(self, name: str, entry: Folder) -> None:
        self._kept[name] = entry
        self._changed = True

    def save(self) -> None:
        if not self._changed and len(self._kept) == len(self._stored):
            return  # every stored entry was used as it was: nothing to write
        write_cache(self.path, msgspec.json.encode(_Stored(self._salt, self._kept)))
