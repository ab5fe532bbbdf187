"""The operations (runner/ops/): each command is one of them over the opened project; plan stays light."""

import subprocess
import sys

from runner.environment import Environment
from runner.ops.plan import plan
from runner.ops.refresh import refresh
from runner.ops.state import current_state, outputs_path
from runner.project import Project


def _loaded_after(command: str, cwd) -> set[str]:
    """The tuner modules a fresh process has imported after running COMMAND in CWD."""
    probe = ("import sys\nfrom runner.cli import main\n"
             f"main({command.split()!r})\n"
             "print(' '.join(m for m in sys.modules if m.startswith('runner.')))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_plan_imports_no_operation_that_writes_and_not_the_applier(project):
    loaded = _loaded_after("plan --refresh=false", project.root)
    assert "runner.ops.plan" in loaded
    assert loaded.isdisjoint({"runner.apply", "runner.ops.apply", "runner.ops.import_", "runner.ops.evaluate"})


def test_operations_run_on_the_opened_project_without_the_cli(project):
    project.run("apply", "--auto-approve")
    opened = Project.open(None, None, env=Environment(cwd=project.root, environ={}))
    the_plan, resolution = plan(opened, refresh=False)
    assert not the_plan.has_changes and [m.name for m in resolution.models] == ["sentiment"]
    assert refresh(opened) == ([], ())  # the local provider holds what state records: nothing to note
    assert current_state(opened).outputs()["sentiment"]["tuned_model_id"].startswith("sentiment-")
    assert outputs_path(opened) == project.root / "state" / "default.outputs.json"
