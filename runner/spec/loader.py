"""Read every spec file, validate it against schemas/spec.schema.json, merge defaults, expand for_each."""

from __future__ import annotations

import copy
import difflib
import json
import re
from functools import lru_cache
from pathlib import Path

from runner.errors import SpecError
from runner.spec.model import Config, DatasetRef, ModelSpec
from runner.spec.yamlsource import YamlDocument, dotted, load_yaml

MODEL_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "spec.schema.json"
DEFAULT_PROVIDER = "local"
_UNKNOWN_KEY = re.compile(r"\('(?P<key>[^']*)' was unexpected\)|'(?P<key2>[^']*)' (?:was|were) unexpected")


@lru_cache(maxsize=1)
def _validator():
    import jsonschema  # imported lazily: plan start-up time matters

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def load_config(config_dir: Path, root: Path) -> Config:
    """Load all *.yaml/*.yml under config_dir. Raises SpecError listing every problem found."""
    if not config_dir.is_dir():
        raise SpecError([f"{_display(config_dir, root)}: config directory not found"],
                        remedy="run from the project root or pass --config DIR")
    files = sorted(p for p in config_dir.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    config = Config(files=files)
    problems: list[str] = []
    declared: dict[str, str] = {}  # model name -> where it was declared
    provider_sources: dict[str, str] = {}
    for path in files:
        try:
            doc = load_yaml(path, _display(path, root))
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        if doc.data is None:
            continue
        file_problems = _schema_problems(doc)
        if file_problems:
            problems.extend(file_problems)
            continue
        for name, (spec_problems, spec) in _models_of(doc, root).items():
            problems.extend(spec_problems)
            if name in declared:
                problems.append(f"{spec.source if spec else doc.display}: models.{name}: "
                                f"declared twice (also at {declared[name]})")
            elif spec is not None:
                declared[name] = spec.source
                config.models.append(spec)
        if "budget" in doc.data:
            config.budget = doc.data["budget"] or {}
        if "backend" in doc.data:
            where = doc.where(("backend",))
            if "backend" in provider_sources:
                problems.append(f"{where}: backend: configured twice (also at {provider_sources['backend']})")
            provider_sources["backend"] = where
            config.backend = doc.data["backend"] or {}
        for provider, settings in (doc.data.get("providers") or {}).items():
            where = doc.where(("providers", provider))
            if provider in provider_sources:
                problems.append(f"{where}: providers.{provider}: configured twice "
                                f"(also at {provider_sources[provider]})")
            provider_sources[provider] = where
            config.providers[provider] = settings or {}
    if problems:
        raise SpecError(problems)
    config.models.sort(key=lambda m: m.name)
    return config


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def _schema_problems(doc: YamlDocument) -> list[str]:
    if not isinstance(doc.data, dict):
        return [f"{doc.display}:1: a spec file must be a mapping with 'models' (and optional "
                f"'defaults', 'providers'), not {type(doc.data).__name__}"]
    problems = []
    for error in sorted(_validator().iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(_describe(error, doc))
    return sorted(set(problems), key=problems.index)


def _describe(error, doc: YamlDocument) -> str:
    """One schema error as `file:line: field.path: reason`, pointing at the offending key itself."""
    from jsonschema.exceptions import best_match

    while error.validator in ("oneOf", "anyOf") and error.context:
        error = best_match(error.context)
    path = tuple(error.absolute_path)
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        match = _UNKNOWN_KEY.search(error.message)
        key = match and (match.group("key") or match.group("key2"))
        if key:
            allowed = sorted(_allowed_keys(error.schema))
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f" (allowed: {', '.join(allowed)})" if allowed else ""
            return f"{doc.where(path + (key,))}: {dotted(path + (key,))}: unknown key{hint}"
    if "propertyNames" in error.schema_path:
        key = error.instance
        return (f"{doc.where(path + (key,))}: {dotted(path + (key,))}: invalid name {key!r}: "
                f"use lowercase letters, digits and '-', start with a letter, at most 32 characters")
    field = dotted(path) or "(top level)"
    return f"{doc.where(path)}: {field}: {error.message}"


def _allowed_keys(schema: dict) -> set[str]:
    keys = set(schema.get("properties", {}))
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        keys |= _allowed_keys(_validator().schema["$defs"][ref.rsplit("/", 1)[1]])
    return keys


def _models_of(doc: YamlDocument, root: Path) -> dict[str, tuple[list[str], ModelSpec | None]]:
    defaults = doc.data.get("defaults") or {}
    result: dict[str, tuple[list[str], ModelSpec | None]] = {}
    for entry_name, entry in (doc.data.get("models") or {}).items():
        entry = entry or {}
        for name, fields in _expand(entry_name, entry):
            merged = _deep_merge(defaults, fields)
            result[name] = _build(name, merged, doc, ("models", entry_name), root)
    return result


def _expand(entry_name: str, entry: dict):
    """An entry without for_each is one model; with it, one model per key named <entry>-<key>."""
    if "for_each" not in entry:
        yield entry_name, entry
        return
    template = {k: v for k, v in entry.items() if k != "for_each"}
    keys = entry["for_each"]
    overrides = keys if isinstance(keys, dict) else {key: None for key in keys}
    for key, override in overrides.items():
        fields = _deep_merge(template, override or {})
        yield f"{entry_name}-{key}", _substitute(fields, key)


def _substitute(value, key: str):
    if isinstance(value, str):
        return value.replace("${key}", key)
    if isinstance(value, dict):
        return {k: _substitute(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, key) for v in value]
    return value


def _deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _build(name: str, fields: dict, doc: YamlDocument, at: tuple, root: Path) -> tuple[list[str], ModelSpec | None]:
    where = doc.where(at)
    problems = []
    if not MODEL_NAME.match(name):
        problems.append(f"{where}: models.{name}: invalid name: use lowercase letters, digits and '-', "
                        f"start with a letter, at most 32 characters")
    dataset = fields.get("dataset") or {}
    for required, value in (("base_model", fields.get("base_model")), ("dataset.train", dataset.get("train"))):
        if not value:
            problems.append(f"{where}: models.{name}.{required}: required (set it here or under defaults)")
    train = validation = None
    if dataset.get("train"):
        train, problem = _resolve(dataset["train"], doc, at + ("dataset", "train"), root, f"{name}.dataset.train")
        problems += problem
    if dataset.get("validation"):
        validation, problem = _resolve(dataset["validation"], doc, at + ("dataset", "validation"), root,
                                       f"{name}.dataset.validation")
        problems += problem
    evaluation = fields.get("eval") or {}
    eval_dataset = None
    if evaluation.get("dataset"):
        eval_dataset, problem = _resolve(evaluation["dataset"], doc, (*at, "eval", "dataset"), root,
                                         f"{name}.eval.dataset")
        problems += problem
    if problems:
        return problems, None
    spec = ModelSpec(
        name=name,
        provider=fields.get("provider", DEFAULT_PROVIDER),
        base_model=fields["base_model"],
        display_name=fields.get("display_name", name),
        description=fields.get("description", ""),
        dataset=DatasetRef(
            train=train,
            validation=validation,
            input_key=dataset.get("input_key", "text_input"),
            output_key=dataset.get("output_key", "output"),
            allow_small=bool(dataset.get("allow_small", False)),
        ),
        hyperparameters=dict(fields.get("hyperparameters") or {}),
        prevent_destroy=bool((fields.get("lifecycle") or {}).get("prevent_destroy", False)),
        source=where,
        eval_dataset=eval_dataset,
        eval_consistency=bool(evaluation.get("consistency", True)),
        gate=dict(fields.get("gate") or {}),
    )
    return [], spec


def _origin(doc: YamlDocument, at: tuple) -> tuple:
    """Where a merged value was written: in the model entry itself, or else under defaults."""
    inherited = ("defaults", *at[2:])
    return at if at in doc.lines or inherited not in doc.lines else inherited


def _resolve(value: str, doc: YamlDocument, at: tuple, root: Path, field: str):
    """A dataset path relative to its YAML file; refused when it leaves the project root."""
    at = _origin(doc, at)
    if "\x00" in value:
        return None, [f"{doc.where(at)}: models.{field}: NUL character in a path"]
    resolved = (doc.path.parent / value).resolve()
    if not resolved.is_relative_to(root):
        return None, [f"{doc.where(at)}: models.{field}: {value} resolves to {resolved}, "
                      f"outside the project root {root}"]
    return resolved, []
