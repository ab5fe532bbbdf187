"""Plans as a pull-request comment. Everything that comes from specs, state or a provider is escaped: nothing in
it can become a link, markup or HTML, and a table cell cannot be split by a pipe."""

from __future__ import annotations

import re

from runner.plan import CREATE, DELETE, RESTORE, Change, Plan
from runner.render.plan import SUMMARY_AFTER, action_counts, action_look, plan_text, summary_line, value_text
from runner.render.terminal import terminal_safe

_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


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


# A plan must fit in one pull-request comment: GitHub refuses a body over 65,536 characters (UTF-16 code units:
# an emoji badge takes two; GitLab's notes take a million). Over it, the full plan's section goes first, then rows.
COMMENT_LIMIT = 65_000


def plan_markdown(plan: Plan, workspace: str, backend: str, state_at: str, limit: int = COMMENT_LIMIT) -> str:
    """A table of changes with their field diffs, the full plan collapsed, within LIMIT. It opens with a hidden
    marker naming the workspace, by which CI finds the comment to update in place, and a heading naming where
    state lives; over a screenful of changes, with their counts per provider and action."""
    changed = [c for c in plan.changes if c.is_change]
    marker = f"<!-- tuner plan: workspace {workspace} -->"  # a workspace name holds no `>`: nothing can close it
    heading = f"### tuner plan · workspace {md_code(workspace)} · {md_text(backend)} state {md_code(state_at)}"
    if not changed and not plan.settings and not plan.moved:
        return terminal_safe(f"{marker}\n{heading}: no changes\n\nYour tuned models match the configuration.\n")
    lines = [marker, f"{heading}: {summary_line(plan).removeprefix('Plan: ')}", ""]
    if plan.costs:
        unknown = f" + unknown for {', '.join(map(md_code, plan.unpriced))}" if plan.unpriced else ""
        lines += [f"**Estimated training cost: ~${plan.total_cost_usd:.2f}{unknown} (pricing as of "
                  f"{md_text(plan.pricing_as_of)}).**", ""]
    if plan.settings:
        lines += ["**Provider settings change: review where credentials and data will be sent.**", "",
                  "| Provider | Setting | Recorded | New |", "|---|---|---|---|"]
        lines += [f"| {md_text(s.provider)} | {md_code(f.path)} | {md_code(value_text(f.old))} | "
                  f"{md_code(value_text(f.new))} |" for s in plan.settings for f in s.fields]
        lines.append("")
    if plan.moved:
        lines += [f"**Moved:** {md_code(old)} → {md_code(new)} (nothing is retrained)" for old, new in plan.moved]
        lines.append("")
    if len(changed) > SUMMARY_AFTER:
        lines += _counts_markdown(changed) + [""]
    if changed:
        lines += ["| Model | Provider | Action | Est. training cost | Changes |", "|---|---|---|---|---|"]
    return terminal_safe(_fitted(lines, [_change_row(plan, change) for change in changed], plan, limit))


def _counts_markdown(changed: list[Change]) -> list[str]:
    actions, rows = action_counts(changed)
    return ["| Provider | " + " | ".join(action_look(action).badge for action in actions) + " |",
            "|---|" + "---:|" * len(actions)] + \
           [f"| {md_text(row[0])} | " + " | ".join(map(str, row[1:])) + " |" for row in rows]


def _change_row(plan: Plan, change: Change) -> str:
    cost = plan.costs.get(change.name, {}).get("usd")
    cost_text = f"${cost:.2f}" if cost is not None else ("unknown" if change.name in plan.costs else "")
    cost_text = "$0.00" if change.action == RESTORE else cost_text
    return (f"| {md_code(change.name)} | {md_text(change.provider)} | {action_look(change.action).badge} | "
            f"{cost_text} | {_markdown_fields(change)} |")


def _fitted(head: list[str], rows: list[str], plan: Plan, limit: int) -> str:
    """HEAD, the ROWS that fit, then the full plan collapsed if it fits too; else a line saying what was left out."""
    text = "\n".join(head + rows)
    if _size(text) < limit:  # the full plan is made only when the table of its changes leaves room for it
        document = text + _full_plan(plan)
        if _size(document) <= limit:
            return document
    room = limit - _size("\n".join(head)) - _size(_TOO_LONG) - 48  # 48: the count left out and line ends
    kept = 0
    while kept < len(rows) and (room := room - _size(rows[kept]) - 1) >= 0:
        kept += 1
    more = f"{len(rows) - kept:,} more changes are not listed here; " if kept < len(rows) else ""
    return "\n".join(head + rows[:kept]) + f"\n\n{_TOO_LONG.format(more=more)}\n"


def _full_plan(plan: Plan) -> str:
    full = plan_text(plan).rstrip()
    fence = "`" * max(3, max(map(len, re.findall("`+", full)), default=0) + 1)
    return "\n".join(["", "", "<details><summary>Full plan</summary>", "", f"{fence}diff", full, fence, "",
                      "</details>", ""])


_TOO_LONG = "_{more}the full plan is longer than a comment can be: `tuner plan --compact` lists every change._"


def _size(text: str) -> int:
    """Length as GitHub counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _markdown_fields(change: Change) -> str:
    notes = []
    if change.action not in (CREATE, DELETE):
        notes = [f"{md_code(f.path)}: {md_code(value_text(f.old))} → {md_code(value_text(f.new))}" +
                 (" **(forces replacement)**" if f.forces_replacement and change.action != RESTORE else "")
                 for f in change.fields]
    notes += [f"restores retained {md_code(change.restore_id)} (no training)"] if change.restore_id else []
    notes += [md_code(change.reason)] if change.reason else []
    notes += [f"deletes superseded {md_code(tuned_id)}" for tuned_id in change.cleanup]
    return "<br>".join(notes)
