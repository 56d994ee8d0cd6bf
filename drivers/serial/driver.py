"""Serial UHF module driver (M100 / JRD-4035 / YRM100): connect, configure, poll, reconnect.

pyserial reads block, so each connection has one reader thread
(:class:`~drivers.serial.receiver.Receiver`) that decodes frames and hands everything to the
event loop at one seam, the device's bridge (:class:`~drivers.base.Device`): tag notices as
:class:`TagRead` batches, responses in the order they arrived. The loop owns all state;
commands are written from the loop (one at a time) and matched to responses by command code.
A full read queue drops and counts; unlike the LLRP driver's socket thread, the reader
thread never waits for room: a UART without flow control cannot make the module hold back,
so a waiting thread would only move the loss into the kernel's buffers (bytes lost
uncounted, as broken frames) and leave the watchdog's probe unanswered.

A scan is a multi-poll (command 0x27) kept running until :meth:`SerialReader.stop_inventory`
sends stop (0x28) and receives its acknowledgement; every read the module reported before
that acknowledgement is queued by then. A module that finished its poll count goes quiet,
and so does a dead one: after ``watchdog_seconds`` without a byte the driver probes (stop,
then poll again while a scan runs; ask for the power otherwise). A probe left unanswered for
``command_timeout_seconds``, an I/O error, or EOF on ``socket://`` is a link failure: counted
in :attr:`SerialReader.failures`, then reconnected with backoff and jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from drivers.base import DeviceHealth, Reader, TagRead
from drivers.serial.codec import (
    DEFAULT_MAX_PAYLOAD,
    MAX_POLL_COUNT,
    Ack,
    Command,
    ErrorCode,
    ErrorResponse,
    Frame,
    FrameType,
    GetModuleInfo,
    GetPower,
    HostFrame,
    InfoKind,
    ModuleInfo,
    MultiPoll,
    PowerResponse,
    RawFrame,
    Reject,
    SetPower,
    StopMultiPoll,
)
from drivers.serial.receiver import DecoderTotals, Item, Receiver, ReceiverSettings
from drivers.serial.transport import DEFAULT_BAUDRATE, SerialLink, TransportError, open_link
from edgecount.backoff import Backoff

log = logging.getLogger(__name__)

_READ_WAIT = 0.05
"""Longest single read of the reader thread before it looks at its stop flag again."""


class ReaderError(Exception):
    """The module could not be connected, configured or commanded."""


@dataclass(frozen=True, slots=True)
class SerialReaderSettings:
    """What the driver needs to know about one serial module.

    Attributes:
        name: Reader name (logs, health, :attr:`TagRead.reader`).
        url: ``/dev/ttyUSB0``, a pty path, ``socket://HOST:PORT`` or ``loop://``.
        baudrate: Line speed (the family's default is 115200).
        antenna: Antenna number given to every read (these modules have one port).
        tx_power_dbm: Transmit power set at every connect; None keeps the module's.
        poll_count: Rounds asked for by one multi-poll command (the watchdog polls again
            when a module has finished them during a scan).
        watchdog_seconds: Silence after which the driver probes the module.
        command_timeout_seconds: How long a command waits for its response.
        idle_gap_seconds: A frame interrupted by a pause this long is dropped as truncated
            (a module sends a frame's bytes back to back; raise it for slow TCP bridges).
        verify_epc_crc: Drop tag notices whose tag CRC does not match PC + EPC (counted as
            ``epc_crc_errors``): the frame checksum alone misses many two-bit errors.
        queue_size: Batches kept for the consumer; a full queue drops and counts.
        max_payload: Longest frame data accepted by the decoder.
        backoff: Reconnect delays.
    """

    name: str
    url: str
    baudrate: int = DEFAULT_BAUDRATE
    antenna: int = 1
    tx_power_dbm: float | None = None
    poll_count: int = MAX_POLL_COUNT
    watchdog_seconds: float = 2.0
    command_timeout_seconds: float = 1.0
    idle_gap_seconds: float = 0.2
    verify_epc_crc: bool = True
    queue_size: int = 1000
    max_payload: int = DEFAULT_MAX_PAYLOAD
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        problems = []
        if min(self.watchdog_seconds, self.command_timeout_seconds, self.idle_gap_seconds) <= 0:
            problems.append("watchdog, command timeout and idle gap must be positive")
        if not 1 <= self.poll_count <= MAX_POLL_COUNT:
            problems.append("poll_count must be within 1..65535")
        if self.queue_size < 1 or self.antenna < 1 or self.baudrate < 1:
            problems.append("queue_size, antenna and baudrate must be at least 1")
        if self.tx_power_dbm is not None and not -100 <= self.tx_power_dbm <= 100:
            problems.append("tx_power_dbm must be within -100..100")
        if self.max_payload < 67:
            problems.append("max_payload must hold a 496-bit EPC notice (67 bytes)")
        if problems:
            raise ValueError(f"serial reader {self.name}: " + "; ".join(problems))


class SerialReader(Reader):
    """One serial UHF module, kept connected by a supervisor task (:class:`~drivers.base.Device`).

    Read batches appear on :attr:`queue`. Call :meth:`start` once, then bracket each scan
    window with :meth:`start_inventory` and :meth:`stop_inventory`; :meth:`stop` at the end.
    """

    kind = "serial"
    expected = (TransportError, ReaderError)

    def __init__(self, settings: SerialReaderSettings) -> None:
        super().__init__(
            settings.name,
            settings.backoff,
            watch_period=settings.watchdog_seconds / 4,
            queue_size=settings.queue_size,
        )
        self.settings = settings
        self._command_lock = asyncio.Lock()
        self._waiters: dict[int, asyncio.Future[Frame]] = {}
        self._receiver: Receiver | None = None
        self._generation = 0
        self._decoded = DecoderTotals()
        self._inventory_wanted = False
        self._polling = False
        self._last_rx = time.monotonic()
        self._counts = dict.fromkeys(
            ("repolls", "retries", "empty_rounds", "stray_reads", "module_errors"), 0
        )
        self._module_info: dict[str, str] = {}

    # -- public API -------------------------------------------------------------------------

    @property
    def module_info(self) -> dict[str, str]:
        """``hardware``, ``software`` and ``manufacturer`` text read at the last connect."""
        return dict(self._module_info)

    async def start_inventory(self) -> None:
        """Start a multi-poll; raises :class:`ReaderError` when not connected."""
        self._inventory_wanted = True
        if not self.connected:
            raise ReaderError(f"{self.name}: not connected")
        async with self._command_lock:
            await self._start_polling()

    async def stop_inventory(self) -> None:
        """Stop polling; every read the module sent before its acknowledgement is queued."""
        self._inventory_wanted = False
        if not self.connected:
            raise ReaderError(f"{self.name}: link lost before the inventory was stopped")
        async with self._command_lock:
            await self._exchange(StopMultiPoll(), Command.STOP_MULTI_POLL)

    # -- the link ---------------------------------------------------------------------------

    def _refresh_health(self, health: DeviceHealth) -> None:
        """``extra`` holds the link and decoder counters."""
        extra = health.extra
        extra["seconds_since_rx"] = time.monotonic() - self._rx_time()
        totals = self._decoded.plus(self._receiver)
        for reason in Reject:
            extra[f"rejected_{reason}"] = float(totals.rejected[reason])
        extra["rejected_frames"] = float(sum(totals.rejected.values()))
        extra["skipped_bytes"] = float(totals.skipped_bytes)
        extra["frames"] = float(totals.frames)
        extra["epc_crc_errors"] = float(totals.crc_errors)
        for key, value in self._counts.items():
            extra[key] = float(value)

    def _where(self) -> str:
        return f"{self.settings.url} ({self._module_info})"

    async def _before_stop(self) -> None:
        """Stop polling politely when connected."""
        self._inventory_wanted = False
        if self.connected and self._polling:
            with contextlib.suppress(ReaderError):
                async with self._command_lock:
                    await self._exchange(StopMultiPoll(), Command.STOP_MULTI_POLL)

    async def _connect(self) -> None:
        s = self.settings
        link = await asyncio.to_thread(
            open_link,
            s.url,
            baudrate=s.baudrate,
            read_timeout=min(_READ_WAIT, s.idle_gap_seconds),
            write_timeout=s.command_timeout_seconds,
        )
        self._start_receiver(link)
        async with self._command_lock:
            # A module may still be polling for a host that went away: stop it first. The
            # acknowledgement also proves that a module answers on this port.
            await self._exchange(StopMultiPoll(), Command.STOP_MULTI_POLL)
            await self._read_module_info()
            if s.tx_power_dbm is not None:
                await self._exchange(SetPower.from_dbm(s.tx_power_dbm), Command.SET_POWER)
            await self._exchange(GetPower(), Command.GET_POWER)

    async def _after_connect(self) -> None:
        if self._inventory_wanted:  # the link came back during a scan window
            async with self._command_lock:
                await self._start_polling()

    async def _read_module_info(self) -> None:
        """Best effort: some clones lack a line; only a lost link fails the connect."""
        for kind in InfoKind:
            try:
                answer = await self._exchange(GetModuleInfo(kind), Command.MODULE_INFO, 1)
            except ReaderError as exc:
                if self._link_lost.is_set():
                    raise
                log.warning("%s: no %s information: %s", self.name, kind.name.lower(), exc)
                continue
            if isinstance(answer, ModuleInfo):
                self._module_info[kind.name.lower()] = answer.text

    async def _start_polling(self) -> None:
        """Send a multi-poll (command lock held). Reads count from here on."""
        self._polling = True
        await self._write(MultiPoll(self.settings.poll_count))

    async def _check_link(self) -> str | None:
        """Probe a module silent for ``watchdog_seconds``; why the probe failed, or None."""
        silent = time.monotonic() - self._rx_time()
        if silent < self.settings.watchdog_seconds:
            return None
        try:
            await self._probe()
        except ReaderError as exc:
            return f"silent for {silent:.1f} s (watchdog): {exc}"
        return None

    async def _probe(self) -> None:
        """Ask the silent module for a sign of life; keep a scan polling."""
        async with self._command_lock:
            if not self._inventory_wanted:
                await self._exchange(GetPower(), Command.GET_POWER)
                return
            await self._exchange(StopMultiPoll(), Command.STOP_MULTI_POLL)
            if self._inventory_wanted:
                self._counts["repolls"] += 1
                await self._start_polling()

    async def _disconnect(self) -> None:
        self._polling = False
        receiver, self._receiver = self._receiver, None
        if receiver is None:
            return
        self._last_rx = receiver.last_rx
        await asyncio.to_thread(receiver.stop, 2.0)
        await asyncio.to_thread(receiver.link.close)
        self._decoded = self._decoded.plus(receiver)
        self._fail_waiters(ReaderError(f"{self.name}: disconnected"))

    # -- commands (command lock held) ---------------------------------------------------------

    async def _write(self, frame: HostFrame) -> None:
        receiver = self._receiver
        if receiver is None or self._link_lost.is_set():
            raise ReaderError(f"{self.name}: not connected")
        try:
            await asyncio.to_thread(receiver.link.write, frame.encode())
        except TransportError as exc:
            self._on_link_lost(self._generation, str(exc))
            raise ReaderError(str(exc)) from exc

    async def _exchange(self, frame: HostFrame, answer: int, attempts: int = 3) -> Frame:
        """Send ``frame`` and wait for the response with command code ``answer``.

        Every command used here is idempotent, so a response lost on a noisy line (a bad
        checksum) is asked for again, up to ``attempts`` times in all.

        Raises:
            ReaderError: No response after ``attempts`` tries, the link went away, the module
                reported an error, or it did not acknowledge.
        """
        for attempt in range(attempts):
            if attempt:
                self._counts["retries"] += 1
                log.warning("%s: no answer to command %#04x, asking again", self.name, answer)
            future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
            self._waiters[answer] = future
            try:
                await self._write(frame)
                async with asyncio.timeout(self.settings.command_timeout_seconds):
                    response = await future
            except TimeoutError:
                continue
            finally:
                self._waiters.pop(answer, None)
            if isinstance(response, ErrorResponse):
                raise ReaderError(f"command {answer:#04x} failed with error {response.code:#04x}")
            if isinstance(response, Ack) and not response.ok:
                raise ReaderError(f"command {answer:#04x} failed with status {response.status}")
            return response
        raise ReaderError(f"no answer to command {answer:#04x} after {attempts} tries")

    def _fail_waiters(self, error: Exception) -> None:
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(error)

    # -- reader thread ------------------------------------------------------------------------

    def _start_receiver(self, link: SerialLink) -> None:
        s = self.settings
        self._generation += 1
        generation = self._generation
        settings = ReceiverSettings(
            s.name, s.antenna, s.idle_gap_seconds, s.verify_epc_crc, s.max_payload
        )
        self._receiver = Receiver(
            link,
            settings,
            deliver=lambda items: self._from_receiver(generation, items),
            lost=lambda why: self._from_receiver(generation, [], lost=why),
        )
        self._receiver.start()

    def _rx_time(self) -> float:
        receiver = self._receiver
        return receiver.last_rx if receiver is not None else self._last_rx

    def _from_receiver(self, generation: int, items: list[Item], lost: str | None = None) -> None:
        """On the reader thread: batches, frames and a lost link to the loop, in order."""
        for item in items:
            if isinstance(item, list):
                self._hand_over(item)
            else:
                self._post(self._on_response, generation, item)
        if lost is not None:
            self._post(self._on_link_lost, generation, lost)

    # -- loop side --------------------------------------------------------------------------

    def _on_link_lost(self, generation: int, why: str) -> None:
        if generation != self._generation or self._link_lost.is_set():
            return
        self._lose(why)
        self._fail_waiters(ReaderError(f"{self.name}: {why}"))

    def _on_response(self, generation: int, frame: Frame) -> None:
        self._health.last_message_at = time.time()
        if generation == self._generation:
            self._on_frame(frame)
        self._notify()

    def _on_frame(self, frame: Frame) -> None:
        if isinstance(frame, ErrorResponse) and frame.code == ErrorCode.INVENTORY_FAIL:
            self._counts["empty_rounds"] += 1  # a poll round no tag answered
            return
        if isinstance(frame, ErrorResponse):
            self._counts["module_errors"] += 1
            log.warning("%s: module reported error %#04x", self.name, frame.code)
            for future in self._waiters.values():  # commands go one at a time
                if not future.done():
                    future.set_result(frame)
            return
        if isinstance(frame, RawFrame) and frame.ftype != FrameType.RESPONSE:
            log.debug("%s: ignored frame %s", self.name, frame)
            return
        if isinstance(frame, PowerResponse):
            self._health.extra["power_dbm"] = frame.dbm
        code = _response_code(frame)
        if code == Command.STOP_MULTI_POLL:
            self._polling = False  # later notices are strays
        waiter = self._waiters.get(code) if code is not None else None
        if waiter is not None and not waiter.done():
            waiter.set_result(frame)

    def _accept(self, batch: list[TagRead]) -> bool:
        if not self._polling:
            self._counts["stray_reads"] += len(batch)
            return False
        return super()._accept(batch)


def _response_code(frame: Frame) -> int | None:
    """The command a response answers (None for frames that answer nothing)."""
    if isinstance(frame, Ack | RawFrame):
        return frame.command
    if isinstance(frame, PowerResponse):
        return Command.GET_POWER
    if isinstance(frame, ModuleInfo):
        return Command.MODULE_INFO
    return None
