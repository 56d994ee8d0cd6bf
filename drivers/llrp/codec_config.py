"""LLRP capability and configuration messages (GET_READER_CAPABILITIES, *_READER_CONFIG)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar, Self

from drivers.llrp.codec_base import (
    Cursor,
    Params,
    many,
    opt,
)
from drivers.llrp.codec_caps import (
    C1G2LLRPCapabilities,
    GeneralDeviceCapabilities,
    LLRPCapabilities,
    RegulatoryCapabilities,
)
from drivers.llrp.codec_messages import Message, decode_many, decode_one, decode_opt
from drivers.llrp.codec_params import (
    AccessReportSpec,
    AntennaConfiguration,
    AntennaProperties,
    EventsAndReports,
    GPIPortCurrentState,
    Identification,
    KeepaliveSpec,
    LLRPStatus,
    OpaqueParam,
    ReaderEventNotificationSpec,
)
from drivers.llrp.codec_spec import ROReportSpec
from drivers.llrp.codec_types import (
    MessageType,
    ParamType,
)

P = ParamType
M = MessageType


@dataclass(frozen=True, slots=True)
class GetReaderCapabilities(Message):
    """GET_READER_CAPABILITIES (0 = all, 1 general, 2 LLRP, 3 regulatory, 4 air protocol)."""

    TYPE: ClassVar[int] = M.GET_READER_CAPABILITIES
    requested_data: int = 0

    def encode_body(self) -> bytes:
        """Encode the body."""
        return bytes([self.requested_data])

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body."""
        requested = cur.u8()
        cur.params().finish()
        return cls(msg_id, requested)


@dataclass(frozen=True, slots=True)
class GetReaderCapabilitiesResponse(Message):
    """GET_READER_CAPABILITIES_RESPONSE."""

    TYPE: ClassVar[int] = M.GET_READER_CAPABILITIES_RESPONSE
    status: LLRPStatus = field(default_factory=LLRPStatus)
    general: GeneralDeviceCapabilities | None = None
    llrp: LLRPCapabilities | None = None
    regulatory: RegulatoryCapabilities | None = None
    c1g2: C1G2LLRPCapabilities | None = None

    def encode_body(self) -> bytes:
        """Encode the body."""
        return b"".join(
            (
                self.status.encode(),
                opt(self.general),
                opt(self.llrp),
                opt(self.regulatory),
                opt(self.c1g2),
            )
        )

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body."""
        params = cur.params()
        value = cls(
            msg_id,
            decode_one(params, P.LLRP_STATUS, LLRPStatus),
            decode_opt(params, P.GENERAL_DEVICE_CAPABILITIES, GeneralDeviceCapabilities),
            decode_opt(params, P.LLRP_CAPABILITIES, LLRPCapabilities),
            decode_opt(params, P.REGULATORY_CAPABILITIES, RegulatoryCapabilities),
            decode_opt(params, P.C1G2_LLRP_CAPABILITIES, C1G2LLRPCapabilities),
        )
        params.finish()
        return value


@dataclass(frozen=True, slots=True)
class GetReaderConfig(Message):
    """GET_READER_CONFIG (see :class:`GetReaderConfigRequestedData`)."""

    TYPE: ClassVar[int] = M.GET_READER_CONFIG
    antenna_id: int = 0
    requested_data: int = 0
    gpi_port: int = 0
    gpo_port: int = 0

    def encode_body(self) -> bytes:
        """Encode the body."""
        return struct.pack(
            ">HBHH", self.antenna_id, self.requested_data, self.gpi_port, self.gpo_port
        )

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body (vendor Custom parameters are ignored)."""
        value = cls(msg_id, cur.u16(), cur.u8(), cur.u16(), cur.u16())
        cur.params().finish()
        return value


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    """The configuration parameters shared by GET_READER_CONFIG_RESPONSE and SET_READER_CONFIG.

    Fields that are None or empty are not sent.
    """

    identification: Identification | None = None
    antenna_properties: tuple[AntennaProperties, ...] = ()
    antenna_configurations: tuple[AntennaConfiguration, ...] = ()
    event_spec: ReaderEventNotificationSpec | None = None
    ro_report_spec: ROReportSpec | None = None
    access_report_spec: AccessReportSpec | None = None
    config_state_value: int | None = None
    keepalive: KeepaliveSpec | None = None
    gpi_states: tuple[GPIPortCurrentState, ...] = ()
    gpo_write_data: tuple[OpaqueParam, ...] = ()
    events_and_reports: EventsAndReports | None = None

    def encode_response(self) -> bytes:
        """Encode in GET_READER_CONFIG_RESPONSE order."""
        state = b""
        if self.config_state_value is not None:
            state = OpaqueParam(
                P.LLRP_CONFIGURATION_STATE_VALUE, struct.pack(">I", self.config_state_value)
            ).encode()
        return b"".join(
            (
                opt(self.identification),
                many(self.antenna_properties),
                many(self.antenna_configurations),
                opt(self.event_spec),
                opt(self.ro_report_spec),
                opt(self.access_report_spec),
                state,
                opt(self.keepalive),
                many(self.gpi_states),
                many(self.gpo_write_data),
                opt(self.events_and_reports),
            )
        )

    def encode_set(self) -> bytes:
        """Encode in SET_READER_CONFIG order."""
        return b"".join(
            (
                opt(self.event_spec),
                many(self.antenna_properties),
                many(self.antenna_configurations),
                opt(self.ro_report_spec),
                opt(self.access_report_spec),
                opt(self.keepalive),
                many(self.gpo_write_data),
                many(self.gpi_states),
                opt(self.events_and_reports),
            )
        )

    @classmethod
    def decode_params(cls, params: Params, *, response: bool) -> Self:
        """Decode from the parameters of either message."""
        ident = decode_opt(params, P.IDENTIFICATION, Identification) if response else None
        state_raw = params.opt(P.LLRP_CONFIGURATION_STATE_VALUE) if response else None
        value = cls(
            ident,
            decode_many(params, P.ANTENNA_PROPERTIES, AntennaProperties),
            decode_many(params, P.ANTENNA_CONFIGURATION, AntennaConfiguration),
            decode_opt(params, P.READER_EVENT_NOTIFICATION_SPEC, ReaderEventNotificationSpec),
            decode_opt(params, P.RO_REPORT_SPEC, ROReportSpec),
            decode_opt(params, P.ACCESS_REPORT_SPEC, AccessReportSpec),
            state_raw.cursor().u32() if state_raw else None,
            decode_opt(params, P.KEEPALIVE_SPEC, KeepaliveSpec),
            decode_many(params, P.GPI_PORT_CURRENT_STATE, GPIPortCurrentState),
            decode_many(params, P.GPO_WRITE_DATA, OpaqueParam),
            decode_opt(params, P.EVENTS_AND_REPORTS, EventsAndReports),
        )
        params.finish()
        return value


@dataclass(frozen=True, slots=True)
class GetReaderConfigResponse(Message):
    """GET_READER_CONFIG_RESPONSE."""

    TYPE: ClassVar[int] = M.GET_READER_CONFIG_RESPONSE
    status: LLRPStatus = field(default_factory=LLRPStatus)
    config: ReaderConfig = field(default_factory=ReaderConfig)

    def encode_body(self) -> bytes:
        """Encode the body."""
        return self.status.encode() + self.config.encode_response()

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body."""
        params = cur.params()
        status = decode_one(params, P.LLRP_STATUS, LLRPStatus)
        return cls(msg_id, status, ReaderConfig.decode_params(params, response=True))


@dataclass(frozen=True, slots=True)
class SetReaderConfig(Message):
    """SET_READER_CONFIG."""

    TYPE: ClassVar[int] = M.SET_READER_CONFIG
    reset_to_factory_defaults: bool = False
    config: ReaderConfig = field(default_factory=ReaderConfig)

    def encode_body(self) -> bytes:
        """Encode the body."""
        return bytes([int(self.reset_to_factory_defaults) << 7]) + self.config.encode_set()

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body."""
        reset = bool(cur.u8() & 0x80)
        return cls(msg_id, reset, ReaderConfig.decode_params(cur.params(), response=False))
