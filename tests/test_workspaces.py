"""`tuner workspace list|show|new|select|delete`, on the local backend and on GCS (fake-gcs-server)."""

from __future__ import annotations

from runner.status import ExitStatus
from tests.conftest import SENTIMENT_SPEC
from tests.test_gcs_state_cli import prefix, state_blob, with_backend  # noqa: F401 (prefix is a fixture)


def test_a_new_project_lists_default_in_use(project):
    result = project.run("workspace", "list")
    assert (result.code, result.out) == (0, "* default\n")
    assert project.run("workspace", "show").out == "default\n"


def test_new_creates_an_empty_state_and_selects_it(project):
    result = project.run("workspace", "new", "dev")
    assert result.code == 0 and "Created and selected workspace 'dev'" in result.out
    assert project.state("dev")["models"] == {}
    assert project.run("workspace", "list").out == "  default\n* dev\n"
    assert project.run("workspace", "show").out == "dev\n"
    assert project.run("apply", "--auto-approve").code == 0  # the selection is used by every command
    assert project.state("dev")["models"]["sentiment"]["status"] == "active"
    assert not (project.root / "state" / "default.json").exists()


def test_new_refuses_a_workspace_that_exists(project):
    assert project.run("workspace", "new", "dev").code == 0
    result = project.run("workspace", "new", "dev")
    assert result.code == ExitStatus.ERROR and "already exists" in result.err and "workspace select dev" in result.err


def test_select_persists_and_tuner_workspace_and_w_override_it(project, monkeypatch):
    assert project.run("workspace", "new", "dev").code == 0
    assert project.run("workspace", "select", "default").out == "Selected workspace 'default'.\n"
    assert project.run("workspace", "select", "dev").code == 0
    assert (project.root / ".tuner" / "workspace").read_text() == "dev\n"
    assert project.run("-w", "prod", "workspace", "show").out == "prod\n"
    monkeypatch.setenv("TUNER_WORKSPACE", "staging")
    assert project.run("workspace", "show").out == "staging\n"
    assert project.run("workspace", "show", "-w", "prod").out == "prod\n"
    result = project.run("workspace", "select", "default")
    assert "TUNER_WORKSPACE=staging is set: it overrides the selected workspace" in result.err


def test_select_refuses_a_workspace_that_does_not_exist(project):
    result = project.run("workspace", "select", "prod")
    assert result.code == ExitStatus.ERROR
    assert "workspace 'prod' does not exist" in result.err and "tuner workspace new prod" in result.err
    assert not (project.root / ".tuner" / "workspace").exists()


def test_a_corrupt_selection_is_refused_like_any_bad_name(project):
    project.write(".tuner/workspace", "../etc\n")
    result = project.run("plan")
    assert result.code == ExitStatus.ERROR and "workspace: invalid workspace name '../etc'" in result.err
    assert "tuner workspace select NAME" in result.err


def test_delete_refuses_default_and_the_workspace_in_use(project):
    assert "default workspace cannot be deleted" in project.run("workspace", "delete", "default").err
    assert project.run("workspace", "new", "dev").code == 0
    result = project.run("workspace", "delete", "dev")
    assert result.code == ExitStatus.ERROR and "is the one in use" in result.err
    assert project.state("dev")["models"] == {}


def test_delete_refuses_a_workspace_that_still_manages_models_naming_them(project):
    assert project.run("-w", "dev", "apply", "--auto-approve").code == 0
    tuned = project.state("dev")["models"]["sentiment"]["tuned_model_id"]
    result = project.run("workspace", "delete", "dev")
    assert result.code == ExitStatus.ERROR
    assert f"still manages 1 model(s): sentiment ({tuned})" in result.err and "--force" in result.err
    assert "tuner -w dev destroy" in result.err
    assert project.state("dev")["models"]["sentiment"]["tuned_model_id"] == tuned


def test_a_forced_delete_names_the_models_left_behind_and_never_deletes_them(project):
    assert project.run("-w", "dev", "apply", "--auto-approve").code == 0
    tuned = project.state("dev")["models"]["sentiment"]["tuned_model_id"]
    artifacts = project.artifacts()
    result = project.run("workspace", "delete", "dev", "--force")
    assert result.code == 0, result.output
    assert f"sentiment: {tuned} (local, active)" in result.err and "stay with their providers" in result.err
    assert result.out == "Deleted workspace 'dev'.\n"
    assert not list((project.root / "state").glob("dev.*"))  # state, backup and outputs file
    assert project.artifacts() == artifacts and artifacts  # the tuned model itself is untouched
    assert project.run("workspace", "list").out == "* default\n"


def test_deleting_the_selected_workspace_from_another_one_clears_the_selection(project):
    assert project.run("workspace", "new", "dev").code == 0
    assert project.run("-w", "default", "workspace", "delete", "dev").code == 0
    assert project.run("workspace", "show").out == "default\n"


def test_workspaces_live_in_the_gcs_backend_too(project, prefix):  # noqa: F811 (the fixture)
    project.spec(with_backend(SENTIMENT_SPEC, prefix))
    assert project.run("workspace", "new", "prod").code == 0
    assert state_blob(prefix, "prod") is not None and not (project.root / "state").exists()
    assert project.run("apply", "--auto-approve").code == 0
    assert project.run("workspace", "list").out == "  default\n* prod\n"
    assert "still manages 1 model(s)" in project.run("-w", "default", "workspace", "delete", "prod").err
    assert project.run("-w", "default", "workspace", "delete", "prod", "--force").code == 0
    assert state_blob(prefix, "prod") is None
    assert project.run("workspace", "list").out == "* default\n"


WORKSPACE_SPEC = (SENTIMENT_SPEC.replace("display_name: Sentiment", "display_name: Sentiment (${workspace})")
                  .replace("../data/train.jsonl", "../data/${workspace}/train.jsonl"))


def test_workspace_in_a_spec_string_is_the_workspace_in_use(project):
    for workspace in ("dev", "prod"):
        (project.root / "data" / workspace).mkdir()
        (project.root / "data" / workspace / "train.jsonl").write_bytes((project.root / "data" / "train.jsonl")
                                                                         .read_bytes())
    project.spec(WORKSPACE_SPEC)
    assert project.run("-w", "dev", "apply", "--auto-approve").code == 0
    assert project.run("-w", "prod", "apply", "--auto-approve").code == 0  # the spec cache is per workspace here
    for workspace in ("dev", "prod"):
        current = project.state(workspace)["models"]["sentiment"]
        assert current["display_name"] == f"Sentiment ({workspace})"
        assert current["dataset"]["train"]["path"] == f"data/{workspace}/train.jsonl"
    assert project.run("-w", "dev", "plan", "--detailed-exitcode").code == 0  # and back: nothing to do
    result = project.run("-w", "staging", "validate")
    assert result.code == ExitStatus.ERROR and "data/staging/train.jsonl" in result.err
