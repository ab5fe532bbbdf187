"""The plain data a spec becomes: what the user declared, defaults merged, templates expanded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DatasetSpec:
    """A model's dataset block as declared; the datasets room makes each file a DatasetRef."""

    train: Path  # absolute
    validation: Path | None
    input_key: str = "text_input"
    output_key: str = "output"
    allow_small: bool = False
    system_prompt: str = ""  # sent with every example (providers that take one declare it)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    provider: str
    base_model: str
    display_name: str
    description: str
    dataset: DatasetSpec
    hyperparameters: dict
    prevent_destroy: bool
    source: str  # "configs/a.yaml:12", where the model is declared
    eval_dataset: Path | None = None  # absolute; None means the validation set
    eval_consistency: bool = True
    gate: dict = field(default_factory=dict)  # {"min_accuracy": 0.85, "no_regression": true}
    ignore_changes: tuple[str, ...] = ()  # lifecycle.ignore_changes: attribute paths (the provider says which exist)
    keep_previous: int = 1  # replaced models kept for a $0 restore (lifecycle.keep_previous)


@dataclass(frozen=True)
class Move:
    """A `moved: [{from, to}]` entry: the model recorded as `old` is now declared as `new`."""

    old: str
    new: str
    source: str  # "configs/a.yaml:3", where the entry is written


@dataclass(frozen=True)
class Import:
    """An `import: [{to, id}]` entry: the declared model `name` adopts the existing tuned model `tuned_model_id`."""

    name: str
    tuned_model_id: str
    source: str  # "configs/a.yaml:3"


@dataclass
class Config:
    """Everything the config directory declares."""

    models: list[ModelSpec] = field(default_factory=list)
    providers: dict[str, dict] = field(default_factory=dict)  # provider name -> settings
    backend: dict = field(default_factory=dict)  # {"gcs": {"bucket": ..., "prefix": ...}} or {} for local
    budget: dict = field(default_factory=dict)  # {"max_plan_cost_usd": 50}
    moves: list[Move] = field(default_factory=list)  # every file's `moved:` entries
    imports: list[Import] = field(default_factory=list)  # every file's `import:` entries
    files: dict[str, str | None] = field(default_factory=dict)  # each spec file -> its stat_key before it was read
