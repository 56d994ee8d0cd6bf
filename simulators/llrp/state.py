"""Reader configuration state of the simulator and validation of what clients send.

Validation functions return ``None`` when a value is acceptable, else the
:class:`LLRPStatus` a reader would answer with.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from drivers.llrp.codec import (
    AccessReportSpec,
    AccessSpec,
    AISpec,
    AISpecStopTriggerType,
    AntennaConfiguration,
    AntennaProperties,
    C1G2InventoryCommand,
    C1G2SingulationControl,
    EventNotificationState,
    EventsAndReports,
    FieldError,
    GetReaderConfigRequestedData,
    Identification,
    KeepaliveSpec,
    KeepaliveTriggerType,
    LLRPStatus,
    NotificationEventType,
    ParameterError,
    ParamType,
    ReaderConfig,
    ReaderEventNotificationSpec,
    RFReceiver,
    RFTransmitter,
    ROReportSpec,
    ROReportTriggerType,
    ROSpec,
    ROSpecStartTriggerType,
    ROSpecState,
    ROSpecStopTriggerType,
    StatusCode,
    TagObservationTriggerType,
    TagReportContentSelector,
)
from simulators.llrp.capabilities import MAX_AISPECS, RF_MODES, power_levels
from simulators.scene import ReaderSpec

R = GetReaderConfigRequestedData

#: The report spec a factory-fresh reader uses for ROSpecs without their own.
DEFAULT_RO_REPORT_SPEC = ROReportSpec(
    trigger=ROReportTriggerType.UPON_N_TAGS_OR_END_OF_ROSPEC,
    n=0,
    selector=TagReportContentSelector(
        enable_antenna_id=True,
        enable_peak_rssi=True,
        enable_first_seen=True,
        enable_last_seen=True,
        enable_tag_seen_count=True,
    ),
)


def param_error(
    ptype: int, code: StatusCode, text: str, *, field_num: int | None = None
) -> LLRPStatus:
    """An M_ParameterError status naming the parameter (and field) at fault."""
    fe = FieldError(field_num, code) if field_num is not None else None
    return LLRPStatus(
        StatusCode.M_PARAMETER_ERROR,
        text,
        parameter_error=ParameterError(ptype, StatusCode.P_FIELD_ERROR if fe else code, fe),
    )


def field_error(field_num: int, code: StatusCode, text: str) -> LLRPStatus:
    """An M_FieldError status naming the message field at fault."""
    return LLRPStatus(StatusCode.M_FIELD_ERROR, text, FieldError(field_num, code))


@dataclass(slots=True)
class ReaderSettings:
    """Everything SET_READER_CONFIG can change, with factory defaults."""

    spec: ReaderSpec
    keepalive: KeepaliveSpec = field(default_factory=KeepaliveSpec)
    events: dict[int, bool] = field(default_factory=dict)
    antenna_configs: dict[int, AntennaConfiguration] = field(default_factory=dict)
    ro_report_spec: ROReportSpec = DEFAULT_RO_REPORT_SPEC
    access_report_trigger: int = 0
    hold_events: bool = False
    config_state: int = 0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to factory defaults: no keepalives, no optional events, full power."""
        self.keepalive = KeepaliveSpec(KeepaliveTriggerType.NULL, 0)
        self.events = {int(kind): False for kind in NotificationEventType}
        levels = len(power_levels(self.spec))
        self.antenna_configs = {
            antenna: AntennaConfiguration(
                antenna,
                RFReceiver(1),
                RFTransmitter(1, 1, levels),
                (C1G2InventoryCommand(False, (), None, C1G2SingulationControl(2, 32, 0)),),
            )
            for antenna in range(1, self.spec.antennas + 1)
        }
        self.ro_report_spec = DEFAULT_RO_REPORT_SPEC
        self.access_report_trigger = 0
        self.hold_events = False
        self.config_state += 1

    def event_enabled(self, kind: NotificationEventType) -> bool:
        """Whether the client asked to be notified of this kind of event."""
        return self.events.get(int(kind), False)

    def tx_power_dbm(self, antenna: int, override: AntennaConfiguration | None = None) -> float:
        """Transmit power of an antenna (an ROSpec's configuration overrides the reader's)."""
        levels = power_levels(self.spec)
        config = override if override is not None else self.antenna_configs.get(antenna)
        if config is None or config.rf_transmitter is None:
            config = self.antenna_configs.get(antenna)
        index = (
            config.rf_transmitter.transmit_power
            if config and config.rf_transmitter
            else len(levels)
        )
        return levels[min(max(index, 1), len(levels)) - 1]

    def apply(self, config: ReaderConfig) -> None:
        """Apply a validated SET_READER_CONFIG (see :func:`check_reader_config`)."""
        if config.keepalive is not None:
            self.keepalive = config.keepalive
        if config.event_spec is not None:
            for state in config.event_spec.states:
                self.events[state.event_type] = state.enabled
        for antenna_config in config.antenna_configurations:
            targets = (
                range(1, self.spec.antennas + 1)
                if antenna_config.antenna_id == 0
                else (antenna_config.antenna_id,)
            )
            for antenna in targets:
                self.antenna_configs[antenna] = merge_antenna_config(
                    self.antenna_configs[antenna], antenna_config, antenna
                )
        if config.ro_report_spec is not None:
            self.ro_report_spec = config.ro_report_spec
        if config.access_report_spec is not None:
            self.access_report_trigger = config.access_report_spec.trigger
        if config.events_and_reports is not None:
            self.hold_events = config.events_and_reports.hold
        self.config_state += 1

    def snapshot(self, requested: int, antenna_id: int) -> ReaderConfig:
        """The configuration GET_READER_CONFIG returns for ``requested`` and ``antenna_id``."""

        def want(part: R) -> bool:
            return requested in (R.ALL, part)

        antennas = range(1, self.spec.antennas + 1) if antenna_id == 0 else (antenna_id,)
        mac = bytes.fromhex(self.spec.mac.replace(":", ""))
        return ReaderConfig(
            identification=Identification(0, mac) if want(R.IDENTIFICATION) else None,
            antenna_properties=tuple(AntennaProperties(a, True, 0) for a in antennas)
            if want(R.ANTENNA_PROPERTIES)
            else (),
            antenna_configurations=tuple(self.antenna_configs[a] for a in antennas)
            if want(R.ANTENNA_CONFIGURATION)
            else (),
            event_spec=ReaderEventNotificationSpec(
                tuple(EventNotificationState(k, v) for k, v in sorted(self.events.items()))
            )
            if want(R.READER_EVENT_NOTIFICATION_SPEC)
            else None,
            ro_report_spec=self.ro_report_spec if want(R.RO_REPORT_SPEC) else None,
            access_report_spec=AccessReportSpec(self.access_report_trigger)
            if want(R.ACCESS_REPORT_SPEC)
            else None,
            config_state_value=self.config_state
            if want(R.LLRP_CONFIGURATION_STATE_VALUE)
            else None,
            keepalive=self.keepalive if want(R.KEEPALIVE_SPEC) else None,
            events_and_reports=EventsAndReports(self.hold_events)
            if want(R.EVENTS_AND_REPORTS)
            else None,
        )


def merge_antenna_config(
    old: AntennaConfiguration, new: AntennaConfiguration, antenna: int
) -> AntennaConfiguration:
    """Overlay the parts present in ``new`` on ``old`` for one antenna."""
    return AntennaConfiguration(
        antenna,
        new.rf_receiver or old.rf_receiver,
        new.rf_transmitter or old.rf_transmitter,
        new.inventory_commands or old.inventory_commands,
    )


def _antenna_config_problems(
    spec: ReaderSpec, config: AntennaConfiguration
) -> Iterator[LLRPStatus]:
    """Validate one AntennaConfiguration against the reader's capabilities."""
    ptype = ParamType.ANTENNA_CONFIGURATION
    if config.antenna_id > spec.antennas:
        yield param_error(
            ptype, StatusCode.A_OUT_OF_RANGE, f"no antenna {config.antenna_id}", field_num=0
        )
    tx = config.rf_transmitter
    if tx is not None:
        levels = len(power_levels(spec))
        if not 1 <= tx.transmit_power <= levels:
            yield param_error(
                ParamType.RF_TRANSMITTER,
                StatusCode.A_OUT_OF_RANGE,
                f"TransmitPower index {tx.transmit_power} not in 1..{levels}",
                field_num=2,
            )
        if tx.hop_table_id != 1:
            yield param_error(
                ParamType.RF_TRANSMITTER,
                StatusCode.A_OUT_OF_RANGE,
                "HopTableID must be 1",
                field_num=0,
            )
    if config.rf_receiver is not None and config.rf_receiver.sensitivity != 1:
        yield param_error(
            ParamType.RF_RECEIVER,
            StatusCode.A_OUT_OF_RANGE,
            "ReceiverSensitivity index must be 1",
            field_num=0,
        )
    modes = {mode.mode_id for mode in RF_MODES} | set(range(len(RF_MODES)))
    for command in config.inventory_commands:
        if command.rf_control is not None and command.rf_control.mode_index not in modes:
            yield param_error(
                ParamType.C1G2_RF_CONTROL,
                StatusCode.A_OUT_OF_RANGE,
                f"unknown ModeIndex {command.rf_control.mode_index}",
                field_num=0,
            )


def _reader_config_problems(spec: ReaderSpec, config: ReaderConfig) -> Iterator[LLRPStatus]:
    """Validate SET_READER_CONFIG parameters."""
    keepalive = config.keepalive
    if keepalive is not None:
        if keepalive.trigger_type not in (0, 1):
            yield param_error(
                ParamType.KEEPALIVE_SPEC, StatusCode.A_OUT_OF_RANGE, "bad trigger", field_num=0
            )
        if keepalive.trigger_type == KeepaliveTriggerType.PERIODIC and keepalive.interval_ms == 0:
            yield param_error(
                ParamType.KEEPALIVE_SPEC,
                StatusCode.A_OUT_OF_RANGE,
                "periodic keepalive of 0 ms",
                field_num=1,
            )
    if config.event_spec is not None:
        for state in config.event_spec.states:
            if state.event_type > max(NotificationEventType):
                yield param_error(
                    ParamType.EVENT_NOTIFICATION_STATE,
                    StatusCode.A_OUT_OF_RANGE,
                    f"unknown event type {state.event_type}",
                    field_num=0,
                )
    for antenna_config in config.antenna_configurations:
        yield from _antenna_config_problems(spec, antenna_config)
    if config.gpi_states or config.gpo_write_data:
        yield param_error(
            ParamType.GPI_PORT_CURRENT_STATE, StatusCode.P_UNSUPPORTED_PARAMETER, "no GPIO"
        )
    if config.ro_report_spec is not None:
        yield from _report_spec_problems(config.ro_report_spec)


def _report_spec_problems(spec: ROReportSpec) -> Iterator[LLRPStatus]:
    """Validate an ROReportSpec."""
    if spec.trigger > ROReportTriggerType.UPON_N_TAGS_OR_END_OF_ROSPEC:
        yield param_error(
            ParamType.RO_REPORT_SPEC, StatusCode.A_OUT_OF_RANGE, "bad ROReportTrigger", field_num=0
        )


def _aispec_problems(spec: ReaderSpec, aispec: AISpec) -> Iterator[LLRPStatus]:
    """Validate an AISpec: antennas, stop trigger, protocol, antenna configurations."""
    if not aispec.antenna_ids or any(a > spec.antennas for a in aispec.antenna_ids):
        yield param_error(
            ParamType.AI_SPEC,
            StatusCode.A_OUT_OF_RANGE,
            f"bad AntennaIDs {aispec.antenna_ids}",
            field_num=0,
        )
    stop = aispec.stop_trigger
    kind = stop.trigger_type
    if kind == AISpecStopTriggerType.GPI_WITH_TIMEOUT:
        yield param_error(
            ParamType.AI_SPEC_STOP_TRIGGER, StatusCode.A_INVALID, "no GPIs", field_num=0
        )
    if kind > AISpecStopTriggerType.TAG_OBSERVATION:
        yield param_error(
            ParamType.AI_SPEC_STOP_TRIGGER, StatusCode.A_OUT_OF_RANGE, "bad trigger", field_num=0
        )
    if kind == AISpecStopTriggerType.DURATION and stop.duration_ms == 0:
        yield param_error(
            ParamType.AI_SPEC_STOP_TRIGGER, StatusCode.A_OUT_OF_RANGE, "duration 0", field_num=1
        )
    if kind == AISpecStopTriggerType.TAG_OBSERVATION:
        obs = stop.tag_observation
        if obs is None:
            yield param_error(
                ParamType.AI_SPEC_STOP_TRIGGER,
                StatusCode.P_MISSING_PARAMETER,
                "TagObservationTrigger missing",
            )
            return
        if obs.trigger_type > TagObservationTriggerType.N_ATTEMPTS_OR_TIMEOUT:
            yield param_error(
                ParamType.TAG_OBSERVATION_TRIGGER,
                StatusCode.A_OUT_OF_RANGE,
                "bad trigger",
                field_num=0,
            )
    for ips in aispec.inventory_parameter_specs:
        if ips.protocol_id != 1:
            yield param_error(
                ParamType.INVENTORY_PARAMETER_SPEC,
                StatusCode.A_OUT_OF_RANGE,
                "protocol must be Gen2",
                field_num=1,
            )
        for config in ips.antenna_configurations:
            yield from _antenna_config_problems(spec, config)


def _rospec_problems(spec: ReaderSpec, rospec: ROSpec) -> Iterator[LLRPStatus]:
    """Validate an ROSpec for ADD_ROSPEC."""
    ptype = ParamType.ROSPEC
    if rospec.rospec_id == 0:
        yield param_error(ptype, StatusCode.A_INVALID, "ROSpecID 0 is reserved", field_num=0)
    if rospec.priority > 7:
        yield param_error(ptype, StatusCode.A_OUT_OF_RANGE, "priority above 7", field_num=1)
    if rospec.state != ROSpecState.DISABLED:
        yield param_error(ptype, StatusCode.A_INVALID, "a new ROSpec must be Disabled", field_num=2)
    start = rospec.boundary.start
    if start.trigger_type == ROSpecStartTriggerType.GPI or start.trigger_type > 3:
        yield param_error(
            ParamType.ROSPEC_START_TRIGGER,
            StatusCode.A_INVALID,
            "unsupported start trigger",
            field_num=0,
        )
    if start.trigger_type == ROSpecStartTriggerType.PERIODIC and (
        start.periodic is None or start.periodic.period_ms == 0
    ):
        yield param_error(
            ParamType.PERIODIC_TRIGGER_VALUE, StatusCode.A_OUT_OF_RANGE, "period 0", field_num=1
        )
    stop = rospec.boundary.stop
    if stop.trigger_type not in (ROSpecStopTriggerType.NULL, ROSpecStopTriggerType.DURATION):
        yield param_error(
            ParamType.ROSPEC_STOP_TRIGGER,
            StatusCode.A_INVALID,
            "unsupported stop trigger",
            field_num=0,
        )
    if stop.trigger_type == ROSpecStopTriggerType.DURATION and stop.duration_ms == 0:
        yield param_error(
            ParamType.ROSPEC_STOP_TRIGGER, StatusCode.A_OUT_OF_RANGE, "duration 0", field_num=1
        )
    if len(rospec.specs) > MAX_AISPECS:
        yield param_error(ptype, StatusCode.P_OVERFLOW_PARAMETER, f"more than {MAX_AISPECS} specs")
    for item in rospec.specs:
        if not isinstance(item, AISpec):
            yield param_error(
                item.ptype, StatusCode.P_UNSUPPORTED_PARAMETER, "only AISpecs are supported"
            )
            return
        yield from _aispec_problems(spec, item)
    if rospec.report_spec is not None:
        yield from _report_spec_problems(rospec.report_spec)


def _access_spec_problems(
    spec: ReaderSpec, access: AccessSpec, rospec_ids: set[int]
) -> Iterator[LLRPStatus]:
    """Validate an AccessSpec for ADD_ACCESSSPEC."""
    ptype = ParamType.ACCESS_SPEC
    if access.access_spec_id == 0:
        yield param_error(ptype, StatusCode.A_INVALID, "AccessSpecID 0 is reserved", field_num=0)
    if access.antenna_id > spec.antennas:
        yield param_error(
            ptype, StatusCode.A_OUT_OF_RANGE, f"no antenna {access.antenna_id}", field_num=1
        )
    if access.protocol_id != 1:
        yield param_error(ptype, StatusCode.A_OUT_OF_RANGE, "protocol must be Gen2", field_num=2)
    if access.enabled:
        yield param_error(
            ptype, StatusCode.A_INVALID, "a new AccessSpec must be Disabled", field_num=3
        )
    if access.rospec_id and access.rospec_id not in rospec_ids:
        yield param_error(ptype, StatusCode.A_INVALID, f"no ROSpec {access.rospec_id}", field_num=4)


def _first(problems: Iterator[LLRPStatus]) -> LLRPStatus | None:
    return next(problems, None)


def check_antenna_config(spec: ReaderSpec, config: AntennaConfiguration) -> LLRPStatus | None:
    """Validate one AntennaConfiguration; None if acceptable, else the error status."""
    return _first(_antenna_config_problems(spec, config))


def check_reader_config(spec: ReaderSpec, config: ReaderConfig) -> LLRPStatus | None:
    """Validate SET_READER_CONFIG parameters; None if acceptable, else the error status."""
    return _first(_reader_config_problems(spec, config))


def check_rospec(spec: ReaderSpec, rospec: ROSpec) -> LLRPStatus | None:
    """Validate an ROSpec for ADD_ROSPEC; None if acceptable, else the error status."""
    return _first(_rospec_problems(spec, rospec))


def check_access_spec(
    spec: ReaderSpec, access: AccessSpec, rospec_ids: set[int]
) -> LLRPStatus | None:
    """Validate an AccessSpec for ADD_ACCESSSPEC; None if acceptable, else the error status."""
    return _first(_access_spec_problems(spec, access, rospec_ids))
