"""State surgery without a provider call: `tuner state mv` renames an entry, `tuner state rm` forgets one.

Both run under the state lock and write through the backend (serial bumped, previous version kept as backup).
"""

from __future__ import annotations

from runner.ops.blocks import move_entry, recorded_entry
from runner.ops.state import write_outputs
from runner.plan import instances_of
from runner.project import Project
from runner.state import State


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
        record = recorded_entry(state, name)
        left = [instance.tuned_model_id for instance in instances_of(record) if not instance.refused]
        del state.models[name]
        backend.write(state)
        write_outputs(project, state)
        return left


