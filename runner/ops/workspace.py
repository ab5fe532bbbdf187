"""The workspace commands: list, new, select, delete. The selected workspace is the project's
.tuner/workspace file (Terraform's .terraform/environment); -w and TUNER_WORKSPACE override it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import replace

from runner.errors import StateError, TunerError
from runner.fsutil import atomic_write
from runner.identity import Owner
from runner.ops.state import outputs_path
from runner.plan import instances_of
from runner.project import DEFAULT_WORKSPACE, Project, check_workspace_name, selected_workspace_path
from runner.references import created_by
from runner.state import Instance, State
from runner.state.base import StateBackend


def workspaces(project: Project) -> list[str]:
    """Every workspace with a state in the configured backend, and default (which always exists)."""
    return sorted(set(project.backend().workspaces()) | {DEFAULT_WORKSPACE})


def sibling_states(project: Project) -> dict[str, State]:
    """The states of the configured backend's other workspaces (workspace -> state), read without their locks
    (each read is of one whole version: writes are atomic): who else references a model (runner.references)."""
    return SiblingStates(project)()


class SiblingStates:
    """sibling_states for a command that asks again and again (apply, before each delete), at the cost of what
    changed: each call lists the workspaces (one created or deleted meanwhile is seen) and probes each other one's
    StateBackend.version() (a stat, or one listing), and reads (downloads, decodes) only a state whose version
    changed since this reader last read it. The probe comes first: a write landing between probe and read leaves
    the old version beside the newer state, so the next call reads it again: a state is kept only while its
    version is unchanged.
    The states returned are shared between calls: read them, never change them."""

    def __init__(self, project: Project) -> None:
        self._project = project
        self._lister = project.backend()
        self._known: dict[str, tuple[StateBackend, Hashable, State]] = {}  # workspace -> (backend, version, state)
        self._lock = threading.Lock()  # apply deletes from several threads

    def __call__(self) -> dict[str, State]:
        with self._lock:
            names = [name for name in self._lister.workspaces() if name != self._project.workspace]
            self._known = {name: self._current(name) for name in names}
            return {name: state for name, (_, _, state) in self._known.items()}

    def _current(self, name: str) -> tuple[StateBackend, Hashable, State]:
        backend, version, state = self._known.get(name) or (_in(self._project, name).backend(), None, None)
        probed = backend.version()
        if state is not None and probed == version:
            return backend, version, state
        return backend, probed, backend.read()


def new_workspace(project: Project, name: str, lock_timeout: float = 0.0) -> None:
    """Record an empty state for NAME (so it is listed, and selectable by others) and select it."""
    check_workspace_name(name)
    if name in workspaces(project):
        raise TunerError(f"workspace {name!r} already exists", remedy=f"select it: `tuner workspace select {name}`")
    backend = _in(project, name).backend()
    with backend.locked("workspace new", lock_timeout) as state:
        backend.write(state)
    select_workspace(project, name)


def select_workspace(project: Project, name: str) -> None:
    check_workspace_name(name)
    if name not in workspaces(project):
        raise TunerError(f"workspace {name!r} does not exist",
                         remedy=f"create it with `tuner workspace new {name}` (existing: "
                                f"{', '.join(workspaces(project))})")
    path = selected_workspace_path(project.root)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, f"{name}\n".encode())


def delete_workspace(project: Project, name: str, force: bool, on_left_behind: Callable[[list], None],
                     lock_timeout: float = 0.0) -> None:
    """Forget NAME's state. Refused for default, for the workspace in use, and, unless `force`, while it still
    manages models; with `force`, on_left_behind([(name, instance)]) is told first which models stay at their
    providers (never deleted: `tuner -w NAME destroy` does that)."""
    check_workspace_name(name)
    if name == DEFAULT_WORKSPACE:
        raise TunerError("the default workspace cannot be deleted", remedy="destroy its models with `tuner destroy`")
    if name == project.workspace:
        raise TunerError(f"workspace {name!r} is the one in use", remedy="select another first: "
                         "`tuner workspace select default` (or pass -w default)")
    if name not in workspaces(project):
        raise TunerError(f"workspace {name!r} does not exist", remedy="list them: `tuner workspace list`")
    doomed = _in(project, name)
    backend = doomed.backend()
    with backend.locked("workspace delete", lock_timeout) as state:
        managed = [(model, instance) for model, record in sorted(state.models.items())
                   for instance in instances_of(record)]
        if managed and not force:
            raise StateError(f"workspace {name!r} still manages {len(managed)} model(s): {_named(managed)}",
                             remedy=f"destroy them first with `tuner -w {name} destroy`, or pass --force to forget "
                                    f"them (they stay with their providers)")
        if managed:
            on_left_behind(managed)
        served = created_by(sibling_states(doomed), Owner(state.lineage, name))
        if served and not force:
            raise StateError(f"workspace {name!r} created model(s) other workspaces still serve: "
                             f"{', '.join(f'{ws}: {model} ({i.tuned_model_id})' for ws, model, i in served)}; "
                             f"without its state, tuner could never delete them",
                             remedy="destroy them there (or promote others) first, or pass --force to leave them at "
                                    "their providers once no workspace serves them")
        backend.delete()
    outputs_path(doomed).unlink(missing_ok=True)
    selected = selected_workspace_path(project.root)
    if selected.exists() and selected.read_text(encoding="utf-8").strip() == name:
        selected.unlink()


def _named(managed: list[tuple[str, Instance]]) -> str:
    return ", ".join(f"{model} ({instance.tuned_model_id})" for model, instance in managed)


def _in(project: Project, name: str) -> Project:
    """The same project (configs already read) in workspace NAME."""
    return replace(project, workspace=name)
