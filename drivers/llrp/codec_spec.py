"""LLRP ROSpec and AccessSpec parameters (ADD_ROSPEC, GET_ROSPECS, ADD_ACCESSSPEC...)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from drivers.llrp.codec_base import (
    RawParam,
    fail,
    many,
    opt,
    tlv,
    u16v,
)
from drivers.llrp.codec_params import AntennaConfiguration, OpaqueParam
from drivers.llrp.codec_types import (
    ParamType,
    StatusCode,
)

P = ParamType


@dataclass(frozen=True, slots=True)
class PeriodicTriggerValue:
    """PeriodicTriggerValue: first start after ``offset_ms``, then every ``period_ms``."""

    offset_ms: int = 0
    period_ms: int = 0
    utc_us: int | None = None

    def encode(self) -> bytes:
        """Encode the parameter."""
        utc = b"" if self.utc_us is None else tlv(P.UTC_TIMESTAMP, struct.pack(">Q", self.utc_us))
        return tlv(
            P.PERIODIC_TRIGGER_VALUE, struct.pack(">II", self.offset_ms, self.period_ms), utc
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        offset, period = cur.u32(), cur.u32()
        params = cur.params()
        utc = params.opt(P.UTC_TIMESTAMP)
        params.finish()
        return cls(offset, period, utc.cursor().u64() if utc else None)


@dataclass(frozen=True, slots=True)
class GPITriggerValue:
    """GPITriggerValue: a GPI port event, with a timeout in milliseconds."""

    port: int = 0
    event: bool = False
    timeout_ms: int = 0

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.GPI_TRIGGER_VALUE,
            struct.pack(">HBI", self.port, int(self.event) << 7, self.timeout_ms),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        return cls(cur.u16(), bool(cur.u8() & 0x80), cur.u32())


def _gpi(raw: RawParam | None) -> GPITriggerValue | None:
    return GPITriggerValue.decode(raw) if raw else None


@dataclass(frozen=True, slots=True)
class ROSpecStartTrigger:
    """ROSpecStartTrigger: Null (START_ROSPEC), Immediate, Periodic or GPI."""

    trigger_type: int = 0
    periodic: PeriodicTriggerValue | None = None
    gpi: GPITriggerValue | None = None

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.ROSPEC_START_TRIGGER, bytes([self.trigger_type]), opt(self.periodic), opt(self.gpi)
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        kind = cur.u8()
        params = cur.params()
        periodic = params.opt(P.PERIODIC_TRIGGER_VALUE)
        gpi = params.opt(P.GPI_TRIGGER_VALUE)
        params.finish()
        return cls(kind, PeriodicTriggerValue.decode(periodic) if periodic else None, _gpi(gpi))


@dataclass(frozen=True, slots=True)
class ROSpecStopTrigger:
    """ROSpecStopTrigger: Null (until stopped), Duration (ms) or GPI with timeout."""

    trigger_type: int = 0
    duration_ms: int = 0
    gpi: GPITriggerValue | None = None

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.ROSPEC_STOP_TRIGGER,
            struct.pack(">BI", self.trigger_type, self.duration_ms),
            opt(self.gpi),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        kind, duration = cur.u8(), cur.u32()
        params = cur.params()
        gpi = params.opt(P.GPI_TRIGGER_VALUE)
        params.finish()
        return cls(kind, duration, _gpi(gpi))


@dataclass(frozen=True, slots=True)
class ROBoundarySpec:
    """ROBoundarySpec: when an ROSpec starts and stops."""

    start: ROSpecStartTrigger = ROSpecStartTrigger()
    stop: ROSpecStopTrigger = ROSpecStopTrigger()

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(P.RO_BOUNDARY_SPEC, self.start.encode(), self.stop.encode())

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        params = raw.cursor().params()
        start = ROSpecStartTrigger.decode(params.one(P.ROSPEC_START_TRIGGER))
        stop = ROSpecStopTrigger.decode(params.one(P.ROSPEC_STOP_TRIGGER))
        params.finish()
        return cls(start, stop)


@dataclass(frozen=True, slots=True)
class TagObservationTrigger:
    """TagObservationTrigger: end an AISpec upon N tags (or other rules), or a timeout (ms)."""

    trigger_type: int = 0
    number_of_tags: int = 0
    number_of_attempts: int = 0
    t_ms: int = 0
    timeout_ms: int = 0

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.TAG_OBSERVATION_TRIGGER,
            struct.pack(
                ">BBHHHI",
                self.trigger_type,
                0,
                self.number_of_tags,
                self.number_of_attempts,
                self.t_ms,
                self.timeout_ms,
            ),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        kind = cur.u8()
        cur.u8()
        return cls(kind, cur.u16(), cur.u16(), cur.u16(), cur.u32())


@dataclass(frozen=True, slots=True)
class AISpecStopTrigger:
    """AISpecStopTrigger: Null, Duration (ms), GPI with timeout, or tag observation."""

    trigger_type: int = 0
    duration_ms: int = 0
    gpi: GPITriggerValue | None = None
    tag_observation: TagObservationTrigger | None = None

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.AI_SPEC_STOP_TRIGGER,
            struct.pack(">BI", self.trigger_type, self.duration_ms),
            opt(self.gpi),
            opt(self.tag_observation),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        kind, duration = cur.u8(), cur.u32()
        params = cur.params()
        gpi = params.opt(P.GPI_TRIGGER_VALUE)
        obs = params.opt(P.TAG_OBSERVATION_TRIGGER)
        params.finish()
        return cls(kind, duration, _gpi(gpi), TagObservationTrigger.decode(obs) if obs else None)


@dataclass(frozen=True, slots=True)
class InventoryParameterSpec:
    """InventoryParameterSpec: protocol (1 = Gen2) and per-antenna configuration."""

    spec_id: int = 1
    protocol_id: int = 1
    antenna_configurations: tuple[AntennaConfiguration, ...] = ()

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.INVENTORY_PARAMETER_SPEC,
            struct.pack(">HB", self.spec_id, self.protocol_id),
            many(self.antenna_configurations),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        spec_id, protocol = cur.u16(), cur.u8()
        params = cur.params()
        configs = tuple(
            AntennaConfiguration.decode(p) for p in params.many(P.ANTENNA_CONFIGURATION)
        )
        params.finish()
        return cls(spec_id, protocol, configs)


@dataclass(frozen=True, slots=True)
class AISpec:
    """AISpec: antennas to inventory (0 = all), its stop trigger and inventory parameters."""

    antenna_ids: tuple[int, ...] = (0,)
    stop_trigger: AISpecStopTrigger = AISpecStopTrigger()
    inventory_parameter_specs: tuple[InventoryParameterSpec, ...] = (InventoryParameterSpec(),)

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.AI_SPEC,
            u16v(self.antenna_ids),
            self.stop_trigger.encode(),
            many(self.inventory_parameter_specs),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        antennas = cur.u16v()
        params = cur.params()
        stop = AISpecStopTrigger.decode(params.one(P.AI_SPEC_STOP_TRIGGER))
        specs = tuple(
            InventoryParameterSpec.decode(p) for p in params.many(P.INVENTORY_PARAMETER_SPEC)
        )
        params.finish()
        if not specs:
            fail("AISpec without InventoryParameterSpec", StatusCode.P_MISSING_PARAMETER, raw.ptype)
        return cls(antennas, stop, specs)


@dataclass(frozen=True, slots=True)
class TagReportContentSelector:
    """TagReportContentSelector: which fields each TagReportData carries.

    ``enable_crc`` / ``enable_pc_bits`` come from the C1G2EPCMemorySelector, present when
    ``memory_selector`` is True.
    """

    enable_rospec_id: bool = False
    enable_spec_index: bool = False
    enable_inventory_parameter_spec_id: bool = False
    enable_antenna_id: bool = False
    enable_channel_index: bool = False
    enable_peak_rssi: bool = False
    enable_first_seen: bool = False
    enable_last_seen: bool = False
    enable_tag_seen_count: bool = False
    enable_access_spec_id: bool = False
    memory_selector: bool = False
    enable_crc: bool = False
    enable_pc_bits: bool = False

    def flags(self) -> tuple[bool, ...]:
        """The ten Enable* flags in wire order."""
        return (
            self.enable_rospec_id,
            self.enable_spec_index,
            self.enable_inventory_parameter_spec_id,
            self.enable_antenna_id,
            self.enable_channel_index,
            self.enable_peak_rssi,
            self.enable_first_seen,
            self.enable_last_seen,
            self.enable_tag_seen_count,
            self.enable_access_spec_id,
        )

    def encode(self) -> bytes:
        """Encode the parameter."""
        word = 0
        for index, flag in enumerate(self.flags()):
            word |= int(flag) << (15 - index)
        memory = b""
        if self.memory_selector:
            bits = (int(self.enable_crc) << 7) | (int(self.enable_pc_bits) << 6)
            memory = tlv(P.C1G2_EPC_MEMORY_SELECTOR, bytes([bits]))
        return tlv(P.TAG_REPORT_CONTENT_SELECTOR, struct.pack(">H", word), memory)

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        word = cur.u16()
        params = cur.params()
        memory = params.opt(P.C1G2_EPC_MEMORY_SELECTOR)
        params.finish()
        bits = memory.cursor().u8() if memory else 0
        return cls(
            enable_rospec_id=bool(word & 0x8000),
            enable_spec_index=bool(word & 0x4000),
            enable_inventory_parameter_spec_id=bool(word & 0x2000),
            enable_antenna_id=bool(word & 0x1000),
            enable_channel_index=bool(word & 0x0800),
            enable_peak_rssi=bool(word & 0x0400),
            enable_first_seen=bool(word & 0x0200),
            enable_last_seen=bool(word & 0x0100),
            enable_tag_seen_count=bool(word & 0x0080),
            enable_access_spec_id=bool(word & 0x0040),
            memory_selector=memory is not None,
            enable_crc=bool(bits & 0x80),
            enable_pc_bits=bool(bits & 0x40),
        )


@dataclass(frozen=True, slots=True)
class ROReportSpec:
    """ROReportSpec: when reports are sent (trigger, N) and what they contain."""

    trigger: int = 0
    n: int = 0
    selector: TagReportContentSelector = TagReportContentSelector()

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.RO_REPORT_SPEC, struct.pack(">BH", self.trigger, self.n), self.selector.encode()
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        trigger, n = cur.u8(), cur.u16()
        params = cur.params()
        selector = TagReportContentSelector.decode(params.one(P.TAG_REPORT_CONTENT_SELECTOR))
        params.finish()
        return cls(trigger, n, selector)


SpecParameter = AISpec | OpaqueParam


@dataclass(frozen=True, slots=True)
class ROSpec:
    """ROSpec: a reader operation (boundary, AISpecs, report spec).

    Attributes:
        rospec_id: Non-zero ROSpec identifier.
        priority: 0 (highest) to 7.
        state: Current state (0 disabled, 1 inactive, 2 active).
        boundary: Start and stop triggers.
        specs: AISpecs; RFSurveySpec and vendor specs are kept as bytes.
        report_spec: Optional ROReportSpec (else the reader default applies).
    """

    rospec_id: int
    priority: int = 0
    state: int = 0
    boundary: ROBoundarySpec = ROBoundarySpec()
    specs: tuple[SpecParameter, ...] = (AISpec(),)
    report_spec: ROReportSpec | None = None

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.ROSPEC,
            struct.pack(">IBB", self.rospec_id, self.priority, self.state),
            self.boundary.encode(),
            many(self.specs),
            opt(self.report_spec),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        rospec_id, priority, state = cur.u32(), cur.u8(), cur.u8()
        params = cur.params()
        boundary = ROBoundarySpec.decode(params.one(P.RO_BOUNDARY_SPEC))
        specs: list[SpecParameter] = [
            AISpec.decode(item) if item.ptype == P.AI_SPEC else OpaqueParam.decode(item)
            for item in params.many(P.AI_SPEC, P.RF_SURVEY_SPEC, P.CUSTOM)
        ]
        report = params.opt(P.RO_REPORT_SPEC)
        params.finish()
        if not specs:
            fail("ROSpec without SpecParameter", StatusCode.P_MISSING_PARAMETER, raw.ptype)
        return cls(
            rospec_id,
            priority,
            state,
            boundary,
            tuple(specs),
            ROReportSpec.decode(report) if report else None,
        )
