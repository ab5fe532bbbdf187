"""An evaluation as a table: the current model's metrics beside another model's, one metric per row."""

from __future__ import annotations

from runner.render.terminal import table_text


def metrics_table(current: dict, previous: dict | None, previous_id: str = "", colour: bool = False) -> str:
    other = previous or {}
    rows = [("accuracy", current.get("accuracy"), other.get("accuracy")),
            ("consistency", current.get("consistency"), other.get("consistency"))]
    labels = sorted(set(current.get("per_label", {})) | set(other.get("per_label", {})))
    rows += [(f"f1[{label}]", current.get("per_label", {}).get(label, {}).get("f1"),
              other.get("per_label", {}).get(label, {}).get("f1")) for label in labels]
    rows.append(("eval examples", current.get("eval_set", {}).get("examples"),
                 other.get("eval_set", {}).get("examples")))
    if previous is None:
        return table_text(("metric", "current"), [(name, _number(value)) for name, value, _ in rows], colour)
    return table_text(("metric", "current", f"against {previous_id}"),
                      [(name, _number(value), _number(against)) for name, value, against in rows], colour)


def _number(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
