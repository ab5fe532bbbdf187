"""The error tree. Every error a user can cause carries where (file:line or provider code) and a remedy.

The CLI prints these without a traceback and exits 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import importlib
import re


class TunerError(Exception):
    """Base of every expected failure."""

    def __init__(self, message: str, remedy: str | None = None):
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return self.message


class Problem(str):
    """One diagnostic, printed as `file:line[:column]: path: message`, whose parts stay readable (validate --json).

    A str, so every list of problems keeps working as text; a problem written as plain text is parsed instead.
    """

    def __new__(cls, file: str, message: str, line: int | None = None, column: int | None = None,
                path: str | None = None, severity: str = "error") -> Problem:
        where = ":".join(str(part) for part in (file, line, column) if part is not None)
        self = super().__new__(cls, ": ".join(part for part in (where, path, message) if part))
        self.file, self.line, self.column, self.path, self.message, self.severity = (
            file, line, column, path, message, severity)
        return self

    def __reduce__(self):  # pickled to and from the dataset scanner's worker processes
        return Problem, (self.file, self.message, self.line, self.column, self.path, self.severity)


# `file:line[:column]: [dotted.path: ]message`, the form every problem is written in.
_PROBLEM_TEXT = re.compile(r"^(?P<file>[^:\s][^:]*?)(?::(?P<line>\d+))?(?::(?P<column>\d+))?: "
                           r"(?:(?P<path>[A-Za-z_][\w\-]*(?:\.[\w\-]+)+|\(top level\)): )?(?P<message>.*)$", re.S)


def diagnostic(problem: str, severity: str = "error") -> dict:
    """A problem as {file, line, column, path, message, severity}."""
    if not isinstance(problem, Problem):
        match = _PROBLEM_TEXT.match(problem)
        if match is None:
            return {"file": None, "line": None, "column": None, "path": None, "message": problem, "severity": severity}
        line, column = match["line"], match["column"]
        problem = Problem(match["file"], match["message"], int(line) if line else None,
                          int(column) if column else None, match["path"], severity)
    return {"file": problem.file, "line": problem.line, "column": problem.column, "path": problem.path,
            "message": problem.message, "severity": problem.severity}


class SpecError(TunerError):
    """One or more spec files are invalid. `problems` holds every `file:line: path: reason`."""

    def __init__(self, problems: list[str], remedy: str | None = None):
        self.problems = problems
        super().__init__("\n".join(problems), remedy)


class DatasetError(TunerError):
    """A dataset is invalid. `problems` holds `file:line:column: reason` lines."""

    def __init__(self, problems: list[str], remedy: str | None = None):
        self.problems = problems
        super().__init__("\n".join(problems), remedy)


class PlanError(TunerError):
    """The plan cannot be made or applied (prevent_destroy, stale plan file, budget...)."""


class StateError(TunerError):
    """The state file is unreadable or inconsistent."""


class StateLockedError(StateError):
    """Another process holds the state lock."""


class ProviderError(TunerError):
    """A provider refused or failed a call.

    kind is one of:
      retryable - transient (unavailable, deadline): retry with bounded backoff
      quota     - resource exhausted: requeue, wait and retry, never fail the apply for it
      fatal     - permission, invalid argument, not found: stop this job at once, show the remedy
    """

    RETRYABLE = "retryable"
    QUOTA = "quota"
    FATAL = "fatal"

    def __init__(self, message: str, kind: str = FATAL, code: str | None = None, remedy: str | None = None):
        super().__init__(message, remedy)
        self.kind = kind
        self.code = code


class AlreadyExistsError(ProviderError):
    """The tuned model id is taken by an object carrying this state's identity: the job was already submitted
    (by us, earlier); adopt it. A provider raises NotOwnedError instead when the identity is another's."""

    def __init__(self, message: str):
        super().__init__(message, kind=ProviderError.FATAL, code="ALREADY_EXISTS")


class NotOwnedError(ProviderError):
    """The remote object carries another tuner state's identity (another workspace or lineage): never adopt,
    update or delete it."""

    def __init__(self, message: str, remedy: str | None = None):
        super().__init__(message, kind=ProviderError.FATAL, code="NOT_OWNED", remedy=remedy)


class DatasetChangedError(ProviderError):
    """A dataset no longer holds what the plan hashed. Raised by the reader every provider reads through,
    so that job fails before anything is submitted; fatal for the job, never retried."""

    def __init__(self, message: str):
        super().__init__(message, kind=ProviderError.FATAL, code="DATASET_CHANGED",
                         remedy="run `tuner plan` again to review the data as it is now, then apply that plan")


def is_network_error(exc: BaseException) -> bool:
    """True for a refused, reset or timed-out connection, whichever HTTP library the SDK used, also when it
    ends a client's own retries (google.api_core's RetryError keeps the last failure as `cause`)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and is_network_error(cause):
        return True
    return isinstance(exc, _network_error_classes())


@functools.cache
def _network_error_classes() -> tuple[type[BaseException], ...]:
    # requests carries google-generativeai (REST) and google-cloud-storage; google-genai sends with httpx or
    # its fork httpx2, whichever is installed (the 3.x releases depend on httpx2), so neither is imported
    # unconditionally; google-auth wraps the failures of a token refresh.
    classes: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, name in (("requests.exceptions", "ConnectionError"), ("requests.exceptions", "Timeout"),
                         ("httpx", "TransportError"), ("httpx2", "TransportError"),
                         ("google.auth.exceptions", "TransportError")):
        try:
            classes.append(getattr(importlib.import_module(module), name))
        except ImportError:
            continue
    return tuple(classes)


def first_line(text: object) -> str:
    """The first line of an error's text (SDK messages can carry whole HTTP responses)."""
    lines = str(text).strip().splitlines()
    return lines[0] if lines else type(text).__name__
