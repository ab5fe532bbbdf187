"""Bad input, fuzzed: whatever a spec or a dataset holds, tuner answers `file:line: reason` or proceeds.

Properties, over random bytes, near-YAML token soup, wrong types, huge numbers, unicode, NUL, deep nesting,
small alias bombs, tabs, BOMs, odd line endings and very long lines:
  - `validate` and `plan` never print a traceback nor "internal error"; they agree, and exit 0 (the input
    happened to be valid) or 1 naming configs/FILE:LINE or data/FILE:LINE:COLUMN;
  - a hyperparameter of the wrong type or range is refused at its own line;
  - one corrupted dataset line (JSONL or CSV) is blamed on exactly that line;
  - a spec or dataset that fails leaves an existing state file (and its backup) byte-identical.

Hypothesis runs many examples per test and cannot share function-scoped fixtures between them, so each
example makes its own project with tempfile and runs the CLI in-process, as tests/conftest.py does.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from runner.cli import main
from tests.conftest import Result

REPO = Path(__file__).resolve().parents[1]
TRAIN_LINES = (REPO / "data" / "sentiment" / "train.jsonl").read_bytes().splitlines(keepends=True)
SPEC = "configs/models.yaml"

VALID_SPEC = """\
defaults:
  base_model: local/linear-ngram
  dataset: {train: ../data/train.jsonl}
models:
  reviews:
    display_name: Reviews
    description: Review sentiment
    hyperparameters:
      epoch_count: 2
      batch_size: 8
      learning_rate: 0.5
"""
HYPERPARAMETER_LINES = {"epoch_count": 9, "batch_size": 10, "learning_rate": 11}

LOCATED = re.compile(r"(configs|data)/[^:\s]+:\d+(:\d+)?: ")

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.data_too_large])


# -- running the CLI in a throwaway project ------------------------------------------------------------


def tuner(*args: str) -> Result:
    """The CLI in-process, as a user would type it, with stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def project(spec: str | bytes | None = VALID_SPEC, train: bytes | None = None, train_name: str = "train.jsonl",
            template: Path | None = None) -> Iterator[Path]:
    """A throwaway project as the working directory: a copy of `template`, or the sentiment data alone,
    then `spec` (None keeps the template's) and `train` written over it."""
    with tempfile.TemporaryDirectory(prefix="tuner-fuzz-") as scratch:
        root = Path(scratch) / "project"
        if template is not None:
            shutil.copytree(template, root)
        else:
            _write(root / "data" / "train.jsonl", b"".join(TRAIN_LINES))
        if spec is not None:
            _write(root / SPEC, spec)
        if train is not None:
            _write(root / "data" / train_name, train)
        with contextlib.chdir(root):
            yield root


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)


@pytest.fixture(scope="module", autouse=True)
def plain_environment():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NO_COLOR", "1")
        patch.delenv("TUNER_WORKSPACE", raising=False)
        patch.delenv("TUNER_DEBUG", raising=False)
        yield


@pytest.fixture(scope="module")
def applied_project() -> Iterator[Path]:
    """A project with one local model applied twice (a create, then an in-place update), so that
    state/default.json and its backup both exist."""
    with project() as root:
        assert tuner("apply", "--auto-approve").code == 0
        _write(root / SPEC, VALID_SPEC.replace("description: Review sentiment", "description: Sentiment"))
        assert tuner("apply", "--auto-approve").code == 0
        template = Path(tempfile.mkdtemp(prefix="tuner-fuzz-applied-")) / "project"
        shutil.copytree(root, template)
    yield template
    shutil.rmtree(template.parent)


# -- what every answer to bad input looks like -----------------------------------------------------------


def assert_clean(result: Result) -> None:
    """Exit 0, or exit 1 naming file:line; never a traceback or an internal error."""
    assert "Traceback" not in result.output, result.output
    assert "internal error" not in result.output, result.output
    assert result.code in (0, 1), result.output
    if result.code == 1:
        assert problems_of(result), f"an error that names no file:line:\n{result.err}"


def problems_of(result: Result) -> list[str]:
    return [line.strip() for line in result.err.splitlines() if LOCATED.match(line.strip())]


# -- strategies: specs ----------------------------------------------------------------------------------
#
# In-process nesting stays below ~50,000 levels, where libyaml's composer overflows the C stack and would take
# pytest down with it: deeper specs are tried in a subprocess by the regression tests at the end.

YAML_TOKENS = [
    "models:", "defaults:", "providers:", "reviews:", "base_model:", "local/linear-ngram", "dataset:", "train:",
    "../data/train.jsonl", "validation:", "hyperparameters:", "epoch_count:", "batch_size:", "learning_rate:",
    "for_each:", "lifecycle:", "prevent_destroy:", "provider:", "gemini", "local", "${key}", "display_name:",
    " ", "  ", "    ", "\t", "\n", "\r\n", "\r", "- ", ": ", "? ", "{", "}", "[", "]", ", ", "&a ", "*a", "<<: ",
    "!!binary ", "!!python/object:os.system ", "!!set ", "!!str ", "!!null ", "!!int ", "!!float ", "!!bool ",
    "!!timestamp ", "'", '"', "# ", "---",
    "...", "| ", "> ", "%YAML 1.1\n", "~", "null", "true", "yes", "0", "-1", "1e999", ".nan", "-.inf", "0x1F",
    "1_000", "2001-12-14", "9" * 40, "9" * 5000, "\x00", "\ufeff", "\u2028", "\x85", "é", "😀", "\\", "\\x00",
    "\\0", "\\ud800", "\x1f", "\x7f", "\ud7ff", ".jsonl", ".csv", "]]]]",
]


@st.composite
def alias_bombs(draw) -> str:
    """A small billion-laughs: each level is a list of `breadth` aliases of the level below."""
    depth, breadth = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    lines = ["l0: &l0 [lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * breadth)}]" for i in range(1, depth + 1)]
    where = draw(st.sampled_from(["top", "model", "hyperparameters"]))
    if where == "top":
        return VALID_SPEC + "\n".join(lines) + "\n"
    alias = f"*l{depth}"
    anchors = "x-anchors:\n" + "".join(f"  {line}\n" for line in lines)
    target = "    display_name: " if where == "model" else "      epoch_count: "
    body = re.sub(rf"^{re.escape(target)}.*$", target + alias, VALID_SPEC, count=1, flags=re.M)
    return anchors + body


def nested(depth: int, kind: str) -> str:
    return {"list": "[" * depth + "]" * depth, "map": "{a: " * depth + "1" + "}" * depth,
            "block": "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + "  " * depth + "1\n"}[kind]


def line_endings(text: str, ending: str) -> str:
    return text.replace("\n", ending)


odd_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**30, max_value=10**400) | st.floats()
    | st.text(max_size=40) | st.text(max_size=40).map(lambda s: s + ".jsonl")
    | st.text(max_size=3000).map(lambda s: s * 2),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

SPEC_PATHS = [
    ("models",), ("models", "reviews"), ("models", "reviews", "display_name"), ("models", "reviews", "dataset"),
    ("models", "reviews", "dataset", "validation"), ("models", "reviews", "hyperparameters", "learning_rate"),
    ("models", "reviews", "dataset", "train"), ("models", "reviews", "hyperparameters"),
    ("models", "reviews", "hyperparameters", "epoch_count"), ("models", "reviews", "hyperparameters", "batch_size"),
    ("models", "reviews", "lifecycle"), ("models", "reviews", "for_each"), ("models", "reviews", "provider"),
    ("models", "Reviews"), ("models", "reviews", "epochs"), ("defaults",), ("defaults", "base_model"),
    ("providers",), ("providers", "gemini"), ("providers", "local", "max_concurrent_jobs"), ("extra",),
]


@st.composite
def mutated_specs(draw) -> str:
    """The valid spec with one field set to an odd value of any type, dumped back to YAML."""
    data = yaml.safe_load(VALID_SPEC)
    *parents, leaf = draw(st.sampled_from(SPEC_PATHS))
    node = data
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[leaf] = draw(odd_values)
    return yaml.safe_dump(data, allow_unicode=draw(st.booleans()), default_flow_style=draw(st.booleans()))


spec_texts = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400),
    st.lists(st.sampled_from(YAML_TOKENS), max_size=60).map("".join),
    mutated_specs(),
    alias_bombs(),
    st.builds(nested, st.integers(1, 5_000), st.sampled_from(["list", "map"])).map(lambda n: f"models: {n}"),
    st.builds(nested, st.integers(1, 300), st.just("block")).map(lambda n: f"models:\n{n}"),
    st.builds(line_endings, st.just(VALID_SPEC), st.sampled_from(["\r\n", "\r", "\n\r", "\x85", "\u2028"])),
    st.just(VALID_SPEC).map(lambda s: s.replace("    ", "\t")),
    st.tuples(st.just(VALID_SPEC), st.integers(0, len(VALID_SPEC)), st.sampled_from(["\x00", "\ufeff", "\t", "\\"]))
    .map(lambda t: t[0][:t[1]] + t[2] + t[0][t[1]:]),
    st.integers(1_000, 200_000).map(lambda n: VALID_SPEC + "# " + "x" * n + "\n"),
    st.integers(1_000, 200_000).map(lambda n: VALID_SPEC.replace("Review sentiment", "r" * n)),
)


# -- strategies: dataset lines ----------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**30, max_value=10**4000)
                | st.floats() | st.text(max_size=60) | st.text(max_size=60).map(lambda s: " \t" + s))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=3), max_leaves=8)


@st.composite
def json_lines(draw) -> bytes:
    """One JSONL line that is JSON but probably not a valid example: wrong types, missing keys, extra keys."""
    record = draw(st.dictionaries(st.sampled_from(["text_input", "output", "input", "", "Output"]), json_values,
                                  max_size=3))
    if draw(st.booleans()):
        record["text_input"] = draw(json_values)
    text = json.dumps(record if draw(st.integers(0, 4)) else draw(json_values), ensure_ascii=draw(st.booleans()),
                      allow_nan=True)
    return text.encode("utf-8")


def _deep(depth: int, kind: str) -> bytes:
    return {"list": b"[" * depth + b"]" * depth,
            "dict": b'{"text_input": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b', "output": "x"}'}[kind]


bad_lines = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.text(min_size=1, max_size=200).map(lambda s: s.encode("utf-8")),
    json_lines(),
    st.builds(_deep, st.integers(1, 20_000), st.sampled_from(["list", "dict"])),  # deeper: in a subprocess
    st.sampled_from([b'{"text_input": "a", "output": "b"', b"{'text_input': 'a'}", b"\xef\xbb\xbf{}", b"\x00",
                     b'{"text_input": "\x00", "output": "b"}', b'{"text_input": "a\\u0000", "output": ""}',
                     b'{"text_input": "a", "output": "b"}{}', b"NaN", b"[]", b'"text"', b"\t\t", b"\xc3\x28",
                     b'{"text_input": "a", "text_input": 5, "output": "b"}', b'{"text_input": "\xed\xa0\x80"}',
                     b'{"text_input": "\\udc80", "output": "b"}', b'{"text_input": "a", "output": "\\ud83d"}']),
    st.integers(4_000, 6_000).map(lambda digits: b'{"text_input": "a", "output": ' + b"7" * digits + b"}"),
    st.integers(10_000, 200_000).map(lambda n: b'{"text_input": "' + b"x" * n + b'", "output": 1}'),
)


def replace_line(lines: list[bytes], number: int, new: bytes) -> bytes:
    """The file with line `number` (1-based) replaced, keeping that line's ending."""
    ending = lines[number - 1][len(lines[number - 1].rstrip(b"\r\n")):]
    return b"".join(lines[:number - 1] + [new + ending] + lines[number:])


dataset_files = st.one_of(
    st.binary(max_size=2000),
    st.lists(bad_lines, min_size=1, max_size=30).map(lambda ls: b"\n".join(ls)),
    st.builds(replace_line, st.just(TRAIN_LINES), st.integers(1, len(TRAIN_LINES)), bad_lines.filter(
        lambda b: b"\n" not in b)),
    st.sampled_from([b"\r", b"\r\n", b"\n\r", b"\n\n"]).map(
        lambda ending: b"".join(line.rstrip(b"\n") + ending for line in TRAIN_LINES)),
    st.just(b"\xef\xbb\xbf" * 2 + b"".join(TRAIN_LINES)),
)


CSV_TOKENS = ["text_input", "output", ",", '"', '""', "\n", "\r\n", "\r", " ", "\t", "\x00", "\ufeff", "é", "a",
              "positive", ";", "\\", "x" * 140_000]
csv_files = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.sampled_from(CSV_TOKENS), max_size=80).map(lambda ts: "text_input,output\n" + "".join(ts)).map(
        lambda text: text.encode("utf-8")),
    st.lists(st.sampled_from(CSV_TOKENS), max_size=80).map(lambda ts: "".join(ts).encode("utf-8")),
)


# -- properties: specs ----------------------------------------------------------------------------------


@FUZZ
@given(spec=spec_texts)
def test_any_spec_is_valid_or_refused_naming_file_and_line(spec):
    with project(spec=spec):
        validate, plan = tuner("validate"), tuner("plan")
    assert_clean(validate)
    assert_clean(plan)
    assert validate.code == plan.code, (validate.output, plan.output)


def _reads_back(spec: str, field: str, value) -> bool:
    """Whether PyYAML's own dump of `value` reads back as it (its emitter has corner cases, e.g. ':\\xa0')."""
    try:
        return yaml.safe_load(spec)["models"]["reviews"]["hyperparameters"][field] == value
    except yaml.YAMLError:
        return False


@FUZZ
@given(field=st.sampled_from(sorted(HYPERPARAMETER_LINES)),
       value=st.one_of(st.text(max_size=20), st.booleans(), st.none(), st.lists(st.integers(), max_size=3),
                       st.dictionaries(st.text(max_size=5).filter(lambda k: k != "<<"), st.integers(), max_size=2),
                       st.integers(max_value=0), st.integers(min_value=10**6, max_value=10**40)))
def test_a_wrong_hyperparameter_is_refused_at_its_own_line(field, value):
    flow = yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True).removesuffix(
        "\n...\n").strip()
    spec = re.sub(rf"^(      {field}: ).*$", lambda m: m.group(1) + flow, VALID_SPEC, count=1, flags=re.M)
    assume(_reads_back(spec, field, value))
    with project(spec=spec):
        result = tuner("validate")
    assert_clean(result)
    assert result.code == 1
    assert f"{SPEC}:{HYPERPARAMETER_LINES[field]}: models.reviews.hyperparameters.{field}: " in result.err


@pytest.mark.parametrize("variant", ["crlf", "cr", "bom", "bom+crlf", "trailing spaces"])
def test_line_endings_and_a_bom_do_not_change_a_valid_spec_or_its_plan(variant):
    with project():
        reference = tuner("plan", "--json")
    text = {"crlf": line_endings(VALID_SPEC, "\r\n"), "cr": line_endings(VALID_SPEC, "\r"),
            "bom": "\ufeff" + VALID_SPEC, "bom+crlf": "\ufeff" + line_endings(VALID_SPEC, "\r\n"),
            "trailing spaces": VALID_SPEC.replace("\n", "   \n")}[variant]
    with project(spec=text):
        result = tuner("plan", "--json")
    assert result.code == 0, result.output
    assert result.out == reference.out


# -- properties: datasets ----------------------------------------------------------------------------------


@FUZZ
@given(dataset=st.one_of(dataset_files.map(lambda b: ("train.jsonl", b)), csv_files.map(lambda b: ("train.csv", b))))
def test_any_dataset_is_valid_or_refused_naming_file_line_and_column(dataset):
    name, content = dataset
    spec = VALID_SPEC.replace("train.jsonl", name)
    with project(spec=spec, train=content, train_name=name):
        validate, plan = tuner("validate"), tuner("plan")
    assert_clean(validate)
    assert_clean(plan)
    assert validate.code == plan.code, (validate.output, plan.output)
    for problem in problems_of(validate):
        if problem.startswith("data/"):
            assert re.match(rf"data/{re.escape(name)}:\d+:\d+: ", problem), problem


@FUZZ
@given(number=st.integers(1, len(TRAIN_LINES)), line=bad_lines.filter(lambda b: b"\n" not in b))
def test_one_corrupted_jsonl_line_is_blamed_on_exactly_that_line(number, line):
    with project(train=replace_line(TRAIN_LINES, number, line)):
        result = tuner("validate")
    assert_clean(result)
    if result.code == 1:
        assert problems_of(result) and all(p.startswith(f"data/train.jsonl:{number}:") for p in problems_of(result)), \
            result.err
    else:
        assert is_blank_or_example(line), f"accepted as an example: {line!r}"


def is_blank_or_example(line: bytes) -> bool:
    """What a valid JSONL line is, told independently of tuner's scanners: blank, or a JSON object whose
    text_input and output are strings with text."""
    if not line.strip():
        return True
    try:
        record = json.loads(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError is one
        return False
    return isinstance(record, dict) and all(isinstance(record.get(key), str) and record[key].strip()
                                            for key in ("text_input", "output"))


def _csv_lines() -> list[bytes]:
    rows = [json.loads(line) for line in TRAIN_LINES]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["text_input", "output"])
    writer.writerows([row["text_input"], row["output"]] for row in rows)
    return buffer.getvalue().encode("utf-8").splitlines(keepends=True)


CSV_LINES = _csv_lines()
CSV_SPEC = VALID_SPEC.replace("../data/train.jsonl", "../data/train.csv")
# A CSV row with no quote and no line break cannot reach into its neighbours.
unquoted_rows = st.one_of(st.text(min_size=1, max_size=80), st.lists(st.text(max_size=10), max_size=4).map(",".join)
                          ).map(lambda s: s.encode("utf-8")).filter(lambda b: not set(b) & set(b'"\r\n'))


@FUZZ
@given(number=st.integers(2, len(CSV_LINES)), row=unquoted_rows)
def test_one_corrupted_csv_row_is_blamed_on_exactly_that_line(number, row):
    with project(spec=CSV_SPEC, train=replace_line(CSV_LINES, number, row), train_name="train.csv"):
        result = tuner("validate")
    assert_clean(result)
    if result.code == 1:
        assert problems_of(result) and all(p.startswith(f"data/train.csv:{number}:") for p in problems_of(result)), \
            result.err
    else:
        fields = row.decode("utf-8").split(",")  # unquoted: the split is the CSV parse; extra columns are ignored
        blank = not any(field.strip() for field in fields)
        assert blank or (len(fields) >= 2 and fields[0].strip() and fields[1].strip()), f"accepted: {row!r}"


# -- property: failing input never touches state ------------------------------------------------------------


def _state_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "state").iterdir())}


corruptions = st.one_of(st.tuples(spec_texts, st.none()), st.tuples(st.none(), dataset_files))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(corruption=corruptions)
def test_a_failing_spec_or_dataset_leaves_the_state_file_byte_identical(applied_project, corruption):
    spec, train = corruption
    with project(template=applied_project, spec=spec, train=train) as root:
        before = _state_files(root)
        assume(tuner("validate").code == 1)  # input that happens to be valid may rightly change state
        result = tuner("apply", "--auto-approve")
        after = _state_files(root)
    assert_clean(result)
    assert result.code == 1
    assert {"default.json", "default.json.backup"} <= set(before)
    assert after == before  # byte for byte, and no lock file left behind


# -- regressions found by the fuzzing above (each fails until its bug is fixed) ---------------------------


def _train_with_line(line: bytes) -> bytes:
    return replace_line(TRAIN_LINES, 4, line)


def test_a_jsonl_number_of_5000_digits_is_an_error_at_its_line_not_an_internal_error():
    """json.loads raises ValueError (int max str digits), not JSONDecodeError, which _iter_jsonl catches."""
    with project(train=_train_with_line(b'{"text_input": ' + b"1" * 5000 + b', "output": "negative"}')):
        result = tuner("validate")
    assert_clean(result)
    assert "data/train.jsonl:4:" in result.err


def test_a_jsonl_lone_surrogate_escape_is_an_error_at_its_line_not_an_internal_error():
    """The line parses to a str that cannot be encoded as UTF-8: scan() raises UnicodeEncodeError."""
    with project(train=_train_with_line(b'{"text_input": "bad \\ud800 text", "output": "negative"}')):
        result = tuner("validate")
    assert_clean(result)
    assert "data/train.jsonl:4:" in result.err


def test_invalid_utf8_in_a_csv_row_is_named_at_that_row():
    """The text layer decodes the file in chunks: the error surfaces before csv counts the row (line 1)."""
    with project(spec=CSV_SPEC, train=replace_line(CSV_LINES, 6, b"caf\xe9 was great,positive"),
                 train_name="train.csv"):
        result = tuner("validate")
    assert result.code == 1
    assert "data/train.csv:6:" in result.err, result.err


def test_a_nul_in_a_dataset_path_is_a_spec_error_not_an_internal_error():
    """A YAML escape (\\0) passes the NUL check on the raw text; Path.resolve() then raises ValueError."""
    with project(spec=VALID_SPEC.replace("{train: ../data/train.jsonl}", '{train: "a\\0b.jsonl"}')):
        result = tuner("validate")
    assert result.code == 1
    assert_clean(result)


def _validate_in_subprocess(spec: str = VALID_SPEC, train: bytes | None = None) -> subprocess.CompletedProcess:
    """Input that might crash the interpreter (SIGSEGV) is validated in a child process."""
    with project(spec=spec, train=train) as root:
        return subprocess.run([sys.executable, "-m", "runner", "validate"], cwd=root, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_spec_nested_50000_levels_deep_is_refused_not_a_segfault():
    """libyaml's composer recurses once per level: the process dies of SIGSEGV (exit -11) without a word."""
    result = _validate_in_subprocess("models: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert result.returncode == 1, f"exit {result.returncode}: {result.stderr[-500:]}"
    assert f"{SPEC}:1: " in result.stderr


def test_a_jsonl_line_nested_100000_objects_deep_is_an_error_at_its_line_not_a_segfault():
    """The orjson fast path of datasets._scan_jsonl recurses without limit on nested objects (orjson 3.8)."""
    result = _validate_in_subprocess(train=_train_with_line(_deep(100_000, "dict")))
    assert result.returncode == 1, f"exit {result.returncode}: {result.stderr[-500:]}"
    assert "data/train.jsonl:4:" in result.stderr


def test_closing_brackets_in_a_plain_scalar_do_not_hide_deep_nesting_from_the_depth_check():
    """yamlsource._flow_depth lets the count go negative: 60,000 ']' in a plain scalar (valid YAML in block
    context) buy 60,000 levels of '[' past the check, and libyaml crashes again."""
    result = _validate_in_subprocess("x-note: x" + "]" * 60_000 + "\nmodels: " + "[" * 60_000 + "]" * 60_000 + "\n")
    assert result.returncode == 1, f"exit {result.returncode}: {result.stderr[-500:]}"
    assert f"{SPEC}:2: " in result.stderr


@pytest.mark.parametrize("text", ["description: |\n      Emoticons " + "(" * 70 + " and " + "[" * 70,
                                  "description: see " + "[" * 70], ids=["block scalar", "plain scalar"])
def test_brackets_in_a_text_value_are_not_mistaken_for_nesting(text):
    """yamlsource._flow_depth strips quoted strings and comments only: brackets in plain and block scalars
    count as nesting, and a valid spec is refused with "nesting deeper than 64 levels"."""
    with project(spec=VALID_SPEC.replace("description: Review sentiment", text)):
        result = tuner("validate")
    assert result.code == 0, result.err


def test_a_control_character_is_blamed_on_its_own_line():
    """yaml's ReaderError is not a MarkedYAMLError: load_yaml reports line 1 and leaks 'in "<unicode string>"'."""
    with project(spec=VALID_SPEC.replace("Review sentiment", "Review\x1fsentiment")):
        result = tuner("validate")
    assert result.code == 1
    assert f"{SPEC}:7: " in result.err, result.err
    assert "<unicode string>" not in result.err


@pytest.mark.parametrize("scalar", ['!!int ""', '!!float ""', '!!bool ""', '!!timestamp "x"'])
def test_an_explicitly_tagged_odd_scalar_is_a_spec_error_not_an_internal_error(scalar):
    """yamlsource._scalar catches ValueError and OverflowError; these raise IndexError, KeyError, AttributeError."""
    with project(spec=VALID_SPEC.replace("display_name: Reviews", f"display_name: {scalar}")):
        result = tuner("validate")
    assert_clean(result)
    assert f"{SPEC}:6: " in result.err


def test_a_nan_learning_rate_is_refused_at_its_line():
    """NaN passes `exclusiveMinimum`/`maximum`; apply then trains with it, writes NaN (not JSON) into state,
    and every later plan replaces the model again because NaN != NaN."""
    with project(spec=VALID_SPEC.replace("learning_rate: 0.5", "learning_rate: .nan")):
        result = tuner("validate")
    assert result.code == 1, result.output
    assert f"{SPEC}:11: models.reviews.hyperparameters.learning_rate: " in result.err
