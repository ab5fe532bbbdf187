"""Invocation: global options before the command, and running from any subdirectory of the project."""

from runner.cli import main
from runner.environment import Environment
from runner.status import ExitStatus


def test_global_workspace_and_config_go_before_the_command(project):
    (project.root / "configs").rename(project.root / "specs")
    assert project.run("-w", "prod", "--config", "specs", "apply", "--auto-approve").code == 0
    assert project.state("prod")["models"]["sentiment"]["status"] == "active"
    assert not (project.root / "state" / "default.json").exists()


def test_the_commands_own_option_wins_over_the_global_one(project):
    assert project.run("-w", "prod", "apply", "--auto-approve", "-w", "dev").code == 0
    assert (project.root / "state" / "dev.json").exists() and not (project.root / "state" / "prod.json").exists()


def test_a_workspace_given_on_the_command_line_wins_over_tuner_workspace(project, monkeypatch):
    monkeypatch.setenv("TUNER_WORKSPACE", "staging")
    assert project.run("-w", "prod", "apply", "--auto-approve").code == 0
    assert (project.root / "state" / "prod.json").exists() and not (project.root / "state" / "staging.json").exists()


def test_no_color_before_the_command_turns_colour_off_on_a_terminal(project, capsys):
    # click strips colour codes from a captured stream itself, so the test asks the run's Environment
    coloured, plain = Environment(stdout_isatty=True, environ={}), Environment(stdout_isatty=True, environ={})
    main(["validate"], env=coloured)
    main(["--no-color", "validate"], env=plain)
    assert coloured.colour and not plain.colour and not plain.stderr_colour


def test_a_run_from_a_subdirectory_finds_the_project_root(project, monkeypatch):
    monkeypatch.chdir(project.root / "data")
    assert project.run("apply", "--auto-approve").code == 0
    assert project.state()["models"]["sentiment"]["status"] == "active"
    assert not (project.root / "data" / "state").exists()


def test_tuner_root_names_the_project_from_anywhere(project, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    main(["apply", "--auto-approve"], env=Environment(cwd=elsewhere, environ={"TUNER_ROOT": str(project.root)}))
    assert project.state()["models"]["sentiment"]["status"] == "active"
    assert not (elsewhere / "state").exists()


def test_a_missing_tuner_root_is_an_error_with_a_remedy(project, monkeypatch):
    monkeypatch.setenv("TUNER_ROOT", "nowhere")
    result = project.run("validate")
    assert result.code == ExitStatus.ERROR
    assert "TUNER_ROOT 'nowhere' is not a directory" in result.err and "unset it" in result.err


def test_a_relative_config_is_relative_to_the_working_directory(project, monkeypatch):
    monkeypatch.chdir(project.root / "configs")
    result = project.run("--config", ".", "apply", "--auto-approve")
    assert result.code == 0, result.output
    assert project.state()["models"]["sentiment"]["status"] == "active"
    assert not (project.root / "configs" / "state").exists()
