"""LLRP reader driver: connect, configure, inventory, watch, reconnect.

sllurp keeps the reader session (connect, capabilities, ROSpec, keepalive, events); it runs
one socket thread per reader and calls back on it. The driver frames the byte stream itself
and decodes RO_ACCESS_REPORTs with the project's codec (:mod:`drivers.llrp.reads`), which is
several times faster than sllurp's decoder; every other message goes to sllurp. This module
is the only place that imports sllurp. Threads meet asyncio at one seam, the device's
bridge (:class:`~drivers.base.Device`): reads are handed over in batches (one per
RO_ACCESS_REPORT) into a bounded queue. When the queue is full, sllurp's socket thread
waits for room (``overflow="block"``, the default): it stops reading the socket, TCP's
window closes and the reader keeps the backlog in its own buffers (late, never lost), as a
reader does for a client that reads slowly. The wait is bounded (:func:`block_timeout`);
after it, and with ``overflow="drop"``, what does not fit is dropped and counted. While the
thread is held back, replies wait behind the backlog too, so the stop's deadline waits with
them (:meth:`LlrpReader._await_stop`).

sllurp's defaults are fixed here: antenna ID, peak RSSI, first/last-seen timestamps and the
seen count are enabled in every tag report; reconnecting is ours (sllurp's is off); and a
keepalive watchdog notices a link that went silent, which sllurp does not.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sllurp.llrp import LLRPReaderClient, LLRPReaderConfig, LLRPReaderState
from sllurp.llrp_errors import ReaderConfigurationError

from drivers.base import DeviceHealth, Reader, TagRead
from drivers.llrp.codec import FrameBuffer, LLRPDecodeError, LLRPFramingError, MessageType
from drivers.llrp.reads import report_reads
from edgecount.backoff import Backoff

log = logging.getLogger(__name__)

TAG_CONTENT = {
    "EnableROSpecID": False,
    "EnableSpecIndex": False,
    "EnableInventoryParameterSpecID": False,
    "EnableAntennaID": True,
    "EnableChannelIndex": False,
    "EnablePeakRSSI": True,
    "EnableFirstSeenTimestamp": True,
    "EnableLastSeenTimestamp": True,
    "EnableTagSeenCount": True,
    "EnableAccessSpecID": False,
}


class ReaderError(Exception):
    """A reader could not be connected, configured or commanded."""


@dataclass(frozen=True, slots=True)
class LlrpSettings:
    """What the driver needs to know about one LLRP reader."""

    name: str
    host: str
    port: int = 5084
    antennas: tuple[int, ...] = (1,)
    tx_power_dbm: float | None = None
    session: int = 2
    tag_population: int = 1024
    keepalive_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0
    report_every_n_tags: int = 200
    queue_size: int = 1000
    overflow: Literal["block", "drop"] = "block"
    backoff: Backoff = field(default_factory=Backoff)


def block_timeout(settings: LlrpSettings) -> float:
    """How long sllurp's socket thread waits for room in a full read queue: half a keepalive.

    A thread that waits reads nothing, so the wait must end well before anything takes the
    silence for a dead link: the driver's own watchdog (1.5 keepalive periods without a
    byte) and a reader that monitors the link (it closes the connection after keepalives go
    unanswered; the acknowledgement is sent by this thread). Half a period leaves both a
    full period of margin, and is still long next to the momentary stalls of a loop that
    keeps up (5 s with the default keepalive). A wait that runs out means the loop or the
    scan's consumer is stuck: the reads are dropped and counted, the scan's locations go
    out incomplete, and the thread does not wait again until the queue has room.
    """
    return settings.keepalive_seconds / 2 if settings.overflow == "block" else 0.0


@dataclass(slots=True)
class ParseCounts:
    """What :class:`_Client` framed and decoded (written on sllurp's thread).

    Attributes:
        messages: Complete LLRP messages framed (RO_ACCESS_REPORTs and those handed to sllurp).
        malformed: Messages that could not be decoded: an RO_ACCESS_REPORT our codec rejects,
            or another message sllurp could not decode or handle. Each is dropped and the
            stream goes on with the next message (its length field was sound).
        framing_errors: Headers whose length is impossible (below 10 bytes or above
            :data:`~drivers.llrp.codec.DEFAULT_MAX_MESSAGE`); the bytes buffered then are
            dropped, as the stream cannot be split any more.
    """

    messages: int = 0
    malformed: int = 0
    framing_errors: int = 0


class _Client(LLRPReaderClient):  # type: ignore[misc]
    """sllurp's client with a receive timestamp, our framing, our report decoder and a lock.

    The lock makes commands we send from the event loop (which also change sllurp's state
    machine) atomic with respect to replies handled on sllurp's socket thread.

    sllurp's own loop over received bytes lets anything its decoder raises on a malformed
    message (``struct.error``, ``KeyError``, ...) end its socket thread, and drops the rest of
    a chunk after a message it could not decode. So the stream is split here
    (:class:`~drivers.llrp.codec.FrameBuffer`), sllurp gets one whole message at a time, and
    what it cannot take is counted in :class:`ParseCounts` and dropped. sllurp's
    ``ReaderConfigurationError`` (a refused configuration) still ends the connection.

    RO_ACCESS_REPORTs never reach sllurp: :func:`~drivers.llrp.reads.report_reads` turns each
    into a batch of reads for ``on_reads`` (called on the socket thread, without the lock:
    the reports change none of sllurp's state). sllurp's state machine ignores them anyway.
    """

    def __init__(
        self,
        *args: Any,
        name: str,
        on_reads: Callable[[list[TagRead]], None],
        counts: ParseCounts | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.name = name
        self.on_reads = on_reads
        self.lock = threading.Lock()
        self.last_rx = time.monotonic()
        self.counts = counts if counts is not None else ParseCounts()
        self._stream = FrameBuffer()
        self._decoded = False

    def raw_data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        try:
            frames = self._stream.feed(data)
        except LLRPFramingError as exc:
            frames = exc.frames
            self.counts.framing_errors += 1
            log.warning("LLRP stream out of step, buffered bytes dropped: %s", exc)
        for frame in frames:
            if frame.msg_type == MessageType.RO_ACCESS_REPORT:
                self._report_received(frame.data)
            else:
                self._message_received(frame.data)

    def _report_received(self, message: bytes) -> None:
        self.counts.messages += 1
        try:
            reads = report_reads(self.name, message)
        except LLRPDecodeError as exc:
            self.counts.malformed += 1
            log.warning("%s: dropped a malformed RO_ACCESS_REPORT: %s", self.name, exc)
            return
        if reads:
            self.on_reads(reads)

    def _message_received(self, message: bytes) -> None:
        self.counts.messages += 1
        self._decoded = False
        with self.lock:
            try:
                super().raw_data_received(message)
            except ReaderConfigurationError:
                raise
            except Exception as exc:  # noqa: BLE001 - sllurp raises what struct and dicts raise
                self.counts.malformed += 1
                log.warning("dropped a malformed LLRP message: %r", exc)
                return
        if not self._decoded:  # sllurp logged an LLRPError and dropped the message
            self.counts.malformed += 1

    def _on_llrp_message_received(self, lmsg: Any) -> None:
        self._decoded = True
        super()._on_llrp_message_received(lmsg)


def quiet_sllurp() -> None:
    """Raise sllurp's log level to ERROR unless the operator configured it.

    sllurp warns on every TCP read that splits a message header ("Too few bytes"), which is
    normal at high rates; formatting those warnings costs more than decoding the reads.
    """
    sllurp_log = logging.getLogger("sllurp")
    if sllurp_log.level == logging.NOTSET:
        sllurp_log.setLevel(logging.ERROR)


class LlrpReader(Reader):
    """One LLRP reader, kept connected by a supervisor task (:class:`~drivers.base.Device`).

    Read batches appear on :attr:`queue`. Call :meth:`start` once, then bracket each scan
    window with :meth:`start_inventory` and :meth:`stop_inventory`.
    """

    kind = "llrp"
    expected = (OSError, TimeoutError, ReaderError)

    def __init__(self, settings: LlrpSettings) -> None:
        quiet_sllurp()
        super().__init__(
            settings.name,
            settings.backoff,
            watch_period=settings.keepalive_seconds / 4,
            queue_size=settings.queue_size,
            block_timeout=block_timeout(settings),
        )
        self.settings = settings
        self._client: _Client | None = None
        self._inventory_wanted = False
        self._waiters: dict[str, asyncio.Future[bool]] = {}
        self.parse_counts = ParseCounts()
        """Messages framed, and those that could not be decoded (all connections)."""

    # -- public API -------------------------------------------------------------------------

    async def start_inventory(self) -> None:
        """Add, enable and start the ROSpec; raises :class:`ReaderError` if it fails."""
        self._inventory_wanted = True
        if not self.connected:
            raise ReaderError(f"{self.name}: not connected")
        await self._start_rospec()

    async def stop_inventory(self) -> None:
        """Delete the ROSpec; every report the reader flushed is queued when this returns."""
        self._inventory_wanted = False
        client = self._client
        if client is None or not self.connected:
            raise ReaderError(f"{self.name}: link lost before the inventory was stopped")
        done = self._expect("stopped")
        with client.lock:
            client.llrp.stopPolitely(onCompletion=self._callback("stopped"))
        if not await self._await_stop(done):
            raise ReaderError(f"{self.name}: reader did not confirm the stop")

    # -- the link ---------------------------------------------------------------------------

    def _refresh_health(self, health: DeviceHealth) -> None:
        if self._client is not None:
            health.extra["seconds_since_rx"] = time.monotonic() - self._client.last_rx
        counts = self.parse_counts
        health.extra["llrp_messages"] = counts.messages
        health.extra["llrp_malformed"] = counts.malformed
        health.extra["llrp_framing_errors"] = counts.framing_errors

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _sllurp_config(self) -> LLRPReaderConfig:
        s = self.settings
        config: dict[str, Any] = {
            "antennas": list(s.antennas),
            "session": s.session,
            "tag_population": s.tag_population,
            "tag_content_selector": dict(TAG_CONTENT),
            "keepalive_interval": int(s.keepalive_seconds * 1000),
            "start_inventory": False,
            "reset_on_connect": True,
            "reconnect": False,
        }
        if s.tx_power_dbm is not None:
            config["tx_power_dbm"] = float(s.tx_power_dbm)
        return LLRPReaderConfig(config)

    async def _connect(self) -> None:
        s = self.settings
        ready = self._expect("ready")
        client = _Client(
            s.host,
            s.port,
            self._sllurp_config(),
            timeout=s.connect_timeout_seconds,
            name=self.name,
            on_reads=self._on_reads,
            counts=self.parse_counts,
        )
        client.add_disconnected_callback(self._on_disconnected)
        seen: set[int] = set()

        def on_state(_: Any, state: int) -> None:
            seen.add(state)
            if state == LLRPReaderState.STATE_CONNECTED and (
                LLRPReaderState.STATE_SENT_SET_CONFIG in seen
            ):
                self._post(self._resolve, "ready", True)

        for _name, number in LLRPReaderState.getStates():
            client.add_state_callback(number, on_state)
        self._client = client
        await asyncio.to_thread(client.connect)
        if not await self._await(ready, s.connect_timeout_seconds):
            raise ReaderError("reader did not finish configuration in time")
        self._check_capabilities(client)

    async def _after_connect(self) -> None:
        if self._inventory_wanted:  # the link came back during a scan window
            await self._start_rospec()

    def _check_capabilities(self, client: _Client) -> None:
        max_antennas = int(client.llrp.max_ant)
        missing = [a for a in self.settings.antennas if a > max_antennas]
        if missing:
            raise ReaderError(f"reader has {max_antennas} antennas; configured: {missing}")
        self._health.extra["antennas"] = float(max_antennas)

    async def _start_rospec(self) -> None:
        client = self._client
        if client is None:
            raise ReaderError(f"{self.name}: not connected")
        started = self._expect("inventorying")
        with client.lock:
            rospec = client.llrp.getROSpec(force_new=True)
            # Report every N tag reports (and at the end of the ROSpec), not only at the end.
            rospec["ROReportSpec"]["ROReportTrigger"] = "Upon_N_Tags_Or_End_Of_ROSpec"
            rospec["ROReportSpec"]["N"] = self.settings.report_every_n_tags
            client.add_state_callback(LLRPReaderState.STATE_INVENTORYING, self._on_inventorying)
            client.llrp.startInventory()
        if not await self._await(started):
            raise ReaderError(f"{self.name}: reader did not start the inventory")

    async def _check_link(self) -> str | None:
        """Why the link is bad: silent for 1.5 keepalive periods, or sllurp's thread ended."""
        client = self._client
        if client is None:
            return "not connected"
        silent = time.monotonic() - client.last_rx
        if silent > 1.5 * self.settings.keepalive_seconds:
            return f"no message for {silent:.1f} s (keepalive watchdog)"
        if not client.is_alive():
            return "sllurp socket thread ended"
        return None

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        for name, waiter in self._waiters.items():
            if not waiter.done():
                waiter.set_result(False)
                log.debug("%s: abandoned wait for %s", self.name, name)
        if self._stopping.is_set() and client.is_alive():
            # Polite close: delete our specs, then close. Sent under the lock (like every
            # command) so the reply cannot overtake sllurp's state change; non-blocking.
            with client.lock:
                client.disconnect()
            await asyncio.to_thread(client.join, self.settings.connect_timeout_seconds)
        await asyncio.to_thread(client.hard_disconnect)
        await asyncio.to_thread(client.join, self.settings.connect_timeout_seconds)

    # -- sllurp's thread: everything goes through the device's bridge ----------------------

    def _on_reads(self, reads: list[TagRead]) -> None:
        self._hand_over(reads)

    def _on_disconnected(self, _client: Any) -> None:
        self._post(self._lose, "connection lost")

    def _on_inventorying(self, _client: Any, _state: int) -> None:
        self._post(self._resolve, "inventorying", True)

    def _callback(self, name: str) -> Callable[..., None]:
        def done(_state: Any, is_success: bool, *_args: Any) -> None:
            self._post(self._resolve, name, bool(is_success))

        return done

    # -- loop side --------------------------------------------------------------------------

    def _expect(self, name: str) -> asyncio.Future[bool]:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters[name] = future
        return future

    def _resolve(self, name: str, ok: bool) -> None:
        future = self._waiters.get(name)
        if future is not None and not future.done():
            future.set_result(ok)

    async def _await_stop(self, done: asyncio.Future[bool]) -> bool:
        """Wait for the stop's confirmation; whether the reader confirmed it.

        The deadline (``connect_timeout_seconds``) starts again as long as our own read
        queue holds sllurp's thread back: the confirmation then waits behind reports we have
        not taken yet (late, not lost), not on the reader. A thread no longer held back (the
        backlog drained, or its wait ran out and it drops) gets one more deadline.
        """
        seen = self._backpressure()
        while not await self._await(done):
            now = self._backpressure()
            held_back = now[1] > 0 or now[0] != seen[0]
            if done.done() or self._link_lost.is_set() or not held_back:
                return False
            seen = now
        return True

    async def _await(
        self,
        future: asyncio.Future[bool],
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline per reader command
    ) -> bool:
        lost: asyncio.Future[bool] = asyncio.ensure_future(self._link_lost.wait())
        try:
            done, _ = await asyncio.wait(
                {future, lost},
                timeout=timeout or self.settings.connect_timeout_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            lost.cancel()
        return future in done and future.result()
