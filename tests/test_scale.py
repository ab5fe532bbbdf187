"""Plan cost per model at fleet scale: work that must not grow with the fleet for each model looked at.

Timings on a shared machine are noise, so these count work (comparisons, path resolutions) instead.
"""

from __future__ import annotations

from runner.plan import Observation
from runner.providers.base import ObservedModel

FLEET = 2000


class CountedId(str):
    """A tuned model id that counts how often it is compared for equality."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        CountedId.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_finding_each_observed_model_costs_no_scan_of_the_fleet():
    ids = [CountedId(f"model-{i:05d}") for i in range(FLEET)]
    observed = Observation({"local": tuple(ObservedModel(i, i, "", "active") for i in ids)})
    CountedId.comparisons = 0
    found = [observed.find("local", i) for i in ids]
    assert [m.tuned_model_id for m in found] == ids
    assert CountedId.comparisons <= 2 * FLEET  # a scan per lookup: FLEET^2 / 2 = 2,000,000
    assert observed.find("local", "missing") is None and observed.find("gemini", ids[0]) is None


def test_the_first_report_of_a_duplicated_id_is_the_one_found():
    first, second = ObservedModel("m-1", "first", "", "active"), ObservedModel("m-1", "second", "", "active")
    assert Observation({"local": (first, second)}).find("local", "m-1") is first


def test_listing_local_models_resolves_the_models_directory_once_not_each_folder(tmp_path, monkeypatch):
    import json
    import os

    from runner.providers.local import LocalProvider

    directory = tmp_path / "models"
    for index in range(100):
        folder = directory / f"model-{index:03d}"
        folder.mkdir(parents=True)
        (folder / "model.npz").write_bytes(b"weights")
        (folder / "meta.json").write_text(json.dumps({"tuned_model_id": folder.name, "display_name": "d",
                                                      "description": "", "model_bytes": 7}))
    (directory / "linked").symlink_to(directory / "model-000")  # not a folder of this directory: never listed
    resolved = []
    real = os.path.realpath
    monkeypatch.setattr(os.path, "realpath", lambda path, **kw: resolved.append(path) or real(path, **kw))
    listed = LocalProvider(directory).list_models()
    assert [m.tuned_model_id for m in listed] == [f"model-{index:03d}" for index in range(100)]
    assert len(resolved) <= 2  # was two resolutions of every folder (its meta.json, then its weights)


VALID_ENTRY = {"provider": "local", "base_model": "local/linear-ngram", "display_name": "D",
               "dataset": {"train": "../data/a.jsonl", "input_key": "q"},
               "hyperparameters": {"epoch_count": 2, "batch_size": 4, "learning_rate": 0.5},
               "lifecycle": {"prevent_destroy": True}}
SPEC_DOCUMENTS = [
    {"models": {"a": VALID_ENTRY}},
    {"defaults": {"provider": "local"}, "models": {"a": {**VALID_ENTRY, "for_each": ["x", "y"]}}},
    {"models": {"a": {**VALID_ENTRY, "for_each": {"x": None, "y": {"hyperparameters": {"epoch_count": 3}}}}}},
    {"models": {"a": {**VALID_ENTRY, "colour": "red"}}},  # an unknown key in an entry
    {"defaults": {"colour": "red"}, "models": {}},  # in defaults
    {"models": {"a": {**VALID_ENTRY, "for_each": {"x": {"colour": "red"}}}}},  # in a for_each override
    {"models": {"a": {**VALID_ENTRY, "for_each": {"x": {"for_each": ["y"]}}}}},  # for_each is not a model property
    {"models": {"a": {**VALID_ENTRY, "provider": "nope"}}},
    {"models": {"a": {**VALID_ENTRY, "dataset": {"train": 3}}}},
    {"models": {"a": {**VALID_ENTRY, "for_each": []}}},
    {"models": {"a": "not a mapping"}},
    {"models": {"a": VALID_ENTRY}, "backend": {"gcs": {"bucket": "b"}}, "budget": {"max_plan_cost_usd": 5}},
]


def test_the_fast_schema_accepts_exactly_what_the_reference_schema_accepts():
    """Valid spec files skip the reference validator: its inlined twin must refuse everything it refuses."""
    import json

    from runner.spec.loader import _acceptor, _validator

    verdicts = [(_acceptor().is_valid(doc), _validator().is_valid(doc)) for doc in SPEC_DOCUMENTS]
    assert [fast for fast, _ in verdicts] == [reference for _, reference in verdicts]
    assert sum(reference for _, reference in verdicts) >= 3 and not all(reference for _, reference in verdicts)
    flat = json.dumps(_acceptor().schema)
    assert "$ref" not in flat and "unevaluatedProperties" not in flat  # what made validation twice as slow


def test_inlining_leaves_a_ref_whose_flattening_would_accept_more():
    from runner.spec.loader import inlined

    defs = {"base": {"type": "object", "properties": {"a": {"type": "string"}}}}
    overlapping = {"$ref": "#/$defs/base", "properties": {"a": {"minLength": 2}}, "unevaluatedProperties": False}
    assert inlined(overlapping, defs)["$ref"] == "#/$defs/base"  # merging would drop one of the two `a` rules
    recursive = {"$ref": "#/$defs/node"}
    node_defs = {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}}
    assert inlined(recursive, node_defs)["properties"]["child"] == {"$ref": "#/$defs/node"}


def test_a_plan_makes_no_cyclic_collection_and_leaves_the_collector_on(project):
    """Nothing a plan builds is garbage before it is shown: each collection during it walked every object
    it had made so far, for nothing (a third of a warm plan's CPU time at 10,000 models)."""
    import gc

    from runner.ops.plan import plan
    from runner.project import Project as Engine

    keys = ", ".join(f"k{index}" for index in range(200))
    project.spec(f"""\
        defaults: {{provider: local, base_model: local/linear-ngram}}
        models:
          many:
            for_each: [{keys}]
            dataset: {{train: ../data/train.jsonl}}
        """)
    collections = []

    def counted(phase: str, info: dict) -> None:
        collections.append(phase)

    gc.callbacks.append(counted)
    try:
        the_plan, _ = plan(Engine.open(None, None))
    finally:
        gc.callbacks.remove(counted)
    assert len(the_plan.changes) == 200
    assert collections == []
    assert gc.isenabled()
