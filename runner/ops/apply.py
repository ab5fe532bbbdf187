"""apply and destroy: lock the state, make (or load) the plan under the lock, confirm, execute.

Both share one executor; the applier is imported only once a confirmed plan has changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import TunerError
from runner.ops.import_ import adopt
from runner.ops.plan import OFFLINE_REMEDY, check_forced, check_targets, destroying, planned, priced
from runner.ops.refresh import observe
from runner.ops.state import write_outputs
from runner.ops.workspace import SiblingStates
from runner.plan import IMPORT, Change, Plan
from runner.planfile import check_fresh, conforming, plan_from_dict, read_plan
from runner.planned import PlannedModel
from runner.project import Project
from runner.state import State
from runner.state.base import StateBackend

if TYPE_CHECKING:
    from runner.apply import ApplyResult, Reporter


def apply(project: Project, plan_file: Path | None, targets: list[str] | None, confirm: Callable[[Plan], bool],
          reporter: Reporter, parallelism: int = 10, lock_timeout: float = 0.0,
          refresh: bool = True, forced: list[str] | None = None) -> tuple[Plan, ApplyResult | None]:
    """Lock, (re)plan or load the saved plan, confirm, execute. Returns (plan, None) if declined."""
    document = read_plan(plan_file) if plan_file else None
    if document is not None and document.get("destroy"):
        return _execute(project, "destroy", lambda state: _saved(project, document, plan_file, state, []),
                        confirm, reporter, parallelism, lock_timeout)
    resolution = project.resolve()

    def make_plan(state: State) -> Plan:
        if document is None:
            check_targets(targets, resolution.models, state)
            check_forced(forced, resolution.models)
            observed = observe(project, state, OFFLINE_REMEDY) if refresh else None
            return planned(project, resolution.models, state, observed, targets, forced)
        return _saved(project, document, plan_file, state, resolution.models)

    return _execute(project, "apply", make_plan, confirm, reporter, parallelism, lock_timeout)


def _saved(project: Project, document: dict, plan_file: Path, state: State, models: list[PlannedModel]) -> Plan:
    """The saved plan, once shown fresh and equal to what a plan made now by its own rules would do."""
    check_fresh(document, plan_file, project.workspace, project.config_relative, state.lineage, state.serial, models)
    saved = plan_from_dict(document["plan"], state.lineage, state.serial)
    # Whatever the file says, the rules of plan hold: re-plan now (prevent_destroy, targets, budget)...
    if document.get("destroy"):
        fresh = destroying(project, state, document["targets"])
    else:
        check_targets(document["targets"], models, state)
        forced_then = document.get("replace", [])
        check_forced(forced_then, models)
        fresh = planned(project, models, state, None, document["targets"], forced_then)
    saved = conforming(document, saved, fresh, _protected(models, state), plan_file, project.root)
    return priced(project, saved)  # ...and the budget holds for what will really run


def destroy(project: Project, targets: list[str] | None, confirm: Callable[[Plan], bool], reporter: Reporter,
            parallelism: int = 10, lock_timeout: float = 0.0) -> tuple[Plan, ApplyResult | None]:
    """Delete every managed tuned model (or the targets), honouring prevent_destroy."""
    return _execute(project, "destroy", lambda state: destroying(project, state, targets), confirm, reporter,
                    parallelism, lock_timeout)


def _execute(project: Project, operation: str, make_plan: Callable[[State], Plan], confirm: Callable[[Plan], bool],
             reporter: Reporter, parallelism: int, lock_timeout: float) -> tuple[Plan, ApplyResult | None]:
    with project.locked_state(operation, lock_timeout) as (backend, state):
        the_plan = make_plan(state)
        if not the_plan.has_changes or not confirm(the_plan):
            return the_plan, None
        if the_plan.moved:  # made in `state` by make_plan: recorded before any job, so a failure keeps them
            backend.write(state)
        from runner.apply import Applier  # only commands that apply pay for importing the applier

        applier = Applier(state, backend.write, project.providers, reporter, clock=project.clock,
                          parallelism=parallelism, siblings=SiblingStates(project),
                          record=backend.write_record)
        imports = [c for c in the_plan.changes if c.action == IMPORT]
        try:
            result = applier.run(replace(the_plan, changes=tuple(c for c in the_plan.changes if c not in imports)))
            if not result.interrupted:  # after the applier: provider settings the plan showed are recorded
                _adopt_imports(project, backend, state, imports, result)
            return the_plan, result
        finally:
            # Even after a failure or Ctrl-C: the state file (what git keeps) and the outputs say what is current.
            backend.compact(state)
            write_outputs(project, state)


def _adopt_imports(project: Project, backend: StateBackend, state: State, imports: list[Change],
                   result: ApplyResult) -> None:
    """Adopt each IMPORT change's model as `tuner import` does; a refusal fails that name, not the others."""
    for change in imports:
        try:
            adopt(project, state, change.planned, change.import_id)
        except TunerError as error:
            result.failures[change.name] = f"{error.message} ({error.remedy})" if error.remedy else error.message
            continue
        backend.write(state)


def _protected(models: list[PlannedModel], state: State) -> frozenset[str]:
    """Names under prevent_destroy, as plan judges them: the spec's word, or state's for undeclared models."""
    declared = {m.name: m.prevent_destroy for m in models}
    recorded = {name: bool(r.current and r.current.prevent_destroy) for name, r in state.models.items()}
    return frozenset(name for name, protected in (recorded | declared).items() if protected)
