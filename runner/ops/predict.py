"""predict: ask the current tuned model of a name, with the settings last applied."""

from __future__ import annotations

from runner.errors import StateError
from runner.ops.state import current_state
from runner.project import Project
from runner.providers.base import ask


def predict(project: Project, name: str, text: str) -> tuple[str, str]:
    """(tuned model id, its answer to TEXT)."""
    state = current_state(project)
    record = state.models.get(name)
    if record is None or record.current is None:
        raise StateError(f"no tuned model named {name!r} in state", remedy="run `tuner apply` first")
    current = record.current
    project.applied_settings(state, current.provider)
    provider = project.providers[current.provider]
    return current.tuned_model_id, ask(provider, current.tuned_model_id, text, current.dataset.get("system_prompt", ""))
