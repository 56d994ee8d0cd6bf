"""Execution of one ROSpec: inventory rounds, stop triggers and report triggers.

Semantics (LLRP 1.0.1 §10, with the choices a simulator has to make):

* Each tick (``1 / rounds_per_second`` s) runs one inventory round on every antenna of the
  current AISpec (AntennaIDs 0 = all antennas).
* AISpec stop triggers: Null (until the ROSpec ends), Duration, TagObservation (N unique
  EPCs, no new EPC for T ms, or N attempts = rounds; each with an optional timeout).
* ROSpec stop trigger Null runs until STOP/DISABLE/DELETE, looping over its AISpecs;
  Duration stops after that many milliseconds (also looping).
* ROReportTrigger: None keeps reports until GET_REPORT; Upon_N_Tags_Or_End_Of_AISpec /
  _ROSpec send every N TagReportData (N = 0: only at the end) and at the end.
* Reads of the same (EPC, antenna) accumulate into one TagReportData.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from drivers.llrp.codec import (
    AISpec,
    AISpecEvent,
    AISpecStopTriggerType,
    NotificationEventType,
    ReaderEventNotificationData,
    ReportEncoder,
    ROReportSpec,
    ROReportTriggerType,
    ROSpec,
    ROSpecEvent,
    ROSpecEventType,
    ROSpecStopTriggerType,
    TagObservationTrigger,
    TagObservationTriggerType,
    TagRead,
)
from simulators.llrp.capabilities import power_levels
from simulators.llrp.inventory import RateCap, ReportBuffer, RoundSource
from simulators.llrp.state import ReaderSettings
from simulators.llrp.stats import SimStats, StatsWatch

log = logging.getLogger(__name__)


class RunnerHost(Protocol):
    """What a runner needs from its reader."""

    settings: ReaderSettings
    field: RoundSource
    buffer: ReportBuffer
    cap: RateCap
    stats: SimStats
    watch: StatsWatch[SimStats]
    replay: Sequence[bytes] | None

    async def send_report(self, reads: list[TagRead], encoder: ReportEncoder) -> None:
        """Send one RO_ACCESS_REPORT (or discard it when no client listens)."""

    async def send_raw(self, data: bytes, messages: int) -> None:
        """Send pre-encoded messages (replay)."""

    async def notify(self, kind: NotificationEventType, event: ReaderEventNotificationData) -> None:
        """Send an event notification if the client enabled that kind."""

    def runner_done(self, runner: ROSpecRunner) -> None:
        """Called when the runner's task ends, however it ends."""


def now_us() -> int:
    """UTC time in microseconds."""
    return time.time_ns() // 1000


class ROSpecRunner:
    """Runs one ROSpec on its own task until its stop trigger fires or it is stopped."""

    def __init__(self, host: RunnerHost, rospec: ROSpec) -> None:
        self.host = host
        self.rospec = rospec
        self.report_spec: ROReportSpec = rospec.report_spec or host.settings.ro_report_spec
        self._stop = asyncio.Event()
        self._encoders: dict[int, ReportEncoder] = {}
        self.spec_index = 1
        self.task: asyncio.Task[None] | None = None
        self._period = 1.0 / host.settings.spec.rounds_per_second
        self._next_tick: float | None = None

    @property
    def rospec_id(self) -> int:
        """The ROSpecID."""
        return self.rospec.rospec_id

    def start(self) -> None:
        """Start the ROSpec's task."""
        self.task = asyncio.create_task(self._main(), name=f"llrp-sim-rospec-{self.rospec_id}")
        self.task.add_done_callback(self._report_failure)

    def _report_failure(self, task: asyncio.Task[None]) -> None:
        """Log a crashed ROSpec loudly (its state is already back to Inactive)."""
        if not task.cancelled() and task.exception() is not None:
            log.error("ROSpec %d failed", self.rospec_id, exc_info=task.exception())

    async def stop(self) -> None:
        """Stop the ROSpec and wait until its pending reports are sent."""
        self._stop.set()
        if self.task is not None and self.task is not asyncio.current_task():
            await asyncio.shield(self.task)

    def cancel(self) -> None:
        """Abandon the ROSpec without flushing (simulator shutdown)."""
        if self.task is not None:
            self.task.cancel()

    def encoder(self, spec_index: int | None = None) -> ReportEncoder:
        """The report encoder for an AISpec index (default: the current one)."""
        index = self.spec_index if spec_index is None else spec_index
        found = self._encoders.get(index)
        if found is None:
            specs = self.rospec.specs
            ips_id = 1
            if 0 < index <= len(specs):
                spec = specs[index - 1]
                if isinstance(spec, AISpec) and spec.inventory_parameter_specs:
                    ips_id = spec.inventory_parameter_specs[0].spec_id
            found = ReportEncoder(
                self.report_spec.selector,
                rospec_id=self.rospec_id,
                spec_index=index,
                inventory_parameter_spec_id=ips_id,
            )
            self._encoders[index] = found
        return found

    async def _main(self) -> None:
        try:
            self.host.stats.rospec_starts += 1
            await self._rospec_event(ROSpecEventType.START)
            if self.host.replay is not None:
                await self._replay()
            else:
                await self._inventory()
            if self.report_spec.trigger != ROReportTriggerType.NONE:
                await self._flush(None)
            await self._rospec_event(ROSpecEventType.END)
        finally:
            self.host.stats.rospec_stops += 1
            self.host.runner_done(self)

    def _deadline(self) -> float | None:
        stop = self.rospec.boundary.stop
        if stop.trigger_type == ROSpecStopTriggerType.DURATION:
            return asyncio.get_running_loop().time() + stop.duration_ms / 1000
        return None

    async def _inventory(self) -> None:
        deadline = self._deadline()
        aispecs = [spec for spec in self.rospec.specs if isinstance(spec, AISpec)]
        if not aispecs:  # nothing to run (ADD_ROSPEC validation normally prevents this)
            await self._wait_stop(float("inf") if deadline is None else deadline - _now())
            return
        while not self._stop.is_set():
            for index, aispec in enumerate(aispecs, 1):
                self.spec_index = index
                await self._run_aispec(aispec, deadline)
                if self._stop.is_set() or _expired(deadline):
                    return
                if self.report_spec.trigger == ROReportTriggerType.UPON_N_TAGS_OR_END_OF_AISPEC:
                    await self._flush(None)
                event = AISpecEvent(0, self.rospec_id, index)
                await self.host.notify(
                    NotificationEventType.AISPEC,
                    ReaderEventNotificationData(now_us(), aispec_event=event),
                )
            if _expired(deadline):
                return

    def _power_offsets(self, aispec: AISpec, antennas: Sequence[int]) -> dict[int, float]:
        settings = self.host.settings
        overrides = {}
        for ips in aispec.inventory_parameter_specs[:1]:
            for config in ips.antenna_configurations:
                for antenna in antennas if config.antenna_id == 0 else (config.antenna_id,):
                    overrides[antenna] = config
        top = max(power_levels(settings.spec))
        return {a: top - settings.tx_power_dbm(a, overrides.get(a)) for a in antennas}

    async def _run_aispec(self, aispec: AISpec, rospec_deadline: float | None) -> None:
        loop = asyncio.get_running_loop()
        settings = self.host.settings
        antennas = (
            list(range(1, settings.spec.antennas + 1))
            if 0 in aispec.antenna_ids
            else list(aispec.antenna_ids)
        )
        offsets = self._power_offsets(aispec, antennas)
        trigger = aispec.stop_trigger
        start = loop.time()
        deadline = rospec_deadline
        if trigger.trigger_type == AISpecStopTriggerType.DURATION:
            deadline = _earliest(deadline, start + trigger.duration_ms / 1000)
        obs = (
            trigger.tag_observation
            if trigger.trigger_type == AISpecStopTriggerType.TAG_OBSERVATION
            else None
        )
        if obs is not None and obs.timeout_ms:
            deadline = _earliest(deadline, start + obs.timeout_ms / 1000)
        seen: set[bytes] = set()
        last_new = start
        rounds = 0
        while True:
            # The round clock runs across AISpecs: an AISpec that ends after one round does
            # not make the next one start early.
            if await self._wait_tick(deadline):
                return
            if self._round(antennas, offsets, seen):
                last_new = loop.time()
            rounds += 1
            await self._emit_every_n()
            if obs is not None and _observed(obs, len(seen), rounds, loop.time() - last_new):
                return

    def _round(self, antennas: Sequence[int], offsets: dict[int, float], seen: set[bytes]) -> bool:
        """One inventory round on each antenna; True if it saw an EPC new to ``seen``."""
        host = self.host
        now = asyncio.get_running_loop().time()
        stamp = now_us()
        before = len(seen)
        for antenna in antennas:
            reads = host.field.read_round(antenna, offsets[antenna])
            admitted = host.cap.admit(reads, now)
            host.stats.reads += len(admitted)
            host.stats.reads_capped += len(reads) - len(admitted)
            host.buffer.add(antenna, admitted, stamp)
            seen.update(epc for epc, _ in admitted)
        host.watch.check()
        return len(seen) > before

    async def _wait_tick(self, deadline: float | None) -> bool:
        """Wait for the next round; True if stopped or ``deadline`` passed first."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._next_tick is None or self._next_tick < now - self._period:
            self._next_tick = now  # first round, or fell behind: do not burst to catch up
        wake = self._next_tick if deadline is None else min(self._next_tick, deadline)
        if await self._wait_stop(wake - now) or _expired(deadline):
            return True
        self._next_tick += self._period
        return False

    async def _wait_stop(self, delay: float) -> bool:
        """Sleep ``delay`` seconds unless stopped first; True when stopped."""
        if self._stop.is_set():
            return True
        try:
            async with asyncio.timeout(max(delay, 0.0)):
                await self._stop.wait()
        except TimeoutError:
            return False
        return True

    async def _emit_every_n(self) -> None:
        spec = self.report_spec
        if spec.trigger == ROReportTriggerType.NONE or spec.n == 0:
            return
        while len(self.host.buffer) >= spec.n:
            await self.host.send_report(self.host.buffer.take(spec.n), self.encoder())

    async def _flush(self, limit: int | None) -> None:
        if len(self.host.buffer):
            await self.host.send_report(self.host.buffer.take(limit), self.encoder())

    async def _replay(self) -> None:
        frames = self.host.replay or ()
        batch: list[bytes] = []
        size = 0
        for frame in frames:
            if self._stop.is_set():
                break
            batch.append(frame)
            size += len(frame)
            if size >= 256 * 1024:
                await self.host.send_raw(b"".join(batch), len(batch))
                batch, size = [], 0
        if batch and not self._stop.is_set():
            await self.host.send_raw(b"".join(batch), len(batch))
        deadline = self._deadline()
        await self._wait_stop(
            float("inf") if deadline is None else deadline - asyncio.get_running_loop().time()
        )

    async def _rospec_event(self, kind: ROSpecEventType) -> None:
        event = ROSpecEvent(kind, self.rospec_id, 0)
        await self.host.notify(
            NotificationEventType.ROSPEC, ReaderEventNotificationData(now_us(), rospec_event=event)
        )


def _now() -> float:
    return asyncio.get_running_loop().time()


def _earliest(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def _expired(deadline: float | None) -> bool:
    return deadline is not None and asyncio.get_running_loop().time() >= deadline


def _observed(obs: TagObservationTrigger, unique: int, rounds: int, quiet_s: float) -> bool:
    """Whether a TagObservationTrigger (other than its timeout) has fired."""
    kind = obs.trigger_type
    if kind == TagObservationTriggerType.UPON_N_TAGS_OR_TIMEOUT:
        return unique >= obs.number_of_tags
    if kind == TagObservationTriggerType.NO_MORE_NEW_TAGS_FOR_T_OR_TIMEOUT:
        return quiet_s * 1000 >= obs.t_ms
    return rounds >= obs.number_of_attempts
