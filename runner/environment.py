"""What a run may read from the world, made once by the CLI and passed down (HTTPie's `Environment`):
the working directory, the environment variables, whether the standard streams are terminals, and the clock.

Nothing below the CLI reads `os.environ`, `Path.cwd()` or the real clock by itself, so a test states the
world it runs in instead of patching it. A plain class, not a dataclass: the CLI imports it on every start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.clock import Clock


def _isatty(stream) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


class Environment:
    def __init__(self, cwd: Path | None = None, environ: Mapping[str, str] | None = None,
                 stdin_isatty: bool | None = None, stdout_isatty: bool | None = None,
                 stderr_isatty: bool | None = None, clock: Clock | None = None):
        self.cwd = Path.cwd() if cwd is None else cwd
        self.environ = os.environ if environ is None else environ
        self.stdin_isatty = _isatty(sys.stdin) if stdin_isatty is None else stdin_isatty
        self.stdout_isatty = _isatty(sys.stdout) if stdout_isatty is None else stdout_isatty
        self.stderr_isatty = _isatty(sys.stderr) if stderr_isatty is None else stderr_isatty
        self._clock = clock
        self.no_color = False  # --no-color: plain text even on a terminal, as NO_COLOR

    @property
    def clock(self) -> Clock:
        """Wall time, monotonic time and waiting; made on first use (`tuner --help` never needs one)."""
        if self._clock is None:
            from runner.clock import Clock

            self._clock = Clock()
        return self._clock

    @property
    def colour(self) -> bool:
        """Colour on standard output: only on a terminal, never with NO_COLOR or --no-color."""
        return self.stdout_isatty and not self._colour_refused

    @property
    def stderr_colour(self) -> bool:
        """Colour on standard error, by the same rule (the live progress table only needs a terminal)."""
        return self.stderr_isatty and not self._colour_refused

    @property
    def _colour_refused(self) -> bool:
        return self.no_color or "NO_COLOR" in self.environ
