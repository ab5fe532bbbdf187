"""`tuner init`: lay out a project a team can commit, around the example this tuner ships.

It never overwrites: a file already there is kept as it is, and .gitignore only gains the entries it lacks,
so running it again (or in an existing project) is safe.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import TunerError
from runner.shipped import schema_path, shipped

_TEMPLATES = Path(__file__).resolve().parent
PROVIDERS = tuple(sorted(path.stem for path in _TEMPLATES.glob("*.yaml")))  # one example spec per provider
SPEC = "configs/sentiment.yaml"
DATA = "data/sentiment"
KEEP_STATE_DIR = "state/.gitkeep"  # git keeps no empty folder; state/<workspace>.json is written there
# --ci NAME: the recipe under examples/ and where the CI service reads it
CI_RECIPES = {"github": ("github-actions.yml", ".github/workflows/tuner.yml"),
              "gitlab": ("gitlab-ci.yml", ".gitlab-ci.yml")}
# What stays on one machine: artifacts and caches, state backups, locks and their temporaries, saved plans.
GITIGNORE = (".tuner/", "state/*.backup", "state/*.lock", "state/.*.tmp", "state/.*.lock-guard", "*.plan")


@dataclass
class Scaffold:
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # the entries .gitignore gained
    has_specs: bool = False  # configs/ already held spec files: no example was added


def init_project(root: Path, provider: str, ci: str | None = None) -> Scaffold:
    """Write what ROOT lacks of the example project for PROVIDER (and the CI recipe for CI)."""
    # An example added beside a project's own specs would be trained by its next apply: only a project
    # without specs gets one.
    scaffold = Scaffold(has_specs=any(_specs(root / "configs")))
    files = {} if scaffold.has_specs else _example(provider)
    for relative, content in (files | {KEEP_STATE_DIR: b""} | _ci_recipe(ci)).items():
        _write_new(root, relative, content, scaffold)
    scaffold.ignored = _extend_gitignore(root / ".gitignore")
    return scaffold


def _specs(configs: Path) -> Iterable[Path]:
    return (path for path in configs.rglob("*") if path.suffix in (".yaml", ".yml")) if configs.is_dir() else ()


def _example(provider: str) -> dict[str, bytes]:
    modeline = f"# yaml-language-server: $schema={schema_id('spec')}\n"  # editors check the spec against it
    spec = modeline + (_TEMPLATES / f"{provider}.yaml").read_text("utf-8")
    return {SPEC: spec.encode()} | {f"{DATA}/{path.name}": path.read_bytes()
                                    for path in sorted(shipped(DATA).glob("*.jsonl"))}


def _ci_recipe(ci: str | None) -> dict[str, bytes]:
    if ci is None:
        return {}
    recipe, target = CI_RECIPES[ci]
    source = shipped("examples") / recipe
    if not source.is_file():
        raise TunerError(f"this tuner ships no {ci} CI recipe (examples/{recipe})",
                         remedy="install a newer tuner, or leave out --ci")
    return {target: source.read_bytes()}


def schema_id(kind: str) -> str:
    """The stable URL a shipped schema names itself by (its `$id`)."""
    return json.loads(schema_path(kind).read_text(encoding="utf-8"))["$id"]


def _write_new(root: Path, relative: str, content: bytes, scaffold: Scaffold) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("xb") as file:  # exclusive: an existing file is never replaced
            file.write(content)
    except FileExistsError:
        scaffold.kept.append(relative)
    else:
        scaffold.created.append(relative)


def _extend_gitignore(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    present = {line.strip() for line in text.splitlines()}
    missing = [entry for entry in GITIGNORE if entry not in present]
    if missing:
        lead = "\n" if text and not text.endswith("\n") else ""
        block = "# tuner: local artifacts and caches, state backups and locks, saved plans\n"
        path.write_text(text + lead + block + "".join(f"{entry}\n" for entry in missing), encoding="utf-8")
    return missing
