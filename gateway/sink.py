"""Where a zone scan's findings go: its location counts and its scan messages.

A :class:`CountSink` publishes, for one zone, the ``edgecount.count/1`` of each location
(retained, at most once per scan: a mobile zone publishes bays as the reader passes them and
the rest when the window ends) and the ``edgecount.scan/1`` messages that say a scan started
and how it ended.

Counts that are ready together (a window's close, a tick of a mobile scan) go out as one
batch (:meth:`~gateway.publisher.Publisher.publish_many`: one outbox transaction, one fsync,
rather than one per count). The message that says how a scan ended is stored after them, on
its own: only once every count of the scan was stored (a rejected count raises first, the
scan fails, and nothing says it ended whole).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
        await self.publish_counts([count], observed)

    async def publish_counts(self, counts: Iterable[LocationCount], observed: datetime) -> None:
        """Publish, as one batch, the counts of locations this scan has not published yet.

        Args:
            counts: Location counts, in the order they are to go out (a location given
                twice goes out once, the first time).
            observed: When they were observed.

        Raises:
            contract.ContractError: A count broke the contract (the others were stored).
            OutboxFullError: No room for some of them (those before were stored).
        """
        fresh: dict[str, LocationCount] = {}
        for count in counts:
            if count.location not in self.published:
                fresh.setdefault(count.location, count)
        if not fresh:
            return
        batch = [
            (
                contract.count_topic(self.config.site, self.zone, location),
                self._draft(count, observed),
            )
            for location, count in fresh.items()
        ]
        await self.publisher.publish_many(batch, retain=True)
        self.published.update(fresh)

    def _draft(self, count: LocationCount, observed: datetime) -> contract.CountDraft:
        return contract.count_draft(
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

    async def publish_started(
        self, started: datetime, readers: Mapping[str, ReaderOutcome]
    ) -> None:
        """Publish that the scan started (state ``started``)."""
        await self._publish_scan(
            contract.ScanState.STARTED, started=started, ended=None, incomplete=(), readers=readers
        )

    async def publish_result(self, result: ScanResult) -> None:
        """Publish the counts not yet out (a batch), then how the scan ended; mark it published."""
        await self.publish_counts(result.locations.values(), result.ended_at)
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
