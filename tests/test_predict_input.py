"""`tuner predict` takes text longer than the argument limit: from standard input (`-`) or from --file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import _env

NEGATIVE = "Awful, it broke after a day and support ignored me. Terrible. "


@pytest.fixture
def applied(project):
    assert project.run("apply", "--auto-approve").code == 0
    return project


def long_text() -> str:
    """Over 200 KB, whose answer is in its last line: blank lines alone are neutral to the model."""
    text = "\n" * 120_000 + " " * 120_000 + NEGATIVE
    assert len(text.encode()) > 200_000
    return text


def predict_process(project, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner", "predict", "sentiment", *args], cwd=project.root,
                          input=stdin, capture_output=True, text=True, timeout=120, env=_env())


def test_the_long_text_needs_all_of_it(applied):
    assert applied.run("predict", "sentiment", long_text()[:240_000]).out.strip() == "neutral"


def test_text_from_standard_input(applied):
    result = predict_process(applied, "-", stdin=long_text() + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "negative"


def test_text_from_a_file(applied):
    (applied.root / "review.txt").write_text(long_text(), encoding="utf-8")
    result = predict_process(applied, "--file", "review.txt")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "negative"


@pytest.mark.parametrize("args", [(), ("some text", "--file", "review.txt")])
def test_text_is_given_exactly_once(applied, args):
    (applied.root / "review.txt").write_text("fine", encoding="utf-8")
    result = applied.run("predict", "sentiment", *args)
    assert result.code == 1
    assert "give the text as an argument, '-' for standard input, or --file PATH" in result.err


def test_a_missing_file_is_a_clear_error(applied):
    result = applied.run("predict", "sentiment", "--file", "missing.txt")
    assert result.code == 1 and "missing.txt" in result.err and "internal error" not in result.err


def test_a_file_not_in_utf8_is_a_clear_error(applied):
    (applied.root / "review.txt").write_bytes(b"caf\xe9")
    result = applied.run("predict", "sentiment", "--file", "review.txt")
    assert result.code == 1
    assert result.err.startswith("Error: the text to predict from is not valid UTF-8 (byte 3)"), result.err
