"""tuner as a team installs it: a wheel, not the source tree. What the code reads at run time (the schemas, the
CI recipes, the example project `tuner init` copies) must ship inside it and be found there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

# What a source checkout holds beyond the package: none of it may be needed by an installed tuner.
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", ".tuner", "state", "tests",
                                     "bench", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "*.so")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built offline (no isolated build environment to download) from a copy of the source, so the checkout
    gets no build/ folder."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(work / "dist")], check=True, capture_output=True, timeout=120)
    return next((work / "dist").glob("*.whl"))


@pytest.fixture(scope="module")
def unpacked(wheel, tmp_path_factory) -> Path:
    """The wheel as site-packages would hold it (unpacking is what pip does; without the dependencies, which
    the test's own environment provides)."""
    target = tmp_path_factory.mktemp("site")
    zipfile.ZipFile(wheel).extractall(target)
    return target


def test_the_distribution_has_its_own_name_and_still_installs_the_tuner_command():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == "tuner-finetune"  # `tuner` on the package index is an unrelated project
    assert project["scripts"] == {"tuner": "runner.cli:main"}


def test_the_wheel_carries_the_schemas_and_the_ci_recipes(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for schema in (REPO / "schemas").glob("*.json"):
        assert f"runner/_shipped/schemas/{schema.name}" in names
    for recipe in (REPO / "examples").iterdir():
        assert f"runner/_shipped/examples/{recipe.name}" in names
    assert "runner/_shipped/data/sentiment/train.jsonl" in names


def test_an_installed_tuner_validates_and_inits_outside_any_source_tree(unpacked, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(unpacked), "NO_COLOR": "1"}
    env.pop("TUNER_ROOT", None)

    def tuner(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=60)

    where = tuner("schema", cwd=tmp_path)  # also shows which runner answered: the unpacked one
    assert where.returncode == 0, where.stderr
    assert '"$id"' in where.stdout
    assert tuner("init", "demo", cwd=tmp_path).returncode == 0
    checked = tuner("validate", cwd=tmp_path / "demo")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    located = subprocess.run([sys.executable, "-c", "import runner.shipped as s; print(s.shipped('schemas'))"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert located.stdout.strip() == str(unpacked / "runner" / "_shipped" / "schemas")
