"""The datasets room: reading, validation and the canonical content hash (reader)."""

from runner.datasets.reader import MAX_REPORTED, DatasetSummary, Example, HashCache, open_examples, scan

__all__ = ["MAX_REPORTED", "DatasetSummary", "Example", "HashCache", "open_examples", "scan"]
