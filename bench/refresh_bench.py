"""Refresh API calls: `tuner refresh` lists tuned models in pages, never one call per model.

For each provider of --emulated-providers (gemini, openai) and each N in --refresh-sizes: N models (50
examples, 1 epoch each) are applied with `tuner apply --auto-approve` to a fresh in-process emulator whose jobs
finish at once (job_seconds 0, real clock: only the number of calls matters here). Then one `tuner refresh`
runs, and the emulator's list counters are read before and after (OpenAI: the paged jobs.list calls plus the
models.list call). Bound: ceil(N / LIST_PAGE_SIZE) + 1 list calls, the page size being the one the provider
(runner/providers/<name>.py) asks for. get_calls during refresh are printed too (should be 0).

The apply's wall time per N is printed as well (information: it shows how apply scales with the number of
models in one state file). Sizes are run in increasing order; a size whose apply is predicted (quadratic
extrapolation from the previous one) to exceed --refresh-budget seconds is skipped with a note.
"""

from __future__ import annotations

import shutil

from emulated import API_KEY, KEY_ENV, TARGETS, ScaledClock, Target, draw_jobs, pages, write_project
from measure import FAIL, SKIP, Block, Result, Run, Settings, run, tuner, tuner_env, verdict

APPLY_BUDGET_SECONDS = 900.0


def run_bench(settings: Settings) -> list[Result]:
    return [result for name in settings.emulated_providers for result in _one_provider(settings, TARGETS[name])]


def _one_provider(settings: Settings, target: Target) -> list[Result]:
    results: list[Result] = []
    previous: tuple[int, float] | None = None
    for count in sorted(settings.refresh_sizes):
        if previous is not None:
            predicted = previous[1] * (count / previous[0]) ** 2
            if predicted > APPLY_BUDGET_SECONDS:
                print(f"\nrefresh {target.name} N={count}: skipped, its apply is predicted to take ~{predicted:.0f} s "
                      f"(> {APPLY_BUDGET_SECONDS:.0f} s budget)", flush=True)
                results.append(Result("refresh", _label(target, count), "skipped", "-", "-", "-", SKIP))
                continue
        result, apply_seconds = _one_size(settings, target, count)
        results.append(result)
        if apply_seconds is None:
            break
        previous = (count, apply_seconds)
    return results


def _label(target: Target, count: int) -> str:
    return f"list calls, N={count} ({target.name})"


def _one_size(settings: Settings, provider: Target, count: int) -> tuple[Result, float | None]:
    jobs = draw_jobs(settings.seed, count, examples=(50, 50), epochs=(1, 1))
    root = settings.workdir / f"refresh-{provider.name}-s{settings.seed}-n{count}"
    shutil.rmtree(root, ignore_errors=True)
    env = tuner_env(**{KEY_ENV: API_KEY})
    bound = pages(count, provider.page_size) + 1
    target = f"<= ceil(N/{provider.page_size})+1 = {bound}"
    label = _label(provider, count)
    block = Block(f"refresh: list calls with N={count} {provider.name} models",
                  f"emulator {' + '.join(provider.list_counters)} during one `tuner refresh` after applying "
                  f"{count} {provider.name} models")
    with provider.emulator(ScaledClock(1.0), None, job_seconds=0.0, quota=5) as emulator:
        write_project(root, emulator.url, jobs, settings.seed, poll_seconds=0.01, max_concurrent_jobs=5,
                      target=provider)
        print(f"\nrefresh {provider.name} N={count}: applying {count} models ...", flush=True)
        applied = run(tuner("apply", "--auto-approve"), root, env)
        if not applied.ok or emulator.stats["tuned_models"] != count:
            return _failed(block, label, target, applied, count, emulator.stats["tuned_models"]), None
        before = emulator.stats
        refreshed = run(tuner("refresh"), root, env)
        after = emulator.stats
    lists = sum(after[counter] - before[counter] for counter in provider.list_counters)
    gets = after["get_calls"] - before["get_calls"]
    block.figure("tuner apply", f"{applied.seconds:.1f} s wall for {count} models "
                                f"({applied.seconds / count * 1000:.0f} ms per model), peak RSS "
                                f"{applied.max_rss_mb:.0f} MB")
    if not refreshed.ok:
        block.figure("tuner refresh", f"FAILED: {refreshed.failure()}")
        block.print("", target, FAIL)
        return Result("refresh", label, "refresh failed", str(bound), "-", target, FAIL), None
    block.figure("tuner refresh", f"{refreshed.seconds:.2f} s wall, peak RSS {refreshed.max_rss_mb:.0f} MB")
    block.figure("calls", f"{lists} list calls, {gets} get calls (page size {provider.page_size})")
    outcome = verdict(lists <= bound)
    block.print(f"list calls / bound = {lists}/{bound} = {lists / bound:.2f}", target, outcome)
    return (Result("refresh", label, str(lists), str(bound), f"{lists / bound:.2f}", target, outcome),
            applied.seconds)


def _failed(block: Block, label: str, target: str, applied: Run, count: int, held: int) -> Result:
    why = applied.failure() if not applied.ok else f"the emulator holds {held} models, {count} expected"
    block.figure("tuner apply", f"FAILED: {why}")
    block.print("", target, FAIL)
    return Result("refresh", label, "apply failed", "-", "-", target, FAIL)
