"""The plan memo: what the last plan that found nothing to do read, so that a plan reading the same says so without
building every model again (make and DVC answer "up to date" from recorded stats the same way).

A plan is a function of what it reads (runner/plan.py is pure; runner/ops/plan.py gathers its inputs): the spec
files, the datasets they name, the state, what the providers list, the environment (provider settings and credentials
come from it), the request (workspace, config directory, --target, refresh) and tuner itself. The memo holds an
identity of each, taken before it was read:
- spec files and datasets: the stat the spec and hash caches already answer by (runner.fsutil.stat_key);
- the state: its backend's version (runner.state.base: for the local file, the stats of the state and its journal;
  for GCS, one listing of generations; beside GCS, the local file the read compares with it too);
- the providers: a digest of what they listed (they are asked again every time: a model deleted at a provider is
  a change);
- the environment: a salted digest; tuner: the stats of its own files.
A plan answers from the memo only when every identity is the same; a plan without changes records it afresh.

What is remembered is narrow on purpose: no change, no unmanaged model, no provider left unrefreshed; and only a view
showing changes alone (the text plan) is answered, since no-op entries are not kept.

The memo lives in the git-ignored .tuner/cache/. Damaged or written by another version, it is ignored. Crafted or
committed, it still cannot make a plan say "No changes": the stats it must match hold inodes and change times no
other checkout shares, and the paths it names are only ever stat'ed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import msgspec
import orjson

import runner
from runner.fsutil import file_stat, write_cache
from runner.plan import Observation
from runner.state.base import StateBackend

FORMAT = "tuner-plan-memo-3"
# Variables a shell sets per command or per directory: never what a plan reads (the project root is in the request).
VOLATILE = frozenset({"_", "OLDPWD", "PWD", "SHLVL"})


class Memo(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    request: str  # what was asked, with tuner_identity()
    salt: str  # of the environment's digest
    environ: str
    specs: dict[str, str | None]  # spec file -> stat_key
    datasets: dict[str, str]  # dataset file -> stat_key
    backend: dict  # the specs' backend settings: a recall probes the same backend
    state: str  # state_version
    providers: dict[str, dict]  # the specs' provider settings: the providers a recall asks are configured alike
    asked: list[str]  # the providers listed
    observed: str  # observed_digest of their listings
    lineage: str
    serial: int
    warnings: list[str]


def memo_path(root: Path, workspace: str) -> Path:
    return root / ".tuner" / "cache" / "memo" / f"{workspace}.json"


def recalled(path: Path) -> Memo | None:
    """The memo at PATH, or None when there is none or it is not one this version wrote, whole and well-typed."""
    try:
        memo = msgspec.json.decode(path.read_bytes(), type=Memo)
    except (OSError, msgspec.DecodeError):
        return None
    return memo if memo.format == FORMAT else None


def remember(path: Path, memo: Memo) -> None:
    """Write MEMO; a project where .tuner/ cannot be written only plans without one."""
    write_cache(path, msgspec.json.encode(memo))


def forget(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def tuner_identity() -> str:
    """The stats of every file of the running tuner (code, schemas, pricing): any edit or upgrade changes it."""
    package = Path(runner.__file__).parent
    stats = []
    for folder, subfolders, files in os.walk(package):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        stats.extend(f"{folder}/{name}|{file_stat(os.path.join(folder, name))}" for name in sorted(files))
    return _digest(runner.__version__, *stats)


def environ_digest(environ: Mapping[str, str], salt: str) -> str:
    """Of every variable but the volatile ones, salted: the memo never holds a guessable digest of a secret."""
    return _digest(salt, *(f"{key}={value}" for key, value in sorted(environ.items()) if key not in VOLATILE))


def state_version(backends: list[StateBackend]) -> str:
    """The versions of the backends a state read consults (each what a read would return, identified without
    reading it: a stat, a listing), as the memo keeps them."""
    return json.dumps([backend.version() for backend in backends])


def new_salt() -> str:
    return secrets.token_hex(16)


def observed_digest(observed: Observation | None) -> str:
    """Of every model each refreshed provider listed, as listed ("" when nothing was refreshed)."""
    if observed is None:
        return ""
    listing = orjson.dumps([[name, models] for name, models in sorted(observed.models.items())],
                           option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(listing).hexdigest()


def unchanged(recorded: Mapping[str, str | None]) -> bool:
    """Every file still has the stat recorded (one never stat'ed, None, never matches)."""
    return all(stat is not None and file_stat(path) == stat for path, stat in recorded.items())


def _digest(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
    return digest.hexdigest()
