"""LLRP reader-capabilities parameters (GET_READER_CAPABILITIES_RESPONSE)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from drivers.llrp.codec_base import (
    RawParam,
    many,
    opt,
    tlv,
    u8v,
    u32v,
    utf8v,
)
from drivers.llrp.codec_types import (
    ParamType,
)

P = ParamType


@dataclass(frozen=True, slots=True)
class ReceiveSensitivityTableEntry:
    """One row of the receive-sensitivity table (value in dB)."""

    index: int
    value: int

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(P.RECEIVE_SENSITIVITY_TABLE_ENTRY, struct.pack(">Hh", self.index, self.value))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        return cls(cur.u16(), cur.s16())


@dataclass(frozen=True, slots=True)
class PerAntennaAirProtocol:
    """Air protocols one antenna supports (1 = EPCglobal Class 1 Gen 2)."""

    antenna_id: int
    protocol_ids: tuple[int, ...] = (1,)

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.PER_ANTENNA_AIR_PROTOCOL, struct.pack(">H", self.antenna_id), u8v(self.protocol_ids)
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        return cls(cur.u16(), tuple(cur.u8v()))


@dataclass(frozen=True, slots=True)
class GeneralDeviceCapabilities:
    """GeneralDeviceCapabilities: antenna count, vendor and model, firmware, GPIO.

    Attributes:
        max_antennas: MaxNumberOfAntennaSupported.
        can_set_antenna_properties: CanSetAntennaProperties flag.
        has_utc_clock: HasUTCClockCapability flag.
        manufacturer: IANA private enterprise number of the manufacturer.
        model: Vendor-specific model number.
        firmware: Firmware version text.
        receive_sensitivities: The receive-sensitivity table.
        num_gpis: Number of GPI ports.
        num_gpos: Number of GPO ports.
        air_protocols: Per-antenna air protocols.
    """

    max_antennas: int
    can_set_antenna_properties: bool = False
    has_utc_clock: bool = True
    manufacturer: int = 0
    model: int = 0
    firmware: str = ""
    receive_sensitivities: tuple[ReceiveSensitivityTableEntry, ...] = ()
    num_gpis: int = 0
    num_gpos: int = 0
    air_protocols: tuple[PerAntennaAirProtocol, ...] = ()

    def encode(self) -> bytes:
        """Encode the parameter."""
        flags = (int(self.can_set_antenna_properties) << 15) | (int(self.has_utc_clock) << 14)
        return tlv(
            P.GENERAL_DEVICE_CAPABILITIES,
            struct.pack(">HHII", self.max_antennas, flags, self.manufacturer, self.model),
            utf8v(self.firmware),
            many(self.receive_sensitivities),
            tlv(P.GPIO_CAPABILITIES, struct.pack(">HH", self.num_gpis, self.num_gpos)),
            many(self.air_protocols),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        max_antennas, flags = cur.u16(), cur.u16()
        manufacturer, model, firmware = cur.u32(), cur.u32(), cur.utf8v()
        params = cur.params()
        sens = tuple(
            ReceiveSensitivityTableEntry.decode(p)
            for p in params.many(P.RECEIVE_SENSITIVITY_TABLE_ENTRY)
        )
        params.many(P.PER_ANTENNA_RECEIVE_SENSITIVITY_RANGE)
        gpio = params.one(P.GPIO_CAPABILITIES).cursor()
        gpis, gpos = gpio.u16(), gpio.u16()
        protocols = tuple(
            PerAntennaAirProtocol.decode(p) for p in params.many(P.PER_ANTENNA_AIR_PROTOCOL)
        )
        params.finish()
        return cls(
            max_antennas,
            bool(flags & 0x8000),
            bool(flags & 0x4000),
            manufacturer,
            model,
            firmware,
            sens,
            gpis,
            gpos,
            protocols,
        )


@dataclass(frozen=True, slots=True)
class LLRPCapabilities:
    """LLRPCapabilities: what the reader's LLRP implementation supports."""

    can_do_rf_survey: bool = False
    can_report_buffer_fill_warning: bool = False
    supports_client_request_op_spec: bool = False
    can_do_state_aware_singulation: bool = False
    supports_event_and_report_holding: bool = False
    max_priority_levels: int = 1
    client_request_op_spec_timeout: int = 0
    max_rospecs: int = 1
    max_specs_per_rospec: int = 1
    max_inventory_parameter_specs_per_aispec: int = 1
    max_access_specs: int = 1
    max_op_specs_per_access_spec: int = 1

    def encode(self) -> bytes:
        """Encode the parameter."""
        flags = (
            (int(self.can_do_rf_survey) << 7)
            | (int(self.can_report_buffer_fill_warning) << 6)
            | (int(self.supports_client_request_op_spec) << 5)
            | (int(self.can_do_state_aware_singulation) << 4)
            | (int(self.supports_event_and_report_holding) << 3)
        )
        return tlv(
            P.LLRP_CAPABILITIES,
            struct.pack(
                ">BBHIIIII",
                flags,
                self.max_priority_levels,
                self.client_request_op_spec_timeout,
                self.max_rospecs,
                self.max_specs_per_rospec,
                self.max_inventory_parameter_specs_per_aispec,
                self.max_access_specs,
                self.max_op_specs_per_access_spec,
            ),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        flags = cur.u8()
        return cls(
            bool(flags & 0x80),
            bool(flags & 0x40),
            bool(flags & 0x20),
            bool(flags & 0x10),
            bool(flags & 0x08),
            cur.u8(),
            cur.u16(),
            cur.u32(),
            cur.u32(),
            cur.u32(),
            cur.u32(),
            cur.u32(),
        )


@dataclass(frozen=True, slots=True)
class TransmitPowerLevelTableEntry:
    """One row of the transmit power table (power in hundredths of dBm)."""

    index: int
    power_cdbm: int

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.TRANSMIT_POWER_LEVEL_TABLE_ENTRY, struct.pack(">Hh", self.index, self.power_cdbm)
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        return cls(cur.u16(), cur.s16())


@dataclass(frozen=True, slots=True)
class FrequencyHopTable:
    """A frequency hop table (frequencies in kHz)."""

    hop_table_id: int
    frequencies_khz: tuple[int, ...]

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(P.FREQUENCY_HOP_TABLE, bytes([self.hop_table_id, 0]), u32v(self.frequencies_khz))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        table_id = cur.u8()
        cur.u8()
        return cls(table_id, cur.u32v())


@dataclass(frozen=True, slots=True)
class FrequencyInformation:
    """FrequencyInformation: hop tables (hopping regions) or a fixed frequency table."""

    hopping: bool
    hop_tables: tuple[FrequencyHopTable, ...] = ()
    fixed_khz: tuple[int, ...] | None = None

    def encode(self) -> bytes:
        """Encode the parameter."""
        fixed = (
            b"" if self.fixed_khz is None else tlv(P.FIXED_FREQUENCY_TABLE, u32v(self.fixed_khz))
        )
        return tlv(
            P.FREQUENCY_INFORMATION, bytes([int(self.hopping) << 7]), many(self.hop_tables), fixed
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        hopping = bool(cur.u8() & 0x80)
        params = cur.params()
        tables = tuple(FrequencyHopTable.decode(p) for p in params.many(P.FREQUENCY_HOP_TABLE))
        fixed = params.opt(P.FIXED_FREQUENCY_TABLE)
        params.finish()
        return cls(hopping, tables, fixed.cursor().u32v() if fixed else None)


@dataclass(frozen=True, slots=True)
class UHFC1G2RFModeTableEntry:
    """One Gen2 RF mode (rates in bps, Tari in ns)."""

    mode_id: int
    dr_64_3: bool = False
    epc_hag_tc_conformance: bool = False
    m_value: int = 0
    forward_link_modulation: int = 0
    spectral_mask: int = 0
    bdr: int = 0
    pie: int = 0
    min_tari: int = 0
    max_tari: int = 0
    step_tari: int = 0

    def encode(self) -> bytes:
        """Encode the parameter."""
        flags = (int(self.dr_64_3) << 7) | (int(self.epc_hag_tc_conformance) << 6)
        return tlv(
            P.UHF_C1G2_RF_MODE_TABLE_ENTRY,
            struct.pack(
                ">IBBBBIIIII",
                self.mode_id,
                flags,
                self.m_value,
                self.forward_link_modulation,
                self.spectral_mask,
                self.bdr,
                self.pie,
                self.min_tari,
                self.max_tari,
                self.step_tari,
            ),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        mode_id, flags = cur.u32(), cur.u8()
        return cls(
            mode_id,
            bool(flags & 0x80),
            bool(flags & 0x40),
            cur.u8(),
            cur.u8(),
            cur.u8(),
            cur.u32(),
            cur.u32(),
            cur.u32(),
            cur.u32(),
            cur.u32(),
        )


@dataclass(frozen=True, slots=True)
class UHFBandCapabilities:
    """UHFBandCapabilities: power table, frequencies and Gen2 RF modes."""

    power_table: tuple[TransmitPowerLevelTableEntry, ...]
    frequency_information: FrequencyInformation
    rf_modes: tuple[UHFC1G2RFModeTableEntry, ...]

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.UHF_BAND_CAPABILITIES,
            many(self.power_table),
            self.frequency_information.encode(),
            tlv(P.UHF_C1G2_RF_MODE_TABLE, many(self.rf_modes)),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        params = raw.cursor().params()
        power = tuple(
            TransmitPowerLevelTableEntry.decode(p)
            for p in params.many(P.TRANSMIT_POWER_LEVEL_TABLE_ENTRY)
        )
        freq = FrequencyInformation.decode(params.one(P.FREQUENCY_INFORMATION))
        modes: list[UHFC1G2RFModeTableEntry] = []
        for table in params.many(P.UHF_C1G2_RF_MODE_TABLE):
            entries = table.cursor().params()
            modes.extend(
                UHFC1G2RFModeTableEntry.decode(p)
                for p in entries.many(P.UHF_C1G2_RF_MODE_TABLE_ENTRY)
            )
            entries.finish()
        params.finish()
        return cls(power, freq, tuple(modes))


@dataclass(frozen=True, slots=True)
class RegulatoryCapabilities:
    """RegulatoryCapabilities: country (ISO 3166 numeric), standard and UHF band."""

    country_code: int
    communications_standard: int
    uhf_band: UHFBandCapabilities | None = None

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.REGULATORY_CAPABILITIES,
            struct.pack(">HH", self.country_code, self.communications_standard),
            opt(self.uhf_band),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        country, standard = cur.u16(), cur.u16()
        params = cur.params()
        band = params.opt(P.UHF_BAND_CAPABILITIES)
        params.finish()
        return cls(country, standard, UHFBandCapabilities.decode(band) if band else None)


@dataclass(frozen=True, slots=True)
class C1G2LLRPCapabilities:
    """C1G2LLRPCapabilities: Gen2 features of the reader."""

    can_block_erase: bool = False
    can_block_write: bool = False
    max_select_filters: int = 2

    def encode(self) -> bytes:
        """Encode the parameter."""
        flags = (int(self.can_block_erase) << 7) | (int(self.can_block_write) << 6)
        return tlv(P.C1G2_LLRP_CAPABILITIES, struct.pack(">BH", flags, self.max_select_filters))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        flags = cur.u8()
        return cls(bool(flags & 0x80), bool(flags & 0x40), cur.u16())
