"""RO_ACCESS_REPORT: typed TagReportData, a fast encoder and a fast decoder.

The fast encoder caches, per (EPC, antenna), the constant head of each TagReportData (TLV
header, EPC parameter, ROSpecID, SpecIndex, InventoryParameterSpecID and AntennaID TVs) and
packs only the variable tail (PeakRSSI, ChannelIndex, timestamps, TagSeenCount) with one
precompiled :class:`struct.Struct` per content selector.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Final, Self

from drivers.llrp.codec_base import (
    HEADER_SIZE,
    RawParam,
    fail,
    pack_header,
    tlv,
)
from drivers.llrp.codec_spec import TagReportContentSelector
from drivers.llrp.codec_types import (
    TV_SIZES,
    MessageType,
    ParamType,
    StatusCode,
)

P = ParamType

#: One decoded tag report: (EPC hex, antenna, peak RSSI dBm, first seen µs, last seen µs,
#: count). The RSSI is Impinj's ImpinjPeakRSSI (hundredths of a dBm, as a float) when the
#: report carries one, else the standard PeakRSSI (whole dBm).
TagTuple = tuple[str, int | None, float | None, int | None, int | None, int | None]

#: Impinj's IANA private enterprise number and its ImpinjPeakRSSI custom parameter subtype.
IMPINJ_VENDOR: Final = 25882
IMPINJ_PEAK_RSSI: Final = 57
_IMPINJ_RSSI: Final = struct.Struct(">IIh")

#: One read to encode: (EPC bytes, antenna, peak RSSI dBm, first seen µs, last seen µs, count).
TagRead = tuple[bytes, int, int, int, int, int]

_EPC96_TYPE: Final = 0x80 | P.EPC_96


def encode_epc(epc: bytes) -> bytes:
    """Encode an EPC parameter: EPC-96 (TV) for 12-byte EPCs, else EPCData (TLV)."""
    if len(epc) == 12:
        return bytes([_EPC96_TYPE]) + epc
    return tlv(P.EPC_DATA, struct.pack(">H", 8 * len(epc)), epc)


def _tv(ptype: int, fmt: str, value: int) -> bytes:
    return struct.pack(">B" + fmt, 0x80 | ptype, value)


# Optional TV fields of TagReportData in wire order: (attribute, type, struct code).
_TRD_FIELDS: Final = (
    ("rospec_id", P.ROSPEC_ID, "I"),
    ("spec_index", P.SPEC_INDEX, "H"),
    ("inventory_parameter_spec_id", P.INVENTORY_PARAMETER_SPEC_ID, "H"),
    ("antenna_id", P.ANTENNA_ID, "H"),
    ("peak_rssi", P.PEAK_RSSI, "b"),
    ("channel_index", P.CHANNEL_INDEX, "H"),
    ("first_seen_utc", P.FIRST_SEEN_UTC, "Q"),
    ("first_seen_uptime", P.FIRST_SEEN_UPTIME, "Q"),
    ("last_seen_utc", P.LAST_SEEN_UTC, "Q"),
    ("last_seen_uptime", P.LAST_SEEN_UPTIME, "Q"),
    ("tag_seen_count", P.TAG_SEEN_COUNT, "H"),
    ("pc_bits", P.C1G2_PC, "H"),
    ("crc", P.C1G2_CRC, "H"),
    ("access_spec_id", P.ACCESS_SPEC_ID, "I"),
)
_TV_FORMATS: Final[dict[int, tuple[str, str]]] = {
    ptype: (name, ">" + code) for name, ptype, code in _TRD_FIELDS
}


@dataclass(frozen=True, slots=True)
class TagReportData:
    """One TagReportData parameter; absent optional fields are None.

    Attributes:
        epc: The EPC bytes.
    """

    epc: bytes
    rospec_id: int | None = None
    spec_index: int | None = None
    inventory_parameter_spec_id: int | None = None
    antenna_id: int | None = None
    peak_rssi: int | None = None
    channel_index: int | None = None
    first_seen_utc: int | None = None
    first_seen_uptime: int | None = None
    last_seen_utc: int | None = None
    last_seen_uptime: int | None = None
    tag_seen_count: int | None = None
    pc_bits: int | None = None
    crc: int | None = None
    access_spec_id: int | None = None

    def encode(self) -> bytes:
        """Encode the parameter (slow, general path)."""
        parts = [encode_epc(self.epc)]
        for name, ptype, code in _TRD_FIELDS:
            value = getattr(self, name)
            if value is not None:
                parts.append(_tv(ptype, code, value))
        return tlv(P.TAG_REPORT_DATA, *parts)

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        params = raw.cursor().params()
        epc_params = params.many(P.EPC_96, P.EPC_DATA)
        if len(epc_params) != 1:
            fail(
                "TagReportData needs exactly one EPC parameter",
                StatusCode.P_PARAMETER_ERROR,
                raw.ptype,
            )
        epc_raw = epc_params[0]
        epc = epc_raw.body() if epc_raw.ptype == P.EPC_96 else epc_raw.cursor().bitv()[1]
        values: dict[str, int] = {}
        for item in params.many(*_TV_FORMATS):
            name, fmt = _TV_FORMATS[item.ptype]
            values[name] = struct.unpack_from(fmt, item.data, item.start)[0]
        params.many(P.CLIENT_REQUEST_OP_SPEC_RESULT, P.OP_SPEC_ID, *range(347, 357))
        params.finish()
        return cls(epc, **values)


class ReportEncoder:
    """Fast RO_ACCESS_REPORT encoder for one ROSpec's content selector.

    Args:
        selector: Which fields to include.
        rospec_id: ROSpecID reported when enabled.
        spec_index: SpecIndex (1-based AISpec position) reported when enabled.
        inventory_parameter_spec_id: InventoryParameterSpecID reported when enabled.
        channel_index: ChannelIndex reported when enabled.
    """

    def __init__(
        self,
        selector: TagReportContentSelector,
        *,
        rospec_id: int = 0,
        spec_index: int = 1,
        inventory_parameter_spec_id: int = 1,
        channel_index: int = 1,
    ) -> None:
        self.selector = selector
        head = b""
        if selector.enable_rospec_id:
            head += _tv(P.ROSPEC_ID, "I", rospec_id)
        if selector.enable_spec_index:
            head += _tv(P.SPEC_INDEX, "H", spec_index)
        if selector.enable_inventory_parameter_spec_id:
            head += _tv(P.INVENTORY_PARAMETER_SPEC_ID, "H", inventory_parameter_spec_id)
        self._head = head
        # Variable tail: the struct takes values picked from (rssi, first, last, count, *consts).
        consts: list[int] = []

        def const(value: int) -> int:
            consts.append(value)
            return 3 + len(consts)

        fmt = ">"
        indices: list[int] = []
        if selector.enable_peak_rssi:
            fmt += "Bb"
            indices += (const(0x80 | P.PEAK_RSSI), 0)
        if selector.enable_channel_index:
            fmt += "BH"
            indices += (const(0x80 | P.CHANNEL_INDEX), const(channel_index))
        if selector.enable_first_seen:
            fmt += "BQ"
            indices += (const(0x80 | P.FIRST_SEEN_UTC), 1)
        if selector.enable_last_seen:
            fmt += "BQ"
            indices += (const(0x80 | P.LAST_SEEN_UTC), 2)
        if selector.enable_tag_seen_count:
            fmt += "BH"
            indices += (const(0x80 | P.TAG_SEEN_COUNT), 3)
        self._consts = tuple(consts)
        self._tail = struct.Struct(fmt)
        self._getter = itemgetter(*indices) if indices else None
        self._prefixes: dict[tuple[bytes, int], bytes] = {}

    def _prefix(self, epc: bytes, antenna: int) -> bytes:
        epc_param = encode_epc(epc)
        ant = _tv(P.ANTENNA_ID, "H", antenna) if self.selector.enable_antenna_id else b""
        body_len = len(epc_param) + len(self._head) + len(ant) + self._tail.size
        prefix = struct.pack(">HH", P.TAG_REPORT_DATA, 4 + body_len) + epc_param + self._head + ant
        if len(self._prefixes) < 1_000_000:
            self._prefixes[(epc, antenna)] = prefix
        return prefix

    def tag_report_data(self, read: TagRead) -> bytes:
        """Encode one TagReportData parameter."""
        return b"".join(self._parts((read,)))

    def _parts(self, reads: Iterable[TagRead]) -> list[bytes]:
        prefixes = self._prefixes
        getter = self._getter
        pack = self._tail.pack
        consts = self._consts
        parts: list[bytes] = []
        append = parts.append
        for epc, antenna, rssi, first, last, count in reads:
            prefix = prefixes.get((epc, antenna)) or self._prefix(epc, antenna)
            append(prefix)
            if getter is not None:
                append(pack(*getter((rssi, first, last, min(count, 0xFFFF), *consts))))
        return parts

    def encode(self, msg_id: int, reads: Iterable[TagRead]) -> bytes:
        """Encode a complete RO_ACCESS_REPORT message.

        Args:
            msg_id: The message ID.
            reads: (EPC bytes, antenna, peak RSSI dBm in -128..127, first seen µs,
                last seen µs, seen count) per tag.
        """
        body = b"".join(self._parts(reads))
        return pack_header(MessageType.RO_ACCESS_REPORT, HEADER_SIZE + len(body), msg_id) + body


# TV types the fast decoder keeps, and their slot in (antenna, rssi, first, last, count).
_FAST_SLOTS: Final[dict[int, int]] = {
    P.ANTENNA_ID: 0,
    P.PEAK_RSSI: 1,
    P.FIRST_SEEN_UTC: 2,
    P.LAST_SEEN_UTC: 3,
    P.TAG_SEEN_COUNT: 4,
}


def _decode_trd(data: bytes, pos: int, end: int) -> TagTuple:
    epc: str | None = None
    ints: list[int | None] = [None, None, None, None, None]
    impinj_rssi: int | None = None
    while pos < end:
        kind = data[pos]
        if kind & 0x80:
            kind &= 0x7F
            size = TV_SIZES.get(kind)
            if size is None or pos + 1 + size > end:
                fail(f"bad TV parameter {kind} in TagReportData", StatusCode.P_PARAMETER_ERROR, 240)
            start = pos + 1
            pos = start + size
            if kind == P.EPC_96:
                epc = data[start:pos].hex()
            else:
                slot = _FAST_SLOTS.get(kind)
                if slot is not None:
                    ints[slot] = int.from_bytes(data[start:pos], signed=kind == P.PEAK_RSSI)
            continue
        if pos + 4 > end:
            fail("truncated parameter in TagReportData", StatusCode.P_PARAMETER_ERROR, 240)
        ptype, length = struct.unpack_from(">HH", data, pos)
        if length < 4 or pos + length > end:
            fail("bad parameter length in TagReportData", StatusCode.P_PARAMETER_ERROR, 240)
        if ptype & 0x3FF == P.EPC_DATA and length >= 6:
            bits = int.from_bytes(data[pos + 4 : pos + 6])
            epc = data[pos + 6 : pos + 6 + (bits + 7) // 8].hex()
        elif ptype & 0x3FF == P.CUSTOM and length >= 14:
            vendor, subtype, rssi = _IMPINJ_RSSI.unpack_from(data, pos + 4)
            if vendor == IMPINJ_VENDOR and subtype == IMPINJ_PEAK_RSSI:
                impinj_rssi = rssi
        pos += length
    if epc is None:
        fail("TagReportData without EPC", StatusCode.P_MISSING_PARAMETER, 240)
    peak = ints[1] if impinj_rssi is None else impinj_rssi / 100.0
    return epc, ints[0], peak, ints[2], ints[3], ints[4]


# struct codes of the TV parameters, for the fast-path layouts.
_TV_CODES: Final[dict[int, str]] = {
    1: "H",
    2: "Q",
    3: "Q",
    4: "Q",
    5: "Q",
    6: "b",
    7: "H",
    8: "H",
    9: "I",
    10: "H",
    11: "H",
    12: "H",
    13: "12s",
    14: "H",
    15: "H",
    16: "I",
    17: "H",
    18: "I",
}
_NONE: Final = (None,)


class _Layout:
    """The shape of a TagReportData, learnt from one instance and checked on the next ones.

    ``unpack`` reads the whole parameter, type bytes included; ``check`` picks the type and
    length fields, which must equal ``expected`` for the layout to apply.
    """

    __slots__ = ("check", "expected", "pick", "unpack")

    def __init__(self, fmt: str, check: list[int], expected: list[int], pick: list[int]) -> None:
        self.unpack = struct.Struct(fmt).unpack_from
        self.check = itemgetter(*check)
        self.expected = tuple(expected)
        self.pick = itemgetter(*pick)


def _learn_layout(data: bytes, pos: int, length: int) -> _Layout | None:
    """Describe the TagReportData at ``pos`` (header included); None if it has no fixed shape."""
    fmt, check, expected = ">HH", [0, 1], [int(P.TAG_REPORT_DATA), length]
    epc_index, slots, index = -1, [-1] * 5, 2
    p, end = pos + 4, pos + length
    while p < end:
        kind = data[p]
        if kind & 0x80:
            kind &= 0x7F
            if kind not in _TV_CODES or p + 1 + TV_SIZES[kind] > end:
                return None
            fmt += "B" + _TV_CODES[kind]
            check.append(index)
            expected.append(0x80 | kind)
            if kind == P.EPC_96:
                epc_index = index + 1
            elif kind in _FAST_SLOTS:
                slots[_FAST_SLOTS[kind]] = index + 1
            index += 2
            p += 1 + TV_SIZES[kind]
            continue
        if p + 6 > end:
            return None
        ptype, plen, bits = struct.unpack_from(">HHH", data, p)
        if ptype != P.EPC_DATA or p + plen > end or plen - 6 != (bits + 7) // 8:
            return None
        fmt += f"HHH{plen - 6}s"
        check += (index, index + 1, index + 2)
        expected += (ptype, plen, bits)
        epc_index = index + 3
        index += 4
        p += plen
    if epc_index < 0:
        return None
    # Absent fields pick the None appended after the unpacked values.
    return _Layout(fmt, check, expected, [epc_index] + [s if s >= 0 else index for s in slots])


def decode_tag_reports(body: bytes, pos: int = 0, end: int | None = None) -> list[TagTuple]:
    """Decode the TagReportData of an RO_ACCESS_REPORT body into tuples.

    TagReportData of the same shape as the previous one of that length are read with one
    precompiled struct (its type bytes are checked); others take the general path.

    Args:
        body: Buffer holding the message body (after the 10-byte header).
        pos: Offset where the body starts.
        end: Offset where it ends (default: end of buffer).

    Returns:
        (EPC hex, antenna, peak RSSI, first seen µs, last seen µs, seen count) per tag;
        fields the report does not carry are None.

    Raises:
        LLRPDecodeError: if the body is malformed.
    """
    end = len(body) if end is None else end
    out: list[TagTuple] = []
    append = out.append
    unpack = struct.Struct(">HH").unpack_from
    layouts: dict[int, _Layout | None] = {}
    while pos < end:
        if pos + 4 > end:
            fail("truncated parameter header in RO_ACCESS_REPORT")
        ptype, length = unpack(body, pos)
        if length < 4 or pos + length > end:
            fail(
                f"bad parameter length {length} in RO_ACCESS_REPORT",
                StatusCode.M_PARAMETER_ERROR,
                ptype,
            )
        if ptype == P.TAG_REPORT_DATA:
            if length not in layouts:
                layouts[length] = _learn_layout(body, pos, length)
            layout = layouts[length]
            if layout is not None:
                values = layout.unpack(body, pos)
                if layout.check(values) == layout.expected:
                    got = layout.pick(values + _NONE)
                    append((got[0].hex(), got[1], got[2], got[3], got[4], got[5]))
                    pos += length
                    continue
        if ptype & 0x3FF == P.TAG_REPORT_DATA:
            append(_decode_trd(body, pos + 4, pos + length))
        pos += length
    return out


def decode_ro_access_report(message: bytes) -> list[TagTuple]:
    """Decode a complete RO_ACCESS_REPORT message (header included) into tuples.

    Raises:
        LLRPDecodeError: if it is not a well-formed RO_ACCESS_REPORT.
    """
    if len(message) < HEADER_SIZE:
        fail("message shorter than its header")
    msg_type = int.from_bytes(message[0:2]) & 0x3FF
    length = int.from_bytes(message[2:6])
    if msg_type != MessageType.RO_ACCESS_REPORT:
        fail(f"not an RO_ACCESS_REPORT (type {msg_type})")
    if length != len(message):
        fail(f"length field {length} does not match {len(message)} bytes")
    return decode_tag_reports(message, HEADER_SIZE)
