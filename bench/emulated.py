"""The Gemini emulator as the apply and refresh benchmarks drive it: a scaled clock, per-job durations, and
a throwaway project of gemini models pointed at it.

Why a subclass: GeminiEmulator gives every job the same duration (its one `job_seconds`, copied into each
record by `_add_model`), and the duration does not scale with epoch_count or dataset size. A makespan
benchmark needs jobs of different lengths, so TimedEmulator overrides `_add_model` to set each record's
duration from its work (examples x epochs, the way a real tuning service's job time grows) and remembers
(start, duration) of every accepted job on the emulator clock. If a future emulator drops `_add_model`,
the hook is skipped, every job gets job_seconds, and the benchmark says so (see `per_job_durations`).

Why a scaled clock: the emulator's `clock=` decides job progress. ScaledClock runs at `speed` x wall time,
so an hour of emulated tuning passes in seconds, while `tuner apply` (a subprocess) keeps its real poll
interval, which maps to poll_seconds x speed emulated seconds. The emulator really trains every finished
model (runner.trainer) inside a request; the clock is paused meanwhile, because a real service trains on
its own hardware and that work must not count as the client's scheduling delay.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from corpus import FileStyle, make_pool, write_jsonl

from runner.emulators.gemini import GeminiEmulator

API_KEY = "bench-emulator-key"
KEY_ENV = "TUNER_BENCH_GEMINI_KEY"
BASE_MODEL = "models/gemini-1.5-flash-001-tuning"


class ScaledClock:
    """Emulated seconds: `speed` x monotonic wall time, minus the wall time spent while paused."""

    def __init__(self, speed: float = 1.0):
        self.speed = speed
        self._lock = threading.Lock()
        self._origin = time.monotonic()
        self._paused_total = 0.0
        self._paused_since: float | None = None
        self._depth = 0

    def __call__(self) -> float:
        with self._lock:
            now = self._paused_since if self._paused_since is not None else time.monotonic()
            return (now - self._origin - self._paused_total) * self.speed

    @contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                self._paused_since = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._paused_since is not None:
                    self._paused_total += time.monotonic() - self._paused_since
                    self._paused_since = None

    @property
    def paused_wall_seconds(self) -> float:
        with self._lock:
            return self._paused_total


DurationFn = Callable[[int, int], float]  # (examples, epoch_count) -> emulated seconds


class TimedEmulator(GeminiEmulator):
    """GeminiEmulator whose jobs last duration_of(examples, epochs) and whose training stops the clock."""

    def __init__(self, clock: ScaledClock, duration_of: DurationFn | None = None, **options):
        super().__init__(clock=clock, api_keys={API_KEY}, **options)
        self.scaled_clock = clock
        self.duration_of = duration_of
        self.jobs: dict[str, tuple[float, float]] = {}  # tuned model id -> (start, duration), emulated seconds
        self.per_job_durations = hasattr(GeminiEmulator, "_add_model")

    def _add_model(self, model_id: str, fields: dict, owner: str, now: float):
        record = super()._add_model(model_id, fields, owner, now)
        if self.duration_of is not None:
            record.duration = self.duration_of(len(fields["examples"]), int(fields["epoch_count"]))
        self.jobs[model_id] = (now, record.duration)
        return record

    def _ensure_trained(self, model):
        with self.scaled_clock.paused():
            return super()._ensure_trained(model)


@dataclass(frozen=True)
class Job:
    name: str
    examples: int
    epochs: int


def draw_jobs(seed: int, count: int, examples: tuple[int, int], epochs: tuple[int, int]) -> list[Job]:
    rng = random.Random(f"jobs:{seed}:{count}")
    return [Job(f"job-{index:04d}", rng.randint(*examples), rng.randint(*epochs)) for index in range(count)]


def write_project(root: Path, url: str, jobs: list[Job], seed: int, poll_seconds: float,
                  max_concurrent_jobs: int = 5) -> None:
    """configs/models.yaml with one plain gemini entry per job, data/<job>.jsonl with its examples."""
    pool = make_pool(seed, short=600, long=1)
    lines = ["providers:", "  gemini:", f"    api_key_env: {KEY_ENV}", f"    endpoint: {url}",
             f"    max_concurrent_jobs: {max_concurrent_jobs}", f"    poll_seconds: {poll_seconds}",
             "defaults:", "  provider: gemini", f"  base_model: {BASE_MODEL}", "models:"]
    for job in jobs:
        rng = random.Random(f"gemini-data:{seed}:{job.name}")
        style = FileStyle.draw(rng, pool, long_rate=0.0)
        style = FileStyle(style.labels, style.line_format)  # plain files: no duplicates, BOM or blank lines
        write_jsonl(root / "data" / f"{job.name}.jsonl", rng, pool, style, lines=job.examples)
        lines += [f"  {job.name}:", f"    display_name: Bench {job.name}", "    dataset:",
                  f"      train: ../data/{job.name}.jsonl",
                  f"    hyperparameters: {{epoch_count: {job.epochs}, batch_size: 4, learning_rate: 0.001}}"]
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "models.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def lower_bound(durations: list[float], slots: int) -> float:
    return max(sum(durations) / slots, max(durations))


def list_schedule(durations: list[float], slots: int) -> float:
    """Makespan of greedy list scheduling in the given order with zero overhead."""
    free = [0.0] * slots
    for duration in durations:
        earliest = min(range(slots), key=free.__getitem__)
        free[earliest] += duration
    return max(free)


def pages(count: int, page_size: int) -> int:
    return math.ceil(count / page_size)
