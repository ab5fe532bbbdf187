"""Slots: a provider's concurrency cap is granted longest job first, whatever order the threads arrive in."""

import threading

from runner.slots import Slots


def _waiter(slots: Slots, rank: int, granted: list[int], arrived: threading.Event) -> threading.Thread:
    def run():
        arrived.set()
        with slots.held(rank):
            granted.append(rank)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wait_until_queued(slots: Slots, count: int) -> None:
    """Until COUNT threads are waiting (the test's only synchronisation: no sleeps)."""
    while True:
        with slots._changed:
            if len(slots._waiting) == count:
                return
        threading.Event().wait(0.001)


def test_waiters_are_served_by_rank_not_by_arrival():
    slots, granted = Slots(1), []
    with slots.held(0):  # the one slot is taken
        threads = []
        for count, rank in enumerate([3, 1, 2], start=1):  # arrive in the wrong order
            threads.append(_waiter(slots, rank, granted, threading.Event()))
            _wait_until_queued(slots, count)
    for thread in threads:
        thread.join(timeout=10)
    assert granted == [1, 2, 3]  # a plain Semaphore serves them as they arrived: [3, 1, 2]


def test_every_free_slot_is_handed_out_at_once():
    slots, granted = Slots(2), []
    inside, leave = threading.Barrier(3), threading.Event()

    def run(rank):
        with slots.held(rank):
            granted.append(rank)
            inside.wait(timeout=10)  # both holders inside together: two slots were granted
            leave.wait(timeout=10)

    threads = [threading.Thread(target=run, args=(rank,)) for rank in (5, 4)]
    for thread in threads:
        thread.start()
    inside.wait(timeout=10)
    leave.set()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(granted) == [4, 5]
