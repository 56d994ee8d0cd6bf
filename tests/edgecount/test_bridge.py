"""The thread→loop bridge with a real thread and a real event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from edgecount.bridge import LoopBridge


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
