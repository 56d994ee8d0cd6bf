"""Waiting on a simulator's counters: futures resolved when a predicate on them comes true."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, Protocol, Self, TypeVar


class Snapshottable(Protocol):
    """Counters that can copy themselves (a snapshot handed to the waiter)."""

    def copy(self) -> Self:
        """A snapshot."""
        ...


S = TypeVar("S", bound=Snapshottable)


class StatsWatch(Generic[S]):
    """Futures resolved when a predicate on the stats becomes true.

    The simulator calls :meth:`check` after every change; waiting costs nothing otherwise.
    Shared by the LLRP and the serial module simulators.
    """

    def __init__(self, stats: S) -> None:
        self.stats = stats
        self._waiters: list[tuple[Callable[[S], bool], asyncio.Future[None]]] = []

    def check(self) -> None:
        """Resolve the waiters whose predicate now holds."""
        if not self._waiters:
            return
        keep = []
        for predicate, future in self._waiters:
            if future.done():
                continue
            if predicate(self.stats):
                future.set_result(None)
            else:
                keep.append((predicate, future))
        self._waiters = keep

    async def wait(self, predicate: Callable[[S], bool]) -> S:
        """Wait until ``predicate(stats)`` is true; returns a snapshot of the stats then.

        Wrap it in :func:`asyncio.timeout` to bound the wait.
        """
        if not predicate(self.stats):
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((predicate, future))
            await future
        return self.stats.copy()
