"""Where a cold and a warm `tuner plan` spend their time, for whoever optimizes next (no target).

On the plan benchmark's corpus (the scale tier's with --scale-models, as `make bench-scale` runs it):
  - start-up floor: `python -c pass` and `python -m runner --version` (median of --warm-runs);
  - `python -X importtime -m runner plan` (warm): the slowest imports, by self and by cumulative time;
  - `python -m cProfile -m runner plan`, cold (hash cache removed), warm (the first plan: every model a
    create) and warm after an apply (state holding every model, nothing changed: bench/applied.py), answered
    from the plan memo and with the memo removed (every model compared): the top functions by own time and
    by cumulative time, each also per model (microseconds), since the per-model cost is what grows with a
    fleet. cProfile roughly doubles the cost of Python-heavy code, so read the shares, not the absolute seconds.
"""

from __future__ import annotations

import pstats
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import applied
from corpus import ensure_project
from measure import INFO, Block, Result, Settings, median_run, repeat, run, tuner, tuner_env
from plan_bench import MEMO

TOP = 12
_IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s+)(\S+)")


@dataclass(frozen=True)
class ImportTime:
    module: str
    self_us: int
    cumulative_us: int
    depth: int


def run_bench(settings: Settings) -> list[Result]:
    models = settings.scale_models or settings.models
    root, _, _ = ensure_project(settings.workdir, settings.seed, models, settings.size_mb)
    results = [_startup(settings, root)]
    results.append(_imports(root))
    results.append(_profile(settings, root, "cold", models))
    results.append(_profile(settings, root, "warm", models))
    built = run([sys.executable, str(Path(applied.__file__)), str(root)], root, tuner_env())
    if built.ok:
        with applied.applied(root):
            results.append(_profile(settings, root, "unchanged", models))
            results.append(_profile(settings, root, "compared", models))
    return results


def _startup(settings: Settings, root: Path) -> Result:
    bare = median_run(repeat(settings.warm_runs, lambda: run([sys.executable, "-c", "pass"], root)))
    version = median_run(repeat(settings.warm_runs, lambda: run(tuner("--version"), root, tuner_env())))
    run(tuner("plan"), root, tuner_env())  # the hash cache is full
    plan = median_run(repeat(settings.warm_runs, lambda: run(tuner("plan"), root, tuner_env())))
    block = Block("hotspots: start-up floor of a warm plan", f"median of {settings.warm_runs} runs each")
    block.figure("python -c pass", f"{bare.seconds:.3f} s")
    block.figure("tuner --version", f"{version.seconds:.3f} s (interpreter + click + runner.cli)")
    block.figure("tuner plan (warm)", f"{plan.seconds:.3f} s, peak RSS {plan.max_rss_mb:.0f} MB")
    share = (plan.seconds - version.seconds) / plan.seconds if plan.seconds else 0.0
    block.figure("plan minus --version", f"{plan.seconds - version.seconds:.3f} s ({share:.0%} of the warm plan)")
    block.print()
    return Result("hotspots", "warm plan start-up", f"{version.seconds:.3f} s of {plan.seconds:.3f} s",
                  f"python -c pass {bare.seconds:.3f} s", "-", "(none)", INFO)


def parse_importtime(stderr: str) -> list[ImportTime]:
    rows = []
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            rows.append(ImportTime(match.group(4), int(match.group(1)), int(match.group(2)),
                                   (len(match.group(3)) - 1) // 2))
    return rows


def _imports(root: Path) -> Result:
    result = run([sys.executable, "-X", "importtime", "-m", "runner", "plan"], root, tuner_env())
    rows = parse_importtime(result.stderr)
    total = sum(r.self_us for r in rows)
    block = Block("hotspots: imports of a warm plan (python -X importtime)",
                  f"{len(rows)} modules imported, {total / 1e6:.3f} s of import time in all")
    for row in sorted(rows, key=lambda r: r.self_us, reverse=True)[:TOP]:
        block.figure(f"self {row.self_us / 1000:7.1f} ms", row.module)
    top_level = [r for r in rows if r.depth == 0]
    for row in sorted(top_level, key=lambda r: r.cumulative_us, reverse=True)[:TOP]:
        block.figure(f"cumulative {row.cumulative_us / 1000:7.1f} ms", row.module)
    block.print()
    heaviest = max(top_level, key=lambda r: r.cumulative_us, default=None)
    value = f"{heaviest.module} {heaviest.cumulative_us / 1000:.0f} ms" if heaviest else "-"
    return Result("hotspots", "heaviest top-level import", value, f"all imports {total / 1e6:.3f} s", "-",
                  "(none)", INFO)


PROFILED = {"cold": "cold plan (hash and spec caches removed)", "warm": "warm first plan (every model a create)",
            "unchanged": "warm plan after an apply (nothing changed: answered from the plan memo)",
            "compared": "warm plan after an apply, plan memo removed (nothing changed: every model compared)"}


def _profile(settings: Settings, root: Path, label: str, models: int) -> Result:
    output = settings.workdir / f"plan-{label}-{models}.prof"
    if label == "cold":
        shutil.rmtree(root / ".tuner" / "cache", ignore_errors=True)
        settings.cold()
    else:
        run(tuner("plan"), root, tuner_env())
        if label == "compared":
            shutil.rmtree(root / MEMO, ignore_errors=True)
    result = run([sys.executable, "-m", "cProfile", "-o", str(output), "-m", "runner", "plan"], root, tuner_env())
    block = Block(f"hotspots: cProfile of a {PROFILED[label]}, {models} models",
                  f"`python -m cProfile -m runner plan`, saved to {output}; per model: own or cumulative time / "
                  f"{models}")
    if not result.ok:
        block.figure("profile", f"FAILED: {result.failure()}")
        block.print()
        return Result("hotspots", f"{label} plan top function", "profile failed", "-", "-", "(none)", INFO)
    if label in ("unchanged", "compared") and "No changes." not in result.stdout:
        block.notes.append("the plan after an apply was not empty: this profile is not of an unchanged fleet")
    stats = pstats.Stats(str(output))
    total = max(stats.total_tt, 1e-9)
    own = _top(stats, key=lambda row: row[1][2])
    cumulative = _top(stats, key=lambda row: row[1][3], keep=_worth_showing)
    block.figure("profiled total", f"{total:.2f} s (wall {result.seconds:.2f} s under cProfile), "
                                   f"{total / models * 1e6:.0f} us per model")
    for name, (calls, tottime, _) in own:
        block.figure(f"own {tottime:6.2f} s {tottime / total:4.0%} {tottime / models * 1e6:5.0f} us/model",
                     f"{name} ({calls} calls)")
    for name, (calls, _, cumtime) in cumulative:
        block.figure(f"cum {cumtime:6.2f} s {cumtime / total:4.0%} {cumtime / models * 1e6:5.0f} us/model",
                     f"{name} ({calls} calls)")
    block.print()
    name, (_, tottime, _) = own[0]
    return Result("hotspots", f"{models} {label} plan top function (own time)", f"{name} {tottime / total:.0%}",
                  f"profiled {total / models * 1e6:.0f} us/model", "-", "(none)", INFO)


def _top(stats: pstats.Stats, key, keep=lambda func: True) -> list[tuple[str, tuple[int, float, float]]]:
    rows = sorted(stats.stats.items(), key=key, reverse=True)  # type: ignore[attr-defined]
    rows = [(func, values) for func, values in rows if keep(func)][:TOP]
    return [(_function_name(func), (values[1], values[2], values[3])) for func, values in rows]


def _worth_showing(func: tuple[str, int, str]) -> bool:
    """For cumulative time: tuner's own functions below the CLI plumbing, and library entry points."""
    filename, _, name = func
    if "/runner/" not in filename:
        return filename != "~" and "/click/" not in filename and "runpy" not in filename and name != "<module>"
    return not filename.endswith(("/runner/cli.py", "/runner/__main__.py")) and name != "<module>"


def _function_name(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name  # a built-in such as <method 'decode' of 'bytes' objects>
    path = Path(filename)
    parts = path.parts
    short = "/".join(parts[parts.index("runner"):]) if "runner" in parts else path.name
    return f"{short}:{line}({name})"
