"""The Provider protocol and the capabilities a provider declares about itself.

The core never asks which provider it is talking to; it reads these declarations instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from runner.errors import ProviderError, SpecError

if TYPE_CHECKING:
    from runner.identity import Owner
    from runner.planned import PlannedModel
    from runner.providers.planning import ModelDatasets, PlanResponse
    from runner.spec import ModelSpec

CREATING, ACTIVE, FAILED = "creating", "active", "failed"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# The rule for a setting that names the environment variable holding a key: it must look like a key
# variable, and not be a well-known credential of another service (a spec arriving in a pull request
# could otherwise send, say, the CI's GITHUB_TOKEN to an endpoint it also chose).
KEY_VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*(API_KEY|_KEY|_TOKEN)$")
OTHER_SERVICES_CREDENTIALS = frozenset({
    "GITHUB_TOKEN", "GH_TOKEN", "GH_ENTERPRISE_TOKEN", "ACTIONS_RUNTIME_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "CI_JOB_TOKEN", "CI_JOB_JWT_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_CLIENT_SECRET_KEY",
    "NPM_TOKEN", "NODE_AUTH_TOKEN", "PYPI_API_TOKEN", "PYPI_TOKEN", "CODECOV_TOKEN", "VAULT_TOKEN",
    "DOCKER_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY",
    "SLACK_BOT_TOKEN", "SSH_PRIVATE_KEY", "GPG_PRIVATE_KEY",
})


@dataclass(frozen=True)
class Capabilities:
    max_concurrent_jobs: int = 5
    poll_seconds: float = 5.0  # how often apply asks a running job for its state
    # The job runs to its end inside submit (local training): apply then passes submit a `progress` callback,
    # told a JobStatus after each epoch, as a poll would be.
    trains_in_submit: bool = False
    system_prompt: bool = False  # predict takes the model's dataset.system_prompt (its plan accepts one)


@dataclass(frozen=True)
class JobStatus:
    state: str  # CREATING | ACTIVE | FAILED (normalised); the provider's own word goes in `detail`
    detail: str = ""
    message: str = ""  # the provider's error message when FAILED
    progress: float | None = None  # 0..1 when the provider reports it
    epoch: int | None = None  # epochs completed, of `epochs`, when the provider reports them
    epochs: int | None = None
    loss: float | None = None  # the latest training loss the provider reports
    tuned_model_id: str | None = None  # the final model resource, when it differs from the one planned
    resources: dict = field(default_factory=dict)  # provider resources worth recording (endpoint, ...)


@dataclass(frozen=True)
class ObservedModel:
    """What the provider really holds, as returned by one list call."""

    tuned_model_id: str
    display_name: str | None  # None: the provider holds no such field (state's value stands)
    description: str | None
    state: str
    base_model: str = ""
    hyperparameters: dict = field(default_factory=dict)  # what the provider reports, where it does
    owner: str | None = None  # the tuner owner tag the object carries (runner.identity); None: no tuner identity

    def held(self, field: str, recorded: str) -> str:
        """The provider's display_name or description, or RECORDED where the provider holds no such field."""
        value = getattr(self, field)
        return recorded if value is None else value


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


def is_loopback(url: str | None) -> bool:
    return bool(url) and urlsplit(url).hostname in LOOPBACK_HOSTS


def checked_endpoint(url: str | None, setting: str) -> str | None:
    """Credentials are sent to the endpoint: https, or plain http to this machine only (the emulators)."""
    if not url:
        return None
    parts = urlsplit(url)
    if (parts.scheme == "https" and parts.hostname) or (parts.scheme == "http" and is_loopback(url)):
        return url
    raise SpecError([f"{setting}: {url!r}: an endpoint must be https:// (plain http:// only to a loopback "
                     f"address: {', '.join(sorted(LOOPBACK_HOSTS))}), as credentials are sent to it"])


def checked_key_variable(name: str, setting: str, own: str | None = None) -> str:
    """See KEY_VARIABLE: the one rule for every setting that names a key's environment variable (`own`: the
    provider's own well-known variable, which is no other service's credential for it)."""
    if KEY_VARIABLE.match(name) and (name not in OTHER_SERVICES_CREDENTIALS or name == own):
        return name
    why = "a well-known credential of another service" if name in OTHER_SERVICES_CREDENTIALS else \
        "not a key variable (upper case, ending in API_KEY, _KEY or _TOKEN)"
    raise SpecError([f"{setting}: {name!r} is {why}; tuner sends the value of this variable to the provider"],
                    remedy="name the variable that holds this provider's key, e.g. GOOGLE_API_KEY")


def ask(provider: Provider, tuned_model_id: str, text: str, system_prompt: str = "") -> str:
    """A tuned model's answer, given the system prompt it was trained with where its provider takes one (the
    others' plans refuse a system prompt, so they never train with one)."""
    if provider.capabilities.system_prompt:
        return provider.predict(tuned_model_id, text, system_prompt=system_prompt)
    return provider.predict(tuned_model_id, text)


class Provider(Protocol):
    name: str
    capabilities: Capabilities

    def plan(self, spec: ModelSpec, datasets: ModelDatasets | None) -> PlanResponse:
        """The planned model: the provider's defaults filled in, its accepted keys and limits checked, the
        attribute paths that force replacement and the training it expects (see plan_model)."""

    def import_attributes(self, planned: PlannedModel, seen: ObservedModel) -> dict:
        """How a model made outside tuner is recorded (see imported_attributes)."""

    def recorded_settings(self) -> dict:
        """The settings that decide where credentials go and what is billed (endpoint, key variable name,
        project...), recorded in state and shown in plans when they change. Never a secret value."""

    def preflight(self) -> None:
        """Fail before anything is submitted if the provider cannot be used (missing credentials)."""

    def tuned_model_id(self, model: PlannedModel, owner: Owner) -> str:
        """Derived from the owner, name and fingerprint, so a retried create finds the job it already started
        and no other state or workspace ever derives the same id."""

    def submit(self, model: PlannedModel, tuned_model_id: str, owner: Owner) -> str:
        """Start tuning, recording the owner's tag on the remote object; return the job handle. Raises
        AlreadyExistsError when the id is taken by an object of this owner, NotOwnedError when by another's."""

    def poll(self, tuned_model_id: str, handle: str | None) -> JobStatus:
        """The job's state, and how far it is (progress, epoch, loss) when the provider says."""

    def update(self, tuned_model_id: str, display_name: str, description: str) -> None: ...

    def delete(self, tuned_model_id: str, handle: str | None, owner: Owner) -> None:
        """Delete the tuned model (or cancel its job if it is still tuning); already gone is not an error.
        Raises NotOwnedError, deleting nothing, when the object carries another owner's tag."""

    def list_models(self) -> list[ObservedModel]:
        """Everything the provider holds, in as few calls as paging allows."""

    def get_model(self, tuned_model_id: str) -> ObservedModel | None: ...

    def predict(self, tuned_model_id: str, text: str) -> str:
        """The model's answer; a provider declaring Capabilities.system_prompt also takes `system_prompt=`."""

    def info(self) -> dict:
        """SDK name and version, recorded in state for reproducibility."""
