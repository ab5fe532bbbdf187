"""A model as its provider planned it (Terraform's PlanResourceChange response): the canonical attributes
plan compares and state records, the attribute paths whose change forces a new model, the job request apply
sends, and the training the provider expects to run. Plain data: no I/O, no provider call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from runner.attributes import fingerprint, model_attributes
from runner.datasets import DatasetRef


@dataclass(frozen=True)
class TrainingEstimate:
    """What the provider expects a job to run: cost estimates and job ordering read it, never a table in the core."""

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

    @cached_property  # asked for by plan, apply and the plan file: computed once
    def fingerprint(self) -> str:
        return fingerprint(self.provider, self.base_model, self.hyperparameters, self.dataset_record())

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
        }

    def dataset(self, which: str) -> DatasetRef:
        """One of its datasets by role: train, validation or eval."""
        return {"train": self.train, "validation": self.validation, "eval": self.eval_set}[which]

