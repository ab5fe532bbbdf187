"""The compiled scanner is an accelerator only: whatever it accepts, the precise Python path accepts with
the same canonical bytes, example hashes, counts and sizes; whatever it refuses, the Python path handles."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.datasets import reader as datasets

fastscan = pytest.importorskip("runner._fastscan")

KEYS = (b"text_input", b"output")
texts = st.text(st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["", " ", "\u3000", "a\u2028b", "😀", "\\", '"', "\x00", "é"])
extras = st.recursive(st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=False)
                      | texts, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                      max_leaves=8)


@st.composite
def lines(draw) -> bytes:
    record = {}
    for key in draw(st.permutations(["text_input", "output", "extra"])):
        if key == "extra":
            if draw(st.booleans()):
                record[draw(texts)] = draw(extras)
        elif draw(st.integers(0, 9)):  # now and then a key is missing
            record[key] = draw(texts) if draw(st.integers(0, 9)) else draw(extras)
    text = json.dumps(record, ensure_ascii=draw(st.booleans()), indent=None,
                      separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")])))
    mangle = draw(st.sampled_from(["", "", "", "crlf", "blank", "truncate", "two", "nan", "surrogate"]))
    if mangle == "crlf":
        text += "\r"
    elif mangle == "blank":
        text = "  "
    elif mangle == "truncate":
        text = text[: max(1, len(text) // 2)]
    elif mangle == "two":
        text += text
    elif mangle == "nan":
        text = text.replace("}", ', "n": NaN}', 1)
    elif mangle == "surrogate":
        text = text.replace('"output"', '"\\ud800", "output"', 1)
    return text.encode("utf-8", "surrogatepass")


def python_path(block: bytes) -> datasets._Tally:
    tally = datasets._Tally("t")
    datasets._scan_lines(block.split(b"\n"), 1, "text_input", "output", tally)
    return tally


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines(), min_size=1, max_size=6))
def test_what_the_compiled_scanner_accepts_the_python_path_accepts_identically(rows):
    block = b"\n".join(rows)
    result = fastscan.scan_block(block, *KEYS)
    if result is None:  # refused: the Python path decides, with its precise messages
        assert any(fastscan.scan_block(row, *KEYS) is None for row in rows), "refused a block of clean lines"
        reference = python_path(block)
        blank = sum(not row.strip() for row in rows)
        assert reference.count + reference.problem_count + blank == len(rows), "a line neither counted nor blamed"
        return
    canonical, hashes, count, max_input, max_output, text_bytes = result
    reference = python_path(block)
    assert reference.problems == []
    assert (reference.count, reference.max_input, reference.max_output, reference.text_bytes) == (
        count, max_input, max_output, text_bytes)
    digest = datasets.hashlib.sha256(canonical).hexdigest()
    assert digest == reference.digest.hexdigest()
    assert hashes == reference.example_hashes.tobytes()


def test_clean_lines_are_taken_by_the_compiled_scanner():
    block = b'{"text_input": "caf\\u00e9", "output": "x", "meta": {"k": [1, 2.5e-3, null, true]}}\n' \
            b'{"output":"y","text_input":"\\ud83d\\ude00"}\r'
    assert fastscan.scan_block(block, *KEYS) is not None


@pytest.mark.parametrize("line", [
    b'{"text_input": "a", "output": "   "}',                       # blank value
    b'{"text_input": "a", "output": "b"}{"text_input": "a", "output": "b"}',  # two objects on a line
    b'{"text_input": "\\ud800", "output": "b"}',                    # lone surrogate
    b'{"text_input": "a", "output": "b", "n": NaN}',               # not JSON, though Python's json reads it
    b'{"text_input": "a", "output": 1}',                            # not a string
    b'{"text_input": "caf\xe9", "output": "b"}',                    # bad UTF-8
    b'{"text_input": "a"}',                                         # missing key
    b'["text_input", "output"]',                                    # not an object
])
def test_anything_doubtful_is_left_to_the_python_path(line):
    assert fastscan.scan_block(line, *KEYS) is None
