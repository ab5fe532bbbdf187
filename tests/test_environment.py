"""One injected Environment: a run reads its directory, variables, terminals and clock from it alone."""

import pytest

from runner.cli import main
from runner.environment import Environment
from runner.errors import ProviderError
from runner.project import Project
from runner.status import ExitStatus

GEMINI_SPEC = """\
providers:
  gemini: {api_key_env: TUNER_TEST_GEMINI_KEY, endpoint: "http://127.0.0.1:9"}
defaults:
  provider: gemini
  base_model: models/gemini-1.5-flash-001-tuning
models:
  reviews:
    dataset: {train: ../data/train.jsonl}
"""


def test_a_run_works_in_the_environments_directory_and_workspace_not_the_processs(project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    main(["apply", "--auto-approve"], env=Environment(cwd=project.root, environ={"TUNER_WORKSPACE": "staging"}))
    assert project.state("staging")["models"]["sentiment"]["status"] == "active"
    assert not (project.root / "state" / "default.json").exists() and not (elsewhere / "state").exists()


def test_providers_read_their_settings_variables_from_the_environment(project, monkeypatch):
    monkeypatch.delenv("TUNER_TEST_GEMINI_KEY", raising=False)
    project.spec(GEMINI_SPEC)
    Project.open(None, None, env=Environment(environ={"TUNER_TEST_GEMINI_KEY": "key"})).providers.preflight(["gemini"])
    with pytest.raises(ProviderError, match="TUNER_TEST_GEMINI_KEY is not set"):
        Project.open(None, None, env=Environment(environ={})).providers.preflight(["gemini"])


def test_without_a_terminal_on_the_environments_stdin_apply_asks_no_question_and_refuses(project):
    result = project.run("apply")
    assert result.code == ExitStatus.ERROR and "standard input is not a terminal" in result.err
    assert project.state_bytes() is None


def test_exit_statuses_are_the_documented_codes():
    assert {status.name: int(status) for status in ExitStatus} == {
        "SUCCESS": 0, "ERROR": 1, "CHANGES_PRESENT": 2, "INTERRUPTED": 130}
