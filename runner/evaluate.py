"""Evaluation of a tuned model on an eval set: exact match, per-label precision/recall/F1, consistency.

Pure arithmetic over (expected, answered) pairs; the provider's predict is passed in, so the same code
scores the local trainer, the Gemini API and Vertex AI.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from runner.datasets import open_examples

MAX_LABELS = 50  # outputs drawn from at most this many distinct values are treated as labels


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: tuple[str, ...] = ()


def evaluate(examples: Iterable[tuple[str, str]], predict: Callable[[str], str], eval_sha256: str,
             consistency: bool = True) -> dict:
    """Run every input through `predict` (twice when measuring consistency) and score the answers."""
    pairs = []
    repeats_equal = 0
    for text, expected in examples:
        answer = predict(text).strip()
        pairs.append((expected.strip(), answer))
        if consistency:
            repeats_equal += predict(text).strip() == answer
    metrics = score(pairs)
    metrics["eval_set"] = {"sha256": eval_sha256, "examples": len(pairs)}
    if consistency and pairs:
        metrics["consistency"] = round(repeats_equal / len(pairs), 4)
    return metrics


def evaluate_model(model, predict: Callable[[str], str]) -> dict:
    """Score one tuned model of `model` (a PlannedModel with an eval set) through `predict`."""
    examples = [(e.input, e.output) for e in open_examples(model.eval_set)]
    return evaluate(examples, predict, model.eval_set.sha256, consistency=model.eval_consistency)


def score(pairs: list[tuple[str, str]]) -> dict:
    """Exact-match accuracy; per-label precision/recall/F1 when the expected outputs are a label set."""
    if not pairs:
        return {"accuracy": None}
    correct = sum(expected == answer for expected, answer in pairs)
    metrics: dict = {"accuracy": round(correct / len(pairs), 4)}
    labels = sorted({expected for expected, _ in pairs})
    if len(labels) <= MAX_LABELS and len(labels) <= len(pairs) / 2:
        metrics["per_label"] = {label: _label_scores(pairs, label) for label in labels}
    return metrics


def _label_scores(pairs: list[tuple[str, str]], label: str) -> dict:
    counts = Counter((expected == label, answer == label) for expected, answer in pairs)
    true_positive, false_positive, false_negative = counts[True, True], counts[False, True], counts[True, False]
    precision = true_positive / (true_positive + false_positive) if true_positive + false_positive else 0.0
    recall = true_positive / (true_positive + false_negative) if true_positive + false_negative else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "support": true_positive + false_negative}


def check_gate(gate: dict, metrics: dict, previous: dict | None) -> GateResult:
    """min_accuracy: the new model's accuracy must reach it; no_regression: it must not be worse than the
    model it would replace, compared on the same eval set."""
    reasons = []
    accuracy = metrics.get("accuracy")
    if gate.get("min_accuracy") is not None and (accuracy is None or accuracy < gate["min_accuracy"]):
        reasons.append(f"accuracy {accuracy} is below min_accuracy {gate['min_accuracy']}")
    if gate.get("no_regression") and previous and previous.get("accuracy") is not None and accuracy is not None:
        same_set = previous.get("eval_set", {}).get("sha256") == metrics.get("eval_set", {}).get("sha256")
        if same_set and accuracy < previous["accuracy"]:
            reasons.append(f"accuracy {accuracy} is worse than the current model's {previous['accuracy']} "
                           f"(no_regression)")
    return GateResult(not reasons, tuple(reasons))
