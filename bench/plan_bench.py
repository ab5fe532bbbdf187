"""Plan speed and memory on a large project, against sha256sum and DVC over the very same data files.

Measured (each a subprocess, start-up included, cwd = the corpus project, NO_COLOR=1):
  - cold `tuner plan`: the dataset hash cache (.tuner/cache) removed and, where we may (root), the OS page
    cache dropped first, so every byte is read from disk and parsed;
  - `sha256sum` over all data files, page cache dropped first: the speed of merely reading and hashing the
    bytes, the floor for any content hash;
  - DVC, when installed (or installable with pip): `dvc init --no-scm` in the corpus project itself, so it
    sees the same files with no copy or symlink (its own .dvc/ folder, its site cache pointed under .dvc/);
    cold `dvc add --no-commit data` with .dvc/cache, .dvc/tmp, the site cache and data.dvc removed and the
    page cache dropped (DVC hashes every file, nothing is copied into its cache);
  - those three cold measurements run --cold-runs times (median), interleaved round by round;
  - warm `tuner plan` (the hash cache full) and, after an untimed `dvc commit` (copies the files into
    .dvc/cache: DVC's steady state, "up to date", its state db mapping stat to hash as tuner's cache does),
    warm `dvc status`; --warm-runs times (median), interleaved, after one untimed warm-up each. Two warm
    plans: the first plan (empty state: every model a create) and the plan after an apply (state holding every
    model, nothing changed: bench/applied.py records it without training), which is `dvc status`'s situation.

Ratios: warm plan with nothing changed vs dvc status (tuner at least 1.5x faster), cold plan vs dvc add (tuner
at most 0.9x as slow at the base tier, 1.0x at the scale tier), cold-plan MB/s vs sha256sum MB/s (at least
0.5x), peak RSS of the cold plan vs dvc add (at most 1.5x).

--scale-models N (make bench-scale) measures a second tier of N models over the same number of MB and adds
its growth over the base tier (at most linear: N/base for warm and cold) and the first plan's absolute bound.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import applied
from corpus import Manifest, ensure_project
from measure import (
    FAIL,
    INFO,
    PASS,
    RSS_SOURCE,
    SKIP,
    Block,
    Result,
    Run,
    Settings,
    median_run,
    run,
    spread,
    tuner,
    tuner_env,
    verdict,
)

WARM_SPEEDUP_TARGET = 1.5
COLD_RATIO_TARGET = 0.9  # the base tier (1,000 models): with margin under dvc add
SCALE_COLD_RATIO_TARGET = 1.0  # the scale tier (10,000 models)
THROUGHPUT_TARGET = 0.5
RSS_RATIO_TARGET = 1.5  # peak RSS of a cold plan vs dvc add's
FIRST_PLAN_SECONDS = 2.0  # the first plan of the scale tier (every model a create)
MEMO = Path(".tuner") / "cache" / "memo"  # the plan memo (runner/memo.py), relative to the corpus project


@dataclass
class Contender:
    """One tool's command, whether it is measured cold (and what else makes it cold), and its runs."""

    name: str
    command: list[str]
    env: dict[str, str] | None = None
    cold: bool = False  # drop the page cache before each run
    reset: Callable[[], None] | None = None  # remove the tool's own cache before each run
    runs: list[Run] = field(default_factory=list)

    def once(self, root: Path, settings: Settings) -> bool:
        if self.reset is not None:
            self.reset()
        if self.cold:
            settings.cold()
        self.runs.append(run(self.command, root, self.env))
        return self.runs[-1].ok

    @property
    def result(self) -> Run | None:
        if not self.runs:
            return None
        return median_run(self.runs) if all(r.ok for r in self.runs) else self.runs[-1]


@dataclass
class Figures:
    models: int = 0
    cold_plan: Run | None = None
    warm_plan: Run | None = None  # the first plan: every model a create
    unchanged_plan: Run | None = None  # after an apply: state holds every model, nothing changed
    compared_plan: Run | None = None  # the same with the plan memo removed before each run: every model compared
    sha256: Run | None = None
    dvc_add: Run | None = None
    dvc_status: Run | None = None
    dropped: bool = False
    dvc_note: str = ""


def run_bench(settings: Settings) -> list[Result]:
    base, results = _tier(settings, settings.models, COLD_RATIO_TARGET)
    if not settings.scale_models:
        return results
    scale, scale_results = _tier(settings, settings.scale_models, SCALE_COLD_RATIO_TARGET)
    return results + scale_results + [_first_plan(scale)] + _growth(base, scale)


def _tier(settings: Settings, models: int, cold_target: float) -> tuple[Figures, list[Result]]:
    root, manifest, reused = ensure_project(settings.workdir, settings.seed, models, settings.size_mb)
    how = "reused from cache" if reused else f"generated in {manifest.seconds:.1f} s"
    print(f"\ncorpus: {root} ({len(manifest.files)} files, {manifest.total_bytes / 1e6:.1f} MB, "
          f"{manifest.total_lines} lines; {how})", flush=True)
    figures = Figures(models=models, dropped=settings.cold())
    dvc, figures.dvc_note = _dvc_ready(settings, root)
    _measure_cold(settings, root, manifest, dvc, figures)
    _measure_warm(settings, root, dvc, figures)
    return figures, _report(settings, manifest, figures, cold_target)


# -- measurements -----------------------------------------------------------------------------------------
# Runs of the tools being compared are interleaved round by round, so that load from anything else on the
# machine (2 CPUs, possibly shared) falls on every tool alike rather than on whichever ran during it.


def _rounds(settings: Settings, root: Path, contenders: list[Contender], count: int) -> None:
    active = list(contenders)
    for _ in range(count):
        active = [c for c in active if c.once(root, settings)]
    for contender in contenders:
        print(f"{contender.name}: {spread(contender.runs)}", flush=True)


def _measure_cold(settings: Settings, root: Path, manifest: Manifest, dvc: str | None, figures: Figures) -> None:
    cold_plan = Contender("cold tuner plan", tuner("plan"), tuner_env(), cold=True,
                          reset=lambda: shutil.rmtree(root / ".tuner" / "cache", ignore_errors=True))
    contenders = [cold_plan]
    sha256 = dvc_add = None
    if shutil.which("sha256sum"):
        sha256 = Contender("sha256sum", ["sha256sum", *(f.path for f in manifest.files)], cold=True)
        contenders.append(sha256)
    if dvc is not None:
        dvc_add = Contender("dvc add --no-commit", [dvc, "add", "--no-commit", "-q", "data"], _dvc_env(), cold=True,
                            reset=lambda: _dvc_cold_reset(root))
        contenders.append(dvc_add)
    _rounds(settings, root, contenders, settings.cold_runs)
    figures.cold_plan = cold_plan.result
    figures.sha256 = sha256.result if sha256 else None
    figures.dvc_add = dvc_add.result if dvc_add else None


def _measure_warm(settings: Settings, root: Path, dvc: str | None, figures: Figures) -> None:
    """The first plan and `dvc status` interleaved, then the plan after an apply and `dvc status` again (each
    pair shares the machine's load of its moment; the two dvc series are pooled)."""
    dvc_status = None
    if dvc is not None and figures.dvc_add is not None and figures.dvc_add.ok:
        committed = run([dvc, "commit", "-f", "-q", "data.dvc"], root, _dvc_env())  # untimed: the steady state
        if committed.ok:
            dvc_status = Contender("dvc status", [dvc, "status"], _dvc_env())
        else:
            figures.dvc_note = f"dvc commit failed: {committed.failure()}"
    peers = [dvc_status] if dvc_status else []
    warm_plan = Contender("warm tuner plan (first plan: every model a create)", tuner("plan"), tuner_env())
    _warm_rounds(settings, root, [warm_plan, *peers])
    built = run([sys.executable, str(Path(applied.__file__)), str(root)], root, tuner_env())
    unchanged = Contender("warm tuner plan (after an apply: nothing changed)", tuner("plan"), tuner_env())
    compared = Contender("warm tuner plan (after an apply: nothing changed; plan memo removed)", tuner("plan"),
                         tuner_env(), reset=lambda: shutil.rmtree(root / MEMO, ignore_errors=True))
    if built.ok:
        with applied.applied(root):
            _warm_rounds(settings, root, [unchanged, compared, *peers])
        if unchanged.runs and "No changes." not in unchanged.runs[-1].stdout:
            print(f"the plan after an apply is not empty: {unchanged.runs[-1].stdout[-300:]}", flush=True)
    else:
        print(f"recording the corpus as applied failed: {built.failure()}", flush=True)
    figures.warm_plan, figures.unchanged_plan, figures.compared_plan = warm_plan.result, unchanged.result, \
        compared.result
    figures.dvc_status = dvc_status.result if dvc_status else None


def _warm_rounds(settings: Settings, root: Path, contenders: list[Contender]) -> None:
    for contender in contenders:  # warm-up: the hash cache and state db are full, the files are in memory
        run(contender.command, root, contender.env)
    _rounds(settings, root, contenders, settings.warm_runs)


def find_dvc(install: bool) -> tuple[str | None, str]:
    """The dvc executable, after one `pip install dvc` into this environment if it is missing."""
    candidates = [shutil.which("dvc"), str(Path(sys.executable).parent / "dvc")]
    found = next((c for c in candidates if c and Path(c).exists()), None)
    if found or not install:
        return found, "installed" if found else "not installed (and --no-install-dvc)"
    print("dvc is not installed: trying `pip install dvc` once ...", flush=True)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "dvc"], capture_output=True, text=True,
                            timeout=1800, check=False)
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        return None, f"unavailable: pip install dvc failed ({tail})"
    found = next((c for c in [shutil.which("dvc"), candidates[1]] if c and Path(c).exists()), None)
    return found, "installed by this run (pip install dvc)" if found else "unavailable: installed but not found"


def _dvc_env() -> dict[str, str]:
    return tuner_env(DVC_NO_ANALYTICS="1")


def _dvc_ready(settings: Settings, root: Path) -> tuple[str | None, str]:
    """dvc and a DVC repo in the corpus project itself (same files, its own .dvc/ folder), or why not."""
    dvc, note = find_dvc(settings.install_dvc)
    if dvc is None:
        print(f"dvc {note}: its ratios are skipped", flush=True)
        return None, note
    version = run([dvc, "--version"], root, _dvc_env())
    note = f"{note}, version {version.stdout.strip() or '?'}"
    if (root / ".dvc" / "config").exists():
        _dvc_ignore_tool_folders(root)
        return dvc, note
    for args in (["init", "--no-scm", "-q"], ["config", "core.analytics", "false"],
                 ["config", "core.site_cache_dir", str(root / ".dvc" / "site-cache")]):
        result = run([dvc, *args], root, _dvc_env())
        if not result.ok:
            shutil.rmtree(root / ".dvc", ignore_errors=True)
            return None, f"unavailable: {result.failure()}"
    _dvc_ignore_tool_folders(root)
    return dvc, note


# Folders of other tools in the corpus project, as a DVC user would ignore them: `dvc status` walks the
# workspace, and the 10,000 model folders of the applied state (.bench-applied/, swapped into .tuner/ while
# measured) made it 1.8x slower at 10,000 models (2.4 s -> 1.35 s once ignored), an unfair handicap.
DVC_IGNORED = ("/.tuner/", "/.bench-applied/")


def _dvc_ignore_tool_folders(root: Path) -> None:
    path = root / ".dvcignore"
    lines = path.read_text().splitlines() if path.exists() else []
    missing = [entry for entry in DVC_IGNORED if entry not in lines]
    if missing:
        path.write_text("".join(f"{line}\n" for line in lines + missing))


def _dvc_cold_reset(root: Path) -> None:
    for path in (root / ".dvc" / "cache", root / ".dvc" / "tmp", root / ".dvc" / "site-cache"):
        shutil.rmtree(path, ignore_errors=True)
    (root / "data.dvc").unlink(missing_ok=True)


# -- report -----------------------------------------------------------------------------------------------


def _describe(name: str, result: Run | None) -> str:
    if result is None:
        return "not measured"
    if not result.ok:
        return f"FAILED: {result.failure()}"
    return f"{result.seconds:.3f} s wall, {result.cpu_seconds:.2f} s CPU, peak RSS {result.max_rss_mb:.1f} MB"


def _usable(*runs: Run | None) -> bool:
    return all(r is not None and r.ok for r in runs)


def _report(settings: Settings, manifest: Manifest, f: Figures, cold_target: float) -> list[Result]:
    size = f"{f.models} models, {manifest.total_bytes / 1e6:.1f} MB in {len(manifest.files)} files"
    cache_note = ("page cache dropped before every cold run (sync; echo 3 > /proc/sys/vm/drop_caches)" if f.dropped
                  else "page cache NOT dropped: files were warm in the page cache for all tools alike")
    dvc_note = f"dvc: {f.dvc_note}"
    return [*(_warm(size, f, dvc_note, settings, kind) for kind in WARM_PLANS),
            _cold(size, f, dvc_note, cache_note, settings, cold_target),
            _throughput(size, manifest, f, cache_note, settings), _memory(size, f)]


# The warm plans: which run, what it is, and whether the target holds it. The plan after an apply is held to the
# target (with its plan memo, as every second plan of an unchanged project runs). The others are for information:
# the first plan renders every create, which dvc status never does; the plan with its memo removed shows what
# comparing every model costs.
WARM_PLANS = {
    "first plan": (lambda f: f.warm_plan, "first plan (every model a create)", False),
    "nothing changed": (lambda f: f.unchanged_plan, "nothing changed (state: every model applied)", True),
    "nothing changed, memo removed": (lambda f: f.compared_plan, "nothing changed, plan memo removed before each "
                                      "run (every model compared)", False),
}


def _warm(size: str, f: Figures, dvc_note: str, settings: Settings, kind: str) -> Result:
    pick, what, unchanged = WARM_PLANS[kind]
    own = pick(f)
    metric = f"{f.models} warm plan, {kind} vs dvc status"
    block = Block(f"plan: warm tuner plan, {what}, vs dvc status",
                  f"`tuner plan` with a full hash cache vs `dvc status` (warm state db); {size}; "
                  f"median of {settings.warm_runs}, interleaved")
    block.figure("tuner plan (warm)", _describe("tuner", own))
    block.figure("dvc status", _describe("dvc", f.dvc_status))
    block.notes.append(dvc_note)
    target = f">= {WARM_SPEEDUP_TARGET}x faster" if unchanged else "(none)"
    if not _usable(own, f.dvc_status):
        return _unmeasured(block, metric, target, own)
    speedup = f.dvc_status.seconds / own.seconds
    relative = f"tuner is {speedup:.2f}x faster" if speedup >= 1 else f"tuner is {1 / speedup:.2f}x slower"
    ratio = f"dvc status / tuner plan = {speedup:.2f}x ({relative})"
    result = verdict(speedup >= WARM_SPEEDUP_TARGET) if unchanged else INFO
    block.print(ratio, f"tuner {target}" if unchanged else "", result)
    return Result("plan", metric, f"{own.seconds:.3f} s", f"{f.dvc_status.seconds:.3f} s", f"{speedup:.2f}x",
                  target, result)


def _first_plan(f: Figures) -> Result:
    target = f"<= {FIRST_PLAN_SECONDS:.1f} s"
    metric = f"{f.models} warm first plan (creates)"
    if not _usable(f.warm_plan):
        return Result("plan", metric, "not measured", "-", "-", target, FAIL)
    ok = f.warm_plan.seconds <= FIRST_PLAN_SECONDS
    return Result("plan", metric, f"{f.warm_plan.seconds:.3f} s", "bound", "-", target, verdict(ok))


def _growth(base: Figures, scale: Figures) -> list[Result]:
    """How each plan's time grows from the base tier to the scale tier: at most linearly in the models."""
    bound = scale.models / base.models
    block = Block(f"plan: growth from {base.models} to {scale.models} models",
                  "the same measurements at both tiers (same MB of data); ratio of wall times")
    results = []
    for label, pick in (("cold plan", lambda f: f.cold_plan), ("warm first plan", lambda f: f.warm_plan),
                        ("warm plan, nothing changed", lambda f: f.unchanged_plan),
                        ("warm plan, memo removed", lambda f: f.compared_plan)):
        small, large = pick(base), pick(scale)
        metric = f"{label} {scale.models}/{base.models}"
        if not _usable(small, large):
            results.append(Result("plan", metric, "not measured", "-", "-", f"<= {bound:g}x", FAIL))
            continue
        growth = large.seconds / small.seconds
        block.figure(label, f"{small.seconds:.3f} s -> {large.seconds:.3f} s: {growth:.2f}x")
        results.append(Result("plan", metric, f"{large.seconds:.3f} s", f"{small.seconds:.3f} s", f"{growth:.2f}x",
                              f"<= {bound:g}x", verdict(growth <= bound)))
    block.print("", f"each <= {bound:g}x (linear or better)", FAIL if FAIL in (r.verdict for r in results) else PASS)
    return results


def _cold(size: str, f: Figures, dvc_note: str, cache_note: str, settings: Settings, cold_target: float) -> Result:
    block = Block("plan: cold tuner plan vs dvc add --no-commit",
                  f"`tuner plan` with .tuner/cache removed vs `dvc add --no-commit data` with DVC's cache and "
                  f"state removed; {size}; median of {settings.cold_runs}, interleaved")
    block.figure("tuner plan (cold)", _describe("tuner", f.cold_plan))
    block.figure("dvc add --no-commit", _describe("dvc", f.dvc_add))
    block.notes += [cache_note, dvc_note]
    target = f"<= {cold_target}x"
    metric = f"{f.models} cold plan vs dvc add"
    if not _usable(f.cold_plan, f.dvc_add):
        return _unmeasured(block, metric, target, f.cold_plan)
    ratio = f.cold_plan.seconds / f.dvc_add.seconds
    result = verdict(ratio <= cold_target)
    block.print(f"tuner plan / dvc add = {ratio:.2f}x", f"tuner {target}", result)
    return Result("plan", metric, f"{f.cold_plan.seconds:.2f} s", f"{f.dvc_add.seconds:.2f} s",
                  f"{ratio:.2f}x", target, result)


def _throughput(size: str, manifest: Manifest, f: Figures, cache_note: str, settings: Settings) -> Result:
    megabytes = manifest.total_bytes / 1e6
    block = Block("plan: cold-plan throughput vs sha256sum",
                  f"data MB / wall seconds of cold `tuner plan` vs `sha256sum` of all files (median of "
                  f"{settings.cold_runs}, interleaved with the cold plans); {size}")
    block.figure("tuner plan (cold)", _describe("tuner", f.cold_plan))
    block.figure("sha256sum", _describe("sha256sum", f.sha256))
    block.notes.append(cache_note)
    target = f">= {THROUGHPUT_TARGET}x sha256sum"
    metric = f"{f.models} cold plan MB/s vs sha256sum"
    if not _usable(f.cold_plan, f.sha256):
        return _unmeasured(block, metric, target, f.cold_plan)
    tuner_rate, sha_rate = megabytes / f.cold_plan.seconds, megabytes / f.sha256.seconds
    block.figure("throughput", f"tuner {tuner_rate:.1f} MB/s, sha256sum {sha_rate:.1f} MB/s")
    ratio = tuner_rate / sha_rate
    result = verdict(ratio >= THROUGHPUT_TARGET)
    block.print(f"tuner / sha256sum = {ratio:.2f}x", target, result)
    return Result("plan", metric, f"{tuner_rate:.1f} MB/s", f"{sha_rate:.1f} MB/s", f"{ratio:.2f}x", target, result)


def _memory(size: str, f: Figures) -> Result:
    block = Block("plan: peak RSS of each tool", f"{RSS_SOURCE}; {size}")
    tools = [("tuner plan (cold)", f.cold_plan), ("tuner plan (warm, first)", f.warm_plan),
             ("tuner plan (warm, nothing changed)", f.unchanged_plan),
             ("tuner plan (warm, nothing changed, memo removed)", f.compared_plan), ("sha256sum", f.sha256),
             ("dvc add --no-commit", f.dvc_add), ("dvc status", f.dvc_status)]
    for label, result in tools:
        block.figure(label, f"{result.max_rss_mb:.1f} MB" if _usable(result) else "not measured")
    target = f"cold plan <= {RSS_RATIO_TARGET}x dvc add"
    metric = f"{f.models} peak RSS, cold plan vs dvc add"
    if not _usable(f.cold_plan, f.dvc_add):
        block.print("", target, SKIP)
        return Result("plan", metric, "-", "-", "-", target, SKIP)
    ratio = f.cold_plan.max_rss_mb / f.dvc_add.max_rss_mb
    result = verdict(ratio <= RSS_RATIO_TARGET)
    block.print(f"tuner plan (cold) / dvc add = {ratio:.2f}x", target, result)
    return Result("plan", metric, f"{f.cold_plan.max_rss_mb:.0f} MB", f"{f.dvc_add.max_rss_mb:.0f} MB",
                  f"{ratio:.2f}x", f"<= {RSS_RATIO_TARGET}x", result)


def _unmeasured(block: Block, metric: str, target: str, own: Run | None) -> Result:
    broken = own is not None and not own.ok
    block.print("", target, FAIL if broken else SKIP)
    return Result("plan", metric, "tuner failed" if broken else "-", "peer unavailable" if not broken else "-", "-",
                  target, FAIL if broken else SKIP)
