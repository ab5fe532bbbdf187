"""Desired state: each ModelSpec joined with its datasets' canonical hashes and its provider's defaults.

This is where spec and data meet: example-count rules, batch size, provider hyperparameter names and
provider limits are checked here, and every problem is collected before anything is reported.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from runner.datasets import DatasetSummary, Example, HashCache, open_examples, scan
from runner.errors import DatasetError, SpecError, TunerError
from runner.providers import Providers
from runner.spec import Config, ModelSpec

MIN_EXAMPLES = 50


@dataclass(frozen=True)
class DatasetInfo:
    path: str  # relative to the project root, as recorded in state
    sha256: str
    examples: int
    max_input_chars: int = 0
    max_output_chars: int = 0
    text_bytes: int = 0

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "examples": self.examples}


@dataclass(frozen=True)
class DesiredModel:
    name: str
    provider: str
    base_model: str
    display_name: str
    description: str
    train: DatasetInfo
    validation: DatasetInfo | None
    input_key: str
    output_key: str
    hyperparameters: dict  # provider defaults filled in, so writing a default explicitly changes nothing
    prevent_destroy: bool
    source: str
    root: Path = field(compare=False)
    eval_set: DatasetInfo | None = None  # what apply scores new models on: eval.dataset, else validation
    eval_consistency: bool = True
    gate: dict = field(default_factory=dict)

    @cached_property  # asked for by plan, apply and the plan file: computed once
    def fingerprint(self) -> str:
        return fingerprint(self.provider, self.base_model, self.hyperparameters, self.dataset_record())

    def dataset_record(self) -> dict:
        return {
            "train": self.train.to_dict(),
            "validation": self.validation.to_dict() if self.validation else None,
            "input_key": self.input_key,
            "output_key": self.output_key,
        }

    def attributes(self) -> dict:
        return model_attributes(self.provider, self.base_model, self.display_name, self.description,
                                self.hyperparameters, self.dataset_record(), self.prevent_destroy)

    def dataset_info(self, which: str) -> DatasetInfo:
        return {"train": self.train, "validation": self.validation, "eval": self.eval_set}[which]

    def examples(self, which: str = "train") -> Iterator[Example]:
        """The examples of one of its datasets, verified as they stream against the hash planned for it."""
        info = self.dataset_info(which)
        return open_examples(self.root / info.path, info.path, self.input_key, self.output_key, info.sha256)


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


def resolve(config: Config, root: Path, providers: Providers, cache: HashCache,
            allow_small_dataset: bool = False, scanner: DatasetScanner | None = None) -> Resolution:
    """Scan every dataset once (cache permitting) and build the desired models.

    Raises SpecError/DatasetError with every problem found; nothing is half-resolved.
    """
    scanner = scanner or DatasetScanner(root, cache)
    summaries, problems, warnings = scanner.results(config.models)
    models = []
    for spec in config.models:
        try:
            provider = providers[spec.provider]
        except TunerError as exc:
            problems.append(f"{spec.source}: models.{spec.name}.provider: {exc.message}")
            continue
        model_problems = _hyperparameter_problems(spec, provider)
        train = summaries.get((spec.dataset.train, spec.dataset.input_key, spec.dataset.output_key))
        keys = (spec.dataset.input_key, spec.dataset.output_key)
        validation = summaries.get((spec.dataset.validation, *keys)) if spec.dataset.validation else None
        eval_set = summaries.get((spec.eval_dataset, *keys)) if spec.eval_dataset else None
        missing = (spec.dataset.validation and validation is None) or (spec.eval_dataset and eval_set is None)
        if train is None or missing or model_problems:
            problems.extend(model_problems)
            continue
        hyperparameters = {**provider.capabilities.hyperparameter_defaults, **spec.hyperparameters}
        model = DesiredModel(
            name=spec.name, provider=spec.provider, base_model=spec.base_model,
            display_name=spec.display_name, description=spec.description,
            train=_info(spec.dataset.train, root, train),
            validation=_info(spec.dataset.validation, root, validation) if validation else None,
            input_key=spec.dataset.input_key, output_key=spec.dataset.output_key,
            hyperparameters=hyperparameters, prevent_destroy=spec.prevent_destroy,
            source=spec.source, root=root,
            eval_set=_info(spec.eval_dataset, root, eval_set) if eval_set else (
                _info(spec.dataset.validation, root, validation) if validation else None),
            eval_consistency=spec.eval_consistency, gate=spec.gate,
        )
        size_problems = _size_problems(spec, model, allow_small_dataset or spec.dataset.allow_small)
        problems.extend(p for p in size_problems if not p.startswith("warning: "))
        warnings.extend(p.removeprefix("warning: ") for p in size_problems if p.startswith("warning: "))
        provider_problems = [f"{spec.source}: models.{spec.name}: {p}" for p in provider.plan_problems(model)]
        problems.extend(provider_problems)
        if not provider_problems:
            models.append(model)
    cache.save()
    if problems:
        error_class = DatasetError if any(_is_dataset_problem(p) for p in problems) else SpecError
        raise error_class(problems, remedy="fix the problems above; nothing was submitted")
    return Resolution(models, sorted(set(warnings)))


def _is_dataset_problem(problem: str) -> bool:
    head = problem.split(":", 1)[0]
    return head.endswith((".jsonl", ".csv"))


PARALLEL_MIN_BYTES = 16 << 20  # below this, starting worker processes costs more than it saves


class DatasetScanner:
    """Scans the datasets that models name, each distinct (file, key mapping) once. The cache answers for
    files whose stat is unchanged; the rest are scanned on every core, starting while the specs are still
    being read: add() is called as each spec file is loaded, results() once all are."""

    def __init__(self, root: Path, cache: HashCache):
        self.root, self.cache = root, cache
        self._declared: set[tuple] = set()
        self._cache_keys: dict[tuple, str] = {}
        self._cached: dict[tuple, DatasetSummary] = {}
        self._missing: list[str] = []
        self._queued: list[tuple] = []  # to scan, not yet handed to a worker
        self._queued_bytes = 0
        self._futures: dict = {}
        self._pool = None

    def add(self, specs: list[ModelSpec]) -> None:
        for spec in specs:
            for path in (spec.dataset.train, spec.dataset.validation, spec.eval_dataset):
                if path is not None:
                    self._declare((path, spec.dataset.input_key, spec.dataset.output_key), spec)
        if self._pool is None and self._queued_bytes >= PARALLEL_MIN_BYTES and (os.cpu_count() or 1) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(os.cpu_count(), mp_context=multiprocessing.get_context("fork"))
        if self._pool is not None:
            for key in self._queued:
                self._futures[key] = self._pool.submit(_scan_one, self._job(key))
            self._queued.clear()

    def _declare(self, key: tuple, spec: ModelSpec) -> None:
        if key in self._declared:
            return
        self._declared.add(key)
        try:
            stat = os.stat(key[0])
        except (FileNotFoundError, NotADirectoryError):
            self._missing.append(f"{spec.source}: models.{spec.name}.dataset: {_relative(key[0], self.root)}: "
                                 f"file not found")
            return
        self._cache_keys[key] = self.cache.key(*key, stat=stat)
        summary = self.cache.get(self._cache_keys[key])
        if summary is not None:
            self._cached[key] = summary
        else:
            self._queued.append(key)
            self._queued_bytes += stat.st_size

    def _job(self, key: tuple) -> tuple:
        path, input_key, output_key = key
        return path, _relative(path, self.root), input_key, output_key

    def results(self, specs: list[ModelSpec]):
        """(summaries by key, problems, warnings) for every dataset the specs name; the workers stop."""
        self.add(specs)
        try:
            outcomes = {key: _scan_one(self._job(key)) for key in self._queued}
            outcomes |= {key: future.result() for key, future in self._futures.items()}
        finally:
            self.close()
        summaries, problems = dict(self._cached), list(self._missing)
        for key, outcome in outcomes.items():
            if isinstance(outcome, DatasetSummary):
                summaries[key] = outcome
                self.cache.put(self._cache_keys[key], outcome)
            else:
                problems.extend(outcome)
        warnings = [w for key in self._declared if key in summaries for w in summaries[key].warnings]
        return summaries, problems, warnings

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _scan_one(job: tuple) -> DatasetSummary | list[str]:
    path, display, input_key, output_key = job
    try:
        return scan(path, display, input_key, output_key)
    except DatasetError as exc:
        return exc.problems


def _info(path: Path, root: Path, summary: DatasetSummary) -> DatasetInfo:
    return DatasetInfo(_relative(path, root), summary.sha256, summary.examples, summary.max_input_chars,
                       summary.max_output_chars, summary.text_bytes)


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


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
        text = (f"{where}.dataset.train: {model.train.path} has {model.train.examples} examples; "
                f"at least {MIN_EXAMPLES} are needed for tuning to be worth paying for")
        if allow_small:
            problems.append(f"warning: {text} (allowed by allow_small)")
        else:
            problems.append(f"{text} (set dataset.allow_small: true or pass --allow-small-dataset to proceed)")
    batch_size = model.hyperparameters.get("batch_size")
    if batch_size is not None and batch_size > model.train.examples:
        problems.append(f"{where}.hyperparameters.batch_size: {batch_size} exceeds the {model.train.examples} "
                        f"training examples in {model.train.path}")
    return problems
