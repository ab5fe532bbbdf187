"""The worker processes of a plan: one pool that reads spec files and scans datasets, started only when there is
enough of either to repay starting it (see DatasetScanner.add and load_config)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future


class Workers:
    """A process pool on every core, forked on first need (the workers inherit what is imported by then)."""

    def __init__(self) -> None:
        self._pool = None

    @property
    def running(self) -> bool:
        return self._pool is not None

    def start(self) -> bool:
        """Start the pool unless it runs already or this machine has one core; True when it runs."""
        if self._pool is None and (os.cpu_count() or 1) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(os.cpu_count(), mp_context=multiprocessing.get_context("fork"))
        return self._pool is not None

    def submit(self, function: Callable, *args) -> Future:
        return self._pool.submit(function, *args)

    def close(self) -> None:
        """Stop the workers, dropping work not yet started."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
