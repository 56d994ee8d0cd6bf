"""The messages pinned by golden vectors, built with our codec.

``tools/make_llrp_golden.py`` builds the same messages with pyllrp (an independent LLRP
implementation) and writes their bytes to ``tests/drivers/llrp/golden/<name>.hex``; the tests check
that our codec produces exactly those bytes and that both codecs decode them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from drivers.llrp import codec as c
from simulators.llrp.capabilities import capabilities_response
from simulators.scene import ReaderSpec

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"

EPC1 = bytes.fromhex("3034257bf7194e4000003039")
EPC2 = bytes.fromhex("3034257bf7194e4000000001")
EPC128 = bytes.fromhex("e2801160600002054cc2096f00000001")

OK = c.LLRPStatus()

SELECTOR_SLLURP = c.TagReportContentSelector(
    enable_rospec_id=True,
    enable_antenna_id=True,
    enable_peak_rssi=True,
    enable_first_seen=True,
    enable_last_seen=True,
    enable_tag_seen_count=True,
    memory_selector=True,
)

INVENTORY_COMMAND = c.C1G2InventoryCommand(
    state_aware=False, singulation_control=c.C1G2SingulationControl(2, 4, 0)
)

ROSPEC_SLLURP = c.ROSpec(
    rospec_id=1,
    priority=0,
    state=c.ROSpecState.DISABLED,
    boundary=c.ROBoundarySpec(
        c.ROSpecStartTrigger(c.ROSpecStartTriggerType.IMMEDIATE),
        c.ROSpecStopTrigger(c.ROSpecStopTriggerType.NULL, 0),
    ),
    specs=(
        c.AISpec(
            antenna_ids=(1, 2),
            stop_trigger=c.AISpecStopTrigger(
                c.AISpecStopTriggerType.TAG_OBSERVATION,
                0,
                tag_observation=c.TagObservationTrigger(0, 50, 0, 0, 500),
            ),
            inventory_parameter_specs=(
                c.InventoryParameterSpec(
                    1,
                    1,
                    tuple(
                        c.AntennaConfiguration(
                            ant, None, c.RFTransmitter(1, 1, 91), (INVENTORY_COMMAND,)
                        )
                        for ant in (1, 2)
                    ),
                ),
            ),
        ),
    ),
    report_spec=c.ROReportSpec(
        c.ROReportTriggerType.UPON_N_TAGS_OR_END_OF_AISPEC, 0, SELECTOR_SLLURP
    ),
)

ROSPEC_PERIODIC = c.ROSpec(
    rospec_id=77,
    priority=3,
    state=c.ROSpecState.DISABLED,
    boundary=c.ROBoundarySpec(
        c.ROSpecStartTrigger(c.ROSpecStartTriggerType.PERIODIC, c.PeriodicTriggerValue(100, 2000)),
        c.ROSpecStopTrigger(c.ROSpecStopTriggerType.DURATION, 1500),
    ),
    specs=(
        c.AISpec((0,), c.AISpecStopTrigger(c.AISpecStopTriggerType.DURATION, 500)),
        c.AISpec((3,), c.AISpecStopTrigger(c.AISpecStopTriggerType.NULL, 0)),
    ),
    report_spec=c.ROReportSpec(
        c.ROReportTriggerType.NONE,
        0,
        c.TagReportContentSelector(enable_spec_index=True, enable_channel_index=True),
    ),
)

ACCESS_SPEC = c.AccessSpec(
    access_spec_id=7,
    antenna_id=0,
    protocol_id=1,
    enabled=False,
    rospec_id=0,
    stop_trigger_type=1,
    operation_count=3,
    command=c.AccessCommand(
        targets=(c.C1G2TargetTag(1, True, 32, 16, b"\xff\xff", 16, b"\x30\x34"),),
        op_specs=(c.C1G2Read(1, 0, 2, 0, 6),),
    ),
    report_spec=c.AccessReportSpec(1),
)

ALL_EVENTS_OFF = c.ReaderEventNotificationSpec(
    tuple(c.EventNotificationState(kind, False) for kind in c.NotificationEventType)
)

ANTENNA_CONFIG_FULL = c.AntennaConfiguration(
    0,
    c.RFReceiver(1),
    c.RFTransmitter(1, 1, 91),
    (
        c.C1G2InventoryCommand(
            False, (), c.C1G2RFControl(1000, 0), c.C1G2SingulationControl(2, 32, 0)
        ),
    ),
)

REPORT_TAGS = (
    c.TagReportData(
        EPC1,
        rospec_id=1,
        spec_index=1,
        inventory_parameter_spec_id=1,
        antenna_id=1,
        peak_rssi=-52,
        channel_index=7,
        first_seen_utc=1_700_000_000_000_001,
        last_seen_utc=1_700_000_000_500_002,
        tag_seen_count=12,
        pc_bits=0x3000,
        crc=0xBEEF,
        access_spec_id=7,
    ),
    c.TagReportData(EPC128, antenna_id=2, peak_rssi=-71, tag_seen_count=1),
    c.TagReportData(EPC2),
)

#: Reads the fast encoder turns into the ``ro_access_report_fast`` vector.
FAST_READS: tuple[c.TagRead, ...] = (
    (EPC1, 1, -52, 1_700_000_000_000_001, 1_700_000_000_500_002, 12),
    (EPC128, 2, -71, 1_700_000_000_100_000, 1_700_000_000_100_000, 1),
)
FAST_SELECTOR = SELECTOR_SLLURP


def _event(msg_id: int, **kwargs: object) -> c.ReaderEventNotification:
    data = c.ReaderEventNotificationData(1_700_000_000_000_000, **kwargs)  # type: ignore[arg-type]
    return c.ReaderEventNotification(msg_id, data)


def cases() -> dict[str, c.Message]:
    """Every golden case: file stem -> message."""
    error = c.LLRPStatus(
        c.StatusCode.M_PARAMETER_ERROR,
        "bad ROSpec",
        parameter_error=c.ParameterError(
            177, c.StatusCode.P_FIELD_ERROR, c.FieldError(0, c.StatusCode.A_INVALID)
        ),
    )
    active = dataclasses.replace(ROSPEC_SLLURP, state=c.ROSpecState.ACTIVE)
    fast = c.ROAccessReport(
        99,
        tuple(
            c.TagReportData(
                epc,
                rospec_id=1,
                antenna_id=ant,
                peak_rssi=rssi,
                first_seen_utc=first,
                last_seen_utc=last,
                tag_seen_count=count,
            )
            for epc, ant, rssi, first, last, count in FAST_READS
        ),
    )
    return {
        "get_reader_capabilities": c.GetReaderCapabilities(1, 0),
        "get_reader_capabilities_response": capabilities_response(ReaderSpec(), 1, 0),
        "get_reader_config": c.GetReaderConfig(2, 0, 0, 0, 0),
        "get_reader_config_response": c.GetReaderConfigResponse(
            2,
            OK,
            c.ReaderConfig(
                identification=c.Identification(0, bytes.fromhex("020000000001")),
                antenna_properties=(
                    c.AntennaProperties(1, True, 0),
                    c.AntennaProperties(2, False, -5),
                ),
                antenna_configurations=(ANTENNA_CONFIG_FULL,),
                event_spec=ALL_EVENTS_OFF,
                ro_report_spec=c.ROReportSpec(2, 0, SELECTOR_SLLURP),
                config_state_value=3,
                keepalive=c.KeepaliveSpec(1, 10_000),
                events_and_reports=c.EventsAndReports(False),
            ),
        ),
        "set_reader_config": c.SetReaderConfig(
            3,
            False,
            c.ReaderConfig(event_spec=ALL_EVENTS_OFF, keepalive=c.KeepaliveSpec(1, 60_000)),
        ),
        "set_reader_config_reset": c.SetReaderConfig(
            4,
            True,
            c.ReaderConfig(
                antenna_configurations=(ANTENNA_CONFIG_FULL,),
                ro_report_spec=c.ROReportSpec(1, 10, SELECTOR_SLLURP),
                events_and_reports=c.EventsAndReports(True),
            ),
        ),
        "set_reader_config_response": c.SetReaderConfigResponse(3, OK),
        "close_connection": c.CloseConnection(5),
        "close_connection_response": c.CloseConnectionResponse(5, OK),
        "add_rospec": c.AddROSpec(6, ROSPEC_SLLURP),
        "add_rospec_periodic": c.AddROSpec(7, ROSPEC_PERIODIC),
        "add_rospec_response": c.AddROSpecResponse(6, OK),
        "add_rospec_response_error": c.AddROSpecResponse(7, error),
        "delete_rospec": c.DeleteROSpec(8, 0),
        "delete_rospec_response": c.DeleteROSpecResponse(8, OK),
        "start_rospec": c.StartROSpec(9, 1),
        "start_rospec_response": c.StartROSpecResponse(9, OK),
        "stop_rospec": c.StopROSpec(10, 1),
        "stop_rospec_response": c.StopROSpecResponse(10, OK),
        "enable_rospec": c.EnableROSpec(11, 1),
        "enable_rospec_response": c.EnableROSpecResponse(11, OK),
        "disable_rospec": c.DisableROSpec(12, 1),
        "disable_rospec_response": c.DisableROSpecResponse(12, OK),
        "get_rospecs": c.GetROSpecs(13),
        "get_rospecs_response": c.GetROSpecsResponse(13, OK, (active,)),
        "add_accessspec": c.AddAccessSpec(14, ACCESS_SPEC),
        "add_accessspec_response": c.AddAccessSpecResponse(14, OK),
        "delete_accessspec": c.DeleteAccessSpec(15, 0),
        "delete_accessspec_response": c.DeleteAccessSpecResponse(15, OK),
        "enable_accessspec": c.EnableAccessSpec(16, 7),
        "enable_accessspec_response": c.EnableAccessSpecResponse(16, OK),
        "disable_accessspec": c.DisableAccessSpec(17, 7),
        "disable_accessspec_response": c.DisableAccessSpecResponse(17, OK),
        "get_accessspecs": c.GetAccessSpecs(18),
        "get_accessspecs_response": c.GetAccessSpecsResponse(18, OK, (ACCESS_SPEC,)),
        "get_report": c.GetReport(19),
        "ro_access_report": c.ROAccessReport(20, REPORT_TAGS),
        "ro_access_report_fast": fast,
        "keepalive": c.Keepalive(21),
        "keepalive_ack": c.KeepaliveAck(21),
        "enable_events_and_reports": c.EnableEventsAndReports(22),
        "reader_event_connection": _event(23, connection_attempt=0),
        "reader_event_rejected": _event(24, connection_attempt=2),
        "reader_event_rospec": _event(25, rospec_event=c.ROSpecEvent(0, 1, 0)),
        "reader_event_aispec": _event(26, aispec_event=c.AISpecEvent(0, 1, 1)),
        "error_message": c.ErrorMessage(
            27, c.LLRPStatus(c.StatusCode.M_UNSUPPORTED_MESSAGE, "unsupported message type 1023")
        ),
    }


def golden_path(name: str) -> Path:
    """Where the vector of a case lives."""
    return GOLDEN_DIR / f"{name}.hex"


def golden_bytes(name: str) -> bytes:
    """The vector of a case."""
    return bytes.fromhex(golden_path(name).read_text().strip())
