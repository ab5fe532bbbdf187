"""The pre-commit hooks tuner publishes: well formed, and each command means what its hook promises."""

from __future__ import annotations

import shlex

import pytest
import yaml

from tests.conftest import REPO


@pytest.fixture(scope="module")
def hooks() -> dict[str, dict]:
    return {hook["id"]: hook for hook in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}


def _run_hook(project, hook: dict):
    """What pre-commit runs at the project's top: the entry, no file names appended."""
    command = shlex.split(hook["entry"])
    assert command[0] == "tuner"
    return project.run(*command[1:])


def test_each_hook_is_a_complete_python_hook_that_takes_no_file_names(hooks):
    assert set(hooks) == {"tuner-validate", "tuner-plan-check"}
    for hook in hooks.values():
        assert {"id", "name", "entry", "language", "files"} <= set(hook)
        assert hook["language"] == "python" and hook["pass_filenames"] is False  # tuner reads the whole project


def test_tuner_validate_fails_a_commit_with_an_invalid_spec(project, hooks):
    assert _run_hook(project, hooks["tuner-validate"]).code == 0
    project.spec("models:\n  Bad_Name: {base_model: local/linear-ngram}\n", name="broken.yaml")
    assert _run_hook(project, hooks["tuner-validate"]).code == 1


def test_tuner_plan_check_fails_until_the_spec_change_is_applied_and_its_state_written(project, hooks):
    check = hooks["tuner-plan-check"]
    assert _run_hook(project, check).code == 2  # declared, never applied
    assert project.run("apply", "--auto-approve").code == 0
    assert _run_hook(project, check).code == 0
    spec = project.root / "configs" / "models.yaml"
    spec.write_text(spec.read_text().replace("display_name: Sentiment", "display_name: Reviews"))
    assert _run_hook(project, check).code == 2
