"""The LLRP reader simulator: an asyncio TCP server with fault injection and test hooks.

A moving reader (a cart or drone along an aisle) is a ``source`` answering the inventory rounds
instead of the scene's tags; the scene then gives only the reader spec and the round pace::

    provider = CartProvider(spec.sim(), seed=1)   # its clock starts with the first round
    async with LLRPSimulator(spec.scene(), source=provider) as sim: ...

Example:
    >>> async def demo(scene):
    ...     async with LLRPSimulator(scene, port=0) as sim:
    ...         print(sim.port)              # connect a client here
    ...         await sim.wait_rospec_started()
    ...         sim.drop_connection()        # fault injection
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from drivers.llrp.codec import ConnectionAttemptStatus
from simulators.llrp.inventory import RoundSource
from simulators.llrp.reader import SimReader
from simulators.llrp.session import Session, connection_event
from simulators.llrp.stats import SimStats, StatsPredicate, StatsWatch
from simulators.scene import Scene

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Faults scheduled from the command line (seconds after a connection is accepted).

    Attributes:
        drop_after: Abort a connection this long after it was accepted.
        drop_times: How many connections to drop that way (0 = every one).
        silent_after: Go silent on the first connection after this long.
        garbage_after: Send garbage on the first connection after this long.
        garbage_bytes: How many garbage bytes.
    """

    drop_after: float | None = None
    drop_times: int = 1
    silent_after: float | None = None
    garbage_after: float | None = None
    garbage_bytes: int = 64


class LLRPSimulator:
    """One simulated LLRP 1.0.1 reader listening on TCP.

    Args:
        scene: What the reader sees.
        host: Address to bind.
        port: Port to bind (0 picks a free one; read :attr:`port` after start).
        replay: RO_ACCESS_REPORT messages to stream when an ROSpec starts, instead of
            simulating the scene (see :mod:`simulators.llrp.replay`).
        seed: RNG seed (default: the scene's).
        faults: Faults to inject on schedule.
        source: What answers each inventory round instead of the scene's tags, at the scene's
            ``rounds_per_second`` (a moving scene: :class:`simulators.cart.CartProvider`,
            whose clock starts with the first round).
    """

    def __init__(
        self,
        scene: Scene,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        replay: Sequence[bytes] | None = None,
        seed: int | None = None,
        faults: FaultPlan | None = None,
        source: RoundSource | None = None,
    ) -> None:
        self.scene = scene
        self.host = host
        self.port = port
        self._stats = SimStats()
        self.watch = StatsWatch(self._stats)
        self.reader = SimReader(scene, self._stats, self.watch, replay, seed, source=source)
        self.faults = faults or FaultPlan()
        self._rng = random.Random(seed if seed is not None else scene.seed)  # noqa: S311
        self._server: asyncio.Server | None = None
        self.session: Session | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self._drops_left = self.faults.drop_times
        self._first_connection = True

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind and start accepting clients."""
        self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "LLRP simulator %s listening on %s:%d", self.scene.reader.name, self.host, self.port
        )

    async def stop(self) -> None:
        """Stop accepting, close the client and stop the reader."""
        for timer in self._timers:
            timer.cancel()
        if self._server is not None:
            self._server.close()
        if self.session is not None:
            self.session.closing = True
            self.session.writer.transport.abort()
        await self.reader.close()
        if self._tasks:
            # Aborted transports end the client handlers; cancel only what still hangs.
            _, hanging = await asyncio.wait(list(self._tasks), timeout=2)
            for task in hanging:
                task.cancel()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(1):
                    await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def stats(self) -> SimStats:
        """The live counters (read-only by convention; use :meth:`SimStats.copy`)."""
        return self._stats

    # ------------------------------------------------------------ connections

    async def _on_client(self, stream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            if self.session is not None and not self.session.closing:
                await self._reject(writer)
                return
            await self._serve(Session(self.reader, stream, writer))
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _reject(self, writer: asyncio.StreamWriter) -> None:
        """Refuse a second client as a reader does, and tell the first one."""
        self._stats.rejected_connections += 1
        msg_id = self.reader.next_id()
        writer.write(
            connection_event(
                msg_id, ConnectionAttemptStatus.FAILED_CLIENT_INITIATED_CONNECTION_EXISTS
            )
        )
        if self.session is not None:
            self.session.write(
                connection_event(
                    self.reader.next_id(), ConnectionAttemptStatus.ANOTHER_CONNECTION_ATTEMPTED
                )
            )
        with contextlib.suppress(ConnectionError, RuntimeError):
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        self.watch.check()

    async def _serve(self, session: Session) -> None:
        self.session = session
        self.reader.sink = session
        self._stats.connections += 1
        self._stats.connected = True
        self._schedule_faults(session)
        self.watch.check()
        try:
            await session.run()
        finally:
            if self.reader.sink is session:
                self.reader.sink = None
            if self.session is session:
                self.session = None
            self._stats.connected = False
            self.watch.check()

    def _schedule_faults(self, session: Session) -> None:
        loop = asyncio.get_running_loop()
        plan = self.faults
        if plan.drop_after is not None and (plan.drop_times == 0 or self._drops_left > 0):
            self._drops_left -= 1
            self._timers.append(loop.call_later(plan.drop_after, self._drop_if_current, session))
        if self._first_connection:
            self._first_connection = False
            if plan.silent_after is not None:
                self._timers.append(loop.call_later(plan.silent_after, self._silence, session))
            if plan.garbage_after is not None:
                self._timers.append(
                    loop.call_later(plan.garbage_after, self._garbage, session, plan.garbage_bytes)
                )

    def _drop_if_current(self, session: Session) -> None:
        if self.session is session and not session.closing:
            session.drop()
            self.watch.check()

    def _silence(self, session: Session) -> None:
        session.silent = True

    def _garbage(self, session: Session, size: int) -> None:
        session.send_garbage(self._rng.randbytes(size))
        self.watch.check()

    # ------------------------------------------------------------ fault injection API

    def drop_connection(self, after: float | None = None) -> None:
        """Abort the client's TCP connection now, or ``after`` seconds from now."""
        session = self.session
        if session is None:
            return
        if after is None:
            self._drop_if_current(session)
            return
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(after, self._drop_if_current, session))

    def go_silent(self) -> None:
        """Stop sending anything (reports, keepalives, responses) on the current connection.

        The TCP connection stays open and requests are read and ignored; a new connection
        is served normally. :meth:`resume` ends the silence.
        """
        if self.session is not None:
            self.session.silent = True

    def resume(self) -> None:
        """End :meth:`go_silent` on the current connection."""
        if self.session is not None:
            self.session.silent = False

    def send_garbage(self, size: int = 64) -> None:
        """Send ``size`` random bytes (not LLRP) to the client."""
        if self.session is not None:
            self._garbage(self.session, size)

    # ------------------------------------------------------------ waiting (for tests)

    async def wait_for(self, predicate: StatsPredicate) -> SimStats:
        """Wait until ``predicate(stats)`` holds; returns a snapshot.

        Bound it with :func:`asyncio.timeout`.
        """
        return await self.watch.wait(predicate)

    async def wait_connected(self, count: int = 1) -> SimStats:
        """Wait until ``count`` sessions have been accepted in total and one is open."""
        return await self.wait_for(lambda s: s.connections >= count and s.connected)

    async def wait_disconnected(self) -> SimStats:
        """Wait until no client is connected."""
        return await self.wait_for(lambda s: not s.connected)

    async def wait_rospec_started(self, count: int = 1) -> SimStats:
        """Wait until ``count`` ROSpec executions have started in total."""
        return await self.wait_for(lambda s: s.rospec_starts >= count)

    async def wait_rospec_stopped(self, count: int = 1) -> SimStats:
        """Wait until ``count`` ROSpec executions have ended in total."""
        return await self.wait_for(lambda s: s.rospec_stops >= count)

    async def wait_tag_reports(self, count: int) -> SimStats:
        """Wait until ``count`` TagReportData have been sent in total."""
        return await self.wait_for(lambda s: s.tag_reports_sent >= count)


async def start_readers(
    scene: Scene,
    count: int,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    replay: Sequence[bytes] | None = None,
    seed: int | None = None,
    faults: FaultPlan | None = None,
) -> list[LLRPSimulator]:
    """Start ``count`` independent readers on the same scene.

    With ``port`` 0 each gets a free port; otherwise they use ``port``, ``port + 1``, ...
    Each reader's RNG seed is offset by its index so their reads differ.
    """
    base_seed = scene.seed if seed is None else seed
    sims: list[LLRPSimulator] = []
    try:
        for index in range(count):
            sim = LLRPSimulator(
                scene,
                host=host,
                port=port + index if port else 0,
                replay=replay,
                seed=None if base_seed is None else base_seed + index,
                faults=faults,
            )
            await sim.start()
            sims.append(sim)
    except BaseException:
        await asyncio.gather(*(sim.stop() for sim in sims), return_exceptions=True)
        raise
    return sims
