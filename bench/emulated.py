"""The emulators as the apply and refresh benchmarks drive them: a scaled clock, per-job durations, and a
throwaway project of one provider's models pointed at its emulator (TARGETS: gemini and openai).

Why subclasses: the emulators give every job the same duration (their one `job_seconds`), and the duration
does not scale with epoch_count or dataset size. A makespan benchmark needs jobs of different lengths, so
TimedEmulator overrides GeminiEmulator's `_add_model` and TimedOpenAIEmulator OpenAIEmulator's `_job_duration`
to set each job's duration from its work (examples x epochs, the way a real tuning service's job time grows),
and both remember (start, duration) of every accepted job on the emulator clock. If a future emulator drops
its hook, every job gets job_seconds, and the benchmark says so (see `per_job_durations`).

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
from runner.emulators.openai import OpenAIEmulator
from runner.providers import gemini, openai

API_KEY = "bench-emulator-key"
KEY_ENV = "TUNER_BENCH_KEY"


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


class _Timed:
    """What both timed emulators add: per-job durations from duration_of, recorded as (start, duration) per job,
    and the clock paused while the emulator trains."""

    def __init__(self, clock: ScaledClock, duration_of: DurationFn | None = None, **options):
        super().__init__(clock=clock, api_keys={API_KEY}, **options)
        self.scaled_clock = clock
        self.duration_of = duration_of
        self.jobs: dict[str, tuple[float, float]] = {}  # job id -> (start, duration), emulated seconds

    def _timed(self, job_id: str, examples: int, epochs: int, start: float, default: float) -> float:
        duration = self.duration_of(examples, epochs) if self.duration_of is not None else default
        self.jobs[job_id] = (start, duration)
        return duration

    def _ensure_trained(self, model):
        with self.scaled_clock.paused():
            return super()._ensure_trained(model)


class TimedEmulator(_Timed, GeminiEmulator):
    """GeminiEmulator whose jobs last duration_of(examples, epochs) and whose training stops the clock."""

    per_job_durations = hasattr(GeminiEmulator, "_add_model")

    def _add_model(self, model_id: str, fields: dict, owner: str, now: float):
        record = super()._add_model(model_id, fields, owner, now)
        record.duration = self._timed(model_id, len(fields["examples"]), int(fields["epoch_count"]), now,
                                      record.duration)
        return record


class TimedOpenAIEmulator(_Timed, OpenAIEmulator):
    """OpenAIEmulator whose jobs last duration_of(examples, epochs) (validation and queueing included) and whose
    training stops the clock."""

    per_job_durations = hasattr(OpenAIEmulator, "_job_duration")

    def _job_duration(self, job) -> float:
        return self._timed(job.id, job.example_count, job.n_epochs, job.created_at, super()._job_duration(job))


@dataclass(frozen=True)
class Target:
    """A provider the apply and refresh benchmarks run on: its timed emulator and how a spec points at it."""

    name: str
    emulator: type
    page_size: int  # the provider's list page size: refresh's bound
    base_model: str
    provider_lines: Callable[[str], list[str]]  # the emulator's URL -> the provider's settings (after its name)
    hyperparameters: str  # the spec's hyperparameters besides epoch_count
    list_counters: tuple[str, ...]  # the emulator's stats counters that are list calls


TARGETS = {
    "gemini": Target("gemini", TimedEmulator, gemini.LIST_PAGE_SIZE, "models/gemini-1.5-flash-001-tuning",
                     lambda url: [f"endpoint: {url}"], "batch_size: 4, learning_rate: 0.001", ("list_calls",)),
    # OpenAI's refresh lists the jobs in pages and the models once: both count against the same bound.
    "openai": Target("openai", TimedOpenAIEmulator, openai.LIST_PAGE_SIZE, "gpt-4o-mini-2024-07-18",
                     lambda url: [f"base_url: {url}/v1"], "batch_size: 4, learning_rate_multiplier: 1.0",
                     ("list_calls", "model_list_calls")),
}


@dataclass(frozen=True)
class Job:
    name: str
    examples: int
    epochs: int


def draw_jobs(seed: int, count: int, examples: tuple[int, int], epochs: tuple[int, int]) -> list[Job]:
    rng = random.Random(f"jobs:{seed}:{count}")
    return [Job(f"job-{index:04d}", rng.randint(*examples), rng.randint(*epochs)) for index in range(count)]


def write_project(root: Path, url: str, jobs: list[Job], seed: int, poll_seconds: float,
                  max_concurrent_jobs: int = 5, target: Target = TARGETS["gemini"]) -> None:
    """configs/models.yaml with one plain model of TARGET's provider per job, data/<job>.jsonl with its examples."""
    pool = make_pool(seed, short=600, long=1)
    lines = ["providers:", f"  {target.name}:", f"    api_key_env: {KEY_ENV}",
             *[f"    {line}" for line in target.provider_lines(url)],
             f"    max_concurrent_jobs: {max_concurrent_jobs}", f"    poll_seconds: {poll_seconds}",
             "defaults:", f"  provider: {target.name}", f"  base_model: {target.base_model}", "models:"]
    for job in jobs:
        rng = random.Random(f"gemini-data:{seed}:{job.name}")  # the same data for every provider
        style = FileStyle.draw(rng, pool, long_rate=0.0)
        style = FileStyle(style.labels, style.line_format)  # plain files: no duplicates, BOM or blank lines
        write_jsonl(root / "data" / f"{job.name}.jsonl", rng, pool, style, lines=job.examples)
        lines += [f"  {job.name}:", f"    display_name: Bench {job.name}", "    dataset:",
                  f"      train: ../data/{job.name}.jsonl",
                  f"    hyperparameters: {{epoch_count: {job.epochs}, {target.hyperparameters}}}"]
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
