"""Refresh: bring recorded state in line with what providers really hold (Terraform's refresh).

A model gone at its provider leaves state (so the next plan re-creates it); in-place fields changed out
of band are recorded as the provider reports them (so the next plan updates them back).
"""

from __future__ import annotations

from collections.abc import Callable

from runner.plan import Observation
from runner.state.model import ACTIVE, State


def refresh_state(state: State, observed: Observation, now: Callable[[], str]) -> list[str]:
    """Mutates state; returns one human note per difference found."""
    notes = []
    for name, record in sorted(state.models.items()):
        current = record.current
        if current is None:
            continue
        if not observed.asked(current.provider):
            continue
        seen = observed.find(current.provider, current.tuned_model_id)
        if seen is None:
            notes.append(f"{name}: {current.tuned_model_id} no longer exists at {current.provider}; "
                         f"removed from state (the next plan re-creates it)")
            record.current = None
            if record.is_empty():
                del state.models[name]
            continue
        for field in ("display_name", "description"):
            held = seen.held(field, getattr(current, field))
            if getattr(current, field) != held:
                notes.append(f"{name}: {field} changed outside tuner: {getattr(current, field)!r} -> {held!r}")
                setattr(current, field, held)
                current.updated_at = now()
        if seen.state != current.status and current.status == ACTIVE:
            notes.append(f"{name}: the provider reports {seen.state}, state recorded {current.status}")
            current.status = seen.state
    return notes
