"""Move a workspace's state between backends (local file <-> GCS) without forking its history.

The copy keeps the lineage, so the target is recognisably the same state, and is written through the
target's own write(), so its serial moves past the source's and its backup/precondition rules apply.
"""

from __future__ import annotations

import copy

from runner.errors import StateError
from runner.state.base import StateBackend
from runner.state.model import State


def migrate(source: StateBackend, target: StateBackend, lock_timeout: float = 0.0) -> State:
    """Copy source's state into target, holding both locks, and return the state as written to target.
    The source is then marked as moved (moved_to), so a command still configured for it refuses to use it.

    Allowed when the target has no state (or another lineage's state recording no models, or a copy left
    behind by an earlier migration, so nothing is lost), or the same lineage at a lower serial; anything
    else would overwrite history the source lacks.
    """
    if source.display == target.display:
        raise StateError(f"cannot migrate {source.display} onto itself",
                         remedy="name a different backend, bucket/prefix or workspace as the target")
    with source.locked("migrate", lock_timeout) as original, target.locked("migrate", lock_timeout) as current:
        if not original.lineage:  # only a state that was never written has no lineage
            raise StateError(f"nothing to migrate: {source.display} holds no state",
                             remedy="check the source backend and workspace name")
        _check_target(original, source.display, current, target.display)
        if original.moved_to:
            raise StateError(f"nothing to migrate: {source.display} was already migrated to {original.moved_to}",
                             remedy=f"migrate from {original.moved_to} instead")
        migrated = State(lineage=original.lineage, serial=max(original.serial, current.serial),
                         workspace=target.workspace, tool_version=original.tool_version,
                         models=copy.deepcopy(original.models), providers=copy.deepcopy(original.providers))
        target.write(migrated)
        original.moved_to = target.display
        source.write(original)
        return migrated


def _check_target(original: State, source: str, current: State, target: str) -> None:
    if not current.lineage or current.moved_to:
        return  # never written, or a copy left behind by an earlier migration: its history lives elsewhere
    if current.lineage != original.lineage:
        if not current.models:
            return  # another history, but one recording nothing: overwriting it loses nothing
        raise StateError(
            f"cannot migrate {source} to {target}: the target holds a different state "
            f"(lineage {current.lineage}, {len(current.models)} model(s)) that would be overwritten",
            remedy="choose another workspace, bucket or prefix for the target, or destroy that state first")
    if current.serial >= original.serial:
        raise StateError(
            f"cannot migrate {source} (serial {original.serial}) to {target}: the target is already at serial "
            f"{current.serial}, so it is as new or newer (already migrated?)",
            remedy="nothing to do; to go back the other way, migrate with source and target swapped")

