"""Scanning the datasets that specs name: each distinct (file, key mapping) once, cache first, the rest on
every core."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from runner.datasets.cache import HashCache
from runner.datasets.reader import scan
from runner.datasets.ref import DatasetRef
from runner.errors import DatasetError
from runner.fsutil import stat_key
from runner.workers import Workers

if TYPE_CHECKING:  # the room reads specs' dataset fields only; it needs no spec parsing
    from runner.spec import ModelSpec

PARALLEL_MIN_BYTES = 16 << 20  # below this, starting worker processes costs more than it saves
# A pool task carries files up to this many bytes (or BATCH_FILES of them): a task per file costs the main
# process, which reads the specs meanwhile, ~0.2 ms each (2 s at 10,000 files); batches far larger would leave
# one worker hashing alone at the end.
BATCH_BYTES, BATCH_FILES = 4 << 20, 64

PREFETCH = hasattr(os, "posix_fadvise")  # not on macOS: files are then read as the scan reaches them
DatasetKey = tuple[Path, str, str]  # (absolute path, input key, output key)


class DatasetScanner:
    """Scans the datasets that models name, each distinct (file, key mapping) once. The cache answers for
    files whose stat is unchanged; the rest are scanned on every core, starting while the specs are still
    being read: add() is called as each spec file is loaded, results() once all are."""

    def __init__(self, root: Path, cache: HashCache, workers: Workers | None = None):
        self.root, self.cache = root, cache
        self.workers = workers or Workers()  # shared with the spec loader, which may have started it
        self._root_prefix = os.path.join(str(root), "")
        self._declared: set[DatasetKey] = set()
        self._added: set[str] = set()  # names of the models whose datasets are declared: results() skips them
        self._stats: dict[DatasetKey, str] = {}
        self._cached: dict[DatasetKey, DatasetRef] = {}
        self._missing: list[str] = []
        self._queued: list[DatasetKey] = []  # to scan, not yet handed to a worker
        self._queued_bytes = 0
        self._sizes: dict[DatasetKey, int] = {}
        self._futures: dict = {}  # future -> the keys of its batch, in order

    def add(self, specs: list[ModelSpec]) -> None:
        for spec in specs:
            self._added.add(spec.name)
            for path in (spec.dataset.train, spec.dataset.validation, spec.eval_dataset):
                if path is not None:
                    self._declare((path, spec.dataset.input_key, spec.dataset.output_key), spec)
        if self.workers.running or (self._queued_bytes >= PARALLEL_MIN_BYTES and self.workers.start()):
            for batch in _batches(self._queued, self._sizes):
                self._futures[self.workers.submit(_scan_many, [self._job(key) for key in batch])] = batch
            self._queued.clear()

    def _declare(self, key: DatasetKey, spec: ModelSpec) -> None:
        if key in self._declared:
            return
        self._declared.add(key)
        path, input_key, output_key = key
        try:
            status = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            self._missing.append(f"{spec.source}: models.{spec.name}.dataset: {self._display(path)}: file not found")
            return
        self._stats[key] = stat_key(status)
        ref = self.cache.get(path, self._display(path), input_key, output_key, self._stats[key])
        if ref is not None:
            self._cached[key] = ref
        else:
            self._queued.append(key)
            self._sizes[key] = status.st_size
            self._queued_bytes += status.st_size

    def _display(self, path: Path) -> str:
        text = str(path)  # a string prefix, not Path.relative_to: 10,000 datasets pay it on every plan
        if text.startswith(self._root_prefix):
            return text[len(self._root_prefix):].replace(os.sep, "/")
        return path.relative_to(self.root).as_posix()

    def _job(self, key: DatasetKey) -> tuple:
        path, input_key, output_key = key
        return path, self._display(path), input_key, output_key, self._stats[key]

    def results(self, specs: list[ModelSpec]) -> tuple[dict[DatasetKey, DatasetRef], list[str], list[str]]:
        """(refs by key, problems, warnings) for every dataset the specs name; the workers stop and the
        cache keeps what was scanned."""
        self.add([spec for spec in specs if spec.name not in self._added])  # those the spec files gave are in
        try:
            outcomes = {key: _scan_one(self._job(key)) for key in self._queued}
            for future, batch in self._futures.items():
                outcomes.update(zip(batch, future.result()))
        finally:
            self.close()
        refs, problems = dict(self._cached), list(self._missing)
        for key, outcome in outcomes.items():
            if isinstance(outcome, DatasetRef):
                refs[key] = self._shared(key, outcome)
                self.cache.put(outcome)
            else:
                problems.extend(outcome)
        self.cache.save()
        warnings = [w for key in self._declared if key in refs for w in refs[key].warnings]
        return refs, problems, warnings

    def _shared(self, key: DatasetKey, ref: DatasetRef) -> DatasetRef:
        """REF holding the path and names the specs hold, not the copies a worker sent back (a plan keeps every
        ref: at 10,000 datasets, copied paths and names cost ~7 MB of its peak memory)."""
        path, input_key, output_key = key
        return replace(ref, path=path, display=self._display(path), input_key=input_key, output_key=output_key,
                       stat=self._stats[key])

    def close(self) -> None:
        self.workers.close()


def _batches(keys: list[DatasetKey], sizes: dict[DatasetKey, int]) -> list[list[DatasetKey]]:
    batches: list[list[DatasetKey]] = []
    size = 0
    for key in keys:
        if not batches or size >= BATCH_BYTES or len(batches[-1]) >= BATCH_FILES:
            batches.append([])
            size = 0
        batches[-1].append(key)
        size += sizes[key]
    return batches


def _scan_many(jobs: list[tuple]) -> list[DatasetRef | list[str]]:
    for job in jobs:
        _prefetch(job[0])
    return [_scan_one(job) for job in jobs]


def _prefetch(path: Path) -> None:
    """Ask the kernel to read the file now, in the background: a batch's cold files are then read side by side
    at the disk's queue depth, not one after another (10,000 small files cost their latency, not their bytes).
    Opened as the reader opens datasets (see _open_dataset): a regular file only, checked before and after."""
    try:
        if not (PREFETCH and stat.S_ISREG(os.stat(path).st_mode)):
            return
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return  # the scan will say why
    try:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_WILLNEED)
    finally:
        os.close(descriptor)


def _scan_one(job: tuple) -> DatasetRef | list[str]:
    try:
        return scan(*job)
    except DatasetError as exc:
        return exc.problems
