"""What every driver shares: observations, health, the link supervisor and the device bases.

:class:`Device` is the one base of every device (LLRP and serial readers, cameras): it keeps
the link up under a :class:`LinkSupervisor` (connect, watch, reconnect with backoff), keeps
the state and counters of :class:`DeviceHealth`, and owns the device's one thread→loop seam
(an :class:`~edgecount.bridge.LoopBridge`). A driver adds only its specifics: how to open,
check and close its link, and what to do with what its thread hands over.
:class:`Reader` adds inventory windows and the bounded queue of read batches
(:class:`ReadQueue`), optionally with back-pressure to the reader's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

from edgecount.backoff import Backoff
from edgecount.bridge import LoopBridge

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TagRead:
    """One tag report from a reader antenna. Treat as immutable.

    (Not ``frozen``: a frozen dataclass costs four times as much to build, and tens of
    thousands are built per second per gateway.)

    Attributes:
        reader: Name of the reader (from the configuration).
        antenna: Antenna number on that reader, 1-based.
        epc: The EPC bank's EPC field as raw bytes (12 bytes for a 96-bit EPC).
        rssi: Peak RSSI in dBm.
        t: When the tag was last seen, UNIX seconds (reader clock when it reports one).
        count: How many singulations this report stands for (LLRP TagSeenCount), at least 1.
    """

    reader: str
    antenna: int
    epc: bytes
    rssi: float
    t: float
    count: int = 1


class HealthState(enum.StrEnum):
    """Coarse health of a device connection."""

    STARTING = "starting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(slots=True)
class DeviceHealth:
    """Health figures of one device, as reported to operators and metrics."""

    name: str
    state: HealthState = HealthState.STARTING
    last_error: str | None = None
    connects: int = 0
    disconnects: int = 0
    reads: int = 0
    dropped: int = 0
    last_message_at: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


TagBatch = Sequence[TagRead]

T = TypeVar("T")


def _always() -> bool:
    return True


@dataclass(slots=True)
class LinkSupervisor:
    """Keeps a device's link up: connect, watch it until it drops, disconnect, back off, again.

    Every :class:`Device` runs one as its supervisor task. A failure of a kind listed in
    ``expected`` (the link's own errors) is noted through ``on_failure``; anything else is a
    bug: it is logged with its trace, noted the same way and supervised like any failure, so a
    reader never stops for good while the gateway runs.

    Attributes:
        name: The device, for the log.
        backoff: Delays between attempts (reset after a successful connect).
        expected: Exception types a connect attempt may fail with.
        connect: Opens the link (raises on failure).
        watch: Returns when the link is lost.
        disconnect: Closes what ``connect`` opened (also after a failed connect).
        on_failure: Notes a failed attempt: ``on_failure(why)``.
        stopping: Set to end the loop.
        first_attempt: Set once the first attempt succeeded or failed.
        proven: Whether the connection that just ended proved the link (then the backoff
            starts over); by default every successful connect does.
    """

    name: str
    backoff: Backoff
    expected: tuple[type[BaseException], ...]
    connect: Callable[[], Awaitable[None]]
    watch: Callable[[], Awaitable[None]]
    disconnect: Callable[[], Awaitable[None]]
    on_failure: Callable[[str], None]
    stopping: asyncio.Event
    first_attempt: asyncio.Event
    proven: Callable[[], bool] = _always

    async def run(self) -> None:
        """Supervise until ``stopping`` is set."""
        while not self.stopping.is_set():
            try:
                await self.connect()
            except self.expected as exc:
                self.on_failure(f"connect failed: {exc}")
                self.first_attempt.set()
            except Exception as exc:  # a bug: loud, then supervised like any failure
                log.exception("%s: connecting failed unexpectedly", self.name)
                self.on_failure(f"connect failed: {exc!r}")
                self.first_attempt.set()
            else:
                self.first_attempt.set()
                await self.watch()
                if self.proven():
                    self.backoff.reset()
            finally:
                await self.disconnect()
            if self.stopping.is_set():
                break
            delay = self.backoff.next_delay()
            log.warning("%s: reconnecting in %.2f s", self.name, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)


class Device(ABC, Generic[T]):
    """One device, kept connected by a supervisor task; ``T`` is what its thread hands over.

    Lifecycle: :meth:`start` starts the supervisor and returns once the first connection
    attempt ended (either way); the supervisor connects, watches the link, and after a
    failure disconnects, backs off (with jitter) and connects again, until :meth:`stop`.
    Every failure is counted (:attr:`failures`), sets :attr:`failed` and shows in
    :meth:`health`; a failure during :meth:`stop` is not one.

    A driver implements the specifics: :meth:`_connect` (open and configure; raise one of
    :attr:`expected` on failure), :meth:`_disconnect` (close what it opened, also after a
    failed attempt), :meth:`_check_link` (a periodic look at a link that seems up),
    :meth:`_deliver` (what its thread handed over, on the loop) and, where needed,
    :meth:`_after_connect`, :meth:`_before_stop`, :meth:`_interrupt`, :meth:`_proven`,
    :meth:`_refresh_health`. Its threads reach the loop only through :meth:`_hand_over`
    (items, bounded: what does not fit is dropped and counted in ``health().dropped``) and
    :meth:`_post` (control events), both in order. A thread reports a lost link with
    ``self._post(self._lose, why)``. With ``block_timeout`` a thread that finds the hand-over
    full waits for room instead (back-pressure, see :class:`~edgecount.bridge.LoopBridge`);
    :meth:`stop` ends such waits.

    Args:
        name: The device's name (logs, health, task name).
        backoff: Reconnect delays.
        watch_period: How often :meth:`_check_link` runs while the link is up.
        queue_size: Most items outstanding in the hand-over (see :class:`LoopBridge`).
        keep: Which items survive a full hand-over: the ``oldest`` or the ``newest``.
        weigh: What one dropped item counts (default 1).
        block_timeout: Longest a thread waits for room in a full hand-over (seconds; 0
            never waits).
        room_on: When a delivered item gives its room back: ``drain`` or ``release``
            (see :class:`~edgecount.bridge.LoopBridge`).
    """

    kind: ClassVar[str] = "device"
    """Names the supervisor task: ``{kind}:{name}``."""
    expected: ClassVar[tuple[type[BaseException], ...]] = (OSError,)
    """The link's own errors: a connect attempt failing with one is logged without a trace."""

    def __init__(
        self,
        name: str,
        backoff: Backoff,
        *,
        watch_period: float,
        queue_size: int,
        keep: Literal["oldest", "newest"] = "oldest",
        weigh: Callable[[T], int] | None = None,
        block_timeout: float = 0.0,
        room_on: Literal["drain", "release"] = "drain",
    ) -> None:
        self.name = name
        self.failed = asyncio.Event()
        """Set at the first link failure; never cleared."""
        self._backoff = backoff
        self._watch_period = watch_period
        self._bridge_shape = (queue_size, keep, weigh, block_timeout, room_on)
        self._bridge: LoopBridge[T] | None = None
        self._health = DeviceHealth(name=name)
        self._failures = 0
        self._dropped = 0  # dropped on the loop side (a driver's own queue)
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._link_lost = asyncio.Event()
        self._lost_why = "connection lost"
        self._connected = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._changed = asyncio.Event()

    # -- public API -------------------------------------------------------------------------

    @property
    def failures(self) -> int:
        """Failed connection attempts plus connections lost, since start."""
        return self._failures

    @property
    def connected(self) -> bool:
        """Whether the link is up (connected and configured)."""
        return self._connected.is_set()

    def health(self) -> DeviceHealth:
        """Current health figures (the driver's own in ``extra``)."""
        bridge = self._bridge
        self._health.dropped = self._dropped + (bridge.dropped if bridge is not None else 0)
        if bridge is not None and bridge.block_timeout > 0:
            self._health.extra["handover_waits"] = bridge.waits
            self._health.extra["handover_wait_seconds"] = bridge.waited_seconds
        self._refresh_health(self._health)
        return self._health

    async def start(self) -> None:
        """Start the supervisor; returns after the first connection attempt (either way).

        Raises:
            RuntimeError: Started already.
        """
        if self._supervisor is not None:
            raise RuntimeError(f"{self.kind} {self.name} already started")
        size, keep, weigh, block_timeout, room_on = self._bridge_shape
        self._bridge = LoopBridge(
            asyncio.get_running_loop(),
            self._deliver,
            maxsize=size,
            keep=keep,
            weigh=weigh,
            name=self.name,
            block_timeout=block_timeout,
            room_on=room_on,
        )
        supervisor = LinkSupervisor(
            self.name,
            self._backoff,
            self.expected,
            connect=self._open_link,
            watch=self._watch,
            disconnect=self._close_link,
            on_failure=self._note_failure,
            stopping=self._stopping,
            first_attempt=self._first_attempt,
            proven=self._proven,
        )
        self._supervisor = asyncio.create_task(supervisor.run(), name=f"{self.kind}:{self.name}")
        await self._first_attempt.wait()

    async def stop(self) -> None:
        """Stop the supervisor and close the link; health says ``stopped`` after.

        A thread waiting for room in the hand-over stops waiting first (what does not fit
        from then on is dropped and counted), so no thread holds up the stop.
        """
        if self._bridge is not None:
            self._bridge.close()
        await self._before_stop()
        self._stopping.set()
        self._link_lost.set()
        self._interrupt()
        if self._supervisor is not None:
            await self._supervisor
        self._health.state = HealthState.STOPPED
        self._notify()

    async def wait_for(
        self,
        predicate: Callable[[DeviceHealth], bool],
        timeout: float,  # noqa: ASYNC109 - a bound, like wait_for's
    ) -> bool:
        """Wait until ``predicate(health())`` holds, at most ``timeout`` seconds; the outcome.

        Woken by every change: connect, loss, failure, items handed over, stop.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not predicate(self.health()):
                    await self._changed.wait()
        return predicate(self.health())

    async def wait_connected(self, timeout: float = 10.0, *, count: int = 1) -> bool:  # noqa: ASYNC109
        """Wait until the link is up after ``count`` connects in all (a reconnect is 2)."""
        return await self.wait_for(lambda h: h.connects >= count and self.connected, timeout)

    # -- what a driver implements -----------------------------------------------------------

    async def _connect(self) -> None:
        """Open and configure the link; raise (one of :attr:`expected`) when it fails."""

    async def _disconnect(self) -> None:
        """Close what :meth:`_connect` opened (also after a failed attempt)."""

    async def _check_link(self) -> str | None:
        """Every ``watch_period`` while the link seems up: why it is not, or None."""
        return None

    @abstractmethod
    def _deliver(self, items: list[T]) -> None:
        """Items the device's threads handed over, oldest first (on the loop)."""

    async def _after_connect(self) -> None:
        """After each successful connect (e.g. resume an inventory the link lost)."""

    async def _before_stop(self) -> None:
        """At :meth:`stop`, before the supervisor is told to end (e.g. a polite goodbye)."""

    def _interrupt(self) -> None:
        """At :meth:`stop`: wake whatever blocks on the link (a thread's read)."""

    def _proven(self) -> bool:
        """Whether the connection that just ended proved the link (the backoff starts over)."""
        return True

    def _where(self) -> str:
        """Where the device is, for the log."""
        return self.name

    def _refresh_health(self, health: DeviceHealth) -> None:
        """Bring the driver's own figures in ``health`` up to date."""

    # -- the thread seam --------------------------------------------------------------------

    def _hand_over(self, item: T) -> bool:
        """From any thread: pass ``item`` to :meth:`_deliver`; False when it was dropped.

        Waits for room when the hand-over is full, if the device was built with a
        ``block_timeout`` (never on the loop's thread).
        """
        bridge = self._bridge
        return bridge.put(item) if bridge is not None else False

    def _backpressure(self) -> tuple[int, int]:
        """Puts that waited for room in the hand-over so far, and those waiting now."""
        bridge = self._bridge
        return (bridge.waits, bridge.blocked) if bridge is not None else (0, 0)

    def _give_back(self, count: int = 1) -> None:
        """On the loop: ``count`` delivered items are done with (``room_on="release"``)."""
        bridge = self._bridge
        if bridge is not None:
            bridge.release(count)

    def _post(self, fn: Callable[..., object], *args: Any) -> bool:
        """From any thread: run ``fn(*args)`` on the loop, after what was handed over before."""
        bridge = self._bridge
        return bridge.call(fn, *args) if bridge is not None else False

    # -- the supervision, written once ------------------------------------------------------

    def _notify(self) -> None:
        """Wake :meth:`wait_for`."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _lose(self, why: str) -> None:
        """The link is lost (on the loop): the watch notes it and the supervisor reconnects."""
        if self._link_lost.is_set():
            return
        self._lost_why = why
        self._link_lost.set()

    def _note_failure(self, why: str) -> None:
        if self._stopping.is_set():  # what a stop breaks is no failure
            log.debug("%s: while stopping: %s", self.name, why)
            return
        self._failures += 1
        self.failed.set()
        self._health.state = HealthState.RECONNECTING
        self._health.last_error = why
        log.error("%s: %s", self.name, why)
        self._notify()

    async def _open_link(self) -> None:
        health = self._health
        health.state = HealthState.RECONNECTING if health.connects else HealthState.STARTING
        self._link_lost.clear()
        self._lost_why = "connection lost"
        await self._connect()
        health.connects += 1
        health.state = HealthState.CONNECTED
        health.last_error = None
        self._connected.set()
        log.info("%s: connected to %s", self.name, self._where())
        self._notify()
        await self._after_connect()

    async def _watch(self) -> None:
        """Return when the link is lost: reported by a thread, or found by the check."""
        while not (self._link_lost.is_set() or self._stopping.is_set()):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._link_lost.wait(), self._watch_period)
            if self._link_lost.is_set():
                break
            why = await self._check_link()
            if why is not None and not self._link_lost.is_set():
                self._note_failure(why)
                return
        if not self._stopping.is_set():
            self._note_failure(self._lost_why)

    async def _close_link(self) -> None:
        if self._connected.is_set():
            self._connected.clear()
            self._health.disconnects += 1
        await self._disconnect()
        self._notify()


class ReadQueue:
    """A reader's batches for its consumer; tells the reader whenever one is taken.

    A bounded :class:`asyncio.Queue` underneath; the reader gives a taken batch's room back
    to its thread (back-pressure, see :class:`Reader`). It offers what consumers and readers
    use of an asyncio queue: ``get``, ``get_nowait``, ``task_done``, ``join``, ``empty``,
    ``qsize`` and ``put_nowait`` (which raises :class:`asyncio.QueueFull` when full).

    Args:
        maxsize: Most batches held; 0 for no bound.
        on_take: Called on the loop for every batch taken.
    """

    def __init__(self, maxsize: int = 0, on_take: Callable[[], None] | None = None) -> None:
        self._queue: asyncio.Queue[list[TagRead]] = asyncio.Queue(maxsize)
        self._on_take = on_take

    async def get(self) -> list[TagRead]:
        """Take the oldest batch, waiting for one."""
        batch = await self._queue.get()
        self._taken()
        return batch

    def get_nowait(self) -> list[TagRead]:
        """Take the oldest batch; :class:`asyncio.QueueEmpty` if there is none."""
        batch = self._queue.get_nowait()
        self._taken()
        return batch

    def put_nowait(self, batch: list[TagRead]) -> None:
        """Add a batch; :class:`asyncio.QueueFull` if there is no room."""
        self._queue.put_nowait(batch)

    def task_done(self) -> None:
        """The consumer finished a batch it took (see :meth:`join`)."""
        self._queue.task_done()

    async def join(self) -> None:
        """Wait until every batch added was taken and finished."""
        await self._queue.join()

    def empty(self) -> bool:
        """Whether no batch is held."""
        return self._queue.empty()

    def qsize(self) -> int:
        """Batches held."""
        return self._queue.qsize()

    def _taken(self) -> None:
        if self._on_take is not None:
            self._on_take()


class Reader(Device[list[TagRead]]):
    """A tag reader the gateway can run inventories on.

    Lifecycle: :meth:`start` connects and keeps the link up (reconnecting as needed);
    :meth:`start_inventory` / :meth:`stop_inventory` bracket one scan window; :meth:`stop`
    closes the link. Reads arrive as batches on :attr:`queue`.

    Two ways to meet a consumer that falls behind (``block_timeout``):

    * drop (0): the thread never waits; batches that do not fit the hand-over or the queue
      are dropped and counted in ``health().dropped``.
    * block (> 0): at most ``queue_size`` batches are on their way or in the queue, all told;
      a thread that finds no room waits until the consumer takes a batch (at most
      ``block_timeout`` seconds, then drops and counts), so the backlog stays where the
      thread reads from (a TCP socket: the reader's own buffers).

    Args:
        name: The reader's name.
        backoff: Reconnect delays.
        watch_period: How often the link is checked while up.
        queue_size: Batches kept for the consumer (and most waiting on the thread side).
        block_timeout: Longest the reader's thread waits for room (seconds); 0 drops at once.
    """

    queue: ReadQueue
    """Batches of reads, in arrival order. Bounded: see the two ways above."""

    def __init__(
        self,
        name: str,
        backoff: Backoff,
        *,
        watch_period: float,
        queue_size: int,
        block_timeout: float = 0.0,
    ) -> None:
        super().__init__(
            name,
            backoff,
            watch_period=watch_period,
            queue_size=queue_size,
            weigh=len,
            block_timeout=block_timeout,
            room_on="release" if block_timeout > 0 else "drain",
        )
        self.queue = ReadQueue(queue_size, on_take=self._give_back)

    @abstractmethod
    async def start_inventory(self) -> None:
        """Begin inventorying with the configured antennas."""

    @abstractmethod
    async def stop_inventory(self) -> None:
        """Stop inventorying; returns when the reader has confirmed or the link is gone."""

    def _deliver(self, items: list[list[TagRead]]) -> None:
        self._health.last_message_at = time.time()
        refused = sum(not self._accept(batch) for batch in items)
        if refused:  # never reach the consumer: their room is free again
            self._give_back(refused)
        self._notify()

    def _accept(self, batch: list[TagRead]) -> bool:
        """One batch from the reader's thread (a driver may filter first); whether queued."""
        try:
            self.queue.put_nowait(batch)
        except asyncio.QueueFull:
            self._dropped += len(batch)
            log.warning("%s: read queue full, dropped %d reads", self.name, len(batch))
            return False
        self._health.reads += len(batch)
        return True
