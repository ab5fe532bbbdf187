"""State: the State model and its backends (local file by default)."""

from runner.state.local import LocalBackend
from runner.state.model import ACTIVE, CREATING, FAILED, SUBMITTING, Instance, ModelRecord, State

__all__ = ["ACTIVE", "CREATING", "FAILED", "SUBMITTING", "Instance", "LocalBackend", "ModelRecord", "State"]
