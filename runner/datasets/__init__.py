"""The datasets room: a dataset is a content-addressed input.

scanner finds the datasets specs name and returns a DatasetRef for each (ref): the canonical hash of its
examples, the stat it was hashed under and the facts plan checks. reader validates and hashes files and is
the one way to read examples (open_examples, verified against the ref's hash as it streams); cache keeps
refs by stat under the version of the code that computed them.
"""

from runner.datasets.cache import HashCache
from runner.datasets.reader import MAX_REPORTED, Example, open_examples, scan
from runner.datasets.ref import DatasetRef
from runner.datasets.scanner import DatasetScanner

__all__ = ["MAX_REPORTED", "DatasetRef", "DatasetScanner", "Example", "HashCache", "open_examples", "scan"]
