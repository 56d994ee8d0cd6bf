"""Back-pressure from the read queue to sllurp's socket thread, against the LLRP simulator.

The simulator runs on a thread of its own (:class:`SimulatorThread`), so the test can stall
the gateway's event loop, or leave the read queue untaken, while the simulated reader keeps
inventorying and sending reports. With ``overflow="block"`` the socket thread waits for room
and the backlog stays in TCP (the reader's side): every tag report sent arrives, none is
dropped. With ``overflow="drop"`` the same stall drops and counts.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Literal, Self

import pytest

from drivers.llrp.driver import LlrpReader, LlrpSettings
from simulators.llrp.threaded import SimulatorThread
from simulators.shelf import shelf_scene

QUEUE_SIZE = 2
PER_REPORT = 10
BACKLOG = 1000
"""Tag reports the simulator sends while the gateway takes nothing: 50 times the queue."""


def settings(sim: SimulatorThread, **changes: Any) -> LlrpSettings:
    """A reader with a tiny queue (2 reports of 10 tags) and a slow keepalive (30 s)."""
    values: dict[str, Any] = {
        "name": "aisle-a",
        "host": sim.host,
        "port": sim.port,
        "antennas": (1, 2, 3, 4),
        "keepalive_seconds": 30.0,
        "report_every_n_tags": PER_REPORT,
        "queue_size": QUEUE_SIZE,
    }
    return LlrpSettings(**(values | changes))


class Consumer:
    """What a zone scan does with the queue: take every batch, count its reads."""

    def __init__(self, reader: LlrpReader) -> None:
        self.reader = reader
        self.reads = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._take(), name="consumer")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _take(self) -> None:
        queue = self.reader.queue
        while True:
            self.reads += len(await queue.get())
            queue.task_done()


async def stop_and_take(reader: LlrpReader, sim: SimulatorThread) -> int:
    """Stop the inventory and wait until the queue is taken; the tag reports the reader sent."""
    await reader.stop_inventory()  # every report sent before is handed over by now
    await asyncio.wait_for(reader.queue.join(), 10)
    return sim.stats.tag_reports_sent


@pytest.mark.parametrize("overflow", ["block", "drop"])
async def test_a_stalled_event_loop_loses_nothing_when_the_thread_blocks(
    overflow: Literal["block", "drop"],
) -> None:
    with SimulatorThread(shelf_scene(tags_per_location=50)) as sim:
        reader = LlrpReader(settings(sim, overflow=overflow))
        await reader.start()
        try:
            async with Consumer(reader) as consumer:
                await reader.start_inventory()
                # A synchronous step on the loop (a slow tally, say): no drain, no consumer,
                # while the reader sends 50 times what the queue holds.
                sim.wait_for(lambda stats: stats.tag_reports_sent >= BACKLOG, timeout=10)
                sent = await stop_and_take(reader, sim)
        finally:
            await reader.stop()
    health = reader.health()
    assert sent >= BACKLOG
    assert reader.failures == 0
    if overflow == "block":
        assert health.dropped == 0
        assert consumer.reads == sent
        assert health.extra["handover_waits"] >= 1  # the socket thread did wait
    else:
        assert health.dropped > 0
        assert consumer.reads + health.dropped == sent


async def test_a_consumer_that_falls_behind_keeps_the_backlog_in_the_reader() -> None:
    with SimulatorThread(shelf_scene(tags_per_location=50)) as sim:
        reader = LlrpReader(settings(sim))  # overflow="block" is the default
        await reader.start()
        try:
            await reader.start_inventory()
            # The loop runs (it drains the hand-over) but nobody takes from the queue.
            await asyncio.to_thread(
                sim.wait_for, lambda stats: stats.tag_reports_sent >= BACKLOG, 10
            )
            queued = reader.health().reads
            assert reader.queue.qsize() == QUEUE_SIZE
            assert queued <= QUEUE_SIZE * PER_REPORT  # the rest waits in TCP, not here
            assert reader.health().dropped == 0
            async with Consumer(reader) as consumer:
                sent = await stop_and_take(reader, sim)
        finally:
            await reader.stop()
    health = reader.health()
    assert sent >= BACKLOG
    assert health.dropped == 0
    assert consumer.reads == sent
    assert reader.failures == 0


async def test_a_consumer_that_never_takes_costs_reads_but_not_the_link() -> None:
    """Half a keepalive of waiting, then the reads drop and count; keepalives still answered."""
    with SimulatorThread(shelf_scene(tags_per_location=50)) as sim:
        reader = LlrpReader(settings(sim, keepalive_seconds=1.0))
        await reader.start()
        try:
            await reader.start_inventory()
            acks = sim.stats.keepalive_acks
            # Four keepalive periods with nobody taking: past the 0.5 s wait and the 1.5 s
            # silence the watchdog would call a dead link.
            await asyncio.to_thread(
                sim.wait_for, lambda stats: stats.keepalive_acks >= acks + 4, 15
            )
            assert reader.connected
            assert reader.failures == 0
            await reader.stop_inventory()
            sent = sim.stats.tag_reports_sent
        finally:
            await reader.stop()
    health = reader.health()
    assert health.dropped > 0
    assert health.reads + health.dropped == sent  # nothing vanished
    assert health.extra["handover_waits"] == 1  # one wait, then drops until room frees


async def test_a_stop_confirmed_behind_a_backlog_is_late_not_failed() -> None:
    """The stop's confirmation waits behind reports not taken yet; so does its deadline."""
    with SimulatorThread(shelf_scene(tags_per_location=50)) as sim:
        reader = LlrpReader(settings(sim, connect_timeout_seconds=1.0))
        await reader.start()
        try:
            assert await reader.wait_connected(30)
            await reader.start_inventory()
            await asyncio.to_thread(
                sim.wait_for, lambda stats: stats.tag_reports_sent >= BACKLOG, 10
            )
            stop = asyncio.create_task(reader.stop_inventory())
            # The scan's consumer is busy for 1.5 s (the scenario, not a synchronisation):
            # the confirmation waits behind the backlog, past the stop's 1 s deadline.
            await asyncio.sleep(1.5)
            assert not stop.done()
            async with Consumer(reader) as consumer:
                await asyncio.wait_for(stop, 30)  # raises if the reader did not confirm
                await asyncio.wait_for(reader.queue.join(), 30)
                sent = sim.stats.tag_reports_sent
        finally:
            await reader.stop()
    health = reader.health()
    assert health.dropped == 0
    assert consumer.reads == sent
    assert reader.failures == 0
