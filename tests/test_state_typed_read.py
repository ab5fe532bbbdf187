"""A state (and a journal record) is read in one typed pass (msgspec), or walked field by field when that pass
refuses it: the two must accept the same documents, read them to the same values and refuse the same ones with the
walk's message (runner/state/model.py, runner/state/journal.py)."""

from __future__ import annotations

import copy
import json

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import StateError
from runner.state import journal
from runner.state.model import ShapeError, State, _typed_state
from tests.test_state_shape import _paths

WHERE = "state/default.json"


def _instance(model_id: str, **extra) -> dict:
    return {"tuned_model_id": model_id, "provider": "openai", "fingerprint": "ab" * 8, "status": "active",
            "base_model": "gpt-4o-mini-2024-07-18", "display_name": "Support", "description": "Tickets",
            "hyperparameters": {"n_epochs": 3, "learning_rate_multiplier": 0.5, "batch_size": None},
            "dataset": {"train": {"path": "data/train.jsonl", "sha256": "0" * 64, "examples": 60},
                        "validation": None, "input_key": "text_input", "output_key": "output"},
            "created_at": "2026-11-25T00:00:00+00:00", "updated_at": "2026-11-25T00:00:00+00:00",
            "handle": "ftjob-1", **extra}


@pytest.fixture(scope="module")
def rich_state() -> dict:
    """A state holding every kind of entry and field tuner writes: a current model with retained, deposed and
    history entries, one with only a pending job, a promoted one, an empty entry, provider settings."""
    support = _instance(
        "ft:support-2", metrics={"accuracy": 0.75, "eval_set": {"sha256": "2" * 64, "examples": 12}, "loss": [0.5, 1]},
        provider_info={"sdk": "openai", "checkpoints": [{"step": 10, "ok": True}]}, resources={"endpoint": "e/1"},
        generation=2, prevent_destroy=True, error="quota, retried")
    support["dataset"]["system_prompt"] = "Answer briefly."
    support["retained"] = [_instance("ft:support-1")]
    support["deposed"] = [_instance("ft:support-0", status="failed", error="boom")]
    support["history"] = [{"tuned_model_id": "ft:support-0", "fingerprint": "cd" * 8, "metrics": None,
                           "created_at": "2026-11-20T00:00:00+00:00", "note": "kept as written"},
                          {"tuned_model_id": "ft:support-1", "metrics": {"accuracy": 1}}]
    promoted = _instance("ft:promoted", promoted_from={
        "workspace": "staging", "lineage": "9" * 8, "serial": 4, "owner": {"workspace": "staging", "lineage": "9" * 8}})
    return {"format_version": 1, "lineage": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "serial": 7,
            "workspace": "default", "tool_version": "0.1.0",
            "providers": {"openai": {"base_url": "http://127.0.0.1:9", "api_key_env": "OPENAI_API_KEY"}},
            "models": {"support": support, "promoted": promoted, "emptied": {},
                       "queued": {"pending": _instance("ft:queued", status="submitting", handle=None)}}}


def _read(raw: bytes) -> State | str:
    """The state from_json reads, or the message it refuses RAW with."""
    try:
        return State.from_json(raw, WHERE)
    except StateError as refused:
        return refused.message


def _walked(raw: bytes) -> State | str:
    try:
        return State._walked(raw, WHERE)
    except StateError as refused:
        return refused.message


def _assert_same_read(raw: bytes) -> bool:
    """from_json reads RAW as the walk alone does: the same state (to the byte it writes back) or the same message.
    True when the typed pass read it."""
    read, walked, typed = _read(raw), _walked(raw), _typed_state(raw)
    if isinstance(walked, str):
        assert typed is None, walked
        assert read == walked
        return False
    assert read == walked and read.to_json() == walked.to_json()
    if typed is not None:
        assert typed == walked and typed.to_json() == walked.to_json()
    return typed is not None


def test_every_entry_tuner_writes_is_read_by_the_typed_pass(rich_state):
    raw = json.dumps(rich_state).encode()
    assert _assert_same_read(raw)
    state = _typed_state(raw)
    assert state.models["queued"].current is None and state.models["queued"].pending.tuned_model_id == "ft:queued"
    assert state.models["support"].retained[0].tuned_model_id == "ft:support-1"
    assert _assert_same_read(state.to_json())  # and what it writes back


def _at(document: dict, path: tuple) -> tuple[dict | list, str | int]:
    holder = document
    for key in path[:-1]:
        holder = holder[key]
    return holder, path[-1]


def _changed(rich_state: dict, path: tuple, value=None, delete: bool = False) -> bytes:
    document = copy.deepcopy(rich_state)
    holder, key = _at(document, path)
    if delete:
        del holder[key]
    else:
        holder[key] = value
    return json.dumps(document).encode()


SUPPORT = ("models", "support")
DELETE, ABSENT = object(), object()


class Refused(str):
    """The walk's message (a part of it) for a document it refuses."""


# path: (value put there, or DELETE; read by the typed pass?; what the walk makes of it: the value the state then
# writes back at that path, ABSENT, or Refused)
CASES = {
    "a bool serial": (("serial",), True, False, Refused("serial: must be an integer, not true or false")),
    "a float serial": (("serial",), 7.0, False, Refused("serial: must be an integer, not a number")),
    "an int too long for orjson": (("serial",), 10 ** 20, False, Refused("serial: must be an integer, not a number")),
    "a bool generation": ((*SUPPORT, "generation"), True, False, True),
    "a float generation": ((*SUPPORT, "generation"), 2.0, False, Refused("generation: must be an integer or null")),
    "a null handle": ((*SUPPORT, "handle"), None, True, ABSENT),
    "no handle": ((*SUPPORT, "handle"), DELETE, True, ABSENT),
    "a null tuned model id": ((*SUPPORT, "tuned_model_id"), None, False,
                              Refused("tuned_model_id: must be a string, not null")),
    "no fingerprint": ((*SUPPORT, "fingerprint"), DELETE, False, Refused("models.support.fingerprint: missing")),
    "a null workspace": (("workspace",), None, False, Refused("workspace: must be a string, not null")),
    "format_version 1.0": (("format_version",), 1.0, False, 1),
    "an unknown key in an entry": ((*SUPPORT, "owner_note"), "x", True, ABSENT),
    "an unknown key in a dataset": ((*SUPPORT, "dataset", "revision"), {"kept": [1, 2.5]}, True, {"kept": [1, 2.5]}),
    "an unknown top-level key": (("comment",), "x", True, ABSENT),
    "an integer beyond 64 bits in the hyperparameters": ((*SUPPORT, "hyperparameters", "seed"), 10 ** 20, False,
                                                         1e20),
    "an integer between 2**63 and 2**64": ((*SUPPORT, "hyperparameters", "seed"), 2 ** 63, False, 2 ** 63),
    "values nested deeper than the typed pass reads": ((*SUPPORT, "provider_info", "deep"), [[[[[["x"]]]]]], False,
                                                       [[[[[["x"]]]]]]),
    "validation null": ((*SUPPORT, "dataset", "validation"), None, True, None),
    "a validation without a hash": ((*SUPPORT, "dataset", "validation"), {"path": "v.jsonl"}, False,
                                    Refused("models.support.dataset.validation.sha256: must be a string, not null")),
    "a numeric system prompt": ((*SUPPORT, "dataset", "system_prompt"), 5, False,
                                Refused("models.support.dataset.system_prompt: must be a string, not an integer")),
    "an integer train hash": ((*SUPPORT, "dataset", "train", "sha256"), 5, False,
                              Refused("models.support.dataset.train.sha256: must be a string, not an integer")),
    "a promotion with no owner": (("models", "promoted", "promoted_from", "owner"), None, False,
                                  Refused("models.promoted.promoted_from.owner: must be an object, not null")),
    "a promotion with a bool serial": (("models", "promoted", "promoted_from", "serial"), False, False,
                                       Refused("promoted_from.serial: must be an integer, not true or false")),
    "a history entry's numeric id": ((*SUPPORT, "history", 1, "tuned_model_id"), 1, False, Refused(
        "models.support.history[1].tuned_model_id: must be a string, not an integer")),
    "a history entry's metrics 0": ((*SUPPORT, "history", 1, "metrics"), 0, True, 0),
    "a history entry's metrics list": ((*SUPPORT, "history", 1, "metrics"), [1], False,
                                       Refused("models.support.history[1].metrics: must be an object, not a list")),
    "an empty pending": ((*SUPPORT, "pending"), {}, False, ABSENT),
    "a false pending": ((*SUPPORT, "pending"), False, False, ABSENT),
    "a null deposed": ((*SUPPORT, "deposed"), None, False, Refused("models.support.deposed: must be a list, not null")),
    "a deposed model's bool accuracy": ((*SUPPORT, "deposed", 0, "metrics"), {"accuracy": True}, False,
                                        Refused("models.support.deposed[0].metrics.accuracy: must be an integer or")),
    "a pending-only entry's stray field": (("models", "queued", "provider"), 5, False, ABSENT),
}


@pytest.mark.parametrize("case", list(CASES))
def test_where_the_typed_pass_and_the_walk_could_disagree(rich_state, case):
    path, value, typed, walked = CASES[case]
    raw = _changed(rich_state, path, delete=True) if value is DELETE else _changed(rich_state, path, value)
    assert _assert_same_read(raw) is typed
    read = _read(raw)
    if isinstance(walked, Refused):
        assert isinstance(read, str) and read.startswith(f"{WHERE}: state file is corrupt (") and walked in read, read
        return
    holder, key = _at(json.loads(read.to_json()), path)  # what the state holds is what it writes back
    if walked is ABSENT:
        assert key not in holder
    else:
        assert holder[key] == walked and type(holder[key]) is type(walked)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from([2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 20, 1.0])
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


def _mutated(document: dict, data) -> dict:
    """DOCUMENT with a value replaced, a key removed or an unknown key added, somewhere."""
    path = data.draw(st.sampled_from([p for p in _paths(document) if p]))
    holder, key = _at(document, path)
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "delete" and isinstance(holder, dict):
        del holder[key]
    elif action == "add" and isinstance(holder[key], dict):
        added = data.draw(st.sampled_from(["x", "pending", "metrics", "sha256", "serial", "system_prompt"]))
        holder[key][added] = data.draw(JSON_VALUES)
    else:
        holder[key] = data.draw(JSON_VALUES)
    return document


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_change_anywhere_is_read_alike_by_the_typed_pass_and_the_walk(rich_state, data):
    document = copy.deepcopy(rich_state)
    for _ in range(data.draw(st.integers(1, 2))):
        document = _mutated(document, data)
    _assert_same_read(json.dumps(document).encode())


def _journal_read(decode, raw: bytes):
    """A record's lineage, serial and change (as a dict), or "refused"."""
    try:
        lineage, serial, change = decode(raw)
    except (StateError, ShapeError, msgspec.DecodeError):
        return "refused"
    return lineage, serial, change and (change[0], change[1].to_dict())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_journal_record_is_read_alike_by_the_typed_pass_and_the_walk(rich_state, data):
    name = data.draw(st.sampled_from(sorted(rich_state["models"])))
    entry = _mutated({"lineage": "l", "serial": 8, "model": name,
                      "record": copy.deepcopy(rich_state["models"][name])}, data)
    raw = json.dumps(entry).encode()
    walked, typed = _journal_read(lambda r: journal._walked(r, "j", 1), raw), _journal_read(journal._typed, raw)
    assert _journal_read(lambda r: journal._decode(r, "j", 1), raw) == walked
    assert typed in ("refused", walked)


def test_a_journal_record_tuner_writes_is_read_by_the_typed_pass(rich_state):
    for name, record in rich_state["models"].items():
        raw = json.dumps({"lineage": "l", "serial": 8, "model": name, "record": record}).encode()
        lineage, serial, (read_name, read) = journal._typed(raw)
        assert (lineage, serial, read_name) == ("l", 8, name)
        assert read.to_dict() == journal._walked(raw, "j", 1)[2][1].to_dict()
