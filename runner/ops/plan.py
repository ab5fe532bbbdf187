"""plan: the desired models against state (and, with refresh, what providers hold), priced and budgeted.

Never imports the applier: `tuner plan` pays only for what it shows.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from runner import memo
from runner.collector import collector_paused
from runner.desired import Resolution
from runner.errors import PlanError
from runner.ops.blocks import planned_imports, record_moves
from runner.ops.refresh import listed, observe
from runner.ops.workspace import sibling_states
from runner.plan import CREATE, DELETE, REPLACE, RESTORE, Change, Observation, Plan
from runner.plan import plan as diff
from runner.planfile import write_plan
from runner.planned import PlannedModel
from runner.project import Project
from runner.providers import Providers
from runner.references import referencing
from runner.spec.loader import spec_files
from runner.state import State
from runner.state.base import StateBackend

OFFLINE_REMEDY = "pass --refresh=false for a plan from the recorded state alone (no provider is called)"


def plan(project: Project, targets: list[str] | None = None, refresh: bool = True,
         forced: list[str] | None = None, changes_only: bool = False) -> tuple[Plan, Resolution]:
    """The plan of the specs against state (and what providers hold, with REFRESH). CHANGES_ONLY: the caller shows
    only what would change (the text view), so a plan whose every input is that of the last plan that found nothing
    to do answers from the memo (runner/memo.py), without its no-op entries."""
    with collector_paused():  # nothing it builds is garbage before it is shown (runner/collector.py)
        request = _request(project, targets, refresh, forced)  # with tuner's identity, taken before any work
        recall = Recall(project, request) if changes_only else None
        if recall is not None and recall.settled():
            return recall.plan, Resolution([], list(recall.memo.warnings))
        resolution = project.resolve()
        backend = project.backend()
        version = memo.state_version(project.consulted(backend))  # probed before the read
        state = project.read_state(backend)
        check_targets(targets, resolution.models, state)
        check_forced(forced, resolution.models)
        observed = recall.observed if recall is not None else None  # what the recall listed: the same providers
        if observed is None and refresh:
            observed = observe(project, state, OFFLINE_REMEDY)
        the_plan = planned(project, resolution.models, state, observed, targets, forced)
        _remember(project, request, resolution, version, the_plan, observed)
        return the_plan, resolution


def _request(project: Project, targets: list[str] | None, refresh: bool, forced: list[str] | None) -> str:
    """What was asked and of which tuner (the stats of its files), as the memo keys it."""
    return json.dumps([memo.tuner_identity(), str(project.root), str(project.config_dir), project.workspace,
                       sorted(targets or ()), sorted(forced or ()), refresh, project.allow_small_dataset])


class Recall:
    """The memo of this workspace checked against what a plan would read now, cheapest first: the request (and tuner),
    the environment, the spec files, the datasets, the state, and last what the providers list (kept in
    `observed`, for the plan to use when only the listing differs)."""

    def __init__(self, project: Project, request: str):
        self.project, self.request = project, request
        self.memo = memo.recalled(memo.memo_path(project.root, project.workspace))
        self.observed: Observation | None = None
        self.plan: Plan | None = None

    def settled(self) -> bool:
        known = self.memo
        if known is None or not self._inputs_unchanged(known):
            return False
        if known.asked:
            providers = Providers(self.project.root, known.providers, self.project.env.environ)
            self.observed = listed(providers, known.asked, self.project.clock, OFFLINE_REMEDY)
        if memo.observed_digest(self.observed) != known.observed:
            return False
        self.plan = Plan((), known.lineage, known.serial, refreshed=bool(self.observed and self.observed.models))
        return True

    def _inputs_unchanged(self, known: memo.Memo) -> bool:
        project = self.project
        return (known.request == self.request
                and known.environ == memo.environ_digest(project.env.environ, known.salt)
                and set(known.specs) == {str(path) for path in spec_files(project.config_dir)}
                and memo.unchanged(known.specs) and memo.unchanged(known.datasets)
                and known.state == memo.state_version(project.consulted(self._backend(known.backend))))

    def _backend(self, settings: dict) -> StateBackend:
        """The backend the specs configured when the memo was made (they are unchanged when this is asked)."""
        return self.project.backend(next(iter(settings), "local"), settings.get("gcs"))


def _remember(project: Project, request: str, resolution: Resolution, version: str, the_plan: Plan,
              observed: Observation | None) -> None:
    """Record the memo when THE_PLAN found nothing to do (see runner/memo.py for what is remembered); else forget
    any: it no longer describes the project."""
    path = memo.memo_path(project.root, project.workspace)
    if the_plan.has_changes or the_plan.unmanaged or the_plan.not_refreshed:
        memo.forget(path)
        return
    salt = memo.new_salt()
    memo.remember(path, memo.Memo(
        memo.FORMAT, request, salt, memo.environ_digest(project.env.environ, salt),
        project.config.files, resolution.datasets, project.config.backend, version, project.config.providers,
        sorted(observed.models) if observed else [], memo.observed_digest(observed), the_plan.lineage,
        the_plan.serial, resolution.warnings))


def plan_destroy(project: Project, targets: list[str] | None = None) -> Plan:
    """`tuner plan --destroy`: what `tuner destroy` would do, by the same rules; reads no dataset."""
    return destroying(project, project.read_state(project.backend()), targets)


def destroying(project: Project, state: State, targets: list[str] | None) -> Plan:
    """The plan deleting every managed model (or the targets); one under prevent_destroy refuses it."""
    check_targets(targets, [], state)
    guarded = sorted(m.name for m in project.config.models
                     if m.prevent_destroy and (not targets or m.name in targets) and m.name in state.models)
    if guarded:
        raise PlanError(f"refusing to destroy {', '.join(guarded)}: lifecycle.prevent_destroy is set",
                        remedy="set prevent_destroy: false and apply that first, if destruction is intended")
    return shared(project, diff([], state, None, targets, project.settings((), state)))


def planned(project: Project, models: list[PlannedModel], state: State, observed: Observation | None,
            targets: list[str] | None, forced: list[str] | None = None) -> Plan:
    """The priced plan of MODELS against STATE, the budget enforced; FORCED (--replace) names get a new job;
    the specs' moves are made in STATE first (in memory: apply writes them)."""
    moved = record_moves(state, project.config.moves)
    settings = project.settings({m.provider for m in models}, state)
    the_plan = replace(diff(models, state, observed, targets, settings, forced or ()), moved=moved)
    return shared(project, priced(project, planned_imports(the_plan, project.config.imports, state, observed)))


def shared(project: Project, the_plan: Plan) -> Plan:
    """THE_PLAN saying which models it would delete another workspace of the backend still references (promoted
    there): apply keeps them. The other states are read only when the plan deletes something."""
    doomed = sorted({(change.provider, tuned_id) for change in the_plan.changes for tuned_id in deleted(change)})
    if not doomed:
        return the_plan
    siblings = sibling_states(project)
    kept = {tuned_id: tuple(users) for provider, tuned_id in doomed
            if (users := referencing(siblings, provider, tuned_id))}
    return replace(the_plan, kept=kept) if kept else the_plan


def deleted(change: Change) -> tuple[str, ...]:
    """The tuned model ids applying CHANGE deletes: its cleanup, and the current model when it is destroyed or
    replaced without being retained."""
    gone = change.action == DELETE or (change.action in (REPLACE, RESTORE) and not change.planned.keep_previous)
    return change.cleanup + ((change.prior_id,) if gone and change.prior_id else ())


def priced(project: Project, the_plan: Plan) -> Plan:
    """Attach the estimated training cost of every job the plan would pay for, and enforce the budget."""
    paid = [c for c in the_plan.changes if c.action in (CREATE, REPLACE) and not c.resume and c.planned]
    if not paid:
        return the_plan
    from runner.cost import load_pricing, overrides_from_settings, training_cost_for

    pricing = load_pricing(overrides_from_settings(project.config.providers))
    costs = {}
    for change in paid:
        estimate = training_cost_for(change.planned, pricing)
        costs[change.name] = {"usd": estimate.usd, "training_tokens": estimate.training_tokens,
                              "summary": estimate.summary()}
    priced_plan = replace(the_plan, costs=costs, pricing_as_of=pricing.as_of)
    _check_budget(priced_plan, project.config.budget.get("max_plan_cost_usd"))
    return priced_plan


def save_plan(project: Project, path: Path, the_plan: Plan, resolution: Resolution | None,
              targets: list[str] | None, forced: list[str] | None = None) -> None:
    """RESOLUTION None: a destroy plan (bound to the state alone; apply re-checks prevent_destroy)."""
    write_plan(path, the_plan, project.workspace, project.config_relative,
               resolution.models if resolution else [], targets or [], forced or [], destroy=resolution is None)


def check_targets(targets: list[str] | None, models: list[PlannedModel], state: State) -> None:
    known = {m.name for m in models} | set(state.models)
    unknown = sorted(set(targets or ()) - known)
    if unknown:
        raise PlanError(f"--target {', '.join(unknown)}: no such model in the configs or the state",
                        remedy=f"known models: {', '.join(sorted(known)) or 'none'}")


def check_forced(forced: list[str] | None, models: list[PlannedModel]) -> None:
    """--replace names a model the configs declare: only a declared model can be trained again."""
    declared = {m.name for m in models}
    unknown = sorted(set(forced or ()) - declared)
    if unknown:
        raise PlanError(f"--replace {', '.join(unknown)}: no such model in the configs",
                        remedy=f"known models: {', '.join(sorted(declared)) or 'none'}")


def _check_budget(the_plan: Plan, limit: float | None) -> None:
    if limit is None:
        return
    if the_plan.unpriced:
        raise PlanError(f"budget.max_plan_cost_usd is set, but the cost of {', '.join(the_plan.unpriced)} is unknown",
                        remedy="add the price under providers.<name>.pricing.<base_model> in a spec file")
    if the_plan.total_cost_usd > limit:
        biggest = sorted(the_plan.costs.items(), key=lambda item: -(item[1]["usd"] or 0))[:5]
        detail = ", ".join(f"{name} ~${cost['usd']:.2f}" for name, cost in biggest)
        raise PlanError(f"the plan would cost ~${the_plan.total_cost_usd:.2f} in training, over the budget of "
                        f"${limit:.2f} ({detail}); nothing was submitted",
                        remedy="raise budget.max_plan_cost_usd, or apply part of it with --target")
