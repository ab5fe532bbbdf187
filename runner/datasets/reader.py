"""Reading datasets: streamed, validated with file:line:column, hashed in a canonical form, verified on reading.

The canonical hash covers exactly what is trained on: the sequence of (input, output) pairs after the key
mapping, each length-prefixed in UTF-8. Key order, whitespace, escaping, extra keys, blank lines, a BOM,
CRLF, and the file's name or place do not change it; changing one example does.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import stat
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from runner.datasets.ref import DatasetRef
from runner.errors import DatasetChangedError, DatasetError, Problem
from runner.fsutil import stat_key

try:  # the optional compiled scanner (runner/_fastscan.c); without it the same results, only slower
    from runner import _fastscan

    example_hash = _fastscan.example_hash
except ImportError:  # pragma: no cover - a machine that could not compile it
    _fastscan = None
    example_hash = hash  # within one process, which is all duplicate detection needs

MAX_REPORTED = 20  # errors (and duplicate groups) listed before the rest are only counted
SMALL_COUNT = 1 << 16  # examples whose duplicates are found in a set (see _repeated)
BLOCK_BYTES = 1 << 20
# The longest line read: the largest example any provider takes is under 4 MB even written with \uXXXX
# escapes (the Gemini API takes 4 MB of examples per request; a Vertex example is at most 131,072 tokens,
# about 0.5 MB of text). 8 MiB leaves room for extra keys and bounds the memory a line can take.
MAX_LINE_BYTES = 8 << 20
DEEP_LINE_BYTES, MAX_BRACKETS = 4096, 512  # lines that could nest deeper than a C parser should recurse
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Example:
    line: int
    input: str
    output: str


def open_examples(ref: DatasetRef) -> Iterator[Example]:
    """Every example of a dataset, checked against the canonical hash its plan recorded: every read that
    feeds a provider goes through here. The hash of exactly the examples yielded is computed as they stream
    (no second pass) and the stream raises DatasetChangedError at its end if it differs; consumers read it
    whole before they submit anything, so a job never trains on data its plan did not show."""
    display, digest = ref.display, hashlib.sha256()
    try:
        for example in _iter_examples(ref.path, display, ref.input_key, ref.output_key):
            try:
                digest.update(_canonical(example.input.encode(), example.output.encode()))
            except UnicodeEncodeError:  # refused by scan, so never planned; no SDK could send it either
                raise DatasetError([Problem(display, "unpaired surrogate in a value: not valid Unicode text",
                                            example.line, 1)]) from None
            yield example
    except DatasetError as exc:
        raise DatasetChangedError(f"{display} changed since it was planned: {exc.problems[0]}") from None
    except OSError as exc:
        raise DatasetChangedError(f"{display} changed since it was planned: cannot read: {exc.strerror}") from None
    if digest.hexdigest() != ref.sha256:
        raise DatasetChangedError(f"{display} changed since it was planned: planned sha256:{ref.sha256[:12]}, "
                                  f"now sha256:{digest.hexdigest()[:12]}")


def _iter_examples(path: Path, display: str, input_key: str, output_key: str) -> Iterator[Example]:
    """Every valid example of a file already checked by scan(); invalid lines are skipped.

    Clean JSONL blocks (see _scan_block) are decoded in one C call; the rest line by line."""
    if path.suffix == ".csv":
        yield from (item for _, item in _iter_csv(path, display, input_key, output_key) if isinstance(item, Example))
        return
    decoder = _pair_decoder(input_key, output_key)
    for first_line, block in _numbered_blocks(path, display):
        yield from _block_examples(block, first_line, input_key, output_key, decoder)


def _block_examples(block: bytes, first_line: int, input_key: str, output_key: str, decoder) -> Iterator[Example]:
    """The valid examples of one block: decoded at once when it is clean, else line by line."""
    pairs = _clean_block_pairs(block, decoder) if decoder is not None else None
    if pairs is not None:
        yield from (Example(number, pair.input, pair.output) for number, pair in enumerate(pairs, first_line))
        return
    for number, raw in enumerate(block.split(b"\n"), start=first_line):
        item = _diagnose(number, raw, input_key, output_key)
        if isinstance(item, Example):
            yield item


def scan(path: Path, display: str, input_key: str, output_key: str, file_stat: str | None = None) -> DatasetRef:
    """Validate the whole file in one streaming pass; return its canonical hash, count and sizes as a ref.
    `file_stat` is the file's stat_key taken before reading, when the caller has it.

    Raises DatasetError listing up to MAX_REPORTED problems as `file:line:column: reason`, then a count.
    Memory: 8 bytes per example (a 64-bit example hash for duplicate detection; see _repeated), nothing else.
    """
    tally = _Tally(display)
    try:
        file_stat = file_stat or stat_key(os.stat(path))
        if path.suffix == ".csv":
            for line, item in _iter_csv(path, display, input_key, output_key):
                tally.add(line, item)
        else:
            _scan_jsonl(path, display, input_key, output_key, tally)
    except OSError as exc:
        raise DatasetError([Problem(display, f"cannot read: {exc.strerror}")]) from None
    except DatasetError as stopped:  # a line too long to read: the problems found before it come first
        raise DatasetError(tally.report() + stopped.problems) from None
    if tally.problems:
        raise DatasetError(tally.report())
    duplicates = _duplicate_warnings(display, tally.example_hashes,
                                     lambda repeated: _lines_of(path, display, input_key, output_key, repeated))
    return DatasetRef(path, display, input_key, output_key, file_stat, tally.digest.hexdigest(), tally.count,
                      tally.max_input, tally.max_output, tally.text_bytes, tuple(duplicates))


# Bumped whenever what scan() computes changes (the canonical form below, what it validates or reports), so
# hashes cached by an earlier version are recomputed rather than trusted.
CANONICAL_VERSION = 1


def _canonical(inp: bytes, out: bytes) -> bytes:
    """One example's canonical bytes: length-prefixed, so no two examples can run together."""
    return b"%d:%b%d:%b" % (len(inp), inp, len(out), out)


class _Tally:
    """The running totals of one scan: canonical digest, counts, sizes, example hashes, problems."""

    def __init__(self, display: str):
        self.display = display
        self.digest = hashlib.sha256()
        self.example_hashes = array("q")
        self.count = self.max_input = self.max_output = self.text_bytes = 0
        self.problems: list[str] = []
        self.problem_count = 0

    def add(self, line: int, item) -> None:
        if item.__class__ is Example:
            self.example(line, item.input, item.output)
        else:
            self.problem(line, *item)

    def example(self, line: int, inp: str, out: str) -> None:
        try:
            inp_bytes, out_bytes = inp.encode("utf-8"), out.encode("utf-8")
        except UnicodeEncodeError as exc:  # a "\ud800" escape: JSON allows it, UTF-8 cannot carry it
            self.problem(line, 1, f"unpaired surrogate {exc.object[exc.start]!r} in a value: not valid Unicode text")
            return
        self.count += 1
        if len(inp) > self.max_input:
            self.max_input = len(inp)
        if len(out) > self.max_output:
            self.max_output = len(out)
        self.text_bytes += len(inp_bytes) + len(out_bytes)
        canonical = _canonical(inp_bytes, out_bytes)
        self.digest.update(canonical)
        self.example_hashes.append(example_hash(canonical))

    def problem(self, line: int, column: int, reason: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(Problem(self.display, reason, line, column))

    def report(self) -> list[str]:
        extra = self.problem_count - MAX_REPORTED
        return self.problems + ([f"{self.display}: ... and {extra} more problems"] if extra > 0 else [])


def _scan_jsonl(path: Path, display: str, input_key: str, output_key: str, tally: _Tally) -> None:
    """Block by block, fastest first: the compiled scanner, msgspec's decoder, then line by line (which
    alone names problems). Each faster path takes a block only when every line in it is clean."""
    decoder = _pair_decoder(input_key, output_key)
    keys = (input_key.encode(), output_key.encode())
    for first_line, block in _numbered_blocks(path, display):
        if not (_compiled_scan(block, keys, tally) or (decoder is not None and _scan_block(block, decoder, tally))):
            _scan_lines(block.split(b"\n"), first_line, input_key, output_key, tally)


def _compiled_scan(block: bytes, keys: tuple[bytes, bytes], tally: _Tally) -> bool:
    if _fastscan is None:
        return False
    result = _fastscan.scan_block(block, *keys)
    if result is None:
        return False
    canonical, hashes, count, max_input, max_output, text_bytes = result
    tally.digest.update(canonical)
    tally.example_hashes.frombytes(hashes)
    tally.count += count
    tally.text_bytes += text_bytes
    tally.max_input = max(tally.max_input, max_input)
    tally.max_output = max(tally.max_output, max_output)
    return True


_BLANK_INNER_LINE = re.compile(rb"\n[ \t\r]*\n")  # starts with a literal: searched at C speed
_EACH_BLANK_INNER_LINE = re.compile(rb"\n(?=[ \t\r]*\n)")
_TWO_VALUES_ON_A_LINE = re.compile(rb"\}[ \t\r]*\{")


def _scan_block(block: bytes, decoder, tally: _Tally) -> bool:
    """Decode a block of lines with msgspec's newline-delimited decoder, straight into (input, output)
    pairs typed as strings. Returns False, changing nothing, unless every line held exactly one valid
    example: then the per-line path, which names problems, takes the block.

    Why exactly one per line holds: the decoder reads whitespace-separated objects, so it would also take
    one object spread over two lines, or two on one. Two on one line need `}` then `{` with only spaces
    between (searched for; a match inside a string only costs the fast path). Without those, objects
    cannot share a line, so as many objects as non-blank lines means one object per line.
    """
    pairs = _clean_block_pairs(block, decoder, allow_blank_lines=True)
    if pairs is None:
        return False
    canonical_block, hashes = bytearray(), array("q")
    remember = hashes.append
    text_bytes = max_input = max_output = 0
    for pair in pairs:
        inp, out = pair.input, pair.output
        if not inp or not out or inp.isspace() or out.isspace():
            return False
        inp_bytes, out_bytes = inp.encode(), out.encode()
        inp_size, out_size = len(inp_bytes), len(out_bytes)
        canonical = _canonical(inp_bytes, out_bytes)
        canonical_block += canonical
        remember(example_hash(canonical))
        text_bytes += inp_size + out_size
        # Characters never outnumber bytes: count characters only when the bytes could beat the maximum.
        if inp_size > max_input:
            max_input = max(max_input, len(inp))
        if out_size > max_output:
            max_output = max(max_output, len(out))
    tally.digest.update(canonical_block)
    tally.example_hashes.extend(hashes)
    tally.count += len(pairs)
    tally.text_bytes += text_bytes
    tally.max_input = max(tally.max_input, max_input)
    tally.max_output = max(tally.max_output, max_output)
    return True


def _clean_block_pairs(block: bytes, decoder, allow_blank_lines: bool = False) -> list | None:
    """The block's (input, output) pairs when it holds exactly one object per (non-blank) line, else None.
    Without blank lines, pair i is on line i of the block."""
    if _TWO_VALUES_ON_A_LINE.search(block):
        return None
    blank = _blank_lines(block)
    if blank and not allow_blank_lines:
        return None
    try:
        pairs = decoder.decode_lines(block)
    except Exception:  # malformed, mistyped, missing key, too deep, bad UTF-8: the per-line path will say
        return None
    return pairs if len(pairs) == block.count(b"\n") + 1 - blank else None


def _blank_lines(block: bytes) -> int:
    """How many of the block's lines are empty or whitespace (the rare case costs a second search)."""
    edges = b" \t\r"
    first, last = block.find(b"\n"), block.rfind(b"\n")
    if first < 0:
        return 0 if block.strip(edges) else 1
    blank = (not block[:first].strip(edges)) + (not block[last + 1:].strip(edges))
    if _BLANK_INNER_LINE.search(block):
        blank += len(_EACH_BLANK_INNER_LINE.findall(block))
    return blank


@lru_cache(maxsize=16)
def _pair_decoder(input_key: str, output_key: str):
    """A msgspec decoder of objects into (input, output) string pairs, other keys skipped unbuilt."""
    try:
        import msgspec
    except ImportError:  # pragma: no cover - msgspec is a dependency; the per-line path is the same, slower
        return None
    pair = msgspec.defstruct("Pair", [("input", str), ("output", str)],
                             rename={"input": input_key, "output": output_key})
    return msgspec.json.Decoder(pair)


def _scan_lines(lines: list[bytes], first_line: int, input_key: str, output_key: str, tally: _Tally) -> None:
    """The per-line loop, inlined on purpose: a fast C parser for lines that are fine, and the precise
    diagnosis (_diagnose, then _Tally.add) only for the rest."""
    loads, update, remember = _fast_loads(), tally.digest.update, tally.example_hashes.append
    count = text_bytes = max_input = max_output = 0
    pending = bytearray()
    for number, raw in enumerate(lines, start=first_line):
        try:
            if len(raw) > DEEP_LINE_BYTES and raw.count(b"[") + raw.count(b"{") > MAX_BRACKETS:
                raise ValueError("possibly deep: orjson recurses without a limit, json raises RecursionError")
            record = loads(raw)
            inp, out = record[input_key], record[output_key]
            if inp.__class__ is str and out.__class__ is str and inp and out and not inp.isspace() \
                    and not out.isspace():
                inp_bytes, out_bytes = inp.encode(), out.encode()
                canonical = _canonical(inp_bytes, out_bytes)
                pending += canonical
                remember(example_hash(canonical))
                count += 1
                text_bytes += len(inp_bytes) + len(out_bytes)
                if len(inp) > max_input:
                    max_input = len(inp)
                if len(out) > max_output:
                    max_output = len(out)
                continue
        except Exception:  # any failure (lone surrogates included) takes the slow path, which names it
            pass
        item = _diagnose(number, raw, input_key, output_key)
        if item is not None:
            update(pending)  # keep the digest in file order around a slow-path example
            pending.clear()
            tally.add(number, item)
    update(pending)
    tally.count += count
    tally.text_bytes += text_bytes
    tally.max_input = max(tally.max_input, max_input)
    tally.max_output = max(tally.max_output, max_output)


def _numbered_blocks(path: Path, display: str) -> Iterator[tuple[int, bytes]]:
    """(number of the block's first line, block): the file in large blocks that end at a line break (the
    last may not), a leading BOM removed. A line longer than MAX_LINE_BYTES is refused as soon as it is,
    so memory stays bounded whatever the line length."""
    read_size = min(BLOCK_BYTES, MAX_LINE_BYTES)  # so a line that starts and ends within one read fits
    # The lines of the block yielded last are counted only when something follows it: most files are one block.
    first_line, behind = 1, None
    with _open_dataset(path, display) as handle:
        head = handle.read(len(BOM))
        unfinished = [] if head == BOM else [head]  # the pieces of the line begun and not yet ended
        unfinished_bytes = sum(map(len, unfinished))
        while chunk := handle.read(read_size):
            end = chunk.find(b"\n")
            if unfinished_bytes + (len(chunk) if end < 0 else end) > MAX_LINE_BYTES:
                raise DatasetError([_too_long(display, first_line + _lines_in(behind))])
            if end < 0:
                unfinished.append(chunk)
                unfinished_bytes += len(chunk)
                continue
            cut = chunk.rfind(b"\n")
            unfinished.append(memoryview(chunk)[:cut])  # a view: the join below is the block's only copy
            first_line, behind = first_line + _lines_in(behind), b"".join(unfinished)
            yield first_line, behind
            unfinished = [chunk[cut + 1:]]
            unfinished_bytes = len(unfinished[0])
        if unfinished_bytes:
            yield first_line + _lines_in(behind), b"".join(unfinished)


def _lines_in(block: bytes | None) -> int:
    return 0 if block is None else block.count(b"\n") + 1


def _open_dataset(path: Path, display: str):
    """The file for binary reading, refused unless it is a regular file: a FIFO or a device would block or
    never end. Checked before opening (opening a device can act on it) and again on what was opened, which
    O_NONBLOCK makes return at once, so a path swapped in between cannot hang the read either."""
    _require_regular(os.stat(path), display)
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        _require_regular(os.fstat(descriptor), display)
    except DatasetError:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "rb")


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def _require_regular(status: os.stat_result, display: str) -> None:
    if not stat.S_ISREG(status.st_mode):
        kind = _KINDS.get(stat.S_IFMT(status.st_mode), "an unknown kind")
        raise DatasetError([Problem(display, f"not a regular file ({kind}); a dataset must be a file")])


def _too_long(display: str, line: int) -> Problem:
    return Problem(display, f"line longer than {MAX_LINE_BYTES} bytes, more than any provider accepts for one "
                            f"example; reading stopped here", line, 1)


def _fast_loads():
    try:
        import orjson

        return orjson.loads
    except ImportError:  # pragma: no cover - orjson is a dependency; json is the same, only slower
        return json.loads


def _diagnose(number: int, raw: bytes, input_key: str, output_key: str):
    """One line, precisely: None when blank, an Example, or (column, reason)."""
    raw = raw.rstrip(b"\r\n")
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start + 1, f"invalid UTF-8 (byte 0x{raw[exc.start]:02x})"
    try:
        record = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        return exc.colno, f"invalid JSON: {exc.msg}"
    except RecursionError:
        return 1, "invalid JSON: nested too deeply"
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        return 1, f"invalid JSON: {str(exc).split(';')[0]}"
    if not isinstance(record, dict):
        return 1, f"not a JSON object (got {_json_type(record)})"
    return _example(number, record, text, input_key, output_key)


class _HugeNumber:
    """An integer too long for int() (over 4,300 digits): fine in a field nobody reads, never a string."""


def _parse_int(digits: str):
    return int(digits) if len(digits) < 4300 else _HugeNumber()


def _lines_of(path: Path, display: str, input_key: str, output_key: str, repeated: set[int]):
    """(example hash, line) of every example whose hash is in `repeated`: the second pass of duplicate
    detection, through the compiled scanner where a block is clean and has no blank lines (so example i is
    on line i), else example by example."""
    if path.suffix == ".csv":
        yield from _repeated_examples(_iter_examples(path, display, input_key, output_key), repeated)
        return
    keys = (input_key.encode(), output_key.encode())
    decoder = _pair_decoder(input_key, output_key)
    for first_line, block in _numbered_blocks(path, display):
        scanned = _fastscan.scan_block(block, *keys) if _fastscan is not None else None
        if scanned is not None and not _blank_lines(block):
            for index, key in enumerate(memoryview(scanned[1]).cast("q")):
                if key in repeated:
                    yield key, first_line + index
        else:
            yield from _repeated_examples(_block_examples(block, first_line, input_key, output_key, decoder),
                                          repeated)


def _repeated_examples(examples: Iterator[Example], repeated: set[int]):
    for item in examples:
        key = example_hash(_canonical(item.input.encode(), item.output.encode()))
        if key in repeated:
            yield key, item.line


def _repeated(hashes: array) -> set[int]:
    """The hashes present more than once. Up to SMALL_COUNT of them (nearly every file) are counted in a set, at
    ~60 bytes each and without importing numpy in each worker; more are sorted in place, at 8 bytes each."""
    if len(hashes) <= SMALL_COUNT:
        return set() if len(set(hashes)) == len(hashes) else {k for k, n in Counter(hashes).items() if n > 1}
    import numpy as np

    keys = np.frombuffer(hashes, dtype=np.int64)
    keys.sort()
    return set(keys[1:][keys[1:] == keys[:-1]].tolist())


def _duplicate_warnings(display: str, hashes: array, lines_of) -> list[str]:
    """Repeated example hashes (see _repeated); their line numbers by a second pass, which only happens when
    there are duplicates."""
    repeated = _repeated(hashes)
    if not repeated:
        return []
    groups: dict[int, list[int]] = {}
    for key, line in lines_of(repeated):
        groups.setdefault(key, []).append(line)
    ordered_groups = sorted(group for group in groups.values() if len(group) > 1)
    warnings = [f"{display}: duplicate example on lines {', '.join(map(str, g))}"
                for g in ordered_groups[:MAX_REPORTED]]
    if len(ordered_groups) > MAX_REPORTED:
        warnings.append(f"{display}: ... and {len(ordered_groups) - MAX_REPORTED} more duplicated examples")
    return warnings


def _example(number: int, record: dict, text: str, input_key: str, output_key: str):
    values = []
    for key in (input_key, output_key):
        if key not in record:
            return 1, f"missing key {key!r} (keys present: {', '.join(sorted(record)) or 'none'})"
        value = record[key]
        column = _column_of_key(text, key)
        if not isinstance(value, str):
            return column, f"{key!r} must be a string, got {_json_type(value)}"
        if not value.strip():
            return column, f"{key!r} is empty"
        values.append(value)
    return Example(number, values[0], values[1])


def _column_of_key(text: str, key: str) -> int:
    position = text.find(json.dumps(key))
    return position + 1 if position >= 0 else 1


def _json_type(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null",
            int: "number", float: "number", _HugeNumber: "number"}.get(type(value), type(value).__name__)


class _BadLine(Exception):
    def __init__(self, line: int, column: int, reason: str):
        super().__init__(reason)
        self.line, self.column, self.reason = line, column, reason


def _decoded_lines(handle, display: str):
    """Physical lines decoded one by one, so a bad byte is named by its own line and column."""
    for number, raw in enumerate(iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b""), start=1):
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise DatasetError([_too_long(display, number)])
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM):]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _BadLine(number, exc.start + 1, f"invalid UTF-8 (byte 0x{raw[exc.start]:02x})") from None
        if "\x00" in text:
            raise _BadLine(number, text.index("\x00") + 1, "NUL byte in CSV")
        yield text


def _iter_csv(path: Path, display: str, input_key: str, output_key: str):
    """CSV with a header row; column in messages is the 1-based field number."""
    with _open_dataset(path, display) as handle:
        reader = csv.reader(_decoded_lines(handle, display))
        start = 1  # a quoted record may span lines: messages name the line it starts on
        try:
            header = next(reader, None)
            if header is None:
                return
            missing = [key for key in (input_key, output_key) if key not in header]
            if missing:
                yield 1, (1, f"header has no column {', '.join(map(repr, missing))} (columns: {', '.join(header)})")
                return
            positions = [header.index(input_key), header.index(output_key)]
            start = reader.line_num + 1
            for row in reader:
                if any(cell.strip() for cell in row):
                    yield start, _csv_example(start, row, positions, (input_key, output_key))
                start = reader.line_num + 1
        except _BadLine as bad:
            yield bad.line, (bad.column, bad.reason)
        except csv.Error as exc:
            yield start, (1, f"invalid CSV: {exc}")


def _csv_example(number: int, row: list[str], positions: list[int], keys: tuple[str, str]):
    values = []
    for position, key in zip(positions, keys):
        if position >= len(row):
            return len(row) + 1, f"row has {len(row)} fields, no value for {key!r}"
        if not row[position].strip():
            return position + 1, f"{key!r} is empty"
        values.append(row[position])
    return Example(number, values[0], values[1])
