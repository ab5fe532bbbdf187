"""What `tuner plan` prints for people and pull requests: one output format at a time, the markdown's header, and
plans and warnings that stay readable at thousands of models."""

from __future__ import annotations

import pytest


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
