"""LLRP 1.0.1 wire primitives: type numbers, status codes, errors and a bounds-checked reader.

This module is pure: no sockets, no clock. Everything else in the codec builds on it.
Type numbers and field layouts follow the LLRP 1.0.1 specification (EPCglobal, 2010).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, NoReturn, Protocol

LLRP_VERSION: Final = 1
HEADER_SIZE: Final = 10
CUSTOM_TYPE: Final = 1023

_HDR = struct.Struct(">HII")
_TLV = struct.Struct(">HH")


class MessageType(enum.IntEnum):
    """LLRP message type numbers (LLRP 1.0.1 §16.1)."""

    GET_READER_CAPABILITIES = 1
    GET_READER_CONFIG = 2
    SET_READER_CONFIG = 3
    CLOSE_CONNECTION_RESPONSE = 4
    GET_READER_CAPABILITIES_RESPONSE = 11
    GET_READER_CONFIG_RESPONSE = 12
    SET_READER_CONFIG_RESPONSE = 13
    CLOSE_CONNECTION = 14
    ADD_ROSPEC = 20
    DELETE_ROSPEC = 21
    START_ROSPEC = 22
    STOP_ROSPEC = 23
    ENABLE_ROSPEC = 24
    DISABLE_ROSPEC = 25
    GET_ROSPECS = 26
    ADD_ROSPEC_RESPONSE = 30
    DELETE_ROSPEC_RESPONSE = 31
    START_ROSPEC_RESPONSE = 32
    STOP_ROSPEC_RESPONSE = 33
    ENABLE_ROSPEC_RESPONSE = 34
    DISABLE_ROSPEC_RESPONSE = 35
    GET_ROSPECS_RESPONSE = 36
    ADD_ACCESSSPEC = 40
    DELETE_ACCESSSPEC = 41
    ENABLE_ACCESSSPEC = 42
    DISABLE_ACCESSSPEC = 43
    GET_ACCESSSPECS = 44
    ADD_ACCESSSPEC_RESPONSE = 50
    DELETE_ACCESSSPEC_RESPONSE = 51
    ENABLE_ACCESSSPEC_RESPONSE = 52
    DISABLE_ACCESSSPEC_RESPONSE = 53
    GET_ACCESSSPECS_RESPONSE = 54
    GET_REPORT = 60
    RO_ACCESS_REPORT = 61
    KEEPALIVE = 62
    READER_EVENT_NOTIFICATION = 63
    ENABLE_EVENTS_AND_REPORTS = 64
    KEEPALIVE_ACK = 72
    ERROR_MESSAGE = 100
    CUSTOM_MESSAGE = 1023


class ParamType(enum.IntEnum):
    """LLRP parameter type numbers used by this codec (TV types are < 128)."""

    ANTENNA_ID = 1
    FIRST_SEEN_UTC = 2
    FIRST_SEEN_UPTIME = 3
    LAST_SEEN_UTC = 4
    LAST_SEEN_UPTIME = 5
    PEAK_RSSI = 6
    CHANNEL_INDEX = 7
    TAG_SEEN_COUNT = 8
    ROSPEC_ID = 9
    INVENTORY_PARAMETER_SPEC_ID = 10
    C1G2_CRC = 11
    C1G2_PC = 12
    EPC_96 = 13
    SPEC_INDEX = 14
    CLIENT_REQUEST_OP_SPEC_RESULT = 15
    ACCESS_SPEC_ID = 16
    OP_SPEC_ID = 17
    C1G2_SINGULATION_DETAILS = 18
    UTC_TIMESTAMP = 128
    UPTIME = 129
    GENERAL_DEVICE_CAPABILITIES = 137
    RECEIVE_SENSITIVITY_TABLE_ENTRY = 139
    PER_ANTENNA_AIR_PROTOCOL = 140
    GPIO_CAPABILITIES = 141
    LLRP_CAPABILITIES = 142
    REGULATORY_CAPABILITIES = 143
    UHF_BAND_CAPABILITIES = 144
    TRANSMIT_POWER_LEVEL_TABLE_ENTRY = 145
    FREQUENCY_INFORMATION = 146
    FREQUENCY_HOP_TABLE = 147
    FIXED_FREQUENCY_TABLE = 148
    PER_ANTENNA_RECEIVE_SENSITIVITY_RANGE = 149
    ROSPEC = 177
    RO_BOUNDARY_SPEC = 178
    ROSPEC_START_TRIGGER = 179
    PERIODIC_TRIGGER_VALUE = 180
    GPI_TRIGGER_VALUE = 181
    ROSPEC_STOP_TRIGGER = 182
    AI_SPEC = 183
    AI_SPEC_STOP_TRIGGER = 184
    TAG_OBSERVATION_TRIGGER = 185
    INVENTORY_PARAMETER_SPEC = 186
    RF_SURVEY_SPEC = 187
    ACCESS_SPEC = 207
    ACCESS_SPEC_STOP_TRIGGER = 208
    ACCESS_COMMAND = 209
    LLRP_CONFIGURATION_STATE_VALUE = 217
    IDENTIFICATION = 218
    GPO_WRITE_DATA = 219
    KEEPALIVE_SPEC = 220
    ANTENNA_PROPERTIES = 221
    ANTENNA_CONFIGURATION = 222
    RF_RECEIVER = 223
    RF_TRANSMITTER = 224
    GPI_PORT_CURRENT_STATE = 225
    EVENTS_AND_REPORTS = 226
    RO_REPORT_SPEC = 237
    TAG_REPORT_CONTENT_SELECTOR = 238
    ACCESS_REPORT_SPEC = 239
    TAG_REPORT_DATA = 240
    EPC_DATA = 241
    RF_SURVEY_REPORT_DATA = 242
    READER_EVENT_NOTIFICATION_SPEC = 244
    EVENT_NOTIFICATION_STATE = 245
    READER_EVENT_NOTIFICATION_DATA = 246
    HOPPING_EVENT = 247
    GPI_EVENT = 248
    ROSPEC_EVENT = 249
    REPORT_BUFFER_LEVEL_WARNING_EVENT = 250
    REPORT_BUFFER_OVERFLOW_ERROR_EVENT = 251
    READER_EXCEPTION_EVENT = 252
    RF_SURVEY_EVENT = 253
    AI_SPEC_EVENT = 254
    ANTENNA_EVENT = 255
    CONNECTION_ATTEMPT_EVENT = 256
    CONNECTION_CLOSE_EVENT = 257
    LLRP_STATUS = 287
    FIELD_ERROR = 288
    PARAMETER_ERROR = 289
    C1G2_LLRP_CAPABILITIES = 327
    UHF_C1G2_RF_MODE_TABLE = 328
    UHF_C1G2_RF_MODE_TABLE_ENTRY = 329
    C1G2_INVENTORY_COMMAND = 330
    C1G2_FILTER = 331
    C1G2_RF_CONTROL = 335
    C1G2_SINGULATION_CONTROL = 336
    C1G2_TAG_SPEC = 338
    C1G2_TARGET_TAG = 339
    C1G2_READ = 341
    C1G2_EPC_MEMORY_SELECTOR = 348
    CUSTOM = 1023


class StatusCode(enum.IntEnum):
    """LLRPStatus codes (LLRP 1.0.1 §14.2.1)."""

    M_SUCCESS = 0
    M_PARAMETER_ERROR = 100
    M_FIELD_ERROR = 101
    M_UNEXPECTED_PARAMETER = 102
    M_MISSING_PARAMETER = 103
    M_DUPLICATE_PARAMETER = 104
    M_OVERFLOW_PARAMETER = 105
    M_OVERFLOW_FIELD = 106
    M_UNKNOWN_PARAMETER = 107
    M_UNKNOWN_FIELD = 108
    M_UNSUPPORTED_MESSAGE = 109
    M_UNSUPPORTED_VERSION = 110
    M_UNSUPPORTED_PARAMETER = 111
    P_PARAMETER_ERROR = 200
    P_FIELD_ERROR = 201
    P_UNEXPECTED_PARAMETER = 202
    P_MISSING_PARAMETER = 203
    P_DUPLICATE_PARAMETER = 204
    P_OVERFLOW_PARAMETER = 205
    P_OVERFLOW_FIELD = 206
    P_UNKNOWN_PARAMETER = 207
    P_UNKNOWN_FIELD = 208
    P_UNSUPPORTED_PARAMETER = 209
    A_INVALID = 300
    A_OUT_OF_RANGE = 301
    R_DEVICE_ERROR = 401


class ConnectionAttemptStatus(enum.IntEnum):
    """ConnectionAttemptEvent status values."""

    SUCCESS = 0
    FAILED_READER_INITIATED_CONNECTION_EXISTS = 1
    FAILED_CLIENT_INITIATED_CONNECTION_EXISTS = 2
    FAILED_OTHER_REASON = 3
    ANOTHER_CONNECTION_ATTEMPTED = 4


class ROSpecState(enum.IntEnum):
    """ROSpec CurrentState values."""

    DISABLED = 0
    INACTIVE = 1
    ACTIVE = 2


class ROSpecStartTriggerType(enum.IntEnum):
    """ROSpecStartTrigger types."""

    NULL = 0
    IMMEDIATE = 1
    PERIODIC = 2
    GPI = 3


class ROSpecStopTriggerType(enum.IntEnum):
    """ROSpecStopTrigger types."""

    NULL = 0
    DURATION = 1
    GPI_WITH_TIMEOUT = 2


class AISpecStopTriggerType(enum.IntEnum):
    """AISpecStopTrigger types."""

    NULL = 0
    DURATION = 1
    GPI_WITH_TIMEOUT = 2
    TAG_OBSERVATION = 3


class TagObservationTriggerType(enum.IntEnum):
    """TagObservationTrigger types."""

    UPON_N_TAGS_OR_TIMEOUT = 0
    NO_MORE_NEW_TAGS_FOR_T_OR_TIMEOUT = 1
    N_ATTEMPTS_OR_TIMEOUT = 2


class ROReportTriggerType(enum.IntEnum):
    """ROReportSpec trigger types."""

    NONE = 0
    UPON_N_TAGS_OR_END_OF_AISPEC = 1
    UPON_N_TAGS_OR_END_OF_ROSPEC = 2


class KeepaliveTriggerType(enum.IntEnum):
    """KeepaliveSpec trigger types."""

    NULL = 0
    PERIODIC = 1


class NotificationEventType(enum.IntEnum):
    """Event types of EventNotificationState."""

    HOPPING = 0
    GPI = 1
    ROSPEC = 2
    REPORT_BUFFER_FILL_WARNING = 3
    READER_EXCEPTION = 4
    RF_SURVEY = 5
    AISPEC = 6
    AISPEC_WITH_DETAILS = 7
    ANTENNA = 8


class ROSpecEventType(enum.IntEnum):
    """ROSpecEvent event types."""

    START = 0
    END = 1
    PREEMPTION = 2


class GetReaderConfigRequestedData(enum.IntEnum):
    """RequestedData values of GET_READER_CONFIG."""

    ALL = 0
    IDENTIFICATION = 1
    ANTENNA_PROPERTIES = 2
    ANTENNA_CONFIGURATION = 3
    RO_REPORT_SPEC = 4
    READER_EVENT_NOTIFICATION_SPEC = 5
    ACCESS_REPORT_SPEC = 6
    LLRP_CONFIGURATION_STATE_VALUE = 7
    KEEPALIVE_SPEC = 8
    GPI_PORT_CURRENT_STATE = 9
    GPO_WRITE_DATA = 10
    EVENTS_AND_REPORTS = 11


# Value sizes (bytes, excluding the 1-byte type) of the TV-encoded parameters.
TV_SIZES: Final[dict[int, int]] = {
    1: 2,
    2: 8,
    3: 8,
    4: 8,
    5: 8,
    6: 1,
    7: 2,
    8: 2,
    9: 4,
    10: 2,
    11: 2,
    12: 2,
    13: 12,
    14: 2,
    15: 2,
    16: 4,
    17: 2,
    18: 4,
}


class LLRPError(Exception):
    """Base class of the errors this codec raises."""


class LLRPDecodeError(LLRPError, ValueError):
    """Malformed LLRP input.

    Attributes:
        status: The LLRPStatus code a reader would answer with.
        param_type: Type number of the parameter at fault, when known.
    """

    def __init__(
        self,
        message: str,
        status: StatusCode = StatusCode.M_PARAMETER_ERROR,
        param_type: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.param_type = param_type


def fail(
    message: str, status: StatusCode = StatusCode.M_FIELD_ERROR, ptype: int | None = None
) -> NoReturn:
    """Raise an :class:`LLRPDecodeError` (helper for decoders)."""
    raise LLRPDecodeError(message, status, ptype)


def pack_header(msg_type: int, length: int, msg_id: int) -> bytes:
    """Pack the 10-byte LLRP message header (version 1)."""
    return struct.pack(">HII", (LLRP_VERSION << 10) | msg_type, length, msg_id)


def message(msg_type: int, msg_id: int, body: bytes) -> bytes:
    """Frame ``body`` as a complete LLRP message."""
    return pack_header(msg_type, HEADER_SIZE + len(body), msg_id) + body


def tlv(ptype: int, *parts: bytes) -> bytes:
    """Encode a TLV parameter from its already-encoded fields and sub-parameters."""
    body = b"".join(parts)
    return _TLV.pack(ptype, 4 + len(body)) + body


def u8v(values: Iterable[int]) -> bytes:
    """Encode a u8v field (16-bit count, then the bytes)."""
    data = bytes(values)
    return struct.pack(">H", len(data)) + data


def u16v(values: Iterable[int]) -> bytes:
    """Encode a u16v field."""
    items = tuple(values)
    return struct.pack(f">H{len(items)}H", len(items), *items)


def u32v(values: Iterable[int]) -> bytes:
    """Encode a u32v field."""
    items = tuple(values)
    return struct.pack(f">H{len(items)}I", len(items), *items)


def utf8v(text: str) -> bytes:
    """Encode a utf8v field."""
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def bitv(bits: int, data: bytes) -> bytes:
    """Encode a bit array: 16-bit bit count, then ceil(bits / 8) bytes."""
    return struct.pack(">H", bits) + data[: (bits + 7) // 8]


def opt(param: Encodable | None) -> bytes:
    """Encode an optional parameter (empty when absent)."""
    return b"" if param is None else param.encode()


def many(params: Iterable[Encodable]) -> bytes:
    """Encode a sequence of parameters."""
    return b"".join(p.encode() for p in params)


class Encodable(Protocol):
    """Anything that encodes itself as an LLRP parameter."""

    def encode(self) -> bytes:
        """Encode the parameter, header included."""


class Cursor:
    """Bounds-checked big-endian reader over ``data[pos:end]``.

    Every read past ``end`` raises :class:`LLRPDecodeError`, never ``IndexError`` or
    ``struct.error``.
    """

    __slots__ = ("data", "end", "pos", "ptype")

    def __init__(
        self, data: bytes, pos: int = 0, end: int | None = None, ptype: int | None = None
    ) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        self.ptype = ptype

    def _take(self, size: int) -> int:
        start = self.pos
        if start + size > self.end:
            where = f"parameter {self.ptype}" if self.ptype is not None else "message"
            fail(f"{where} truncated: need {size} bytes at offset {start}", ptype=self.ptype)
        self.pos = start + size
        return start

    def remaining(self) -> int:
        """Bytes left before ``end``."""
        return self.end - self.pos

    def u8(self) -> int:
        """Read an unsigned byte."""
        return self.data[self._take(1)]

    def s8(self) -> int:
        """Read a signed byte."""
        value = self.data[self._take(1)]
        return value - 256 if value > 127 else value

    def u16(self) -> int:
        """Read a big-endian unsigned 16-bit integer."""
        return int.from_bytes(self.data[self._take(2) : self.pos])

    def s16(self) -> int:
        """Read a big-endian signed 16-bit integer."""
        return int.from_bytes(self.data[self._take(2) : self.pos], signed=True)

    def u32(self) -> int:
        """Read a big-endian unsigned 32-bit integer."""
        return int.from_bytes(self.data[self._take(4) : self.pos])

    def u64(self) -> int:
        """Read a big-endian unsigned 64-bit integer."""
        return int.from_bytes(self.data[self._take(8) : self.pos])

    def raw(self, size: int) -> bytes:
        """Read ``size`` raw bytes."""
        return bytes(self.data[self._take(size) : self.pos])

    def u8v(self) -> bytes:
        """Read a u8v field."""
        return self.raw(self.u16())

    def u16v(self) -> tuple[int, ...]:
        """Read a u16v field."""
        count = self.u16()
        start = self._take(2 * count)
        return struct.unpack_from(f">{count}H", self.data, start)

    def u32v(self) -> tuple[int, ...]:
        """Read a u32v field."""
        count = self.u16()
        start = self._take(4 * count)
        return struct.unpack_from(f">{count}I", self.data, start)

    def utf8v(self) -> str:
        """Read a utf8v field."""
        data = self.u8v()
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            fail(f"invalid UTF-8 in string field: {exc}", ptype=self.ptype)

    def bitv(self) -> tuple[int, bytes]:
        """Read a bit array; returns (bit count, bytes)."""
        bits = self.u16()
        return bits, self.raw((bits + 7) // 8)

    def params(self) -> Params:
        """Split the rest of the cursor into parameters."""
        items = split_params(self.data, self.pos, self.end, self.ptype)
        self.pos = self.end
        return Params(items, self.ptype)


@dataclass(frozen=True, slots=True)
class RawParam:
    """One parameter found while splitting a byte range.

    Attributes:
        ptype: Parameter type number.
        data: The whole buffer the parameter lies in.
        start: Offset of the parameter's value (after its header).
        end: Offset just past the parameter.
    """

    ptype: int
    data: bytes
    start: int
    end: int

    def cursor(self) -> Cursor:
        """A cursor over the parameter's value."""
        return Cursor(self.data, self.start, self.end, self.ptype)

    def body(self) -> bytes:
        """The parameter's value bytes."""
        return bytes(self.data[self.start : self.end])


def split_params(data: bytes, pos: int, end: int, parent: int | None = None) -> list[RawParam]:
    """Split ``data[pos:end]`` into TLV and TV parameters.

    Raises:
        LLRPDecodeError: on a bad length, an unknown TV type or a truncated parameter.
    """
    out: list[RawParam] = []
    while pos < end:
        first = data[pos]
        if first & 0x80:
            ptype = first & 0x7F
            size = TV_SIZES.get(ptype)
            if size is None:
                fail(f"unknown TV parameter type {ptype}", StatusCode.M_UNKNOWN_PARAMETER, parent)
            if pos + 1 + size > end:
                fail(f"TV parameter {ptype} truncated", StatusCode.M_PARAMETER_ERROR, ptype)
            out.append(RawParam(ptype, data, pos + 1, pos + 1 + size))
            pos += 1 + size
            continue
        if pos + 4 > end:
            fail("parameter header truncated", StatusCode.M_PARAMETER_ERROR, parent)
        ptype, length = _TLV.unpack_from(data, pos)
        ptype &= 0x3FF
        if length < 4 or pos + length > end:
            fail(f"parameter {ptype} has bad length {length}", StatusCode.M_PARAMETER_ERROR, ptype)
        out.append(RawParam(ptype, data, pos + 4, pos + length))
        pos += length
    return out


class Params:
    """The sub-parameters of a message or parameter, consumed by type.

    Decoders call :meth:`one`, :meth:`opt` and :meth:`many`, then :meth:`finish`, which
    rejects anything left over except vendor ``Custom`` parameters (ignored).
    """

    __slots__ = ("_items", "_parent", "_used")

    def __init__(self, items: list[RawParam], parent: int | None) -> None:
        self._items = items
        self._used = [False] * len(items)
        self._parent = parent

    def _status(self, m_code: StatusCode, p_code: StatusCode) -> StatusCode:
        return m_code if self._parent is None else p_code

    def many(self, *ptypes: int) -> list[RawParam]:
        """All parameters of the given types, in order."""
        found = []
        for index, item in enumerate(self._items):
            if item.ptype in ptypes:
                self._used[index] = True
                found.append(item)
        return found

    def opt(self, ptype: int) -> RawParam | None:
        """The parameter of this type, or None; a duplicate is an error."""
        found = self.many(ptype)
        if len(found) > 1:
            code = self._status(StatusCode.M_DUPLICATE_PARAMETER, StatusCode.P_DUPLICATE_PARAMETER)
            fail(f"duplicate parameter {ptype}", code, ptype)
        return found[0] if found else None

    def one(self, ptype: int) -> RawParam:
        """The parameter of this type; missing or duplicate is an error."""
        found = self.opt(ptype)
        if found is None:
            code = self._status(StatusCode.M_MISSING_PARAMETER, StatusCode.P_MISSING_PARAMETER)
            fail(f"missing parameter {ptype}", code, ptype)
        return found

    def finish(self) -> None:
        """Reject unexpected parameters (vendor Custom parameters are ignored)."""
        for item, used in zip(self._items, self._used, strict=True):
            if not used and item.ptype != CUSTOM_TYPE:
                code = self._status(
                    StatusCode.M_UNEXPECTED_PARAMETER, StatusCode.P_UNEXPECTED_PARAMETER
                )
                fail(f"unexpected parameter {item.ptype}", code, item.ptype)


def unpack_header(data: bytes | bytearray, pos: int = 0) -> tuple[int, int, int, int]:
    """Unpack a message header; returns (version, type, length, message id)."""
    first, length, msg_id = _HDR.unpack_from(data, pos)
    return (first >> 10) & 0x7, first & 0x3FF, length, msg_id
