"""Plans as human text, in Terraform's spirit: `+ name (provider) will be created`, `field = old -> new`.

Every piece from specs, state or a provider passes terminal_safe before our own colours are added.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
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
from runner.render.terminal import style, table_text, terminal_safe


@dataclass(frozen=True)
class ActionLook:
    """How one planned action is shown: its symbol (the Action's own), colour and verb in text, its badge in
    markdown."""

    symbol: str
    colour: str | None
    verb: str
    badge: str

    @property
    def word(self) -> str:
        """The action in one word (create, replace...), as the summary table's columns name it."""
        return self.badge.split(" ", 1)[1]


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


# More changes than this (about a screenful) and the plan opens with its counts per provider and action: the
# whole picture before thousands of lines of detail.
SUMMARY_AFTER = 40


def plan_text(plan: Plan, colour: bool = False, compact: bool = False) -> str:
    """The whole plan as one string (for markdown and tests); the CLI prints plan_chunks instead."""
    return "".join(plan_chunks(plan, colour, compact))


def plan_chunks(plan: Plan, colour: bool = False, compact: bool = False, lines: int = 2000) -> Iterator[str]:
    """The plan's text in pieces of LINES lines: a plan of 10,000 creates is 150,000 lines, and holding them all
    as one list and one joined string added ~25 MB to a cold plan's peak memory."""
    batch: list[str] = []
    for line in _plan_lines(plan, colour, compact):
        batch.append(line)
        if len(batch) >= lines:
            yield "\n".join(batch) + "\n"
            batch = []
    if batch:
        yield "\n".join(batch) + "\n"


def _plan_lines(plan: Plan, colour: bool, compact: bool) -> Iterator[str]:
    """Every piece from specs, state or a provider passes terminal_safe before our own colours are added.
    COMPACT: one line per model, without its fields."""
    changed = [c for c in plan.changes if c.is_change]
    for provider, tuned_id in plan.unmanaged:
        tuned_id, provider = terminal_safe(tuned_id), terminal_safe(provider)
        yield (f"  ? {tuned_id} exists at {provider} but is not managed by tuner "
               f"(`tuner import NAME {tuned_id}` adopts it)")
    yield from (f"  ! {terminal_safe(provider)} was not refreshed: its settings are not those recorded, and tuner "
                f"sends nothing where they point until a plan showing them is applied"
                for provider in plan.not_refreshed)
    if not changed and not plan.settings and not plan.moved:
        yield "No changes. Your tuned models match the configuration."
        return
    yield from ["tuner will perform the following actions:", ""]
    if plan.moved:
        yield from [*moved_lines(plan), ""]
    for settings in plan.settings:
        yield from _settings_lines(settings, colour)
        yield ""
    if len(changed) > SUMMARY_AFTER:
        hint = "" if compact else " (`tuner plan --compact` lists one line each)"
        yield from [f"  {len(changed)} changes by provider{hint}:", _counts_table(changed, colour), ""]
    for change in changed:
        if compact:
            yield _compact_line(change, colour)
            yield from _kept_lines(plan, change)
        else:
            yield from _change_lines(change, colour, plan.costs.get(change.name))
            yield from _kept_lines(plan, change)
            yield ""
    if compact:
        yield ""
    yield summary_line(plan)
    yield from state_only_lines(plan)
    if plan.settings:
        yield (f"Provider settings: {len(plan.settings)} to change "
               f"({', '.join(terminal_safe(s.provider) for s in plan.settings)}); review where credentials "
               f"will be sent.")
    if plan.costs:
        yield terminal_safe(_cost_line(plan))


def _kept_lines(plan: Plan, change: Change) -> list[str]:
    """The models this change would delete that another workspace still references: kept."""
    return [terminal_safe(f"      # {tuned_id} is kept: still referenced by workspace {', '.join(users)}")
            for tuned_id, users in plan.kept.items() if tuned_id in (change.prior_id, *change.cleanup)]


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


def action_counts(changed: list[Change]) -> tuple[list[Action], list[list]]:
    """The actions present, and one row per provider (then the total) of how many changes take each."""
    present = {change.action for change in changed}
    actions = [action for action in Action if action in present]
    counts = {(change.provider, change.action): 0 for change in changed}
    for change in changed:
        counts[change.provider, change.action] += 1
    providers = sorted({provider for provider, _ in counts})
    rows = [[provider, *(counts.get((provider, action), 0) for action in actions)] for provider in providers]
    rows.append(["total", *(sum(row[column] for row in rows) for column in range(1, len(actions) + 1))])
    return actions, rows


def _counts_table(changed: list[Change], colour: bool) -> str:
    actions, rows = action_counts(changed)
    headers = ["provider", *(f"{action_look(action).symbol} {action_look(action).word}".strip() for action in actions)]
    table = table_text(headers, rows, colour, right_aligned=range(1, len(actions) + 1))
    return "\n".join(f"    {line}" for line in table.splitlines())


def _change_head(change: Change, colour: bool) -> str:
    """`  symbol name (provider) verb [current id]`: a change's first line, and all of it in --compact."""
    action = change.action
    look = action_look(action)
    symbol = style(look.symbol, look.colour, colour)
    title = terminal_safe(f"{change.name} ({change.provider})")
    if action == NOOP:
        return f"  {symbol} {title}: superseded models to delete"
    head = f"  {symbol} {style(title, None, colour, bold=True)} {look.verb}"
    if change.prior_id and action in (REPLACE, UPDATE, DELETE):
        head += f" [{terminal_safe(change.prior_id)}]"
    elif action == Action.RESTORE:
        head += f" {terminal_safe(change.restore_id)} (retained; no training, $0)"
    return head


def _compact_line(change: Change, colour: bool) -> str:
    """One line: the head, the paths that change (not a create's or a destroy's: all of them) and the reason."""
    line = _change_head(change, colour)
    if change.fields and change.action not in (CREATE, DELETE):
        line += ": " + ", ".join(terminal_safe(f.path) for f in change.fields)
    return line + (f"  # {terminal_safe(change.reason)}" if change.reason else "")


def _change_lines(change: Change, colour: bool, cost: dict | None = None) -> list[str]:
    action = change.action
    lines = [_change_head(change, colour)]
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
    paths = [terminal_safe(f.path) for f in fields]
    width = max(map(len, paths), default=0)
    lines = []
    for f, path in zip(fields, paths):
        path = path.ljust(width)
        if action == CREATE:
            lines.append(f"      + {path} = {terminal_safe(value_text(f.new))}")
        elif action == DELETE:
            lines.append(f"      - {path} = {terminal_safe(value_text(f.old))}")
        else:
            old, new = terminal_safe(value_text(f.old)), terminal_safe(value_text(f.new))
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
    if isinstance(value, str):
        if len(value) == 64 and not value.strip("0123456789abcdef"):
            return f"sha256:{value[:12]}"
        if value.isprintable() and '"' not in value and "\\" not in value:
            return f'"{value}"'  # json.dumps's text for it, without its cost: a plan shows thousands of values
    elif type(value) is bool:
        return "true" if value else "false"
    elif type(value) is int or (type(value) is float and math.isfinite(value)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)
