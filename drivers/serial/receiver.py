"""The reader thread of one serial connection: read, decode, hand over.

pyserial reads block, so each connection gets one :class:`Receiver` thread. It reads what
arrives, decodes it (:class:`~drivers.serial.codec.FrameDecoder`), gathers tag notices into
:class:`TagRead` batches and hands batches and other frames, in arrival order, to a callback
that must bring them onto the event loop (the driver's single seam). It never touches the
loop's state itself.

A module sends one notice per tag read, so reads are gathered for up to ``batch_seconds`` (or
``BATCH_MAX`` reads) rather than handed over one by one; any other frame (a response) goes
at once, after the reads that came before it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.base import TagRead
from drivers.serial.codec import Frame, FrameDecoder, Reject, TagNotice
from drivers.serial.transport import SerialLink, TransportError

log = logging.getLogger(__name__)

#: What is handed over: read batches and the other frames, in the order they arrived.
Item = list[TagRead] | Frame

#: Most reads in one batch.
BATCH_MAX = 200


@dataclass(frozen=True, slots=True)
class ReceiverSettings:
    """How a receiver turns frames into reads.

    Attributes:
        reader: Reader name put in every :class:`TagRead`.
        antenna: Antenna number put in every read.
        idle_gap_seconds: A frame interrupted by a pause this long is dropped as truncated.
        verify_epc_crc: Drop notices whose tag CRC does not match PC + EPC.
        max_payload: Longest frame data the decoder accepts.
        batch_seconds: Longest time reads are gathered before they are handed over.
    """

    reader: str
    antenna: int
    idle_gap_seconds: float
    verify_epc_crc: bool
    max_payload: int
    batch_seconds: float = 0.05


class Receiver:
    """One reader thread on one open link.

    Args:
        link: The open port.
        settings: See :class:`ReceiverSettings`.
        deliver: Called on the thread with each chunk's items (must hand them to the loop).
        lost: Called on the thread, once, when the link fails (not after :meth:`stop`).
    """

    def __init__(
        self,
        link: SerialLink,
        settings: ReceiverSettings,
        deliver: Callable[[list[Item]], None],
        lost: Callable[[str], None],
    ) -> None:
        self.link = link
        self.settings = settings
        self.decoder = FrameDecoder(settings.max_payload)
        self.crc_errors = 0
        """Notices dropped for a bad tag CRC (written by the thread only)."""
        self.last_rx = time.monotonic()
        """Monotonic time of the last byte received (written by the thread only)."""
        self._deliver = deliver
        self._lost = lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"serial:{settings.reader}")
        self._thread.daemon = True

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Ask the thread to end and wait for it at most ``timeout`` seconds (blocking).

        A read ends within the link's read timeout, so the wait is short.
        """
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("%s: reader thread still running", self.settings.reader)

    def _run(self) -> None:
        batch: list[TagRead] = []
        try:
            why = self._receive(batch)
        except Exception as exc:  # a bug: loud, then the driver reconnects
            log.exception("%s: reader thread failed", self.settings.reader)
            why = f"reader thread failed: {exc!r}"
        if batch:  # reads gathered before the end still count
            self._deliver([batch])
        if why is not None and not self._stop.is_set():
            self._lost(why)

    def _receive(self, batch: list[TagRead]) -> str | None:
        """Read until stopped (None) or the link fails (why); ``batch`` keeps undelivered reads."""
        s = self.settings
        decoder = self.decoder
        last_byte = started = time.monotonic()
        while not self._stop.is_set():
            try:
                data = self.link.read_some()
            except TransportError as exc:
                return str(exc)
            now = time.monotonic()
            frames: list[Frame] = []
            if data:
                last_byte = self.last_rx = now
                frames = decoder.feed(data)
            elif decoder.pending and now - last_byte >= s.idle_gap_seconds:
                frames = decoder.idle()
            if frames and not batch:
                started = now
            items = self._sort(frames, batch)
            due = not data or len(batch) >= BATCH_MAX or now - started >= s.batch_seconds
            if batch and (items or due):
                items.append(batch[:])
                batch.clear()
            if items:
                self._deliver(items)
        return None

    def _sort(self, frames: list[Frame], batch: list[TagRead]) -> list[Item]:
        """Add notices to ``batch``; other frames come out, each after the reads before it."""
        s = self.settings
        now = time.time()
        items: list[Item] = []
        for frame in frames:
            if isinstance(frame, TagNotice):
                if s.verify_epc_crc and not frame.crc_ok:
                    self.crc_errors += 1
                    continue
                batch.append(TagRead(s.reader, s.antenna, frame.epc, float(frame.rssi), now))
                continue
            if batch:
                items.append(batch[:])
                batch.clear()
            items.append(frame)
        return items


@dataclass(frozen=True, slots=True)
class DecoderTotals:
    """Decoder counters summed over connections (each connection has its own decoder)."""

    rejected: dict[Reject, int] = field(default_factory=lambda: dict.fromkeys(Reject, 0))
    skipped_bytes: int = 0
    frames: int = 0
    crc_errors: int = 0

    def plus(self, receiver: Receiver | None) -> DecoderTotals:
        """These totals plus a receiver's counters."""
        if receiver is None:
            return self
        d = receiver.decoder
        return DecoderTotals(
            {r: n + d.rejected[r] for r, n in self.rejected.items()},
            self.skipped_bytes + d.skipped_bytes,
            self.frames + d.frames,
            self.crc_errors + receiver.crc_errors,
        )
