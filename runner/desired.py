"""Desired state: each ModelSpec joined with its datasets' refs and planned by its provider.

This is where spec and data meet: the datasets room hashes the files, each model's provider plans it
(defaults, accepted keys, limits: runner.providers.base.plan_model), tuner's own example-count rule is
checked here, and every problem is collected before anything is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runner.datasets import DatasetScanner
from runner.errors import DatasetError, SpecError, TunerError
from runner.planned import PlannedModel
from runner.providers import Providers
from runner.providers.planning import ModelDatasets
from runner.spec import Config, ModelSpec

MIN_EXAMPLES = 50


@dataclass
class Resolution:
    models: list[PlannedModel]
    warnings: list[str]
    datasets: dict[str, str] = field(default_factory=dict)  # each dataset file -> its stat_key before it was read


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
        datasets = _datasets(spec, refs)
        response = provider.plan(spec, datasets)
        problems.extend(response.problems)
        if datasets is not None:
            size = _size_problems(spec, datasets, allow_small_dataset or spec.dataset.allow_small)
            problems.extend(p for p in size if not p.startswith("warning: "))
            warnings.extend(p.removeprefix("warning: ") for p in size if p.startswith("warning: "))
        if response.model is not None:
            models.append(response.model)
    if problems:
        error_class = DatasetError if any(_is_dataset_problem(p) for p in problems) else SpecError
        raise error_class(problems, remedy="fix the problems above; nothing was submitted")
    return Resolution(models, sorted(set(warnings)), {str(ref.path): ref.stat for ref in refs.values()})


def _is_dataset_problem(problem: str) -> bool:
    head = problem.split(":", 1)[0]
    return head.endswith((".jsonl", ".csv"))


def _datasets(spec: ModelSpec, refs: dict) -> ModelDatasets | None:
    """The spec's refs, or None when one of its files could not be read (the scanner said why)."""
    keys = (spec.dataset.input_key, spec.dataset.output_key)
    train = refs.get((spec.dataset.train, *keys))
    validation = refs.get((spec.dataset.validation, *keys)) if spec.dataset.validation else None
    eval_set = refs.get((spec.eval_dataset, *keys)) if spec.eval_dataset else None
    missing = (spec.dataset.validation and validation is None) or (spec.eval_dataset and eval_set is None)
    return None if train is None or missing else ModelDatasets(train, validation, eval_set)


def _size_problems(spec: ModelSpec, datasets: ModelDatasets, allow_small: bool) -> list[str]:
    train = datasets.train
    if train.examples >= MIN_EXAMPLES:
        return []
    text = (f"{spec.source}: models.{spec.name}.dataset.train: {train.display} has {train.examples} examples; "
            f"at least {MIN_EXAMPLES} are needed for tuning to be worth paying for")
    if allow_small:
        return [f"warning: {text} (allowed by allow_small)"]
    return [f"{text} (set dataset.allow_small: true or pass --allow-small-dataset to proceed)"]
