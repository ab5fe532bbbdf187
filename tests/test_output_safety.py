"""Text from specs, state, datasets or a provider is shown inert: no live markdown in a PR comment, no
terminal control sequences on a terminal."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from tests.conftest import SENTIMENT_SPEC

INJECTED = ("`x` **LGTM** [a](http://e)", "x` **LGTM** [a](http://e) <b>bold</b> | `y")
HIDDEN_LINK = "\x1b]8;;http://e\x07click\x1b]8;;\x07"
CONTROLS = (HIDDEN_LINK, "\u202e", "\x1b[8m", "\x9b31m", "\r")


def _html(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown)


def _spec_with_description(description: str) -> str:
    """A JSON string is a YAML double-quoted scalar: control characters as escapes."""
    return SENTIMENT_SPEC.replace("description: Reviews to labels", f"description: {json.dumps(description)}")


def _assert_inert(html: str) -> None:
    for live in ("<strong>LGTM", "<a ", "<b>bold", "<code>x</code>"):
        assert live not in html, html


@pytest.mark.parametrize("description", INJECTED)
def test_markdown_in_a_description_stays_inert_in_the_plan_comment(project, description):
    project.spec(_spec_with_description(description))
    _assert_inert(_html(project.run("plan", "--markdown").out))
    project.spec(SENTIMENT_SPEC)
    assert project.run("apply", "--auto-approve").code == 0
    project.spec(_spec_with_description(description))
    html = _html(project.run("plan", "--markdown").out)
    _assert_inert(html)
    assert "**LGTM**" in html and "[a](http://e)" in html  # shown literally, in code
    row = html[html.index("<tbody>"):html.index("</tbody>")]
    assert row.count("<td>") == 5, row  # a pipe in the value did not open a new cell


def test_terminal_control_sequences_are_stripped_from_plan_text(project):
    project.spec(_spec_with_description("ok " + "".join(CONTROLS) + " end"))
    text = project.run("plan").out
    assert '"ok \\u001b]8;;http://e' in text  # C0 controls in values are shown escaped, as JSON
    for control in ("\x1b", "\x07", "\u202e", "\x9b", "\r"):
        assert control not in text


def test_terminal_control_sequences_are_stripped_from_predict_output(project):
    """Every label of the training data carries a hidden link and a bidi override; the answer shows neither."""
    train = project.root / "data" / "train.jsonl"
    poisoned = r'"output": "\1\\u001b]8;;http://e\\u0007\\u202e"'
    train.write_text(re.sub(r'"output": "(\w+)"', poisoned, train.read_text()))
    project.spec(SENTIMENT_SPEC.replace("      validation: ../data/valid.jsonl\n", ""))
    assert project.run("apply", "--auto-approve").code == 0
    answer = project.run("predict", "sentiment", "Awesome water bottle, keeps ice for a full day in a hot car.").out
    assert answer.strip() in {"positive", "negative", "neutral"}, repr(answer)


@given(st.text(alphabet=st.characters(codec=None), max_size=40))
def test_the_printable_shortcut_of_terminal_safe_never_lets_a_control_through(text):
    import runner.render.terminal as terminal

    full = terminal._TERMINAL_CONTROL.sub("", terminal._TERMINAL_SEQUENCE.sub("", text))
    assert terminal.terminal_safe(text) == full
    for control in ("\x1b", "\x9b", "\x07", "\u202e", "\u2066", "\x00"):
        assert not (text + control).isprintable()  # what the shortcut relies on
