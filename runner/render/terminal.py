"""The last step of every text view: terminal safety, colour (only on a terminal, never with NO_COLOR), tables."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence

import click

# Terminal control: escape sequences (CSI, OSC and other string commands to their terminator, two-byte
# escapes), then any C0/C1 control but newline and tab, and the bidi overrides that reorder what is shown.
_TERMINAL_SEQUENCE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
                                r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d-\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
                                r"|\x1b[ -/]*[0-~]?")
_TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNBOUNDED_WIDTH = 100_000  # tables are never wrapped or cut: ids are copied from them


def terminal_safe(text: str) -> str:
    """Text from specs, state or a provider, made safe to print: it cannot move the cursor, recolour, retitle,
    hide a link (OSC 8) or reorder what the terminal shows. Every text output passes here on its way out."""
    return _TERMINAL_CONTROL.sub("", _TERMINAL_SEQUENCE.sub("", text))


def use_colour(stream=None) -> bool:
    stream = stream or sys.stdout
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def style(text: str, colour: str | None, colour_on: bool, bold: bool = False) -> str:
    return click.style(text, fg=colour, bold=bold) if colour_on and (colour or bold) else text


def table_text(headers: Sequence[str], rows: Iterable[Sequence[str]], colour: bool = False,
               right_aligned: Sequence[int] = ()) -> str:
    """Columns two spaces apart at their natural width, bold headers only in colour, no trailing spaces.

    Every cell is terminal_safe and inert: rich reads `[style]` markup and `:emoji:` codes only in strings it
    parses, and these cells reach it as Text."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 1), header_style="bold" if colour else "")
    for index, header in enumerate(headers):
        table.add_column(Text(terminal_safe(header)), justify="right" if index in right_aligned else "left",
                         no_wrap=True)
    for row in rows:
        table.add_row(*(Text(terminal_safe(cell)) for cell in row))
    console = Console(width=_UNBOUNDED_WIDTH, force_terminal=colour, no_color=not colour, highlight=False,
                      color_system="standard" if colour else None, legacy_windows=False)
    with console.capture() as captured:
        console.print(table)
    return "".join(line.rstrip() + "\n" for line in captured.get().splitlines())
