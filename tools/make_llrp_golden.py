"""Write the LLRP golden vectors with pyllrp, an independent LLRP implementation.

Each case below builds, with pyllrp's classes, the message that ``tests/drivers/llrp/llrp_cases.py``
builds with our codec. The bytes pyllrp packs go to ``tests/drivers/llrp/golden/<name>.hex``.

Run: ``.venv/bin/python tools/make_llrp_golden.py`` (needs the dev extra: pyllrp, bitstring<4.3).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bitstring
from pyllrp import pyllrp as L  # noqa: N812 - reads like the LLRP spec

OUT = Path(__file__).resolve().parent.parent / "tests" / "drivers" / "llrp" / "golden"

EPC1 = bytes.fromhex("3034257bf7194e4000003039")
EPC2 = bytes.fromhex("3034257bf7194e4000000001")
EPC128 = bytes.fromhex("e2801160600002054cc2096f00000001")
T0 = 1_700_000_000_000_000


def ok() -> Any:
    return L.LLRPStatus_Parameter(StatusCode=0, ErrorDescription="")


def selector_sllurp() -> Any:
    return L.TagReportContentSelector_Parameter(
        EnableROSpecID=True,
        EnableAntennaID=True,
        EnablePeakRSSI=True,
        EnableFirstSeenTimestamp=True,
        EnableLastSeenTimestamp=True,
        EnableTagSeenCount=True,
        Parameters=[L.C1G2EPCMemorySelector_Parameter(EnableCRC=False, EnablePCBits=False)],
    )


def rospec_sllurp(state: int = 0) -> Any:
    antenna_configs = [
        L.AntennaConfiguration_Parameter(
            AntennaID=ant,
            Parameters=[
                L.RFTransmitter_Parameter(HopTableID=1, ChannelIndex=1, TransmitPower=91),
                L.C1G2InventoryCommand_Parameter(
                    TagInventoryStateAware=False,
                    Parameters=[
                        L.C1G2SingulationControl_Parameter(
                            Session=2, TagPopulation=4, TagTransitTime=0
                        )
                    ],
                ),
            ],
        )
        for ant in (1, 2)
    ]
    return L.ROSpec_Parameter(
        ROSpecID=1,
        Priority=0,
        CurrentState=state,
        Parameters=[
            L.ROBoundarySpec_Parameter(
                Parameters=[
                    L.ROSpecStartTrigger_Parameter(ROSpecStartTriggerType=1),
                    L.ROSpecStopTrigger_Parameter(ROSpecStopTriggerType=0, DurationTriggerValue=0),
                ]
            ),
            L.AISpec_Parameter(
                AntennaIDs=[1, 2],
                Parameters=[
                    L.AISpecStopTrigger_Parameter(
                        AISpecStopTriggerType=3,
                        DurationTrigger=0,
                        Parameters=[
                            L.TagObservationTrigger_Parameter(
                                TriggerType=0, NumberOfTags=50, NumberOfAttempts=0, T=0, Timeout=500
                            )
                        ],
                    ),
                    L.InventoryParameterSpec_Parameter(
                        InventoryParameterSpecID=1, ProtocolID=1, Parameters=antenna_configs
                    ),
                ],
            ),
            L.ROReportSpec_Parameter(ROReportTrigger=1, N=0, Parameters=[selector_sllurp()]),
        ],
    )


def rospec_periodic() -> Any:
    return L.ROSpec_Parameter(
        ROSpecID=77,
        Priority=3,
        CurrentState=0,
        Parameters=[
            L.ROBoundarySpec_Parameter(
                Parameters=[
                    L.ROSpecStartTrigger_Parameter(
                        ROSpecStartTriggerType=2,
                        Parameters=[L.PeriodicTriggerValue_Parameter(Offset=100, Period=2000)],
                    ),
                    L.ROSpecStopTrigger_Parameter(
                        ROSpecStopTriggerType=1, DurationTriggerValue=1500
                    ),
                ]
            ),
            L.AISpec_Parameter(
                AntennaIDs=[0],
                Parameters=[
                    L.AISpecStopTrigger_Parameter(AISpecStopTriggerType=1, DurationTrigger=500),
                    L.InventoryParameterSpec_Parameter(InventoryParameterSpecID=1, ProtocolID=1),
                ],
            ),
            L.AISpec_Parameter(
                AntennaIDs=[3],
                Parameters=[
                    L.AISpecStopTrigger_Parameter(AISpecStopTriggerType=0, DurationTrigger=0),
                    L.InventoryParameterSpec_Parameter(InventoryParameterSpecID=1, ProtocolID=1),
                ],
            ),
            L.ROReportSpec_Parameter(
                ROReportTrigger=0,
                N=0,
                Parameters=[
                    L.TagReportContentSelector_Parameter(
                        EnableSpecIndex=True, EnableChannelIndex=True
                    )
                ],
            ),
        ],
    )


def access_spec() -> Any:
    return L.AccessSpec_Parameter(
        AccessSpecID=7,
        AntennaID=0,
        ProtocolID=1,
        CurrentState=False,
        ROSpecID=0,
        Parameters=[
            L.AccessSpecStopTrigger_Parameter(AccessSpecStopTrigger=1, OperationCountValue=3),
            L.AccessCommand_Parameter(
                Parameters=[
                    L.C1G2TagSpec_Parameter(
                        Parameters=[
                            L.C1G2TargetTag_Parameter(
                                MB=1,
                                Match=True,
                                Pointer=32,
                                TagMask=b"\xff\xff",
                                TagData=b"\x30\x34",
                            )
                        ]
                    ),
                    L.C1G2Read_Parameter(
                        OpSpecID=1, AccessPassword=0, MB=2, WordPointer=0, WordCount=6
                    ),
                ]
            ),
            L.AccessReportSpec_Parameter(AccessReportTrigger=1),
        ],
    )


def all_events_off() -> Any:
    return L.ReaderEventNotificationSpec_Parameter(
        Parameters=[
            L.EventNotificationState_Parameter(EventType=k, NotificationState=False)
            for k in range(9)
        ]
    )


def antenna_config_full() -> Any:
    return L.AntennaConfiguration_Parameter(
        AntennaID=0,
        Parameters=[
            L.RFReceiver_Parameter(ReceiverSensitivity=1),
            L.RFTransmitter_Parameter(HopTableID=1, ChannelIndex=1, TransmitPower=91),
            L.C1G2InventoryCommand_Parameter(
                TagInventoryStateAware=False,
                Parameters=[
                    L.C1G2RFControl_Parameter(ModeIndex=1000, Tari=0),
                    L.C1G2SingulationControl_Parameter(
                        Session=2, TagPopulation=32, TagTransitTime=0
                    ),
                ],
            ),
        ],
    )


def capabilities_response() -> Any:
    """The simulator's default capabilities (ReaderSpec defaults), built independently."""
    power = [
        L.TransmitPowerLevelTableEntry_Parameter(Index=i + 1, TransmitPowerValue=1000 + 25 * i)
        for i in range(91)
    ]
    modes = [
        (0, 0, 2, 3, 640000, 1500, 6250, 6250),
        (1, 1, 2, 3, 640000, 1500, 6250, 6250),
        (2, 2, 2, 3, 274000, 2000, 20000, 20000),
        (3, 3, 2, 3, 170600, 2000, 20000, 20000),
        (4, 2, 2, 3, 640000, 1500, 7140, 7140),
        (1000, 0, 2, 3, 40000, 1500, 6250, 25000),
    ]
    mode_entries = [
        L.C1G2UHFRFModeTableEntry_Parameter(
            ModeIdentifier=mid,
            DRValue=True,
            EPCHAGTCConformance=True,
            MValue=m,
            ForwardLinkModulation=flm,
            SpectralMaskIndicator=smi,
            BDRValue=bdr,
            PIEValue=pie,
            MinTariValue=tmin,
            MaxTariValue=tmax,
            StepTariValue=0,
        )
        for mid, m, flm, smi, bdr, pie, tmin, tmax in modes
    ]
    general = L.GeneralDeviceCapabilities_Parameter(
        MaxNumberOfAntennaSupported=4,
        CanSetAntennaProperties=False,
        HasUTCClockCapability=True,
        DeviceManufacturerName=0,
        ModelName=1,
        ReaderFirmwareVersion="edgecount-sim 0.1",
        Parameters=[
            L.ReceiveSensitivityTableEntry_Parameter(Index=1, ReceiveSensitivityValue=0),
            L.GPIOCapabilities_Parameter(NumGPIs=0, NumGPOs=0),
            *[L.PerAntennaAirProtocol_Parameter(AntennaID=a, ProtocolID=[1]) for a in range(1, 5)],
        ],
    )
    llrp = L.LLRPCapabilities_Parameter(
        MaxNumPriorityLevelsSupported=8,
        ClientRequestOpSpecTimeout=0,
        MaxNumROSpecs=8,
        MaxNumSpecsPerROSpec=8,
        MaxNumInventoryParameterSpecsPerAISpec=1,
        MaxNumAccessSpecs=8,
        MaxNumOpSpecsPerAccessSpec=1,
    )
    band = L.UHFBandCapabilities_Parameter(
        Parameters=[
            *power,
            L.FrequencyInformation_Parameter(
                Hopping=True,
                Parameters=[
                    L.FrequencyHopTable_Parameter(
                        HopTableID=1, Frequency=[902750 + 500 * i for i in range(50)]
                    )
                ],
            ),
            L.C1G2UHFRFModeTable_Parameter(Parameters=mode_entries),
        ]
    )
    return L.GET_READER_CAPABILITIES_RESPONSE_Message(
        MessageID=1,
        Parameters=[
            ok(),
            general,
            llrp,
            L.RegulatoryCapabilities_Parameter(
                CountryCode=840, CommunicationsStandard=1, Parameters=[band]
            ),
            L.C1G2LLRPCapabilities_Parameter(
                CanSupportBlockErase=False,
                CanSupportBlockWrite=False,
                MaxNumSelectFiltersPerQuery=2,
            ),
        ],
    )


def reader_config_response() -> Any:
    return L.GET_READER_CONFIG_RESPONSE_Message(
        MessageID=2,
        Parameters=[
            ok(),
            L.Identification_Parameter(IDType=0, ReaderID=[2, 0, 0, 0, 0, 1]),
            L.AntennaProperties_Parameter(AntennaConnected=True, AntennaID=1, AntennaGain=0),
            L.AntennaProperties_Parameter(AntennaConnected=False, AntennaID=2, AntennaGain=-5),
            antenna_config_full(),
            all_events_off(),
            L.ROReportSpec_Parameter(ROReportTrigger=2, N=0, Parameters=[selector_sllurp()]),
            L.LLRPConfigurationStateValue_Parameter(LLRPConfigurationStateValue=3),
            L.KeepaliveSpec_Parameter(KeepaliveTriggerType=1, PeriodicTriggerValue=10000),
            L.EventsAndReports_Parameter(HoldEventsAndReportsUponReconnect=False),
        ],
    )


def report() -> Any:
    full = L.TagReportData_Parameter(
        Parameters=[
            L.EPC_96_Parameter(EPC=int.from_bytes(EPC1)),
            L.ROSpecID_Parameter(ROSpecID=1),
            L.SpecIndex_Parameter(SpecIndex=1),
            L.InventoryParameterSpecID_Parameter(InventoryParameterSpecID=1),
            L.AntennaID_Parameter(AntennaID=1),
            L.PeakRSSI_Parameter(PeakRSSI=-52),
            L.ChannelIndex_Parameter(ChannelIndex=7),
            L.FirstSeenTimestampUTC_Parameter(Microseconds=T0 + 1),
            L.LastSeenTimestampUTC_Parameter(Microseconds=T0 + 500_002),
            L.TagSeenCount_Parameter(TagCount=12),
            L.C1G2_PC_Parameter(PC_Bits=0x3000),
            L.C1G2_CRC_Parameter(CRC=0xBEEF),
            L.AccessSpecID_Parameter(AccessSpecID=7),
        ]
    )
    long_epc = L.TagReportData_Parameter(
        Parameters=[
            L.EPCData_Parameter(EPC=EPC128),
            L.AntennaID_Parameter(AntennaID=2),
            L.PeakRSSI_Parameter(PeakRSSI=-71),
            L.TagSeenCount_Parameter(TagCount=1),
        ]
    )
    minimal = L.TagReportData_Parameter(Parameters=[L.EPC_96_Parameter(EPC=int.from_bytes(EPC2))])
    return L.RO_ACCESS_REPORT_Message(MessageID=20, Parameters=[full, long_epc, minimal])


def report_fast() -> Any:
    def trd(epc_param: Any, *read: int) -> Any:
        ant, rssi, first, last, count = read
        return L.TagReportData_Parameter(
            Parameters=[
                epc_param,
                L.ROSpecID_Parameter(ROSpecID=1),
                L.AntennaID_Parameter(AntennaID=ant),
                L.PeakRSSI_Parameter(PeakRSSI=rssi),
                L.FirstSeenTimestampUTC_Parameter(Microseconds=first),
                L.LastSeenTimestampUTC_Parameter(Microseconds=last),
                L.TagSeenCount_Parameter(TagCount=count),
            ]
        )

    return L.RO_ACCESS_REPORT_Message(
        MessageID=99,
        Parameters=[
            trd(L.EPC_96_Parameter(EPC=int.from_bytes(EPC1)), 1, -52, T0 + 1, T0 + 500_002, 12),
            trd(L.EPCData_Parameter(EPC=EPC128), 2, -71, T0 + 100_000, T0 + 100_000, 1),
        ],
    )


def event(msg_id: int, *events: Any) -> Any:
    return L.READER_EVENT_NOTIFICATION_Message(
        MessageID=msg_id,
        Parameters=[
            L.ReaderEventNotificationData_Parameter(
                Parameters=[L.UTCTimestamp_Parameter(Microseconds=T0), *events]
            )
        ],
    )


def status_response(cls: Callable[..., Any], msg_id: int) -> Any:
    return cls(MessageID=msg_id, Parameters=[ok()])


def cases() -> dict[str, Any]:
    """Every golden case: file stem -> pyllrp message."""
    error = L.LLRPStatus_Parameter(
        StatusCode=100,
        ErrorDescription="bad ROSpec",
        Parameters=[
            L.ParameterError_Parameter(
                ParameterType=177,
                ErrorCode=201,
                Parameters=[L.FieldError_Parameter(FieldNum=0, ErrorCode=300)],
            )
        ],
    )
    return {
        "get_reader_capabilities": L.GET_READER_CAPABILITIES_Message(MessageID=1, RequestedData=0),
        "get_reader_capabilities_response": capabilities_response(),
        "get_reader_config": L.GET_READER_CONFIG_Message(
            MessageID=2, AntennaID=0, RequestedData=0, GPIPortNum=0, GPOPortNum=0
        ),
        "get_reader_config_response": reader_config_response(),
        "set_reader_config": L.SET_READER_CONFIG_Message(
            MessageID=3,
            ResetToFactoryDefault=False,
            Parameters=[
                all_events_off(),
                L.KeepaliveSpec_Parameter(KeepaliveTriggerType=1, PeriodicTriggerValue=60000),
            ],
        ),
        "set_reader_config_reset": L.SET_READER_CONFIG_Message(
            MessageID=4,
            ResetToFactoryDefault=True,
            Parameters=[
                antenna_config_full(),
                L.ROReportSpec_Parameter(ROReportTrigger=1, N=10, Parameters=[selector_sllurp()]),
                L.EventsAndReports_Parameter(HoldEventsAndReportsUponReconnect=True),
            ],
        ),
        "set_reader_config_response": status_response(L.SET_READER_CONFIG_RESPONSE_Message, 3),
        "close_connection": L.CLOSE_CONNECTION_Message(MessageID=5),
        "close_connection_response": status_response(L.CLOSE_CONNECTION_RESPONSE_Message, 5),
        "add_rospec": L.ADD_ROSPEC_Message(MessageID=6, Parameters=[rospec_sllurp()]),
        "add_rospec_periodic": L.ADD_ROSPEC_Message(MessageID=7, Parameters=[rospec_periodic()]),
        "add_rospec_response": status_response(L.ADD_ROSPEC_RESPONSE_Message, 6),
        "add_rospec_response_error": L.ADD_ROSPEC_RESPONSE_Message(MessageID=7, Parameters=[error]),
        "delete_rospec": L.DELETE_ROSPEC_Message(MessageID=8, ROSpecID=0),
        "delete_rospec_response": status_response(L.DELETE_ROSPEC_RESPONSE_Message, 8),
        "start_rospec": L.START_ROSPEC_Message(MessageID=9, ROSpecID=1),
        "start_rospec_response": status_response(L.START_ROSPEC_RESPONSE_Message, 9),
        "stop_rospec": L.STOP_ROSPEC_Message(MessageID=10, ROSpecID=1),
        "stop_rospec_response": status_response(L.STOP_ROSPEC_RESPONSE_Message, 10),
        "enable_rospec": L.ENABLE_ROSPEC_Message(MessageID=11, ROSpecID=1),
        "enable_rospec_response": status_response(L.ENABLE_ROSPEC_RESPONSE_Message, 11),
        "disable_rospec": L.DISABLE_ROSPEC_Message(MessageID=12, ROSpecID=1),
        "disable_rospec_response": status_response(L.DISABLE_ROSPEC_RESPONSE_Message, 12),
        "get_rospecs": L.GET_ROSPECS_Message(MessageID=13),
        "get_rospecs_response": L.GET_ROSPECS_RESPONSE_Message(
            MessageID=13, Parameters=[ok(), rospec_sllurp(state=2)]
        ),
        "add_accessspec": L.ADD_ACCESSSPEC_Message(MessageID=14, Parameters=[access_spec()]),
        "add_accessspec_response": status_response(L.ADD_ACCESSSPEC_RESPONSE_Message, 14),
        "delete_accessspec": L.DELETE_ACCESSSPEC_Message(MessageID=15, AccessSpecID=0),
        "delete_accessspec_response": status_response(L.DELETE_ACCESSSPEC_RESPONSE_Message, 15),
        "enable_accessspec": L.ENABLE_ACCESSSPEC_Message(MessageID=16, AccessSpecID=7),
        "enable_accessspec_response": status_response(L.ENABLE_ACCESSSPEC_RESPONSE_Message, 16),
        "disable_accessspec": L.DISABLE_ACCESSSPEC_Message(MessageID=17, AccessSpecID=7),
        "disable_accessspec_response": status_response(L.DISABLE_ACCESSSPEC_RESPONSE_Message, 17),
        "get_accessspecs": L.GET_ACCESSSPECS_Message(MessageID=18),
        "get_accessspecs_response": L.GET_ACCESSSPECS_RESPONSE_Message(
            MessageID=18, Parameters=[ok(), access_spec()]
        ),
        "get_report": L.GET_REPORT_Message(MessageID=19),
        "ro_access_report": report(),
        "ro_access_report_fast": report_fast(),
        "keepalive": L.KEEPALIVE_Message(MessageID=21),
        "keepalive_ack": L.KEEPALIVE_ACK_Message(MessageID=21),
        "enable_events_and_reports": L.ENABLE_EVENTS_AND_REPORTS_Message(MessageID=22),
        "reader_event_connection": event(23, L.ConnectionAttemptEvent_Parameter(Status=0)),
        "reader_event_rejected": event(24, L.ConnectionAttemptEvent_Parameter(Status=2)),
        "reader_event_rospec": event(
            25, L.ROSpecEvent_Parameter(EventType=0, ROSpecID=1, PreemptingROSpecID=0)
        ),
        "reader_event_aispec": event(
            26, L.AISpecEvent_Parameter(EventType=0, ROSpecID=1, SpecIndex=1)
        ),
        "error_message": L.ERROR_MESSAGE_Message(
            MessageID=27,
            Parameters=[
                L.LLRPStatus_Parameter(
                    StatusCode=109, ErrorDescription="unsupported message type 1023"
                )
            ],
        ),
    }


def pack(message: Any) -> bytes:
    """pyllrp's encoding of a message."""
    data: bytes = message.pack(bitstring.BitStream()).tobytes()
    return data


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, message in cases().items():
        (OUT / f"{name}.hex").write_text(pack(message).hex() + "\n")
    print(f"wrote {len(cases())} vectors to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
