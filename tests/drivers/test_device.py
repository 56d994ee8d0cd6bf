"""The Device base every driver derives from, with a scripted fake link and a real thread."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from drivers.base import Device, DeviceHealth, HealthState
from edgecount.backoff import Backoff

WAIT = 5.0


class FakeLink(Device[int]):
    """Connect attempts fail as scripted; a thread hands items over while connected."""

    kind = "fake"
    expected = (OSError,)

    def __init__(self, script: list[BaseException | None], *, queue_size: int = 100) -> None:
        super().__init__(
            "fake-1",
            Backoff(initial=0.001, maximum=0.002, rng=random.Random(1)),
            watch_period=0.01,
            queue_size=queue_size,
        )
        self.script = script
        self.attempts = 0
        self.closed = 0
        self.items: list[int] = []
        self.bad_check: str | None = None

    async def _connect(self) -> None:
        outcome = self.script[min(self.attempts, len(self.script) - 1)]
        self.attempts += 1
        if outcome is not None:
            raise outcome

    async def _disconnect(self) -> None:
        self.closed += 1

    async def _check_link(self) -> str | None:
        why, self.bad_check = self.bad_check, None
        return why

    def _deliver(self, items: list[int]) -> None:
        self.items.extend(items)
        self._notify()

    def from_thread(self, values: range, lost: str | None = None) -> None:
        """What a driver's thread does: hand items over, then maybe report the link lost."""

        def work() -> None:
            for value in values:
                self._hand_over(value)
            if lost is not None:
                self._post(self._lose, lost)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join(WAIT)


async def test_failures_are_counted_and_the_link_comes_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    device = FakeLink([ConnectionRefusedError("refused"), RuntimeError("a bug"), None])
    await device.start()  # returns after the first attempt
    assert device.attempts >= 1
    assert await device.wait_connected(WAIT)
    health = device.health()
    assert (health.connects, device.failures, device.connected) == (1, 2, True)
    assert device.failed.is_set()
    assert health.state is HealthState.CONNECTED
    assert health.last_error is None
    assert "connecting failed unexpectedly" in caplog.text  # the bug, with its trace
    await device.stop()
    assert device.health().state is HealthState.STOPPED
    assert device.health().disconnects == 1
    assert device.failures == 2  # a stop is no failure
    assert not device.connected


async def test_a_lost_link_is_a_failure_and_reconnects(caplog: pytest.LogCaptureFixture) -> None:
    device = FakeLink([None])
    await device.start()
    device.from_thread(range(3), lost="cable pulled")
    assert await device.wait_connected(WAIT, count=2)
    health = device.health()
    assert device.items == [0, 1, 2]  # the items came before the loss
    assert (health.connects, health.disconnects, device.failures) == (2, 1, 1)
    assert "fake-1: cable pulled" in caplog.text  # noted (last_error clears on reconnect)
    device.bad_check = "silent (watchdog)"  # the periodic check finds a dead link
    assert await device.wait_connected(WAIT, count=3)
    assert device.failures == 2
    assert "fake-1: silent (watchdog)" in caplog.text
    await device.stop()


async def test_what_does_not_fit_is_dropped_and_counted() -> None:
    device = FakeLink([None], queue_size=4)
    await device.start()
    device.from_thread(range(10))  # the loop waits meanwhile: the bridge fills up
    assert await device.wait_for(lambda h: len(device.items) == 4, WAIT)
    assert device.items == [0, 1, 2, 3]
    assert device.health().dropped == 6
    await device.stop()


async def test_nothing_reaches_the_loop_before_start_or_twice_started() -> None:
    device = FakeLink([None])
    assert not device._hand_over(1)  # no bridge before start
    await device.start()
    with pytest.raises(RuntimeError, match="already started"):
        await device.start()
    await device.stop()


class Quiet(FakeLink):
    """A device with nothing to check: its health shows what it hands over, and no more."""

    def _refresh_health(self, health: DeviceHealth) -> None:
        health.extra["items"] = float(len(self.items))


async def test_wait_for_is_woken_by_what_the_thread_hands_over() -> None:
    device = Quiet([None])
    await device.start()
    waiting = asyncio.create_task(device.wait_for(lambda h: h.extra["items"] >= 5, WAIT))
    device.from_thread(range(5))
    assert await waiting
    await device.stop()
