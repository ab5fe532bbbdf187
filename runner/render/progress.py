"""Apply's progress: a live table of every job on a terminal, one plain line per transition elsewhere.

Both are reporters (runner.apply.Reporter): apply tells them what happened as plain data (a status, a detail,
seconds elapsed, a fraction done) and they alone decide how it reads.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from runner.render.terminal import style, terminal_safe, use_colour

_COLOURS = {"active": "green", "failed": "red", "error": "red", "rejected": "red", "deleted": "red",
            "waiting": "yellow", "restored": "green"}


def elapsed_text(seconds: float) -> str:
    """12s, 3m05s: how long a job has run."""
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _detail(detail: str, elapsed: float | None, progress: float | None) -> str:
    """`creating (3m05s 40%)`: the detail, then how long, then how far."""
    parts = [detail] if detail else []
    parts += [elapsed_text(elapsed)] if elapsed is not None else []
    parts += [f"{progress:.0%}"] if progress is not None else []
    return " ".join(parts)


def progress_reporter(stream=None, monotonic: Callable[[], float] = time.monotonic, live: bool | None = None):
    """A live table on a terminal (or when `live` says so); one line per transition otherwise (CI logs, pipes,
    NO_COLOR)."""
    stream = stream or sys.stderr
    if use_colour(stream) if live is None else live:
        return LiveProgress(stream, monotonic)
    return LineProgress(stream, colour=False, monotonic=monotonic)


class LineProgress:
    """One line per job transition; a running job repeats its line at most every REPEAT_SECONDS."""

    REPEAT_SECONDS = 10.0

    def __init__(self, stream=None, colour: bool | None = None, monotonic: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stderr
        self.colour = use_colour(self.stream) if colour is None else colour
        self._monotonic = monotonic
        self._last: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def event(self, name: str, status: str, detail: str = "", elapsed: float | None = None,
              progress: float | None = None) -> None:
        now = self._monotonic()
        with self._lock:
            last_status, last_time = self._last.get(name, ("", 0.0))
            if status == last_status and now - last_time < self.REPEAT_SECONDS:
                return
            self._last[name] = (status, now)
            detail = terminal_safe(_detail(detail, elapsed, progress))
            text = f"{terminal_safe(name)}: {style(terminal_safe(status), _COLOURS.get(status), self.colour)}"
            print(text + (f" ({detail})" if detail else ""), file=self.stream, flush=True)

    def close(self) -> None:
        pass


class LiveProgress:
    """On a terminal: one live table of every job (status, elapsed, detail), redrawn in place."""

    FINAL = frozenset({"active", "failed", "error", "rejected", "deleted", "updated", "restored"})

    def __init__(self, stream=None, monotonic: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stderr
        self._monotonic = monotonic
        self._rows: dict[str, tuple[str, str, float, float | None]] = {}  # name -> status, detail, start, end
        self._lock = threading.Lock()
        self._live = None

    def event(self, name: str, status: str, detail: str = "", elapsed: float | None = None,
              progress: float | None = None) -> None:
        """The elapsed column counts from this job's first event, so `elapsed` is not repeated in the detail."""
        now = self._monotonic()
        with self._lock:
            _, _, started, _ = self._rows.get(name, ("", "", now, None))
            self._rows[name] = (status, _detail(detail, None, progress), started, now if status in self.FINAL else None)
            if self._live is None:
                from rich.console import Console
                from rich.live import Live

                self._live = Live(self, console=Console(file=self.stream), refresh_per_second=4, transient=False)
                self._live.start()

    def __rich__(self):
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        for column in ("model", "status", "elapsed", "detail"):
            table.add_column(column)
        now = self._monotonic()
        with self._lock:
            for name, (status, detail, started, ended) in sorted(self._rows.items()):
                # Text, not markup: a provider's message must not become a link or a style
                table.add_row(Text(terminal_safe(name)), Text(terminal_safe(status), _COLOURS.get(status, "cyan")),
                              elapsed_text((ended or now) - started), Text(terminal_safe(detail)))
        return table

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
