"""What a command did, in words: results, warnings and errors (exit codes stay the CLI's)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.errors import DatasetError, SpecError, TunerError
from runner.render.terminal import terminal_safe

if TYPE_CHECKING:  # an error's view must not import the engines
    from runner.desired import Resolution
    from runner.ops.promote import Promotion, PromotionRefused
    from runner.plan import Plan
    from runner.state.model import Instance, State

INTERRUPTED_TEXT = "\nInterrupted. State is saved; running jobs keep running. Run the command again to resume.\n"


def _lines(lines: list[str]) -> str:
    return "".join(terminal_safe(line) + "\n" for line in lines)


def warnings_text(warnings: list[str]) -> str:
    return _lines([f"Warning: {warning}" for warning in warnings])


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
