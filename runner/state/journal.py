"""The state's write-ahead journal: apply's job transitions, recorded as small records between full writes.

Why a journal rather than a full write per transition: the state file holds the whole fleet (about 2 kB a
model, 20 MB at 10,000 models), and apply records three or four transitions per job, each of which must be
durable before the next step is paid for. Rewriting the file each time costs fleet x changes bytes (80 GB for
1,000 changes among 10,000 models); a record of the one model that changed costs about 2 kB. Coalescing
writes cannot close that gap: a submission's intent must be durable before its provider call, and a quota of
~5 concurrent jobs means hundreds of submission waves. A split index plus per-model files would also scale,
but would turn the one reviewable state file into thousands and every backend into a directory protocol.

So the state file stays the artefact reviewed in git, and the journal sits beside it only while an apply is
running (or after a crash): replayed by every read, folded into the file (compacted) at the end of apply and
whenever it grows past a bound, then removed.

A record is one JSON object: the lineage, the serial it brings the state to (one past the state it applies
to) and, for a model change, the whole entry of that name after the change (`record`, empty when the name is
gone). Replacing a whole entry makes replay idempotent; the serial chain makes it ordered: a record at or
below the file's serial is already in the file (a compaction stopped before removing the journal) and is
skipped, a gap or another lineage is refused. A journal is untrusted input, like the state: every field is
checked before use.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
import orjson

from runner.errors import StateError
from runner.identity import MODEL_NAME
from runner.state.model import Int64, ModelRecord, ShapeError, State, StoredRecord, _expect


class JournalGap(StateError):
    """The journal does not continue the state file read with it (or was replaced while being read)."""


def encode(state: State, name: str | None) -> bytes:
    """The record that brings a state at serial-1 to STATE (serial already bumped) for model NAME; with no
    name, a marker that only claims the serial (a compaction's, on backends that need it)."""
    entry: dict = {"lineage": state.lineage, "serial": state.serial}
    if name is not None:
        record = state.models.get(name)
        entry["model"], entry["record"] = name, record.to_dict() if record is not None else {}
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)


def replay(state: State, records: Iterable[bytes], where: str) -> State:
    """Apply the journal's records, oldest first, to the state read from the file (in place)."""
    for number, raw in enumerate(records, start=1):
        lineage, serial, change = _decode(raw, where, number)
        if lineage != state.lineage:
            raise StateError(f"{where}: record {number} belongs to another state (lineage {lineage}, the state "
                             f"file's is {state.lineage or 'not yet written'})", remedy=_foreign_remedy(where))
        if serial <= state.serial:
            continue  # already in the file: a compaction ended before it removed the journal
        if serial != state.serial + 1:
            raise JournalGap(f"{where}: record {number} is for serial {serial}, but the state is at serial "
                             f"{state.serial}: records are missing in between", remedy=_foreign_remedy(where))
        if change is not None:
            name, record = change
            if record.is_empty():
                state.models.pop(name, None)
            else:
                state.models[name] = record
        state.serial = serial
    return state


class _StoredEntry(msgspec.Struct, gc=False):
    lineage: str
    serial: Int64
    model: str | msgspec.UnsetType = msgspec.UNSET
    record: StoredRecord | msgspec.UnsetType = msgspec.UNSET


_ENTRY_DECODER = msgspec.json.Decoder(_StoredEntry)
Change = tuple[str, int, tuple[str, ModelRecord] | None]  # lineage, serial, and the model's new entry if any


def _decode(raw: bytes, where: str, number: int) -> Change:
    """One record, read in one typed pass as the state file is (runner.state.model), or walked when that refuses it
    (the walk names the culprit)."""
    try:
        return _typed(raw)
    except (msgspec.DecodeError, ShapeError):
        return _walked(raw, where, number)


def _typed(raw: bytes) -> Change:
    entry = _ENTRY_DECODER.decode(raw)
    if entry.model is msgspec.UNSET:
        return entry.lineage, entry.serial, None
    if entry.record is msgspec.UNSET or not MODEL_NAME.match(entry.model):
        raise ShapeError("not a model change tuner writes")  # the walk names what is wrong
    return entry.lineage, entry.serial, (entry.model, ModelRecord.from_stored(entry.record))


def _walked(raw: bytes, where: str, number: int) -> Change:
    try:
        entry = orjson.loads(raw)
        _expect(entry, dict, "the record")
        _expect(entry.get("lineage"), str, "lineage")
        _expect(entry.get("serial"), int, "serial")
        if "model" not in entry:
            return entry["lineage"], entry["serial"], None
        name = entry["model"]
        _expect(name, str, "model")
        if not MODEL_NAME.match(name):
            raise ShapeError(f"model: {name[:40]!r} is not a model name")
        record = ModelRecord.from_dict(entry.get("record"), f"models.{name}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # orjson's and ShapeError are ValueErrors
        raise StateError(f"{where}: record {number} is corrupt ({exc})", remedy=_foreign_remedy(where)) from None
    return entry["lineage"], entry["serial"], (name, record)


def _foreign_remedy(where: str) -> str:
    return (f"the journal {where} holds changes not yet in the state file; if they are not this state's "
            f"(copied or edited by hand), remove {where} and run `tuner refresh`")
