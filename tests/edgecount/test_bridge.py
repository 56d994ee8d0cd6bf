"""The thread→loop bridge with a real thread and a real event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from edgecount.bridge import LoopBridge
from tests.conftest import eventually


def in_thread(work: threading.Thread) -> None:
    """Run ``work`` to its end while the loop waits (so the bridge's drain runs after it)."""
    work.start()
    work.join(5)
    assert not work.is_alive()


async def test_items_and_calls_arrive_on_the_loop_in_order() -> None:
    loop = asyncio.get_running_loop()
    seen: list[object] = []
    threads: set[int] = set()
    done = asyncio.Event()

    def deliver(items: list[int]) -> None:
        threads.add(threading.get_ident())
        seen.append(list(items))

    def event(name: str) -> None:
        threads.add(threading.get_ident())
        seen.append(name)
        if name == "end":
            done.set()

    bridge: LoopBridge[int] = LoopBridge(loop, deliver, maxsize=100)

    def work() -> None:
        for value in range(3):
            assert bridge.put(value)
        assert bridge.call(event, "middle")
        assert bridge.put(3)
        assert bridge.call(event, "end")

    in_thread(threading.Thread(target=work))  # the loop waits: all goes in one drain
    await asyncio.wait_for(done.wait(), 5)
    assert seen == [[0, 1, 2], "middle", [3], "end"]
    assert threads == {threading.get_ident()}  # only ever on the loop's thread
    assert bridge.dropped == 0
    assert bridge.waiting == 0


async def test_a_full_bridge_drops_the_arriving_item_and_counts_it() -> None:
    loop = asyncio.get_running_loop()
    got: list[list[int]] = []
    bridge: LoopBridge[list[int]] = LoopBridge(loop, got.extend, maxsize=2, weigh=len)
    accepted: list[bool] = []
    # the loop is not running the drain while this thread hands over: the bridge fills up

    def work() -> None:
        accepted.extend(bridge.put([i] * 3) for i in range(4))

    in_thread(threading.Thread(target=work))
    assert accepted == [True, True, False, False]
    assert bridge.dropped == 6  # two batches of three reads
    assert bridge.waiting == 2
    done = asyncio.Event()
    bridge.call(done.set)
    await asyncio.wait_for(done.wait(), 5)
    assert got == [[0, 0, 0], [1, 1, 1]]  # the oldest were kept


async def test_keep_newest_drops_the_oldest_waiting_item() -> None:
    loop = asyncio.get_running_loop()
    got: list[int] = []
    bridge: LoopBridge[int] = LoopBridge(loop, got.extend, maxsize=2, keep="newest")
    done = asyncio.Event()

    def work() -> None:
        for value in range(5):
            assert bridge.put(value)
        bridge.call(done.set)

    in_thread(threading.Thread(target=work))
    await asyncio.wait_for(done.wait(), 5)
    assert got == [3, 4]
    assert bridge.dropped == 3


async def test_a_failing_handler_is_logged_and_the_rest_still_arrives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    got: list[int] = []
    done = asyncio.Event()

    def deliver(items: list[int]) -> None:
        if items == [0]:
            raise ValueError("a bug")
        got.extend(items)

    bridge: LoopBridge[int] = LoopBridge(loop, deliver, maxsize=10, name="cam")

    def work() -> None:
        bridge.put(0)
        bridge.call(lambda: None)
        bridge.put(1)
        bridge.call(done.set)

    in_thread(threading.Thread(target=work))
    await asyncio.wait_for(done.wait(), 5)
    assert got == [1]
    assert "cam: a handler failed on the event loop" in caplog.text


def test_handing_over_after_the_loop_closed_is_safe() -> None:
    loop = asyncio.new_event_loop()
    got: list[int] = []
    bridge: LoopBridge[int] = LoopBridge(loop, got.extend, maxsize=10)
    assert bridge.put(1)  # scheduled; the loop closes before it ever runs
    loop.close()
    results: list[bool] = []

    def work() -> None:
        results.append(bridge.put(2))
        results.append(bridge.call(got.append, 3))

    in_thread(threading.Thread(target=work))
    assert results == [False, False]
    assert bridge.dropped == 2  # the waiting item and the one after the close
    assert got == []


def test_maxsize_must_be_positive() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="maxsize"):
            LoopBridge(loop, print, maxsize=0)
    finally:
        loop.close()


async def test_a_thread_handing_over_while_the_loop_runs_loses_nothing() -> None:
    loop = asyncio.get_running_loop()
    got: list[int] = []
    done = asyncio.Event()
    bridge: LoopBridge[int] = LoopBridge(loop, got.extend, maxsize=100_000)

    def work() -> None:
        for value in range(20_000):
            bridge.put(value)
        bridge.call(done.set)

    await asyncio.to_thread(work)
    await asyncio.wait_for(done.wait(), 5)
    assert got == list(range(20_000))
    assert bridge.dropped == 0


# -- back-pressure: a full bridge makes the thread wait --------------------------------------


def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Block the calling thread (the loop's, on purpose) until ``predicate()`` holds.

    For the bridge's counters, which have no event to wait on; checks every millisecond.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


def run_until(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    """Run a loop that is not running yet until ``event`` is set (at most 5 s)."""
    loop.run_until_complete(asyncio.wait_for(event.wait(), 5))


def test_a_full_blocking_bridge_makes_the_thread_wait_then_delivers_all_in_order() -> None:
    loop = asyncio.new_event_loop()
    got: list[int] = []
    done = asyncio.Event()
    bridge: LoopBridge[int] = LoopBridge(loop, got.extend, maxsize=2, block_timeout=30)
    accepted: list[bool] = []

    def work() -> None:
        accepted.extend(bridge.put(value) for value in range(10))
        bridge.call(done.set)

    producer = threading.Thread(target=work)
    try:
        producer.start()
        until(lambda: bridge.waits == 1)  # the loop does not run: the third put waits
        assert producer.is_alive()
        assert bridge.blocked == 1
        assert bridge.waiting == 2
        assert bridge.dropped == 0
        run_until(loop, done)  # each drain makes room, the thread hands over the rest
        producer.join(5)
    finally:
        loop.close()
    assert got == list(range(10))
    assert accepted == [True] * 10
    assert bridge.dropped == 0
    assert bridge.blocked == 0
    assert bridge.waited_seconds > 0


def test_a_wait_that_runs_out_drops_and_counts_and_the_next_put_does_not_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    got: list[list[int]] = []
    bridge: LoopBridge[list[int]] = LoopBridge(
        loop, got.extend, maxsize=1, weigh=len, block_timeout=0.1, name="r1"
    )
    accepted: list[bool] = []

    def work() -> None:
        accepted.extend(bridge.put([i] * 3) for i in range(3))

    try:
        in_thread(threading.Thread(target=work))  # nobody drains: the wait runs out
        assert accepted == [True, False, False]
        assert bridge.waits == 1  # the put after the timeout dropped at once
        assert bridge.dropped == 6
        assert "r1: no room for 0.1 s" in caplog.text
        done = asyncio.Event()
        bridge.call(done.set)
        run_until(loop, done)  # the drain makes room: puts wait again when full
        in_thread(threading.Thread(target=work))
        assert accepted[3:] == [True, False, False]
        assert bridge.waits == 2
    finally:
        loop.close()
    assert got == [[0, 0, 0]]


def test_closing_the_loop_releases_a_waiting_thread() -> None:
    loop = asyncio.new_event_loop()
    bridge: LoopBridge[int] = LoopBridge(loop, print, maxsize=1, block_timeout=60)
    accepted: list[bool] = []
    producer = threading.Thread(target=lambda: accepted.extend(map(bridge.put, (0, 1))))
    producer.start()
    until(lambda: bridge.waits == 1)
    loop.close()  # the scheduled drain will never run
    producer.join(5)
    assert not producer.is_alive()
    assert accepted == [True, False]
    assert bridge.dropped == 2  # the waiting item and the one that waited
    assert bridge.waiting == 0


def test_closing_the_bridge_releases_a_waiting_thread_and_later_puts_do_not_wait() -> None:
    loop = asyncio.new_event_loop()
    bridge: LoopBridge[int] = LoopBridge(loop, print, maxsize=1, block_timeout=60)
    accepted: list[bool] = []
    producer = threading.Thread(target=lambda: accepted.extend(map(bridge.put, (0, 1))))
    try:
        producer.start()
        until(lambda: bridge.waits == 1)
        bridge.close()
        producer.join(5)
        assert not producer.is_alive()
        in_thread(threading.Thread(target=lambda: accepted.append(bridge.put(2))))
    finally:
        loop.close()
    assert accepted == [True, False, False]
    assert bridge.waits == 1
    assert bridge.dropped == 2


async def test_a_put_on_the_loop_thread_never_waits() -> None:
    got: list[int] = []
    bridge: LoopBridge[int] = LoopBridge(
        asyncio.get_running_loop(), got.extend, maxsize=1, block_timeout=5
    )
    assert bridge.put(0)
    assert not bridge.put(1)  # full, and waiting here would stop the drain forever
    assert bridge.waits == 0
    assert bridge.dropped == 1
    done = asyncio.Event()
    bridge.call(done.set)
    await asyncio.wait_for(done.wait(), 5)
    assert got == [0]


async def test_with_room_on_release_the_thread_waits_for_the_consumer() -> None:
    consumer: list[int] = []  # the loop's own queue: delivered, not taken yet
    bridge: LoopBridge[int] = LoopBridge(
        asyncio.get_running_loop(),
        consumer.extend,
        maxsize=2,
        block_timeout=30,
        room_on="release",
    )
    producer = asyncio.create_task(asyncio.to_thread(lambda: [bridge.put(v) for v in range(6)]))
    await eventually(lambda: bridge.waits == 1 and consumer == [0, 1])
    assert bridge.waiting == 0  # drained, yet the room is held by what the consumer holds
    taken: list[int] = []
    while len(taken) < 6:  # the consumer takes one item at a time, each gives room back
        await eventually(lambda: len(consumer) > len(taken))
        taken.append(consumer[len(taken)])
        bridge.release()
    assert await producer == [True] * 6
    assert taken == list(range(6))
    assert bridge.dropped == 0


def test_keep_newest_with_nothing_waiting_drops_the_arriving_item() -> None:
    loop = asyncio.new_event_loop()
    got: list[int] = []
    bridge: LoopBridge[int] = LoopBridge(
        loop, got.extend, maxsize=1, keep="newest", room_on="release"
    )
    try:
        assert bridge.put(0)
        done = asyncio.Event()
        bridge.call(done.set)
        run_until(loop, done)  # delivered, not released: the room is still taken
        assert not bridge.put(1)
    finally:
        loop.close()
    assert got == [0]
    assert bridge.dropped == 1
