"""What a command did, in words: results, warnings and errors (exit codes stay the CLI's)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from runner.errors import DatasetError, SpecError, TunerError, diagnostic
from runner.render.terminal import terminal_safe

if TYPE_CHECKING:  # an error's view must not import the engines
    from runner.desired import Resolution
    from runner.ops.promote import Promotion, PromotionRefused
    from runner.plan import Plan
    from runner.state.model import Instance, State

INTERRUPTED_TEXT = "\nInterrupted. State is saved; running jobs keep running. Run the command again to resume.\n"


def _lines(lines: list[str]) -> str:
    return "".join(terminal_safe(line) + "\n" for line in lines)


# This many warnings of one kind (or more) are said in one line, with the first of them; --verbose lists them all.
GROUPED_FROM = 5

# The warnings that repeat across a fleet's datasets: what marks one (the dataset room and desired.py write
# them; tests/test_plan_output.py drives the real ones), and how a group is counted and named, for one and many.
_REPEATING = (
    (re.compile(r"^duplicate example on lines |more duplicated examples$"),
     "file has duplicate examples", "files have duplicate examples"),
    (re.compile(r" examples; at least \d+ are needed "),
     "model has fewer examples than tuning needs", "models have fewer examples than tuning needs"),
)


def warnings_text(warnings: list[str], verbose: bool = False) -> str:
    """One line per warning; a kind repeated GROUPED_FROM times or more is one line (unless VERBOSE), where
    its first warning was."""
    kinds = [None if verbose else _kind(warning) for warning in warnings]
    groups: dict[int, list[str]] = {}
    for warning, kind in zip(warnings, kinds):
        if kind is not None:
            groups.setdefault(kind, []).append(warning)
    lines = []
    for warning, kind in zip(warnings, kinds):
        group = groups.get(kind, ())
        if len(group) < GROUPED_FROM:
            lines.append(f"Warning: {warning}")
        elif warning is group[0]:
            lines.append(f"Warning: {_group_text(kind, group)}")
    return _lines(lines)


def _kind(warning: str) -> int | None:
    message = diagnostic(warning)["message"]
    return next((kind for kind, (marks, *_) in enumerate(_REPEATING) if marks.search(message)), None)


def _group_text(kind: int, group: list[str]) -> str:
    """`312 files have duplicate examples; first: ...`: counted by what each warning is about (a file, or a
    model's field in a spec file)."""
    subjects = len({(where["file"], where["path"]) for where in map(diagnostic, group)})
    _, one, many = _REPEATING[kind]
    return f"{subjects} {one if subjects == 1 else many}; first: {group[0]}; `tuner validate --verbose` lists them all"


def error_text(error: TunerError) -> str:
    """`Error: ...` on one line (or one line per problem of a spec or dataset), then the remedy."""
    problems = getattr(error, "problems", None)
    if problems:
        kind = "dataset" if isinstance(error, DatasetError) else "spec" if isinstance(error, SpecError) else "input"
        lines = [f"Error: invalid {kind}:"] + [f"  {problem}" for problem in problems]
    else:
        lines = [f"Error: {error.message}"]
    return _lines(lines + ([f"  -> {error.remedy}"] if error.remedy else []))


def internal_error_text(error: Exception) -> str:
    """A bug: said plainly, on one line, with what to do about it."""
    return _lines([f"Error: internal error: {type(error).__name__}: {error}",
                   "  -> this is a bug in tuner; rerun with TUNER_DEBUG=1 for a traceback and report it"])


def validated_text(resolution: Resolution) -> str:
    models = resolution.models
    examples = sum(m.train.examples + (m.validation.examples if m.validation else 0) for m in models)
    return f"Valid: {len(models)} model(s), {examples} examples checked.\n"


def saved_plan_text(path) -> str:
    return terminal_safe(f"\nSaved the plan to {path}. Apply exactly it with: tuner apply {path}\n")


def failures_text(failures: dict[str, str]) -> str:
    return _lines([f"\nFinished with {len(failures)} failure(s):"] +
                  [f"  {name}: {message}" for name, message in sorted(failures.items())])


def complete_text(verb: str, plan: Plan) -> str:
    s = plan.summary()
    restored = f", {s['restore']} restored" if s["restore"] else ""
    return (f"\n{verb} complete! Models: {s['create']} added, {s['replace']} replaced, {s['update']} changed, "
            f"{s['delete']} destroyed{restored}.\n")


def imported_text(name: str, instance: Instance, notes: list[str]) -> tuple[str, str]:
    """(stdout, stderr): what was adopted, and the provider's notes about it."""
    return (terminal_safe(f"Imported {instance.tuned_model_id} as {name} ({instance.status}). Run `tuner plan` to "
                          f"compare it with the spec.\n"), _lines([f"Note: {note}" for note in notes]))


def migrated_text(source: str, target: str, state: State) -> str:
    return terminal_safe(f"Migrated {len(state.models)} model(s) from {source} to {target} (lineage {state.lineage}, "
                         f"serial {state.serial}).\n")


def lock_holder_text(holder: dict) -> str:
    return terminal_safe(f"{holder.get('operation', '?')}, pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
                         f"since {holder.get('created', '?')}")


def moved_text(old: str, new: str, state: State) -> str:
    return terminal_safe(f"Moved {old} to {new} (serial {state.serial}); no provider was called.\n")


def forgotten_text(name: str, left_behind: list[str]) -> str:
    if not left_behind:
        return terminal_safe(f"Removed {name} from state; it managed no tuned model.\n")
    return terminal_safe(f"Removed {name} from state. Left behind, not deleted: {', '.join(left_behind)} "
                         f"(`tuner import {name} ID` adopts one again).\n")


def promoted_text(promotions: list[Promotion], source: str, target: str) -> str:
    """One line per name: what this workspace serves now, and what became of the model it served before."""
    lines = []
    for p in promotions:
        tuned_id = p.instance.tuned_model_id
        if p.already:
            lines.append(f"{p.name}: workspace {target} already serves {tuned_id}; nothing to do.")
            continue
        line = f"{p.name}: promoted {tuned_id} from workspace {source} to {target} (no training, $0)"
        if p.superseded is not None:
            line += f"; {p.superseded.tuned_model_id} is superseded (retained, or deleted by the next apply)"
        lines.append(line + ".")
    return _lines(lines)


def promotion_refused_text(refused: PromotionRefused) -> str:
    """`Error: ...`, then each name's reason and, where the specs differ, the fields as plan shows them."""
    from runner.plan import REPLACE
    from runner.render.plan import field_lines

    lines = [f"Error: {refused.message}"]
    for refusal in refused.refusals:
        lines.append(f"  {refusal.name}: {refusal.reason}")
        lines += field_lines(refusal.fields, REPLACE, colour=False)
    return _lines(lines + [f"  -> {refused.remedy}"])


def scaffold_text(root: str, created: list[str], kept: list[str], ignored: list[str], has_specs: bool) -> str:
    """What `tuner init` wrote, what it left as it was, and the next command."""
    lines = [f"  created {path}" for path in created] + [f"  kept    {path} (already there)" for path in kept]
    if has_specs:
        lines.append("  kept    configs/ (it has specs: no example added)")
    lines.append(f"  added   {', '.join(ignored)} to .gitignore" if ignored
                 else "  kept    .gitignore (has every entry)")
    where, cd = ("this directory", "") if root == "." else (root, f"cd {root} && ")
    return _lines([f"Initialized a tuner project in {where}:", *lines, "",
                   f"Next: {cd}tuner plan, then tuner apply; commit configs/, data/, state/ and .gitignore."])
