"""Where a zone scan's findings go: its location counts and its scan messages.

A :class:`CountSink` publishes, for one zone, the ``edgecount.count/1`` of each location
(retained, at most once per scan: a mobile zone publishes bays as the reader passes them and
the rest when the window ends) and the ``edgecount.scan/1`` messages that say a scan started
and how it ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from edgecount import contract
from edgecount.timefmt import to_iso
from gateway.config import GatewayConfig
from gateway.counts import LocationCount, ReaderOutcome, ScanResult
from gateway.publisher import Publisher


class CountSink:
    """Publishes one zone's scans through a publisher.

    Args:
        config: The gateway configuration.
        zone: The zone whose scans this sink publishes.
        publisher: Where the messages go.
    """

    def __init__(self, config: GatewayConfig, zone: str, publisher: Publisher) -> None:
        self.config = config
        self.zone = zone
        self.publisher = publisher
        self.scan_id = ""
        self.request_id: str | None = None
        """The scan request the current scan answers (carried in its scan messages)."""
        self.published: set[str] = set()
        """Locations whose count the current scan has published (each goes out once)."""

    def begin(self, scan_id: str, request_id: str | None) -> None:
        """Start publishing a new scan: nothing of it published yet."""
        self.scan_id = scan_id
        self.request_id = request_id
        self.published = set()

    async def publish_count(self, count: LocationCount, observed: datetime) -> None:
        """Publish one location's count, unless this scan has published it already."""
        if count.location in self.published:
            return
        draft = contract.count_draft(
            gateway=self.config.gateway_id,
            site=self.config.site,
            zone=self.zone,
            location=count.location,
            scan_id=self.scan_id,
            observed_at=to_iso(observed),
            source=count.source,
            complete=count.complete,
            items=count.count_items(),
            fusion=count.fusion,
        )
        topic = contract.count_topic(self.config.site, self.zone, count.location)
        await self.publisher.publish(topic, draft, retain=True)
        self.published.add(count.location)

    async def publish_started(
        self, started: datetime, readers: Mapping[str, ReaderOutcome]
    ) -> None:
        """Publish that the scan started (state ``started``)."""
        await self._publish_scan(
            contract.ScanState.STARTED, started=started, ended=None, incomplete=(), readers=readers
        )

    async def publish_result(self, result: ScanResult) -> None:
        """Publish every count not yet out, then how the scan ended; mark it published."""
        for count in result.locations.values():
            await self.publish_count(count, result.ended_at)
        incomplete = tuple(name for name, c in result.locations.items() if not c.complete)
        await self._publish_scan(
            contract.ScanState.COMPLETED if result.complete else contract.ScanState.INCOMPLETE,
            started=result.started_at,
            ended=result.ended_at,
            incomplete=incomplete,
            readers=result.readers,
            cameras=tuple(camera.report() for camera in result.cameras.values()),
        )
        result.published = True

    async def _publish_scan(
        self,
        state: contract.ScanState,
        *,
        started: datetime,
        ended: datetime | None,
        incomplete: tuple[str, ...],
        readers: Mapping[str, ReaderOutcome],
        cameras: tuple[contract.CameraReport, ...] = (),
    ) -> None:
        draft = contract.ScanDraft(
            state=state,
            scan_id=self.scan_id,
            zone=self.zone,
            gateway=self.config.gateway_id,
            site=self.config.site,
            started_at=to_iso(started),
            locations=tuple(self.config.zone_locations(self.zone)),
            incomplete_locations=incomplete,
            readers=tuple(outcome.report() for outcome in readers.values()),
            cameras=cameras or None,
            ended_at=to_iso(ended) if ended else None,
            request_id=self.request_id,
        )
        await self.publisher.publish(
            contract.scan_topic(self.config.site, self.zone), draft, retain=True
        )
