"""Retrying provider calls: quota errors wait near the poll interval, transient errors back off exponentially
with full jitter for a bounded number of attempts, fatal errors stop at once, and a stop request (Ctrl-C)
ends any wait at once.

tenacity rather than google.api_core.retry: api_core's retry sleeps with time.sleep (no injected clock, so
tests would sleep and Ctrl-C could not cut a worker thread's wait short) and is bounded by a deadline, not by
a number of attempts; tenacity takes the sleep function and the stop and wait rules as arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception, wait_random_exponential

from runner.errors import ProviderError

T = TypeVar("T")


class Interrupted(Exception):
    """A stop was requested while waiting; the job is left running and recorded in state."""


class Waiter(Protocol):
    def wait(self, seconds: float) -> bool:
        """Wait, returning True early when a stop (Ctrl-C) was requested."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8  # transient errors, per call; every error when bounded
    transient_base_seconds: float = 1.0
    cap_seconds: float = 60.0

    def call(self, fn: Callable[[], T], clock: Waiter, poll_seconds: float,
             on_wait: Callable[[ProviderError, float], None] | None = None, bounded: bool = False) -> T:
        """fn(), retried on quota and transient provider errors. Quota errors retry without limit (a slot frees
        when a job ends) unless `bounded` (a refresh must end); running out of attempts raises the last error,
        saying so."""
        quota = wait_random_exponential(multiplier=poll_seconds, min=poll_seconds / 2,
                                        max=min(self.cap_seconds, 8 * poll_seconds))  # never much past a poll
        transient = wait_random_exponential(multiplier=min(poll_seconds, self.transient_base_seconds),
                                            max=self.cap_seconds)

        def give_up(state: RetryCallState) -> bool:
            return state.attempt_number >= self.attempts and (bounded or _error(state).kind != ProviderError.QUOTA)

        def sleep(seconds: float) -> None:
            if clock.wait(seconds):
                raise Interrupted()

        retrying = Retrying(
            sleep=sleep, stop=give_up,
            wait=lambda state: (quota if _error(state).kind == ProviderError.QUOTA else transient)(state),
            retry=retry_if_exception(lambda e: isinstance(e, ProviderError) and e.kind != ProviderError.FATAL),
            before_sleep=(lambda state: on_wait(_error(state), state.upcoming_sleep)) if on_wait else None,
        )
        try:
            return retrying(fn)
        except RetryError as gave_up:
            last = gave_up.last_attempt
            error = last.exception()
            raise replace_message(error, f"{error.message} (gave up after {last.attempt_number} attempts)") from None


def _error(state: RetryCallState) -> ProviderError:
    return state.outcome.exception()


def replace_message(error: ProviderError, message: str) -> ProviderError:
    """The same error with another message; its kind stays, so callers still tell transient from refused."""
    return ProviderError(message, kind=error.kind, code=error.code, remedy=error.remedy)
