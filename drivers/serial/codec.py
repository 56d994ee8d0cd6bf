"""Codec of the serial UHF module protocol (M100 / JRD-4035 / YRM100 family): bytes <-> frames.

Every frame, in both directions, is::

    BB  type  cmd  PL_hi PL_lo  data[PL]  checksum  7E

``checksum`` is the low byte of the sum of the bytes from ``type`` through the last data byte.
``type`` is 0x00 (command, host to module), 0x01 (response) or 0x02 (notice: a tag read during
a poll). A tag notice carries RSSI (1 byte, signed dBm), the tag's PC word, its EPC (as many
16-bit words as the PC's top five bits say) and the tag's CRC-16 over PC + EPC.

This module is pure: no serial port, no clock. :class:`FrameDecoder` turns a byte stream into
typed frames; every frame type has an ``encode()`` method, so the simulator speaks the module's
side with the same code the driver uses for the host's side.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final, Self

HEADER: Final = 0xBB
END: Final = 0x7E
#: Bytes of a frame around its data: header, type, command, two length bytes, checksum, end.
OVERHEAD: Final = 7
#: Longest data field :class:`FrameDecoder` accepts by default. The inventory, power and
#: information frames stay far below it (a 496-bit EPC makes a 67-byte notice).
DEFAULT_MAX_PAYLOAD: Final = 255
#: The byte the module expects before the count of a multi-poll command.
MULTI_POLL_RESERVED: Final = 0x22
MAX_POLL_COUNT: Final = 0xFFFF


class FrameType(enum.IntEnum):
    """The ``type`` byte."""

    COMMAND = 0x00
    RESPONSE = 0x01
    NOTICE = 0x02


class Command(enum.IntEnum):
    """Command codes used here (the module knows more; they decode as :class:`RawFrame`)."""

    MODULE_INFO = 0x03
    SINGLE_POLL = 0x22
    MULTI_POLL = 0x27
    STOP_MULTI_POLL = 0x28
    SET_POWER = 0xB6
    GET_POWER = 0xB7
    ERROR = 0xFF


class ErrorCode(enum.IntEnum):
    """Error codes of an error response (command 0xFF)."""

    READ_FAIL = 0x09
    INVENTORY_FAIL = 0x15
    """No tag answered a poll round (or its data failed the tag CRC)."""
    ACCESS_FAIL = 0x16
    COMMAND_ERROR = 0x17
    """Malformed or unknown command frame."""
    FHSS_FAIL = 0x20


class InfoKind(enum.IntEnum):
    """What a module-information command asks for."""

    HARDWARE = 0x00
    SOFTWARE = 0x01
    MANUFACTURER = 0x02


class Reject(enum.StrEnum):
    """Why :class:`FrameDecoder` discarded bytes that began with 0xBB."""

    BAD_TYPE = "bad_type"
    """The byte after 0xBB is not a known frame type (checked before waiting for more)."""
    BAD_LENGTH = "bad_length"
    """The length field is above the decoder's ``max_payload``."""
    BAD_END = "bad_end"
    """The byte where the frame should end is not 0x7E."""
    BAD_CHECKSUM = "bad_checksum"
    BAD_PAYLOAD = "bad_payload"
    """A well-framed frame whose data does not fit its command (e.g. a notice whose PC
    announces another EPC length)."""
    TRUNCATED = "truncated"
    """The line went idle in the middle of a frame (see :meth:`FrameDecoder.idle`)."""


class FrameError(ValueError):
    """Data that does not fit its frame's command, or a value an encoder cannot represent."""


def checksum(body: bytes | bytearray) -> int:
    """The checksum of ``type cmd PL_hi PL_lo data``: the low byte of their sum."""
    return sum(body) & 0xFF


def encode_frame(ftype: int, command: int, data: bytes = b"") -> bytes:
    """Frame ``data`` as one complete frame.

    Raises:
        FrameError: ``ftype``/``command`` is not a byte, or ``data`` is longer than 65535.
    """
    if not (0 <= ftype <= 0xFF and 0 <= command <= 0xFF) or len(data) > 0xFFFF:
        raise FrameError(f"cannot frame type {ftype}, command {command}, {len(data)} bytes")
    body = bytes((ftype, command, len(data) >> 8, len(data) & 0xFF)) + data
    return bytes((HEADER,)) + body + bytes((checksum(body), END))


def epc_crc(pc_and_epc: bytes) -> int:
    """The tag's CRC-16 over PC + EPC (EPC Gen2 StoredCRC: poly 0x1021, preset and final
    XOR 0xFFFF, most significant bit first)."""
    crc = 0xFFFF
    for byte in pc_and_epc:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc ^ 0xFFFF


def pc_for(epc: bytes) -> int:
    """The PC word of a plain EPC (length in words in the top five bits, no other flags)."""
    if len(epc) % 2 or len(epc) > 62:
        raise FrameError(f"an EPC is 0-31 whole 16-bit words, not {len(epc)} bytes")
    return (len(epc) // 2) << 11


# -- host to module ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SinglePoll:
    """Poll once; the module answers with a notice per tag, or an error 0x15 if none."""

    def encode(self) -> bytes:
        """The frame's bytes."""
        return encode_frame(FrameType.COMMAND, Command.SINGLE_POLL)


@dataclass(frozen=True, slots=True)
class MultiPoll:
    """Poll ``count`` rounds (notices as tags answer); stopped early by :class:`StopMultiPoll`."""

    count: int = MAX_POLL_COUNT

    def encode(self) -> bytes:
        """The frame's bytes."""
        if not 0 <= self.count <= MAX_POLL_COUNT:
            raise FrameError(f"poll count {self.count} outside 0..65535")
        data = bytes((MULTI_POLL_RESERVED,)) + self.count.to_bytes(2, "big")
        return encode_frame(FrameType.COMMAND, Command.MULTI_POLL, data)


@dataclass(frozen=True, slots=True)
class StopMultiPoll:
    """Stop a multi-poll; the module acknowledges with ``Ack(0x28, 0)``."""

    def encode(self) -> bytes:
        """The frame's bytes."""
        return encode_frame(FrameType.COMMAND, Command.STOP_MULTI_POLL)


@dataclass(frozen=True, slots=True)
class SetPower:
    """Set the transmit power, in hundredths of a dBm (big-endian, signed)."""

    centi_dbm: int

    @classmethod
    def from_dbm(cls, dbm: float) -> Self:
        """The command for ``dbm`` (rounded to 0.01 dBm)."""
        return cls(round(dbm * 100))

    @property
    def dbm(self) -> float:
        """The power in dBm."""
        return self.centi_dbm / 100

    def encode(self) -> bytes:
        """The frame's bytes."""
        return encode_frame(FrameType.COMMAND, Command.SET_POWER, _int16(self.centi_dbm))


@dataclass(frozen=True, slots=True)
class GetPower:
    """Ask for the transmit power (answered by :class:`PowerResponse`)."""

    def encode(self) -> bytes:
        """The frame's bytes."""
        return encode_frame(FrameType.COMMAND, Command.GET_POWER)


@dataclass(frozen=True, slots=True)
class GetModuleInfo:
    """Ask for one line of module information (answered by :class:`ModuleInfo`)."""

    kind: int = InfoKind.HARDWARE

    def encode(self) -> bytes:
        """The frame's bytes."""
        return encode_frame(FrameType.COMMAND, Command.MODULE_INFO, bytes((self.kind & 0xFF,)))


# -- module to host ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagNotice:
    """One tag read reported during a poll.

    Attributes:
        rssi: Signal strength in dBm as the module reports it (signed byte).
        pc: The tag's protocol-control word; its top five bits give the EPC length in words.
        epc: The EPC.
        crc: The tag's CRC-16 over PC + EPC, as received.
        command: 0x22 (what modules send for single and multi polls); some documents show
            0x27 during a multi-poll, which decodes too.
    """

    rssi: int
    pc: int
    epc: bytes
    crc: int
    command: int = Command.SINGLE_POLL

    @classmethod
    def for_epc(cls, epc: bytes, rssi: int) -> Self:
        """A notice for a plain EPC, with the PC and CRC a tag would send."""
        pc = pc_for(epc)
        return cls(rssi, pc, epc, epc_crc(pc.to_bytes(2, "big") + epc))

    @property
    def crc_ok(self) -> bool:
        """Whether :attr:`crc` matches PC + EPC (a second check beyond the frame checksum)."""
        return epc_crc(self.pc.to_bytes(2, "big") + self.epc) == self.crc

    def encode(self) -> bytes:
        """The frame's bytes."""
        if not -128 <= self.rssi <= 127:
            raise FrameError(f"RSSI {self.rssi} does not fit a signed byte")
        if (self.pc >> 11) * 2 != len(self.epc):
            raise FrameError(f"PC {self.pc:#06x} does not announce a {len(self.epc)}-byte EPC")
        data = (
            (self.rssi & 0xFF).to_bytes(1, "big")
            + self.pc.to_bytes(2, "big")
            + self.epc
            + self.crc.to_bytes(2, "big")
        )
        return encode_frame(FrameType.NOTICE, self.command, data)


@dataclass(frozen=True, slots=True)
class Ack:
    """A one-byte response to a command: ``status`` 0 means done (stop, set power, ...)."""

    command: int
    status: int = 0

    @property
    def ok(self) -> bool:
        """Whether the module reports success."""
        return self.status == 0

    def encode(self) -> bytes:
        """The frame's bytes."""
        return encode_frame(FrameType.RESPONSE, self.command, bytes((self.status & 0xFF,)))


@dataclass(frozen=True, slots=True)
class PowerResponse:
    """The transmit power, in hundredths of a dBm."""

    centi_dbm: int

    @property
    def dbm(self) -> float:
        """The power in dBm."""
        return self.centi_dbm / 100

    def encode(self) -> bytes:
        """The frame's bytes."""
        return encode_frame(FrameType.RESPONSE, Command.GET_POWER, _int16(self.centi_dbm))


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    """One line of module information (ASCII text), e.g. ``M100 V1.00``."""

    kind: int
    text: str

    def encode(self) -> bytes:
        """The frame's bytes."""
        data = bytes((self.kind & 0xFF,)) + self.text.encode("ascii", "replace")
        return encode_frame(FrameType.RESPONSE, Command.MODULE_INFO, data)


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """A failed command or an empty poll round (``code`` 0x15): response command 0xFF.

    Attributes:
        code: The error code (see :class:`ErrorCode`).
        data: What follows the code (PC + EPC for some tag-access errors), usually empty.
    """

    code: int
    data: bytes = b""

    def encode(self) -> bytes:
        """The frame's bytes."""
        return encode_frame(FrameType.RESPONSE, Command.ERROR, bytes((self.code,)) + self.data)


@dataclass(frozen=True, slots=True)
class RawFrame:
    """A well-formed frame of a kind this codec does not interpret."""

    ftype: int
    command: int
    data: bytes = field(default=b"")

    def encode(self) -> bytes:
        """The frame's bytes."""
        return encode_frame(self.ftype, self.command, self.data)


HostFrame = SinglePoll | MultiPoll | StopMultiPoll | SetPower | GetPower | GetModuleInfo
ModuleFrame = TagNotice | Ack | PowerResponse | ModuleInfo | ErrorResponse
Frame = HostFrame | ModuleFrame | RawFrame


def _int16(value: int) -> bytes:
    if not -0x8000 <= value <= 0x7FFF:
        raise FrameError(f"{value} does not fit 16 bits")
    return value.to_bytes(2, "big", signed=True)


def decode_frame(ftype: int, command: int, data: bytes) -> Frame:
    """Interpret a frame whose framing and checksum were already checked.

    Raises:
        FrameError: The data does not fit the command.
    """
    if ftype == FrameType.NOTICE and command in (Command.SINGLE_POLL, Command.MULTI_POLL):
        return _tag_notice(command, data)
    if ftype == FrameType.RESPONSE:
        return _response(command, data)
    if ftype == FrameType.COMMAND:
        return _command(command, data)
    return RawFrame(ftype, command, data)


def _tag_notice(command: int, data: bytes) -> TagNotice:
    if len(data) < 5:
        raise FrameError(f"tag notice of {len(data)} bytes")
    pc = int.from_bytes(data[1:3], "big")
    epc_len = (pc >> 11) * 2
    if len(data) != 5 + epc_len:
        raise FrameError(f"PC {pc:#06x} announces {epc_len} EPC bytes; notice has {len(data)}")
    rssi = data[0] - 256 if data[0] > 127 else data[0]
    return TagNotice(rssi, pc, data[3 : 3 + epc_len], int.from_bytes(data[-2:], "big"), command)


def _response(command: int, data: bytes) -> Frame:
    if command == Command.ERROR:
        if not data:
            raise FrameError("error response without a code")
        return ErrorResponse(data[0], data[1:])
    if command == Command.GET_POWER and len(data) == 2:
        return PowerResponse(int.from_bytes(data, "big", signed=True))
    if command == Command.MODULE_INFO:
        if not data:
            raise FrameError("module information without a kind")
        return ModuleInfo(data[0], data[1:].decode("ascii", "replace"))
    if len(data) == 1:
        return Ack(command, data[0])
    return RawFrame(FrameType.RESPONSE, command, data)


_NO_DATA: Final[dict[int, HostFrame]] = {
    Command.SINGLE_POLL: SinglePoll(),
    Command.STOP_MULTI_POLL: StopMultiPoll(),
    Command.GET_POWER: GetPower(),
}


def _command(command: int, data: bytes) -> Frame:
    if command in _NO_DATA:
        if data:
            raise FrameError(f"command {command:#04x} takes no data")
        return _NO_DATA[command]
    if command == Command.MULTI_POLL:
        if len(data) != 3 or data[0] != MULTI_POLL_RESERVED:
            raise FrameError("multi-poll data is 0x22 and a 16-bit count")
        return MultiPoll(int.from_bytes(data[1:], "big"))
    if command == Command.SET_POWER:
        if len(data) != 2:
            raise FrameError("set-power data is a 16-bit power")
        return SetPower(int.from_bytes(data, "big", signed=True))
    if command == Command.MODULE_INFO:
        if len(data) != 1:
            raise FrameError("module-information data is one byte")
        return GetModuleInfo(data[0])
    return RawFrame(FrameType.COMMAND, command, data)


_TYPES: Final = frozenset(int(t) for t in FrameType)


class FrameDecoder:
    """Split a byte stream into frames, whatever the line does to it.

    Bytes before a 0xBB are skipped (counted in :attr:`skipped_bytes`). A 0xBB starts a
    candidate frame, checked as soon as its bytes arrive: type, then length (both before
    waiting for the rest), then end byte and checksum. A candidate that fails is counted in
    :attr:`rejected` and only its 0xBB is discarded: the search goes on from the next byte,
    so a real frame hidden inside a false candidate (one started by noise) is still found.
    A frame split across :meth:`feed` calls waits for its rest; several frames in one call
    all come out. Nothing here raises on bad input.

    Args:
        max_payload: Longest data field accepted (longer is :attr:`Reject.BAD_LENGTH`).
    """

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self.rejected: dict[Reject, int] = dict.fromkeys(Reject, 0)
        """Candidates discarded, by reason."""
        self.skipped_bytes = 0
        """Bytes discarded while looking for 0xBB (noise, and the rest of rejected frames)."""
        self.frames = 0
        """Frames decoded."""
        self._buf = bytearray()

    @property
    def rejected_total(self) -> int:
        """All rejected candidates."""
        return sum(self.rejected.values())

    @property
    def pending(self) -> int:
        """Bytes held back: the start of a frame whose rest has not arrived."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; returns the frames they complete, in order."""
        self._buf += data
        return self._scan()

    def idle(self) -> list[Frame]:
        """The line went quiet: a frame still incomplete will not be finished.

        Call this when no byte arrived for a while (a few character times). The incomplete
        candidate is rejected as :attr:`Reject.TRUNCATED`, and what followed its 0xBB is
        searched again, so a complete frame caught inside it comes out now rather than when
        the next bytes arrive.
        """
        out: list[Frame] = []
        while self._buf:
            self._reject(Reject.TRUNCATED)
            del self._buf[0]
            out += self._scan()
        return out

    def _reject(self, reason: Reject) -> None:
        self.rejected[reason] += 1

    def _scan(self) -> list[Frame]:
        buf = self._buf
        n = len(buf)
        out: list[Frame] = []
        i = 0
        while i < n:
            start = buf.find(HEADER, i)
            if start < 0:
                self.skipped_bytes += n - i
                i = n
                break
            self.skipped_bytes += start - i
            i = start
            reason, end = self._check(buf, i, n)
            if reason is not None:
                self._reject(reason)
                i += 1
                continue
            if end < 0:
                break  # incomplete: wait for more bytes
            try:
                out.append(decode_frame(buf[i + 1], buf[i + 2], bytes(buf[i + 5 : end - 2])))
            except FrameError:
                self._reject(Reject.BAD_PAYLOAD)
            else:
                self.frames += 1
            i = end
        del buf[:i]
        return out

    def _check(self, buf: bytearray, i: int, n: int) -> tuple[Reject | None, int]:
        """Check the candidate at ``i``: (reason to reject, or None; its end, -1 if short)."""
        if n - i >= 2 and buf[i + 1] not in _TYPES:
            return Reject.BAD_TYPE, -1
        length = (buf[i + 3] << 8) | buf[i + 4] if n - i >= 5 else -1
        if length > self.max_payload:
            return Reject.BAD_LENGTH, -1
        end = i + OVERHEAD + length
        if length < 0 or n < end:
            return None, -1
        reason = None
        if buf[end - 1] != END:
            reason = Reject.BAD_END
        elif sum(buf[i + 1 : end - 2]) & 0xFF != buf[end - 2]:
            reason = Reject.BAD_CHECKSUM
        return reason, end
