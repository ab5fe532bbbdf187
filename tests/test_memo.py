"""The plan memo (runner/memo.py): a text plan whose every input is that of the last plan that found nothing to do
answers from it; any input that changed (spec, dataset, state, journal, provider, environment, request, tuner
itself) is planned in full, and so shown."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

import runner
from runner import memo
from runner.project import Project as Engine
from runner.state import LocalBackend
from tests.conftest import SENTIMENT_SPEC, bucket, edit_one_example_in_place, storage_client

NO_CHANGES = "No changes. Your tuned models match the configuration."


@pytest.fixture
def applied(project, monkeypatch):
    return applied_counting(project, monkeypatch)


def applied_counting(project, monkeypatch):
    """The sentiment model applied; `project.resolves` counts the plans built in full (a plan answered from the
    memo resolves no spec)."""
    assert project.run("apply", "--auto-approve").code == 0
    project.resolves = 0
    resolve = Engine.resolve

    def counting(self):
        project.resolves += 1
        return resolve(self)

    monkeypatch.setattr(Engine, "resolve", counting)
    return project


def settled(project):
    """The first plan after the apply: built in full, it finds nothing to do and records the memo. (In the test's
    own phase: pytest's PYTEST_CURRENT_TEST differs between a fixture and the test, and the environment is an input.)"""
    first = project.run("plan")
    assert first.code == 0 and NO_CHANGES in first.out and memo_file(project).exists()
    project.first_plan, project.resolves = first, 0
    return first


def memo_file(project) -> Path:
    return memo.memo_path(project.root, "default")


def test_an_unchanged_project_is_planned_from_the_memo_with_the_same_output_and_exit_code(applied):
    settled(applied)
    again = applied.run("plan", "--detailed-exitcode")
    assert (again.code, again.out, again.err) == (0, applied.first_plan.out, applied.first_plan.err)
    assert applied.resolves == 0


def test_a_plan_with_changes_forgets_the_memo_and_an_apply_makes_the_next_plan_in_full(applied):
    settled(applied)
    applied.spec(SENTIMENT_SPEC.replace("learning_rate: 0.5", "learning_rate: 0.25"))
    assert "must be replaced" in applied.run("plan").out
    assert not memo_file(applied).exists()
    assert applied.run("apply", "--auto-approve").code == 0
    assert NO_CHANGES in applied.run("plan").out and applied.resolves == 3  # plan, apply, plan
    assert memo_file(applied).exists()


def edit_spec(project):
    project.spec(SENTIMENT_SPEC.replace("Reviews to labels", "Reviews to sentiment labels"))


def edit_dataset_in_place(project):
    edit_one_example_in_place(project.root / "data" / "train.jsonl")  # same size, mtime and inode


def add_spec_file(project):
    project.spec(SENTIMENT_SPEC.replace("sentiment:", "second:"), name="second.yaml")


def edit_state(project):
    path = project.root / "state" / "default.json"
    state = json.loads(path.read_text())
    state["models"]["sentiment"]["prevent_destroy"] = True
    path.write_text(json.dumps(state, indent=2))


def append_journal_record(project):
    """What an apply killed after recording a transition leaves: a journal record beside an unchanged file."""
    backend = LocalBackend(project.root / "state", "default")
    with backend.locked("test") as state:
        state.models["sentiment"].current.prevent_destroy = True
        backend.write_record(state, "sentiment")


def delete_artifact(project):
    (folder,) = project.models_dir().iterdir()
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()


def rename_at_provider(project):
    (folder,) = project.models_dir().iterdir()
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "display_name": "Renamed at the provider"}))


@pytest.mark.parametrize("edit, shown", [
    (edit_spec, "Reviews to sentiment labels"),
    (edit_dataset_in_place, "must be replaced"),
    (add_spec_file, "+ second"),
    (edit_state, "lifecycle.prevent_destroy"),
    (append_journal_record, "lifecycle.prevent_destroy"),
    (delete_artifact, "deleted outside tuner"),
    (rename_at_provider, "Renamed at the provider"),
], ids=lambda value: getattr(value, "__name__", ""))
def test_any_input_that_changed_is_planned_in_full_and_shown(applied, edit, shown):
    settled(applied)
    edit(applied)
    result = applied.run("plan")
    assert result.code == 0 and shown in result.out and NO_CHANGES not in result.out
    assert applied.resolves == 1


def test_another_environment_or_request_is_planned_in_full(applied, monkeypatch):
    settled(applied)
    monkeypatch.setenv("TUNER_SOME_SETTING", "1")  # provider settings and credentials come from the environment
    assert NO_CHANGES in applied.run("plan").out and applied.resolves == 1
    assert NO_CHANGES in applied.run("plan", "--target", "sentiment").out and applied.resolves == 2
    assert NO_CHANGES in applied.run("plan", "--refresh=false").out and applied.resolves == 3
    assert NO_CHANGES in applied.run("plan", "--refresh=false").out and applied.resolves == 3  # remembered


def test_views_that_list_every_model_never_answer_from_the_memo(applied, tmp_path):
    settled(applied)
    document = json.loads(applied.run("plan", "--json").out)
    assert [change["action"] for change in document["changes"]] == ["noop"]
    assert applied.run("plan", "--out", str(tmp_path / "saved.plan")).code == 0
    assert applied.resolves == 2


@pytest.mark.parametrize("damage", [b"", b"{not json", b'{"format": "tuner-plan-memo-0"}', b"[]"])
def test_a_damaged_or_foreign_memo_is_ignored(applied, damage):
    settled(applied)
    memo_file(applied).write_bytes(damage)
    assert applied.run("plan").out == applied.first_plan.out
    assert applied.resolves == 1


def test_a_memo_written_by_other_code_is_ignored(applied):
    settled(applied)
    path = memo_file(applied)
    recorded = json.loads(path.read_text())
    request = json.loads(recorded["request"])
    path.write_text(json.dumps({**recorded, "request": json.dumps(["0" * 64, *request[1:]])}))
    assert applied.run("plan").out == applied.first_plan.out
    assert applied.resolves == 1


def test_tuner_identity_changes_with_any_file_of_the_package(tmp_path, monkeypatch):
    package = tmp_path / "runner"
    (package / "providers").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "providers" / "local.py").write_text("RULE = 1\n")
    monkeypatch.setattr(runner, "__file__", str(package / "__init__.py"))
    before = memo.tuner_identity()
    (package / "providers" / "local.py").write_text("RULE = 2\n")
    assert memo.tuner_identity() != before


def test_the_environment_digest_is_salted_and_ignores_what_a_shell_sets_per_command():
    environ = {"OPENAI_API_KEY": "sk-secret", "PWD": "/a", "_": "/usr/bin/tuner"}
    digest = memo.environ_digest(environ, "salt")
    assert digest == memo.environ_digest({**environ, "PWD": "/b", "_": "/bin/x"}, "salt")
    assert digest != memo.environ_digest({**environ, "OPENAI_API_KEY": "sk-other"}, "salt")
    assert digest != memo.environ_digest(environ, "other salt")


def test_a_spec_file_written_while_it_is_read_is_read_again_next_time(project, monkeypatch):
    """The spec cache keeps a file under the stat it had BEFORE it was read: one taken after a write that landed
    during the read would keep the old content for good (and the memo with it)."""
    from runner.spec import loader

    path = project.root / "configs" / "models.yaml"
    real = loader.load_yaml

    def written_meanwhile(file, *rest):
        document = real(file, *rest)
        if file == path:
            path.write_text(SENTIMENT_SPEC.replace("Reviews to labels", "Written during the read"))
        return document

    monkeypatch.setattr(loader, "load_yaml", written_meanwhile)
    assert project.run("validate").code == 0
    monkeypatch.setattr(loader, "load_yaml", real)
    assert "Written during the read" in project.run("plan").out


def test_a_plan_where_the_memo_cannot_be_written_still_plans(applied):
    settled(applied)
    folder = memo_file(applied).parent
    memo_file(applied).unlink()
    folder.rmdir()
    folder.write_text("a file where the memo folder would be")
    assert applied.run("plan").out == applied.first_plan.out
    assert applied.run("plan").out == applied.first_plan.out
    assert applied.resolves == 2


# -- the GCS backend: its version is one listing of generations, and the local file a read compares with it --------
@pytest.fixture
def on_gcs(project, gcs_server, monkeypatch):
    """The sentiment model applied with its state in GCS (a prefix of its own), resolves counted as `applied`."""
    from tests.test_gcs_state_cli import BUCKET, with_backend

    bucket(BUCKET)
    prefix = f"memo-{uuid.uuid4().hex[:8]}"
    project.spec(with_backend(SENTIMENT_SPEC, prefix))
    project.blob = storage_client().bucket(BUCKET).blob(f"{prefix}/default.json")
    return applied_counting(project, monkeypatch)


def test_a_gcs_project_is_planned_from_the_memo_until_its_state_object_changes(on_gcs):
    settled(on_gcs)
    assert on_gcs.run("plan").out == on_gcs.first_plan.out and on_gcs.resolves == 0
    state = json.loads(on_gcs.blob.download_as_bytes())
    state["models"]["sentiment"]["prevent_destroy"] = True  # another writer's version of the state
    on_gcs.blob.upload_from_string(json.dumps(state))
    result = on_gcs.run("plan")
    assert "lifecycle.prevent_destroy" in result.out and on_gcs.resolves == 1


def test_a_local_state_file_left_beside_a_gcs_backend_is_seen(on_gcs):
    settled(on_gcs)
    (on_gcs.root / "state").mkdir(exist_ok=True)
    (on_gcs.root / "state" / "default.json").write_text(json.dumps({
        "format_version": 1, "lineage": "another", "serial": 3, "workspace": "default",
        "models": {"sentiment": json.loads(on_gcs.blob.download_as_bytes())["models"]["sentiment"]}}))
    result = on_gcs.run("plan")
    assert result.code == 1 and "hold different states" in result.err and on_gcs.resolves == 1
