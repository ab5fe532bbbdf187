"""A model as its provider planned it (Terraform's PlanResourceChange response): the canonical attributes
plan compares and state records, the attribute paths whose change forces a new model, the job request apply
sends, and the training the provider expects to run. Plain data: no I/O, no provider call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from runner.attributes import fingerprint, model_attributes
from runner.datasets import DatasetRef


@dataclass(frozen=True)
class TrainingEstimate:
    """What the provider expects a job to run: cost estimates and job ordering read it, never a table in the core."""

    tokens: int  # in one pass over the training set
    epochs: int
    note: str = ""  # how the epochs were arrived at, when the spec did not say


@dataclass(frozen=True)
class PlannedModel:
    name: str
    provider: str
    base_model: str
    display_name: str
    description: str
    train: DatasetRef
    validation: DatasetRef | None
    input_key: str
    output_key: str
    hyperparameters: dict  # the provider's defaults filled in, so writing a default explicitly changes nothing
    prevent_destroy: bool
    source: str
    requires_replace: frozenset[str]  # top-level attribute paths whose change needs a new model
    estimate: TrainingEstimate
    eval_set: DatasetRef | None = None  # what apply scores new models on: eval.dataset, else validation
    eval_consistency: bool = True
    gate: dict = field(default_factory=dict)
    generation: int = 0  # a forced replacement's count (--replace): never part of the fingerprint
    ignore_changes: tuple[str, ...] = ()  # lifecycle.ignore_changes: attribute paths plan never shows as changes
    keep_previous: int = 1  # how many replaced models stay retained (restorable for $0)
    system_prompt: str = ""  # dataset.system_prompt: trained with every example and sent with every prediction

    @cached_property  # asked for by plan, apply and the plan file: computed once
    def fingerprint(self) -> str:
        return fingerprint(self.provider, self.base_model, self.hyperparameters, self.dataset_record())

    @property
    def job_key(self) -> str:
        """What providers derive tuned model ids from: the fingerprint, or for a forced replacement the fingerprint
        and its generation, so the new model never takes the id of the unchanged model it replaces."""
        if not self.generation:
            return self.fingerprint
        return hashlib.sha256(f"{self.fingerprint}\0replacement {self.generation}".encode()).hexdigest()

    @cached_property
    def attributes(self) -> dict:
        """The canonical `after`: what plan compares with state and what state records."""
        return model_attributes(self.provider, self.base_model, self.display_name, self.description,
                                self.hyperparameters, self.dataset_record(), self.prevent_destroy)

    @property
    def expected_work(self) -> int:
        """Examples x the epochs the provider expects: apply starts the longest jobs first."""
        return self.train.examples * self.estimate.epochs

    def dataset_record(self) -> dict:
        return {
            "train": self.train.record(),
            "validation": self.validation.record() if self.validation else None,
            "input_key": self.input_key,
            "output_key": self.output_key,
            **({"system_prompt": self.system_prompt} if self.system_prompt else {}),
        }

    def dataset(self, which: str) -> DatasetRef:
        """One of its datasets by role: train, validation or eval."""
        return {"train": self.train, "validation": self.validation, "eval": self.eval_set}[which]

    def to_record(self) -> dict:
        """The job request as a saved plan records it: all apply executes, paths relative to the project root.
        Not where the spec declares it (`source`): moving a declaration changes nothing to run."""
        return {
            "name": self.name, "provider": self.provider, "base_model": self.base_model,
            "display_name": self.display_name, "description": self.description,
            "datasets": {role: _ref_record(ref) for role, ref in
                         (("train", self.train), ("validation", self.validation), ("eval", self.eval_set))},
            "input_key": self.input_key, "output_key": self.output_key,
            "hyperparameters": dict(self.hyperparameters), "prevent_destroy": self.prevent_destroy,
            "requires_replace": sorted(self.requires_replace),
            "estimate": {"tokens": self.estimate.tokens, "epochs": self.estimate.epochs, "note": self.estimate.note},
            "eval_consistency": self.eval_consistency, "gate": dict(self.gate), "generation": self.generation,
            "ignore_changes": list(self.ignore_changes), "keep_previous": self.keep_previous,
            "system_prompt": self.system_prompt,
        }

    @classmethod
    def from_record(cls, record: dict, root: Path) -> PlannedModel:
        """A record to_record wrote (a saved plan checks it equals a fresh plan's before this is called)."""
        datasets = {role: _ref(ref, root) for role, ref in record["datasets"].items()}
        return cls(
            name=record["name"], provider=record["provider"], base_model=record["base_model"],
            display_name=record["display_name"], description=record["description"], train=datasets["train"],
            validation=datasets["validation"], input_key=record["input_key"], output_key=record["output_key"],
            hyperparameters=dict(record["hyperparameters"]), prevent_destroy=record["prevent_destroy"],
            source="(saved plan)", requires_replace=frozenset(record["requires_replace"]),
            estimate=TrainingEstimate(**record["estimate"]), eval_set=datasets["eval"],
            eval_consistency=record["eval_consistency"], gate=dict(record["gate"]),
            generation=record.get("generation", 0), ignore_changes=tuple(record.get("ignore_changes", ())),
            keep_previous=record.get("keep_previous", 1), system_prompt=record.get("system_prompt", ""),
        )


def _ref_record(ref: DatasetRef | None) -> dict | None:
    """What reading and checking a dataset needs; not its stat, which only answers the hash cache."""
    if ref is None:
        return None
    return {"path": ref.display, "input_key": ref.input_key, "output_key": ref.output_key, "sha256": ref.sha256,
            "examples": ref.examples, "max_input_chars": ref.max_input_chars,
            "max_output_chars": ref.max_output_chars, "text_bytes": ref.text_bytes}


def _ref(record: dict | None, root: Path) -> DatasetRef | None:
    if record is None:
        return None
    fields = {key: value for key, value in record.items() if key != "path"}
    return DatasetRef(root / record["path"], record["path"], stat="", **fields)

