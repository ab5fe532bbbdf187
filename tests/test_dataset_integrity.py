"""What is trained is what was planned: a dataset edited after the plan fails its job before anything is
submitted (the local provider, through the real trainer; gemini and vertex in their own test files)."""

from __future__ import annotations

import pytest

from runner.errors import DatasetChangedError
from runner.evaluate import evaluate_model
from runner.identity import Owner
from runner.providers.local import LocalProvider
from tests.conftest import edit_one_example_in_place, planned_model


def test_a_dataset_edited_in_place_after_a_saved_plan_is_seen_and_nothing_is_trained(project):
    assert project.run("plan", "--out", "tfplan.json").code == 0
    planned = planned_model("sentiment").train.sha256
    edit_one_example_in_place(project.root / "data" / "train.jsonl")  # same size, mtime and inode
    result = project.run("apply", "tfplan.json")
    assert result.code == 1
    assert "stale plan: configs or datasets changed since it was made" in result.err
    assert project.artifacts() == []  # nothing trained
    assert planned_model("sentiment").train.sha256 != planned  # and `tuner plan` again shows the new data


def test_the_local_provider_refuses_to_train_on_data_changed_since_the_plan(project):
    model = planned_model("sentiment")
    edit_one_example_in_place(project.root / "data" / "train.jsonl")
    provider = LocalProvider(project.models_dir())
    with pytest.raises(DatasetChangedError, match=r"^data/train.jsonl changed since it was planned"):
        provider.submit(model, "sentiment-abc", Owner("test-lineage", "default"))
    assert project.artifacts() == []


def test_an_eval_set_changed_since_the_plan_is_not_scored_as_the_planned_one(project):
    model = planned_model("sentiment")
    edit_one_example_in_place(project.root / "data" / "valid.jsonl")
    with pytest.raises(DatasetChangedError, match=r"^data/valid.jsonl changed since it was planned"):
        evaluate_model(model, lambda text: "positive")
