"""Plans and state as human text (Terraform's spirit), JSON, and progress lines.

Colour only on a terminal and never when NO_COLOR is set.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time

import click

from runner.plan import CREATE, DELETE, NOOP, REPLACE, UPDATE, Change, FieldChange, Plan, SettingsChange
from runner.planfile import plan_to_dict
from runner.state.model import Instance, State

SYMBOLS = {CREATE: "+", REPLACE: "-/+", UPDATE: "~", DELETE: "-", NOOP: " "}
COLOURS = {CREATE: "green", REPLACE: "yellow", UPDATE: "yellow", DELETE: "red", NOOP: None}
VERBS = {CREATE: "will be created", REPLACE: "must be replaced", UPDATE: "will be updated in place",
         DELETE: "will be destroyed"}


# Terminal control: escape sequences (CSI, OSC and other string commands to their terminator, two-byte
# escapes), then any C0/C1 control but newline and tab, and the bidi overrides that reorder what is shown.
_TERMINAL_SEQUENCE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
                                r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d-\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
                                r"|\x1b[ -/]*[0-~]?")
_TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def terminal_safe(text: str) -> str:
    """Text from specs, state or a provider, made safe to print: it cannot move the cursor, recolour, retitle,
    hide a link (OSC 8) or reorder what the terminal shows. Every text output passes here on its way out."""
    return _TERMINAL_CONTROL.sub("", _TERMINAL_SEQUENCE.sub("", text))


def md_text(text: object) -> str:
    """User text as inert markdown: every ASCII punctuation escaped (CommonMark's literal), on one line."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(str(text).splitlines()))


def md_code(text: object) -> str:
    """User text as an inert code span: fenced by more backticks than any run inside it, on one line, pipes
    escaped (a GFM table cell ends at a bare pipe, even inside code)."""
    text = " ".join(str(text).splitlines()).replace("|", "\\|")
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text[:1] in ("`", " ") or text[-1:] in ("`", " ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def use_colour(stream=None) -> bool:
    stream = stream or sys.stdout
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def _style(text: str, colour: str | None, colour_on: bool, bold: bool = False) -> str:
    return click.style(text, fg=colour, bold=bold) if colour_on and (colour or bold) else text


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
    if not changed and not plan.settings:
        lines.append("No changes. Your tuned models match the configuration.")
        return "\n".join(lines) + "\n"
    lines += ["tuner will perform the following actions:", ""]
    for settings in plan.settings:
        lines += _settings_lines(settings, colour)
        lines.append("")
    for change in changed:
        lines += _change_lines(change, colour, plan.costs.get(change.name))
        lines.append("")
    lines.append(summary_line(plan))
    if plan.settings:
        lines.append(f"Provider settings: {len(plan.settings)} to change "
                     f"({', '.join(terminal_safe(s.provider) for s in plan.settings)}); review where credentials "
                     f"will be sent.")
    if _cost_line(plan):
        lines.append(terminal_safe(_cost_line(plan)))
    return "\n".join(lines) + "\n"


def _settings_lines(change: SettingsChange, colour: bool) -> list[str]:
    title = f"provider {terminal_safe(change.provider)}"
    head = f"  {_style('~', 'yellow', colour)} {_style(title, None, colour, bold=True)} " \
           f"settings will change: credentials and data are sent where they point"
    return [head] + _field_lines(change.fields, UPDATE, colour)


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    return (f"Plan: {s['create']} to add, {s['replace']} to replace, {s['update']} to change, "
            f"{s['delete']} to destroy.")


def _change_lines(change: Change, colour: bool, cost: dict | None = None) -> list[str]:
    action = change.action
    symbol = _style(SYMBOLS[action], COLOURS[action], colour)
    title = terminal_safe(f"{change.name} ({change.provider})")
    if action == NOOP:
        head = f"  {symbol} {title}: superseded models to delete"
    else:
        head = f"  {symbol} {_style(title, None, colour, bold=True)} {VERBS[action]}"
        if change.prior_id and action in (REPLACE, UPDATE, DELETE):
            head += f" [{terminal_safe(change.prior_id)}]"
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
    lines += _field_lines(change.fields, action, colour)
    for tuned_id in change.cleanup:
        lines.append(f"      - superseded {terminal_safe(tuned_id)} will be deleted")
    return lines


def _field_lines(fields: tuple[FieldChange, ...], action: str, colour: bool) -> list[str]:
    width = max((len(terminal_safe(f.path)) for f in fields), default=0)
    lines = []
    for f in fields:
        path = terminal_safe(f.path).ljust(width)
        old, new = terminal_safe(_value(f.old)), terminal_safe(_value(f.new))
        if action == CREATE:
            lines.append(f"      + {path} = {new}")
        elif action == DELETE:
            lines.append(f"      - {path} = {old}")
        else:
            mark = _style("  # forces replacement", "red", colour) if f.forces_replacement else ""
            lines.append(f"      ~ {path} = {old} -> {new}{mark}")
    return lines


def _cost_line(plan: Plan) -> str | None:
    if not plan.costs:
        return None
    unknown = f" + unknown for {', '.join(plan.unpriced)}" if plan.unpriced else ""
    return f"Estimated training cost: ~${plan.total_cost_usd:.2f}{unknown} (pricing as of {plan.pricing_as_of})."


def _value(value) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return f"sha256:{value[:12]}"
    return json.dumps(value, ensure_ascii=False)


MARKDOWN_ICONS = {CREATE: "🟢 create", REPLACE: "🟠 replace", UPDATE: "🟡 update", DELETE: "🔴 destroy",
                  NOOP: "⚪ cleanup"}


def plan_markdown(plan: Plan) -> str:
    """A pull-request comment: a table of changes with their field diffs, the full plan collapsed. Everything
    that comes from specs, state or a provider is escaped: nothing in it can become a link, markup or HTML."""
    changed = [c for c in plan.changes if c.is_change]
    if not changed and not plan.settings:
        return "### tuner plan: no changes\n\nYour tuned models match the configuration.\n"
    lines = [f"### tuner plan: {summary_line(plan).removeprefix('Plan: ')}", ""]
    if plan.costs:
        unknown = f" + unknown for {', '.join(map(md_code, plan.unpriced))}" if plan.unpriced else ""
        lines += [f"**Estimated training cost: ~${plan.total_cost_usd:.2f}{unknown} (pricing as of "
                  f"{md_text(plan.pricing_as_of)}).**", ""]
    if plan.settings:
        lines += ["**Provider settings change: review where credentials and data will be sent.**", "",
                  "| Provider | Setting | Recorded | New |", "|---|---|---|---|"]
        lines += [f"| {md_text(s.provider)} | {md_code(f.path)} | {md_code(_value(f.old))} | {md_code(_value(f.new))} |"
                  for s in plan.settings for f in s.fields]
        lines.append("")
    if changed:
        lines += ["| Model | Provider | Action | Est. training cost | Changes |", "|---|---|---|---|---|"]
    for change in changed:
        cost = plan.costs.get(change.name, {}).get("usd")
        cost_text = f"${cost:.2f}" if cost is not None else ("unknown" if change.name in plan.costs else "")
        lines.append(f"| {md_code(change.name)} | {md_text(change.provider)} | {MARKDOWN_ICONS[change.action]} | "
                     f"{cost_text} | {_markdown_fields(change)} |")
    full = plan_text(plan).rstrip()
    fence = "`" * max(3, max(map(len, re.findall("`+", full)), default=0) + 1)
    lines += ["", "<details><summary>Full plan</summary>", "", f"{fence}diff", full, fence, "", "</details>", ""]
    return terminal_safe("\n".join(lines))


def _markdown_fields(change: Change) -> str:
    notes = []
    if change.action not in (CREATE, DELETE):
        notes = [f"{md_code(f.path)}: {md_code(_value(f.old))} → {md_code(_value(f.new))}" +
                 (" **(forces replacement)**" if f.forces_replacement else "") for f in change.fields]
    notes += [md_code(change.reason)] if change.reason else []
    notes += [f"deletes superseded {md_code(tuned_id)}" for tuned_id in change.cleanup]
    return "<br>".join(notes)


def plan_json(plan: Plan) -> str:
    return json.dumps(plan_to_dict(plan), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def state_list(state: State) -> str:
    rows = []
    for name, record in sorted(state.models.items()):
        current = record.current
        if current:
            rows.append((name, current.provider, current.tuned_model_id, current.status))
        if record.pending:
            rows.append((name, record.pending.provider, record.pending.tuned_model_id,
                         f"{record.pending.status} (pending)"))
        for deposed in record.deposed:
            rows.append((name, deposed.provider, deposed.tuned_model_id, "deposed (to delete)"))
    if not rows:
        return "No models in state.\n"
    widths = [max(len(r[i]) for r in rows + [("NAME", "PROVIDER", "TUNED MODEL", "STATUS")]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(("NAME", "PROVIDER", "TUNED MODEL", "STATUS"), widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    return terminal_safe("\n".join(line.rstrip() for line in lines) + "\n")


def state_list_json(state: State) -> str:
    current = {name: {"tuned_model_id": r.current.tuned_model_id, "provider": r.current.provider,
                      "status": r.current.status} for name, r in state.models.items() if r.current}
    return json.dumps(current, indent=2, sort_keys=True) + "\n"


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


def metrics_table(current: dict, previous: dict | None, previous_id: str = "") -> str:
    """Current model's metrics beside another model's, one metric per row."""
    rows = [("accuracy", current.get("accuracy"), (previous or {}).get("accuracy")),
            ("consistency", current.get("consistency"), (previous or {}).get("consistency"))]
    labels = sorted(set(current.get("per_label", {})) | set((previous or {}).get("per_label", {})))
    for label in labels:
        rows.append((f"f1[{label}]", current.get("per_label", {}).get(label, {}).get("f1"),
                     (previous or {}).get("per_label", {}).get(label, {}).get("f1")))
    rows.append(("eval examples", current.get("eval_set", {}).get("examples"),
                 (previous or {}).get("eval_set", {}).get("examples")))
    header = ("metric", "current", f"against {previous_id}" if previous is not None else "")
    table = [header] + [(name, _number(a), _number(b) if previous is not None else "") for name, a, b in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    return terminal_safe("\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                                   for row in table) + "\n")


def _number(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def state_summary(state: State) -> str:
    header = terminal_safe(f"workspace {state.workspace}, serial {state.serial}, lineage {state.lineage}\n\n")
    return header + state_list(state)


class LiveProgress:
    """On a terminal: one live table of every job (state, elapsed, detail), redrawn in place."""

    FINAL = frozenset({"active", "failed", "error", "rejected", "deleted", "updated"})

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self._rows: dict[str, tuple[str, str, float, float | None]] = {}  # name -> status, detail, start, end
        self._lock = threading.Lock()
        self._live = None

    def event(self, name: str, status: str, detail: str = "") -> None:
        now = time.monotonic()
        with self._lock:
            _, _, started, _ = self._rows.get(name, ("", "", now, None))
            self._rows[name] = (status, detail, started, now if status in self.FINAL else None)
            if self._live is None:
                from rich.console import Console
                from rich.live import Live

                self._live = Live(self, console=Console(file=self.stream), refresh_per_second=4, transient=False)
                self._live.start()

    def __rich__(self):
        from rich.table import Table

        from runner.apply import elapsed_text

        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        for column in ("model", "status", "elapsed", "detail"):
            table.add_column(column)
        now = time.monotonic()
        colours = {"active": "green", "failed": "red", "error": "red", "rejected": "red", "waiting": "yellow"}
        with self._lock:
            for name, (status, detail, started, ended) in sorted(self._rows.items()):
                colour = colours.get(status, "cyan")
                table.add_row(_rich_safe(name), f"[{colour}]{_rich_safe(status)}[/]",
                              elapsed_text((ended or now) - started), _rich_safe(detail))
        return table

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def _rich_safe(text: str) -> str:
    """rich reads [markup] in table cells: a provider's message must not become a link or a style."""
    from rich.markup import escape

    return escape(terminal_safe(text))


def progress_reporter(stream=None):
    """A live table on a terminal; one line per transition otherwise (CI logs, pipes, NO_COLOR)."""
    stream = stream or sys.stderr
    if use_colour(stream):
        return LiveProgress(stream)
    return ProgressReporter(stream)


class ProgressReporter:
    """One line per job transition on stderr; a running job repeats its line at most every 10 s."""

    def close(self) -> None:
        pass

    REPEAT_SECONDS = 10.0

    def __init__(self, stream=None, colour: bool | None = None):
        self.stream = stream or sys.stderr
        self.colour = use_colour(self.stream) if colour is None else colour
        self._last: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def event(self, name: str, status: str, detail: str = "") -> None:
        now = time.monotonic()
        with self._lock:
            last_status, last_time = self._last.get(name, ("", 0.0))
            if status == last_status and now - last_time < self.REPEAT_SECONDS:
                return
            self._last[name] = (status, now)
            colour = {"active": "green", "failed": "red", "error": "red", "deleted": "red",
                      "waiting": "yellow"}.get(status)
            name, status, detail = terminal_safe(name), terminal_safe(status), terminal_safe(detail)
            text = f"{name}: {_style(status, colour, self.colour)}" + (f" ({detail})" if detail else "")
            print(text, file=self.stream, flush=True)
