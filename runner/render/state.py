"""What state records, as text: the model list, one model's record, outputs, and what a refresh found."""

from __future__ import annotations

import json

from runner.render.terminal import table_text, terminal_safe
from runner.state.model import Instance, ModelRecord, State

_LIST_HEADERS = ("NAME", "PROVIDER", "TUNED MODEL", "STATUS")


def state_list(state: State, colour: bool = False) -> str:
    """One row per recorded tuned model: current, pending and superseded ones."""
    rows = []
    for name, record in sorted(state.models.items()):
        if record.current:
            promoted = record.current.promoted_from
            rows.append((name, record.current.provider, record.current.tuned_model_id,
                         record.current.status + (f" (promoted from {promoted['workspace']})" if promoted else "")))
        if record.pending:
            rows.append((name, record.pending.provider, record.pending.tuned_model_id,
                         f"{record.pending.status} (pending)"))
        rows += [(name, deposed.provider, deposed.tuned_model_id, "deposed (to delete)") for deposed in record.deposed]
        rows += [(name, kept.provider, kept.tuned_model_id, "retained (restorable)") for kept in record.retained]
    if not rows:
        return "No models in state.\n"
    return table_text(_LIST_HEADERS, rows, colour)


def state_summary(state: State, colour: bool = False) -> str:
    header = terminal_safe(f"workspace {state.workspace}, serial {state.serial}, lineage {state.lineage}\n\n")
    return header + state_list(state, colour)


def record_text(name: str, record: ModelRecord) -> str:
    """Everything recorded about one model: its current instance, the one still tuning, those to delete."""
    parts = [instance_text(name, record.current)] if record.current else []
    parts += [instance_text(name, record.pending, " (pending)")] if record.pending else []
    parts += [instance_text(name, deposed, " (deposed, to delete)") for deposed in record.deposed]
    parts += [instance_text(name, kept, " (retained, restorable)") for kept in record.retained]
    return "".join(parts)


def instance_text(name: str, instance: Instance, heading: str = "") -> str:
    lines = [f"# {name}{heading}"]
    for key, value in sorted(vars(instance).items()):
        if value in (None, {}, ""):
            continue
        if isinstance(value, dict):
            lines.append(f"  {key}:")
            lines += [f"    {k}: {_json(v)}" for k, v in sorted(value.items())]
        else:
            lines.append(f"  {key}: {_json(value)}")
    return terminal_safe("\n".join(lines) + "\n")


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def outputs_text(outputs: dict) -> str:
    """`name = tuned model id`, one a line, as terraform prints outputs."""
    return "".join(terminal_safe(f"{name} = {out['tuned_model_id']}") + "\n" for name, out in outputs.items())


def refresh_text(notes: list[str], unmanaged: list[tuple[str, str]]) -> str:
    lines = list(notes)
    lines += [f"{tuned_id} exists at {provider} but is not managed (`tuner import NAME {tuned_id}` adopts it)"
              for provider, tuned_id in unmanaged]
    if not notes:
        lines.append("State matches the providers.")
    return terminal_safe("\n".join(lines) + "\n")


def output_text(output: dict) -> str:
    """One model's output: its tuned model id alone, for `$(tuner output NAME)`."""
    return terminal_safe(output["tuned_model_id"]) + "\n"
