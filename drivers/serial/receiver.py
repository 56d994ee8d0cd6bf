"""The reader thread of one serial connection: read, decode, hand over.

pyserial reads block, so each connection gets one :class:`Receiver` thread. It reads what
arrives, decodes it (:class:`~drivers.serial.codec.FrameDecoder`), turns tag notices into
:class:`TagRead` batches and hands each chunk's items, in arrival order, to a callback that
must bring them onto the event loop (the driver's single seam). It never touches the loop's
state itself.
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

#: What one chunk yields: read batches and the other frames, in the order they arrived.
Item = list[TagRead] | Frame


@dataclass(frozen=True, slots=True)
class ReceiverSettings:
    """How a receiver turns frames into reads.

    Attributes:
        reader: Reader name put in every :class:`TagRead`.
        antenna: Antenna number put in every read.
        idle_gap_seconds: A frame interrupted by a pause this long is dropped as truncated.
        verify_epc_crc: Drop notices whose tag CRC does not match PC + EPC.
        max_payload: Longest frame data the decoder accepts.
    """

    reader: str
    antenna: int
    idle_gap_seconds: float
    verify_epc_crc: bool
    max_payload: int


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
        gap = self.settings.idle_gap_seconds
        decoder = self.decoder
        last_byte = time.monotonic()
        while not self._stop.is_set():
            try:
                data = self.link.read_some()
            except TransportError as exc:
                if not self._stop.is_set():
                    self._lost(str(exc))
                return
            now = time.monotonic()
            if data:
                last_byte = self.last_rx = now
                frames = decoder.feed(data)
            elif decoder.pending and now - last_byte >= gap:
                frames = decoder.idle()
            else:
                continue
            if frames:
                self._deliver(self._sort(frames))

    def _sort(self, frames: list[Frame]) -> list[Item]:
        """Turn notices into read batches, keeping their order relative to other frames."""
        s = self.settings
        now = time.time()
        items: list[Item] = []
        batch: list[TagRead] = []
        for frame in frames:
            if isinstance(frame, TagNotice):
                if s.verify_epc_crc and not frame.crc_ok:
                    self.crc_errors += 1
                    continue
                batch.append(TagRead(s.reader, s.antenna, frame.epc, float(frame.rssi), now))
                continue
            if batch:
                items.append(batch)
                batch = []
            items.append(frame)
        if batch:
            items.append(batch)
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
