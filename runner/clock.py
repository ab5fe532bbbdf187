"""Time, injectable: wall time, monotonic time and waiting, so tests never sleep for real and Ctrl-C ends a wait.

Its own small module so that commands which never apply (plan, validate, show) do not import the applier.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    """Wall time, monotonic time and waiting, injectable so tests never sleep for real."""

    def __init__(self, stop: threading.Event | None = None):
        self.stop = stop or threading.Event()

    def now(self) -> str:
        return datetime.now(UTC).isoformat(timespec="seconds")

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float) -> bool:
        """Wait, returning True early when a stop (Ctrl-C) was requested."""
        return self.stop.wait(seconds)
