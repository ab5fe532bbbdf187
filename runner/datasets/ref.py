"""DatasetRef: a dataset as a content-addressed input, what the rest of tuner knows of a dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DatasetRef:
    """The canonical hash of the examples read from `path` under one key mapping, with the stat the file had
    when it was hashed and the facts plan checks against providers' limits (DVC's Output and its hash_info).
    The hash is what plans, fingerprints and state record; examples are read only through
    open_examples(ref), which holds the file to it."""

    path: Path  # absolute: where the examples are read
    display: str  # relative to the project root: what state records and messages name
    input_key: str
    output_key: str
    stat: str  # runner.fsutil.stat_key: what the hash cache answers by
    sha256: str
    examples: int
    max_input_chars: int = 0  # the longest example, for providers' per-example limits
    max_output_chars: int = 0
    text_bytes: int = 0  # UTF-8 bytes of all inputs and outputs, for providers' request-size limits
    warnings: tuple[str, ...] = ()

    def record(self) -> dict:
        """What state and plans record of it."""
        return {"path": self.display, "sha256": self.sha256, "examples": self.examples}
