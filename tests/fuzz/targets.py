"""Fuzz targets shared by the hypothesis tests (``tests/fuzz``) and the long runs (``bench/fuzz``).

Each target takes one input, runs it through a parser the way the product does, and checks
what the product promises about malformed input:

* nothing but the parser's documented rejection escapes (anything else is a crash and
  propagates out of the target);
* every rejected input is counted where the product keeps a counter;
* what is valid still decodes.

A target returns an :class:`Outcome`: how many units (frames, messages, payloads) it saw and
how many were rejected (and counted). An invariant that does not hold raises
:class:`FuzzFailureError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from sllurp.llrp_errors import ReaderConfigurationError as _ReaderConfigurationError

from drivers.base import TagRead
from drivers.llrp import codec as llrp
from drivers.llrp.driver import LlrpReader, LlrpSettings, ParseCounts, _Client
from drivers.serial import codec as serial
from drivers.serial.receiver import Item, Receiver, ReceiverSettings
from drivers.serial.transport import SerialLink, TransportError
from simulators.llrp.reader import SimReader
from simulators.llrp.session import MAX_CLIENT_MESSAGE, Session
from simulators.llrp.stats import SimStats
from simulators.scene import Scene, scene_from_tags
from simulators.watch import StatsWatch

ROOT = Path(__file__).resolve().parent.parent
LLRP_GOLDEN = ROOT / "drivers" / "llrp" / "golden"


class FuzzFailureError(AssertionError):
    """An input broke a promise (a rejection not counted, a valid frame lost)."""


@dataclass(slots=True)
class Outcome:
    """What one input did.

    Attributes:
        units: Frames, messages or payloads the input held.
        rejected: Those rejected (each one counted by the product).
    """

    units: int = 0
    rejected: int = 0
    detail: dict[str, int] = field(default_factory=dict)


def check(condition: bool, what: str) -> None:
    """Raise :class:`FuzzFailureError` unless ``condition``."""
    if not condition:
        raise FuzzFailureError(what)


def llrp_corpus() -> list[bytes]:
    """The golden LLRP messages (both directions), the seed of structure-aware mutations."""
    return [bytes.fromhex(p.read_text().strip()) for p in sorted(LLRP_GOLDEN.glob("*.hex"))]


# -- LLRP codec (ours) ------------------------------------------------------------------------


def llrp_codec(data: bytes) -> Outcome:
    """Our codec: framing, typed decoding and the fast RO_ACCESS_REPORT path.

    FrameBuffer raises only ``LLRPFramingError`` (counted in ``errors``); decode_message and
    decode_ro_access_report raise only ``LLRPDecodeError``.
    """
    buf = llrp.FrameBuffer()
    out = Outcome()
    try:
        frames = buf.feed(data)
    except llrp.LLRPFramingError as exc:
        frames = exc.frames
        out.rejected += 1
        check(buf.errors == 1, "framing error not counted")
    check(buf.frames == len(frames), "frames not counted")
    for frame in frames:
        out.units += 1
        try:
            llrp.decode_message(frame)
        except llrp.LLRPDecodeError:
            out.rejected += 1
        if frame.msg_type == llrp.MessageType.RO_ACCESS_REPORT:
            with contextlib.suppress(llrp.LLRPDecodeError):
                llrp.decode_ro_access_report(frame.data)
    return out


# -- LLRP simulator: one client session -------------------------------------------------------

_SCENE: Scene | None = None


def _scene() -> Scene:
    global _SCENE  # noqa: PLW0603 - built once, read-only after
    if _SCENE is None:
        _SCENE = scene_from_tags([("3034257bf7194e4000003039", 1, -50.0)], antennas=1, seed=1)
    return _SCENE


class _Transport:
    def abort(self) -> None:
        pass


class _Writer:
    """What a Session writes to: collects bytes, never blocks."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False
        self.transport = _Transport()

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return self.closed

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None


def _expected_session(data: bytes) -> tuple[int, int, int]:
    """(messages the session reads, decode errors, framing errors) for ``data`` in one read."""
    buf = llrp.FrameBuffer(MAX_CLIENT_MESSAGE)
    framing = 0
    closing = False
    try:
        frames = buf.feed(data)
    except llrp.LLRPFramingError as exc:
        frames, framing, closing = exc.frames, 1, True
    seen = errors = 0
    for frame in frames:
        seen += 1
        try:
            msg = llrp.decode_message(frame)
        except llrp.LLRPDecodeError as exc:
            unsupported = (
                llrp.StatusCode.M_UNSUPPORTED_MESSAGE,
                llrp.StatusCode.M_UNSUPPORTED_VERSION,
            )
            errors += exc.status not in unsupported
            continue
        if isinstance(msg, llrp.CloseConnection) and not closing:
            return seen, errors, 0  # the session reads no further: what follows is not looked at
    if not closing and buf.pending:
        framing = 1
    return seen, errors, framing


async def _run_session(data: bytes) -> SimStats:
    stats = SimStats()
    reader = SimReader(_scene(), stats, StatsWatch(stats), seed=1)
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    session = Session(reader, stream, cast(asyncio.StreamWriter, _Writer()))
    reader.sink = session
    try:
        async with asyncio.timeout(10):
            await session.run()
    finally:
        reader.sink = None
        await reader.close()
    return stats


def llrp_sim_session(data: bytes) -> Outcome:
    """The simulator's side: a client sends ``data`` and closes.

    Every message read is counted in ``messages_in``; each malformed one in
    ``decode_errors`` (or ``unsupported_messages``); an unsplittable stream, or one that ends
    mid-message, in ``framing_errors``. ``data`` arrives in one read (<= 64 KiB).
    """
    check(len(data) <= 65536, "the session reads 64 KiB at a time; keep inputs below")
    stats = asyncio.run(_run_session(data))
    seen, errors, framing = _expected_session(data)
    check(stats.messages_in == seen, f"messages_in {stats.messages_in} != {seen}")
    check(stats.decode_errors == errors, f"decode_errors {stats.decode_errors} != {errors}")
    check(stats.framing_errors == framing, f"framing_errors {stats.framing_errors} != {framing}")
    rejected = stats.decode_errors + stats.framing_errors + stats.unsupported_messages
    return Outcome(seen, rejected, {"unsupported": stats.unsupported_messages})


# -- LLRP driver: our report decoder and sllurp's, through our wrapper ------------------------


class _Socket:
    """Where sllurp sends its answers (a keepalive ack, ...) when no reader is there."""

    def sendall(self, data: bytes) -> None:
        pass


_SETTINGS = LlrpSettings(name="fuzz", host="127.0.0.1")


def driver_client() -> tuple[_Client, list[TagRead]]:
    """A driver client as :meth:`LlrpReader._connect` makes it, not connected; and its reads."""
    reader = LlrpReader(_SETTINGS)
    reads: list[TagRead] = []
    client = _Client(
        "127.0.0.1",
        5084,
        reader._sllurp_config(),
        timeout=1,
        name=_SETTINGS.name,
        on_reads=reads.extend,
        counts=ParseCounts(),
    )
    client._socket = _Socket()  # sllurp answers some messages; nothing is listening
    return client, reads


def _report_reads(frames: list[llrp.Frame]) -> tuple[int, int]:
    """TagReportData the codec decodes from the RO_ACCESS_REPORTs, and reports it rejects."""
    decoded = bad = 0
    for frame in frames:
        if frame.msg_type != llrp.MessageType.RO_ACCESS_REPORT:
            continue
        try:
            decoded += len(llrp.decode_ro_access_report(frame.data))
        except llrp.LLRPDecodeError:
            bad += 1
    return decoded, bad


def llrp_driver(data: bytes, chunk: int = 0) -> Outcome:
    """The driver's side: reader bytes through ``_Client.raw_data_received``.

    RO_ACCESS_REPORTs are decoded by our codec, everything else by sllurp.

    Nothing but sllurp's ``ReaderConfigurationError`` (a refused configuration, which ends the
    connection by design) escapes; every message is counted, and each malformed one too; every
    TagReportData the codec decodes becomes one read.
    ``chunk`` > 0 delivers the bytes in pieces of that size, as TCP may.
    """
    client, reads = driver_client()
    step = chunk or len(data) or 1
    config_errors = 0
    for at in range(0, len(data), step):
        try:
            client.raw_data_received(data[at : at + step])
        except _ReaderConfigurationError:
            config_errors += 1
    counts = client.counts
    expected = llrp.FrameBuffer()
    try:
        found = expected.feed(data)
    except llrp.LLRPFramingError as exc:
        found, framing = exc.frames, True
    else:
        framing = False
    frames = len(found)
    if not config_errors:
        check(counts.messages >= frames, f"messages {counts.messages} < {frames}")
    if not config_errors and not framing:
        decoded, bad = _report_reads(found)
        check(len(reads) == decoded, f"reads {len(reads)} != {decoded} the codec decodes")
        check(counts.malformed >= bad, f"malformed {counts.malformed} < {bad} bad reports")
    check(counts.malformed <= counts.messages, "more malformed than messages")
    rejected = counts.malformed + counts.framing_errors
    return Outcome(counts.messages, rejected, {"reads": len(reads), "config_errors": config_errors})


# -- serial: the receiver thread over a link that delivers chunks -----------------------------


class _Link:
    """A serial link that delivers chunks, then a quiet read, then fails."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = deque(chunks)
        self._quiet = False

    def read_some(self) -> bytes:
        if self._chunks:
            return self._chunks.popleft()
        if not self._quiet:
            self._quiet = True
            return b""
        raise TransportError("end of input")

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def serial_receiver(chunks: list[bytes], verify_crc: bool = True) -> Outcome:
    """The serial reader thread: chunks in, read batches and frames out.

    The receiver decodes exactly what a fresh :class:`FrameDecoder` decodes from the whole
    stream (then an idle line); tag notices become reads, or count as CRC errors; every
    rejected candidate is counted by reason; nothing stays pending.
    """
    chunks = [chunk for chunk in chunks if chunk]  # an empty read is a quiet line
    settings = ReceiverSettings("fuzz", 1, 0.0, verify_crc, serial.DEFAULT_MAX_PAYLOAD, 0.0)
    items: list[Item] = []
    lost = threading.Event()
    receiver = Receiver(
        cast(SerialLink, _Link(chunks)), settings, items.extend, lambda _why: lost.set()
    )
    receiver.start()
    check(lost.wait(10), "receiver did not finish")
    receiver.stop(5)
    reference = serial.FrameDecoder()
    frames = reference.feed(b"".join(chunks))
    frames += reference.idle()
    reads = [r for item in items if isinstance(item, list) for r in item]
    others = [item for item in items if not isinstance(item, list)]
    notices = [f for f in frames if isinstance(f, serial.TagNotice)]
    good = [n for n in notices if n.crc_ok or not verify_crc]
    check([r.epc for r in reads] == [n.epc for n in good], "reads differ from the notices")
    check(others == [f for f in frames if not isinstance(f, serial.TagNotice)], "frames differ")
    d = receiver.decoder
    check(receiver.crc_errors == len(notices) - len(good), "CRC errors not counted")
    check(d.rejected == reference.rejected, "rejections differ")
    check(d.frames == len(frames), "frames not counted")
    check(d.pending == 0, "bytes left pending after an idle line")
    rejected = d.rejected_total + receiver.crc_errors
    return Outcome(d.frames + d.rejected_total, rejected, {"skipped_bytes": d.skipped_bytes})


QUIETED = ("sllurp", "drivers", "simulators", "gateway", "edgecount", "reconciler")


def quiet_logs() -> dict[str, int]:
    """The targets log every rejection; a fuzz run would drown in them.

    Returns:
        The levels the loggers had, for :func:`restore_logs`.
    """
    before = {name: logging.getLogger(name).level for name in QUIETED}
    for name in QUIETED:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return before


def restore_logs(levels: dict[str, int]) -> None:
    """Give the loggers back the levels :func:`quiet_logs` found."""
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


__all__ = [
    "FuzzFailureError",
    "Outcome",
    "driver_client",
    "llrp_codec",
    "llrp_corpus",
    "llrp_driver",
    "llrp_sim_session",
    "quiet_logs",
    "restore_logs",
    "serial_receiver",
]
