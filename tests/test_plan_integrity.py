"""A saved plan file is untrusted input: its shape is checked, its body bound, and its rules re-checked."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SENTIMENT_SPEC

PROTECTED_SPEC = SENTIMENT_SPEC.replace("    display_name: Sentiment\n",
                                        "    display_name: Sentiment\n    lifecycle: {prevent_destroy: true}\n")


def _saved(project, name: str = "tfplan.json") -> dict:
    return json.loads((project.root / name).read_text())


def _save(project, document: dict, name: str = "tfplan.json") -> None:
    (project.root / name).write_text(json.dumps(document))


@pytest.mark.parametrize("corrupt", [
    lambda d: d.pop("plan"),
    lambda d: d.pop("state"),
    lambda d: d["plan"]["changes"][0].pop("action"),
    lambda d: d["plan"].__setitem__("changes", "x"),
    lambda d: d["plan"]["changes"][0].__setitem__("fields", []),
    lambda d: d.__setitem__("targets", 5),
    lambda d: d["state"].__setitem__("serial", "0"),
    lambda d: d["plan"]["changes"][0].__setitem__("action", "explode"),
], ids=["no-plan", "no-state", "no-action", "changes-not-list", "fields-not-object", "targets-not-list",
        "serial-not-int", "unknown-action"])
def test_a_plan_file_with_missing_keys_or_wrong_types_is_a_corrupt_plan_file(project, corrupt):
    assert project.run("plan", "--out", "tfplan.json").code == 0
    document = _saved(project)
    corrupt(document)
    _save(project, document)
    result = project.run("apply", "tfplan.json")
    assert result.code == 1
    assert "corrupt plan file" in result.err, result.err
    assert "internal error" not in result.err
    assert project.state_bytes() is None


def _delete_change(name: str, prior_id: str) -> dict:
    return {"name": name, "action": "delete", "provider": "local", "fields": {}, "reason": "", "resume": False,
            "cleanup": [], "prior_id": prior_id, "fingerprint": None, "metrics": {}}


def test_an_edited_plan_body_is_refused(project):
    assert project.run("plan", "--out", "tfplan.json").code == 0
    document = _saved(project)
    document["plan"]["changes"][0]["reason"] = "harmless-looking edit"
    _save(project, document)
    result = project.run("apply", "tfplan.json")
    assert result.code == 1
    assert "was modified after it was written" in result.err, result.err
    assert project.state_bytes() is None


def _apply_a_forged_delete(project) -> tuple[str, str]:
    """Apply, save an empty plan, forge a delete of the model into it with a recomputed checksum, apply it."""
    from runner.planfile import body_checksum

    assert project.run("apply", "--auto-approve").code == 0
    prior_id = project.state()["models"]["sentiment"]["tuned_model_id"]
    assert project.run("plan", "--out", "tfplan.json").code == 0
    document = _saved(project)
    document["plan"]["changes"] = [_delete_change("sentiment", prior_id)]
    document["checksum"] = body_checksum(document)
    _save(project, document)
    result = project.run("apply", "tfplan.json")
    assert result.code == 1
    return prior_id, result.err


def test_an_added_delete_of_a_protected_model_is_refused_even_with_a_recomputed_checksum(project):
    project.spec(PROTECTED_SPEC)
    prior_id, err = _apply_a_forged_delete(project)
    assert "sentiment: the plan file would destroy it, but lifecycle.prevent_destroy is set" in err, err
    assert project.state()["models"]["sentiment"]["tuned_model_id"] == prior_id
    assert prior_id in project.artifacts()


def test_a_plan_file_change_that_the_configs_do_not_call_for_is_refused(project):
    """Not protected, but still declared: a plan never deletes a declared model, so neither may its file."""
    prior_id, err = _apply_a_forged_delete(project)
    assert "sentiment: the plan file says delete, the configs and state say noop" in err, err
    assert prior_id in project.artifacts()


def test_a_saved_plan_over_a_budget_set_after_it_was_made_is_refused_at_apply(project):
    assert project.run("plan", "--out", "tfplan.json").code == 0
    project.write("configs/budget.yaml", """\
        budget: {max_plan_cost_usd: 0}
        providers:
          local:
            pricing:
              local/linear-ngram: {training_per_million_tokens: 1000000}
        """)
    result = project.run("apply", "tfplan.json")
    assert result.code == 1
    assert "over the budget" in result.err, result.err
    assert project.state_bytes() is None


def test_a_plan_made_with_a_config_dir_applies_without_repeating_it(project):
    (project.root / "configs" / "models.yaml").rename(project.root / "other.yaml")
    project.write("env/prod/models.yaml", (project.root / "other.yaml").read_text().replace("../data", "../../data"))
    assert project.run("plan", "--config", "env/prod", "-w", "prod", "--out", "tfplan.json").code == 0
    assert _saved(project)["config_dir"] == "env/prod"
    result = project.run("apply", "tfplan.json")
    assert result.code == 0, result.output
    assert project.state("prod")["models"]["sentiment"]["status"] == "active"


def test_a_saved_plan_applied_with_another_config_dir_names_the_real_reason(project):
    project.write("env/prod/models.yaml", SENTIMENT_SPEC.replace("../data", "../../data"))
    assert project.run("plan", "--config", "env/prod", "--out", "tfplan.json").code == 0
    result = project.run("apply", "--config", "configs", "tfplan.json")
    assert result.code == 1
    assert "made with --config env/prod, not configs" in result.err, result.err


def test_a_plan_file_config_dir_outside_the_project_is_refused(project):
    from runner.planfile import body_checksum

    assert project.run("plan", "--out", "tfplan.json").code == 0
    document = _saved(project)
    document["config_dir"] = "../../etc"
    document["checksum"] = body_checksum(document)
    _save(project, document)
    result = project.run("apply", "tfplan.json")
    assert result.code == 1
    assert "outside the project" in result.err, result.err


@pytest.mark.parametrize("forge", [
    lambda job: job["hyperparameters"].__setitem__("epoch_count", 400),
    lambda job: job["datasets"]["train"].__setitem__("path", "../../etc/passwd"),
    lambda job: job["gate"].__setitem__("min_accuracy", 0.0),
], ids=["epochs", "dataset-path", "gate"])
def test_a_forged_job_request_is_refused_even_with_a_recomputed_checksum(project, forge):
    """A saved plan records what apply executes; each change's job must be the one the configs plan now."""
    from runner.planfile import body_checksum

    assert project.run("plan", "--out", "tfplan.json").code == 0
    document = _saved(project)
    forge(document["planned"]["sentiment"]["job"])
    document["checksum"] = body_checksum(document)
    _save(project, document)

    result = project.run("apply", "tfplan.json", "--auto-approve")

    assert result.code == 1
    assert "sentiment: the plan file's planned model is not the one the configs plan" in result.err, result.err
    assert project.state_bytes() is None and project.artifacts() == []


def test_a_plan_file_of_the_previous_format_is_refused_with_a_remedy(project):
    assert project.run("plan", "--out", "tfplan.json").code == 0
    document = _saved(project)
    document["format_version"] = 1
    _save(project, document)

    result = project.run("apply", "tfplan.json", "--auto-approve")

    assert result.code == 1 and "plan format 1 is not supported" in result.err
