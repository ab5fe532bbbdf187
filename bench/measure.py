"""Shared measurement helpers: run a command and time it, read its own peak RSS, report results.

Peak RSS is the child's own ru_maxrss as reported by GNU time (`/usr/bin/time -f %M`), which forks the
measured command from its own small process. Reading ru_maxrss of a child forked directly from this
(larger) Python process is wrong on Linux: the child inherits the parent's high-water mark at fork/vfork
and exec keeps it, so a 2 MB sha256sum would show the benchmark's own RSS. Without GNU time, wait4's
figure is used and labelled as an upper bound.

Every result is a ratio against a peer measured in the same run, or against a computed bound; the
summary table at the end repeats each one with its target and PASS/FAIL (or INFO when there is none).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PASS, FAIL, INFO, SKIP = "PASS", "FAIL", "INFO", "SKIP"


@dataclass(frozen=True)
class Run:
    """One finished process."""

    command: tuple[str, ...]
    seconds: float  # wall time from spawn to reaped, process start-up included
    cpu_seconds: float  # user + system of the process (and its waited-for children)
    max_rss_mb: float
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def failure(self) -> str:
        tail = (self.stderr or self.stdout).strip().splitlines()[-5:]
        return f"`{' '.join(self.command)}` exited {self.returncode}: " + " | ".join(tail)


TIME_BIN = shutil.which("time", path="/usr/bin:/bin")
RSS_SOURCE = "GNU time %M (the command's own peak)" if TIME_BIN else \
    "wait4 ru_maxrss (upper bound: includes the benchmark process's RSS at fork)"


def run(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 3600) -> Run:
    """Run to completion; output goes to temp files (never a pipe that could fill and stall the child)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(prefix="rss-", suffix=".txt") as rss:
        launch = [TIME_BIN, "-f", "%M", "-o", rss.name, *command] if TIME_BIN else list(command)
        started = time.perf_counter()
        process = subprocess.Popen(launch, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        usage, status = _reap(process, timeout)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        max_rss_kb = _reported_rss_kb(Path(rss.name)) if TIME_BIN else None
        out.seek(0)
        err.seek(0)
        return Run(tuple(command), seconds, usage.ru_utime + usage.ru_stime,
                   (max_rss_kb if max_rss_kb is not None else usage.ru_maxrss) / 1024,
                   process.returncode, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


def _reported_rss_kb(path: Path) -> int | None:
    lines = path.read_text(encoding="utf-8", errors="replace").split()
    return int(lines[-1]) if lines and lines[-1].isdigit() else None


def _reap(process: subprocess.Popen, timeout: float):
    """Block in wait4 (exact end time); a timer kills the child if it overruns."""
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        killer.cancel()
    return usage, status


def tuner_env(**extra: str) -> dict[str, str]:
    """The CLI of this checkout (not whatever is installed), plain text, no colour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNER_", "PYTHONPROFILE"))}
    env.update(NO_COLOR="1", PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **extra)
    return env


def tuner(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner", *args]


def drop_page_cache() -> bool:
    """Drop the OS page cache (root only). True when it worked, so cold means read from disk."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return True
    except OSError:
        return False


def median_run(runs: list[Run]) -> Run:
    """The run of median wall time (its RSS is reported with it); all runs must have succeeded."""
    ordered = sorted(runs, key=lambda r: r.seconds)
    return ordered[(len(ordered) - 1) // 2]


def repeat(times: int, once: Callable[[], Run], before: Callable[[], object] | None = None) -> list[Run]:
    runs = []
    for _ in range(times):
        if before is not None:
            before()
        runs.append(once())
        if not runs[-1].ok:
            break
    return runs


def spread(runs: list[Run]) -> str:
    values = [r.seconds for r in runs]
    if len(values) < 2:
        return f"n=1: {values[0]:.3f} s" if values else "n=0"
    median = statistics.median(values)
    return f"n={len(values)}: min {min(values):.3f} s, median {median:.3f} s, max {max(values):.3f} s"


@dataclass
class Result:
    """One line of the summary table."""

    bench: str
    metric: str
    value: str
    reference: str
    ratio: str
    target: str
    verdict: str


@dataclass
class Block:
    """One benchmark's printed block: what was measured, figures, ratio, target, verdict."""

    title: str
    measured: str
    figures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def figure(self, label: str, value: str) -> None:
        self.figures.append((label, value))

    def print(self, ratio: str = "", target: str = "", verdict: str = INFO) -> None:
        width = max([len(label) for label, _ in self.figures] + [8])
        print(f"\n== {self.title} ==")
        print(f"{'measured':<{width}} : {self.measured}")
        for label, value in self.figures:
            print(f"{label:<{width}} : {value}")
        if ratio:
            print(f"{'ratio':<{width}} : {ratio}")
        if target:
            print(f"{'target':<{width}} : {target}")
        for note in self.notes:
            print(f"{'note':<{width}} : {note}")
        print(f"{'result':<{width}} : {verdict}", flush=True)


def verdict(ok: bool) -> str:
    return PASS if ok else FAIL


def mb(nbytes: int) -> float:
    return nbytes / 1e6


def print_summary(results: list[Result]) -> None:
    headers = ("bench", "metric", "value", "peer / bound", "ratio", "target", "result")
    rows = [headers] + [(r.bench, r.metric, r.value, r.reference, r.ratio, r.target, r.verdict) for r in results]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(headers))]
    line = "-+-".join("-" * w for w in widths)
    print("\n== summary ==")
    for index, row in enumerate(rows):
        print(" | ".join(str(cell).ljust(w) for cell, w in zip(row, widths)))
        if index == 0:
            print(line)
    counts = {v: sum(r.verdict == v for r in results) for v in (PASS, FAIL, INFO, SKIP)}
    print(", ".join(f"{count} {name}" for name, count in counts.items() if count), flush=True)


@dataclass
class Settings:
    """What run.py parsed; every benchmark reads the part it needs."""

    workdir: Path
    seed: int = 1
    models: int = 1000
    size_mb: float = 450
    scale_models: int = 0  # the plan benchmark's second tier (make bench-scale: 10,000); 0: none
    warm_runs: int = 5
    cold_runs: int = 3
    validate_mb: float = 1024
    apply_models: int = 100
    apply_speed: float = 200.0
    apply_poll_seconds: float = 0.05
    refresh_sizes: tuple[int, ...] = (100, 250, 1000)
    state_models: int = 1000
    state_changes: int = 100
    emulated_providers: tuple[str, ...] = ("gemini", "openai")  # what the apply and refresh benchmarks run on
    install_dvc: bool = True
    drop_caches: bool = True

    def cold(self) -> bool:
        """Drop the page cache before a cold measurement; True when it was really dropped."""
        return self.drop_caches and drop_page_cache()
