"""Datasets: every problem named by file:line:column, canonical hashing, CSV, duplicates, size rules."""

from __future__ import annotations

import json
import os
import threading
import tracemalloc

import pytest

from runner.datasets import MAX_REPORTED, HashCache, open_examples, scan
from runner.datasets import cache as cache_module
from runner.datasets import reader as datasets
from runner.errors import DatasetChangedError, DatasetError
from runner.fsutil import stat_key


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def rows(n, label=lambda i: "yes" if i % 2 else "no"):
    return [{"text_input": f"example number {i}", "output": label(i)} for i in range(n)]


def content_facts(ref):
    """What a ref says of the examples, leaving out which file it read."""
    return ref.sha256, ref.examples, ref.max_input_chars, ref.max_output_chars, ref.text_bytes, ref.warnings


def problems_of(path, input_key="text_input", output_key="output"):
    with pytest.raises(DatasetError) as caught:
        scan(path, path.name, input_key, output_key)
    return caught.value.problems


def test_every_kind_of_bad_line_is_named_with_line_and_column(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"text_input": "fine", "output": "ok"}\n'
        b'{"text_input": "unterminated\n'
        b'["not", "an", "object"]\n'
        b'{"text_input": 42, "output": "x"}\n'
        b'{"text_input": "no output"}\n'
        b'{"text_input": "x", "output": "   "}\n'
        b'{"text_input": "caf\xe9", "output": "x"}\n'
    )
    assert problems_of(path) == [
        "bad.jsonl:2:16: invalid JSON: Unterminated string starting at",
        "bad.jsonl:3:1: not a JSON object (got array)",
        "bad.jsonl:4:2: 'text_input' must be a string, got number",
        "bad.jsonl:5:1: missing key 'output' (keys present: text_input)",
        "bad.jsonl:6:21: 'output' is empty",
        "bad.jsonl:7:20: invalid UTF-8 (byte 0xe9)",
    ]


def test_errors_are_capped_then_counted(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("{oops}\n" * 30)
    found = problems_of(path)
    assert len(found) == MAX_REPORTED + 1
    assert found[-1] == "many.jsonl: ... and 10 more problems"


def test_blank_lines_bom_and_crlf_are_tolerated(tmp_path):
    clean = scan(write_jsonl(tmp_path / "a.jsonl", rows(60)), "a", "text_input", "output")
    messy = tmp_path / "b.jsonl"
    body = "\r\n\r\n".join(json.dumps(r) for r in rows(60))
    messy.write_bytes(b"\xef\xbb\xbf" + body.encode() + b"\r\n   \r\n")
    assert content_facts(scan(messy, "b", "text_input", "output")) == content_facts(clean)


def test_canonical_hash_ignores_serialisation_but_not_content(tmp_path):
    original = scan(write_jsonl(tmp_path / "a.jsonl", rows(60)), "a", "text_input", "output")
    reserialised = tmp_path / "b.jsonl"
    reserialised.write_text("".join(
        json.dumps({"output": r["output"], "extra": [1], "text_input": r["text_input"]}, ensure_ascii=True, indent=None,
                   separators=(" , ", " : ")) + "\n" for r in rows(60)))
    assert scan(reserialised, "b", "text_input", "output").sha256 == original.sha256
    edited = rows(60)
    edited[5]["output"] = "maybe"
    assert scan(write_jsonl(tmp_path / "c.jsonl", edited), "c", "text_input", "output").sha256 != original.sha256


def test_unicode_escapes_hash_like_the_characters_they_spell(tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_text('{"text_input": "caf\\u00e9", "output": "x"}\n', encoding="utf-8")
    b = tmp_path / "b.jsonl"
    b.write_text('{"text_input": "café", "output": "x"}\n', encoding="utf-8")
    assert scan(a, "a", "text_input", "output").sha256 == scan(b, "b", "text_input", "output").sha256


def test_key_mapping_selects_the_fields(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": f"q{i}", "answer": "a"} for i in range(3)])
    assert scan(path, "q", "question", "answer").examples == 3
    assert problems_of(path)[0] == "q.jsonl:1:1: missing key 'text_input' (keys present: answer, question)"


def test_csv_with_header_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text_input,output\n"hello, world",greeting\nbye,farewell\n,empty\n', encoding="utf-8")
    assert problems_of(path) == ["d.csv:4:1: 'text_input' is empty"]
    path.write_text('text_input,output\n"hello, world",greeting\nbye,farewell\n', encoding="utf-8")
    summary = scan(path, "d.csv", "text_input", "output")
    assert summary.examples == 2
    jsonl = write_jsonl(tmp_path / "d.jsonl", [{"text_input": "hello, world", "output": "greeting"},
                                               {"text_input": "bye", "output": "farewell"}])
    assert summary.sha256 == scan(jsonl, "d.jsonl", "text_input", "output").sha256


def test_csv_without_the_columns_is_refused(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("prompt,completion\na,b\n")
    assert problems_of(path) == ["e.csv:1:1: header has no column 'text_input', 'output' (columns: prompt, completion)"]


def test_duplicates_are_warnings_with_line_numbers(tmp_path):
    data = rows(60)
    data[40] = dict(data[3])
    data[50] = dict(data[3])
    summary = scan(write_jsonl(tmp_path / "d.jsonl", data), "d.jsonl", "text_input", "output")
    assert summary.warnings == ("d.jsonl: duplicate example on lines 4, 41, 51",)


def test_cache_answers_by_stat_and_misses_after_an_edit(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", rows(60))
    cache = HashCache(tmp_path / "cache.json")
    ref = scan(path, "a", "text_input", "output")
    cache.put(ref)
    cache.save()
    assert HashCache(tmp_path / "cache.json").get(path, "a", "text_input", "output", stat_key(os.stat(path))) == ref
    write_jsonl(path, rows(61))
    assert HashCache(tmp_path / "cache.json").get(path, "a", "text_input", "output", stat_key(os.stat(path))) is None


SMALL = """\
models:
  tiny:
    base_model: local/linear-ngram
    dataset: {{train: ../data/small.jsonl{extra}}}
    hyperparameters: {{batch_size: {batch}}}
"""


def test_fewer_than_fifty_examples_is_an_error_unless_allowed(project):
    write_jsonl(project.root / "data" / "small.jsonl", rows(20))
    project.spec(SMALL.format(extra="", batch=4))
    result = project.run("validate")
    assert result.code == 1
    assert "has 20 examples; at least 50 are needed" in result.err
    allowed = project.run("validate", "--allow-small-dataset")
    assert allowed.code == 0 and "Warning:" in allowed.err
    project.spec(SMALL.format(extra=", allow_small: true", batch=4))
    assert project.run("validate").code == 0


def test_batch_size_above_example_count_is_an_error(project):
    write_jsonl(project.root / "data" / "small.jsonl", rows(60))
    project.spec(SMALL.format(extra="", batch=64))
    result = project.run("validate")
    assert result.code == 1
    assert "models.tiny.hyperparameters.batch_size: 64 exceeds the 60 training examples" in result.err


def test_validate_reports_every_invalid_file_and_touches_no_state(project):
    (project.root / "data" / "train.jsonl").write_text('{"text_input": "a"}\n' * 60)
    (project.root / "data" / "valid.jsonl").write_text("not json\n")
    result = project.run("validate")
    assert result.code == 1
    assert "data/train.jsonl:1:1: missing key 'output'" in result.err
    assert "data/valid.jsonl:1:1: invalid JSON" in result.err
    assert not (project.root / "state").exists()


def test_csv_problems_name_the_line_where_a_multi_line_record_starts(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('text_input,output\n"first\nsecond\nthird",\nok,fine\n"long\n' + "x\n" * 70000 + '",y\n',
                    encoding="utf-8")
    assert problems_of(path) == ["m.csv:2:2: 'output' is empty",
                                 "m.csv:6:1: invalid CSV: field larger than field limit (131072)"]


def test_csv_duplicates_name_the_lines_where_their_records_start(tmp_path):
    path = tmp_path / "d.csv"
    record = '"two\nlines",same\n'
    path.write_text("text_input,output\n" + record + "other,x\n" + record, encoding="utf-8")
    summary = scan(path, "d.csv", "text_input", "output")
    assert summary.warnings == ("d.csv: duplicate example on lines 2, 5",)


READERS = ["compiled scanner", "msgspec", "per line"]


def use_reader(monkeypatch, reader: str) -> None:
    """Take away the faster paths so the named one reads every block."""
    if reader != "compiled scanner":
        monkeypatch.setattr(datasets, "_fastscan", None)
    if reader == "per line":
        monkeypatch.setattr(datasets, "_pair_decoder", lambda *keys: None)


@pytest.mark.parametrize("reader", READERS)
def test_a_line_longer_than_any_provider_accepts_is_refused_with_memory_bounded(tmp_path, monkeypatch, reader):
    use_reader(monkeypatch, reader)
    monkeypatch.setattr(datasets, "MAX_LINE_BYTES", 64 * 1024)
    path = tmp_path / "long.jsonl"
    with open(path, "wb") as out:  # one 16 MB line: 256 times the bound
        out.write(b'{"text_input": "')
        out.write(b"x" * (16 << 20))
        out.write(b'", "output": "y"}\n')
    tracemalloc.start()
    try:
        problems = problems_of(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert problems == ["long.jsonl:1:1: line longer than 65536 bytes, more than any provider accepts for one "
                        "example; reading stopped here"]
    assert peak < 2 << 20


@pytest.mark.parametrize("reader", READERS)
def test_the_line_bound_is_exact_wherever_the_line_falls(tmp_path, monkeypatch, reader):
    use_reader(monkeypatch, reader)
    monkeypatch.setattr(datasets, "MAX_LINE_BYTES", 1000)
    example = {"text_input": "", "output": "y"}
    example["text_input"] = "x" * (1000 - len(json.dumps(example)))
    at_the_bound = json.dumps(example)
    assert len(at_the_bound) == 1000
    path = write_jsonl(tmp_path / "edge.jsonl", rows(60) + [example] * 3 + rows(60))
    assert scan(path, "edge.jsonl", "text_input", "output").examples == 123
    over_it = json.dumps({**example, "text_input": example["text_input"] + "x"})
    path.write_text("\n".join(json.dumps(r) for r in rows(60)) + "\n" + over_it + "\n", encoding="utf-8")
    assert problems_of(path) == ["edge.jsonl:61:1: line longer than 1000 bytes, more than any provider accepts "
                                 "for one example; reading stopped here"]


def test_a_csv_line_longer_than_any_provider_accepts_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "long.csv"
    path.write_text("text_input,output\nshort,ok\n" + "x" * 1001 + ",y\n", encoding="utf-8")
    assert problems_of(path) == ["long.csv:3:1: line longer than 1000 bytes, more than any provider accepts "
                                 "for one example; reading stopped here"]


def test_a_fifo_named_as_a_dataset_is_refused_at_once_not_waited_on(project):
    train = project.root / "data" / "train.jsonl"
    train.unlink()
    os.mkfifo(train)
    result = project.run_process("validate", timeout=30)  # before the fix: blocked in open() for ever
    assert result.returncode == 1
    assert "data/train.jsonl: not a regular file (a FIFO); a dataset must be a file" in result.stderr


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_link_to_a_device_is_refused_naming_the_path(tmp_path, suffix):
    path = tmp_path / f"zero{suffix}"
    path.symlink_to("/dev/zero")
    assert problems_of(path) == [f"zero{suffix}: not a regular file (a character device); a dataset must be a file"]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_the_verifying_reader_yields_every_example_of_the_planned_content(tmp_path, suffix):
    path = tmp_path / f"d{suffix}"
    if suffix == ".csv":
        path.write_text('text_input,output\n"two\nlines",a\nbye,b\n', encoding="utf-8")
    else:
        write_jsonl(path, rows(60))
    planned = scan(path, path.name, "text_input", "output")
    examples = list(open_examples(planned))
    assert len(examples) == planned.examples


def test_the_verifying_reader_refuses_a_file_changed_since_its_hash_was_planned(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", rows(60))
    planned = scan(path, "data/d.jsonl", "text_input", "output")
    write_jsonl(path, rows(60, label=lambda i: "yes"))
    actual = scan(path, "data/d.jsonl", "text_input", "output").sha256
    with pytest.raises(DatasetChangedError) as caught:
        list(open_examples(planned))
    assert str(caught.value) == (f"data/d.jsonl changed since it was planned: planned sha256:{planned.sha256[:12]}, "
                                 f"now sha256:{actual[:12]}")
    assert "tuner plan" in caught.value.remedy


def test_the_verifying_reader_refuses_a_file_gone_or_unreadable_since_the_plan(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", rows(60))
    planned = scan(path, "d.jsonl", "text_input", "output")
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(DatasetChangedError, match=r"^d.jsonl changed since it was planned: d.jsonl: not a regular"):
        list(open_examples(planned))
    path.unlink()
    with pytest.raises(DatasetChangedError, match=r"^d.jsonl changed since it was planned: cannot read: No such"):
        list(open_examples(planned))


def test_the_verifying_reader_stops_at_text_no_provider_could_be_sent(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", rows(60))
    planned = scan(path, "d.jsonl", "text_input", "output")
    path.write_text(path.read_text() + '{"text_input": "\\ud800", "output": "x"}\n', encoding="utf-8")
    with pytest.raises(DatasetChangedError, match=r"^d.jsonl changed since it was planned: d.jsonl:61:1: unpaired"):
        list(open_examples(planned))


def test_a_fifo_swapped_in_between_the_check_and_the_open_is_refused_without_blocking(tmp_path, monkeypatch):
    regular = write_jsonl(tmp_path / "regular.jsonl", rows(60))
    path = tmp_path / "swapped.jsonl"
    os.mkfifo(path)
    real_stat = os.stat
    # The check before opening sees a regular file, as if the FIFO took its place just after.
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: real_stat(regular if p == path else p, *a, **k))
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(problems_of(path)), daemon=True)
    reader.start()
    reader.join(timeout=10)  # a blocking open would never return
    assert outcome == [["swapped.jsonl: not a regular file (a FIFO); a dataset must be a file"]]


def cached_ref(cache_file, ref):
    return HashCache(cache_file).get(ref.path, ref.display, ref.input_key, ref.output_key, ref.stat)


def test_the_hash_cache_answers_only_for_the_code_version_that_wrote_it(tmp_path, monkeypatch):
    ref = scan(write_jsonl(tmp_path / "a.jsonl", rows(60)), "a.jsonl", "text_input", "output")
    cache = HashCache(tmp_path / "cache.json")
    cache.put(ref)
    cache.save()
    assert cached_ref(tmp_path / "cache.json", ref) == ref
    monkeypatch.setattr(cache_module, "CODE_VERSION", "canonical-0|tuner-0.0.0")  # read by another version
    assert cached_ref(tmp_path / "cache.json", ref) is None


def test_a_hash_cache_from_before_versioning_is_ignored_not_trusted(project):
    """The unversioned cache an earlier tuner wrote, with a hash that is not the file's: rescanned."""
    cache_file = project.root / ".tuner" / "cache" / "datasets.json"
    train = project.root / "data" / "train.jsonl"
    true_hash = scan(train, "data/train.jsonl", "text_input", "output").sha256
    assert project.run("validate").code == 0
    st = os.stat(train)
    legacy_key = f"{train}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}|text_input|output"
    forged = {legacy_key: {"sha256": "0" * 64, "examples": 60, "warnings": []}}
    cache_file.write_text(json.dumps(forged), encoding="utf-8")
    result = project.run("validate", "--json")
    [model] = json.loads(result.out)["models"]
    assert model["dataset"]["train"]["sha256"] == true_hash


@pytest.mark.parametrize("damage", [{"examples": "many"}, {"sha256": None}, {"warnings": "w"}, {"extra": 1},
                                    {"examples": True}, {"warnings": [1]}])
def test_a_damaged_hash_cache_entry_is_only_a_slower_plan(project, damage):
    cache_file = project.root / ".tuner" / "cache" / "datasets.json"
    assert project.run("validate").code == 0
    stored = json.loads(cache_file.read_text())
    for entry in stored["refs"].values():
        entry.update(damage)
    cache_file.write_text(json.dumps(stored), encoding="utf-8")
    result = project.run("validate", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    [model] = report["models"]
    assert report["warnings"] == []
    assert model["dataset"]["train"] == scan(project.root / "data" / "train.jsonl", "data/train.jsonl",
                                             "text_input", "output").record()


@pytest.mark.parametrize("reader", READERS)
def test_lines_are_numbered_across_blocks_for_problems_and_duplicates(tmp_path, monkeypatch, reader):
    """The lines of a block are counted only when another block follows it: numbering must not drift."""
    use_reader(monkeypatch, reader)
    data = rows(300)
    data[250] = dict(data[3])
    path = write_jsonl(tmp_path / "d.jsonl", data)
    whole = scan(path, "d.jsonl", "text_input", "output").warnings
    monkeypatch.setattr(datasets, "BLOCK_BYTES", 1000)
    assert scan(path, "d.jsonl", "text_input", "output").warnings == whole == (
        "d.jsonl: duplicate example on lines 4, 251",)
    path.write_text(path.read_text(encoding="utf-8").replace('"example number 280"', "{"), encoding="utf-8")
    assert problems_of(path)[0].startswith("d.jsonl:281:")
