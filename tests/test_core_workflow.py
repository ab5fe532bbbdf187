"""The core loop through the CLI: apply, re-plan, edit, and see exactly the right plan."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SENTIMENT_SPEC


def plan_json(project, *args):
    result = project.run("plan", "--json", *args)
    assert result.code == 0, result.output
    return json.loads(result.out)


def test_first_apply_creates_the_model_and_records_state(project):
    result = project.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    assert "Apply complete! Models: 1 added" in result.out
    record = project.state()["models"]["sentiment"]
    assert record["status"] == "active"
    assert record["provider"] == "local"
    assert record["tuned_model_id"].startswith("sentiment-")
    assert record["dataset"]["train"] == {"path": "data/train.jsonl", "examples": 265,
                                          "sha256": record["dataset"]["train"]["sha256"]}
    assert record["dataset"]["validation"]["examples"] == 66
    assert record["hyperparameters"] == {"epoch_count": 4, "batch_size": 8, "learning_rate": 0.5}
    assert 0.5 < record["metrics"]["accuracy"] <= 1.0
    assert record["created_at"] and record["updated_at"]
    assert record["provider_info"]["sdk"] == "tuner-local-trainer"
    assert project.artifacts() == [record["tuned_model_id"]]


def test_plan_after_apply_has_no_changes(project):
    project.run("apply", "--auto-approve")
    result = project.run("plan", "--detailed-exitcode")
    assert result.code == 0
    assert "No changes" in result.out


def test_detailed_exitcode_is_2_when_changes_are_present(project):
    result = project.run("plan", "--detailed-exitcode")
    assert result.code == 2
    assert "Plan: 1 to add, 0 to replace, 0 to change, 0 to destroy." in result.out


def test_learning_rate_edit_plans_a_replacement(project):
    project.run("apply", "--auto-approve")
    project.spec(SENTIMENT_SPEC.replace("learning_rate: 0.5", "learning_rate: 0.25"))
    result = project.run("plan")
    assert "-/+ sentiment (local) must be replaced" in result.out
    assert "hyperparameters.learning_rate = 0.5 -> 0.25  # forces replacement" in result.out
    change = plan_json(project)["changes"][0]
    assert change["action"] == "replace"
    assert change["fields"] == {"hyperparameters.learning_rate": {"old": 0.5, "new": 0.25,
                                                                  "forces_replacement": True}}


def test_replacement_creates_the_new_model_before_deleting_the_old(project):
    no_retention = SENTIMENT_SPEC.replace("    dataset:", "    lifecycle: {keep_previous: 0}\n    dataset:")
    project.spec(no_retention)
    project.run("apply", "--auto-approve")
    old_id = project.state()["models"]["sentiment"]["tuned_model_id"]
    project.spec(no_retention.replace("epoch_count: 4", "epoch_count: 5"))
    result = project.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    new_id = project.state()["models"]["sentiment"]["tuned_model_id"]
    assert new_id != old_id
    assert project.artifacts() == [new_id]
    assert result.err.index(f"submitting ({new_id})") < result.err.index(f"deleting (superseded {old_id})")
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_description_edit_is_an_in_place_update(project):
    project.run("apply", "--auto-approve")
    tuned_id = project.state()["models"]["sentiment"]["tuned_model_id"]
    project.spec(SENTIMENT_SPEC.replace("Reviews to labels", "Product reviews to three labels"))
    change = plan_json(project)["changes"][0]
    assert change["action"] == "update"
    assert change["fields"]["description"] == {"old": "Reviews to labels", "new": "Product reviews to three labels",
                                               "forces_replacement": False}
    assert project.run("apply", "--auto-approve").code == 0
    record = project.state()["models"]["sentiment"]
    assert record["tuned_model_id"] == tuned_id
    assert record["description"] == "Product reviews to three labels"
    meta = json.loads((project.models_dir() / tuned_id / "meta.json").read_text())
    assert meta["description"] == "Product reviews to three labels"


def test_model_removed_from_configs_is_destroyed(project):
    project.run("apply", "--auto-approve")
    project.spec("models: {}\n")
    result = project.run("plan", "--json")
    assert json.loads(result.out)["summary"] == {"create": 0, "replace": 0, "update": 0, "delete": 1, "restore": 0}
    assert project.run("apply", "--auto-approve").code == 0
    assert project.state()["models"] == {}
    assert project.artifacts() == []


def test_prevent_destroy_refuses_a_plan_that_would_delete(project):
    project.spec(SENTIMENT_SPEC + "    lifecycle: {prevent_destroy: true}\n")
    project.run("apply", "--auto-approve")
    before = project.state_bytes()
    project.spec("models: {}\n")
    result = project.run("plan")
    assert result.code == 1
    assert "prevent_destroy" in result.err and "sentiment" in result.err
    assert project.run("apply", "--auto-approve").code == 1
    assert project.state_bytes() == before
    assert len(project.artifacts()) == 1


def test_reformatted_jsonl_plans_no_changes(project):
    project.run("apply", "--auto-approve")
    path = project.root / "data" / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    reformatted = "\r\n".join(json.dumps({"output": r["output"], "text_input": r["text_input"], "extra": 1},
                                         ensure_ascii=True, indent=None, separators=(" ,", " : ")) for r in rows)
    path.write_bytes(b"\xef\xbb\xbf" + reformatted.encode() + b"\r\n\r\n")
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_moved_dataset_with_same_content_plans_no_changes(project):
    project.run("apply", "--auto-approve")
    (project.root / "data" / "train.jsonl").rename(project.root / "data" / "renamed.jsonl")
    project.spec(SENTIMENT_SPEC.replace("train.jsonl", "renamed.jsonl"))
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_one_edited_example_plans_a_replacement(project):
    project.run("apply", "--auto-approve")
    path = project.root / "data" / "train.jsonl"
    lines = path.read_text().splitlines()
    row = json.loads(lines[10])
    row["output"] = "neutral" if row["output"] != "neutral" else "positive"
    lines[10] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    change = plan_json(project)["changes"][0]
    assert change["action"] == "replace"
    assert list(change["fields"]) == ["dataset.train"]


def test_malformed_line_names_the_line_and_submits_nothing(project):
    path = project.root / "data" / "train.jsonl"
    lines = path.read_text().splitlines()
    lines[41] = '{"text_input": "fine", "output": }'
    path.write_text("\n".join(lines) + "\n")
    result = project.run("apply", "--auto-approve")
    assert result.code == 1
    assert "data/train.jsonl:42:34: invalid JSON" in result.err
    assert "Traceback" not in result.output
    assert project.state_bytes() is None
    assert project.artifacts() == []


def test_unknown_spec_key_is_an_error_naming_it(project):
    project.spec(SENTIMENT_SPEC.replace("    display_name:", "    dispaly_name: x\n    display_name:"))
    result = project.run("validate")
    assert result.code == 1
    assert "configs/models.yaml:7: models.sentiment.dispaly_name: unknown key" in result.err
    assert "did you mean display_name?" in result.err


def test_apply_without_terminal_or_auto_approve_is_refused(project):
    result = project.run("apply")
    assert result.code == 1
    assert "not a terminal" in result.err and "--auto-approve" in result.err
    assert project.artifacts() == []


def test_targeted_plan_only_shows_the_target(project):
    project.spec(SENTIMENT_SPEC + """\
  sentiment-b:
    dataset: {train: ../data/train.jsonl}
""")
    changes = plan_json(project, "--target", "sentiment-b")["changes"]
    assert [c["name"] for c in changes] == ["sentiment-b"]
    result = project.run("plan", "--target", "nope")
    assert result.code == 1 and "no such model" in result.err


def test_workspaces_keep_separate_state(project, monkeypatch):
    assert project.run("apply", "--auto-approve", "--workspace", "dev").code == 0
    assert project.state("dev")["workspace"] == "dev"
    assert project.state_bytes("default") is None
    monkeypatch.setenv("TUNER_WORKSPACE", "dev")
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_predict_answers_from_the_current_model(project):
    project.run("apply", "--auto-approve")
    result = project.run("predict", "sentiment", "Terrible, it broke after a day and support ignored me")
    assert result.code == 0
    assert result.out.strip() == "negative"


def test_show_and_state_commands_print_what_is_recorded(project):
    project.run("apply", "--auto-approve")
    tuned_id = project.state()["models"]["sentiment"]["tuned_model_id"]
    assert tuned_id in project.run("state", "list").out
    shown = project.run("state", "show", "sentiment").out
    assert f'tuned_model_id: "{tuned_id}"' in shown and "accuracy" in shown
    assert "serial" in project.run("show").out
    assert json.loads(project.run("show", "--json").out)["models"]["sentiment"]["tuned_model_id"] == tuned_id


def test_markdown_plan_is_a_pull_request_comment(project):
    project.run("apply", "--auto-approve")
    heading = "### tuner plan · workspace `default` · local state `state/default.json`"
    assert project.run("plan", "--markdown").out.splitlines()[1] == f"{heading}: no changes"
    project.spec(SENTIMENT_SPEC.replace("learning_rate: 0.5", "learning_rate: 0.25"))
    comment = project.run("plan", "--format", "markdown").out
    assert comment.splitlines()[1] == f"{heading}: 0 to add, 1 to replace, 0 to change, 0 to destroy."
    assert "| `sentiment` | local | 🟠 replace | $0.00 | `hyperparameters.learning_rate`: `0.5` → `0.25` " \
           "**(forces replacement)** |" in comment
    assert "<details><summary>Full plan</summary>" in comment


GEMINI_PRICED = """\
providers:
  gemini:
    pricing:
      models/tuning-test: {training_per_million_tokens: 10.0}
models:
  priced:
    provider: gemini
    base_model: models/tuning-test
    dataset: {train: ../data/small.jsonl}
    hyperparameters: {epoch_count: 3, batch_size: 4, learning_rate: 0.001}
"""


def _small_dataset(project, examples: int = 200) -> int:
    """200 examples of exactly 100 bytes of text each: 20,000 bytes."""
    rows = [{"text_input": f"review {i:04d} " + "x" * 100, "output": "positive" if i % 2 else "negative"}
            for i in range(examples)]
    for row in rows:
        row["text_input"] = row["text_input"][: 100 - len(row["output"])]
    (project.root / "data" / "small.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return sum(len(r["text_input"]) + len(r["output"]) for r in rows)


def test_plan_shows_training_cost_matching_a_hand_computation(project):
    assert _small_dataset(project) == 20_000
    project.spec(GEMINI_PRICED)
    # tokens = 20,000 bytes / 4 + 4 framing tokens x 200 examples = 5,800; x 3 epochs = 17,400; at $10 per 1M:
    expected = 17_400 * 10.0 / 1_000_000
    # Offline plans (no key, no provider called), as in a pull request's CI.
    plan = json.loads(project.run("plan", "--refresh=false", "--json").out)
    assert plan["cost"]["total_usd"] == pytest.approx(expected)
    assert plan["cost"]["models"]["priced"]["training_tokens"] == 17_400
    text = project.run("plan", "--refresh=false").out
    assert "# training cost: ~$0.17 (17,400 training tokens = 5,800 x 3 epochs at $10.00/1M)" in text
    assert "Estimated training cost: ~$0.17" in text
    assert "| $0.17 |" in project.run("plan", "--no-refresh", "--markdown").out


def test_a_plan_over_budget_fails_before_anything_is_submitted(project):
    _small_dataset(project)
    project.spec(GEMINI_PRICED + "budget: {max_plan_cost_usd: 0.10}\n")
    result = project.run("apply", "--auto-approve", "--refresh=false")
    assert result.code == 1
    assert "the plan would cost ~$0.17 in training, over the budget of $0.10" in result.err
    assert project.state_bytes() is None
    result = project.run("plan", "--refresh=false")
    assert result.code == 1 and "over the budget of $0.10" in result.err


def test_json_is_there_wherever_a_script_wants_it(project):
    validated = json.loads(project.run("validate", "--json").out)
    assert validated["valid"] is True and validated["models"][0]["name"] == "sentiment"
    project.run("apply", "--auto-approve")
    listed = json.loads(project.run("state", "list", "--json").out)
    assert listed["sentiment"]["status"] == "active"
    assert listed["sentiment"]["tuned_model_id"] == project.state()["models"]["sentiment"]["tuned_model_id"]


def test_on_a_terminal_progress_is_a_live_table_of_every_job():
    import io

    from runner.render.progress import LiveProgress

    stream = io.StringIO()
    progress = LiveProgress(stream)
    progress.event("alpha", "submitting", "alpha-v1")
    progress.event("bravo", "creating", "3s")
    progress.event("alpha", "active", "12s")
    progress.close()
    shown = stream.getvalue()
    assert "alpha" in shown and "active" in shown and "bravo" in shown and "creating" in shown
