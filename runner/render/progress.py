"""Apply's progress: a live table of every job on a terminal (rich.progress), one plain line per transition elsewhere.

Both are reporters (runner.apply.Reporter): apply tells them what happened as plain data (a status, a detail,
seconds elapsed, how far the provider says the job is) and they alone decide how it reads.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.render.terminal import style, terminal_safe, use_colour

if TYPE_CHECKING:
    from rich.progress import Task

_COLOURS = {"active": "green", "failed": "red", "error": "red", "rejected": "red", "deleted": "red",
            "waiting": "yellow", "restored": "green"}
# The last word on a job: its row stops its clock there.
FINAL = frozenset({"active", "failed", "error", "rejected", "deleted", "updated", "restored", "unchanged"})


def elapsed_text(seconds: float) -> str:
    """12s, 3m05s: how long a job has run."""
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def training_text(epoch: int | None = None, epochs: int | None = None, loss: float | None = None) -> str:
    """`epoch 2/5 loss 0.412`: what the provider said of a running job, as far as it said it."""
    parts = [f"epoch {epoch}/{epochs}"] if epoch is not None and epochs else []
    parts += [f"loss {loss:.4g}"] if loss is not None else []
    return " ".join(parts)


def _detail(detail: str, elapsed: float | None, progress: float | None, training: str = "") -> str:
    """`creating (3m05s 40% epoch 2/5)`: the detail, then how long, then how far."""
    parts = [detail] if detail else []
    parts += [elapsed_text(elapsed)] if elapsed is not None else []
    parts += [f"{progress:.0%}"] if progress is not None else []
    parts += [training] if training else []
    return " ".join(parts)


def progress_reporter(stream=None, monotonic: Callable[[], float] = time.monotonic, live: bool | None = None,
                      colour: bool | None = None):
    """A live table on a terminal (or when `live` says so), coloured unless `colour` says not (NO_COLOR and
    --no-color take the colour away, never the table); one plain line per transition otherwise (CI logs, pipes)."""
    stream = stream or sys.stderr
    if (hasattr(stream, "isatty") and stream.isatty()) if live is None else live:
        return LiveProgress(stream, monotonic, use_colour(stream) if colour is None else colour)
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
              progress: float | None = None, epoch: int | None = None, epochs: int | None = None,
              loss: float | None = None) -> None:
        now = self._monotonic()
        with self._lock:
            last_status, last_time = self._last.get(name, ("", 0.0))
            if status == last_status and now - last_time < self.REPEAT_SECONDS:
                return
            self._last[name] = (status, now)
            detail = terminal_safe(_detail(detail, elapsed, progress, training_text(epoch, epochs, loss)))
            text = f"{terminal_safe(name)}: {style(terminal_safe(status), _COLOURS.get(status), self.colour)}"
            print(text + (f" ({detail})" if detail else ""), file=self.stream, flush=True)

    def close(self) -> None:
        pass


class LiveProgress:
    """On a terminal: one rich.progress table of every job, redrawn in place at most REFRESHES_PER_SECOND.

    A row per job: status, a bar and % when the provider reports progress, one clock (from the job's first event
    to its final status), the ETA from the rate its progress moved at on the injected clock, and the detail.
    `close` draws the final frame: every row as it ended."""

    REFRESHES_PER_SECOND = 4  # the table is redrawn on its own thread: apply's workers never wait for it

    def __init__(self, stream=None, monotonic: Callable[[], float] = time.monotonic, colour: bool = False):
        from rich.console import Console

        self.stream = stream or sys.stderr
        # The caller decided this is a terminal; colour is only what `colour` says (no SGR at all without it),
        # whatever rich would read from os.environ.
        console = Console(file=self.stream, force_terminal=True, color_system="auto" if colour else None,
                          no_color=not colour, highlight=False)
        self._monotonic = monotonic
        self._progress = _job_table(console, monotonic, self.REFRESHES_PER_SECOND)
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()
        self._started = False

    def event(self, name: str, status: str, detail: str = "", elapsed: float | None = None,
              progress: float | None = None, epoch: int | None = None, epochs: int | None = None,
              loss: float | None = None) -> None:
        """`elapsed` is not shown: the row's one clock counts from this job's first event."""
        with self._lock:
            task = self._tasks.get(name)
            if task is None:
                self._progress.add_task(terminal_safe(name), total=None, status="", detail="", training="",
                                        measured=None)
                task = self._tasks[name] = self._progress.tasks[-1]  # the Task just added
            fields = {"status": terminal_safe(status), "detail": terminal_safe(detail)}
            if training := training_text(epoch, epochs, loss):  # kept until the provider says more
                fields["training"] = terminal_safe(training)
            if progress is not None:
                fields.update(total=1.0, completed=max(0.0, min(progress, 1.0)),
                              measured=_Rate.of(task.fields["measured"], self._monotonic(), progress))
            if status == "active" and (task.total is not None or progress is not None):
                fields["completed"] = 1.0  # done is 100%, whatever the last poll said
            self._progress.update(task.id, **fields)
            if status in FINAL:
                self._progress.stop_task(task.id)
            else:  # work after a final status (cleanup, a retry): the job's one clock runs on
                task.stop_time = None
            if not self._started:
                self._started = True
                self._progress.start()

    def __rich__(self):
        """The table as it stands (for a test or a capture)."""
        return self._progress.make_tasks_table(self._progress.tasks)

    def close(self) -> None:
        """The final frame: drawn once more, every job with its last status, and left on the terminal."""
        with self._lock:
            if self._started:
                self._progress.stop()
                self._started = False


def _job_table(console, monotonic: Callable[[], float], refreshes: float):
    """A rich Progress whose rows are jobs, with a header line and columns read from each task's fields."""
    from rich.progress import BarColumn, Progress, ProgressColumn
    from rich.table import Column, Table
    from rich.text import Text

    class Cell(ProgressColumn):
        """One column of the table: its header and how a task reads in it (Text: never markup)."""

        def __init__(self, header: str, render: Callable[[Task], Text], justify: str = "left"):
            self.cell = render
            super().__init__(table_column=Column(header=header, justify=justify, no_wrap=header != "detail"))

        def render(self, task: Task) -> Text:
            return self.cell(task)

    class Bar(BarColumn):
        def render(self, task: Task):
            # No progress reported: no bar (rich's pulse reads as a full bar without colour).
            return Text("") if task.total is None else super().render(task)

    class JobTable(Progress):
        def make_tasks_table(self, tasks) -> Table:
            table = Table(*(column.get_table_column().copy() for column in self.columns), box=None,
                          header_style="bold", pad_edge=False, collapse_padding=True)
            for task in sorted(tasks, key=lambda task: task.description):  # by name: rows never swap places
                table.add_row(*(column(task) for column in self.columns))
            return table

    def status(task: Task) -> Text:
        return Text(task.fields["status"], _COLOURS.get(task.fields["status"], "cyan"))

    def percent(task: Task) -> Text:
        return Text(f"{task.percentage:.0f}%" if task.total is not None else "")

    def detail(task: Task) -> Text:
        return Text(" ".join(filter(None, (task.fields["training"], task.fields["detail"]))))

    def eta(task: Task) -> Text:
        measured = task.fields["measured"]
        remaining = measured.remaining(monotonic()) if measured is not None and task.stop_time is None else None
        return Text(elapsed_text(remaining) if remaining is not None else "")

    columns = (Cell("model", lambda task: Text(task.description)), Cell("status", status),
               Bar(bar_width=20, table_column=Column(header="progress")), Cell("%", percent, "right"),
               Cell("elapsed", lambda task: Text(elapsed_text(task.elapsed or 0)), "right"),
               Cell("eta", eta, "right"),
               Cell("detail", detail))
    return JobTable(*columns, console=console, get_time=monotonic, refresh_per_second=refreshes, transient=False)


@dataclass(frozen=True)
class _Rate:
    """How fast a job's progress moves: from the first progress seen (time, fraction) to the latest. Not rich's
    speed: that only reads the last 30 s, fewer polls than a slow provider makes, and ignores the time since."""

    first: tuple[float, float]
    latest: tuple[float, float]

    @classmethod
    def of(cls, before: _Rate | None, now: float, progress: float) -> _Rate:
        return cls(before.first if before is not None else (now, progress), (now, progress))

    def remaining(self, now: float) -> float | None:
        """Seconds left at this rate, counting down between polls; None until the progress has moved."""
        (start, done_then), (latest, done) = self.first, self.latest
        if done <= done_then or latest <= start:
            return None
        return max(0.0, (1.0 - done) * (latest - start) / (done - done_then) - (now - latest))
