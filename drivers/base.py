"""Types shared by every driver: observations, health, the reader contract and the link
supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from edgecount.backoff import Backoff

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


class Reader(ABC):
    """A tag reader the gateway can run inventories on.

    Lifecycle: :meth:`start` connects and keeps the link up (reconnecting as needed);
    :meth:`start_inventory` / :meth:`stop_inventory` bracket one scan window; :meth:`stop`
    closes the link. Reads are delivered as batches to the sink given at construction.
    """

    name: str
    queue: asyncio.Queue[list[TagRead]]
    """Batches of reads, in arrival order. Bounded: a full queue drops and counts."""

    @abstractmethod
    async def start(self) -> None:
        """Connect and configure the reader; returns once the first connection attempt ended."""

    @abstractmethod
    async def start_inventory(self) -> None:
        """Begin inventorying with the configured antennas."""

    @abstractmethod
    async def stop_inventory(self) -> None:
        """Stop inventorying; returns when the reader has confirmed or the link is gone."""

    @abstractmethod
    async def stop(self) -> None:
        """Close the link cleanly."""

    @abstractmethod
    def health(self) -> DeviceHealth:
        """Current health figures."""

    @property
    @abstractmethod
    def failures(self) -> int:
        """How many times the link failed since start (a scan compares it before and after)."""


@dataclass(slots=True)
class LinkSupervisor:
    """Keeps a device's link up: connect, watch it until it drops, disconnect, back off, again.

    Both reader drivers run one as their supervisor task. A failure of a kind listed in
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
                self.backoff.reset()
                await self.watch()
            finally:
                await self.disconnect()
            if self.stopping.is_set():
                break
            delay = self.backoff.next_delay()
            log.warning("%s: reconnecting in %.2f s", self.name, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
