"""LLRP 1.0.1 wire primitives: header, TLV helpers, errors and a bounds-checked reader.

This module is pure: no sockets, no clock. Everything else in the codec builds on it.
Field layouts follow the LLRP 1.0.1 specification (EPCglobal, 2010).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, NoReturn, Protocol

from drivers.llrp.codec_types import TV_SIZES, StatusCode

LLRP_VERSION: Final = 1
HEADER_SIZE: Final = 10
CUSTOM_TYPE: Final = 1023

_HDR = struct.Struct(">HII")
_TLV = struct.Struct(">HH")


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
