"""Each provider plans its models (runner.providers.base.plan_model): defaults, accepted keys, limits, the
attributes that force replacement and the training it expects. Pure: hand-built specs and dataset refs."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cost import load_pricing, training_cost_for
from runner.planned import TrainingEstimate
from runner.providers.base import ObservedModel
from runner.providers.gemini import GeminiProvider
from runner.providers.local import LocalProvider
from runner.providers.planning import ModelDatasets
from runner.providers.vertex import VertexProvider
from runner.spec import DatasetSpec, ModelSpec

VERTEX_SETTINGS = {"project": "p", "staging_bucket": "gs://b"}


def ref(examples: int = 200, sha: str = "a" * 64):
    from runner.datasets import DatasetRef

    return DatasetRef(Path("/data/train.jsonl"), "data/train.jsonl", "text_input", "output", "1|2|3|4", sha,
                      examples, max_input_chars=10, max_output_chars=5, text_bytes=20_000)


def spec(provider: str, base_model: str = "gemini-2.5-flash", **hyperparameters) -> ModelSpec:
    return ModelSpec(name="reviews", provider=provider, base_model=base_model, display_name="Reviews",
                     description="", dataset=DatasetSpec(Path("/data/train.jsonl"), None),
                     hyperparameters=hyperparameters, prevent_destroy=False, source="configs/a.yaml:3")


def providers():
    return {"gemini": GeminiProvider({}, environ={}), "local": LocalProvider(Path("/nowhere")),
            "vertex": VertexProvider(VERTEX_SETTINGS, environ={})}


@pytest.mark.parametrize("name", ["gemini", "local", "vertex"])
def test_every_provider_plans_renames_in_place_and_everything_else_as_a_replacement(name):
    base = "local/linear-ngram" if name == "local" else "gemini-2.5-flash"

    response = providers()[name].plan(spec(name, base), ModelDatasets(ref(), None, None))

    assert response.problems == []
    assert response.model.requires_replace == {"provider", "base_model", "hyperparameters", "dataset"}
    assert set(response.model.attributes) - response.model.requires_replace == {"display_name", "description",
                                                                                 "lifecycle"}


def test_the_provider_fills_its_defaults_so_writing_a_default_changes_nothing():
    gemini = providers()["gemini"]
    implicit = gemini.plan(spec("gemini"), ModelDatasets(ref(), None, None)).model
    explicit = gemini.plan(spec("gemini", epoch_count=5, batch_size=4), ModelDatasets(ref(), None, None)).model

    assert implicit.hyperparameters == {"epoch_count": 5, "batch_size": 4, "learning_rate": 0.001}
    assert implicit.fingerprint == explicit.fingerprint


def test_an_unset_vertex_epoch_count_is_estimated_as_one_epoch_and_the_cost_says_so():
    model = providers()["vertex"].plan(spec("vertex"), ModelDatasets(ref(), None, None)).model

    assert model.estimate.epochs == 1 and "1 epoch is assumed" in model.estimate.note
    estimate = training_cost_for(model, load_pricing())
    assert estimate.epochs == 1 and "1 epoch is assumed" in estimate.note


def test_the_estimate_runs_the_epochs_the_spec_sets():
    model = providers()["gemini"].plan(spec("gemini", epoch_count=3), ModelDatasets(ref(), None, None)).model

    assert model.estimate == TrainingEstimate(20_000 // 4 + 4 * 200, 3)  # about 4 characters a token
    assert model.expected_work == 200 * 3


def test_batch_size_above_the_example_count_is_refused_by_providers_that_take_one():
    response = providers()["local"].plan(spec("local", "local/linear-ngram", batch_size=64),
                                         ModelDatasets(ref(examples=60), None, None))

    assert response.model is None
    assert response.problems == ["configs/a.yaml:3: models.reviews.hyperparameters.batch_size: 64 exceeds the 60 "
                                 "training examples in data/train.jsonl"]


def test_refused_and_unknown_keys_are_reported_even_when_a_dataset_could_not_be_read():
    response = providers()["vertex"].plan(spec("vertex", batch_size=8, warmup=3), None)

    assert response.model is None
    assert [p.split(": ", 2)[1] for p in response.problems] == ["models.reviews.hyperparameters.batch_size",
                                                                "models.reviews.hyperparameters.warmup"]


def test_gemini_records_an_imported_base_model_as_the_spec_spells_it():
    gemini = providers()["gemini"]
    planned = gemini.plan(spec("gemini", "gemini-1.5-flash-001-tuning"), ModelDatasets(ref(), None, None)).model
    seen = ObservedModel("tunedModels/x", "X", "", "active", "models/gemini-1.5-flash-001-tuning", {"epoch_count": 9})

    imported = gemini.import_attributes(planned, seen)

    assert imported["base_model"] == "gemini-1.5-flash-001-tuning"
    assert imported["hyperparameters"] == {"epoch_count": 9, "batch_size": 4, "learning_rate": 0.001}


def test_fingerprints_are_those_recorded_before_the_provider_planned_the_model():
    """The value the pre-change code computed for the same spec and data: a moved fingerprint would plan every
    existing model for replacement, that is, retrain it."""
    local = providers()["local"]

    model = local.plan(spec("local", "local/linear-ngram", epoch_count=2), ModelDatasets(ref(60), None, None)).model

    assert model.fingerprint == "6f0cfdf4ad6da1d25b0c8eedc862fcadd13d36a778332bdc78c389e8a0a9812c"
