"""`tuner promote NAME --from dev`: prod serves dev's model without training, and a model shared by workspaces of one
backend is deleted only when the last of them lets it go (local provider)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runner.status import ExitStatus
from tests.conftest import SENTIMENT_SPEC, ran_once
from tests.test_gcs_state_cli import prefix, state_blob, with_backend  # noqa: F401 (prefix is a fixture)

# ${workspace} in a display name: the model is the same in every workspace (the fingerprint ignores names).
SPEC = SENTIMENT_SPEC.replace("display_name: Sentiment", "display_name: Sentiment ${workspace}")
CHANGED = SPEC.replace("learning_rate: 0.5", "learning_rate: 0.25")


@pytest.fixture(scope="module")
def dev_applied(tmp_path_factory) -> Path:
    """A project whose dev workspace applied SPEC, trained once for the module: tests copy its state and models."""
    return ran_once(tmp_path_factory.mktemp("promote"), SPEC, ["-w", "dev", "apply", "--auto-approve"])


def applied_in_dev(project, dev_applied: Path) -> str:
    """PROJECT as dev_applied left it; returns dev's model id."""
    project.spec(SPEC)
    for kept in ("state", ".tuner/models"):
        shutil.copytree(dev_applied / kept, project.root / kept)
    return project.state("dev")["models"]["sentiment"]["tuned_model_id"]


def promote_devs_model(project, dev_applied: Path) -> tuple[str, str]:
    """dev applied, its model promoted to prod: (the model's id, what promote printed)."""
    tuned = applied_in_dev(project, dev_applied)
    result = project.run("-w", "prod", "promote", "sentiment", "--from", "dev")
    assert result.code == 0, result.output
    return tuned, result.out


@pytest.fixture
def promoted(project, dev_applied) -> str:
    return promote_devs_model(project, dev_applied)[0]


def test_promote_adopts_devs_model_without_training_and_prod_plans_no_change(project, dev_applied):
    promoted, printed = promote_devs_model(project, dev_applied)
    assert printed == f"sentiment: promoted {promoted} from workspace dev to prod (no training, $0).\n"
    prod, dev = project.state("prod"), project.state("dev")
    record = prod["models"]["sentiment"]
    assert record["tuned_model_id"] == promoted and record["fingerprint"] == dev["models"]["sentiment"]["fingerprint"]
    assert record["promoted_from"] == {"workspace": "dev", "lineage": dev["lineage"], "serial": dev["serial"],
                                       "owner": {"workspace": "dev", "lineage": dev["lineage"]}}
    assert record["display_name"] == "Sentiment dev"  # the creator's: prod never renames a model dev serves
    assert project.artifacts() == [promoted]
    assert project.run("-w", "prod", "plan", "--detailed-exitcode").code == 0
    assert project.run("-w", "dev", "plan", "--detailed-exitcode").code == 0
    assert project.run("-w", "prod", "predict", "sentiment", "I love it").code == 0
    assert project.run("-w", "prod", "promote", "sentiment", "--from", "dev").out == \
        f"sentiment: workspace prod already serves {promoted}; nothing to do.\n"
    assert project.state("prod")["serial"] == 1  # the already-promoted model: nothing written again


def test_a_fingerprint_that_differs_is_refused_with_the_field_diff(project, dev_applied):
    tuned = applied_in_dev(project, dev_applied)
    project.spec(CHANGED)
    result = project.run("-w", "prod", "promote", "sentiment", "--from", "dev")
    assert result.code == ExitStatus.ERROR
    assert result.err.startswith("Error: 1 model(s) cannot be promoted from workspace dev to prod; nothing was "
                                 "recorded\n")
    assert f"  sentiment: the spec here describes another model than dev's {tuned}:\n" in result.err
    assert "      ~ hyperparameters.learning_rate = 0.5 -> 0.25  # forces replacement\n" in result.err
    assert "display_name" not in result.err  # only what makes it another model
    assert project.state_bytes("prod") is None


def test_nothing_to_promote_is_refused(project):
    project.spec(SPEC)
    assert project.run("-w", "dev", "workspace", "new", "dev").code == 0
    result = project.run("-w", "prod", "promote", "sentiment", "--from", "dev")
    assert result.code == ExitStatus.ERROR and "workspace dev has no current model: nothing to promote" in result.err
    unknown = project.run("-w", "prod", "promote", "sentiment", "--from", "staging")
    assert unknown.code == ExitStatus.ERROR and "workspace 'staging' has no state in state/staging.json" in unknown.err
    assert "cannot promote workspace prod into itself" in project.run("-w", "prod", "promote", "--all",
                                                                      "--from", "prod").err


def test_dev_destroy_keeps_what_prod_serves_and_prod_destroy_then_deletes_it(project, promoted):
    kept = f"      # {promoted} is kept: still referenced by workspace prod\n"
    assert kept in project.run("-w", "dev", "plan", "--destroy").out
    result = project.run("-w", "dev", "destroy", "--auto-approve")
    assert result.code == 0 and "still referenced by workspace prod: not deleted" in result.err
    assert project.state("dev")["models"] == {} and project.artifacts() == [promoted]
    assert project.run("-w", "prod", "predict", "sentiment", "I love it").code == 0
    assert project.run("-w", "prod", "destroy", "--auto-approve").code == 0
    assert project.artifacts() == []


def test_prod_destroy_keeps_the_model_while_dev_serves_it(project, promoted):
    result = project.run("-w", "prod", "destroy", "--auto-approve")
    assert result.code == 0 and "still referenced by workspace dev" in result.err
    assert project.artifacts() == [promoted]
    assert project.run("-w", "dev", "destroy", "--auto-approve").code == 0
    assert project.artifacts() == []


def test_replace_in_dev_keeps_the_model_prod_serves(project, promoted):
    project.spec(CHANGED.replace("    dataset:", "    lifecycle: {keep_previous: 0}\n    dataset:"))
    result = project.run("-w", "dev", "apply", "--auto-approve")
    assert result.code == 0 and "still referenced by workspace prod" in result.err
    assert f"# {promoted} is kept: still referenced by workspace prod" in result.out  # the plan said so
    new = project.state("dev")["models"]["sentiment"]["tuned_model_id"]
    assert sorted(project.artifacts()) == sorted([promoted, new])
    assert "retained" not in project.state("dev")["models"]["sentiment"]


def test_promoting_a_new_dev_model_supersedes_the_one_prod_served_which_dev_retains(project, promoted):
    project.spec(CHANGED)
    assert project.run("-w", "dev", "apply", "--auto-approve").code == 0  # promoted is retained in dev now
    new = project.state("dev")["models"]["sentiment"]["tuned_model_id"]
    result = project.run("-w", "prod", "promote", "--all", "--from", "dev")
    assert result.code == 0 and f"{promoted} is superseded" in result.out
    record = project.state("prod")["models"]["sentiment"]
    assert record["tuned_model_id"] == new and [r["tuned_model_id"] for r in record["retained"]] == [promoted]
    assert project.state("prod")["serial"] == 2 and (project.root / "state" / "prod.json.backup").exists()
    assert project.run("-w", "prod", "plan", "--detailed-exitcode").code == 0
    result = project.run("-w", "prod", "destroy", "--auto-approve")  # dev retains one and serves the other
    assert result.code == 0 and result.err.count("still referenced by workspace dev") == 2
    assert sorted(project.artifacts()) == sorted([promoted, new])


def test_a_foreign_model_in_devs_state_is_never_adopted(project, dev_applied):
    applied_in_dev(project, dev_applied)
    assert project.run("-w", "staging", "apply", "--auto-approve").code == 0
    foreign = project.record_foreign_model("staging", "dev", "sentiment")
    result = project.run("-w", "prod", "promote", "sentiment", "--from", "dev")
    assert result.code == ExitStatus.ERROR
    assert f"{foreign} carries owner tag" in result.err and "another state's model is never adopted" in result.err
    assert project.state_bytes("prod") is None


def test_a_promoted_from_naming_a_lineage_this_backend_lacks_never_deletes(project, promoted):
    path = project.root / "state" / "prod.json"
    state = json.loads(path.read_text())
    state["models"]["sentiment"]["promoted_from"]["owner"]["lineage"] = "another-teams-lineage"
    path.write_text(json.dumps(state))
    assert project.run("-w", "dev", "destroy", "--auto-approve").code == 0  # kept: prod references it
    result = project.run("-w", "prod", "destroy", "--auto-approve")
    assert result.code == 0 and "whose state this backend no longer holds: not deleted" in result.err
    assert project.artifacts() == [promoted]


def test_a_malformed_promoted_from_is_a_corrupt_state(project, promoted):
    path = project.root / "state" / "prod.json"
    state = json.loads(path.read_text())
    state["models"]["sentiment"]["promoted_from"]["owner"] = "dev"
    path.write_text(json.dumps(state))
    result = project.run("-w", "prod", "plan")
    assert result.code == ExitStatus.ERROR
    assert "models.sentiment.promoted_from.owner: must be an object, not a string" in result.err


def test_state_list_says_where_a_model_was_promoted_from(project, promoted):
    assert f"{promoted}  active (promoted from dev)" in project.run("-w", "prod", "state", "list").out


def test_a_model_promoted_through_staging_is_owned_by_dev_and_kept_while_any_serves_it(project, promoted):
    result = project.run("-w", "staging", "promote", "sentiment", "--from", "prod")
    assert result.code == 0, result.output
    assert project.state("staging")["models"]["sentiment"]["promoted_from"]["owner"]["workspace"] == "dev"
    assert "still referenced by workspace prod, staging" in project.run("-w", "dev", "destroy", "--auto-approve").err
    assert "still referenced by workspace prod" in project.run("-w", "staging", "destroy", "--auto-approve").err
    assert project.run("-w", "prod", "destroy", "--auto-approve").code == 0
    assert project.artifacts() == []  # the last reference gone: deleted under dev's identity


def test_deleting_the_creators_workspace_is_refused_while_another_serves_its_model(project, promoted):
    assert project.run("-w", "dev", "destroy", "--auto-approve").code == 0  # kept for prod
    result = project.run("workspace", "delete", "dev")
    assert result.code == ExitStatus.ERROR
    assert f"created model(s) other workspaces still serve: prod: sentiment ({promoted})" in result.err
    assert project.run("workspace", "delete", "dev", "--force").code == 0
    assert "whose state this backend no longer holds" in project.run("-w", "prod", "destroy", "--auto-approve").err
    assert project.artifacts() == [promoted]  # left behind, as --force said


def test_from_completes_workspace_names(project, promoted):
    from tests.test_completion import candidates

    assert candidates(["-w", "prod", "promote", "sentiment", "--from"], "de") == ["default", "dev"]


def test_promote_and_shared_deletion_in_the_gcs_backend(project, prefix):  # noqa: F811 (the fixture)
    project.spec(with_backend(SPEC, prefix))
    assert project.run("-w", "dev", "apply", "--auto-approve").code == 0
    assert project.run("-w", "prod", "promote", "sentiment", "--from", "dev").code == 0
    promoted = json.loads(state_blob(prefix, "prod").download_as_bytes())["models"]["sentiment"]
    assert promoted["promoted_from"]["workspace"] == "dev" and not (project.root / "state" / "prod.json").exists()
    assert "still referenced by workspace prod" in project.run("-w", "dev", "destroy", "--auto-approve").err
    assert project.artifacts() == [promoted["tuned_model_id"]]
    assert project.run("-w", "prod", "destroy", "--auto-approve").code == 0
    assert project.artifacts() == []
