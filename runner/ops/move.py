"""State surgery without a provider call: `tuner state mv` renames an entry, `tuner state rm` forgets one.

Both run under the state lock and write through the backend (serial bumped, previous version kept as backup).
"""

from __future__ import annotations

from runner.errors import PlanError, StateError
from runner.ops.state import write_outputs
from runner.plan import instances_of
from runner.project import Project
from runner.spec.loader import MODEL_NAME
from runner.spec.model import Move
from runner.state import State


def move_entry(state: State, old: str, new: str) -> None:
    """Rename OLD to NEW in STATE (in memory): the tuned models, pending job and history go with the name."""
    check_name(new)
    _recorded(state, old)
    if is_recorded(state, new):
        raise StateError(f"cannot move {old} to {new}: {new} is already in state",
                         remedy=f"move or remove {new} first (`tuner state rm {new}` forgets it)")
    state.models[new] = state.models.pop(old)


def record_moves(state: State, moves: list[Move]) -> tuple[tuple[str, str], ...]:
    """Rename in STATE (in memory) every model a `moved:` entry names that is still recorded under its old name;
    returns the (old, new) pairs done. A move already recorded (old gone) is nothing to do."""
    done = []
    for move in moves:
        if not is_recorded(state, move.old):
            continue
        if is_recorded(state, move.new):
            raise PlanError(f"{move.source}: moved: cannot move {move.old} to {move.new}: both are in state",
                            remedy=f"remove this move, or forget one of them first (`tuner state rm {move.new}`)")
        move_entry(state, move.old, move.new)
        done.append((move.old, move.new))
    return tuple(done)


def state_mv(project: Project, old: str, new: str, lock_timeout: float = 0.0) -> State:
    """`tuner state mv OLD NEW`: the remote model is untouched, only the name that manages it changes."""
    with project.locked_state("state mv", lock_timeout) as (backend, state):
        move_entry(state, old, new)
        backend.write(state)
        write_outputs(project, state)
        return state


def state_rm(project: Project, name: str, lock_timeout: float = 0.0) -> list[str]:
    """`tuner state rm NAME`: forget NAME without deleting anything remote; returns the tuned model ids left
    behind (current, pending and superseded ones), which nothing will delete any more."""
    with project.locked_state("state rm", lock_timeout) as (backend, state):
        record = _recorded(state, name)
        left = [instance.tuned_model_id for instance in instances_of(record) if not instance.refused]
        del state.models[name]
        backend.write(state)
        write_outputs(project, state)
        return left


def check_name(name: str) -> None:
    if not MODEL_NAME.match(name):
        raise StateError(f"{name!r} is not a valid model name",
                         remedy="use lowercase letters, digits and dashes (at most 32, starting with a letter)")


def is_recorded(state: State, name: str) -> bool:
    record = state.models.get(name)
    return record is not None and not record.is_empty()


def _recorded(state: State, name: str):
    if not is_recorded(state, name):
        recorded = ", ".join(sorted(n for n in state.models if is_recorded(state, n))) or "none"
        raise StateError(f"no model named {name!r} in state", remedy=f"recorded: {recorded}")
    return state.models[name]
