"""A provider's concurrency cap, granted in the plan's order.

Apply starts the longest jobs first (a shorter makespan under a cap). threading.Semaphore cannot keep that
order: a pool thread that just released a slot picks up the next task and can take the slot back before the
waiter it woke runs, which then queues again behind it. Measured with `bench/run.py --only apply` (100 jobs,
quota 5): submissions drifted from longest-first to a schedule 1.06x the bound (makespan 1.074x); granting
by rank restores longest-first.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Slots:
    """SIZE slots; among the threads waiting, the one with the lowest rank is served first."""

    def __init__(self, size: int):
        self._free = max(1, size)
        self._waiting: list[int] = []  # heap of ranks
        self._changed = threading.Condition()

    @contextmanager
    def held(self, rank: int) -> Iterator[None]:
        with self._changed:
            heapq.heappush(self._waiting, rank)
            while not (self._free and self._waiting[0] == rank):
                self._changed.wait()
            heapq.heappop(self._waiting)
            self._free -= 1
            self._changed.notify_all()  # a slot may still be free for the next rank
        try:
            yield
        finally:
            with self._changed:
                self._free += 1
                self._changed.notify_all()
