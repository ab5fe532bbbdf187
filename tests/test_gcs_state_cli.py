"""State in GCS for teams, through the CLI: the real google-cloud-storage client against fake-gcs-server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid

import pytest

from tests.conftest import _env, bucket, storage_client

BUCKET = "tuner-team-state"

SLOW_MODELS = """\
defaults:
  base_model: local/linear-ngram
  hyperparameters: {epoch_count: 120, batch_size: 8, learning_rate: 0.5}
  dataset: {train: ../data/train.jsonl}
models:
  alpha: {}
  bravo: {}
  charlie: {}
"""


@pytest.fixture
def prefix(gcs_server) -> str:
    bucket(BUCKET)
    return f"team-{uuid.uuid4().hex[:8]}"


def with_backend(spec: str, prefix: str) -> str:
    return f"backend:\n  gcs: {{bucket: {BUCKET}, prefix: {prefix}}}\n" + spec


def state_blob(prefix: str, workspace: str = "default"):
    return storage_client().bucket(BUCKET).get_blob(f"{prefix}/{workspace}.json")


def test_apply_records_state_in_gcs_and_the_next_plan_is_empty(project, prefix):
    project.spec(with_backend(SLOW_MODELS.replace("epoch_count: 120", "epoch_count: 2"), prefix))
    result = project.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    blob = state_blob(prefix)
    state = json.loads(blob.download_as_bytes())
    assert sorted(state["models"]) == ["alpha", "bravo", "charlie"]
    assert not (project.root / "state" / "default.json").exists()
    assert project.run("plan", "--detailed-exitcode").code == 0
    assert "alpha" in project.run("state", "list").out


def test_two_applies_at_once_one_proceeds_the_other_is_refused_naming_the_holder(project, prefix, tmp_path):
    project.spec(with_backend(SLOW_MODELS, prefix))
    first, second = (subprocess.Popen([sys.executable, "-m", "runner", "apply", "--auto-approve"], cwd=project.root,
                                      env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2))
    outcomes = sorted([(p.wait(timeout=120), p.communicate()[1], p.pid) for p in (first, second)])
    (winner_code, _, _), (loser_code, loser_err, _) = outcomes
    assert (winner_code, loser_code) == (0, 1)
    assert "is locked by apply (pid" in loser_err and "tuner force-unlock" in loser_err
    state = json.loads(state_blob(prefix).download_as_bytes())
    assert {r["status"] for r in state["models"].values()} == {"active"}
    # Every write of the winner, and none of the loser: the same number a lone apply makes locally.
    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "configs").mkdir()
    shutil.copytree(project.root / "data", reference / "data")
    (reference / "configs" / "m.yaml").write_text(SLOW_MODELS.replace("epoch_count: 120", "epoch_count: 2"))
    subprocess.run([sys.executable, "-m", "runner", "apply", "--auto-approve"], cwd=reference, env=_env(),
                   check=True, capture_output=True)
    assert state["serial"] == json.loads((reference / "state" / "default.json").read_text())["serial"]


def test_state_migrates_to_gcs_and_back_without_loss(project, prefix):
    assert project.run("apply", "--auto-approve").code == 0
    local = project.state()
    project.spec(project.root.joinpath("configs/models.yaml").read_text() +
                 f"backend:\n  gcs: {{bucket: {BUCKET}, prefix: {prefix}}}\n")
    result = project.run("state", "migrate", "--to", "gcs")
    assert result.code == 0, result.output
    remote = json.loads(state_blob(prefix).download_as_bytes())
    assert remote["lineage"] == local["lineage"] and remote["models"] == local["models"]
    assert remote["serial"] == local["serial"] + 1
    assert project.run("plan", "--detailed-exitcode").code == 0  # now reading GCS
    assert project.run("state", "migrate", "--to", "local").code == 0
    back = project.state()
    assert back["lineage"] == local["lineage"] and back["models"] == local["models"]
    assert back["serial"] > remote["serial"]


def test_migrate_without_a_configured_gcs_backend_says_how_to_configure_it(project):
    project.run("apply", "--auto-approve")
    result = project.run("state", "migrate", "--to", "gcs")
    assert result.code == 1 and "add `backend: {gcs: {bucket: NAME, prefix: PATH}}`" in result.err


def _applied_locally(project) -> dict:
    assert project.run("apply", "--auto-approve").code == 0
    return project.state()


def _name_backend(project, prefix: str) -> None:
    project.spec(with_backend(project.root.joinpath("configs/models.yaml").read_text(), prefix))


def test_a_spec_naming_an_empty_gcs_backend_is_refused_until_the_state_is_migrated(project, prefix):
    local = _applied_locally(project)
    artifacts = project.artifacts()
    _name_backend(project, prefix)
    for command in (["plan"], ["apply", "--auto-approve"], ["destroy", "--auto-approve"], ["refresh"],
                    ["state", "list"]):
        result = project.run(*command)
        assert result.code == 1, (command, result.output)
        assert "holds no state for workspace 'default', but state/default.json does" in result.err
        assert "tuner state migrate --to gcs" in result.err and "to add" not in result.out
    assert state_blob(prefix) is None and project.artifacts() == artifacts and project.state() == local
    assert project.run("state", "migrate", "--to", "gcs").code == 0
    assert project.run("plan", "--detailed-exitcode").code == 0
    assert project.run("apply", "--auto-approve").code == 0 and project.artifacts() == artifacts


def test_migrate_first_then_the_spec(project, prefix):
    _applied_locally(project)
    result = project.run("state", "migrate", "--to", "gcs", "--bucket", BUCKET, "--prefix", prefix)
    assert result.code == 0, result.output
    result = project.run("plan")  # the spec still says local, whose state now lives in GCS
    assert result.code == 1 and "to add" not in result.out
    assert f"was migrated to gs://{BUCKET}/{prefix}/default.json" in result.err
    assert f"backend: {{gcs: {{bucket: {BUCKET}, prefix: {prefix}}}}}" in result.err
    _name_backend(project, prefix)
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_migrating_back_to_local_is_refused_until_the_spec_follows(project, prefix):
    _applied_locally(project)
    _name_backend(project, prefix)
    assert project.run("state", "migrate", "--to", "gcs").code == 0
    assert project.run("state", "migrate", "--to", "local").code == 0
    result = project.run("plan")  # the spec still names GCS, whose state moved back to the local file
    assert result.code == 1 and "was migrated to state/default.json" in result.err
    spec_path = project.root / "configs" / "models.yaml"
    spec_path.write_text(spec_path.read_text().split("\n", 2)[2])  # drop the two lines with_backend added
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_two_different_states_for_one_workspace_are_refused(project, prefix):
    _applied_locally(project)
    other = project.root / "elsewhere"
    shutil.copytree(project.root / "configs", other / "configs")
    shutil.copytree(project.root / "data", other / "data")
    (other / "configs" / "models.yaml").write_text(with_backend((other / "configs" / "models.yaml").read_text(),
                                                                prefix))
    made_in_gcs = subprocess.run([sys.executable, "-m", "runner", "apply", "--auto-approve"], cwd=other, env=_env(),
                                 capture_output=True, text=True)
    assert made_in_gcs.returncode == 0, made_in_gcs.stderr
    _name_backend(project, prefix)
    result = project.run("plan")
    assert result.code == 1 and "hold different states" in result.err


def test_the_markdown_plan_names_the_gcs_state_it_was_made_against(project, prefix):
    project.spec(with_backend(SLOW_MODELS, prefix))
    heading = project.run("plan", "--no-refresh", "--markdown").out.splitlines()[1]
    state_at = f"gs://{BUCKET}/{prefix}/default.json"
    assert heading.startswith(f"### tuner plan · workspace `default` · gcs state `{state_at}`: ")
