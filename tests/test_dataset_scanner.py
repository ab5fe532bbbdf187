"""The datasets room's scanner: one DatasetRef per distinct (file, key mapping), in process or on a pool."""

from __future__ import annotations

import json

import pytest

from runner.datasets import DatasetRef, DatasetScanner, HashCache, scan
from runner.datasets import scanner as scanner_module
from runner.spec import DatasetSpec, ModelSpec
from tests.test_datasets import content_facts, rows, write_jsonl


def spec(name: str, train, validation=None, input_key="text_input") -> ModelSpec:
    return ModelSpec(name=name, provider="local", base_model="b", display_name=name, description="",
                     dataset=DatasetSpec(train, validation, input_key=input_key), hyperparameters={},
                     prevent_destroy=False, source=f"configs/m.yaml:{len(name)}")


@pytest.mark.parametrize("on_a_pool", [False, True], ids=["in-process", "process-pool"])
def test_each_distinct_file_and_key_mapping_becomes_one_ref_and_problems_name_the_model(tmp_path, monkeypatch,
                                                                                          on_a_pool):
    if on_a_pool:
        monkeypatch.setattr(scanner_module, "PARALLEL_MIN_BYTES", 0)
    data = tmp_path / "data"
    data.mkdir()
    shared = write_jsonl(data / "shared.jsonl", rows(60))
    renamed = write_jsonl(data / "renamed.jsonl", [{"q": r["text_input"], "output": r["output"]} for r in rows(60)])
    (data / "bad.jsonl").write_text("not json\n", encoding="utf-8")
    specs = [spec("a", shared), spec("b", shared, validation=data / "gone.jsonl"), spec("c", renamed, input_key="q"),
             spec("d", data / "bad.jsonl")]
    scanner = DatasetScanner(tmp_path, HashCache(tmp_path / "cache.json"))
    scanner.add(specs[:2])  # as the first spec file is read; the rest come with results()
    refs, problems, _ = scanner.results(specs)
    assert set(refs) == {(shared, "text_input", "output"), (renamed, "q", "output")}
    ref = refs[(shared, "text_input", "output")]
    assert isinstance(ref, DatasetRef) and (ref.path, ref.display) == (shared, "data/shared.jsonl")
    assert content_facts(ref) == content_facts(scan(shared, "x", "text_input", "output"))
    assert refs[(renamed, "q", "output")].sha256 == ref.sha256  # the same pairs under another key mapping
    assert all(ref.path is key[0] and ref.input_key is key[1] for key, ref in refs.items())  # no copies kept
    stored = json.loads((tmp_path / "cache.json").read_text())["refs"]  # results() saves what it scanned
    assert set(stored) == {HashCache.key(r.path, r.stat, r.input_key, r.output_key) for r in refs.values()}
    assert sorted(problems) == ["configs/m.yaml:1: models.b.dataset: data/gone.jsonl: file not found",
                                "data/bad.jsonl:1:1: invalid JSON: Expecting value"]


def test_many_small_files_go_to_the_pool_in_batches_not_one_task_each(tmp_path, monkeypatch):
    """A task per file costs the main process (which is reading the specs meanwhile) ~0.2 ms of pickling and
    queueing: 2 s for 10,000 files. Batches keep that per batch, and every file still gets its own ref."""
    from concurrent.futures import ProcessPoolExecutor

    monkeypatch.setattr(scanner_module, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(scanner_module.os, "cpu_count", lambda: 2)
    submitted = []
    real_submit = ProcessPoolExecutor.submit
    monkeypatch.setattr(ProcessPoolExecutor, "submit",
                        lambda pool, *args, **kw: submitted.append(args) or real_submit(pool, *args, **kw))
    data = tmp_path / "data"
    data.mkdir()
    paths = [write_jsonl(data / f"f{i:03d}.jsonl", rows(60, label=lambda j, i=i: f"label {i} {j % 3}"))
             for i in range(150)]
    specs = [spec(f"m{i}", path) for i, path in enumerate(paths)]
    scanner = DatasetScanner(tmp_path, HashCache(None))
    scanner.add(specs[:100])  # as spec files are read
    refs, problems, _ = scanner.results(specs)
    assert problems == [] and len(refs) == 150
    assert all(refs[(p, "text_input", "output")].sha256 == scan(p, "x", "text_input", "output").sha256
               for p in paths[::37])
    assert len(submitted) <= 6  # was 150


@pytest.mark.skipif(not scanner_module.PREFETCH, reason="no posix_fadvise on this system")
def test_a_batch_asks_the_kernel_to_read_its_regular_files_ahead_and_never_opens_a_fifo(tmp_path, monkeypatch):
    """Cold files are read side by side when the batch starts (their latency, not their bytes, is the cost of
    10,000 small files); a FIFO among them is neither opened (it would block) nor prefetched, only refused."""
    import os

    advised = []
    real = os.posix_fadvise
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, *args: advised.append(os.readlink(f"/proc/self/fd/{fd}"))
                        or real(fd, *args))
    good = write_jsonl(tmp_path / "good.jsonl", rows(60))
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    outcomes = scanner_module._scan_many([(fifo, "fifo.jsonl", "text_input", "output", None),
                                          (good, "good.jsonl", "text_input", "output", None)])
    assert advised == [str(good)]
    assert outcomes[0] == ["fifo.jsonl: not a regular file (a FIFO); a dataset must be a file"]
    assert outcomes[1].sha256 == scan(good, "x", "text_input", "output").sha256
