"""One zone scan: start the zone's readers, run the window, stop them, count, publish.

A reader that fails during the window (it could not start, its link dropped, it did not
confirm the stop, or reads were dropped because its queue was full) makes every location it
covers ``complete: false``: edgecount never
publishes "0 found" for a location that was not fully scanned. The zone's cameras count
during the same window (:mod:`gateway.vision.scan`); a location only a camera sees is
published as ``source: vision``, one both see as ``source: fused``
(:mod:`gateway.vision.fusion`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from drivers.base import Reader
from edgecount import contract
from edgecount.timefmt import to_iso
from gateway.aggregate import LocationTally, WindowAggregator
from gateway.config import GatewayConfig
from gateway.epc import UNKNOWN_SKU, EpcDecoder
from gateway.publisher import Publisher

if TYPE_CHECKING:
    from drivers.camera.driver import Camera
    from gateway.vision.fusion import Figure
    from gateway.vision.scan import CameraCounts, CameraOutcome, DetectorCache

log = logging.getLogger(__name__)

Progress = Callable[[float, int], None]
"""Called with (fraction of the window elapsed, reads so far)."""


@dataclass(slots=True)
class ReaderOutcome:
    """How one reader did during a scan."""

    name: str
    ok: bool = True
    reads: int = 0
    error: str | None = None


@dataclass(slots=True)
class LocationCount(LocationTally):
    """The count of one location in one scan: its tally, and whether it was fully scanned.

    ``items`` is set for camera counts (``source`` vision or fused): what is published then.
    """

    complete: bool = True
    source: str = "rfid"
    items: list[dict[str, Any]] | None = None
    fusion: dict[str, Any] | None = None

    def payload_items(self) -> list[dict[str, Any]]:
        """The ``items`` of the count message."""
        if self.items is not None:
            return self.items
        rows: list[dict[str, Any]] = []
        for sku, qty in self.skus.items():
            item: dict[str, Any] = {"sku": sku, "qty": qty}
            if sku == UNKNOWN_SKU:
                item["epcs"] = sorted(self.unknown_epcs)
            rows.append(item)
        return rows


@dataclass(slots=True)
class ScanResult:
    """Everything one zone scan found."""

    scan_id: str
    zone: str
    started_at: datetime
    ended_at: datetime
    locations: dict[str, LocationCount]
    readers: dict[str, ReaderOutcome]
    cameras: dict[str, CameraOutcome] = field(default_factory=dict)
    published: bool = False

    @property
    def complete(self) -> bool:
        """True when every location was fully scanned."""
        return all(count.complete for count in self.locations.values())


def new_scan_id(gateway_id: str, zone: str, moment: datetime) -> str:
    """A scan id unique per gateway and zone: ``gw-01.A.20261124T020000.123Z``."""
    stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
    return f"{gateway_id}.{zone}.{stamp}Z"


def create_zone_scan(
    config: GatewayConfig,
    zone: str,
    readers: Mapping[str, Reader],
    publisher: Publisher,
    **options: Any,
) -> ZoneScan:
    """A :class:`ZoneScan`, or a :class:`gateway.mobile_scan.MobileZoneScan` for a mobile zone.

    Args:
        config: The gateway configuration.
        zone: The zone to scan.
        readers: Started readers by name (at least the zone's).
        publisher: Where counts and scan messages go.
        **options: Keyword arguments of :class:`ZoneScan`.
    """
    if config.zones[zone].mobile is not None:
        from gateway.mobile_scan import MobileZoneScan

        return MobileZoneScan(config, zone, readers, publisher, **options)
    return ZoneScan(config, zone, readers, publisher, **options)


class ZoneScan:
    """Runs one scan of one zone with readers that are already started."""

    def __init__(
        self,
        config: GatewayConfig,
        zone: str,
        readers: Mapping[str, Reader],
        publisher: Publisher,
        *,
        decoder: EpcDecoder | None = None,
        progress: Progress | None = None,
        cameras: Mapping[str, Camera] | None = None,
        detectors: DetectorCache | None = None,
    ) -> None:
        self.config = config
        self.zone = zone
        self.zone_config = config.zones[zone]
        self.readers = {name: readers[name] for name in self.zone_config.readers}
        self.cameras = {name: (cameras or {})[name] for name in self.zone_config.cameras}
        self.detectors = detectors
        self.publisher = publisher
        self.decoder = decoder or EpcDecoder()
        self.progress = progress
        locations = {
            (name, antenna): location
            for name in self.zone_config.readers
            for antenna, location in config.reader(name).antennas.items()
        }
        self.aggregator = WindowAggregator(locations, self.zone_config.min_reads)
        self.request_id: str | None = None
        self.scan_id = ""
        self.published: set[str] = set()
        """Locations whose count this scan has published (each goes out once)."""

    async def run(self, scan_id: str | None = None, request_id: str | None = None) -> ScanResult:
        """Run the window, publish the counts and the scan outcome, return the result.

        Args:
            scan_id: Defaults to a new unique id.
            request_id: The scan request this scan answers (carried in its scan messages).
        """
        self.request_id = request_id
        started = datetime.now(UTC)
        scan_id = scan_id or new_scan_id(self.config.gateway_id, self.zone, started)
        self.scan_id = scan_id
        outcomes = {name: ReaderOutcome(name) for name in self.readers}
        await self._publish_scan(
            scan_id=scan_id,
            state="started",
            started=started,
            ended=None,
            incomplete=[],
            outcomes=outcomes,
        )
        failures = {name: reader.failures for name, reader in self.readers.items()}
        dropped = {name: reader.health().dropped for name, reader in self.readers.items()}
        consumers = [
            asyncio.create_task(self._consume(reader, outcomes[name]), name=f"drain:{name}")
            for name, reader in self.readers.items()
        ]
        vision = self._start_cameras()
        try:
            await self._each("start_inventory", outcomes)
            await self._window()
            await self._each("stop_inventory", outcomes)
            await self._drain()
            camera_counts = await asyncio.gather(*vision)
        finally:
            for task in [*consumers, *vision]:
                task.cancel()
            await asyncio.gather(*consumers, *vision, return_exceptions=True)
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
        ended = datetime.now(UTC)
        counts = self._counts(outcomes)
        self._add_vision(counts, camera_counts)
        result = ScanResult(scan_id, self.zone, started, ended, counts, outcomes)
        result.cameras = {c.outcome.name: c.outcome for c in camera_counts}
        await self._publish_counts(result)
        return result

    def _start_cameras(self) -> list[asyncio.Task[CameraCounts]]:
        """One counting task per camera over the scan window."""
        if not self.cameras:
            return []
        from gateway.vision.scan import CameraCounter, DetectorCache

        self.detectors = self.detectors or DetectorCache()
        window_end = time.monotonic() + self.zone_config.scan_seconds
        tasks = []
        for name, camera in self.cameras.items():
            config = self.config.camera(name)
            counter = CameraCounter(config, camera, self.detectors)
            tasks.append(asyncio.create_task(counter.run(window_end), name=f"camera:{name}"))
        return tasks

    def _add_vision(
        self, counts: dict[str, LocationCount], camera_counts: list[CameraCounts]
    ) -> None:
        """Publish camera figures as vision counts, or fuse them with the RFID count."""
        from gateway.vision.fusion import fuse

        figures: dict[str, Figure] = {}
        for camera in camera_counts:
            for location, figure in camera.figures.items():
                best = figures.get(location)
                if best is None or (figure.complete and not best.complete):
                    figures[location] = figure
        rfid_locations = set(self.config.rfid_locations(self.zone))
        for location, figure in figures.items():
            if location not in rfid_locations:
                skus = {str(item["sku"]): int(item["qty"]) for item in figure.items}
                counts[location] = LocationCount(
                    location,
                    skus=skus,
                    complete=figure.complete,
                    source="vision",
                    items=figure.items,
                )
                continue
            rfid = counts[location]
            fused = fuse(self._rfid_figure(rfid), figure, self.zone_config.fusion_tolerance)
            rfid.skus = {str(item["sku"]): int(item["qty"]) for item in fused.items}
            rfid.complete, rfid.source = fused.complete, "fused"
            rfid.items, rfid.fusion = fused.items, fused.fusion

    @staticmethod
    def _rfid_figure(count: LocationCount) -> Figure:
        from gateway.vision.fusion import Figure

        return Figure(count.payload_items(), complete=count.complete)

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
        seconds = self.zone_config.scan_seconds
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.25))
            if self.progress is not None:
                self.progress(1.0 - max(left - 0.25, 0.0) / seconds, self.aggregator.reads)

    async def _consume(self, reader: Reader, outcome: ReaderOutcome) -> None:
        queue = reader.queue
        while True:
            batch = await queue.get()
            try:
                outcome.reads += self.aggregator.add(batch)
            finally:
                queue.task_done()

    async def _drain(self) -> None:
        """Wait until the consumers took what the stop flushed (queued when stop returned)."""
        await asyncio.gather(*(reader.queue.join() for reader in self.readers.values()))

    def _counts(self, outcomes: Mapping[str, ReaderOutcome]) -> dict[str, LocationCount]:
        failed = {name for name, outcome in outcomes.items() if not outcome.ok}
        incomplete = {
            location for name in failed for location in self.config.reader(name).antennas.values()
        }
        tallies: dict[str, LocationTally] = self.aggregator.tally(self.decoder)
        counts: dict[str, LocationCount] = {}
        for location in self.config.rfid_locations(self.zone):
            tally = tallies.get(location)
            counts[location] = LocationCount(
                location,
                skus=dict(tally.skus) if tally else {},
                unknown_epcs=list(tally.unknown_epcs) if tally else [],
                complete=location not in incomplete,
            )
        return counts

    async def _publish_count(self, count: LocationCount, observed: datetime) -> None:
        """Publish one location's count, unless this scan has published it already."""
        if count.location in self.published:
            return
        payload = contract.count_payload(
            gateway=self.config.gateway_id,
            site=self.config.site,
            zone=self.zone,
            location=count.location,
            scan_id=self.scan_id,
            observed_at=to_iso(observed),
            source=count.source,
            complete=count.complete,
            items=count.payload_items(),
            fusion=count.fusion,
        )
        topic = contract.count_topic(self.config.site, self.zone, count.location)
        await self.publisher.publish(topic, payload, retain=True)
        self.published.add(count.location)

    async def _publish_counts(self, result: ScanResult) -> None:
        for count in result.locations.values():
            await self._publish_count(count, result.ended_at)
        incomplete = [name for name, c in result.locations.items() if not c.complete]
        state = "completed" if result.complete else "incomplete"
        await self._publish_scan(
            scan_id=result.scan_id,
            state=state,
            started=result.started_at,
            ended=result.ended_at,
            incomplete=incomplete,
            outcomes=result.readers,
            cameras=[camera.as_json() for camera in result.cameras.values()],
        )
        result.published = True

    async def _publish_scan(
        self,
        *,
        scan_id: str,
        state: str,
        started: datetime,
        ended: datetime | None,
        incomplete: list[str],
        outcomes: Mapping[str, ReaderOutcome],
        cameras: list[dict[str, object]] | None = None,
    ) -> None:
        readers = []
        for outcome in outcomes.values():
            entry: dict[str, object] = {
                "name": outcome.name,
                "ok": outcome.ok,
                "reads": outcome.reads,
            }
            if outcome.error:
                entry["error"] = outcome.error
            readers.append(entry)
        payload = contract.scan_payload(
            gateway=self.config.gateway_id,
            site=self.config.site,
            zone=self.zone,
            scan_id=scan_id,
            state=state,
            started_at=to_iso(started),
            ended_at=to_iso(ended) if ended else None,
            locations=self.config.zone_locations(self.zone),
            incomplete_locations=incomplete,
            readers=readers,
            cameras=cameras or (),
            request_id=self.request_id,
        )
        await self.publisher.publish(
            contract.scan_topic(self.config.site, self.zone), payload, retain=True
        )
