"""promote: this workspace serves the model another workspace of the same backend serves, without training, when this
workspace's spec describes exactly that model (the same fingerprint, `${workspace}` expanded here).

Its own command, as `tuner import` is: it takes this workspace's lock, bumps the serial and keeps the backup, and
calls no provider but to see that the model exists and whose it is; the next plan here shows no change. The model
keeps its creator's owner tag and this state records where it came from (Instance.promoted_from): the one way a
state references a model it did not create, which runner.references counts before anything deletes it.

Concurrency: the source workspace's state is read without its lock (a read sees one whole version). A destroy
there that read this workspace's state before this promote recorded its reference can still delete the model; the
next refreshed plan here then shows it gone and trains it anew, as for any model deleted outside tuner.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from runner.errors import StateError, TunerError
from runner.identity import Owner
from runner.ops.state import write_outputs
from runner.ops.workspace import sibling_states
from runner.plan import FieldChange, diff, managed_by
from runner.planned import PlannedModel
from runner.project import Project
from runner.references import deleting_owner
from runner.state import Instance, State
from runner.state.model import ACTIVE


@dataclass(frozen=True)
class Promotion:
    name: str
    instance: Instance  # as now recorded here
    superseded: Instance | None = None  # the model it replaced here (retained, or deleted by the next apply)
    already: bool = False  # this workspace served it already: nothing recorded


@dataclass(frozen=True)
class Refusal:
    name: str
    reason: str
    fields: tuple[FieldChange, ...] = ()  # where this workspace's spec and the source's model differ


class PromotionRefused(StateError):
    """At least one name cannot be promoted; nothing was recorded (all or nothing, as a script expects)."""

    def __init__(self, source: str, target: str, refusals: list[Refusal]):
        super().__init__(f"{len(refusals)} model(s) cannot be promoted from workspace {source} to {target}; "
                         f"nothing was recorded",
                         remedy=f"make the specs of {target} describe the models {source} serves (or apply {source} "
                                f"first), then promote again; `tuner apply` here trains its own instead")
        self.refusals = refusals


class _Refused(Exception):
    def __init__(self, reason: str, fields: tuple[FieldChange, ...] = ()):
        super().__init__(reason)
        self.reason, self.fields = reason, fields


def promote(project: Project, names: list[str], source: str, every: bool = False,
            lock_timeout: float = 0.0) -> list[Promotion]:
    """Record, in this workspace, the current model of each NAME (or, `every`, of every name the source serves that
    the specs declare) in workspace SOURCE; refused as a whole (PromotionRefused) if any one cannot be."""
    _check_source(project, source)
    desired = {model.name: model for model in project.resolve().models}
    with project.locked_state("promote", lock_timeout) as (backend, state):
        siblings = sibling_states(project)
        origin = siblings[source]
        if every:
            names = sorted(n for n, r in origin.models.items() if r.current is not None and n in desired)
        if not names:
            raise TunerError(f"workspace {source} serves no model the specs declare", remedy=f"apply {source} first")
        promotions, refusals = [], []
        for name in names:
            try:
                promotions.append(_promotion(project, state, siblings, source, name, desired.get(name)))
            except _Refused as refused:
                refusals.append(Refusal(name, refused.reason, refused.fields))
        if refusals:
            raise PromotionRefused(source, project.workspace, refusals)
        if all(p.already for p in promotions):
            return promotions
        promotions = [p if p.already else _record(state, p, desired[p.name], project.clock.now()) for p in promotions]
        for provider in {p.instance.provider for p in promotions}:  # recorded as `tuner import` records them
            settings = project.applied_settings(state, provider)
            if settings:
                state.providers[provider] = settings
        backend.write(state)
        write_outputs(project, state)
        return promotions


def _check_source(project: Project, source: str) -> None:
    """SOURCE is another workspace with a state in this backend (promote never crosses backends)."""
    if source == project.workspace:
        raise TunerError(f"cannot promote workspace {source} into itself",
                         remedy=f"name the workspace to promote into: `tuner -w prod promote NAME --from {source}`")
    if source not in project.backend().workspaces():
        raise TunerError(f"workspace {source!r} has no state in {replace(project, workspace=source).backend().display}",
                         remedy="promote from a workspace of the same backend (`tuner workspace list`)")


def _promotion(project: Project, state: State, siblings: dict[str, State], source: str, name: str,
               model: PlannedModel | None) -> Promotion:
    """What promoting NAME would record here, checked by every rule; _Refused says why not. Nothing is changed."""
    origin = siblings[source]
    if model is None:
        raise _Refused(f"not declared in the configs of workspace {project.workspace}")
    record = origin.models.get(name)
    offered = record.current if record is not None else None
    if offered is None or offered.status != ACTIVE:
        status = f"its current model {offered.tuned_model_id} is {offered.status}" if offered else "no current model"
        raise _Refused(f"workspace {source} has {status}: nothing to promote")
    if offered.fingerprint != model.fingerprint:
        fields = tuple(f for f in diff(offered.attributes(), model.attributes, model.requires_replace)
                       if f.forces_replacement)
        raise _Refused(f"the spec here describes another model than {source}'s {offered.tuned_model_id}:", fields)
    _check_here(project, state, name, model, offered)
    _check_settings(project, state, origin, source, offered.provider)
    owner = deleting_owner(offered, Owner(origin.lineage, source), siblings)
    if owner is None:
        raise _Refused(f"{offered.tuned_model_id} was promoted into {source} from a workspace whose state this "
                       f"backend no longer holds")
    seen = project.providers[offered.provider].get_model(offered.tuned_model_id)
    if seen is None or seen.state != ACTIVE:
        raise _Refused(f"{offered.tuned_model_id} is {'not found' if seen is None else seen.state} at provider "
                       f"{offered.provider}")
    if seen.owner != owner.tag:
        raise _Refused(f"{offered.tuned_model_id} carries owner tag {seen.owner}, not that of workspace "
                       f"{owner.workspace} ({owner.tag}): another state's model is never adopted")
    promoted_from = {"workspace": source, "lineage": origin.lineage, "serial": origin.serial,
                     "owner": {"workspace": owner.workspace, "lineage": owner.lineage}}
    instance = replace(offered, display_name=seen.held("display_name", offered.display_name),
                       description=seen.held("description", offered.description),
                       prevent_destroy=model.prevent_destroy, promoted_from=promoted_from)
    current = state.models[name].current if name in state.models else None
    already = current is not None and current.tuned_model_id == offered.tuned_model_id
    return Promotion(name, instance, current, already)


def _check_here(project: Project, state: State, name: str, model: PlannedModel, offered: Instance) -> None:
    """What this workspace's state allows: no job of its own under way, the model not another name's, and no
    protected model deposed for it."""
    record = state.models.get(name)
    if record is not None and record.pending is not None:
        raise _Refused(f"a job for it is pending here ({record.pending.tuned_model_id}): apply (or destroy) first")
    other = managed_by(state, offered.provider, offered.tuned_model_id, besides=name)
    if other is not None:
        raise _Refused(f"{offered.tuned_model_id} is already managed here by {other}")
    current = record.current if record is not None else None
    if current is not None and current.prevent_destroy and not model.keep_previous and \
            current.tuned_model_id != offered.tuned_model_id:
        raise _Refused(f"lifecycle.prevent_destroy is set and keep_previous is 0: promoting would delete "
                       f"{current.tuned_model_id}")


def _check_settings(project: Project, state: State, origin: State, source: str, provider: str) -> None:
    """Both workspaces use the provider where the model is (one endpoint, one cloud project), as both last applied."""
    project.applied_settings(state, provider)  # changed here since the last apply: a plan must show them first
    try:
        project.applied_settings(origin, provider)
    except TunerError:
        raise _Refused(f"provider {provider} is configured here with other settings than {source} applied with "
                       f"(endpoint, project...): its model is not where this workspace's calls go") from None


def _record(state: State, promotion: Promotion, model: PlannedModel, now: str) -> Promotion:
    """PROMOTION's model becomes NAME's current one here; the one it replaces is retained (lifecycle.keep_previous,
    the oldest beyond it deposed: the next apply deletes them) or deposed."""
    record = state.record(promotion.name)
    instance = replace(promotion.instance, updated_at=now)
    retain = model.keep_previous > 0
    if record.find_retained(instance.tuned_model_id) is not None:  # promoted here before, then replaced
        record.retained = [r for r in record.retained if r.tuned_model_id != instance.tuned_model_id]
    if record.current is not None:
        record.supersede(now, retain)
    record.current = instance
    expired = record.retained[:max(0, len(record.retained) - model.keep_previous)]
    record.release(r.tuned_model_id for r in expired)
    return replace(promotion, instance=instance)
