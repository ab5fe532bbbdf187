"""The retry rules of provider calls, on an injected clock: nothing here sleeps."""

from __future__ import annotations

import threading

import pytest

from runner.apply import Clock
from runner.errors import ProviderError
from runner.retry import Interrupted, RetryPolicy
from tests.conftest import NoWaitClock

POLL = 10.0


def failing(*errors: ProviderError):
    """A call that raises each of ERRORS in turn, then answers "done"; the calls made are counted."""
    remaining = list(errors)
    calls = []

    def call():
        calls.append(1)
        if remaining:
            raise remaining.pop(0)
        return "done"

    call.calls = calls
    return call


def quota() -> ProviderError:
    return ProviderError("exhausted", ProviderError.QUOTA, "RESOURCE_EXHAUSTED")


def transient() -> ProviderError:
    return ProviderError("unavailable", ProviderError.RETRYABLE, "UNAVAILABLE")


def test_quota_errors_wait_near_the_poll_interval_without_limit():
    clock = NoWaitClock()
    assert RetryPolicy().call(failing(*[quota() for _ in range(30)]), clock, POLL) == "done"
    assert len(clock.waited) == 30
    assert all(POLL / 2 <= wait <= 8 * POLL for wait in clock.waited)


def test_transient_errors_back_off_with_full_jitter_and_give_up_after_the_attempts_saying_so():
    clock = NoWaitClock()
    call = failing(*[transient() for _ in range(20)])
    with pytest.raises(ProviderError) as gave_up:
        RetryPolicy().call(call, clock, POLL)
    assert gave_up.value.message == "unavailable (gave up after 8 attempts)"
    assert gave_up.value.kind == ProviderError.RETRYABLE and len(call.calls) == 8
    assert len(clock.waited) == 7
    assert all(0 <= wait <= min(60, 2 ** attempt) for attempt, wait in enumerate(clock.waited))


def test_a_bounded_call_gives_up_on_quota_errors_too():
    clock = NoWaitClock()
    with pytest.raises(ProviderError, match="gave up after 8 attempts"):
        RetryPolicy().call(failing(*[quota() for _ in range(20)]), clock, POLL, bounded=True)


def test_a_fatal_error_stops_at_once():
    clock = NoWaitClock()
    call = failing(ProviderError("denied", ProviderError.FATAL, "PERMISSION_DENIED"))
    with pytest.raises(ProviderError, match=r"^denied$"):
        RetryPolicy().call(call, clock, POLL)
    assert len(call.calls) == 1 and clock.waited == []


def test_a_stop_request_ends_the_wait_at_once():
    stop = threading.Event()
    stop.set()  # Ctrl-C came before the wait: Event.wait returns at once, whatever the delay
    call = failing(quota())
    with pytest.raises(Interrupted):
        RetryPolicy(cap_seconds=3600).call(call, Clock(stop), 3600.0)
    assert len(call.calls) == 1


def test_every_wait_is_announced_with_the_error_code():
    announced = []
    RetryPolicy().call(failing(transient(), quota()), NoWaitClock(), POLL,
                       on_wait=lambda error, delay: announced.append((error.code, delay >= 0)))
    assert announced == [("UNAVAILABLE", True), ("RESOURCE_EXHAUSTED", True)]
