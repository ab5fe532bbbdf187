"""What a run may read from the world, made once by the CLI and passed down (HTTPie's `Environment`):
the working directory, the environment variables, whether the standard streams are terminals, and the clock.

Nothing below the CLI reads `os.environ`, `Path.cwd()` or the real clock by itself, so a test states the
world it runs in instead of patching it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.clock import Clock


def _isatty(stream) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


@dataclass(frozen=True)
class Environment:
    cwd: Path = field(default_factory=Path.cwd)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    stdin_isatty: bool = field(default_factory=lambda: _isatty(sys.stdin))
    stdout_isatty: bool = field(default_factory=lambda: _isatty(sys.stdout))
    stderr_isatty: bool = field(default_factory=lambda: _isatty(sys.stderr))
    clock: Clock = field(default_factory=Clock)
