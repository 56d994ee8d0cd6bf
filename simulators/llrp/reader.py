"""The simulated reader's brain: ROSpecs, AccessSpecs, configuration, and request handling.

One :class:`SimReader` lives as long as the simulator; client sessions come and go and
attach themselves as its :class:`Sink`. ROSpecs and configuration survive reconnects (as
on real readers); reports generated while no client listens are discarded and counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol

from drivers.llrp.codec import (
    AccessSpec,
    AddAccessSpec,
    AddAccessSpecResponse,
    AddROSpec,
    AddROSpecResponse,
    DeleteAccessSpec,
    DeleteAccessSpecResponse,
    DeleteROSpec,
    DeleteROSpecResponse,
    DisableAccessSpec,
    DisableAccessSpecResponse,
    DisableROSpec,
    DisableROSpecResponse,
    EnableAccessSpec,
    EnableAccessSpecResponse,
    EnableROSpec,
    EnableROSpecResponse,
    GetAccessSpecs,
    GetAccessSpecsResponse,
    GetReaderCapabilities,
    GetReaderCapabilitiesResponse,
    GetReaderConfig,
    GetReaderConfigResponse,
    GetROSpecs,
    GetROSpecsResponse,
    LLRPStatus,
    Message,
    NotificationEventType,
    ReaderEventNotification,
    ReaderEventNotificationData,
    ReportEncoder,
    ROSpec,
    ROSpecStartTriggerType,
    ROSpecState,
    SetReaderConfig,
    SetReaderConfigResponse,
    StartROSpec,
    StartROSpecResponse,
    StatusCode,
    StopROSpec,
    StopROSpecResponse,
    TagRead,
)
from simulators.llrp.capabilities import MAX_ACCESS_SPECS, MAX_ROSPECS, capabilities_response
from simulators.llrp.engine import ROSpecRunner
from simulators.llrp.inventory import RateCap, ReportBuffer, RoundSource, TagField
from simulators.llrp.state import (
    ReaderSettings,
    check_access_spec,
    check_reader_config,
    check_rospec,
    field_error,
)
from simulators.llrp.stats import SimStats, StatsWatch
from simulators.scene import Scene

log = logging.getLogger(__name__)

OK = LLRPStatus()


class Sink(Protocol):
    """Where the reader's messages go: the current client session."""

    def write(self, data: bytes, messages: int = 1) -> bool:
        """Queue bytes for the client; False if they were suppressed (silent, closing)."""

    async def drain(self) -> None:
        """Wait while the client is slow to read (back-pressure)."""


def _unknown(field_num: int, what: str, ident: int) -> LLRPStatus:
    return field_error(field_num, StatusCode.A_INVALID, f"no {what} with ID {ident}")


class SimReader:
    """State and request handling of one simulated LLRP reader.

    Args:
        scene: The scene (reader identity and tags).
        stats: Counters to update.
        watch: Notified after every change so tests can wait on the counters.
        replay: Pre-encoded RO_ACCESS_REPORT messages to stream instead of simulating.
        seed: RNG seed overriding the scene's.
        source: What answers each inventory round instead of the scene's tags (a moving
            scene such as :class:`simulators.cart.CartProvider`); the scene's
            :class:`~simulators.llrp.inventory.TagField` if None.
    """

    def __init__(
        self,
        scene: Scene,
        stats: SimStats,
        watch: StatsWatch[SimStats],
        replay: Sequence[bytes] | None = None,
        seed: int | None = None,
        *,
        source: RoundSource | None = None,
    ) -> None:
        self.spec = scene.reader
        self.settings = ReaderSettings(scene.reader)
        self.field: RoundSource = source if source is not None else TagField(scene, seed)
        self.buffer = ReportBuffer()
        self.cap = RateCap(scene.reader.max_reads_per_second)
        self.stats = stats
        self.watch = watch
        self.replay = replay
        self.rospecs: dict[int, ROSpec] = {}
        self.states: dict[int, ROSpecState] = {}
        self.access_specs: dict[int, AccessSpec] = {}
        self.runner: ROSpecRunner | None = None
        self._periodic: dict[int, asyncio.Task[None]] = {}
        self.sink: Sink | None = None
        self._ids = itertools.count(1)
        self.config_changed = asyncio.Event()
        self.handlers: dict[type[Message], Callable[[Message], Awaitable[Message | None]]] = {
            GetReaderCapabilities: self._capabilities,
            GetReaderConfig: self._get_config,
            SetReaderConfig: self._set_config,
            AddROSpec: self._add_rospec,
            DeleteROSpec: self._delete_rospec,
            StartROSpec: self._start_rospec,
            StopROSpec: self._stop_rospec,
            EnableROSpec: self._enable_rospec,
            DisableROSpec: self._disable_rospec,
            GetROSpecs: self._get_rospecs,
            AddAccessSpec: self._add_access,
            DeleteAccessSpec: self._access_op,
            EnableAccessSpec: self._access_op,
            DisableAccessSpec: self._access_op,
            GetAccessSpecs: self._get_access,
        }

    def next_id(self) -> int:
        """Message ID for a reader-initiated message."""
        return next(self._ids) & 0xFFFFFFFF

    # ------------------------------------------------------------ output used by runners

    async def send_report(
        self, reads: list[TagRead], encoder: ReportEncoder, msg_id: int | None = None
    ) -> None:
        """Encode and send one RO_ACCESS_REPORT, or count it discarded."""
        sink = self.sink
        data = encoder.encode(self.next_id() if msg_id is None else msg_id, reads)
        if sink is not None and sink.write(data):
            self.stats.reports_sent += 1
            self.stats.tag_reports_sent += len(reads)
            self.watch.check()
            await sink.drain()
            return
        self.stats.reports_discarded += len(reads)
        self.watch.check()

    async def send_raw(self, data: bytes, messages: int) -> None:
        """Send pre-encoded messages (replay)."""
        sink = self.sink
        if sink is not None and sink.write(data, messages):
            self.stats.reports_sent += messages
            self.stats.replay_messages_sent += messages
            self.watch.check()
            await sink.drain()

    async def notify(self, kind: NotificationEventType, event: ReaderEventNotificationData) -> None:
        """Send a READER_EVENT_NOTIFICATION if the client enabled that kind of event."""
        if self.sink is not None and self.settings.event_enabled(kind):
            self.sink.write(ReaderEventNotification(self.next_id(), event).encode())
            await self.sink.drain()

    def runner_done(self, runner: ROSpecRunner) -> None:
        """Bookkeeping when an ROSpec execution ends."""
        if self.runner is runner:
            self.runner = None
        if self.states.get(runner.rospec_id) == ROSpecState.ACTIVE:
            self.states[runner.rospec_id] = ROSpecState.INACTIVE
        self.watch.check()

    # ------------------------------------------------------------ lifecycle

    async def handle(self, msg: Message) -> Message | None:
        """Answer one request (the caller deals with messages this table lacks)."""
        handler = self.handlers.get(type(msg))
        if handler is None:
            raise KeyError(type(msg).__name__)
        return await handler(msg)

    async def get_report(self, msg_id: int) -> None:
        """GET_REPORT: send everything buffered, in one report carrying the request's ID."""
        encoder = self.runner.encoder() if self.runner else self._idle_encoder()
        await self.send_report(self.buffer.take(), encoder, msg_id)

    def _idle_encoder(self) -> ReportEncoder:
        return ReportEncoder(self.settings.ro_report_spec.selector)

    async def close(self) -> None:
        """Stop everything without flushing (simulator shutdown)."""
        for task in self._periodic.values():
            task.cancel()
        self._periodic.clear()
        runner = self.runner
        if runner is not None:
            runner.cancel()
            if runner.task is not None:
                await asyncio.gather(runner.task, return_exceptions=True)

    async def _halt(self, rospec_id: int) -> None:
        """Stop the ROSpec if it is running, flushing its reports first."""
        task = self._periodic.pop(rospec_id, None)
        if task is not None:
            task.cancel()
        runner = self.runner
        if runner is not None and runner.rospec_id == rospec_id:
            await runner.stop()

    def _launch(self, rospec_id: int) -> None:
        runner = ROSpecRunner(self, self.rospecs[rospec_id])
        self.runner = runner
        self.states[rospec_id] = ROSpecState.ACTIVE
        runner.start()
        self.watch.check()

    async def _periodic_starts(self, rospec_id: int) -> None:
        periodic = self.rospecs[rospec_id].boundary.start.periodic
        if periodic is None:
            return
        await asyncio.sleep(periodic.offset_ms / 1000)
        while True:
            if self.runner is None and self.states.get(rospec_id) == ROSpecState.INACTIVE:
                self._launch(rospec_id)
            await asyncio.sleep(periodic.period_ms / 1000)

    @staticmethod
    def _targets(ident: int, known: Collection[int]) -> list[int] | None:
        """The IDs a request names: all for 0, else that one if it exists."""
        if ident == 0:
            return list(known)
        return [ident] if ident in known else None

    # ------------------------------------------------------------ handlers

    async def _capabilities(self, msg: Message) -> Message:
        assert isinstance(msg, GetReaderCapabilities)
        if msg.requested_data > 4:
            status = field_error(0, StatusCode.A_OUT_OF_RANGE, "RequestedData must be 0..4")
            return GetReaderCapabilitiesResponse(msg.msg_id, status)
        return capabilities_response(self.spec, msg.msg_id, msg.requested_data)

    async def _get_config(self, msg: Message) -> Message:
        assert isinstance(msg, GetReaderConfig)
        if msg.antenna_id > self.spec.antennas:
            status = field_error(0, StatusCode.A_OUT_OF_RANGE, f"no antenna {msg.antenna_id}")
            return GetReaderConfigResponse(msg.msg_id, status)
        if msg.requested_data > 11:
            status = field_error(1, StatusCode.A_OUT_OF_RANGE, "RequestedData must be 0..11")
            return GetReaderConfigResponse(msg.msg_id, status)
        config = self.settings.snapshot(msg.requested_data, msg.antenna_id)
        return GetReaderConfigResponse(msg.msg_id, OK, config)

    async def _set_config(self, msg: Message) -> Message:
        assert isinstance(msg, SetReaderConfig)
        status = check_reader_config(self.spec, msg.config)
        if status is not None:
            return SetReaderConfigResponse(msg.msg_id, status)
        if msg.reset_to_factory_defaults:
            for rospec_id in list(self.rospecs):
                await self._halt(rospec_id)
            self.rospecs.clear()
            self.states.clear()
            self.access_specs.clear()
            self.settings.reset()
        self.settings.apply(msg.config)
        self.config_changed.set()
        return SetReaderConfigResponse(msg.msg_id, OK)

    async def _add_rospec(self, msg: Message) -> Message:
        assert isinstance(msg, AddROSpec)
        rospec = msg.rospec
        status = check_rospec(self.spec, rospec)
        if status is None and rospec.rospec_id in self.rospecs:
            status = field_error(0, StatusCode.A_INVALID, f"ROSpec {rospec.rospec_id} exists")
        if status is None and len(self.rospecs) >= MAX_ROSPECS:
            status = LLRPStatus(StatusCode.M_OVERFLOW_PARAMETER, f"at most {MAX_ROSPECS} ROSpecs")
        if status is not None:
            return AddROSpecResponse(msg.msg_id, status)
        self.rospecs[rospec.rospec_id] = rospec
        self.states[rospec.rospec_id] = ROSpecState.DISABLED
        self.stats.rospecs_added += 1
        self.watch.check()
        return AddROSpecResponse(msg.msg_id, OK)

    async def _delete_rospec(self, msg: Message) -> Message:
        assert isinstance(msg, DeleteROSpec)
        targets = self._targets(msg.rospec_id, self.rospecs.keys())
        if targets is None:
            return DeleteROSpecResponse(msg.msg_id, _unknown(0, "ROSpec", msg.rospec_id))
        for rospec_id in targets:
            await self._halt(rospec_id)
            del self.rospecs[rospec_id]
            del self.states[rospec_id]
        self.watch.check()
        return DeleteROSpecResponse(msg.msg_id, OK)

    async def _start_rospec(self, msg: Message) -> Message:
        assert isinstance(msg, StartROSpec)
        state = self.states.get(msg.rospec_id)
        status = None
        if state is None:
            status = _unknown(0, "ROSpec", msg.rospec_id)
        elif state == ROSpecState.DISABLED:
            status = field_error(0, StatusCode.A_INVALID, f"ROSpec {msg.rospec_id} is disabled")
        elif state == ROSpecState.ACTIVE or self.runner is not None:
            status = field_error(0, StatusCode.A_INVALID, "an ROSpec is already active")
        if status is not None:
            return StartROSpecResponse(msg.msg_id, status)
        self._launch(msg.rospec_id)
        return StartROSpecResponse(msg.msg_id, OK)

    async def _stop_rospec(self, msg: Message) -> Message:
        assert isinstance(msg, StopROSpec)
        state = self.states.get(msg.rospec_id)
        if state is None:
            return StopROSpecResponse(msg.msg_id, _unknown(0, "ROSpec", msg.rospec_id))
        if state != ROSpecState.ACTIVE:
            status = field_error(0, StatusCode.A_INVALID, f"ROSpec {msg.rospec_id} is not active")
            return StopROSpecResponse(msg.msg_id, status)
        await self._halt(msg.rospec_id)
        if self.states.get(msg.rospec_id) == ROSpecState.ACTIVE:
            self.states[msg.rospec_id] = ROSpecState.INACTIVE
        return StopROSpecResponse(msg.msg_id, OK)

    async def _enable_rospec(self, msg: Message) -> Message:
        assert isinstance(msg, EnableROSpec)
        targets = self._targets(msg.rospec_id, self.rospecs.keys())
        if targets is None:
            return EnableROSpecResponse(msg.msg_id, _unknown(0, "ROSpec", msg.rospec_id))
        for rospec_id in targets:
            if self.states[rospec_id] != ROSpecState.DISABLED:
                continue
            self.states[rospec_id] = ROSpecState.INACTIVE
            trigger = self.rospecs[rospec_id].boundary.start.trigger_type
            if trigger == ROSpecStartTriggerType.IMMEDIATE and self.runner is None:
                self._launch(rospec_id)
            elif trigger == ROSpecStartTriggerType.PERIODIC:
                self._periodic[rospec_id] = asyncio.create_task(
                    self._periodic_starts(rospec_id), name=f"llrp-sim-periodic-{rospec_id}"
                )
        self.watch.check()
        return EnableROSpecResponse(msg.msg_id, OK)

    async def _disable_rospec(self, msg: Message) -> Message:
        assert isinstance(msg, DisableROSpec)
        targets = self._targets(msg.rospec_id, self.rospecs.keys())
        if targets is None:
            return DisableROSpecResponse(msg.msg_id, _unknown(0, "ROSpec", msg.rospec_id))
        for rospec_id in targets:
            await self._halt(rospec_id)
            self.states[rospec_id] = ROSpecState.DISABLED
        self.watch.check()
        return DisableROSpecResponse(msg.msg_id, OK)

    async def _get_rospecs(self, msg: Message) -> Message:
        specs = tuple(dataclasses.replace(r, state=self.states[i]) for i, r in self.rospecs.items())
        return GetROSpecsResponse(msg.msg_id, OK, specs)

    async def _add_access(self, msg: Message) -> Message:
        assert isinstance(msg, AddAccessSpec)
        spec = msg.access_spec
        status = check_access_spec(self.spec, spec, set(self.rospecs))
        if status is None and spec.access_spec_id in self.access_specs:
            status = field_error(
                0, StatusCode.A_INVALID, f"AccessSpec {spec.access_spec_id} exists"
            )
        if status is None and len(self.access_specs) >= MAX_ACCESS_SPECS:
            status = LLRPStatus(
                StatusCode.M_OVERFLOW_PARAMETER, f"at most {MAX_ACCESS_SPECS} AccessSpecs"
            )
        if status is not None:
            return AddAccessSpecResponse(msg.msg_id, status)
        self.access_specs[spec.access_spec_id] = spec
        return AddAccessSpecResponse(msg.msg_id, OK)

    async def _access_op(self, msg: Message) -> Message:
        assert isinstance(msg, DeleteAccessSpec | EnableAccessSpec | DisableAccessSpec)
        response = {
            DeleteAccessSpec: DeleteAccessSpecResponse,
            EnableAccessSpec: EnableAccessSpecResponse,
            DisableAccessSpec: DisableAccessSpecResponse,
        }[type(msg)]
        targets = self._targets(msg.access_spec_id, self.access_specs.keys())
        if targets is None:
            return response(msg.msg_id, _unknown(0, "AccessSpec", msg.access_spec_id))
        for spec_id in targets:
            if isinstance(msg, DeleteAccessSpec):
                del self.access_specs[spec_id]
            else:
                enabled = isinstance(msg, EnableAccessSpec)
                self.access_specs[spec_id] = dataclasses.replace(
                    self.access_specs[spec_id], enabled=enabled
                )
        return response(msg.msg_id, OK)

    async def _get_access(self, msg: Message) -> Message:
        return GetAccessSpecsResponse(msg.msg_id, OK, tuple(self.access_specs.values()))
