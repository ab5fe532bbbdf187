"""A state file of the wrong shape is a corrupt input: the same clear message (and backup remedy) as a
truncated one, whatever the command, never an internal error."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import StateError
from runner.state.model import State


@pytest.fixture(scope="module")
def valid_state(tmp_path_factory) -> dict:
    """A real state: one local model applied, then replaced once (so it has history and fields of every kind)."""
    return {
        "format_version": 1, "lineage": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "serial": 3,
        "workspace": "default", "tool_version": "0.1.0",
        "models": {"sentiment": {
            "tuned_model_id": "sentiment-v1234567890", "provider": "local", "fingerprint": "ab" * 8,
            "status": "active", "base_model": "local/linear-ngram", "display_name": "Sentiment",
            "description": "Reviews", "hyperparameters": {"epoch_count": 4, "batch_size": 8, "learning_rate": 0.5},
            "dataset": {"train": {"path": "data/train.jsonl", "sha256": "0" * 64, "examples": 60},
                        "validation": {"path": "data/valid.jsonl", "sha256": "1" * 64, "examples": 20},
                        "input_key": "text_input", "output_key": "output"},
            "created_at": "2026-11-25T00:00:00+00:00", "updated_at": "2026-11-25T00:00:00+00:00",
            "handle": "local-job", "metrics": {"accuracy": 0.9}, "prevent_destroy": False,
            "history": [{"tuned_model_id": "sentiment-v0", "fingerprint": "cd" * 8, "metrics": {},
                         "created_at": "2026-11-24T00:00:00+00:00", "replaced_at": "2026-11-25T00:00:00+00:00"}],
        }},
    }


def corrupt(state: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(state)
    holder = data
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return data


CASES = {
    "hyperparameters is a string": (("models", "sentiment", "hyperparameters"), "x"),
    "dataset is null": (("models", "sentiment", "dataset"), None),
    "dataset.train has no hash": (("models", "sentiment", "dataset", "train"), {"path": "data/train.jsonl"}),
    "a model record is a list": (("models", "sentiment"), ["tunedModels/x"]),
    "serial is not a number": (("serial",), "abc"),
    "serial is a boolean": (("serial",), True),
    "the tuned model id is a number": (("models", "sentiment", "tuned_model_id"), 42),
    "the handle is a list": (("models", "sentiment", "handle"), ["op"]),
    "models is a list": (("models",), []),
    "the lineage is null": (("lineage",), None),
    "history holds a string": (("models", "sentiment", "history"), ["x"]),
    "deposed is an object": (("models", "sentiment", "deposed"), {"a": 1}),
    "pending is a number": (("models", "sentiment", "pending"), 7),
    "retained is an object": (("models", "sentiment", "retained"), {"a": 1}),
    "retained holds a string": (("models", "sentiment", "retained"), ["sentiment-v0"]),
    "a retained model has no fingerprint": (("models", "sentiment", "retained"), [{"tuned_model_id": "x"}]),
    "prevent_destroy is a string": (("models", "sentiment", "prevent_destroy"), "no"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_state_of_the_wrong_shape_is_refused_on_read(valid_state, case):
    path, value = CASES[case]
    with pytest.raises(StateError) as refused:
        State.from_json(json.dumps(corrupt(valid_state, path, value)).encode(), "state/default.json")
    assert refused.value.message.startswith("state/default.json: state file is corrupt (")
    assert refused.value.remedy == "restore it from git or from state/default.json.backup"


def test_the_valid_state_reads(valid_state):
    state = State.from_json(json.dumps(valid_state).encode(), "state/default.json")
    assert state.models["sentiment"].current.dataset["train"]["sha256"] == "0" * 64


@pytest.mark.parametrize("case", ["hyperparameters is a string", "dataset is null", "a model record is a list",
                                  "serial is not a number", "the tuned model id is a number"])
def test_every_command_reading_a_corrupt_state_says_so(project, valid_state, case):
    (project.root / "state").mkdir()
    path, value = CASES[case]
    (project.root / "state" / "default.json").write_text(json.dumps(corrupt(valid_state, path, value)))
    for command in (("plan",), ("show",), ("state", "list"), ("output",), ("destroy", "--auto-approve")):
        result = project.run(*command)
        assert result.code == 1, (command, result.output)
        assert "state/default.json: state file is corrupt" in result.err, (command, result.err)
        assert "restore it from git or from" in result.err and "internal error" not in result.err


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=5)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_value_anywhere_reads_or_is_refused_and_a_read_state_works(valid_state, data):
    paths = [p for p in _paths(valid_state) if p]
    path = data.draw(st.sampled_from(paths))
    document = corrupt(valid_state, path, data.draw(JSON_VALUES))
    try:
        state = State.from_json(json.dumps(document).encode(), "s.json")
    except StateError as refused:
        assert refused.message.startswith("s.json: state file is corrupt (") or "state format" in refused.message
        return
    # What was accepted is usable by everything that reads state.
    state.to_json()
    state.outputs()
    for record in state.models.values():
        for instance in filter(None, (record.current, record.pending, *record.deposed)):
            instance.attributes()


def test_the_state_layer_imports_nothing_of_the_layers_that_plan():
    """One-way flow: spec -> datasets -> provider.plan -> plan -> apply -> state; state imports none of them."""
    import subprocess
    import sys

    probe = ("import sys, runner.state; print(' '.join(sorted(m for m in sys.modules if m.startswith('runner.'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()

    upstream = ("desired", "planned", "plan", "providers", "spec", "datasets")
    assert [m for m in loaded if m.split(".")[1] in upstream] == []
