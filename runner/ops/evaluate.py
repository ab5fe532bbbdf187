"""eval: score the current model of a name on its eval set, record the metrics, compare."""

from __future__ import annotations

from runner.errors import PlanError, StateError
from runner.project import Project
from runner.providers.base import ask


def evaluate(project: Project, name: str, against: str | None,
             lock_timeout: float = 0.0) -> tuple[dict, dict | None, str]:
    """Score the current model of NAME on its eval set now and record it; compare with `against`:
    "previous" (the metrics recorded for the model it replaced) or a tuned model id (scored now)."""
    from runner.evaluate import evaluate_model

    model = project.declared(name)
    if model.eval_set is None:
        raise PlanError(f"{name} has no eval set", remedy="set eval.dataset (or dataset.validation) in its spec")
    with project.locked_state("eval", lock_timeout) as (backend, state):
        record = state.models.get(name)
        if record is None or record.current is None:
            raise StateError(f"{name} has no current model to evaluate", remedy="run `tuner apply` first")
        project.applied_settings(state, record.current.provider)
        provider = project.providers[record.current.provider]

        def score(tuned_id: str) -> dict:
            return evaluate_model(model, lambda text: ask(provider, tuned_id, text, model.system_prompt))

        current = score(record.current.tuned_model_id)
        record.current.metrics = current
        backend.write(state)
    if against is None:
        return current, None, ""
    if against == "previous":
        if not record.history:
            raise StateError(f"{name} has no previous model recorded")
        previous = record.history[-1]
        return current, previous.get("metrics") or {}, previous["tuned_model_id"]
    return current, score(against), against
