"""Apply reads another workspace's state again only when it may have changed (runner.ops.workspace.SiblingStates),
and a promote recorded there between two deletes of one apply is still seen by the second (local provider)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from runner.providers.local import LocalProvider
from runner.state import State
from tests.conftest import ran_once, storage_client
from tests.test_gcs_state_cli import BUCKET, prefix, with_backend  # noqa: F401 (prefix is a fixture)

FLEET = """\
defaults:
  provider: local
  base_model: local/linear-ngram
  hyperparameters: {epoch_count: 2, batch_size: 8, learning_rate: 0.5}
  dataset: {train: ../data/train.jsonl}
models:
  alpha: {}
  bravo: {}
  charlie: {}
  delta: {}
"""


@pytest.fixture(scope="module")
def fleet_applied(tmp_path_factory) -> Path:
    """dev applied FLEET (four models) and staging holds an empty state; trained once for the module."""
    return ran_once(tmp_path_factory.mktemp("siblings"), FLEET, ["-w", "dev", "apply", "--auto-approve"],
                    ["workspace", "new", "staging"])

def fleet_in(project, fleet_applied: Path, backend: str, prefix: str = "") -> dict[str, str]:  # noqa: F811
    """PROJECT as fleet_applied left it, its states in BACKEND; returns dev's model ids by name."""
    shutil.copytree(fleet_applied / ".tuner" / "models", project.models_dir())
    states = fleet_applied / "state"
    if backend == "local":
        project.spec(FLEET)
        shutil.copytree(states, project.root / "state")
    else:
        project.spec(with_backend(FLEET, prefix))
        objects = storage_client().bucket(BUCKET)
        for workspace in ("dev", "staging"):
            objects.blob(f"{prefix}/{workspace}.json").upload_from_string((states / f"{workspace}.json").read_bytes())
    dev = json.loads((states / "dev.json").read_bytes())  # compacted by the end of the apply: no journal
    return {name: record["tuned_model_id"] for name, record in dev["models"].items()}


@pytest.fixture
def decodes(monkeypatch) -> Counter:
    """How many times each workspace's state file was decoded (counting only: the real decoder runs)."""
    counted, decode = Counter(), State.from_json

    def counting(raw: bytes, where: str) -> State:
        counted[Path(where).name.removesuffix(".json")] += 1
        return decode(raw, where)

    monkeypatch.setattr(State, "from_json", counting)
    return counted


@pytest.mark.parametrize("backend", ["local", "gcs"])
def test_deletes_of_one_apply_decode_each_unchanged_sibling_once(project, fleet_applied, backend, request, decodes):
    fleet_in(project, fleet_applied, backend, request.getfixturevalue("prefix") if backend == "gcs" else "")
    assert project.run("workspace", "new", "prod").code == 0
    decodes.clear()
    result = project.run("-w", "dev", "destroy", "--auto-approve")
    assert result.code == 0, result.output
    assert project.artifacts() == []  # four deletes, each after asking who else references its model
    # One decode for the plan's note of what other workspaces keep, one for all four deletes of the apply.
    assert (decodes["prod"], decodes["staging"]) == (2, 2)


@pytest.mark.parametrize("backend", ["local", "gcs"])
def test_a_promote_recorded_between_two_deletes_keeps_the_model_it_now_references(project, fleet_applied, backend,
                                                                                 request, monkeypatch):
    ids = fleet_in(project, fleet_applied, backend, request.getfixturevalue("prefix") if backend == "gcs" else "")
    assert project.run("workspace", "new", "prod").code == 0  # read empty by the first delete
    delete, promoted = LocalProvider.delete, []

    def delete_then_promote_in_prod(provider, tuned_model_id, handle, owner):
        delete(provider, tuned_model_id, handle, owner)
        if not promoted:  # prod now serves bravo: the next delete must see it
            from runner.ops.promote import promote
            from runner.project import Project

            promoted.extend(promote(Project.open(None, "prod"), ["bravo"], "dev"))

    monkeypatch.setattr(LocalProvider, "delete", delete_then_promote_in_prod)
    result = project.run("-w", "dev", "destroy", "--auto-approve", "--parallelism", "1")
    assert result.code == 0, result.output
    assert [p.instance.tuned_model_id for p in promoted] == [ids["bravo"]]
    assert f"{ids['bravo']} still referenced by workspace prod" in result.err
    assert project.artifacts() == [ids["bravo"]]


def test_each_call_sees_the_workspaces_created_and_deleted_since_and_reads_only_what_changed(project, decodes):
    from runner.ops.workspace import SiblingStates
    from runner.project import Project

    for workspace in ("dev", "staging"):
        assert project.run("workspace", "new", workspace).code == 0
    siblings = SiblingStates(Project.open(None, "dev"))
    assert list(siblings()) == ["staging"]  # (default has no state yet)
    assert project.run("workspace", "new", "prod").code == 0
    assert project.run("-w", "dev", "workspace", "delete", "staging").code == 0
    decodes.clear()
    assert list(siblings()) == ["prod"]
    assert list(siblings()) == ["prod"]
    assert decodes == {"prod": 1}
