"""What `tuner plan` prints for people and pull requests: one output format at a time, the markdown's header, and
plans and warnings that stay readable at thousands of models."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.plan import CREATE, DELETE, REPLACE, UPDATE, Change, FieldChange, Plan
from runner.render.markdown import COMMENT_LIMIT, plan_markdown
from runner.render.outcome import GROUPED_FROM, warnings_text
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


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(), st.integers(), st.booleans(), st.floats(allow_nan=False),
                 st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))
def test_a_value_is_shown_as_its_json(value):
    if isinstance(value, str) and len(value) == 64 and set(value) <= set("0123456789abcdef"):
        return  # a digest: shortened (below)
    assert value_text(value) == json.dumps(value, ensure_ascii=False)


def test_a_digest_is_shortened_and_nothing_is_shown_as_none():
    assert value_text("ab" * 32) == "sha256:abababababab"
    assert value_text(None) == "(none)"


def _duplicates(files: int) -> list[str]:
    return [f"data/d{number}.jsonl: duplicate example on lines 1, 61" for number in range(files)]


def test_a_warning_repeated_across_many_files_is_said_once_with_its_first_instance():
    small = "configs/a.yaml: models.x.dataset.train: data/x.jsonl has 12 examples; at least 50 are needed for tuning " \
            "to be worth paying for (allowed by allow_small)"
    warnings = [*_duplicates(GROUPED_FROM), "data/d0.jsonl: ... and 3 more duplicated examples", small]

    assert warnings_text(warnings).splitlines() == [
        f"Warning: {GROUPED_FROM} files have duplicate examples; first: data/d0.jsonl: duplicate example on lines 1, "
        f"61; `tuner validate --verbose` lists them all", f"Warning: {small}"]
    assert warnings_text(warnings, verbose=True).splitlines() == [f"Warning: {w}" for w in warnings]


def test_a_few_warnings_of_a_kind_are_each_shown():
    assert warnings_text(_duplicates(GROUPED_FROM - 1)).splitlines() == [
        f"Warning: {w}" for w in _duplicates(GROUPED_FROM - 1)]


def test_duplicates_in_many_datasets_are_grouped_by_validate_and_plan_and_listed_with_verbose(project):
    lines = (project.root / "data" / "train.jsonl").read_text().splitlines(keepends=True)
    spec = "defaults: {base_model: local/linear-ngram}\nmodels:\n"
    for number in range(GROUPED_FROM):
        project.write(f"data/d{number}.jsonl", "".join(lines[number:] + lines[number:number + 1]))
        spec += f"  m{number}: {{dataset: {{train: ../data/d{number}.jsonl}}}}\n"
    project.spec(spec)

    grouped = project.run("validate").err
    listed = project.run("validate", "--verbose").err.splitlines()
    planned = project.run("plan", "--no-refresh", "--compact").err

    assert grouped == (f"Warning: {GROUPED_FROM} files have duplicate examples; first: data/d0.jsonl: duplicate "
                       f"example on lines 1, {len(lines) + 1}; `tuner validate --verbose` lists them all\n")
    assert len(listed) == GROUPED_FROM
    assert listed[1] == f"Warning: data/d1.jsonl: duplicate example on lines 1, {len(lines)}"
    assert planned == grouped
    assert len(project.run("plan", "--no-refresh", "--verbose").err.splitlines()) == GROUPED_FROM


def test_small_datasets_allowed_in_many_models_are_grouped_too(project):
    lines = (project.root / "data" / "train.jsonl").read_text().splitlines(keepends=True)
    project.write("data/small.jsonl", "".join(lines[:10]))
    project.spec("defaults:\n  base_model: local/linear-ngram\n"
                 "  dataset: {train: ../data/small.jsonl, allow_small: true}\nmodels:\n"
                 + "".join(f"  m{number}: {{}}\n" for number in range(GROUPED_FROM)))

    first, = project.run("validate").err.splitlines()

    assert first.startswith(f"Warning: {GROUPED_FROM} models have fewer examples than tuning needs; first: "
                            f"configs/models.yaml:5: models.m0.dataset.train: data/small.jsonl has 10 examples")


def _markdown(plan: Plan, limit: int = COMMENT_LIMIT) -> str:
    return plan_markdown(plan, workspace="prod", backend="local", state_at="state/prod.json", limit=limit)


def test_a_markdown_plan_over_a_screenful_opens_with_its_counts_per_provider_and_action():
    lines = _markdown(_plan(*_creates(SUMMARY_AFTER - 2), *MIXED)).splitlines()
    table = lines.index("| Provider | 🟢 create | 🟠 replace | 🟡 update | 🔴 destroy |")

    assert lines[table + 1:table + 6] == ["|---|---:|---:|---:|---:|", "| gemini | 0 | 1 | 0 | 1 |",
                                          "| local | 38 | 0 | 0 | 0 |", "| vertex | 0 | 0 | 1 | 0 |",
                                          "| total | 38 | 1 | 1 | 1 |"]
    assert "<details><summary>Full plan</summary>" in lines


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_a_markdown_plan_too_long_for_a_comment_leaves_out_the_full_plan_first_then_rows():
    plan = _plan(*_creates(400))
    whole = _markdown(plan)
    without_full_plan = _markdown(plan, limit=_utf16(whole) - 1)
    cut = _markdown(plan, limit=8_000)

    assert "<details>" in whole and "<details>" not in without_full_plan
    assert without_full_plan.count("will be created") == 0 and without_full_plan.count("🟢 create |  |") == 400
    assert without_full_plan.endswith("_the full plan is longer than a comment can be: `tuner plan --compact` "
                                      "lists every change._\n")
    assert _utf16(cut) <= 8_000 and cut.startswith("<!-- tuner plan: workspace prod -->\n### tuner plan")
    listed = cut.count("🟢 create |  |")
    assert 0 < listed < 400 and f"_{400 - listed} more changes are not listed here; the full plan" in cut
    assert "| `local-000` | local |" in cut  # the first rows are kept, in order


def test_a_plan_of_thousands_of_models_fits_in_one_comment():
    assert _utf16(_markdown(_plan(*_creates(5_000)))) <= COMMENT_LIMIT < 65_536


def test_compact_still_says_which_models_another_workspace_keeps():
    plan = replace(_plan(*MIXED), kept={"tunedModels/d-1": ("prod",)})
    assert plan_text(plan, compact=True).splitlines()[4:6] == [
        "  - d (gemini) will be destroyed [tunedModels/d-1]",
        "      # tunedModels/d-1 is kept: still referenced by workspace prod"]
