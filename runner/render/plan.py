"""Plans as human text, in Terraform's spirit: `+ name (provider) will be created`, `field = old -> new`.

Every piece from specs, state or a provider passes terminal_safe before our own colours are added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from runner.plan import (
    CREATE,
    DELETE,
    IMPORT,
    NOOP,
    REPLACE,
    RESTORE,
    UPDATE,
    Action,
    Change,
    FieldChange,
    Plan,
    SettingsChange,
)
from runner.render.terminal import style, terminal_safe


@dataclass(frozen=True)
class ActionLook:
    """How one planned action is shown: its symbol (the Action's own), colour and verb in text, its badge in
    markdown."""

    symbol: str
    colour: str | None
    verb: str
    badge: str


_LOOKS = {
    CREATE: ("green", "will be created", "🟢 create"),
    REPLACE: ("yellow", "must be replaced", "🟠 replace"),
    UPDATE: ("yellow", "will be updated in place", "🟡 update"),
    DELETE: ("red", "will be destroyed", "🔴 destroy"),
    NOOP: (None, "", "⚪ cleanup"),
    IMPORT: ("cyan", "will be imported", "🔵 import"),
    RESTORE: ("cyan", "will be restored to", "🔵 restore"),
}


def action_look(action: str) -> ActionLook:
    """The one place an action becomes symbols and words (text and markdown both ask here)."""
    return ActionLook(Action(action).symbol, *_LOOKS[action])


def plan_text(plan: Plan, colour: bool = False) -> str:
    """Every piece from specs, state or a provider passes terminal_safe before our own colours are added."""
    lines = []
    changed = [c for c in plan.changes if c.is_change]
    for provider, tuned_id in plan.unmanaged:
        tuned_id, provider = terminal_safe(tuned_id), terminal_safe(provider)
        lines.append(f"  ? {tuned_id} exists at {provider} but is not managed by tuner "
                     f"(`tuner import NAME {tuned_id}` adopts it)")
    lines += [f"  ! {terminal_safe(provider)} was not refreshed: its settings are not those recorded, and tuner "
              f"sends nothing where they point until a plan showing them is applied" for provider in plan.not_refreshed]
    if not changed and not plan.settings and not plan.moved:
        lines.append("No changes. Your tuned models match the configuration.")
        return "\n".join(lines) + "\n"
    lines += ["tuner will perform the following actions:", ""]
    if plan.moved:
        lines += moved_lines(plan) + [""]
    for settings in plan.settings:
        lines += _settings_lines(settings, colour)
        lines.append("")
    for change in changed:
        lines += _change_lines(change, colour, plan.costs.get(change.name))
        lines += [terminal_safe(f"      # {tuned_id} is kept: still referenced by workspace {', '.join(users)}")
                  for tuned_id, users in plan.kept.items() if tuned_id in (change.prior_id, *change.cleanup)]
        lines.append("")
    lines.append(summary_line(plan))
    lines += state_only_lines(plan)
    if plan.settings:
        lines.append(f"Provider settings: {len(plan.settings)} to change "
                     f"({', '.join(terminal_safe(s.provider) for s in plan.settings)}); review where credentials "
                     f"will be sent.")
    if plan.costs:
        lines.append(terminal_safe(_cost_line(plan)))
    return "\n".join(lines) + "\n"


def state_only_lines(plan: Plan) -> list[str]:
    """Moves and imports change only what state records: said apart from the summary of jobs."""
    adopted = sum(change.action == IMPORT for change in plan.changes)
    if not (plan.moved or adopted):
        return []
    return [f"State only: {len(plan.moved)} to move, {adopted} to import (no job, $0)."]


def moved_lines(plan: Plan) -> list[str]:
    """The specs' `moved:` entries state will record: a rename, never a new job."""
    return [terminal_safe(f"  # {old} has moved to {new} (recorded in state; nothing is retrained)")
            for old, new in plan.moved]


def _settings_lines(change: SettingsChange, colour: bool) -> list[str]:
    title, look = f"provider {terminal_safe(change.provider)}", action_look(UPDATE)
    head = f"  {style(look.symbol, look.colour, colour)} {style(title, None, colour, bold=True)} " \
           f"settings will change: credentials and data are sent where they point"
    return [head] + field_lines(change.fields, UPDATE, colour)


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    restored = f", {s['restore']} to restore ($0)" if s["restore"] else ""
    return (f"Plan: {s['create']} to add, {s['replace']} to replace, {s['update']} to change, "
            f"{s['delete']} to destroy{restored}.")


def _change_lines(change: Change, colour: bool, cost: dict | None = None) -> list[str]:
    action = change.action
    look = action_look(action)
    symbol = style(look.symbol, look.colour, colour)
    title = terminal_safe(f"{change.name} ({change.provider})")
    if action == NOOP:
        head = f"  {symbol} {title}: superseded models to delete"
    else:
        head = f"  {symbol} {style(title, None, colour, bold=True)} {look.verb}"
        if change.prior_id and action in (REPLACE, UPDATE, DELETE):
            head += f" [{terminal_safe(change.prior_id)}]"
        elif action == Action.RESTORE:
            head += f" {terminal_safe(change.restore_id)} (retained; no training, $0)"
    lines = [head]
    if change.metrics.get("accuracy") is not None:
        evaluated = terminal_safe(str(change.metrics.get("eval_set", {}).get("examples", "?")))
        lines.append(f"      # current model: accuracy {change.metrics['accuracy']:.2%} on {evaluated} eval examples")
    if change.resume:
        lines.append(f"      # resuming: {terminal_safe(change.reason)}; nothing new is paid for")
    elif change.reason:
        lines.append(f"      # {terminal_safe(change.reason)}")
    if cost:
        lines.append(f"      # training cost: {terminal_safe(cost['summary'])}")
    lines += field_lines(change.fields, action, colour)
    for tuned_id in change.cleanup:
        lines.append(f"      - superseded {terminal_safe(tuned_id)} will be deleted")
    if action == Action.RESTORE and change.prior_id:
        lines.append(f"      # {terminal_safe(change.prior_id)} stays retained (lifecycle.keep_previous)"
                     if change.planned is None or change.planned.keep_previous else
                     f"      - {terminal_safe(change.prior_id)} will be deleted (lifecycle.keep_previous: 0)")
    return lines


def field_lines(fields: tuple[FieldChange, ...], action: str, colour: bool) -> list[str]:
    width = max((len(terminal_safe(f.path)) for f in fields), default=0)
    lines = []
    for f in fields:
        path = terminal_safe(f.path).ljust(width)
        old, new = terminal_safe(value_text(f.old)), terminal_safe(value_text(f.new))
        if action == CREATE:
            lines.append(f"      + {path} = {new}")
        elif action == DELETE:
            lines.append(f"      - {path} = {old}")
        else:
            replaces = f.forces_replacement and action != Action.RESTORE  # a restore replaces nothing: it switches
            mark = style("  # forces replacement", "red", colour) if replaces else ""
            lines.append(f"      ~ {path} = {old} -> {new}{mark}")
    return lines


def _cost_line(plan: Plan) -> str:
    unknown = f" + unknown for {', '.join(plan.unpriced)}" if plan.unpriced else ""
    return f"Estimated training cost: ~${plan.total_cost_usd:.2f}{unknown} (pricing as of {plan.pricing_as_of})."


def value_text(value) -> str:
    """A planned value as shown: JSON, `(none)`, or a sha256 digest shortened to its first 12 digits."""
    if value is None:
        return "(none)"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return f"sha256:{value[:12]}"
    return json.dumps(value, ensure_ascii=False)
