"""A plan as plain data (dict) and its saved-file format, bound to the state and every input.

`tuner apply FILE` refuses a plan whose state (lineage, serial) or inputs (desired models, hence every
dataset hash and spec value) have changed since it was written. A plan file holds no secret: only what
plan output shows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from runner import __version__
from runner.desired import DesiredModel
from runner.errors import PlanError
from runner.fsutil import atomic_write
from runner.plan import Change, FieldChange, Plan

FORMAT = "tuner-plan"
FORMAT_VERSION = 1


def plan_to_dict(plan: Plan) -> dict:
    return {
        "changes": [_change_to_dict(c) for c in plan.changes],
        "summary": plan.summary(),
        "unmanaged": [{"provider": p, "tuned_model_id": i} for p, i in plan.unmanaged],
        "refreshed": plan.refreshed,
        "cost": {"total_usd": plan.total_cost_usd, "unpriced": plan.unpriced, "pricing_as_of": plan.pricing_as_of,
                 "models": dict(plan.costs)},
    }


def _change_to_dict(change: Change) -> dict:
    return {
        "name": change.name,
        "action": change.action,
        "provider": change.provider,
        "fields": {f.path: {"old": f.old, "new": f.new, "forces_replacement": f.forces_replacement}
                   for f in change.fields},
        "reason": change.reason,
        "resume": change.resume,
        "cleanup": list(change.cleanup),
        "prior_id": change.prior_id,
        "fingerprint": change.fingerprint,
        "metrics": change.metrics,
    }


def plan_from_dict(data: dict, lineage: str, serial: int) -> Plan:
    changes = tuple(
        Change(
            name=c["name"], action=c["action"], provider=c["provider"],
            fields=tuple(FieldChange(path, f["old"], f["new"], f["forces_replacement"])
                         for path, f in c["fields"].items()),
            reason=c["reason"], resume=c["resume"], cleanup=tuple(c["cleanup"]),
            prior_id=c["prior_id"], fingerprint=c["fingerprint"], metrics=c.get("metrics", {}),
        )
        for c in data["changes"]
    )
    unmanaged = tuple((u["provider"], u["tuned_model_id"]) for u in data.get("unmanaged", []))
    return Plan(changes, lineage, serial, unmanaged, data.get("refreshed", False))


def inputs_digest(models: list[DesiredModel]) -> str:
    """Covers every desired attribute of every model, datasets by canonical hash."""
    described = [{"name": m.name, "attributes": m.attributes(), "fingerprint": m.fingerprint} for m in models]
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def write_plan(path: Path, plan: Plan, workspace: str, models: list[DesiredModel], targets: list[str]) -> None:
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "workspace": workspace,
        "state": {"lineage": plan.lineage, "serial": plan.serial},
        "inputs_digest": inputs_digest(models),
        "targets": sorted(targets),
        "plan": plan_to_dict(plan),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())


def read_plan(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"{path}: plan file not found") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: not a tuner plan file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PlanError(f"{path}: not a tuner plan file")
    if document.get("format_version") != FORMAT_VERSION:
        raise PlanError(f"{path}: plan format {document.get('format_version')} is not supported by tuner {__version__}")
    return document


def check_fresh(document: dict, path: Path, workspace: str, lineage: str, serial: int,
                models: list[DesiredModel]) -> None:
    """Refuse a stale plan, saying what changed since it was made."""
    remedy = "run `tuner plan --out FILE` again and review the new plan"
    if document["workspace"] != workspace:
        raise PlanError(f"{path}: plan was made for workspace {document['workspace']!r}, not {workspace!r}",
                        remedy=remedy)
    bound = document["state"]
    if bound["lineage"] and bound["lineage"] != lineage:
        raise PlanError(f"{path}: stale plan: it was made against a different state (lineage {bound['lineage']}, "
                        f"now {lineage})", remedy=remedy)
    if bound["serial"] != serial:
        raise PlanError(f"{path}: stale plan: the state changed since it was made (serial {bound['serial']}, "
                        f"now {serial})", remedy=remedy)
    if document["inputs_digest"] != inputs_digest(models):
        raise PlanError(f"{path}: stale plan: configs or datasets changed since it was made", remedy=remedy)
