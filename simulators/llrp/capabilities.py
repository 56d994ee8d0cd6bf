"""What the simulated reader says about itself: capabilities and factory configuration."""

from __future__ import annotations

from typing import Final

from drivers.llrp.codec import (
    C1G2LLRPCapabilities,
    FrequencyHopTable,
    FrequencyInformation,
    GeneralDeviceCapabilities,
    GetReaderCapabilitiesResponse,
    LLRPCapabilities,
    LLRPStatus,
    PerAntennaAirProtocol,
    ReceiveSensitivityTableEntry,
    RegulatoryCapabilities,
    TransmitPowerLevelTableEntry,
    UHFBandCapabilities,
    UHFC1G2RFModeTableEntry,
)
from simulators.scene import ReaderSpec

#: FCC part 15 hop table: 50 channels, 902.75-927.25 MHz (kHz).
HOP_TABLE_KHZ: Final = tuple(902_750 + 500 * i for i in range(50))

#: Gen2 RF modes, loosely after common reader mode tables (Tari in ns, rates in bps).
RF_MODES: Final = (
    UHFC1G2RFModeTableEntry(0, True, True, 0, 2, 3, 640_000, 1500, 6250, 6250, 0),
    UHFC1G2RFModeTableEntry(1, True, True, 1, 2, 3, 640_000, 1500, 6250, 6250, 0),
    UHFC1G2RFModeTableEntry(2, True, True, 2, 2, 3, 274_000, 2000, 20000, 20000, 0),
    UHFC1G2RFModeTableEntry(3, True, True, 3, 2, 3, 170_600, 2000, 20000, 20000, 0),
    UHFC1G2RFModeTableEntry(4, True, True, 2, 2, 3, 640_000, 1500, 7140, 7140, 0),
    UHFC1G2RFModeTableEntry(1000, True, True, 0, 2, 3, 40_000, 1500, 6250, 25000, 0),
)

MAX_ROSPECS: Final = 8
MAX_ACCESS_SPECS: Final = 8
MAX_AISPECS: Final = 8


def power_levels(spec: ReaderSpec) -> list[float]:
    """Transmit power of each table index, dBm (index 1 is the first element)."""
    count = round((spec.max_power_dbm - spec.min_power_dbm) / spec.power_step_db) + 1
    return [round(spec.min_power_dbm + i * spec.power_step_db, 2) for i in range(max(count, 1))]


def capabilities_response(
    spec: ReaderSpec, msg_id: int, requested: int
) -> GetReaderCapabilitiesResponse:
    """The GET_READER_CAPABILITIES_RESPONSE for ``requested`` (0 all, 1-4 one part)."""
    levels = power_levels(spec)
    general = GeneralDeviceCapabilities(
        max_antennas=spec.antennas,
        can_set_antenna_properties=False,
        has_utc_clock=True,
        manufacturer=spec.manufacturer,
        model=spec.model_number,
        firmware=f"{spec.model} {spec.firmware}",
        receive_sensitivities=(ReceiveSensitivityTableEntry(1, 0),),
        num_gpis=0,
        num_gpos=0,
        air_protocols=tuple(PerAntennaAirProtocol(a) for a in range(1, spec.antennas + 1)),
    )
    llrp = LLRPCapabilities(
        max_priority_levels=8,
        max_rospecs=MAX_ROSPECS,
        max_specs_per_rospec=MAX_AISPECS,
        max_inventory_parameter_specs_per_aispec=1,
        max_access_specs=MAX_ACCESS_SPECS,
        max_op_specs_per_access_spec=1,
    )
    band = UHFBandCapabilities(
        power_table=tuple(
            TransmitPowerLevelTableEntry(i, round(dbm * 100)) for i, dbm in enumerate(levels, 1)
        ),
        frequency_information=FrequencyInformation(
            hopping=True, hop_tables=(FrequencyHopTable(1, HOP_TABLE_KHZ),)
        ),
        rf_modes=RF_MODES,
    )
    regulatory = RegulatoryCapabilities(country_code=840, communications_standard=1, uhf_band=band)
    c1g2 = C1G2LLRPCapabilities(can_block_erase=False, can_block_write=False, max_select_filters=2)
    return GetReaderCapabilitiesResponse(
        msg_id,
        LLRPStatus(),
        general if requested in (0, 1) else None,
        llrp if requested in (0, 2) else None,
        regulatory if requested in (0, 3) else None,
        c1g2 if requested in (0, 4) else None,
    )
