"""Tuned models shared by the workspaces of one backend (`tuner promote`): a model is deleted only when the last
workspace referencing it lets it go, and only under the identity of the state that created it.

A workspace references a model that its state records as current, pending or retained (lifecycle.keep_previous):
a deposed one is on its way out. Plain rules over states already read: no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping

from runner.identity import Owner
from runner.state.model import Instance, ModelRecord, State


def referenced(record: ModelRecord) -> list[Instance]:
    """The instances of RECORD its workspace still needs: current, pending and retained."""
    return [i for i in (record.current, record.pending, *record.retained) if i is not None]


def referencing(states: Mapping[str, State], provider: str, tuned_model_id: str) -> list[str]:
    """The workspaces (of STATES: workspace -> state) whose state references that model, sorted."""
    return sorted(workspace for workspace, state in states.items() if any(
        i.provider == provider and i.tuned_model_id == tuned_model_id
        for record in state.models.values() for i in referenced(record)))


def created_by(states: Mapping[str, State], creator: Owner) -> list[tuple[str, str, Instance]]:
    """(workspace, name, instance) of each model a state of STATES references that CREATOR created (promoted there
    from it): once CREATOR's state is gone, nothing may delete them (deleting_owner)."""
    return [(workspace, name, instance) for workspace, state in sorted(states.items())
            for name, record in sorted(state.models.items()) for instance in referenced(record)
            if promoted_creator(instance) == creator]


def promoted_creator(instance: Instance) -> Owner | None:
    """The state that created INSTANCE when it was promoted here from another workspace; None when it was not."""
    promoted = instance.promoted_from
    return None if promoted is None else Owner(promoted["owner"]["lineage"], promoted["owner"]["workspace"])


def deleting_owner(instance: Instance, own: Owner, states: Mapping[str, State]) -> Owner | None:
    """The identity INSTANCE may be deleted under (what providers check against the tag it carries): its creator's,
    when that is this state or a state this backend still holds under the same lineage. None otherwise: a
    promoted_from naming a workspace or lineage this backend does not have (edited state, a deleted workspace) never
    lets this state delete a model of someone else's."""
    owner = promoted_creator(instance) or own
    if owner == own:
        return own
    creator = states.get(owner.workspace)
    return owner if creator is not None and creator.lineage == owner.lineage else None
