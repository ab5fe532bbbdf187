"""The State model: what has been created, as plain data, with a stable JSON layout for git diffs.

models[name] holds the current instance's fields flat, plus `pending` (a job being tuned to become the
current instance), `deposed` (superseded instances still to be deleted) and `retained` (replaced instances
kept, oldest first, so a reverted config restores one without training: lifecycle.keep_previous) when there are
any.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Annotated, Any, Literal

import msgspec
import orjson
from msgspec.structs import astuple

from runner import __version__
from runner.attributes import model_attributes
from runner.errors import StateError
from runner.identity import owner_tag

FORMAT_VERSION = 1
SUBMITTING, CREATING, ACTIVE, FAILED = "submitting", "creating", "active", "failed"
REJECTED = "rejected"  # tuned fine, but below the spec's quality gate: kept, never made current
HISTORY_KEPT = 10


@dataclass
class Instance:
    tuned_model_id: str
    provider: str
    fingerprint: str
    status: str  # submitting (intent recorded, not yet accepted) | creating | active | failed
    base_model: str
    display_name: str
    description: str
    hyperparameters: dict
    dataset: dict  # {"train": {path, sha256, examples}, "validation": {...} | None, input_key, output_key}
    created_at: str
    updated_at: str
    handle: str | None = None  # the provider's job / operation name, recorded before the first poll
    provider_info: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    prevent_destroy: bool = False
    resources: dict = field(default_factory=dict)  # provider resources, e.g. a Vertex endpoint
    generation: int | None = None  # a forced replacement's count (--replace); its tuned model id derives from it
    # `tuner promote`: {workspace, lineage, serial} of the state it came from, and `owner` {workspace, lineage}, the
    # state that created it (runner.references): this one serves it but never made it.
    promoted_from: dict | None = None

    @property
    def refused(self) -> bool:
        """A submission the provider refused outright: no job, no model, nothing to cancel or delete."""
        return self.status == FAILED and self.handle is None

    def attributes(self) -> dict:
        return model_attributes(self.provider, self.base_model, self.display_name, self.description,
                                self.hyperparameters, self.dataset, self.prevent_destroy)

    @classmethod
    def from_dict(cls, data: dict, where: str = "instance") -> Instance:
        """From untrusted JSON: every field's type is checked (ShapeError names the first wrong one). msgspec checks
        them all in one call, 10,000 instances in a few milliseconds; only what it refuses is walked field by field,
        which names the culprit (or accepts what msgspec is stricter about: a bool generation)."""
        try:
            instance = msgspec.convert(data, cls)
        except msgspec.ValidationError:
            instance = cls._checked_field_by_field(data, where)
        _check_inside(instance, where)
        return instance

    @classmethod
    def _checked_field_by_field(cls, data: dict, where: str) -> Instance:
        _expect(data, dict, where)
        for name, types in _INSTANCE_TYPES.items():
            value = data.get(name, MISSING)
            if value is MISSING:
                if name in _INSTANCE_REQUIRED:
                    raise ShapeError(f"{where}.{name}: missing")
            else:
                _expect(value, types, where, name)
        return cls(**{k: v for k, v in data.items() if k in _INSTANCE_TYPES})


class ShapeError(ValueError):
    """A state document whose structure is not what tuner writes: corrupt input."""


# Instance's annotations, as the JSON types that carry them.
_JSON_TYPES = {"str": str, "str | None": (str, type(None)), "dict": dict, "bool": bool, "int | None": (int, type(None)),
               "dict | None": (dict, type(None))}
_INSTANCE_TYPES = {f.name: _JSON_TYPES[f.type] for f in fields(Instance)}
_INSTANCE_REQUIRED = frozenset(f.name for f in fields(Instance) if f.default is MISSING
                               and f.default_factory is MISSING)
_TYPE_NAMES = {str: "a string", dict: "an object", list: "a list", bool: "true or false", int: "an integer",
               type(None): "null", float: "a number"}


_STATE_TYPES = {"lineage": str, "serial": int, "workspace": str, "tool_version": str, "models": dict,
                "moved_to": str}
_STATE_REQUIRED = ("lineage", "serial")


def _expect(value, types, where: str, *inside: str | int) -> None:
    """A ShapeError at WHERE.INSIDE... (an int inside is an index) unless VALUE is of TYPES (the path is made only
    then: this runs ten times per model on every read of the state)."""
    # bool is an int to Python, never to a state file
    if not isinstance(value, types) or (isinstance(value, bool) and types in (int, (int, float))):
        wanted = " or ".join(_TYPE_NAMES[t] for t in (types if isinstance(types, tuple) else (types,)))
        path = where + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in inside)
        raise ShapeError(f"{path}: must be {wanted}, not {_TYPE_NAMES.get(type(value), type(value).__name__)}")


def _check_inside(instance: Instance, where: str) -> None:
    """The shapes inside an instance's objects, which its field types do not say."""
    _check_dataset(instance.dataset, where)
    _check_metrics(instance.metrics, where)
    if instance.promoted_from is not None:
        _check_promoted_from(instance.promoted_from, f"{where}.promoted_from")


def _check_dataset(dataset: dict, where: str) -> None:
    for key in ("input_key", "output_key"):
        _expect(dataset.get(key), str, where, "dataset", key)
    _expect(dataset.get("train"), dict, where, "dataset", "train")
    _expect(dataset["train"].get("sha256"), str, where, "dataset", "train", "sha256")
    if "system_prompt" in dataset:
        _expect(dataset["system_prompt"], str, where, "dataset", "system_prompt")
    if dataset.get("validation") is not None:
        _expect(dataset["validation"], dict, where, "dataset", "validation")
        _expect(dataset["validation"].get("sha256"), str, where, "dataset", "validation", "sha256")


def _check_metrics(metrics: dict, where: str) -> None:
    if metrics.get("accuracy") is not None:
        _expect(metrics["accuracy"], (int, float), where, "metrics", "accuracy")
    if "eval_set" in metrics:
        _expect(metrics["eval_set"], dict, where, "metrics", "eval_set")


def _check_promoted_from(promoted: dict, where: str) -> None:
    for key, types in (("workspace", str), ("lineage", str), ("serial", int), ("owner", dict)):
        _expect(promoted.get(key), types, f"{where}.{key}")
    for key in ("workspace", "lineage"):
        _expect(promoted["owner"].get(key), str, f"{where}.owner.{key}")


@dataclass
class ModelRecord:
    current: Instance | None = None
    pending: Instance | None = None
    deposed: list[Instance] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)  # superseded models: id, fingerprint, metrics, dates
    retained: list[Instance] = field(default_factory=list)  # replaced but kept for a restore, oldest first

    def is_empty(self) -> bool:
        return self.current is None and self.pending is None and not self.deposed and not self.retained

    def supersede(self, now: str, retain: bool = False) -> None:
        """The current model is replaced: remember what it was and how it scored, then retain it (a working
        model only: a failed one cannot be restored) or depose it."""
        old = self.current
        self.history = [*self.history, {"tuned_model_id": old.tuned_model_id, "fingerprint": old.fingerprint,
                                        "metrics": old.metrics, "created_at": old.created_at,
                                        "replaced_at": now}][-HISTORY_KEPT:]
        (self.retained if retain and old.status == ACTIVE else self.deposed).append(old)

    def restore(self, tuned_model_id: str, now: str, retain: bool) -> Instance:
        """A retained model becomes current again; the current one is superseded (retained in turn)."""
        restored = self.find_retained(tuned_model_id)
        if restored is None:
            raise StateError(f"{tuned_model_id} is no longer retained in state: nothing to restore",
                             remedy="run `tuner plan` again")
        self.retained.remove(restored)
        if self.current is not None:
            self.supersede(now, retain)
        restored.updated_at, self.current = now, restored
        return restored

    def find_retained(self, tuned_model_id: str) -> Instance | None:
        return next((i for i in self.retained if i.tuned_model_id == tuned_model_id), None)

    def release(self, tuned_model_ids: Iterable[str]) -> None:
        """Retained models beyond lifecycle.keep_previous (or of a destroyed name) are deposed, to be deleted."""
        released = [i for i in self.retained if i.tuned_model_id in set(tuned_model_ids)]
        self.retained = [i for i in self.retained if i not in released]
        # One found gone and trained anew under the same id (ids derive from the fingerprint) is the current
        # model now: forgotten, never deleted.
        current = self.current.tuned_model_id if self.current else None
        self.deposed.extend(i for i in released if i.tuned_model_id != current)

    def to_dict(self) -> dict:
        data = _instance_dict(self.current) if self.current else {}
        if self.pending:
            data["pending"] = _instance_dict(self.pending)
        if self.deposed:
            data["deposed"] = [_instance_dict(d) for d in self.deposed]
        if self.retained:
            data["retained"] = [_instance_dict(r) for r in self.retained]
        if self.history and data:
            data["history"] = self.history
        return data

    @classmethod
    def from_dict(cls, data: dict, where: str = "record") -> ModelRecord:
        _expect(data, dict, where)
        current = Instance.from_dict(data, where) if "tuned_model_id" in data else None
        pending = Instance.from_dict(data["pending"], f"{where}.pending") if data.get("pending") else None
        deposed, history, retained = data.get("deposed", []), data.get("history", []), data.get("retained", [])
        _expect(deposed, list, where, "deposed")
        _expect(retained, list, where, "retained")
        _expect(history, list, where, "history")
        _check_history(history, where)
        return cls(current, pending, [Instance.from_dict(d, f"{where}.deposed[{i}]") for i, d in enumerate(deposed)],
                   list(history), [Instance.from_dict(r, f"{where}.retained[{i}]") for i, r in enumerate(retained)])

    @classmethod
    def from_stored(cls, stored: StoredRecord) -> ModelRecord:
        """From what the typed pass decoded: the checks its types cannot say are made here; a ShapeError only
        sends the document to the walk (from_dict), which names the culprit, so it names no path."""
        current = None
        if stored.tuned_model_id is not msgspec.UNSET:
            fields_of_current = astuple(stored)[:_INSTANCE_FIELDS]  # Instance's fields come first
            if msgspec.UNSET in fields_of_current:
                raise ShapeError("a field of the current instance is missing")
            current = _checked(fields_of_current)
        _check_history(stored.history, "models")
        pending = _checked(astuple(stored.pending)) if stored.pending is not None else None
        return cls(current, pending, [_checked(astuple(d)) for d in stored.deposed], stored.history,
                   [_checked(astuple(r)) for r in stored.retained])


def _check_history(history: list, where: str) -> None:
    for index, entry in enumerate(history):
        _expect(entry, dict, where, "history", index)
        _expect(entry.get("tuned_model_id"), str, where, "history", index, "tuned_model_id")
        _expect(entry.get("metrics") or {}, dict, where, "history", index, "metrics")


def _instance_dict(instance: Instance) -> dict:
    return {k: v for k, v in asdict(instance).items() if v is not None and v != {}}


# -- the typed pass: State.from_json decodes and type-checks a whole document in one msgspec call ----------------
# Each shape accepts a subset of what the walk (State._walked, ModelRecord.from_dict, Instance.from_dict) accepts,
# read to the same values; a document it refuses is walked, which names the culprit or accepts what it is stricter
# about (a bool generation, `format_version: 1.0`, `pending: {}`, an integer beyond 64 bits...).

# orjson reads an integer beyond 64 bits as a float, msgspec as an int that orjson could not write back: such a
# document takes the walk (msgspec bounds stop at int64: one between 2**63 and 2**64 takes it too).
Int64 = Annotated[int, msgspec.Meta(ge=-(2 ** 63), le=2 ** 63 - 1)]


def _json_value(depth: int) -> Any:
    """Any JSON value nested at most DEPTH containers deep (msgspec takes no recursive alias: a deeper one is
    walked)."""
    scalar = bool | Int64 | float | str | None
    if depth == 0:
        return scalar
    inner = _json_value(depth - 1)
    return scalar | list[inner] | dict[str, inner]


_JSON_OBJECT = dict[str, _json_value(4)]
# Instance's annotations, as the typed pass reads them
_DECODED_TYPES = {"str": str, "str | None": str | None, "dict": _JSON_OBJECT, "bool": bool,
                  "int | None": Int64 | None, "dict | None": _JSON_OBJECT | None}
_INSTANCE_FIELDS = len(fields(Instance))


def _stored_fields(required: bool) -> list[tuple]:
    """Instance's fields in its order, as msgspec fields; unless REQUIRED, an absent required one is UNSET."""
    result = []
    for f in fields(Instance):
        decoded = _DECODED_TYPES[f.type]
        if f.default is not MISSING or f.default_factory is not MISSING:
            result.append((f.name, decoded, f.default if f.default is not MISSING else f.default_factory()))
        else:
            result.append((f.name, decoded) if required else (f.name, decoded | msgspec.UnsetType, msgspec.UNSET))
    return result


StoredInstance = msgspec.defstruct("StoredInstance", _stored_fields(required=True), gc=False)
# A model's entry as written: the current instance's fields flat (none when it has no current one), then the rest.
StoredRecord = msgspec.defstruct("StoredRecord", [
    *_stored_fields(required=False), ("pending", StoredInstance | None, None), ("deposed", list[StoredInstance], []),
    ("retained", list[StoredInstance], []), ("history", list[_JSON_OBJECT], [])], gc=False)


class _StoredState(msgspec.Struct, gc=False):
    format_version: Literal[1]
    lineage: str
    serial: Int64
    workspace: str = "default"
    tool_version: str = ""
    models: dict[str, StoredRecord] = {}
    providers: dict[str, _JSON_OBJECT] = {}
    moved_to: str = ""


_STATE_DECODER = msgspec.json.Decoder(_StoredState)


def _checked(values: tuple) -> Instance:
    """The instance of Instance's field VALUES (a StoredInstance's, in order), its insides checked."""
    instance = Instance(*values)
    _check_inside(instance, "models")  # a ShapeError only sends the document to the walk: no path to name
    return instance


def _typed_state(raw: bytes) -> State | None:
    """The state in RAW as the typed pass reads it, or None when it refuses it."""
    try:
        stored = _STATE_DECODER.decode(raw)
        models = {name: ModelRecord.from_stored(record) for name, record in stored.models.items()}
    except (msgspec.DecodeError, ShapeError):  # DecodeError: malformed JSON, or ValidationError: a wrong type
        return None
    return State(stored.lineage, stored.serial, stored.workspace, stored.tool_version, models, stored.providers,
                 stored.moved_to)


@dataclass
class State:
    lineage: str
    serial: int = 0
    workspace: str = "default"
    tool_version: str = __version__
    models: dict[str, ModelRecord] = field(default_factory=dict)
    # provider -> its non-secret settings (endpoint, key variable name, project...) as last applied:
    # a plan shows any difference before a credential is sent where new settings point.
    providers: dict[str, dict] = field(default_factory=dict)
    moved_to: str = ""  # set by `tuner state migrate` on the copy left behind: where this history now lives

    @classmethod
    def new(cls, workspace: str) -> State:
        """A state not yet written: its lineage is empty until the first write gives it one."""
        return cls(lineage="", workspace=workspace)

    def is_foreign(self, tag: str | None) -> bool:
        """A remote object's owner tag (runner.identity) names another state or workspace; an object with no tag
        (made by hand, or by an older tuner) names none. A state not yet written owns nothing."""
        return tag is not None and (not self.lineage or tag != owner_tag(self.lineage, self.workspace))

    def next_version(self) -> None:
        """Called by backends before each write: serial only grows; the lineage is born once."""
        self.lineage = self.lineage or str(uuid.uuid4())
        self.serial += 1

    def record(self, name: str) -> ModelRecord:
        return self.models.setdefault(name, ModelRecord())

    def outputs(self) -> dict:
        """What applications read: the current tuned model of every name (and where to call it)."""
        result = {}
        for name, record in sorted(self.models.items()):
            current = record.current
            if current is None:
                continue
            result[name] = {"tuned_model_id": current.tuned_model_id, "provider": current.provider,
                            "status": current.status, "base_model": current.base_model}
            if current.resources.get("endpoint"):
                result[name]["endpoint"] = current.resources["endpoint"]
            if current.metrics.get("accuracy") is not None:
                result[name]["accuracy"] = current.metrics["accuracy"]
        return result

    def to_json(self) -> bytes:
        data = {
            "format_version": FORMAT_VERSION,
            "lineage": self.lineage,
            "serial": self.serial,
            "workspace": self.workspace,
            "tool_version": self.tool_version,
            "models": {name: rec.to_dict() for name, rec in sorted(self.models.items()) if not rec.is_empty()},
        }
        if self.providers:
            data["providers"] = self.providers
        if self.moved_to:
            data["moved_to"] = self.moved_to
        # orjson: the same stable, sorted, two-space layout as json.dumps(indent=2), without the pure-Python
        # encoder that indent forces on the standard library (50 ms a write at a thousand models).
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> State:
        """From untrusted JSON: read in one typed pass, or walked field by field when that refuses it (the walk
        names the culprit: ShapeError, or a StateError for an unsupported format)."""
        return _typed_state(raw) or cls._walked(raw, where)

    @classmethod
    def _walked(cls, raw: bytes, where: str) -> State:
        try:
            data = orjson.loads(raw)  # as it is written: no NaN, numbers orjson can write back
            _expect(data, dict, "the document")
            if data.get("format_version") != FORMAT_VERSION:
                raise StateError(f"{where}: state format {data.get('format_version')!r} is not supported by "
                                 f"tuner {__version__} (expects {FORMAT_VERSION})")
            for key, types in _STATE_TYPES.items():
                if key in data or key in _STATE_REQUIRED:
                    _expect(data.get(key), types, key)
            return cls(
                lineage=data["lineage"],
                serial=data["serial"],
                workspace=data.get("workspace", "default"),
                tool_version=data.get("tool_version", ""),
                models={name: ModelRecord.from_dict(rec, f"models.{name}")
                        for name, rec in data.get("models", {}).items()},
                providers=_recorded_providers(data.get("providers", {})),
                moved_to=data.get("moved_to", ""),
            )
        except StateError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"{where}: state file is corrupt ({exc})",
                             remedy=f"restore it from git or from {where}.backup") from None


def _recorded_providers(data) -> dict[str, dict]:
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise TypeError("providers must map each provider to its settings")
    return {name: dict(settings) for name, settings in data.items()}
