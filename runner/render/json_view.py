"""What scripts read: one JSON document per command, keys sorted, on stdout."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from runner.errors import diagnostic
from runner.planfile import plan_to_dict  # the saved plan's shape: a plan is serialised one way

if TYPE_CHECKING:
    from runner.desired import Resolution
    from runner.plan import Plan
    from runner.state.model import State


def _document(value: object, ascii_only: bool = True) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=ascii_only) + "\n"


def plan_json(plan: Plan) -> str:
    return _document(plan_to_dict(plan), ascii_only=False)


def state_list_json(state: State) -> str:
    return _document({name: {"tuned_model_id": r.current.tuned_model_id, "provider": r.current.provider,
                             "status": r.current.status} for name, r in state.models.items() if r.current})


def validation_json(resolution: Resolution) -> str:
    """Every model found, and every warning as a diagnostic."""
    return _document({"valid": True, "warnings": resolution.warnings,
                      "diagnostics": [diagnostic(w, "warning") for w in resolution.warnings],
                      "models": [{"name": m.name, "provider": m.provider, "fingerprint": m.fingerprint,
                                  "dataset": m.dataset_record()} for m in resolution.models]})


def invalid_json(problems: list) -> str:
    return _document({"valid": False, "diagnostics": [diagnostic(p) for p in problems]})


def evaluation_json(current: dict, previous: dict | None, previous_id: str) -> str:
    return _document({"current": current, "against": previous, "against_id": previous_id or None})


def outputs_json(outputs: dict) -> str:
    return _document(outputs)
