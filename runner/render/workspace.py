"""The workspace commands' text: the list (the one in use marked, as terraform marks it) and what a forced
delete leaves behind."""

from __future__ import annotations

from runner.render.terminal import terminal_safe
from runner.state.model import Instance


def workspace_list_text(names: list[str], current: str) -> str:
    """One workspace a line, `* ` before the one in use (listed even before its first apply)."""
    return "".join(f"{'*' if name == current else ' '} {terminal_safe(name)}\n"
                   for name in sorted(set(names) | {current}))


def left_behind_text(workspace: str, managed: list[tuple[str, Instance]]) -> str:
    """Said before a forced delete forgets the state: the tuned models that stay, unmanaged, at their providers."""
    lines = [f"Workspace {workspace!r} still manages {len(managed)} model(s); they stay with their providers, "
             f"no longer managed by tuner (delete them there, or adopt them with `tuner import`):"]
    lines += [f"  {model}: {instance.tuned_model_id} ({instance.provider}, {instance.status})"
              for model, instance in managed]
    return terminal_safe("\n".join(lines)) + "\n"
