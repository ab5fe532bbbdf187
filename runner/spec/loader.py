"""Read every spec file, validate it against schemas/spec.schema.json, merge defaults, expand for_each."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from runner.errors import Problem, SpecError
from runner.fsutil import file_stat
from runner.identity import MODEL_NAME
from runner.shipped import schema_path
from runner.spec.model import Config, DatasetSpec, Import, ModelSpec, Move
from runner.spec.yamlsource import YamlDocument, dotted, load_yaml

if TYPE_CHECKING:
    from runner.workers import Workers

SCHEMA_PATH = schema_path("spec")
DEFAULT_PROVIDER = "local"
DEFAULT_KEEP_PREVIOUS = 1  # one replaced model kept: a revert of the last change restores it for $0
# Spec files are read on the workers when the unread ones hold at least this much text (parsing and checking
# cost ~1.3 ms per KB: 64 KB ~ 0.08 s, several times what starting the workers costs), READ_AHEAD at a time.
PARALLEL_SPEC_BYTES, READ_AHEAD = 64 << 10, 4
_UNKNOWN_KEY = re.compile(r"\('(?P<key>[^']*)' was unexpected\)|'(?P<key2>[^']*)' (?:was|were) unexpected")


@lru_cache(maxsize=1)
def _validator():
    import jsonschema  # imported lazily: plan start-up time matters

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


@lru_cache(maxsize=1)
def _acceptor():
    """A validator of the same schema with its $refs inlined and `unevaluatedProperties: false` written as
    `additionalProperties: false` where that is exact: it accepts exactly what _validator() accepts, about
    twice as fast (no reference lookups, no second walk to collect evaluated keys). Valid files, nearly all
    of them, are checked by it alone; the reference validator describes the errors of the others."""
    import jsonschema

    schema = _validator().schema
    return jsonschema.Draft202012Validator(inlined(schema, schema.get("$defs", {})))


_ANNOTATIONS = {"description", "examples", "title", "$comment"}  # keywords that never change what validates


def inlined(node, defs: dict, inside: tuple[str, ...] = ()):
    """NODE with each `$ref` to #/$defs/X replaced by X where the result validates the same instances."""
    if isinstance(node, list):
        return [inlined(item, defs, inside) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: inlined(value, defs, inside) for key, value in node.items()}
    name = node.get("$ref", "").removeprefix("#/$defs/")
    if name not in defs or name in inside:
        return node  # not a local definition, or a recursive one: left to the reference lookup
    target = inlined(defs[name], defs, (*inside, name))
    if node.keys() <= {"$ref"} | _ANNOTATIONS:
        return target
    own, theirs = node.get("properties", {}), target.get("properties", {})
    if (node.get("unevaluatedProperties") is False
            and node.keys() <= {"$ref", "properties", "unevaluatedProperties"} | _ANNOTATIONS
            and target.keys() <= {"type", "properties"} | _ANNOTATIONS and not own.keys() & theirs.keys()):
        # Every key is evaluated by one `properties` or the other: unevaluated means not named by either.
        flat = {"properties": {**theirs, **own}, "additionalProperties": False}
        return {"type": target["type"], **flat} if "type" in target else flat
    return node


@dataclass
class FileSpec:
    """What one valid spec file declares: its models and its settings, each with where it was written."""

    models: list[ModelSpec] = field(default_factory=list)
    settings: list[tuple[str, object, str]] = field(default_factory=list)  # (key, value, file:line)
    workspace: str | None = None  # the workspace ${workspace} was replaced by; None: the file does not use it
    moves: list[Move] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)

    def to_dict(self) -> dict:
        """What the spec cache stores; SpecCache decodes it straight back into a FileSpec."""
        return {"models": [_spec_to_dict(m) for m in self.models], "settings": [list(s) for s in self.settings],
                "workspace": self.workspace, "moves": [vars(m) for m in self.moves],
                "imports": [vars(i) for i in self.imports]}


def load_config(config_dir: Path, root: Path, cache_path: Path | None = None,
                on_file: Callable[[list[ModelSpec]], None] | None = None, workspace: str = "default",
                workers: Workers | None = None) -> Config:
    """Load all *.yaml/*.yml under config_dir, `${workspace}` in any string being WORKSPACE. Raises SpecError
    listing every problem found.

    A valid file whose stat is unchanged is read back from the spec cache (.tuner/cache/specs.json)
    instead of being parsed and schema-checked again: a warm plan of a thousand models starts fast. Given
    `workers`, many files to read are read on them (see _file_specs).
    """
    _real_directory.cache_clear()  # directories are resolved once per load, never trusted from an earlier one
    if not config_dir.is_dir():
        raise SpecError([f"{_display(config_dir, root)}: config directory not found"],
                        remedy="run from the project root or pass --config DIR")
    files = spec_files(config_dir)
    cache = SpecCache(cache_path, root)
    config = Config(files={str(path): file_stat(path) for path in files})  # each stat taken before the file is read
    problems: list[str] = []
    declared: dict[str, str] = {}  # model name -> where it was declared
    setting_sources: dict[str, str] = {}
    for file_spec in _file_specs(files, config.files, cache, root, workspace, workers):
        if not isinstance(file_spec, FileSpec):
            problems.extend(file_spec)
            continue
        if on_file is not None:
            on_file(file_spec.models)
        for spec in file_spec.models:
            if spec.name in declared:
                problems.append(f"{spec.source}: models.{spec.name}: declared twice (also at {declared[spec.name]})")
            else:
                declared[spec.name] = spec.source
                config.models.append(spec)
        for key, value, where in file_spec.settings:
            if key in setting_sources:
                problems.append(f"{where}: {key}: configured twice (also at {setting_sources[key]})")
            setting_sources[key] = where
            _apply_setting(config, key, value)
        config.moves.extend(file_spec.moves)
        config.imports.extend(file_spec.imports)
    cache.save()
    problems.extend(_move_problems(config.moves, declared))
    problems.extend(_import_problems(config.imports, declared))
    if problems:
        raise SpecError(problems)
    config.models.sort(key=lambda m: m.name)
    return config


def spec_files(config_dir: Path) -> list[Path]:
    """Every spec file under CONFIG_DIR, in the order they are read."""
    return sorted(p for p in config_dir.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def _file_specs(files: list[Path], stats: dict[str, str | None], cache: SpecCache, root: Path, workspace: str,
                workers: Workers | None) -> Iterator[FileSpec | list[str]]:
    """Each file's spec (or its problems), in order: from the cache, else read. With enough to read, the
    workers read the files, READ_AHEAD ahead of the one awaited, so that the datasets of each file (queued on
    the same workers as it arrives) are scanned between them: the disk is busy from the start, and this
    process only queues work."""
    cached = [cache.get(path, stats[str(path)], workspace) for path in files]
    unread = [path for path, spec in zip(files, cached) if spec is None]
    parallel = workers is not None and _worth_parallel(unread)
    if parallel:
        _acceptor()  # the schema imported and built once, before the workers fork, rather than by each
        parallel = workers.start()
    pending, ahead = iter(unread), deque()

    def read_ahead() -> None:
        path = next(pending, None)
        if path is not None:
            ahead.append(workers.submit(_read_outcome, path, root, workspace))

    for _ in range(READ_AHEAD if parallel else 0):
        read_ahead()
    for path, file_spec in zip(files, cached):
        if file_spec is None:
            if parallel:
                file_spec = ahead.popleft().result()
                read_ahead()
            else:
                file_spec = _read_outcome(path, root, workspace)
            if isinstance(file_spec, FileSpec):
                cache.put(path, stats[str(path)], file_spec)
        yield file_spec


def _worth_parallel(paths: list[Path]) -> bool:
    """Enough spec text to repay starting the workers (and two files at least, to read side by side)."""
    total = 0
    for path in paths:
        with suppress(OSError):  # reading it will say why
            total += path.stat().st_size
    return len(paths) > 1 and total >= PARALLEL_SPEC_BYTES


def _read_outcome(path: Path, root: Path, workspace: str) -> FileSpec | list[str]:
    """The file's spec, or its problems (a worker returns them: an exception would lose its problems)."""
    try:
        return _read_file(path, root, workspace)
    except SpecError as exc:
        return exc.problems


def _read_file(path: Path, root: Path, workspace: str) -> FileSpec:
    doc = load_yaml(path, _display(path, root))
    if doc.data is None and not doc.problems:
        return FileSpec()
    problems = doc.problems + _schema_problems(doc)
    if problems:
        raise SpecError(problems)
    file_spec = FileSpec()
    substituted = _substitute(doc.data, "${workspace}", workspace)
    if substituted != doc.data:  # this file means something else in another workspace: cached for this one
        doc.data, file_spec.workspace = substituted, workspace
    for _name, (spec_problems, spec) in _models_of(doc, root).items():
        problems.extend(spec_problems)
        if spec is not None:
            file_spec.models.append(spec)
    if problems:
        raise SpecError(problems)
    for key in ("budget", "backend"):
        if key in doc.data:
            file_spec.settings.append((key, doc.data[key] or {}, doc.where((key,))))
    for provider, settings in (doc.data.get("providers") or {}).items():
        file_spec.settings.append((f"providers.{provider}", settings or {}, doc.where(("providers", provider))))
    file_spec.moves = [Move(entry["from"], entry["to"], doc.where(("moved", index)))
                       for index, entry in enumerate(doc.data.get("moved") or [])]
    file_spec.imports = [Import(entry["to"], entry["id"], doc.where(("import", index)))
                         for index, entry in enumerate(doc.data.get("import") or [])]
    return file_spec


def _import_problems(imports: list[Import], declared: dict[str, str]) -> list[str]:
    """An import adopts a model for a declared name (its spec says what the model should be); one import per
    name and per id, so that one remote model is never managed by two names."""
    problems = []
    by_name: dict[str, Import] = {}
    by_id: dict[str, Import] = {}
    for entry in imports:
        where = f"{entry.source}: import: {entry.name}"
        if entry.name not in declared:
            problems.append(f"{where}: {entry.name} is not declared in the configs; declare it, then import into it")
        if entry.name in by_name:
            problems.append(f"{where}: {entry.name} is imported twice (also at {by_name[entry.name].source})")
        elif entry.tuned_model_id in by_id:
            problems.append(f"{where}: {entry.tuned_model_id} is also imported at {by_id[entry.tuned_model_id].source}")
        by_name.setdefault(entry.name, entry)
        by_id.setdefault(entry.tuned_model_id, entry)
    return problems


def _move_problems(moves: list[Move], declared: dict[str, str]) -> list[str]:
    """What the `moved:` entries of every file say together: one move per old and per new name, no chains (the
    state holds one name per model, so a chain is written as one move), and no move from a declared name."""
    problems = []
    by_old: dict[str, Move] = {}
    by_new: dict[str, Move] = {}
    for move in moves:
        where = f"{move.source}: moved: {move.old} -> {move.new}"
        if move.old == move.new:
            problems.append(f"{where}: a model cannot move to itself")
        elif move.old in by_old:
            problems.append(f"{where}: {move.old} is moved twice (also at {by_old[move.old].source})")
        elif move.new in by_new:
            problems.append(f"{where}: two moves to {move.new} (also at {by_new[move.new].source})")
        if move.old in declared:
            problems.append(f"{where}: {move.old} is still declared at {declared[move.old]}; "
                            f"rename it there, or remove this move")
        by_old.setdefault(move.old, move)
        by_new.setdefault(move.new, move)
    for move in moves:
        following = by_old.get(move.new)
        if following is not None and following is not move:
            problems.append(f"{move.source}: moved: {move.old} -> {move.new} -> {following.new} is a chain (also at "
                            f"{following.source}): write one move, from {move.old} to {following.new}")
    return problems


def _apply_setting(config: Config, key: str, value) -> None:
    if key.startswith("providers."):
        config.providers[key.removeprefix("providers.")] = value
    else:
        setattr(config, key, value)


def _spec_to_dict(spec: ModelSpec) -> dict:
    """Shallow by design: dataclasses.asdict deep-copies, which costs a cold plan of 1,000 models 0.1 s."""
    data = dict(vars(spec))
    data["dataset"] = dict(vars(spec.dataset))
    for holder, key in ((data["dataset"], "train"), (data["dataset"], "validation"), (data, "eval_dataset")):
        holder[key] = str(holder[key]) if holder[key] is not None else None
    return data


class _CachedFile(msgspec.Struct):
    key: str  # the file's stat when it was read
    spec: msgspec.Raw  # FileSpec.to_dict() as JSON, decoded only when the file is asked for


class _StoredSpecs(msgspec.Struct):
    salt: str
    files: dict[str, _CachedFile]


def _decoded(kind: type, value: object) -> object:
    """The types JSON has no word for: a path (written as its string) and a setting's value (any JSON)."""
    if kind is object:
        return value
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise TypeError(f"expected a {kind.__name__}")  # msgspec reports it as a ValidationError


# A cached file decoded and type-checked in one pass, straight into a FileSpec: a warm plan of 10,000 models
# pays neither a dict per model nor a walk turning dicts into dataclasses.
_FILE_SPEC = msgspec.json.Decoder(FileSpec, dec_hook=_decoded)


class SpecCache:
    """Parsed, validated spec files keyed by their stat and by what shapes their meaning: the project root,
    the schema, and this loader's version. Only valid files are cached; errors are always recomputed, and an
    entry that is damaged or holds anything of the wrong type only means its file is parsed again."""

    def __init__(self, path: Path | None, root: Path):
        self.path = path
        self._salt = f"{root}|{_code_version()}"
        self._files: dict[str, _CachedFile] = {}
        self._dirty = False
        if path is not None:
            try:
                stored = msgspec.json.decode(path.read_bytes(), type=_StoredSpecs)
                self._files = stored.files if stored.salt == self._salt else {}
            except (OSError, msgspec.DecodeError):
                self._files = {}

    def get(self, path: Path, stat: str | None, workspace: str) -> FileSpec | None:
        """The cached spec, unless the file's STAT (runner.fsutil.stat_key) changed or it uses ${workspace} and was
        cached for another one."""
        entry = self._files.get(str(path))
        if entry is None or stat is None or entry.key != stat:
            return None
        try:
            file_spec = _FILE_SPEC.decode(entry.spec)
        except msgspec.DecodeError:
            return None
        return file_spec if file_spec.workspace in (None, workspace) else None

    def put(self, path: Path, stat: str | None, file_spec: FileSpec) -> None:
        """FILE_SPEC as read from PATH, under the STAT taken before it was read: a write while it was being read
        leaves a stat no later read matches (the stat taken after would have kept the old content for good)."""
        if self.path is not None and stat is not None:
            self._files[str(path)] = _CachedFile(stat, msgspec.Raw(json.dumps(file_spec.to_dict()).encode()))
            self._dirty = True

    def save(self) -> None:
        if not (self.path and self._dirty):
            return
        from runner.fsutil import atomic_write

        live = {name: entry for name, entry in self._files.items() if Path(name).exists()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, msgspec.json.encode(_StoredSpecs(self._salt, live)))


@lru_cache(maxsize=1)
def _code_version() -> str:
    """Changes whenever the schema or the code that reads specs changes."""
    here = Path(__file__)
    parts = [SCHEMA_PATH, here, here.with_name("yamlsource.py"), here.with_name("model.py")]
    return hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()[:16]


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def _schema_problems(doc: YamlDocument) -> list[str]:
    if () in doc.refused:  # the whole document was an unreadable value, already reported
        return []
    if not isinstance(doc.data, dict):
        return [Problem(doc.display, f"a spec file must be a mapping with 'models' (and optional 'defaults', "
                                     f"'providers'), not {type(doc.data).__name__}", 1)]
    if _acceptor().is_valid(doc.data):
        return []
    problems = []
    for error in sorted(_validator().iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path))):
        path = tuple(error.absolute_path)
        if not any(path[:len(refused)] == refused for refused in doc.refused):  # already reported as unreadable
            problems.append(_describe(error, doc))
    return sorted(set(problems), key=problems.index)


def _describe(error, doc: YamlDocument) -> Problem:
    """One schema error as `file:line: field.path: reason`, pointing at the offending key itself."""
    from jsonschema.exceptions import best_match

    while error.validator in ("oneOf", "anyOf") and error.context:
        error = best_match(_in_matching_branches(error.context))
    path = tuple(error.absolute_path)
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        match = _UNKNOWN_KEY.search(error.message)
        key = match and (match.group("key") or match.group("key2"))
        if key:
            allowed = sorted(_allowed_keys(error.schema))
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f" (allowed: {', '.join(allowed)})" if allowed else ""
            return _problem(doc, path + (key,), f"unknown key{hint}")
    if "propertyNames" in error.schema_path and path[-1:] == ("for_each",):
        key = error.instance
        return _problem(doc, path + (key,), f"invalid key {key!r}: use lowercase letters, digits and '-', starting "
                                            f"and ending with a letter or digit (it becomes part of the model name)")
    if "propertyNames" in error.schema_path:
        key = error.instance
        return _problem(doc, path + (key,), f"invalid name {key!r}: use lowercase letters, digits and '-', start "
                                            f"with a letter, at most 32 characters")
    return _problem(doc, path, error.message)


def _in_matching_branches(errors: list) -> list:
    """The errors of the oneOf/anyOf branches whose type the value has (a list's errors, not "is not of type
    'object'"), so the message names what is wrong inside the value; all of them when no branch matches."""
    inside = [e for e in errors if not (e.validator == "type" and not e.relative_path)]
    return inside or errors


def _problem(doc: YamlDocument, path: tuple, message: str) -> Problem:
    return Problem(doc.display, message, doc.line_of(path), path=dotted(path) or "(top level)")


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
        yield f"{entry_name}-{key}", _substitute(fields, "${key}", key)


def _substitute(value, placeholder: str, replacement: str):
    """VALUE with PLACEHOLDER replaced in every string inside it (keys are names, left alone)."""
    if isinstance(value, str):
        return value.replace(placeholder, replacement)
    if isinstance(value, dict):
        return {k: _substitute(v, placeholder, replacement) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, placeholder, replacement) for v in value]
    return value


def _deep_merge(base: dict, override: dict) -> dict:
    merged = _copied(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = _copied(value)
    return merged


def _copied(value):
    """A deep copy of YAML data (dicts, lists, scalars: no cycles, scalars immutable); copy.deepcopy's memo and
    dispatch cost a cold plan of 10,000 models a quarter of a second."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value


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
        dataset=DatasetSpec(
            train=train,
            validation=validation,
            input_key=dataset.get("input_key", "text_input"),
            output_key=dataset.get("output_key", "output"),
            allow_small=bool(dataset.get("allow_small", False)),
            system_prompt=dataset.get("system_prompt", ""),
        ),
        hyperparameters=dict(fields.get("hyperparameters") or {}),
        prevent_destroy=bool((fields.get("lifecycle") or {}).get("prevent_destroy", False)),
        keep_previous=(fields.get("lifecycle") or {}).get("keep_previous", DEFAULT_KEEP_PREVIOUS),
        source=where,
        eval_dataset=eval_dataset,
        eval_consistency=bool(evaluation.get("consistency", True)),
        gate=dict(fields.get("gate") or {}),
        ignore_changes=tuple((fields.get("lifecycle") or {}).get("ignore_changes", ())),
    )
    return [], spec


def _origin(doc: YamlDocument, at: tuple) -> tuple:
    """Where a merged value was written: in the model entry itself, or else under defaults."""
    inherited = ("defaults", *at[2:])
    return at if at in doc.lines or inherited not in doc.lines else inherited


def _real_path(path: Path) -> Path:
    """path.resolve(), with each directory resolved once per run: a thousand datasets in a few directories
    cost a thousand lstat calls instead of one per path component each (the cold plan's main thread reads
    the specs while the scanner's workers hash; its CPU is theirs too)."""
    if path.name in ("", ".", "..") or path.is_symlink():
        return path.resolve()
    return _real_directory(str(path.parent)) / path.name


@lru_cache(maxsize=4096)
def _real_directory(directory: str) -> Path:
    return Path(directory).resolve()


def _resolve(value: str, doc: YamlDocument, at: tuple, root: Path, field: str):
    """A dataset path relative to its YAML file; refused when it leaves the project root."""
    at = _origin(doc, at)
    if "\x00" in value:
        return None, [f"{doc.where(at)}: models.{field}: NUL character in a path"]
    resolved = _real_path(doc.path.parent / value)
    if not resolved.is_relative_to(root):
        return None, [f"{doc.where(at)}: models.{field}: {value} resolves to {resolved}, "
                      f"outside the project root {root}"]
    return resolved, []
