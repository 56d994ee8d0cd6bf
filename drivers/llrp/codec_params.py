"""LLRP parameters of status, reader configuration and reader events.

Each dataclass encodes itself (``encode() -> bytes``, header included) and has a ``decode``
class method taking the :class:`RawParam` found by the splitter.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from drivers.llrp.codec_base import (
    RawParam,
    bitv,
    fail,
    many,
    opt,
    tlv,
    u8v,
    utf8v,
)
from drivers.llrp.codec_types import (
    ParamType,
    StatusCode,
)

P = ParamType


def _bit(flag: bool, shift: int = 7) -> int:
    return int(flag) << shift


@dataclass(frozen=True, slots=True)
class OpaqueParam:
    """A TLV parameter kept as bytes (vendor extensions, filters, access operations).

    Attributes:
        ptype: Parameter type number.
        body: The value bytes after the 4-byte TLV header.
    """

    ptype: int
    body: bytes = b""

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(self.ptype, self.body)

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Keep a parameter's bytes."""
        return cls(raw.ptype, raw.body())


@dataclass(frozen=True, slots=True)
class FieldError:
    """FieldError: which field of a message or parameter was wrong."""

    field_num: int
    error_code: int

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(P.FIELD_ERROR, struct.pack(">HH", self.field_num, self.error_code))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        value = cls(cur.u16(), cur.u16())
        cur.params().finish()
        return value


_MAX_ERROR_DEPTH = 16


@dataclass(frozen=True, slots=True)
class ParameterError:
    """ParameterError: which parameter was wrong, possibly nested."""

    parameter_type: int
    error_code: int
    field_error: FieldError | None = None
    parameter_error: ParameterError | None = None

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.PARAMETER_ERROR,
            struct.pack(">HH", self.parameter_type, self.error_code),
            opt(self.field_error),
            opt(self.parameter_error),
        )

    @classmethod
    def decode(cls, raw: RawParam, depth: int = 0) -> Self:
        """Decode the parameter (nesting deeper than 16 levels is rejected)."""
        if depth > _MAX_ERROR_DEPTH:
            fail("ParameterError nested too deeply", StatusCode.P_OVERFLOW_PARAMETER, raw.ptype)
        cur = raw.cursor()
        ptype, code = cur.u16(), cur.u16()
        params = cur.params()
        fe = params.opt(P.FIELD_ERROR)
        pe = params.opt(P.PARAMETER_ERROR)
        params.finish()
        return cls(
            ptype,
            code,
            FieldError.decode(fe) if fe else None,
            cls.decode(pe, depth + 1) if pe else None,
        )


@dataclass(frozen=True, slots=True)
class LLRPStatus:
    """LLRPStatus: the outcome of a request.

    Attributes:
        code: Status code (0 is success).
        description: Human-readable error description.
        field_error: Optional detail about a field.
        parameter_error: Optional detail about a parameter.
    """

    code: int = StatusCode.M_SUCCESS
    description: str = ""
    field_error: FieldError | None = None
    parameter_error: ParameterError | None = None

    @property
    def ok(self) -> bool:
        """True for M_Success."""
        return self.code == StatusCode.M_SUCCESS

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.LLRP_STATUS,
            struct.pack(">H", self.code),
            utf8v(self.description),
            opt(self.field_error),
            opt(self.parameter_error),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        code, text = cur.u16(), cur.utf8v()
        params = cur.params()
        fe = params.opt(P.FIELD_ERROR)
        pe = params.opt(P.PARAMETER_ERROR)
        params.finish()
        return cls(
            code,
            text,
            FieldError.decode(fe) if fe else None,
            ParameterError.decode(pe) if pe else None,
        )


@dataclass(frozen=True, slots=True)
class KeepaliveSpec:
    """KeepaliveSpec: when the reader sends KEEPALIVE (interval in milliseconds)."""

    trigger_type: int = 0
    interval_ms: int = 0

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(P.KEEPALIVE_SPEC, struct.pack(">BI", self.trigger_type, self.interval_ms))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        value = cls(cur.u8(), cur.u32())
        cur.params().finish()
        return value


@dataclass(frozen=True, slots=True)
class EventNotificationState:
    """Whether the reader notifies one kind of event."""

    event_type: int
    enabled: bool

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.EVENT_NOTIFICATION_STATE, struct.pack(">HB", self.event_type, _bit(self.enabled))
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        value = cls(cur.u16(), bool(cur.u8() & 0x80))
        cur.params().finish()
        return value


@dataclass(frozen=True, slots=True)
class ReaderEventNotificationSpec:
    """ReaderEventNotificationSpec: the list of event notification states."""

    states: tuple[EventNotificationState, ...] = ()

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(P.READER_EVENT_NOTIFICATION_SPEC, many(self.states))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        params = raw.cursor().params()
        states = tuple(
            EventNotificationState.decode(p) for p in params.many(P.EVENT_NOTIFICATION_STATE)
        )
        params.finish()
        if not states:
            fail(
                "ReaderEventNotificationSpec without EventNotificationState",
                StatusCode.P_MISSING_PARAMETER,
                raw.ptype,
            )
        return cls(states)


@dataclass(frozen=True, slots=True)
class RFReceiver:
    """RFReceiver: receiver sensitivity index."""

    sensitivity: int = 1

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(P.RF_RECEIVER, struct.pack(">H", self.sensitivity))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        value = cls(cur.u16())
        cur.params().finish()
        return value


@dataclass(frozen=True, slots=True)
class RFTransmitter:
    """RFTransmitter: hop table, channel and transmit power index (1-based into the table)."""

    hop_table_id: int = 1
    channel_index: int = 1
    transmit_power: int = 1

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.RF_TRANSMITTER,
            struct.pack(">HHH", self.hop_table_id, self.channel_index, self.transmit_power),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        value = cls(cur.u16(), cur.u16(), cur.u16())
        cur.params().finish()
        return value


@dataclass(frozen=True, slots=True)
class C1G2RFControl:
    """C1G2RFControl: RF mode (index into the mode table) and Tari."""

    mode_index: int = 0
    tari: int = 0

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(P.C1G2_RF_CONTROL, struct.pack(">HH", self.mode_index, self.tari))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        value = cls(cur.u16(), cur.u16())
        cur.params().finish()
        return value


@dataclass(frozen=True, slots=True)
class C1G2SingulationControl:
    """C1G2SingulationControl: session, expected tag population and transit time (ms)."""

    session: int = 0
    tag_population: int = 0
    tag_transit_time: int = 0
    state_aware_action: OpaqueParam | None = None

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.C1G2_SINGULATION_CONTROL,
            struct.pack(
                ">BHI", (self.session & 3) << 6, self.tag_population, self.tag_transit_time
            ),
            opt(self.state_aware_action),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        session, population, transit = cur.u8() >> 6, cur.u16(), cur.u32()
        params = cur.params()
        action = params.opt(337)
        params.finish()
        return cls(session, population, transit, OpaqueParam.decode(action) if action else None)


@dataclass(frozen=True, slots=True)
class C1G2InventoryCommand:
    """C1G2InventoryCommand: Gen2 settings of an antenna (filters kept as bytes)."""

    state_aware: bool = False
    filters: tuple[OpaqueParam, ...] = ()
    rf_control: C1G2RFControl | None = None
    singulation_control: C1G2SingulationControl | None = None

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.C1G2_INVENTORY_COMMAND,
            bytes([_bit(self.state_aware)]),
            many(self.filters),
            opt(self.rf_control),
            opt(self.singulation_control),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        aware = bool(cur.u8() & 0x80)
        params = cur.params()
        filters = tuple(OpaqueParam.decode(p) for p in params.many(P.C1G2_FILTER))
        rf = params.opt(P.C1G2_RF_CONTROL)
        sc = params.opt(P.C1G2_SINGULATION_CONTROL)
        params.finish()
        return cls(
            aware,
            filters,
            C1G2RFControl.decode(rf) if rf else None,
            C1G2SingulationControl.decode(sc) if sc else None,
        )


@dataclass(frozen=True, slots=True)
class AntennaConfiguration:
    """AntennaConfiguration: receiver, transmitter and Gen2 settings of one antenna (0 = all)."""

    antenna_id: int = 0
    rf_receiver: RFReceiver | None = None
    rf_transmitter: RFTransmitter | None = None
    inventory_commands: tuple[C1G2InventoryCommand, ...] = ()

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.ANTENNA_CONFIGURATION,
            struct.pack(">H", self.antenna_id),
            opt(self.rf_receiver),
            opt(self.rf_transmitter),
            many(self.inventory_commands),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        antenna = cur.u16()
        params = cur.params()
        rx = params.opt(P.RF_RECEIVER)
        tx = params.opt(P.RF_TRANSMITTER)
        commands = tuple(
            C1G2InventoryCommand.decode(p) for p in params.many(P.C1G2_INVENTORY_COMMAND)
        )
        params.finish()
        return cls(
            antenna,
            RFReceiver.decode(rx) if rx else None,
            RFTransmitter.decode(tx) if tx else None,
            commands,
        )


@dataclass(frozen=True, slots=True)
class AntennaProperties:
    """AntennaProperties: whether an antenna is connected, and its gain (centi-dBi)."""

    antenna_id: int
    connected: bool = True
    gain: int = 0

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.ANTENNA_PROPERTIES,
            struct.pack(">BHh", _bit(self.connected), self.antenna_id, self.gain),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        connected = bool(cur.u8() & 0x80)
        value = cls(cur.u16(), connected, cur.s16())
        cur.params().finish()
        return value


@dataclass(frozen=True, slots=True)
class Identification:
    """Identification: reader ID (type 0 = MAC address, 1 = EPC)."""

    id_type: int = 0
    reader_id: bytes = b""

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(P.IDENTIFICATION, bytes([self.id_type]), u8v(self.reader_id))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        value = cls(cur.u8(), cur.u8v())
        cur.params().finish()
        return value


@dataclass(frozen=True, slots=True)
class GPIPortCurrentState:
    """GPIPortCurrentState: one GPI port (state 0 low, 1 high, 2 unknown)."""

    port: int
    config: bool = False
    state: int = 2

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.GPI_PORT_CURRENT_STATE,
            struct.pack(">HBB", self.port, _bit(self.config), self.state),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        value = cls(cur.u16(), bool(cur.u8() & 0x80), cur.u8())
        cur.params().finish()
        return value


@dataclass(frozen=True, slots=True)
class EventsAndReports:
    """EventsAndReports: hold events and reports until ENABLE_EVENTS_AND_REPORTS."""

    hold: bool = False

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(P.EVENTS_AND_REPORTS, bytes([_bit(self.hold)]))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        value = cls(bool(cur.u8() & 0x80))
        cur.params().finish()
        return value


@dataclass(frozen=True, slots=True)
class AccessReportSpec:
    """AccessReportSpec: 0 = whenever an RO report is generated, 1 = end of AccessSpec."""

    trigger: int = 0

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(P.ACCESS_REPORT_SPEC, bytes([self.trigger]))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        value = cls(cur.u8())
        cur.params().finish()
        return value


@dataclass(frozen=True, slots=True)
class BitArray:
    """A bit array field: ``bits`` significant bits stored in ``data``."""

    bits: int = 0
    data: bytes = b""

    def encode_field(self) -> bytes:
        """Encode as a field (no parameter header)."""
        return bitv(self.bits, self.data)
