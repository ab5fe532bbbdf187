"""The specs' `moved:` and `import:` blocks as plan sees them, and the state rules they share with `tuner state mv`
and `tuner import`: renaming an entry, and which tuned model a name may adopt. No provider call, no write: a
plan imports this, never the operations that write.
"""

from __future__ import annotations

from dataclasses import replace

from runner.errors import PlanError, StateError
from runner.plan import IMPORT, Change, Observation, Plan, managed_by
from runner.spec.loader import MODEL_NAME
from runner.spec.model import Import, Move
from runner.state import ModelRecord, State


def move_entry(state: State, old: str, new: str) -> None:
    """Rename OLD to NEW in STATE (in memory): the tuned models, pending job and history go with the name."""
    check_name(new)
    recorded_entry(state, old)
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


def planned_imports(the_plan: Plan, imports: list[Import], state: State, observed: Observation | None) -> Plan:
    """Each `import:` block whose name manages no model yet becomes an IMPORT change (no job, no cost) in place of
    the create; one already applied is nothing to do. Refused, naming the block's file:line: a name managing
    another model, an id another name manages, and (when refreshed) an id the provider lacks or that carries
    another state's owner tag."""
    changes = {change.name: change for change in the_plan.changes}
    for entry in imports:
        change = changes.get(entry.name)
        record = state.models.get(entry.name)
        current = record.current if record is not None else None
        if change is None or (current is not None and current.tuned_model_id == entry.tuned_model_id):
            continue  # outside --target, or imported already
        try:
            if current is not None:
                raise StateError(f"{entry.name} already manages {current.tuned_model_id}",
                                 remedy=f"remove this block, or `tuner state rm {entry.name}` first to adopt "
                                        f"{entry.tuned_model_id} instead")
            _check_importable(state, change.provider, entry.tuned_model_id, observed)
        except StateError as error:
            raise PlanError(f"{entry.source}: import: {error.message}", remedy=error.remedy) from None
        changes[entry.name] = Change(entry.name, IMPORT, change.provider, reason=f"adopts {entry.tuned_model_id}",
                                     cleanup=change.cleanup, planned=change.planned, import_id=entry.tuned_model_id)
    return replace(the_plan, changes=tuple(changes[change.name] for change in the_plan.changes))


def _check_importable(state: State, provider: str, tuned_model_id: str, observed: Observation | None) -> None:
    check_unmanaged(state, provider, tuned_model_id)
    if observed is None or not observed.asked(provider):
        return  # an offline plan: apply asks the provider
    seen = observed.find(provider, tuned_model_id)
    if seen is None:
        raise StateError(f"{tuned_model_id} was not found at provider {provider}",
                         remedy="check the id (`tuner plan` lists the models a provider holds that no state manages)")
    check_not_owned_elsewhere(state, seen)


def check_unmanaged(state: State, provider: str, tuned_model_id: str) -> None:
    """One remote model, one name: importing it twice would let one name delete it from under the other."""
    other = managed_by(state, provider, tuned_model_id)
    if other is not None:
        raise StateError(f"{tuned_model_id} is already managed by {other} in this state",
                         remedy=f"import it under {other} only; to move it, destroy or replace {other} first")


def check_not_owned_elsewhere(state: State, seen) -> None:
    if state.is_foreign(seen.owner):
        raise StateError(f"{seen.tuned_model_id} was created by another tuner state or workspace (owner {seen.owner}): "
                         f"importing it here would let two states delete each other's model",
                         remedy="manage it from the workspace that created it")


def check_name(name: str) -> None:
    if not MODEL_NAME.match(name):
        raise StateError(f"{name!r} is not a valid model name",
                         remedy="use lowercase letters, digits and dashes (at most 32, starting with a letter)")


def is_recorded(state: State, name: str) -> bool:
    record = state.models.get(name)
    return record is not None and not record.is_empty()


def recorded_entry(state: State, name: str) -> ModelRecord:
    """NAME's entry, or an error listing the recorded names."""
    if not is_recorded(state, name):
        names = ", ".join(sorted(n for n in state.models if is_recorded(state, n))) or "none"
        raise StateError(f"no model named {name!r} in state", remedy=f"recorded: {names}")
    return state.models[name]
