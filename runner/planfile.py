"""A plan as plain data (dict) and its saved-file format, bound to the state and every input.

`tuner apply FILE` refuses a plan whose state (lineage, serial) or inputs (desired models, hence every
dataset hash and spec value) have changed since it was written. A plan file holds no secret: only what
plan output shows. It arrives in pull requests, so it is untrusted: its shape is checked against
schemas/plan.schema.json, its body is bound by a checksum (which stops accidental edits; anyone can
recompute it), and apply re-checks it against a plan made afresh from the current specs and state.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from runner import __version__
from runner.errors import PlanError
from runner.fsutil import atomic_write
from runner.plan import CREATE, DELETE, NOOP, REPLACE, UPDATE, Action, Change, FieldChange, Plan, SettingsChange
from runner.planned import PlannedModel
from runner.shipped import schema_path

FORMAT = "tuner-plan"
FORMAT_VERSION = 2  # 2: the file records what each change executes (`planned`)
SCHEMA_PATH = schema_path("plan")
REMEDY = "run `tuner plan --out FILE` again and review the new plan"
# (action in the plan file, action of a plan made now without refresh) pairs that a refresh at plan time
# explains: a model gone at its provider is re-created; one edited outside tuner is updated back.
# A retained model found gone is trained anew instead of restored.
EXPLAINED_BY_REFRESH = frozenset({(CREATE, NOOP), (CREATE, UPDATE), (CREATE, REPLACE), (UPDATE, NOOP),
                                  (REPLACE, Action.RESTORE), (CREATE, Action.RESTORE)})


def plan_to_dict(plan: Plan) -> dict:
    return {
        "changes": [_change_to_dict(c) for c in plan.changes],
        "summary": plan.summary(),
        "provider_settings": [_fields_to_dict(s) | {"provider": s.provider, "settings": dict(s.settings)}
                              for s in plan.settings],
        "unmanaged": [{"provider": p, "tuned_model_id": i} for p, i in plan.unmanaged],
        "refreshed": plan.refreshed,
        "not_refreshed": list(plan.not_refreshed),
        "moved": [{"from": old, "to": new} for old, new in plan.moved],
        "cost": {"total_usd": plan.total_cost_usd, "unpriced": plan.unpriced, "pricing_as_of": plan.pricing_as_of,
                 "models": dict(plan.costs)},
    }


def _fields_to_dict(change: Change | SettingsChange) -> dict:
    return {"fields": {f.path: {"old": f.old, "new": f.new, "forces_replacement": f.forces_replacement}
                       for f in change.fields}}


def _fields_from_dict(fields: dict) -> tuple[FieldChange, ...]:
    return tuple(FieldChange(path, f["old"], f["new"], f["forces_replacement"]) for path, f in fields.items())


def _change_to_dict(change: Change) -> dict:
    adopts = {"import_id": change.import_id} if change.import_id else {}
    return adopts | _fields_to_dict(change) | {
        "name": change.name,
        "action": change.action,
        "provider": change.provider,
        "reason": change.reason,
        "resume": change.resume,
        "cleanup": list(change.cleanup),
        "prior_id": change.prior_id,
        "fingerprint": change.fingerprint,
        "metrics": change.metrics,
    } | ({"restore_id": change.restore_id} if change.restore_id else {})


def executed(change: Change) -> dict:
    """What apply of a saved plan executes for one change: its `after` and its job request (None for a delete)."""
    return {"after": change.after, "job": change.planned.to_record() if change.planned else None}


def plan_from_dict(data: dict, lineage: str, serial: int) -> Plan:
    changes = tuple(
        Change(
            name=c["name"], action=Action(c["action"]), provider=c["provider"], fields=_fields_from_dict(c["fields"]),
            reason=c["reason"], resume=c["resume"], cleanup=tuple(c["cleanup"]),
            prior_id=c["prior_id"], fingerprint=c["fingerprint"], metrics=c.get("metrics", {}),
            import_id=c.get("import_id"),
            restore_id=c.get("restore_id"),
        )
        for c in data["changes"]
    )
    unmanaged = tuple((u["provider"], u["tuned_model_id"]) for u in data.get("unmanaged", []))
    settings = tuple(SettingsChange(s["provider"], _fields_from_dict(s["fields"]), s["settings"])
                     for s in data["provider_settings"])
    return Plan(changes, lineage, serial, unmanaged, data.get("refreshed", False), settings=settings,
                not_refreshed=tuple(data.get("not_refreshed", ())),
                moved=tuple((m["from"], m["to"]) for m in data.get("moved", ())))


def inputs_digest(models: list[PlannedModel]) -> str:
    """Covers every desired attribute of every model, datasets by canonical hash."""
    described = [{"name": m.name, "attributes": m.attributes, "fingerprint": m.fingerprint} for m in models]
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def write_plan(path: Path, plan: Plan, workspace: str, config_dir: str, models: list[PlannedModel],
               targets: list[str], forced: list[str] = (), destroy: bool = False) -> None:
    """config_dir: relative to the project root, so that `tuner apply FILE` reads the same specs."""
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "workspace": workspace,
        "config_dir": config_dir,
        "state": {"lineage": plan.lineage, "serial": plan.serial},
        "inputs_digest": inputs_digest(models),
        "targets": sorted(targets),
        "replace": sorted(forced),  # apply re-plans with the same --replace list to check the file against
        "destroy": destroy,  # made by `plan --destroy`: apply checks it against a destroy plan made now
        "plan": plan_to_dict(plan),
        "planned": {c.name: executed(c) for c in plan.changes if c.is_change},
    }
    document = json.loads(json.dumps(document))  # the checksum covers exactly what a reader will load
    document["checksum"] = body_checksum(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())


def body_checksum(document: dict) -> str:
    """sha256 of the canonical JSON of everything but the checksum itself."""
    body = {key: value for key, value in document.items() if key != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


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
    _check_shape(document, path)
    if document["checksum"] != body_checksum(document):
        raise PlanError(f"{path}: the plan file was modified after it was written (its checksum does not match "
                        f"its content)", remedy=REMEDY)
    return document


def _check_shape(document: dict, path: Path) -> None:
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(document))
    if error is not None:
        where = ".".join(map(str, error.absolute_path)) or "(top level)"
        raise PlanError(f"{path}: corrupt plan file: {where}: {error.message}", remedy=REMEDY)


@lru_cache(maxsize=1)
def _validator():
    import jsonschema  # lazily: only apply of a saved plan needs it

    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def check_fresh(document: dict, path: Path, workspace: str, config_dir: str, lineage: str, serial: int,
                models: list[PlannedModel]) -> None:
    """Refuse a stale plan, saying what changed since it was made."""
    if document["workspace"] != workspace:
        raise PlanError(f"{path}: plan was made for workspace {document['workspace']!r}, not {workspace!r}",
                        remedy=REMEDY)
    if document["config_dir"] != config_dir:
        raise PlanError(f"{path}: plan was made with --config {document['config_dir']}, not {config_dir}",
                        remedy=f"apply it without --config (it records its own), or {REMEDY}")
    bound = document["state"]
    if bound["lineage"] and bound["lineage"] != lineage:
        raise PlanError(f"{path}: stale plan: it was made against a different state (lineage {bound['lineage']}, "
                        f"now {lineage})", remedy=REMEDY)
    if bound["serial"] != serial:
        raise PlanError(f"{path}: stale plan: the state changed since it was made (serial {bound['serial']}, "
                        f"now {serial})", remedy=REMEDY)
    if document["inputs_digest"] != inputs_digest(models):
        raise PlanError(f"{path}: stale plan: configs or datasets changed since it was made", remedy=REMEDY)


def conforming(document: dict, saved: Plan, fresh: Plan, protected: frozenset[str], path: Path, root: Path) -> Plan:
    """The saved plan, each change carrying the `after` and job request the file recorded, once it is shown to
    do only what a plan made now from the same specs and state would do (`fresh`, made without refresh, has
    already enforced every plan rule: prevent_destroy, targets, budget), or what a refresh explains (Terraform's
    "inconsistent final plan" check); a model under prevent_destroy is never deleted or re-created over,
    whatever the file says. The file is untrusted: what it records is compared before anything is built of it."""
    recorded = document["planned"]
    problems = []
    for change in (c for c in saved.changes if c.is_change):
        expected = fresh.change(change.name)
        action = expected.action if expected else None
        if change.name in protected and _destroys(change, expected):
            problems.append(f"{change.name}: the plan file would destroy it, but lifecycle.prevent_destroy is set")
        elif expected is not None and change.provider != expected.provider:
            problems.append(f"{change.name}: the plan file says provider {change.provider}, the configs and state "
                            f"say {expected.provider}")
        elif change.action != action and (change.action, action) not in EXPLAINED_BY_REFRESH:
            problems.append(f"{change.name}: the plan file says {change.action}, the configs and state say "
                            f"{action or 'nothing'}")
        elif expected is not None and change.import_id != expected.import_id:
            problems.append(f"{change.name}: the plan file imports {change.import_id}, the configs say "
                            f"{expected.import_id or 'no import'}")
        elif expected is not None and (change.fingerprint != expected.fingerprint
                                       or recorded.get(change.name) != executed(expected)):
            problems.append(f"{change.name}: the plan file's planned model is not the one the configs plan")
    if saved.settings != fresh.settings:
        problems.append("provider settings: the plan file's changes are not those of the specs and state")
    if saved.moved != fresh.moved:
        problems.append("moved: the plan file's moves are not those of the specs and state")
    if problems:
        raise PlanError(f"{path}: refusing a plan file that does not follow from the configs and state:\n  "
                        + "\n  ".join(problems), remedy=REMEDY)
    return replace(saved, changes=tuple(_bound(c, recorded[c.name], root) if c.is_change else c
                                        for c in saved.changes))


def _bound(change: Change, recorded: dict, root: Path) -> Change:
    job = recorded["job"]
    return replace(change, after=recorded["after"], planned=PlannedModel.from_record(job, root) if job else None)


def _destroys(change: Change, expected: Change | None) -> bool:
    """Deletes the recorded model, replaces it, or re-creates over it (which supersedes it)."""
    return change.action in (DELETE, REPLACE) or (change.action == CREATE and expected is not None
                                                  and expected.prior_id is not None)
