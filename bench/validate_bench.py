"""Validation memory: `tuner validate` streams a large JSONL file in bounded memory.

Two projects, one model each over one large file (cached like the corpus):
  - typical lines (~350 bytes: sentences, 1% long inputs, unicode, escapes), --validate-mb (default 1024);
  - short lines (~65 bytes, e.g. {"text_input":"Screen great, #12","output":"spam"}), half that size but
    about 2.7x the examples: memory that grows per example, not per byte, shows here first.
The hash cache is removed and the page cache dropped (where permitted) before each run, so the whole file is
read and parsed. Measured: the process's peak RSS (GNU time %M) against the 150 MB bound, and throughput
(file MB / wall seconds, start-up included). The peak RSS of the same command on a 60-line file of the same
kind is printed as the floor (interpreter, imports), and the rest is shown per example.
"""

from __future__ import annotations

import shutil

from corpus import ensure_big_file
from measure import FAIL, INFO, Block, Result, Run, Settings, run, tuner, tuner_env, verdict

RSS_BOUND_MB = 150.0


def run_bench(settings: Settings) -> list[Result]:
    results = _case(settings, settings.validate_mb, short_lines=False)
    results += _case(settings, settings.validate_mb / 2, short_lines=True)
    return results


def _case(settings: Settings, size_mb: float, short_lines: bool) -> list[Result]:
    kind = "short lines" if short_lines else "typical lines"
    root, manifest, reused = ensure_big_file(settings.workdir, settings.seed, size_mb, short_lines)
    how = "reused from cache" if reused else f"generated in {manifest.seconds:.1f} s"
    megabytes, examples = manifest.total_bytes / 1e6, manifest.total_lines
    print(f"\nbig file ({kind}): {root}/data/big.jsonl ({megabytes:.1f} MB, {examples} lines; {how})", flush=True)
    floor = _floor(settings, short_lines)
    shutil.rmtree(root / ".tuner" / "cache", ignore_errors=True)
    dropped = settings.cold()
    result = run(tuner("validate"), root, tuner_env())
    block = Block(f"validate: peak RSS on one large file, {kind}",
                  f"`tuner validate`, one model over one {megabytes:.0f} MB JSONL file ({examples:,} examples, "
                  f"{manifest.total_bytes / examples:.0f} bytes per line), hash cache removed")
    block.notes.append("page cache dropped before the run" if dropped
                       else "page cache NOT dropped (file may be warm in the page cache)")
    metric = f"peak RSS, {kind}"
    target = f"< {RSS_BOUND_MB:.0f} MB"
    if not result.ok:
        block.figure("tuner validate", f"FAILED: {result.failure()}")
        block.print("", target, FAIL)
        return [Result("validate", metric, "tuner failed", f"bound {RSS_BOUND_MB:.0f} MB", "-", target, FAIL)]
    rate = _figures(block, result, floor, megabytes, examples)
    outcome = verdict(result.max_rss_mb < RSS_BOUND_MB)
    ratio = result.max_rss_mb / RSS_BOUND_MB
    block.print(f"peak RSS / bound = {ratio:.2f}x", target, outcome)
    return [
        Result("validate", metric, f"{result.max_rss_mb:.1f} MB", f"bound {RSS_BOUND_MB:.0f} MB", f"{ratio:.2f}x",
               target, outcome),
        Result("validate", f"throughput, {kind}", f"{rate:.1f} MB/s", f"{megabytes:.0f} MB, {examples:,} lines", "-",
               "(none)", INFO),
    ]


def _figures(block: Block, result: Run, floor: Run, megabytes: float, examples: int) -> float:
    rate = megabytes / result.seconds
    block.figure("tuner validate", f"{result.seconds:.2f} s wall, {result.cpu_seconds:.2f} s CPU, "
                                   f"peak RSS {result.max_rss_mb:.1f} MB")
    block.figure("throughput", f"{rate:.1f} MB/s ({examples / result.seconds:,.0f} examples/s)")
    block.figure("floor", f"peak RSS {floor.max_rss_mb:.1f} MB (the same command on a 60-line file)")
    above = result.max_rss_mb - floor.max_rss_mb
    block.figure("above that floor", f"{above:.1f} MB = {above * 1e6 / examples:.1f} bytes per example")
    return rate


def _floor(settings: Settings, short_lines: bool) -> Run:
    root, _, _ = ensure_big_file(settings.workdir, settings.seed, 0.001, short_lines)
    shutil.rmtree(root / ".tuner" / "cache", ignore_errors=True)
    return run(tuner("validate", "--allow-small-dataset"), root, tuner_env())
