"""Plan time, the part every provider shares (Terraform's PlanResourceChange): a provider declares its
hyperparameter rules, its estimate and its limits; plan_model turns a spec and its dataset refs into the
PlannedModel, or into every problem found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.datasets import DatasetRef
from runner.planned import PlannedModel, TrainingEstimate
from runner.providers.base import ObservedModel

if TYPE_CHECKING:
    from runner.spec import ModelSpec

# Token estimate: Google documents "a token is equivalent to about 4 characters" for Gemini models
# (https://ai.google.dev/gemini-api/docs/tokens). No Gemini tokenizer is available offline, so this rule
# of thumb is all a plan can use without calling the API.
CHARS_PER_TOKEN = 4
TOKENS_PER_EXAMPLE = 4  # role/turn framing around each (input, output) pair

# Every attribute but these needs a new model: what each provider's plan declares as requires_replace today.
REPLACED_UNLESS_RENAMED = frozenset({"provider", "base_model", "hyperparameters", "dataset"})


@dataclass(frozen=True)
class Hyperparameters:
    """The hyperparameters a provider accepts (with the value it uses when a spec omits one) and those it refuses."""

    defaults: dict  # accepted key -> value used when the spec omits it (None: the provider decides at run time)
    refused: dict = field(default_factory=dict)  # key -> why it is refused, what to use instead

    def problems(self, spec: ModelSpec) -> list[str]:
        problems = []
        for key in spec.hyperparameters:
            where = f"{spec.source}: models.{spec.name}.hyperparameters.{key}"
            if key in self.refused:
                problems.append(f"{where}: {self.refused[key]}")
            elif key not in self.defaults:
                problems.append(f"{where}: not accepted by provider {spec.provider} "
                                f"(accepted: {', '.join(sorted(self.defaults))})")
        return problems


@dataclass(frozen=True)
class ModelDatasets:
    """The refs the datasets room returned for one spec's train, validation and eval files."""

    train: DatasetRef
    validation: DatasetRef | None
    eval_set: DatasetRef | None


@dataclass(frozen=True)
class PlanResponse:
    """A provider's answer to plan (Terraform's PlanResourceChangeResponse): the planned model, or every problem."""

    model: PlannedModel | None
    problems: list[str]


def plan_model(spec: ModelSpec, datasets: ModelDatasets | None, hyperparameters: Hyperparameters,
               estimate: Callable[[dict, DatasetRef], TrainingEstimate], limits: Callable[[PlannedModel], list[str]],
               requires_replace: frozenset[str] = REPLACED_UNLESS_RENAMED,
               takes_system_prompt: bool = False) -> PlanResponse:
    """The planning every provider shares: its hyperparameter rules, its defaults filled in, the batch size
    against the examples (where it takes one), then its own limits. datasets is None when one of the spec's
    files could not be read (the datasets room reported why): only the spec's own keys are checked then."""
    problems = hyperparameters.problems(spec)
    if spec.dataset.system_prompt and not takes_system_prompt:
        problems.append(f"{spec.source}: models.{spec.name}.dataset.system_prompt: provider {spec.provider} "
                        f"trains on input/output pairs without a system prompt; remove it")
    if datasets is None or problems:
        return PlanResponse(None, problems)
    values = {**hyperparameters.defaults, **spec.hyperparameters}
    model = PlannedModel(
        name=spec.name, provider=spec.provider, base_model=spec.base_model, display_name=spec.display_name,
        description=spec.description, train=datasets.train, validation=datasets.validation,
        input_key=spec.dataset.input_key, output_key=spec.dataset.output_key, hyperparameters=values,
        prevent_destroy=spec.prevent_destroy, source=spec.source, requires_replace=requires_replace,
        estimate=estimate(values, datasets.train), eval_set=datasets.eval_set or datasets.validation,
        eval_consistency=spec.eval_consistency, gate=spec.gate, ignore_changes=spec.ignore_changes,
        keep_previous=spec.keep_previous, system_prompt=spec.dataset.system_prompt)
    problems = _batch_size_problems(spec, model) + _ignore_changes_problems(spec, model) + \
        [f"{spec.source}: models.{spec.name}: {p}" for p in limits(model)]
    return PlanResponse(None if problems else model, problems)


def estimate_tokens(text_bytes: int, examples: int) -> int:
    """Tokens in one pass over a dataset: ceil(text_bytes / 4) + 4 per example.

    No Gemini tokenizer is available offline (counting exactly needs the API's count_tokens call), so
    this uses Google's published rule of thumb, "a token is equivalent to about 4 characters"
    (https://ai.google.dev/gemini-api/docs/tokens), plus 4 tokens per example for the user/model turn
    framing (our allowance, not a published figure). It counts UTF-8 bytes, which equal characters for
    ASCII and exceed them for other scripts. The rule is for English text; code and other languages
    tokenize differently, so treat the result as an estimate: the provider's bill is the truth.
    """
    if text_bytes < 0 or examples < 0:
        raise ValueError(f"text_bytes and examples must be >= 0, got {text_bytes} and {examples}")
    return -(-text_bytes // CHARS_PER_TOKEN) + TOKENS_PER_EXAMPLE * examples


def _batch_size_problems(spec: ModelSpec, model: PlannedModel) -> list[str]:
    batch_size = model.hyperparameters.get("batch_size")
    if batch_size is None or batch_size <= model.train.examples:
        return []
    return [f"{spec.source}: models.{spec.name}.hyperparameters.batch_size: {batch_size} exceeds the "
            f"{model.train.examples} training examples in {model.train.display}"]


def _ignore_changes_problems(spec: ModelSpec, model: PlannedModel) -> list[str]:
    """Each ignored path must be an attribute the provider planned (its hyperparameters included)."""
    if not spec.ignore_changes:
        return []  # nearly every model: its attribute paths are not listed for nothing
    known = set(_paths(model.attributes))
    return [f"{spec.source}: models.{spec.name}.lifecycle.ignore_changes: {path!r} is not an attribute of "
            f"{spec.provider} models (attributes: {', '.join(sorted(known))})"
            for path in spec.ignore_changes if path not in known]


def _paths(attributes: dict, prefix: str = ""):
    for key, value in attributes.items():
        yield prefix + key
        if isinstance(value, dict):
            yield from _paths(value, f"{prefix}{key}.")


def imported_attributes(planned: PlannedModel, seen: ObservedModel, base_model: str | None = None) -> dict:
    """The attributes an imported model is recorded with: what the provider reports of it (its base model as
    `base_model` when the provider spells it another way), the rest from its planned model; providers do not
    report training data, so the spec's dataset hashes are recorded."""
    return {"tuned_model_id": seen.tuned_model_id, "base_model": base_model or seen.base_model or planned.base_model,
            "hyperparameters": {**planned.hyperparameters, **seen.hyperparameters},
            "display_name": seen.held("display_name", planned.display_name),
            "description": seen.held("description", planned.description)}
