"""Shell completion (click's _TUNER_COMPLETE): model names and workspaces are completed from the project."""

from __future__ import annotations

import subprocess
import sys

from click.shell_completion import ShellComplete

from runner.cli import cli
from runner.environment import Environment
from tests.conftest import _env

TWO_MODELS = """\
defaults:
  base_model: local/linear-ngram
  dataset: {train: ../data/train.jsonl}
models:
  sentiment: {}
  spam: {}
  topics: {}
"""


def candidates(args: list[str], incomplete: str, env: Environment | None = None) -> list[str]:
    completer = ShellComplete(cli, {"obj": env or Environment()}, "tuner", "_TUNER_COMPLETE")
    return [item.value for item in completer.get_completions(args, incomplete)]


def test_model_names_are_completed_from_the_specs(project):
    project.spec(TWO_MODELS)
    assert candidates(["predict"], "s") == ["sentiment", "spam"]
    assert candidates(["eval"], "") == ["sentiment", "spam", "topics"]
    assert candidates(["state", "show"], "t") == ["topics"]
    assert candidates(["-w", "dev", "cost"], "sp") == ["spam"]


def test_model_names_follow_the_given_config_directory(project):
    project.write("other/models.yaml", TWO_MODELS.replace("topics", "tags"))
    assert candidates(["--config", "other", "predict"], "t") == ["tags"]
    assert candidates(["predict", "--config", "other"], "t") == ["tags"]


def test_workspaces_are_completed_for_w_and_workspace_arguments(project):
    assert project.run("workspace", "new", "dev").code == 0
    assert project.run("workspace", "new", "prod").code == 0
    assert candidates(["workspace", "select"], "") == ["default", "dev", "prod"]
    assert candidates(["workspace", "delete"], "d") == ["default", "dev"]
    assert candidates(["plan", "-w"], "p") == ["prod"]
    assert candidates(["-w"], "de") == ["default", "dev"]


def test_an_unreadable_project_completes_nothing_and_says_nothing(project, capsys):
    project.spec("models: [not, a, mapping]\n")
    assert candidates(["predict"], "") == []
    assert capsys.readouterr().err == ""


def test_the_completion_variable_drives_the_installed_command(project):
    env = {**_env(), "_TUNER_COMPLETE": "bash_complete", "COMP_WORDS": "tuner predict se", "COMP_CWORD": "2"}
    done = subprocess.run([sys.executable, "-m", "runner"], cwd=project.root, env=env, capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout) == (0, "plain,sentiment\n"), done.stderr
    env["_TUNER_COMPLETE"] = "fish_source"
    source = subprocess.run([sys.executable, "-m", "runner"], cwd=project.root, env=env, capture_output=True,
                            text=True, timeout=60)
    assert "complete --no-files --command tuner" in source.stdout
