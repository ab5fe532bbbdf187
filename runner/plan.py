"""plan(planned, state, observed) -> Plan. Pure: no I/O, no clock, deterministic.

Same inputs give the same plan, byte for byte once serialised; that is what makes saved plans and
tests trustworthy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from runner.attributes import attributes_fingerprint
from runner.errors import PlanError
from runner.planned import PlannedModel
from runner.providers.base import ObservedModel
from runner.state.model import ACTIVE, FAILED, REJECTED, Instance, ModelRecord, State


class Action(StrEnum):
    """What a change does to one model (Terraform's plans.Action); its value is the word plan files record."""

    CREATE = "create"
    REPLACE = "replace"
    UPDATE = "update"
    DELETE = "delete"
    NOOP = "noop"
    IMPORT = "import"  # an `import:` block adopts an existing tuned model: no job
    RESTORE = "restore"  # a retained model becomes current again: no job, $0

    @property
    def symbol(self) -> str:
        """How plan output marks it: + -/+ ~ - <= (and a blank for no change)."""
        return _SYMBOLS[self]


FORCED_REASON = "--replace"
# A promoted model's in-place attributes are set by the workspace that created it (and serves it too): a plan in the
# workspace it was promoted to never changes them, or two workspaces would rename one model back and forth.
CREATOR_SET = ("display_name", "description")
_SYMBOLS = {Action.CREATE: "+", Action.REPLACE: "-/+", Action.UPDATE: "~", Action.DELETE: "-", Action.NOOP: " ",
            Action.IMPORT: "<-", Action.RESTORE: "<="}
CREATE, REPLACE, UPDATE, DELETE, NOOP = (Action.CREATE, Action.REPLACE, Action.UPDATE, Action.DELETE, Action.NOOP)
IMPORT, RESTORE = Action.IMPORT, Action.RESTORE


@dataclass(frozen=True)
class FieldChange:
    path: str  # dotted attribute path, e.g. hyperparameters.learning_rate
    old: object
    new: object
    forces_replacement: bool


@dataclass(frozen=True)
class Change:
    name: str
    action: Action
    provider: str
    fields: tuple[FieldChange, ...] = ()
    reason: str = ""  # why, when the fields alone do not say (a failed job, drift, a resumed job)
    resume: bool = False  # a job for this exact fingerprint was already submitted: wait for it, pay nothing
    cleanup: tuple[str, ...] = ()  # tuned model ids of superseded, abandoned or expired retained instances to delete
    prior_id: str | None = None  # the current tuned model id, if any
    fingerprint: str | None = None  # the desired fingerprint (None for delete)
    metrics: dict = field(default_factory=dict)  # the current model's last recorded evaluation
    before: dict | None = None  # the recorded attributes (as refresh saw them), None when nothing is recorded
    after: dict | None = None  # the planned attributes: what apply makes true and state records; None: delete
    planned: PlannedModel | None = field(default=None, compare=False)  # the job request apply executes
    import_id: str | None = None  # IMPORT: the tuned model id the `import:` block adopts
    restore_id: str | None = None  # RESTORE: the retained tuned model id that becomes current

    @property
    def is_change(self) -> bool:
        return self.action != NOOP or bool(self.cleanup)


@dataclass(frozen=True)
class SettingsChange:
    """A provider's settings (endpoint, key variable, project...) differ from those state recorded: credentials
    would go where the new ones point, so the change is shown for review and recorded only by apply."""

    provider: str
    fields: tuple[FieldChange, ...]
    settings: Mapping[str, object]  # the new settings, as apply records them


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    lineage: str
    serial: int
    unmanaged: tuple[tuple[str, str], ...] = ()  # (provider, tuned model id) seen at a provider, not in state
    refreshed: bool = False
    costs: Mapping[str, dict] = field(default_factory=dict)  # name -> estimated training cost of new jobs
    pricing_as_of: str = ""
    settings: tuple[SettingsChange, ...] = ()
    not_refreshed: tuple[str, ...] = ()  # providers refresh skipped (their settings changed)
    moved: tuple[tuple[str, str], ...] = ()  # (old, new) names the specs' `moved:` entries rename in state
    # tuned model id -> the other workspaces of the backend still referencing it: apply keeps it (runner.references)
    kept: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def total_cost_usd(self) -> float:
        return round(sum(c["usd"] for c in self.costs.values() if c["usd"] is not None), 4)

    @property
    def unpriced(self) -> list[str]:
        return sorted(name for name, c in self.costs.items() if c["usd"] is None)

    @property
    def has_changes(self) -> bool:
        return bool(self.settings) or bool(self.moved) or any(c.is_change for c in self.changes)

    def summary(self) -> dict[str, int]:
        counts = {CREATE: 0, REPLACE: 0, UPDATE: 0, DELETE: 0, RESTORE: 0}
        for change in self.changes:
            if change.action in counts:
                counts[change.action] += 1
        return counts

    def change(self, name: str) -> Change | None:
        return next((c for c in self.changes if c.name == name), None)


@dataclass(frozen=True)
class Observation:
    """What each refreshed provider holds; providers absent from `models` were not refreshed."""

    models: Mapping[str, tuple[ObservedModel, ...]] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()  # providers not asked: their settings changed and are not yet applied
    # (provider, tuned model id) -> the first model so reported: a plan looks up every recorded model, so a scan
    # of the list per lookup would make a fleet of 10,000 cost 10^8 comparisons.
    _index: dict[tuple[str, str], ObservedModel] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], ObservedModel] = {}
        for provider, models in self.models.items():
            for model in models:
                index.setdefault((provider, model.tuned_model_id), model)
        object.__setattr__(self, "_index", index)

    def asked(self, provider: str) -> bool:
        """Whether PROVIDER was refreshed: only then does a model it lacks mean the model is gone."""
        return provider in self.models

    def find(self, provider: str, tuned_model_id: str) -> ObservedModel | None:
        """The model as PROVIDER reported it; None when it lacks it or was not asked (see `asked`)."""
        return self._index.get((provider, tuned_model_id))


def plan(
    desired: Iterable[PlannedModel],
    state: State,
    observed: Observation | None = None,
    targets: Iterable[str] | None = None,
    settings: Mapping[str, Mapping] | None = None,
    forced: Iterable[str] = (),
) -> Plan:
    """Compare desired models with recorded (and optionally observed) state, model by model, and each
    provider's settings (`settings`: provider -> recorded_settings()) with those state recorded. Models named in
    `forced` (--replace) get a new job even when nothing changed."""
    wanted = {m.name: m for m in desired}
    targets, forced = set(targets or ()), set(forced)
    observed = observed or Observation()
    changes, refused = [], []
    for name in sorted(set(wanted) | set(state.models)):
        if targets and name not in targets:
            continue
        record = state.models.get(name) or ModelRecord()
        model = wanted.get(name)
        if model is None:
            change = _delete(name, record)
            if record.current and record.current.prevent_destroy:
                refused.append(f"{name}: lifecycle.prevent_destroy is set, but the model is no longer in the "
                               f"configs, so the plan would delete {record.current.tuned_model_id}")
        else:
            change = _change(model, record, observed, name in forced)
            destroys = change.action == REPLACE or (change.action == RESTORE and not model.keep_previous)
            if destroys and model.prevent_destroy and record.current:
                refused.append(f"{name}: lifecycle.prevent_destroy is set, but "
                               f"{', '.join(f.path for f in change.fields if f.forces_replacement) or 'its state'} "
                               f"would replace (destroy) {record.current.tuned_model_id}")
        if change is not None:
            changes.append(change)
    if refused:
        raise PlanError("the plan would destroy protected models:\n  " + "\n  ".join(refused),
                        remedy="restore the config, or set lifecycle.prevent_destroy: false first "
                               "(and apply that) if the destruction is intended")
    return Plan(tuple(changes), state.lineage, state.serial, unmanaged(state, observed), bool(observed.models),
                settings=settings_changes(state.providers, settings or {}), not_refreshed=observed.skipped)


def settings_changes(recorded: Mapping[str, Mapping], current: Mapping[str, Mapping]) -> tuple[SettingsChange, ...]:
    """One change per provider in use whose settings are not those recorded (never recorded counts too)."""
    changes = []
    for provider, new in sorted(current.items()):
        old = recorded.get(provider) or {}
        if old != new:
            fields = tuple(FieldChange(key, old.get(key), new.get(key), False)
                           for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key))
            changes.append(SettingsChange(provider, fields, dict(new)))
    return tuple(changes)


def _delete(name: str, record: ModelRecord) -> Change | None:
    instances = instances_of(record)
    if not instances:
        return None
    current = record.current
    fields, before = (), None
    if current:
        before = current.attributes()
        fields = tuple(FieldChange(path, old, None, True) for path, old in _flatten(before))
    return Change(name, DELETE, instances[0].provider, fields,
                  cleanup=tuple(i.tuned_model_id for i in instances if i is not current and not i.refused),
                  prior_id=current.tuned_model_id if current else None, before=before)


def _change(model: PlannedModel, record: ModelRecord, observed: Observation, forced: bool = False) -> Change:
    fingerprint = model.fingerprint
    cleanup = [d.tuned_model_id for d in record.deposed if not d.refused]
    pending = record.pending
    resume, reason = False, ""
    model = _with_generation(model, record, forced)
    if pending is not None:
        if pending.fingerprint != fingerprint:
            if not pending.refused:  # a refused submission created nothing to delete
                cleanup.append(pending.tuned_model_id)
        elif pending.status == FAILED:
            reason = f"retry: the previous job failed: {pending.error or 'no message'}"
        elif pending.status == REJECTED:
            resume, reason = True, (f"{pending.tuned_model_id} was rejected by the quality gate ({pending.error}); "
                                    f"apply scores it again without a new job")
        else:
            resume, reason = True, f"job already submitted ({pending.handle or pending.tuned_model_id}): wait for it"
    current = record.current
    after = model.attributes
    common = dict(name=model.name, provider=model.provider, cleanup=tuple(cleanup), fingerprint=fingerprint,
                  after=after, planned=model)
    if current is None:
        fields = tuple(FieldChange(path, None, new, True) for path, new in _flatten(after))
        return Change(action=CREATE, fields=fields, reason=reason, resume=resume, **common)
    common["prior_id"], common["metrics"] = current.tuned_model_id, current.metrics
    seen = observed.find(current.provider, current.tuned_model_id)
    if seen is None and observed.asked(current.provider):
        fields = tuple(FieldChange(path, None, new, True) for path, new in _flatten(after))
        return Change(action=CREATE, fields=fields, resume=resume,
                      reason=reason or f"{current.tuned_model_id} no longer exists at {current.provider}: "
                                       f"deleted outside tuner", **common)
    recorded = current.attributes()
    if seen is not None:  # drift: the provider's view of in-place fields wins over what state recorded
        recorded |= {field: seen.held(field, recorded[field]) for field in ("display_name", "description")}
    common["before"] = recorded
    ignored = (*model.ignore_changes, *(CREATOR_SET if current.promoted_from else ()))
    if ignored and not (forced or resume) and current.status != FAILED:
        after, fingerprint = _kept(model, ignored, current, recorded)
        common.update(after=after, fingerprint=fingerprint)
    fields = () if recorded == after else diff(recorded, after, model.requires_replace)
    if current.status == FAILED:
        return Change(action=REPLACE, fields=fields, resume=resume,
                      reason=reason or f"the recorded model failed: {current.error or 'no message'}", **common)
    if current.fingerprint != fingerprint or any(f.forces_replacement for f in fields):
        restoring = not resume and current.fingerprint != fingerprint  # a job for it is under way: wait for it
        retained, gone = _restorable(record, fingerprint, observed) if restoring else (None, None)
        if retained is not None:
            common["cleanup"] += _expired(record, model.keep_previous, current, retained)
            return Change(action=RESTORE, fields=fields, restore_id=retained.tuned_model_id,
                          reason=_recorded_score(retained), **common)
        if gone is not None:
            reason = reason or f"retained {gone.tuned_model_id} no longer exists at {gone.provider}: training anew"
            common["cleanup"] += (gone.tuned_model_id,)
        common["cleanup"] += _expired(record, model.keep_previous, current, gone)
        return Change(action=REPLACE, fields=fields, reason=reason, resume=resume, **common)
    if forced or resume:  # forced, or the forced replacement already submitted (a re-run after a crash)
        common["cleanup"] += _expired(record, model.keep_previous, current)
        return Change(action=REPLACE, fields=fields, reason=reason or FORCED_REASON, resume=resume, **common)
    common["cleanup"] += _expired(record, model.keep_previous)
    if fields:
        return Change(action=UPDATE, fields=fields, **common)
    return Change(action=NOOP, **common)


def _with_generation(model: PlannedModel, record: ModelRecord, forced: bool) -> PlannedModel:
    """The model with its replacement generation: that of a forced replacement already in flight (resumed, never
    started again), else a new one when forced (--replace), else none."""
    pending = record.pending
    if pending is not None and pending.fingerprint == model.fingerprint and pending.generation:
        return replace(model, generation=pending.generation)
    if forced:
        return replace(model, generation=_next_generation(record, model.fingerprint))
    return model


def _kept(model: PlannedModel, ignored: tuple[str, ...], current: Instance, recorded: dict) -> tuple[dict, str]:
    """(after, fingerprint) with the IGNORED paths (lifecycle.ignore_changes, CREATOR_SET): the recorded values at
    them when that keeps the current model (only ignored paths would need a new one); else the spec's, for the new
    model."""
    kept = _ignoring(ignored, recorded, model.attributes)
    if attributes_fingerprint(kept) == current.fingerprint:
        return kept, current.fingerprint
    return model.attributes, model.fingerprint


def _ignoring(paths: Iterable[str], recorded: dict, after: dict) -> dict:
    """lifecycle.ignore_changes: AFTER with the recorded value at each ignored dotted path, so it never differs."""
    kept = copy.deepcopy(after)
    for path in paths:
        *parents, leaf = path.split(".")
        old, new = recorded, kept
        for key in parents:
            old, new = (old or {}).get(key), new.setdefault(key, {})
        if isinstance(old, dict) and leaf in old:
            new[leaf] = copy.deepcopy(old[leaf])
        else:
            new.pop(leaf, None)
    return kept


def _next_generation(record: ModelRecord, fingerprint: str) -> int:
    """One past every instance of this fingerprint the record holds (0 when none): a forced replacement's id is new."""
    return 1 + max((i.generation or 0 for i in instances_of(record) if i.fingerprint == fingerprint), default=-1)


def _restorable(record: ModelRecord, fingerprint: str, observed: Observation) -> tuple[Instance | None,
                                                                                       Instance | None]:
    """(the newest retained model with the desired fingerprint, or None; the one refresh found gone, or None).
    A model is immutable: one tuned from the same fingerprint is the model a new job would train."""
    match = next((r for r in reversed(record.retained) if r.fingerprint == fingerprint), None)
    if match is not None and observed.asked(match.provider) and observed.find(match.provider,
                                                                              match.tuned_model_id) is None:
        return None, match
    return match, None


def _recorded_score(instance: Instance) -> str:
    """How a retained model scored when it was current: what a rollback is judged by."""
    accuracy = instance.metrics.get("accuracy")
    return "" if accuracy is None else f"the restored model's recorded accuracy: {accuracy:.2%}"


def _expired(record: ModelRecord, keep: int, superseded: Instance | None = None,
             leaving: Instance | None = None) -> tuple[str, ...]:
    """Retained ids beyond the `keep` most recent once this change is applied: `superseded` (the current model,
    when it is replaced or a retained one restored) joins the retained ones and `leaving` leaves them."""
    kept = [r for r in record.retained if r is not leaving]
    after = kept + ([superseded] if superseded is not None and superseded.status == ACTIVE else [])
    expired = after[:len(after) - keep] if keep else after
    return tuple(r.tuned_model_id for r in expired if r is not superseded)


def diff(old: dict, new: dict, requires_replace: frozenset[str]) -> tuple[FieldChange, ...]:
    """Field-level differences (deepdiff), each marked with whether it forces replacement: whether its
    top-level attribute is one the provider's plan says requires a new model."""
    from deepdiff import DeepDiff  # lazy: most plans of an unchanged project never get here

    result = []
    tree = DeepDiff(old, new, view="tree", ignore_order=False, verbose_level=2)
    for report in ("values_changed", "type_changes", "dictionary_item_added", "dictionary_item_removed"):
        for item in tree.get(report, []):
            path = item.path(output_format="list")
            old_value = None if report == "dictionary_item_added" else item.t1
            new_value = None if report == "dictionary_item_removed" else item.t2
            for sub_path, o, n in _expand_dicts(path, old_value, new_value):
                dotted = ".".join(map(str, sub_path))
                result.append(FieldChange(dotted, o, n, sub_path[0] in requires_replace))
    return tuple(sorted(result, key=lambda f: f.path))


def _expand_dicts(path: list, old, new):
    """A whole sub-dict added or removed is reported leaf by leaf."""
    if isinstance(old, dict) or isinstance(new, dict):
        old, new = old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {}
        for key in sorted(set(old) | set(new)):
            yield from _expand_dicts(path + [key], old.get(key), new.get(key))
    else:
        yield path, old, new


def _flatten(attributes: dict, prefix: str = ""):
    for key, value in sorted(attributes.items()):
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def unmanaged(state: State, observed: Observation) -> tuple[tuple[str, str], ...]:
    """(provider, tuned model id) of models a provider holds that no state record knows, leaving out those that
    carry another state's identity (another workspace's models are not this state's to import)."""
    known = {i.tuned_model_id for rec in state.models.values() for i in instances_of(rec)}
    return tuple(sorted((provider, m.tuned_model_id) for provider, models in observed.models.items()
                        for m in models if m.tuned_model_id not in known and not state.is_foreign(m.owner)))


def instances_of(record: ModelRecord) -> list[Instance]:
    return [i for i in (record.current, record.pending, *record.deposed, *record.retained) if i is not None]


def managed_by(state: State, provider: str, tuned_model_id: str, besides: str | None = None) -> str | None:
    """The name (other than BESIDES) whose current, pending or superseded instance is that model; None if none."""
    return next((name for name, record in sorted(state.models.items()) if name != besides and any(
        i.provider == provider and i.tuned_model_id == tuned_model_id for i in instances_of(record))), None)
