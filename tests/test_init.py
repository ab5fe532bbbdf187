"""`tuner init`: a project a team can commit, that applies as it is, and that a second run never damages."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import REPO, Project


@pytest.fixture
def workdir(tmp_path, capsys, monkeypatch) -> Project:
    """An empty directory to run tuner in."""
    return Project(tmp_path, capsys, monkeypatch)


def _git(*args: str, cwd) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_an_initialized_project_applies_and_git_sees_only_what_a_team_commits(workdir, monkeypatch):
    assert workdir.run("init", "demo").code == 0
    demo = workdir.root / "demo"
    monkeypatch.chdir(demo)
    applied = workdir.run("apply", "--auto-approve")
    assert applied.code == 0, applied.output
    assert workdir.run("plan", "--out", "review.plan").code == 0
    _git("init", "-q", cwd=demo)
    untracked = sorted(line[3:] for line in _git("status", "--porcelain", "--untracked-files=all", cwd=demo)
                       .splitlines())
    # the local artifacts (.tuner/), the state backup and lock guard, and the saved plan stay out
    assert untracked == [".gitignore", "configs/sentiment.yaml", "data/sentiment/train.jsonl",
                         "data/sentiment/valid.jsonl", "state/.gitkeep", "state/default.json",
                         "state/default.outputs.json"]
    assert json.loads((demo / "state" / "default.json").read_text())["models"]["sentiment-classifier"][
        "status"] == "active"


def test_the_example_spec_names_the_schema_for_editors_on_its_first_line(workdir):
    workdir.run("init")
    first = (workdir.root / "configs" / "sentiment.yaml").read_text().splitlines()[0]
    schema_id = json.loads((REPO / "schemas" / "spec.schema.json").read_text())["$id"]
    assert first == f"# yaml-language-server: $schema={schema_id}"


def test_init_again_keeps_every_file_and_only_adds_missing_ignore_entries(workdir):
    workdir.run("init")
    spec = workdir.root / "configs" / "sentiment.yaml"
    spec.write_text("models: {}\n")
    (workdir.root / ".gitignore").write_text("node_modules/\n.tuner/")  # no final newline
    again = workdir.run("init")
    assert again.code == 0
    assert "kept    configs/ (it has specs: no example added)" in again.out
    assert spec.read_text() == "models: {}\n"
    ignore = (workdir.root / ".gitignore").read_text().splitlines()
    assert ignore[:2] == ["node_modules/", ".tuner/"] and ignore.count(".tuner/") == 1
    assert {"*.plan", "state/*.backup", "state/*.lock"} <= set(ignore)
    before = {p: p.read_bytes() for p in workdir.root.rglob("*") if p.is_file()}
    third = workdir.run("init")
    assert "created" not in third.out and "kept    .gitignore (has every entry)" in third.out
    assert {p: p.read_bytes() for p in workdir.root.rglob("*") if p.is_file()} == before


def test_ci_github_writes_the_shipped_workflow_where_github_reads_it(workdir):
    assert workdir.run("init", "--ci", "github").code == 0
    workflow = workdir.root / ".github" / "workflows" / "tuner.yml"
    assert workflow.read_bytes() == (REPO / "examples" / "github-actions.yml").read_bytes()


@pytest.mark.parametrize("provider", ["gemini", "vertex", "openai"])
def test_the_example_of_each_cloud_provider_validates(workdir, provider):
    assert workdir.run("init", "--provider", provider).code == 0
    assert f"provider: {provider}" in (workdir.root / "configs" / "sentiment.yaml").read_text()
    checked = workdir.run("validate")
    assert checked.code == 0, checked.output


def test_a_project_with_specs_of_its_own_gets_no_example_model_to_train(project):
    project.write(".gitignore", ".tuner/\n")
    done = project.run("init")
    assert done.code == 0 and "no example added" in done.out
    assert sorted(p.name for p in (project.root / "configs").iterdir()) == ["models.yaml"]
    assert not (project.root / "data" / "sentiment").exists()
    assert (project.root / "state" / ".gitkeep").exists() and "*.plan" in (project.root / ".gitignore").read_text()
