"""Does tuning pay? Metrics after apply, quality gates, eval on demand, outputs, break-even."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ElementTree

from tests.conftest import SENTIMENT_SPEC

GOOD = SENTIMENT_SPEC.replace("{epoch_count: 4, batch_size: 8, learning_rate: 0.5}",
                              "{epoch_count: 20, batch_size: 16, learning_rate: 1.0}")
GATED = GOOD + "    gate: {min_accuracy: 0.6, no_regression: true}\n"


def _scrambled_copy(project, name: str = "scrambled.jsonl") -> None:
    """The same inputs with labels shuffled: a model trained on it can only be worse."""
    rows = [json.loads(line) for line in (project.root / "data" / "train.jsonl").read_text().splitlines()]
    labels = [r["output"] for r in rows]
    random.Random(3).shuffle(labels)
    (project.root / "data" / name).write_text(
        "".join(json.dumps({"text_input": r["text_input"], "output": label}) + "\n" for r, label in zip(rows, labels)))


def test_apply_records_accuracy_per_label_scores_and_consistency(project):
    project.spec(GOOD)
    assert project.run("apply", "--auto-approve").code == 0
    metrics = project.state()["models"]["sentiment"]["metrics"]
    assert 0.6 <= metrics["accuracy"] <= 1.0
    assert set(metrics["per_label"]) == {"positive", "negative", "neutral"}
    assert set(metrics["per_label"]["negative"]) == {"precision", "recall", "f1", "support"}
    assert sum(s["support"] for s in metrics["per_label"].values()) == 66
    assert metrics["consistency"] == 1.0  # a deterministic model answers the same twice
    assert metrics["eval_set"]["examples"] == 66
    assert metrics["eval_set"]["sha256"] == project.state()["models"]["sentiment"]["dataset"]["validation"]["sha256"]


def test_plan_shows_the_current_models_metrics_beside_its_change(project):
    project.run("apply", "--auto-approve")
    project.spec(SENTIMENT_SPEC.replace("learning_rate: 0.5", "learning_rate: 0.25"))
    assert "# current model: accuracy " in project.run("plan").out
    assert json.loads(project.run("plan", "--json").out)["changes"][0]["metrics"]["accuracy"] > 0


def test_a_worse_model_is_rejected_by_the_gate_and_the_old_one_stays_current(project):
    project.spec(GATED)
    assert project.run("apply", "--auto-approve").code == 0
    good = project.state()["models"]["sentiment"]
    _scrambled_copy(project)
    project.spec(GATED.replace("../data/train.jsonl", "../data/scrambled.jsonl"))
    result = project.run("apply", "--auto-approve")
    assert result.code == 1
    assert "not made current: rejected by the quality gate: accuracy" in result.err
    record = project.state()["models"]["sentiment"]
    assert record["tuned_model_id"] == good["tuned_model_id"]  # the old model stays current
    assert record["pending"]["status"] == "rejected"
    assert record["pending"]["metrics"]["accuracy"] < good["metrics"]["accuracy"]
    assert sorted(project.artifacts()) == sorted([good["tuned_model_id"], record["pending"]["tuned_model_id"]])
    assert project.run("predict", "sentiment", "I love it, works great").out.strip() == "positive"
    plan = project.run("plan").out
    assert "rejected by the quality gate" in plan and "without a new job" in plan


def test_min_accuracy_alone_keeps_a_first_model_from_becoming_current(project):
    project.spec(SENTIMENT_SPEC + "    gate: {min_accuracy: 0.99}\n")
    result = project.run("apply", "--auto-approve")
    assert result.code == 1 and "below min_accuracy 0.99" in result.err
    record = project.state()["models"]["sentiment"]
    assert "tuned_model_id" not in record and record["pending"]["status"] == "rejected"
    assert "current" not in project.run("output").out


def test_eval_on_demand_compares_with_the_previous_model(project):
    project.run("apply", "--auto-approve")
    project.spec(SENTIMENT_SPEC.replace("epoch_count: 4", "epoch_count: 1"))
    project.run("apply", "--auto-approve")
    result = project.run("eval", "sentiment", "--against", "previous")
    assert result.code == 0, result.output
    header, *rows = result.out.splitlines()
    assert header.split()[:3] == ["metric", "current", "against"]
    assert rows[0].split()[0] == "accuracy" and len(rows[0].split()) == 3
    assert any(row.startswith("f1[negative]") for row in rows)
    as_json = json.loads(project.run("eval", "sentiment", "--json").out)
    assert as_json["current"]["accuracy"] == project.state()["models"]["sentiment"]["metrics"]["accuracy"]


def test_outputs_are_printed_and_written_for_other_tools(project):
    project.run("apply", "--auto-approve")
    tuned_id = project.state()["models"]["sentiment"]["tuned_model_id"]
    assert project.run("output").out == f"sentiment = {tuned_id}\n"
    assert project.run("output", "sentiment").out.strip() == tuned_id
    assert json.loads(project.run("output", "--json").out)["sentiment"]["tuned_model_id"] == tuned_id
    written = json.loads((project.root / "state" / "default.outputs.json").read_text())
    assert written["models"]["sentiment"]["tuned_model_id"] == tuned_id
    assert written["serial"] == project.state()["serial"]


def test_break_even_matches_the_worked_example(project, tmp_path):
    chart = tmp_path / "cost.svg"
    result = project.run("cost", "sentiment", "--training-usd", "20", "--calls-per-month", "10000",
                         "--prompt-price-per-1k-calls", "0.05", "--tuned-price-per-1k-calls", "0.02",
                         "--plot", str(chart))
    assert result.code == 0, result.output
    assert "saving $0.30 a month: pays back in month 67 (66.7 months)" in result.out
    assert ElementTree.parse(chart).getroot().tag.endswith("svg")


def test_break_even_uses_the_plans_training_estimate_by_default(project):
    result = project.run("cost", "sentiment", "--calls-per-month", "1000", "--prompt-tokens-saved", "500",
                         "--input-price-per-million", "0.3")
    assert result.code == 0, result.output
    assert result.out.startswith("training $0.00")  # the local provider trains for free
