"""Apply makespan: how close `tuner apply` comes to the best possible schedule under a 5-job quota.

Setup, once per provider of --emulated-providers (gemini, openai): --apply-models models (default 100) with
seeded sizes (50-400 examples) and epoch counts (1-10), against that provider's in-process emulator with quota=5
(concurrent jobs per API key; per key and base model on OpenAI's) and max_concurrent_jobs: 5 in the spec. Each
job lasts JOB_BASE + JOB_PER_EXAMPLE_EPOCH x examples x epochs emulated seconds (2.5 to 35 minutes), set per
job by bench/emulated.py's timed emulators because an emulator's own job_seconds is one global constant that
does not scale with epoch_count.

Time base: the emulator clock (ScaledClock, --apply-speed x wall time; default 200x, so poll_seconds 0.05 s
of wall time is 10 emulated seconds, the provider's default poll interval). Wall time would be meaningless
here: the jobs are simulated and what matters is how much of the quota's capacity the client leaves idle
between a job finishing and the next one starting (poll latency, submit cost, state writes), relative to
realistic job lengths. The emulator's own training time is excluded (the clock pauses while it trains).

Makespan = last job's end - first job's start, from the emulator's records of accepted jobs. Lower bound =
max(sum(d) / 5, max d). Target: makespan / lower bound <= 1.05. Also printed: the same ratio end to end
(process start to exit, including start-up, planning and the final poll), and the zero-overhead greedy
schedule in the order tuner submitted, which separates job ordering from per-job overhead.
"""

from __future__ import annotations

import shutil

from emulated import (
    API_KEY,
    KEY_ENV,
    TARGETS,
    Job,
    ScaledClock,
    Target,
    draw_jobs,
    list_schedule,
    lower_bound,
    write_project,
)
from measure import FAIL, Block, Result, Settings, run, tuner, tuner_env, verdict

QUOTA = 5
JOB_BASE = 120.0  # emulated seconds of fixed cost per job
JOB_PER_EXAMPLE_EPOCH = 0.5
RATIO_TARGET = 1.05


def job_duration(examples: int, epochs: int) -> float:
    return JOB_BASE + JOB_PER_EXAMPLE_EPOCH * examples * epochs


def run_bench(settings: Settings) -> list[Result]:
    return [result for name in settings.emulated_providers for result in _one_provider(settings, TARGETS[name])]


def _one_provider(settings: Settings, target: Target) -> list[Result]:
    jobs = draw_jobs(settings.seed, settings.apply_models, examples=(50, 400), epochs=(1, 10))
    root = settings.workdir / f"apply-{target.name}-s{settings.seed}-n{len(jobs)}"
    shutil.rmtree(root, ignore_errors=True)
    clock = ScaledClock(settings.apply_speed)
    with target.emulator(clock, job_duration, quota=QUOTA, job_seconds=JOB_BASE) as emulator:
        write_project(root, emulator.url, jobs, settings.seed, settings.apply_poll_seconds, max_concurrent_jobs=QUOTA,
                      target=target)
        print(f"\napply: {len(jobs)} {target.name} models on the emulator at {emulator.url}, "
              f"clock x{settings.apply_speed:g}", flush=True)
        began = clock()
        result = run(tuner("apply", "--auto-approve"), root, tuner_env(**{KEY_ENV: API_KEY}))
        ended = clock()
        stats = emulator.stats
        recorded = dict(emulator.jobs)
        per_job = emulator.per_job_durations
    return _report(settings, target.name, jobs, result, recorded, stats, ended - began, clock, per_job)


def _report(settings: Settings, provider: str, jobs: list[Job], result, recorded: dict[str, tuple[float, float]],
            stats: dict, end_to_end: float, clock: ScaledClock, per_job: bool) -> list[Result]:
    durations = [job_duration(j.examples, j.epochs) if per_job else JOB_BASE for j in jobs]
    bound = lower_bound(durations, QUOTA)
    label = f"makespan / lower bound ({provider})"
    block = Block(f"apply: makespan vs lower bound ({provider})",
                  f"`tuner apply --auto-approve`, {len(jobs)} {provider} models, emulator quota {QUOTA}, "
                  f"jobs of {min(durations):.0f}-{max(durations):.0f} emulated s (sum {sum(durations):.0f} s)")
    poll = settings.apply_poll_seconds
    block.notes.append(f"time base: emulator clock at {settings.apply_speed:g}x wall time; poll_seconds {poll:g} s "
                       f"wall = {poll * settings.apply_speed:g} emulated s; emulator training excluded "
                       f"({clock.paused_wall_seconds:.1f} s wall paused)")
    if not per_job:
        block.notes.append("LIMITATION: the emulator has no per-job duration hook; every job lasted job_seconds")
    target = f"<= {RATIO_TARGET}"
    complete = result.ok and len(recorded) == len(jobs)
    if not complete:
        why = result.failure() if not result.ok else f"{len(recorded)} jobs accepted, {len(jobs)} expected"
        block.figure("tuner apply", f"FAILED: {why}")
        block.print("", target, FAIL)
        return [Result("apply", label, "apply failed", f"{bound:.0f} s", "-", target, FAIL)]
    starts = sorted(recorded.values())
    makespan = max(s + d for s, d in starts) - starts[0][0]
    greedy = list_schedule([d for _, d in starts], QUOTA)
    ratio = makespan / bound
    block.figure("makespan", f"{makespan:.0f} emulated s (first job start to last job end)")
    block.figure("lower bound", f"{bound:.0f} emulated s = max(sum(d)/{QUOTA}, max d)")
    block.figure("end to end", f"{end_to_end:.0f} emulated s = {end_to_end / bound:.3f}x bound "
                               f"({result.seconds:.1f} s wall, process start to exit)")
    block.figure("greedy, tuner's order", f"{greedy:.0f} emulated s = {greedy / bound:.3f}x bound "
                                          f"(zero overhead, same submission order)")
    idle = makespan - greedy
    block.figure("overhead", f"{idle:.0f} emulated s over the zero-overhead schedule "
                             f"(~{idle / max(1, len(jobs) / QUOTA):.1f} s per job turnover per slot)")
    errors = stats.get("errors_by_status", {})
    block.figure("emulator calls", f"{stats['create_calls']} creates, {stats['get_calls']} gets, "
                                   f"{stats['list_calls']} lists, errors {errors or 'none'}")
    outcome = verdict(ratio <= RATIO_TARGET)
    block.print(f"makespan / lower bound = {ratio:.3f}", target, outcome)
    return [Result("apply", label, f"{makespan:.0f} s", f"{bound:.0f} s", f"{ratio:.3f}",
                   target, outcome)]
