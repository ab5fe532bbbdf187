"""The cold plan's work on the workers: many spec files are read there (their datasets scanned between them on
the same pool), with the same specs, the same problems at the same file:line, and the same spec cache as when
they are read in process."""

from __future__ import annotations

import os

import pytest

from runner.errors import SpecError
from runner.spec import loader
from runner.workers import Workers

GROUPS = 6


@pytest.fixture
def configs(tmp_path):
    directory = tmp_path / "configs"
    directory.mkdir()
    for index in range(GROUPS):
        (directory / f"group-{index}.yaml").write_text(
            "defaults: {base_model: local/linear-ngram}\n"
            f"models:\n  g{index}:\n    for_each:\n      a: {{hyperparameters: {{epoch_count: {index + 1}}}}}\n"
            "      b: null\n    dataset:\n      train: ../data/${key}.jsonl\n", encoding="utf-8")
    return directory


@pytest.fixture
def read_here(monkeypatch):
    """The spec files read by this process: the workers fork after the patch, so their reads count in their
    own copy of the list, never in this one."""
    files: list[str] = []
    real = loader._read_file
    monkeypatch.setattr(loader, "_read_file", lambda path, *rest: files.append(path.name) or real(path, *rest))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    return files


def load(configs, workers: Workers | None = None, cache=None):
    """The config (or the problems) and whether the workers were started."""
    try:
        return loader.load_config(configs, configs.parent, cache, workers=workers), workers and workers.running
    except SpecError as exc:
        return exc.problems, workers and workers.running
    finally:
        if workers is not None:
            workers.close()


def test_many_spec_files_are_read_on_the_workers_with_the_same_specs_and_problems(configs, read_here, monkeypatch):
    monkeypatch.setattr(loader, "PARALLEL_SPEC_BYTES", 0)
    in_process, _ = load(configs)
    assert len(in_process.models) == 2 * GROUPS and len(read_here) == GROUPS
    read_here.clear()
    assert load(configs, Workers()) == (in_process, True) and read_here == []

    (configs / "group-2.yaml").write_text("models:\n  x:\n    base_model: 7\n", encoding="utf-8")
    problems, _ = load(configs)
    assert problems == ["configs/group-2.yaml:3: models.x.base_model: 7 is not of type 'string'"]
    read_here.clear()
    assert load(configs, Workers()) == (problems, True) and read_here == []


def test_files_read_on_the_workers_fill_the_spec_cache(configs, read_here, monkeypatch, tmp_path):
    monkeypatch.setattr(loader, "PARALLEL_SPEC_BYTES", 0)
    cache = tmp_path / ".tuner" / "specs.json"
    first, _ = load(configs, Workers(), cache)
    again, started = load(configs, Workers(), cache)
    assert [m.source for m in again.models] == [m.source for m in first.models] and read_here == [] and not started


def test_a_few_small_spec_files_are_read_in_process_without_starting_the_workers(configs, read_here):
    config, started = load(configs, Workers())
    assert len(config.models) == 2 * GROUPS and len(read_here) == GROUPS and not started
