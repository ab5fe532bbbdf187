"""The state commands: show/list/output read it; migrate moves it; force-unlock frees it; the outputs file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from runner.errors import StateError
from runner.fsutil import atomic_write
from runner.project import Project
from runner.state import State


def current_state(project: Project) -> State:
    """The recorded state (read without the lock), or an error when there is none yet."""
    backend = project.backend()
    state = project.read_state(backend)
    if not state.lineage:
        raise StateError(f"no state yet for workspace {project.workspace!r} ({backend.display})",
                         remedy="run `tuner apply` first")
    return state


def migrate_state(project: Project, to: str, lock_timeout: float = 0.0,
                  gcs: dict | None = None) -> tuple[str, str, State]:
    """Copy the workspace's state from the other backend into `to` (gcs or local), keeping its lineage."""
    from runner.state.migrate import migrate

    source, target = project.backend("local" if to == "gcs" else "gcs", gcs), project.backend(to, gcs)
    return source.display, target.display, migrate(source, target, lock_timeout)


def force_unlock(project: Project, lock_id: str, confirm: Callable[[dict], bool], force: bool = False) -> dict | None:
    """Remove the lock LOCK_ID after confirm(holder) says yes; None when declined (see
    StateBackend.force_unlock for the rules)."""
    return project.backend().force_unlock(lock_id, confirm, force)


def outputs_path(project: Project) -> Path:
    return project.root / "state" / f"{project.workspace}.outputs.json"


def write_outputs(project: Project, state: State) -> None:
    """state/<workspace>.outputs.json: the current model per name, for deploy steps that don't run tuner."""
    payload = {"workspace": project.workspace, "serial": state.serial, "models": state.outputs()}
    path = outputs_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())
