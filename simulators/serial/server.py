"""Hosting for the simulated serial module: a TCP server (``socket://``) or a pty.

Example:
    >>> async def demo(scene):
    ...     async with SerialModuleSimulator(scene) as sim:     # TCP on a free port
    ...         print(sim.url)                     # socket://127.0.0.1:PORT for the driver
    ...         await sim.wait_for(lambda s: s.polls_started >= 1)
    ...         sim.drop_connection()              # fault injection

Over TCP, one host at a time is served, like a serial line; a new connection replaces the
old one. With ``pty=True`` the module sits behind a pseudo-terminal whose slave path a host
opens like ``/dev/ttyUSB0``; ``pty_link`` keeps a symlink to it that survives a simulated
unplug (:meth:`SerialModuleSimulator.drop_connection` closes the pty and opens a new one, as
a USB adapter pulled and plugged back gets a new tty, and udev a stable link).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from simulators.scene import Scene
from simulators.serial.module import (
    ModuleSession,
    RoundSource,
    SerialFaults,
    SerialSimStats,
    SimModule,
    StatsPredicate,
)

log = logging.getLogger(__name__)


class _Pty:
    """One pseudo-terminal: the master as asyncio streams, the slave kept open.

    Keeping a slave descriptor open means the master never reads EIO when the host closes
    its side, so a host may close and reopen the path at will.
    """

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.reader = asyncio.StreamReader()
        self.writer: asyncio.StreamWriter | None = None
        self._transports: list[asyncio.BaseTransport] = []

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        read_end = os.fdopen(self.master, "rb", buffering=0)
        write_end = os.fdopen(os.dup(self.master), "wb", buffering=0)
        protocol = asyncio.StreamReaderProtocol(self.reader)
        rt, _ = await loop.connect_read_pipe(lambda: protocol, read_end)
        wt, wp = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, write_end)
        self._transports = [rt, wt]
        self.writer = asyncio.StreamWriter(wt, wp, self.reader, loop)

    def close(self) -> None:
        """Hang up: the host's next read fails."""
        for transport in self._transports:
            transport.close()
        self._transports = []
        self.reader.feed_eof()
        with contextlib.suppress(OSError):
            os.close(self.slave)


class SerialModuleSimulator:
    """A simulated M100-family module served over TCP or a pty.

    Args:
        scene: What the module sees.
        antenna: Which of the scene's antennas the module's view is.
        seed: RNG seed of reads and faults (default: the scene's).
        faults: Faults to inject; also reachable as :attr:`faults` to change at run time.
        host: Address to bind (TCP).
        port: Port to bind (TCP; 0 picks a free one, read :attr:`port` after start).
        pty: Serve on a pseudo-terminal instead of TCP.
        pty_link: With ``pty``, keep a symlink here pointing at the current pty.
        source: What answers each inventory round instead of the scene's tags (a moving
            scene, :class:`simulators.cart.CartProvider`).
    """

    def __init__(
        self,
        scene: Scene,
        *,
        antenna: int = 1,
        seed: int | None = None,
        faults: SerialFaults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        pty: bool = False,
        pty_link: Path | None = None,
        source: RoundSource | None = None,
    ) -> None:
        self.module = SimModule(scene, antenna, seed, faults, source)
        self.host = host
        self.port = port
        self.use_pty = pty
        self.pty_link = pty_link
        self.pty_path: str | None = None
        self._server: asyncio.Server | None = None
        self._pty: _Pty | None = None
        self._session: ModuleSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.TimerHandle] = []

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the TCP port, or open the pty."""
        if self.use_pty:
            await self._open_pty()
            return
        self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("serial module simulator listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop serving and close everything."""
        for timer in self._timers:
            timer.cancel()
        if self._server is not None:
            self._server.close()
        if self._session is not None:
            self._end(self._session)
        if self._pty is not None:
            self._pty.close()
            self._pty = None
        if self._tasks:
            _, hanging = await asyncio.wait(list(self._tasks), timeout=2)
            for task in hanging:
                task.cancel()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await self._server.wait_closed()
        if self.pty_link is not None and self.pty_link.is_symlink():
            self.pty_link.unlink()

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

    # -- what tests and the CLI use -----------------------------------------------------------

    @property
    def url(self) -> str:
        """What a host opens: ``socket://HOST:PORT``, the pty link, or the pty path."""
        if not self.use_pty:
            return f"socket://{self.host}:{self.port}"
        if self.pty_link is not None:
            return str(self.pty_link)
        if self.pty_path is None:
            raise RuntimeError("the simulator has not started")
        return self.pty_path

    @property
    def faults(self) -> SerialFaults:
        """The live fault settings."""
        return self.module.faults

    @property
    def stats(self) -> SerialSimStats:
        """The live counters (use :meth:`SerialSimStats.copy` for a snapshot)."""
        return self.module.stats

    async def wait_for(self, predicate: StatsPredicate) -> SerialSimStats:
        """Wait until ``predicate(stats)`` holds; a snapshot. Bound it with a timeout."""
        return await self.module.watch.wait(predicate)

    def drop_connection(self) -> bool:
        """Drop the host: close the TCP connection, or hang up the pty and open a new one.

        Returns whether there was a connection to drop.
        """
        session = self._session
        if session is None:
            return False
        self.module.stats.drops += 1
        self._end(session)
        if self.use_pty:
            self._spawn(self._open_pty(), "sim:pty-reopen")
        self.module.changed()
        return True

    # -- connections ---------------------------------------------------------------------------

    def _fault_drop(self, session: ModuleSession) -> None:
        """A scheduled fault wants ``session`` dropped, if drops are left."""
        faults = self.module.faults
        allowed = faults.disconnect_times == 0 or self.stats.drops < faults.disconnect_times
        if allowed and session is self._session and not session.closing:
            self.drop_connection()

    def _end(self, session: ModuleSession) -> None:
        session.closing = True
        if self._session is session:
            self._session = None
            self.module.stats.connected = False
        if isinstance(session.wire, asyncio.StreamWriter) and not self.use_pty:
            session.wire.transport.abort()
        elif self._pty is not None:
            self._pty.close()
            self._pty = None

    def _begin(self, session: ModuleSession) -> None:
        if self._session is not None:
            self._end(self._session)
        self._session = session
        stats = self.module.stats
        stats.connections += 1
        stats.connected = True
        after = self.module.faults.disconnect_after_seconds
        if after is not None:
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(after, self._fault_drop, session))
        self.module.changed()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        session = ModuleSession(self.module, writer, lambda: self._fault_drop(session))
        self._begin(session)
        try:
            await session.run(reader)
        finally:
            if self._session is session:
                self._session = None
                self.module.stats.connected = False
                self.module.changed()
            writer.transport.abort()

    async def _open_pty(self) -> None:
        pty = _Pty()
        await pty.open()
        assert pty.writer is not None
        self._pty = pty
        self.pty_path = pty.path
        if self.pty_link is not None:
            temporary = self.pty_link.with_name(self.pty_link.name + ".new")
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(pty.path)
            temporary.replace(self.pty_link)
        session = ModuleSession(self.module, pty.writer, lambda: self._fault_drop(session))
        self._begin(session)
        self._spawn(self._serve_pty(session, pty), "sim:pty")
        log.info("serial module simulator on pty %s", pty.path)

    async def _serve_pty(self, session: ModuleSession, pty: _Pty) -> None:
        try:
            await session.run(pty.reader)
        finally:
            if self._session is session:
                self._end(session)
                self.module.changed()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
