"""One zone scan: start the zone's readers, run the window, stop them, count, publish.

A :class:`ZoneScan` is made of parts that :func:`create_zone_scan` picks from the zone's
configuration:

* a **tally** (:class:`gateway.tally.Tally`): how reads become location counts -- fixed
  readers, each tag at its strongest antenna's location (:class:`gateway.tally.FixedTally`),
  or a reader on a robot or cart, placed by reference tags or the robot's pose
  (:class:`gateway.mobile_scan.MobileTally`, which also finishes bays during the window);
* the **vision** part, when the zone has cameras (:class:`gateway.vision.scan.VisionPart`):
  the cameras count during the same window; a location only a camera sees is published as
  ``source: vision``, one both see as ``source: fused`` (:mod:`gateway.vision.fusion`);
* the **sink** (:class:`gateway.sink.CountSink`): publishes each location's count once and
  the scan messages.

The scan itself owns the window and the readers: a reader that fails during the window (it
could not start, its link dropped, it did not confirm the stop, or reads were dropped because
its queue was full) makes every location it covers ``complete: false``: edgecount never
publishes "0 found" for a location that was not fully scanned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from drivers.base import Reader
from gateway.config import GatewayConfig
from gateway.counts import CameraOutcome, LocationCount, ReaderOutcome, ScanResult
from gateway.epc import EpcDecoder
from gateway.mobile_scan import MobileTally
from gateway.publisher import Publisher
from gateway.sink import CountSink
from gateway.tally import FixedTally, Tally

if TYPE_CHECKING:
    from drivers.camera.driver import Camera
    from gateway.vision.detectors import DetectorCache
    from gateway.vision.scan import CameraCounts, VisionPart

__all__ = [
    "WINDOW_TICK",
    "CameraOutcome",
    "LocationCount",
    "Progress",
    "ReaderOutcome",
    "ScanResult",
    "ZoneScan",
    "create_zone_scan",
    "new_scan_id",
]

log = logging.getLogger(__name__)

Progress = Callable[[float, int], None]
"""Called with (fraction of the window elapsed, reads so far)."""

WINDOW_TICK = 0.25
"""Seconds between two looks during the window: progress, and locations the tally finished."""


def new_scan_id(gateway_id: str, zone: str, moment: datetime) -> str:
    """A scan id unique per gateway and zone: ``gw-01.A.20261124T020000.123Z``."""
    stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
    return f"{gateway_id}.{zone}.{stamp}Z"


def create_zone_scan(
    config: GatewayConfig,
    zone: str,
    readers: Mapping[str, Reader],
    publisher: Publisher,
    *,
    decoder: EpcDecoder | None = None,
    progress: Progress | None = None,
    cameras: Mapping[str, Camera] | None = None,
    detectors: DetectorCache | None = None,
) -> ZoneScan:
    """A :class:`ZoneScan` of ``zone`` with the parts its configuration asks for.

    A mobile zone gets a :class:`~gateway.mobile_scan.MobileTally`, any other a
    :class:`~gateway.tally.FixedTally`; a zone with cameras gets a
    :class:`~gateway.vision.scan.VisionPart` (the camera stack is imported only then).

    Args:
        config: The gateway configuration.
        zone: The zone to scan.
        readers: Started readers by name (at least the zone's).
        publisher: Where counts and scan messages go (and a pose zone's poses come from).
        decoder: Turns EPCs into SKUs; a default one if None.
        progress: Called at every look during the window.
        cameras: Started cameras by name (at least the zone's).
        detectors: The process's detector cache (the runtime's); a new one for this scan if
            None.
    """
    zone_config = config.zones[zone]
    decoder = decoder or EpcDecoder()
    tally: Tally
    if zone_config.mobile is not None:
        tally = MobileTally(config, zone, decoder, publisher)
    else:
        tally = FixedTally(config, zone, decoder)
    vision = None
    if zone_config.cameras:
        from gateway.vision.detectors import DetectorCache
        from gateway.vision.scan import VisionPart  # OpenCV, the detector: only with cameras

        cache = detectors if detectors is not None else DetectorCache()  # empty is falsy
        vision = VisionPart(config, zone, cameras or {}, cache, publisher)
    sink = CountSink(config, zone, publisher)
    return ZoneScan(config, zone, readers, tally=tally, sink=sink, vision=vision, progress=progress)


class ZoneScan:
    """Runs one scan of one zone with readers that are already started.

    Args:
        config: The gateway configuration.
        zone: The zone to scan.
        readers: Started readers by name (at least the zone's).
        tally: Turns the reads into location counts.
        sink: Publishes the counts and the scan messages.
        vision: The zone's cameras, if it has any.
        progress: Called at every look during the window.
    """

    def __init__(
        self,
        config: GatewayConfig,
        zone: str,
        readers: Mapping[str, Reader],
        *,
        tally: Tally,
        sink: CountSink,
        vision: VisionPart | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        self.zone = zone
        self.readers = {name: readers[name] for name in config.zones[zone].readers}
        self.tally = tally
        self.sink = sink
        self.vision = vision
        self.progress = progress

    async def run(self, scan_id: str | None = None, request_id: str | None = None) -> ScanResult:
        """Run the window, publish the counts and the scan outcome, return the result.

        Args:
            scan_id: Defaults to a new unique id.
            request_id: The scan request this scan answers (carried in its scan messages).
        """
        started = datetime.now(UTC)
        scan_id = scan_id or new_scan_id(self.config.gateway_id, self.zone, started)
        self.sink.begin(scan_id, request_id)
        outcomes = {name: ReaderOutcome(name) for name in self.readers}
        with self.tally.listening():
            await self.sink.publish_started(started, outcomes)
            failures = {name: reader.failures for name, reader in self.readers.items()}
            dropped = {name: reader.health().dropped for name, reader in self.readers.items()}
            closed, camera_counts = await self._collect(outcomes)
            self._judge(outcomes, failures, dropped)
            ended = datetime.now(UTC)
            counts = self.tally.counts(outcomes)
            if self.vision is not None:
                self.vision.merge(counts, camera_counts)
            result = ScanResult(scan_id, self.zone, started, ended, counts, outcomes)
            result.cameras = {c.outcome.name: c.outcome for c in camera_counts}
            result.window_closed = closed
            await self.sink.publish_result(result)
            if self.vision is not None:
                self.vision.publish_frames(scan_id)
        return result

    async def _collect(
        self, outcomes: dict[str, ReaderOutcome]
    ) -> tuple[datetime, list[CameraCounts]]:
        """Readers and cameras over the window; returns when it closed and what cameras counted."""
        consumers = [
            asyncio.create_task(self._consume(reader, outcomes[name]), name=f"drain:{name}")
            for name, reader in self.readers.items()
        ]
        vision = self.vision.start() if self.vision is not None else []
        try:
            await self._each("start_inventory", outcomes)
            await self._window()
            closed = datetime.now(UTC)
            await self._each("stop_inventory", outcomes)
            await self._drain()
            camera_counts = await asyncio.gather(*vision)
        finally:
            for task in [*consumers, *vision]:
                task.cancel()
            await asyncio.gather(*consumers, *vision, return_exceptions=True)
        return closed, camera_counts

    def _judge(
        self,
        outcomes: dict[str, ReaderOutcome],
        failures: Mapping[str, int],
        dropped: Mapping[str, int],
    ) -> None:
        """Mark the readers that lost reads or their link during the scan as failed."""
        for name, reader in self.readers.items():
            lost = reader.health().dropped - dropped[name]
            if lost and outcomes[name].ok:
                # Reads that did not fit the queue are gone: an undercount must not be
                # published as complete (it would be flagged short).
                log.error(
                    "zone %s: reader %s: %d reads dropped (queue full)", self.zone, name, lost
                )
                outcomes[name].ok = False
                outcomes[name].error = f"{lost} reads dropped (queue full)"
            if reader.failures != failures[name] and outcomes[name].ok:
                outcomes[name].ok = False
                outcomes[name].error = "link failed during the window"

    async def _each(self, method: str, outcomes: dict[str, ReaderOutcome]) -> None:
        names = [name for name in self.readers if outcomes[name].ok]
        results = await asyncio.gather(
            *(getattr(self.readers[name], method)() for name in names), return_exceptions=True
        )
        for name, outcome in zip(names, results, strict=True):
            if isinstance(outcome, BaseException):
                log.error("zone %s: reader %s: %s failed: %s", self.zone, name, method, outcome)
                outcomes[name].ok = False
                outcomes[name].error = f"{method}: {outcome}"

    async def _window(self) -> None:
        """Wait out the window; at every look, report progress and publish finished locations.

        Locations are taken from the tally only while no reader has failed since the window
        opened: a failed reader may have missed what a location holds.
        """
        seconds = self.config.zones[self.zone].scan_seconds
        deadline = time.monotonic() + seconds
        failures = {name: reader.failures for name, reader in self.readers.items()}
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, WINDOW_TICK))
            if self.progress is not None:
                self.progress(1.0 - max(left - WINDOW_TICK, 0.0) / seconds, self.tally.reads)
            if any(reader.failures != failures[name] for name, reader in self.readers.items()):
                continue
            await self.sink.publish_counts(self.tally.passed(), datetime.now(UTC))

    async def _consume(self, reader: Reader, outcome: ReaderOutcome) -> None:
        queue = reader.queue
        while True:
            batch = await queue.get()
            try:
                outcome.reads += self.tally.add(batch)
            finally:
                queue.task_done()

    async def _drain(self) -> None:
        """Wait until the consumers took what the stop flushed (queued when stop returned)."""
        await asyncio.gather(*(reader.queue.join() for reader in self.readers.values()))
