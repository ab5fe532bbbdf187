"""Refresh API calls: `tuner refresh` lists tuned models in pages, never one call per model.

For each N in --refresh-sizes: N gemini models (50 examples, 1 epoch each) are applied with
`tuner apply --auto-approve` to a fresh in-process GeminiEmulator whose jobs finish at once (job_seconds 0,
real clock: only the number of calls matters here). Then one `tuner refresh` runs, and the emulator's
list_calls counter is read before and after. Bound: ceil(N / LIST_PAGE_SIZE) + 1 list calls, the page size
being the one runner/providers/gemini.py asks for. get_calls during refresh are printed too (should be 0).

The apply's wall time per N is printed as well (information: it shows how apply scales with the number of
models in one state file). Sizes are run in increasing order; a size whose apply is predicted (quadratic
extrapolation from the previous one) to exceed --refresh-budget seconds is skipped with a note.
"""

from __future__ import annotations

import shutil

from emulated import API_KEY, KEY_ENV, ScaledClock, TimedEmulator, draw_jobs, pages, write_project
from measure import FAIL, SKIP, Block, Result, Run, Settings, run, tuner, tuner_env, verdict

from runner.providers.gemini import LIST_PAGE_SIZE

APPLY_BUDGET_SECONDS = 900.0


def run_bench(settings: Settings) -> list[Result]:
    results: list[Result] = []
    previous: tuple[int, float] | None = None
    for count in sorted(settings.refresh_sizes):
        if previous is not None:
            predicted = previous[1] * (count / previous[0]) ** 2
            if predicted > APPLY_BUDGET_SECONDS:
                print(f"\nrefresh N={count}: skipped, its apply is predicted to take ~{predicted:.0f} s "
                      f"(> {APPLY_BUDGET_SECONDS:.0f} s budget)", flush=True)
                results.append(Result("refresh", f"list calls, N={count}", "skipped", "-", "-", "-", SKIP))
                continue
        result, apply_seconds = _one_size(settings, count)
        results.append(result)
        if apply_seconds is None:
            break
        previous = (count, apply_seconds)
    return results


def _one_size(settings: Settings, count: int) -> tuple[Result, float | None]:
    jobs = draw_jobs(settings.seed, count, examples=(50, 50), epochs=(1, 1))
    root = settings.workdir / f"refresh-s{settings.seed}-n{count}"
    shutil.rmtree(root, ignore_errors=True)
    env = tuner_env(**{KEY_ENV: API_KEY})
    bound = pages(count, LIST_PAGE_SIZE) + 1
    target = f"<= ceil(N/{LIST_PAGE_SIZE})+1 = {bound}"
    block = Block(f"refresh: list calls with N={count} models",
                  f"emulator list_calls during one `tuner refresh` after applying {count} gemini models")
    with TimedEmulator(ScaledClock(1.0), None, job_seconds=0.0, quota=5) as emulator:
        write_project(root, emulator.url, jobs, settings.seed, poll_seconds=0.01, max_concurrent_jobs=5)
        print(f"\nrefresh N={count}: applying {count} models ...", flush=True)
        applied = run(tuner("apply", "--auto-approve"), root, env)
        if not applied.ok or emulator.stats["tuned_models"] != count:
            return _failed(block, count, target, applied, emulator.stats["tuned_models"]), None
        before = emulator.stats
        refreshed = run(tuner("refresh"), root, env)
        after = emulator.stats
    lists = after["list_calls"] - before["list_calls"]
    gets = after["get_calls"] - before["get_calls"]
    block.figure("tuner apply", f"{applied.seconds:.1f} s wall for {count} models "
                                f"({applied.seconds / count * 1000:.0f} ms per model), peak RSS "
                                f"{applied.max_rss_mb:.0f} MB")
    if not refreshed.ok:
        block.figure("tuner refresh", f"FAILED: {refreshed.failure()}")
        block.print("", target, FAIL)
        return Result("refresh", f"list calls, N={count}", "refresh failed", str(bound), "-", target, FAIL), None
    block.figure("tuner refresh", f"{refreshed.seconds:.2f} s wall, peak RSS {refreshed.max_rss_mb:.0f} MB")
    block.figure("calls", f"{lists} list calls, {gets} get calls (page size {LIST_PAGE_SIZE})")
    outcome = verdict(lists <= bound)
    block.print(f"list calls / bound = {lists}/{bound} = {lists / bound:.2f}", target, outcome)
    return (Result("refresh", f"list calls, N={count}", str(lists), str(bound), f"{lists / bound:.2f}", target,
                   outcome), applied.seconds)


def _failed(block: Block, count: int, target: str, applied: Run, held: int) -> Result:
    why = applied.failure() if not applied.ok else f"the emulator holds {held} models, {count} expected"
    block.figure("tuner apply", f"FAILED: {why}")
    block.print("", target, FAIL)
    return Result("refresh", f"list calls, N={count}", "apply failed", "-", "-", target, FAIL)
