"""Desired state: each ModelSpec joined with its datasets' canonical hashes and its provider's defaults.

This is where spec and data meet: example-count rules, batch size, provider hyperparameter names and
provider limits are checked here, and every problem is collected before anything is reported.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property

from runner.datasets import DatasetRef, DatasetScanner
from runner.errors import DatasetError, SpecError, TunerError
from runner.providers import Providers
from runner.spec import Config, ModelSpec

MIN_EXAMPLES = 50


@dataclass(frozen=True)
class DesiredModel:
    name: str
    provider: str
    base_model: str
    display_name: str
    description: str
    train: DatasetRef
    validation: DatasetRef | None
    input_key: str
    output_key: str
    hyperparameters: dict  # provider defaults filled in, so writing a default explicitly changes nothing
    prevent_destroy: bool
    source: str
    eval_set: DatasetRef | None = None  # what apply scores new models on: eval.dataset, else validation
    eval_consistency: bool = True
    gate: dict = field(default_factory=dict)

    @cached_property  # asked for by plan, apply and the plan file: computed once
    def fingerprint(self) -> str:
        return fingerprint(self.provider, self.base_model, self.hyperparameters, self.dataset_record())

    def dataset_record(self) -> dict:
        return {
            "train": self.train.record(),
            "validation": self.validation.record() if self.validation else None,
            "input_key": self.input_key,
            "output_key": self.output_key,
        }

    def attributes(self) -> dict:
        return model_attributes(self.provider, self.base_model, self.display_name, self.description,
                                self.hyperparameters, self.dataset_record(), self.prevent_destroy)

    def dataset(self, which: str) -> DatasetRef:
        """One of its datasets by role: train, validation or eval."""
        return {"train": self.train, "validation": self.validation, "eval": self.eval_set}[which]


def fingerprint(provider: str, base_model: str, hyperparameters: dict, dataset: dict) -> str:
    """What makes a tuned model what it is: change any of it and a new model must be tuned."""
    validation = dataset.get("validation")
    identity = {
        "provider": provider,
        "base_model": base_model,
        "train": dataset["train"]["sha256"],
        "validation": validation["sha256"] if validation else None,
        "input_key": dataset["input_key"],
        "output_key": dataset["output_key"],
        "hyperparameters": hyperparameters,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def model_attributes(provider: str, base_model: str, display_name: str, description: str,
                     hyperparameters: dict, dataset: dict, prevent_destroy: bool) -> dict:
    """The attributes plan compares, shared by desired models and recorded instances."""
    validation = dataset.get("validation")
    return {
        "provider": provider,
        "base_model": base_model,
        "display_name": display_name,
        "description": description,
        "hyperparameters": dict(hyperparameters),
        "dataset": {
            "train": dataset["train"]["sha256"],
            "validation": validation["sha256"] if validation else None,
            "input_key": dataset["input_key"],
            "output_key": dataset["output_key"],
        },
        "lifecycle": {"prevent_destroy": prevent_destroy},
    }


@dataclass
class Resolution:
    models: list[DesiredModel]
    warnings: list[str]


def resolve(config: Config, providers: Providers, scanner: DatasetScanner,
            allow_small_dataset: bool = False) -> Resolution:
    """Build the desired models from the specs and the refs the scanner returns for their datasets.

    Raises SpecError/DatasetError with every problem found; nothing is half-resolved.
    """
    refs, problems, warnings = scanner.results(config.models)
    models = []
    for spec in config.models:
        try:
            provider = providers[spec.provider]
        except TunerError as exc:
            problems.append(f"{spec.source}: models.{spec.name}.provider: {exc.message}")
            continue
        model_problems = _hyperparameter_problems(spec, provider)
        keys = (spec.dataset.input_key, spec.dataset.output_key)
        train = refs.get((spec.dataset.train, *keys))
        validation = refs.get((spec.dataset.validation, *keys)) if spec.dataset.validation else None
        eval_set = refs.get((spec.eval_dataset, *keys)) if spec.eval_dataset else None
        missing = (spec.dataset.validation and validation is None) or (spec.eval_dataset and eval_set is None)
        if train is None or missing or model_problems:
            problems.extend(model_problems)
            continue
        hyperparameters = {**provider.capabilities.hyperparameter_defaults, **spec.hyperparameters}
        model = DesiredModel(
            name=spec.name, provider=spec.provider, base_model=spec.base_model,
            display_name=spec.display_name, description=spec.description,
            train=train, validation=validation,
            input_key=spec.dataset.input_key, output_key=spec.dataset.output_key,
            hyperparameters=hyperparameters, prevent_destroy=spec.prevent_destroy, source=spec.source,
            eval_set=eval_set or validation, eval_consistency=spec.eval_consistency, gate=spec.gate,
        )
        size_problems = _size_problems(spec, model, allow_small_dataset or spec.dataset.allow_small)
        problems.extend(p for p in size_problems if not p.startswith("warning: "))
        warnings.extend(p.removeprefix("warning: ") for p in size_problems if p.startswith("warning: "))
        provider_problems = [f"{spec.source}: models.{spec.name}: {p}" for p in provider.plan_problems(model)]
        problems.extend(provider_problems)
        if not provider_problems:
            models.append(model)
    if problems:
        error_class = DatasetError if any(_is_dataset_problem(p) for p in problems) else SpecError
        raise error_class(problems, remedy="fix the problems above; nothing was submitted")
    return Resolution(models, sorted(set(warnings)))


def _is_dataset_problem(problem: str) -> bool:
    head = problem.split(":", 1)[0]
    return head.endswith((".jsonl", ".csv"))


def _hyperparameter_problems(spec: ModelSpec, provider) -> list[str]:
    caps = provider.capabilities
    problems = []
    for key in spec.hyperparameters:
        if key in caps.refused_hyperparameters:
            problems.append(f"{spec.source}: models.{spec.name}.hyperparameters.{key}: "
                            f"{caps.refused_hyperparameters[key]}")
        elif key not in caps.hyperparameter_defaults:
            accepted = ", ".join(sorted(caps.hyperparameter_defaults))
            problems.append(f"{spec.source}: models.{spec.name}.hyperparameters.{key}: not accepted by provider "
                            f"{spec.provider} (accepted: {accepted})")
    return problems


def _size_problems(spec: ModelSpec, model: DesiredModel, allow_small: bool) -> list[str]:
    problems = []
    where = f"{spec.source}: models.{spec.name}"
    if model.train.examples < MIN_EXAMPLES:
        text = (f"{where}.dataset.train: {model.train.display} has {model.train.examples} examples; "
                f"at least {MIN_EXAMPLES} are needed for tuning to be worth paying for")
        if allow_small:
            problems.append(f"warning: {text} (allowed by allow_small)")
        else:
            problems.append(f"{text} (set dataset.allow_small: true or pass --allow-small-dataset to proceed)")
    batch_size = model.hyperparameters.get("batch_size")
    if batch_size is not None and batch_size > model.train.examples:
        problems.append(f"{where}.hyperparameters.batch_size: {batch_size} exceeds the {model.train.examples} "
                        f"training examples in {model.train.display}")
    return problems
