"""Seeded, cached benchmark corpora: a tuner project (configs/ + data/) and single large JSONL files.

What it makes, and why it looks the way it does:

- ``ensure_project``: N local-provider models over N JSONL files totalling about S MB. File sizes are
  log-normal (a few big files, many small ones), every file has at least MIN_LINES examples and a small
  label set of its own. Lines are realistic for the hash path: mostly short inputs, about 1% long ones
  (4-20 KB), raw UTF-8 and ``\\uXXXX`` escapes (including surrogate pairs), quotes, backslashes, tabs and
  newlines escaped inside strings, several key orders and spacings, an occasional extra key; a few files
  have a BOM, CRLF line ends, blank lines or a duplicated example. Specs use ``for_each`` (list and
  mapping form, ``${key}`` in block-style paths) in half of the files and plain entries in the others.
- ``ensure_big_file``: one project with one model over a single file of about S MB (validation memory).

Speed: JSON-escaped fragments are made once per corpus (a pool), each line is one bytes %-format of pooled
fragments plus a unique line number, and files are written in chunks of a few MB. Corpora are cached under
the work directory keyed by (kind, seed, models, size); a marker written last makes a half-written corpus
count as absent.

Run alone: ``python bench/corpus.py --workdir /tmp/tuner-bench --models 100 --size-mb 45``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

MIN_LINES = 60  # above the 50-example minimum, and above every batch size used
CHUNK_BYTES = 4 << 20  # write in chunks of about this many bytes
FORMAT_VERSION = 3  # bump when the generator changes, so cached corpora are rebuilt
MARKER = "corpus.json"
MODELS_PER_SPEC = 50

_WORDS = (
    "the", "a", "an", "order", "package", "arrived", "late", "early", "broken", "fine", "great", "terrible",
    "refund", "replace", "shipping", "invoice", "billing", "account", "password", "login", "error", "crash", "slow",
    "fast", "screen", "battery", "charger", "cable", "update", "install", "delivery", "courier", "tracking",
    "number", "customer", "support", "agent", "ticket", "priority", "urgent", "question", "answer", "please",
    "thanks", "again", "never", "always", "sometimes", "yesterday", "today", "tomorrow", "week", "month", "price",
    "discount", "coupon", "code", "warranty", "return", "label", "box", "damaged", "missing", "item", "size",
    "colour", "color", "fits", "small", "large", "medium", "quality", "service", "app", "website", "checkout",
    "cart", "payment", "card", "declined", "bank", "transfer", "paypal", "subscription", "cancel", "renew"
)
_UNICODE_WORDS = ("café", "naïve", "Straße", "déjà-vu", "niño", "Ärger", "日本語", "東京", "привет", "спасибо",
                  "مرحبا", "שלום", "γειά", "😀", "🚀", "👍🏽", "€12,50", "£3", "½", "—", "…", "«ok»")
_PUNCT = (".", ",", "!", "?", ";", ":", " -", "")
_ODD = ('"quoted"', "back\\slash", "tab\there", "line\nbreak", "cr\r\nlf", "C:\\path\\to\\file", "{json: [1]}",
        "</script>", "'single'", "\\u0041 literal")
_LABELS = ("positive", "negative", "neutral", "billing", "shipping", "returns", "technical", "account",
           "urgent", "low", "spam", "ham", "refund", "exchange", "escalate", "close", "question", "complaint",
           "praise", "other")


@dataclass
class Pool:
    """JSON-escaped (bytes) inputs and a per-corpus label vocabulary; reused by every file."""

    short: list[bytes]
    long: list[bytes]
    labels: list[bytes]


@dataclass
class FileStats:
    path: str
    bytes: int
    lines: int


@dataclass
class Manifest:
    kind: str
    seed: int
    models: int
    size_mb: float
    format_version: int = FORMAT_VERSION
    files: list[FileStats] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def total_lines(self) -> int:
        return sum(f.lines for f in self.files)


# -- text -----------------------------------------------------------------------------------------------


def _sentence(rng: random.Random, words: int) -> str:
    parts = []
    for _ in range(words):
        roll = rng.random()
        if roll < 0.04:
            parts.append(rng.choice(_UNICODE_WORDS))
        elif roll < 0.05:
            parts.append(rng.choice(_ODD))
        else:
            parts.append(rng.choice(_WORDS))
    return " ".join(parts).capitalize() + rng.choice(_PUNCT)


def _escaped(text: str, rng: random.Random) -> bytes:
    """JSON string content (no quotes): raw UTF-8 mostly, \\uXXXX escapes for about a fifth."""
    return json.dumps(text, ensure_ascii=rng.random() < 0.2)[1:-1].encode("utf-8")


def make_pool(seed: int, short: int = 3000, long: int = 40, words: float = 3.0) -> Pool:
    """`words`: log of the typical input length in words (3.0: ~20 words; 0.7: 2-3 words)."""
    rng = random.Random(f"pool:{seed}")
    shorts = [_escaped(_sentence(rng, max(2, int(rng.lognormvariate(words, 0.7)))), rng) for _ in range(short)]
    longs = [_escaped(" ".join(_sentence(rng, 20) for _ in range(rng.randint(30, 150))), rng) for _ in range(long)]
    labels = [_escaped(label, rng) for label in _LABELS]
    return Pool(shorts, longs, labels)


# -- one JSONL file -------------------------------------------------------------------------------------

_LineFormat = Callable[[bytes, int, bytes], bytes]
_FORMATS: tuple[_LineFormat, ...] = (
    lambda i, n, o: b'{"text_input": "%s #%d", "output": "%s"}' % (i, n, o),
    lambda i, n, o: b'{"text_input":"%s #%d","output":"%s"}' % (i, n, o),
    lambda i, n, o: b'{"output": "%s", "text_input": "%s #%d"}' % (o, i, n),
    lambda i, n, o: b'{"id": %d, "text_input": "%s #%d", "output": "%s", "source": "import"}' % (n, i, n, o),
    lambda i, n, o: b'{ "text_input" : "%s #%d" ,\t"output" : "%s" }' % (i, n, o),
)


@dataclass(frozen=True)
class FileStyle:
    """What makes one file different from the next: its labels, line format and oddities."""

    labels: tuple[bytes, ...]
    line_format: _LineFormat
    long_rate: float = 0.01
    bom: bool = False
    crlf: bool = False
    blank_rate: float = 0.0
    duplicates: int = 0

    @classmethod
    def draw(cls, rng: random.Random, pool: Pool, long_rate: float = 0.01) -> FileStyle:
        return cls(
            labels=tuple(rng.sample(pool.labels, rng.randint(3, 8))),
            line_format=rng.choice(_FORMATS),
            long_rate=long_rate,
            bom=rng.random() < 0.01,
            crlf=rng.random() < 0.02,
            blank_rate=0.01 if rng.random() < 0.02 else 0.0,
            duplicates=rng.randint(1, 3) if rng.random() < 0.02 else 0,
        )


def _lines(rng: random.Random, pool: Pool, style: FileStyle) -> Iterator[bytes]:
    """Endless unique lines (the line number is part of the input), without line ends."""
    number = 0
    fmt, labels, short, long_ = style.line_format, style.labels, pool.short, pool.long
    while True:
        batch = 4096
        inputs = rng.choices(short, k=batch)
        outputs = rng.choices(labels, k=batch)
        for k in (k for k in range(batch) if rng.random() < style.long_rate):
            inputs[k] = rng.choice(long_)
        for text, label in zip(inputs, outputs):
            number += 1
            yield fmt(text, number, label)


def write_jsonl(path: Path, rng: random.Random, pool: Pool, style: FileStyle, *, target_bytes: int = 0,
                lines: int = 0) -> FileStats:
    """Write at least `lines` lines and at least `target_bytes` bytes; returns what was written."""
    newline = b"\r\n" if style.crlf else b"\n"
    written = count = 0
    chunk: list[bytes] = [b"\xef\xbb\xbf"] if style.bom else []
    chunk_bytes = len(chunk[0]) if chunk else 0
    kept: list[bytes] = []
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for line in _lines(rng, pool, style):
            if count >= lines and written + chunk_bytes >= target_bytes:
                break
            if len(kept) < style.duplicates:
                kept.append(line)
            chunk.append(line)
            chunk.append(newline)
            chunk_bytes += len(line) + len(newline)
            count += 1
            if style.blank_rate and rng.random() < style.blank_rate:
                chunk.append(newline)
                chunk_bytes += len(newline)
            if chunk_bytes >= CHUNK_BYTES:
                handle.write(b"".join(chunk))
                written += chunk_bytes
                chunk, chunk_bytes = [], 0
        for line in kept:  # a duplicated example near the end: a warning, as in real data
            chunk += [line, newline]
            chunk_bytes += len(line) + len(newline)
            count += 1
        handle.write(b"".join(chunk))
        written += chunk_bytes
    return FileStats(str(path), written, count)


# -- the multi-model project ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPlan:
    name: str  # the model's final name (for_each: <entry>-<key>)
    data: str  # relative to the project root
    epoch_count: int
    batch_size: int
    learning_rate: float
    target_bytes: int


def _file_sizes(rng: random.Random, count: int, total_bytes: int, min_bytes: int) -> list[int]:
    weights = [rng.lognormvariate(0.0, 0.9) for _ in range(count)]
    spare = max(0, total_bytes - min_bytes * count)
    scale = spare / sum(weights)
    return [min_bytes + int(w * scale) for w in weights]


def _model_plans(seed: int, models: int, size_mb: float) -> list[ModelPlan]:
    rng = random.Random(f"models:{seed}")
    sizes = _file_sizes(rng, models, int(size_mb * 1_000_000), min_bytes=MIN_LINES * 120)
    plans = []
    for index, size in enumerate(sizes):
        group = index // MODELS_PER_SPEC
        key = f"m{index:04d}"
        name = f"grp{group:02d}-{key}" if group % 2 == 0 else f"model-{index:04d}"
        plans.append(ModelPlan(name, f"data/g{group:02d}/{key}.jsonl", rng.randint(1, 10),
                               rng.choice((4, 8, 16, 32)), rng.choice((0.1, 0.5, 1.0)), size))
    return plans


def _hyper(plan: ModelPlan) -> str:
    return (f"{{epoch_count: {plan.epoch_count}, batch_size: {plan.batch_size}, "
            f"learning_rate: {plan.learning_rate}}}")


def _for_each_spec(group: int, plans: list[ModelPlan], mapping_form: bool) -> str:
    """One entry stamping out every model of the group; `${key}` only in block-style scalars."""
    entry = f"grp{group:02d}"
    lines = ["# generated by bench/corpus.py: one for_each entry", "defaults:", "  provider: local",
             "  base_model: local/linear-ngram", "models:", f"  {entry}:"]
    if mapping_form:
        lines.append("    for_each:")
        for plan in plans:
            key = plan.name.removeprefix(f"{entry}-")
            lines.append(f"      {key}: {{hyperparameters: {_hyper(plan)}}}")
    else:
        keys = ", ".join(plan.name.removeprefix(f"{entry}-") for plan in plans)
        lines.append(f"    for_each: [{keys}]")
        lines.append(f"    hyperparameters: {_hyper(plans[0])}")
    lines += [f"    display_name: Group {group} model ${{key}}",
              "    description: Routes support tickets",
              "    dataset:",
              f"      train: ../data/g{group:02d}/${{key}}.jsonl",
              "      input_key: text_input",
              "      output_key: output"]
    return "\n".join(lines) + "\n"


def _plain_spec(plans: list[ModelPlan]) -> str:
    lines = ["# generated by bench/corpus.py: plain entries", "models:"]
    for plan in plans:
        lines += [f"  {plan.name}:",
                  "    provider: local",
                  "    base_model: local/linear-ngram",
                  f"    display_name: Model {plan.name}",
                  "    dataset:",
                  f"      train: ../{plan.data}",
                  f"    hyperparameters: {_hyper(plan)}"]
    return "\n".join(lines) + "\n"


def _write_specs(root: Path, plans: list[ModelPlan]) -> None:
    configs = root / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    groups: dict[int, list[ModelPlan]] = {}
    for index, plan in enumerate(plans):
        groups.setdefault(index // MODELS_PER_SPEC, []).append(plan)
    for group, members in groups.items():
        if group % 2 == 0:
            mapping_form = group % 4 == 0
            if not mapping_form:  # the list form shares one set of hyperparameters
                members = [ModelPlan(p.name, p.data, members[0].epoch_count, members[0].batch_size,
                                     members[0].learning_rate, p.target_bytes) for p in members]
                groups[group] = members
            text = _for_each_spec(group, members, mapping_form)
        else:
            text = _plain_spec(members)
        (configs / f"group-{group:02d}.yaml").write_text(text, encoding="utf-8")


def build_project(root: Path, seed: int, models: int, size_mb: float) -> Manifest:
    plans = _model_plans(seed, models, size_mb)
    pool = make_pool(seed)
    _write_specs(root, plans)
    manifest = Manifest("project", seed, models, size_mb)
    for plan in plans:
        rng = random.Random(f"file:{seed}:{plan.data}")
        stats = write_jsonl(root / plan.data, rng, pool, FileStyle.draw(rng, pool), target_bytes=plan.target_bytes,
                            lines=MIN_LINES)
        manifest.files.append(FileStats(plan.data, stats.bytes, stats.lines))
    return manifest


def build_big_file(root: Path, seed: int, size_mb: float, short_lines: bool = False) -> Manifest:
    """One model over one file: the streaming-memory case. short_lines: ~50-byte lines, many more examples."""
    pool = make_pool(seed, words=0.7) if short_lines else make_pool(seed)
    rng = random.Random(f"big:{seed}")
    style = FileStyle(tuple(pool.labels[:5]), _FORMATS[1] if short_lines else _FORMATS[0],
                      long_rate=0.0 if short_lines else 0.01)
    stats = write_jsonl(root / "data" / "big.jsonl", rng, pool, style, target_bytes=int(size_mb * 1_000_000),
                        lines=MIN_LINES)
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "big.yaml").write_text(
        "models:\n  big:\n    provider: local\n    base_model: local/linear-ngram\n    dataset:\n"
        "      train: ../data/big.jsonl\n", encoding="utf-8")
    manifest = Manifest("big", seed, 1, size_mb)
    manifest.files.append(FileStats("data/big.jsonl", stats.bytes, stats.lines))
    return manifest


# -- cache ----------------------------------------------------------------------------------------------


def _load_manifest(root: Path) -> Manifest | None:
    try:
        raw = json.loads((root / MARKER).read_text(encoding="utf-8"))
        files = [FileStats(**f) for f in raw.pop("files")]
        manifest = Manifest(**raw, files=files)
    except (OSError, ValueError, TypeError):
        return None
    return manifest if manifest.format_version == FORMAT_VERSION else None


def _cached(root: Path, build: Callable[[Path], Manifest]) -> tuple[Manifest, bool]:
    """(manifest, reused). Builds into a sibling temp dir and renames it into place when complete."""
    manifest = _load_manifest(root)
    if manifest is not None:
        return manifest, True
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    staging.mkdir(parents=True)
    started = time.perf_counter()
    manifest = build(staging)
    manifest.seconds = time.perf_counter() - started
    (staging / MARKER).write_text(json.dumps(asdict(manifest)), encoding="utf-8")
    staging.rename(root)
    return manifest, False


def _size_tag(size_mb: float) -> str:
    return f"{size_mb:g}".replace(".", "p")


def ensure_project(workdir: Path, seed: int, models: int, size_mb: float) -> tuple[Path, Manifest, bool]:
    root = workdir / f"corpus-s{seed}-m{models}-{_size_tag(size_mb)}mb"
    manifest, reused = _cached(root, lambda at: build_project(at, seed, models, size_mb))
    return root, manifest, reused


def ensure_big_file(workdir: Path, seed: int, size_mb: float, short_lines: bool = False) -> tuple[Path, Manifest, bool]:
    root = workdir / f"bigfile-s{seed}-{_size_tag(size_mb)}mb{'-short' if short_lines else ''}"
    manifest, reused = _cached(root, lambda at: build_big_file(at, seed, size_mb, short_lines))
    return root, manifest, reused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tuner-bench"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--size-mb", type=float, default=450)
    args = parser.parse_args(argv)
    root, manifest, reused = ensure_project(args.workdir, args.seed, args.models, args.size_mb)
    how = "reused" if reused else f"generated in {manifest.seconds:.1f} s"
    print(f"{root}: {len(manifest.files)} files, {manifest.total_bytes / 1e6:.1f} MB, "
          f"{manifest.total_lines} lines ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

