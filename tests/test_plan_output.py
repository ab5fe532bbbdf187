"""What `tuner plan` prints for people and pull requests: one output format at a time, the markdown's header, and
plans and warnings that stay readable at thousands of models."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.plan import CREATE, DELETE, REPLACE, UPDATE, Change, FieldChange, Plan
from runner.render.plan import SUMMARY_AFTER, plan_text, value_text


@pytest.mark.parametrize("formats", [("--json", "--markdown"), ("--format", "json", "--markdown"),
                                     ("--format", "text", "--json")])
def test_two_output_formats_at_once_are_a_usage_error_on_one_line(project, formats):
    result = project.run("plan", "--no-refresh", *formats)

    assert result.code == 1  # a usage error is an error: 2 means "changes present" to --detailed-exitcode scripts
    assert result.out == ""
    first, remedy = result.err.splitlines()
    assert first.startswith("Error: ") and "cannot be combined" in first
    assert remedy == "  -> see `tuner plan --help`"


def test_the_same_format_given_twice_is_one_format(project):
    result = project.run("plan", "--no-refresh", "--format", "json", "--json")
    assert result.code == 0, result.output
    assert result.out.startswith("{")


def test_the_markdown_plan_names_its_workspace_and_backend_in_its_header(project):
    assert project.run("workspace", "new", "staging").code == 0

    first, heading = project.run("plan", "--no-refresh", "--markdown").out.splitlines()[:2]
    unchanged = project.run("plan", "--destroy", "--markdown").out.splitlines()[:2]

    assert first == "<!-- tuner plan: workspace staging -->"  # what a CI step finds its sticky comment by
    assert heading == "### tuner plan · workspace `staging` · local state `state/staging.json`: 1 to add, " \
                      "0 to replace, 0 to change, 0 to destroy."
    assert unchanged == [first, "### tuner plan · workspace `staging` · local state `state/staging.json`: no changes"]


def _plan(*changes: Change) -> Plan:
    return Plan(tuple(changes), "lineage", 1)


def _creates(count: int, provider: str = "local") -> list[Change]:
    fields = (FieldChange("base_model", None, "m", False), FieldChange("description", None, "d", False))
    return [Change(f"{provider}-{number:03}", CREATE, provider, fields) for number in range(count)]


RATE = (FieldChange("hyperparameters.learning_rate", 0.5, 0.25, True),)
MIXED = (Change("b", REPLACE, "gemini", RATE, prior_id="tunedModels/b-1", reason="--replace"),
         Change("c", UPDATE, "vertex", (FieldChange("display_name", "x", "y", False),), prior_id="m/c"),
         Change("d", DELETE, "gemini", prior_id="tunedModels/d-1"))


def test_a_plan_over_a_screenful_opens_with_its_counts_per_provider_and_action():
    text = plan_text(_plan(*_creates(SUMMARY_AFTER - 2), *MIXED)).splitlines()

    assert text[:8] == ["tuner will perform the following actions:", "",
                        f"  {SUMMARY_AFTER + 1} changes by provider (`tuner plan --compact` lists one line each):",
                        "    provider  + create  -/+ replace  ~ update  - destroy",
                        "    gemini           0            1         0          1",
                        "    local           38            0         0          0",
                        "    vertex           0            0         1          0",
                        "    total           38            1         1          1"]
    assert text[9] == "  + local-000 (local) will be created"  # then every change, as in a short plan
    assert text[-1] == "Plan: 38 to add, 1 to replace, 1 to change, 1 to destroy."


def test_a_plan_within_a_screenful_goes_straight_to_its_changes():
    text = plan_text(_plan(*_creates(SUMMARY_AFTER))).splitlines()
    assert text[2] == "  + local-000 (local) will be created"


def test_compact_prints_one_line_per_model():
    text = plan_text(_plan(*_creates(2), *MIXED), compact=True)

    assert text.splitlines() == [
        "tuner will perform the following actions:", "",
        "  + local-000 (local) will be created",
        "  + local-001 (local) will be created",
        "  -/+ b (gemini) must be replaced [tunedModels/b-1]: hyperparameters.learning_rate  # --replace",
        "  ~ c (vertex) will be updated in place [m/c]: display_name",
        "  - d (gemini) will be destroyed [tunedModels/d-1]", "",
        "Plan: 2 to add, 1 to replace, 1 to change, 1 to destroy."]


def test_plan_compact_on_the_command_line(project):
    result = project.run("plan", "--no-refresh", "--compact")
    assert result.code == 0, result.output
    assert "  + sentiment (local) will be created\n\nPlan: 1 to add" in result.out
    assert "base_model" not in result.out


def test_compact_is_a_text_view(project):
    result = project.run("plan", "--no-refresh", "--compact", "--json")
    assert result.code == 1 and "--compact" in result.err


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.integers(), st.booleans(), st.floats(allow_nan=False),
                 st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))
def test_a_value_is_shown_as_its_json(value):
    if isinstance(value, str) and len(value) == 64 and set(value) <= set("0123456789abcdef"):
        return  # a digest: shortened (below)
    assert value_text(value) == json.dumps(value, ensure_ascii=False)


def test_a_digest_is_shortened_and_nothing_is_shown_as_none():
    assert value_text("ab" * 32) == "sha256:abababababab"
    assert value_text(None) == "(none)"
