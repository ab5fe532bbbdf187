"""tuner's benchmark suite (`make bench`): ratios measured in one run against a peer or a computed bound.

Benchmarks (--only NAME, repeatable):
  plan      cold and warm `tuner plan` on N models / S MB vs sha256sum and DVC over the same files
  validate  peak RSS and throughput of `tuner validate` on one ~1 GB JSONL file (and one of short lines)
  apply     makespan of `tuner apply` on the Gemini and OpenAI emulators vs max(sum(d)/quota, max d)
  refresh   emulator list calls during one `tuner refresh` (Gemini and OpenAI) vs ceil(N/page)+1
  state     state bytes one apply writes (local) and uploads (GCS) for N changes among M models vs final state
  hotspots  start-up floor, slowest imports and cProfile top functions of a cold and a warm plan

Each prints one block (what was measured, figures, ratio, target, PASS/FAIL), then a summary table. The
exit code is 0 even when a target is missed: these are measurements, not tests. Everything is written
under --workdir (default /tmp/tuner-bench), never inside the repository; corpora are cached there.

    python3 bench/run.py                 # full scale: 1,000 models, 450 MB, 1 GB file, 100 apply models, N=100,250,1000
                                         # (state: 100 changes among 1,000 models)
    python3 bench/run.py --quick         # 100 models, 45 MB, 100 MB file, 30 apply models, N=100,250; state 10/100
    python3 bench/run.py --only state --state-models 10000 --state-changes 1000   # `make bench-scale`
    python3 bench/run.py --only plan --models 200 --size-mb 90
    python3 bench/run.py --only plan --scale-models 10000   # make bench-scale: 1,000 and 10,000 models, growth
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's runner, not an installed one

import apply_bench
import hotspots
import plan_bench
import refresh_bench
import state_bytes
import validate_bench
from measure import FAIL, REPO, Result, Settings, print_summary

BENCHMARKS: dict[str, Callable[[Settings], list[Result]]] = {
    "plan": plan_bench.run_bench,
    "validate": validate_bench.run_bench,
    "apply": apply_bench.run_bench,
    "refresh": refresh_bench.run_bench,
    "state": state_bytes.run_bench,
    "hotspots": hotspots.run_bench,
}
QUICK = {"models": 100, "size_mb": 45.0, "validate_mb": 100.0, "apply_models": 30, "refresh_sizes": "100,250",
         "warm_runs": 3, "state_models": 100, "state_changes": 10}
FULL = {"models": 1000, "size_mb": 450.0, "validate_mb": 1024.0, "apply_models": 100, "refresh_sizes": "100,250,1000",
        "warm_runs": 5, "state_models": 1000, "state_changes": 100}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--quick", action="store_true", help="reduced scale (defaults below are for full scale)")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tuner-bench"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--models", type=int, help="models (and data files) in the plan corpus [1000]")
    parser.add_argument("--size-mb", type=float, help="total size of the plan corpus [450]")
    parser.add_argument("--scale-models", type=int, default=0,
                        help="also measure plan at this many models over the same MB, and its growth [none; "
                             "make bench-scale: 10000]")
    parser.add_argument("--validate-mb", type=float, help="size of the validate benchmark's one file [1024]")
    parser.add_argument("--apply-models", type=int, help="models in the apply makespan benchmark [100]")
    parser.add_argument("--apply-speed", type=float, default=200.0, help="emulator clock speed-up [200]")
    parser.add_argument("--apply-poll-seconds", type=float, default=0.05, help="poll_seconds (wall) in apply [0.05]")
    parser.add_argument("--refresh-sizes", help="comma-separated model counts for refresh [100,250,1000]")
    parser.add_argument("--state-models", type=int, help="models in the state-bytes benchmark's state [1000]")
    parser.add_argument("--state-changes", type=int, help="models the state-bytes benchmark's apply replaces [100]")
    parser.add_argument("--emulated-providers", default="gemini,openai",
                        help="comma-separated providers the apply and refresh benchmarks run on [gemini,openai]")
    parser.add_argument("--warm-runs", type=int, help="repetitions of warm measurements (median) [5]")
    parser.add_argument("--cold-runs", type=int, default=3,
                        help="repetitions of cold plan, sha256sum and dvc add, interleaved (median) [3]")
    parser.add_argument("--no-install-dvc", action="store_true", help="do not try `pip install dvc` when missing")
    parser.add_argument("--no-drop-caches", action="store_true", help="never drop the OS page cache")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    workdir = args.workdir.resolve()
    if workdir == REPO or REPO in workdir.parents:
        raise SystemExit(f"--workdir {workdir} is inside the repository {REPO}; use a scratch directory")
    workdir.mkdir(parents=True, exist_ok=True)
    return Settings(
        workdir=workdir, seed=args.seed, models=args.models, size_mb=args.size_mb, scale_models=args.scale_models,
        warm_runs=args.warm_runs,
        cold_runs=args.cold_runs, validate_mb=args.validate_mb,
        apply_models=args.apply_models, apply_speed=args.apply_speed, apply_poll_seconds=args.apply_poll_seconds,
        refresh_sizes=tuple(int(n) for n in args.refresh_sizes.split(",") if n.strip()),
        state_models=args.state_models, state_changes=args.state_changes,
        emulated_providers=tuple(p.strip() for p in args.emulated_providers.split(",") if p.strip()),
        install_dvc=not args.no_install_dvc, drop_caches=not args.no_drop_caches,
    )


def _bytecode_cache(workdir: Path) -> None:
    """Let every measured Python process (tuner, dvc) keep compiled bytecode, as on a user's machine.

    This machine sets PYTHONDONTWRITEBYTECODE=1, so without this every `tuner` start would recompile
    runner/*.py. The cache goes under the work directory (PYTHONPYCACHEPREFIX), never into the repo.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    _bytecode_cache(settings.workdir)
    names = args.only or list(BENCHMARKS)
    print(f"tuner benchmarks ({'quick' if args.quick else 'full'} scale): {', '.join(names)}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"workdir {settings.workdir}; load average {_load()}", flush=True)
    results: list[Result] = []
    started = time.perf_counter()
    for name in names:
        began = time.perf_counter()
        try:
            results += BENCHMARKS[name](settings)
        except Exception as error:  # one broken benchmark must not hide the others' figures
            print(f"\n== {name}: crashed: {type(error).__name__}: {error} ==", flush=True)
            traceback.print_exc()
            results.append(Result(name, "(benchmark crashed)", f"{type(error).__name__}", "-", "-", "-", FAIL))
        print(f"[{name} took {time.perf_counter() - began:.0f} s]", flush=True)
    print_summary(results)
    print(f"total {time.perf_counter() - started:.0f} s; load average {_load()} (other work on this machine "
          f"slows every tool it overlaps; compared runs are interleaved to share it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
