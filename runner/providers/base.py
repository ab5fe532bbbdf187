"""The Provider protocol and the capabilities a provider declares about itself.

The core never asks which provider it is talking to; it reads these declarations instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from runner.errors import ProviderError

if TYPE_CHECKING:
    from runner.desired import DesiredModel
    from runner.identity import Owner

CREATING, ACTIVE, FAILED = "creating", "active", "failed"


@dataclass(frozen=True)
class Capabilities:
    in_place_fields: frozenset[str]  # attributes changed without a new model; all others force replacement
    hyperparameter_defaults: dict  # accepted hyperparameter keys -> value used when the spec omits it
    refused_hyperparameters: dict = field(default_factory=dict)  # key -> why it is refused, what to use
    max_concurrent_jobs: int = 5
    poll_seconds: float = 5.0  # how often apply asks a running job for its state


@dataclass(frozen=True)
class JobStatus:
    state: str  # CREATING | ACTIVE | FAILED (normalised); the provider's own word goes in `detail`
    detail: str = ""
    message: str = ""  # the provider's error message when FAILED
    progress: float | None = None  # 0..1 when the provider reports it
    tuned_model_id: str | None = None  # the final model resource, when it differs from the one planned
    resources: dict = field(default_factory=dict)  # provider resources worth recording (endpoint, ...)


@dataclass(frozen=True)
class ObservedModel:
    """What the provider really holds, as returned by one list call."""

    tuned_model_id: str
    display_name: str
    description: str
    state: str
    base_model: str = ""
    hyperparameters: dict = field(default_factory=dict)  # what the provider reports, where it does
    owner: str | None = None  # the tuner owner tag the object carries (runner.identity); None: no tuner identity


def checked(pattern: re.Pattern, value: object, what: str) -> str:
    """An id or handle read from state, a plan file or a provider, refused unless it has the provider's grammar
    (it ends up in a URL path or a file path: `../` must never get there)."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ProviderError(f"refusing to use {value!r}: not a valid {what}", code="INVALID_ID",
                            remedy="the state or plan file was edited or is corrupt: restore it from git or from "
                                   "its .backup")
    return value


def guarded(call: Callable, map_error: Callable[[Exception], ProviderError],
            on_not_found: Callable | None = None):
    """Run one SDK call; any SDK exception becomes the provider's ProviderError (a missing resource may
    instead be answered by on_not_found), so nothing from an SDK reaches the user as a traceback."""
    try:
        return call()
    except ProviderError:
        raise
    except Exception as exc:
        error = map_error(exc)
        if error.code == "NOT_FOUND" and on_not_found is not None:
            return on_not_found()
        raise error from None


class Provider(Protocol):
    name: str
    capabilities: Capabilities

    def plan_problems(self, model: DesiredModel) -> list[str]:
        """Provider limits checked at plan time (example counts, id length, name length)."""

    def preflight(self) -> None:
        """Fail before anything is submitted if the provider cannot be used (missing credentials)."""

    def tuned_model_id(self, model: DesiredModel, owner: Owner) -> str:
        """Derived from the owner, name and fingerprint, so a retried create finds the job it already started
        and no other state or workspace ever derives the same id."""

    def submit(self, model: DesiredModel, tuned_model_id: str, owner: Owner) -> str:
        """Start tuning, recording the owner's tag on the remote object; return the job handle. Raises
        AlreadyExistsError when the id is taken by an object of this owner, NotOwnedError when by another's."""

    def poll(self, tuned_model_id: str, handle: str | None) -> JobStatus: ...

    def update(self, tuned_model_id: str, display_name: str, description: str) -> None: ...

    def delete(self, tuned_model_id: str, handle: str | None, owner: Owner) -> None:
        """Delete the tuned model (or cancel its job if it is still tuning); already gone is not an error.
        Raises NotOwnedError, deleting nothing, when the object carries another owner's tag."""

    def list_models(self) -> list[ObservedModel]:
        """Everything the provider holds, in as few calls as paging allows."""

    def get_model(self, tuned_model_id: str) -> ObservedModel | None: ...

    def predict(self, tuned_model_id: str, text: str) -> str: ...

    def info(self) -> dict:
        """SDK name and version, recorded in state for reproducibility."""
