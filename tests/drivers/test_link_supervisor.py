"""The link supervisor both reader drivers run: a failure of any kind is noted and retried."""

from __future__ import annotations

import asyncio
import random

import pytest

from drivers.base import LinkSupervisor
from edgecount.backoff import Backoff


class Link:
    """A link whose connect attempts fail as scripted, then hold until dropped."""

    def __init__(self, script: list[BaseException | None]) -> None:
        self.script = script
        self.attempts = 0
        self.disconnects = 0
        self.failures: list[str] = []
        self.connected = asyncio.Event()
        self.drop = asyncio.Event()

    async def connect(self) -> None:
        outcome = self.script[min(self.attempts, len(self.script) - 1)]
        self.attempts += 1
        if outcome is not None:
            raise outcome
        self.connected.set()

    async def watch(self) -> None:
        await self.drop.wait()
        self.drop.clear()

    async def disconnect(self) -> None:
        self.disconnects += 1


def supervisor(link: Link, stopping: asyncio.Event, first: asyncio.Event) -> LinkSupervisor:
    return LinkSupervisor(
        "reader-1",
        Backoff(initial=0.001, maximum=0.002, rng=random.Random(1)),
        (OSError,),
        connect=link.connect,
        watch=link.watch,
        disconnect=link.disconnect,
        on_failure=link.failures.append,
        stopping=stopping,
        first_attempt=first,
    )


async def test_expected_and_unexpected_failures_are_noted_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    link = Link([ConnectionRefusedError("refused"), RuntimeError("a bug"), None])
    stopping, first = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(supervisor(link, stopping, first).run())
    await asyncio.wait_for(link.connected.wait(), 5)
    assert first.is_set()
    assert link.failures == ["connect failed: refused", "connect failed: RuntimeError('a bug')"]
    assert "connecting failed unexpectedly" in caplog.text  # the bug is logged with its trace
    assert link.disconnects == 2  # what a failed connect opened is closed too
    # the link drops: disconnected, then connected again
    link.connected.clear()
    link.drop.set()
    await asyncio.wait_for(link.connected.wait(), 5)
    assert link.attempts == 4
    assert link.disconnects == 3
    stopping.set()
    link.drop.set()
    await asyncio.wait_for(task, 5)
    assert link.disconnects == 4
    assert link.attempts == 4  # nothing after stopping


async def test_the_backoff_starts_over_only_after_a_proven_connection() -> None:
    link = Link([None])
    stopping, first = asyncio.Event(), asyncio.Event()
    backoff = Backoff(initial=0.001, maximum=0.002, rng=random.Random(1))
    resets: list[bool] = []
    proven = [False]

    def was_proven() -> bool:
        resets.append(proven[0])
        return proven[0]

    task = asyncio.create_task(
        LinkSupervisor(
            "camera-1",
            backoff,
            (OSError,),
            connect=link.connect,
            watch=link.watch,
            disconnect=link.disconnect,
            on_failure=link.failures.append,
            stopping=stopping,
            first_attempt=first,
            proven=was_proven,
        ).run()
    )
    await asyncio.wait_for(link.connected.wait(), 5)
    link.connected.clear()
    link.drop.set()  # a connection that delivered nothing
    await asyncio.wait_for(link.connected.wait(), 5)
    proven[0] = True
    link.connected.clear()
    link.drop.set()
    await asyncio.wait_for(link.connected.wait(), 5)
    assert resets == [False, True]
    stopping.set()
    link.drop.set()
    await asyncio.wait_for(task, 5)
