"""One scan of a mobile zone: the readers move past the bays and publish them as they pass.

A mobile zone (``mobile:`` in its configuration) has readers on a robot or cart and a location
reference tag on every bay. The reads go to a :class:`gateway.mobile.MobileAssigner` instead
of the fixed zones' window aggregator; every :data:`CLOSE_EVERY` seconds of the window, the
bays the reader has passed (:meth:`~gateway.mobile.MobileAssigner.closed_bays`) are published
as ``complete: true`` counts. When the window ends the remaining bays are published from
:meth:`~gateway.mobile.MobileAssigner.finish`: if a reader failed during the window the run
stopped early, and the bays it did not finish are ``complete: false``. Each location is
published once per scan.

The assigner runs on the clock of the reads: "now" is the newest read's time stamp. A bay
therefore closes only while reads keep coming in, so a reader that goes silent (its link
dropped, not yet detected) closes nothing it did not actually pass; and closing stops as soon
as a reader's failure is seen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from drivers.base import Reader
from gateway.config import GatewayConfig
from gateway.mobile import MobileAssigner
from gateway.publisher import Publisher
from gateway.scan import LocationCount, ReaderOutcome, ZoneScan

log = logging.getLogger(__name__)

CLOSE_EVERY = 0.25
"""Seconds between two looks for bays the reader has passed."""


class MobileZoneScan(ZoneScan):
    """Runs one scan of a mobile zone with readers that are already started.

    Takes the arguments of :class:`gateway.scan.ZoneScan`; the zone must have ``mobile`` set.
    """

    def __init__(
        self,
        config: GatewayConfig,
        zone: str,
        readers: Mapping[str, Reader],
        publisher: Publisher,
        **options: Any,
    ) -> None:
        super().__init__(config, zone, readers, publisher, **options)
        mobile = self.zone_config.mobile
        if mobile is None:
            raise ValueError(f"zone {zone!r} is not a mobile zone")
        self.assigner = MobileAssigner(
            mobile.references,
            bays=mobile.locations(),
            window=mobile.window_seconds,
            min_reads=self.zone_config.min_reads,
            decoder=self.decoder,
        )
        self.reads = 0
        self.latest_read: float | None = None
        """Time stamp of the newest read: the assigner's "now"."""

    async def _consume(self, reader: Reader, outcome: ReaderOutcome) -> None:
        queue = reader.queue
        while True:
            batch = await queue.get()
            try:
                self.assigner.add(batch)
                outcome.reads += len(batch)
                self.reads += len(batch)
                if batch:
                    newest = max(read.t for read in batch)
                    if self.latest_read is None or newest > self.latest_read:
                        self.latest_read = newest
            finally:
                queue.task_done()

    async def _window(self) -> None:
        seconds = self.zone_config.scan_seconds
        deadline = time.monotonic() + seconds
        failures = {name: reader.failures for name, reader in self.readers.items()}
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, CLOSE_EVERY))
            if self.progress is not None:
                self.progress(1.0 - max(left - CLOSE_EVERY, 0.0) / seconds, self.reads)
            failed = any(reader.failures != failures[n] for n, reader in self.readers.items())
            if not failed:
                await self._publish_passed()

    async def _publish_passed(self) -> None:
        """Publish the bays the reader has passed since the last look."""
        if self.latest_read is None:
            return
        observed = datetime.now(UTC)
        for bay, count in self.assigner.closed_bays(self.latest_read).items():
            log.info("zone %s: bay %s passed, %d items", self.zone, bay, count.total)
            await self._publish_count(count, observed)

    def _counts(self, outcomes: Mapping[str, ReaderOutcome]) -> dict[str, LocationCount]:
        stopped_early = not all(outcome.ok for outcome in outcomes.values())
        counts = self.assigner.finish(stopped_early=stopped_early)
        for epc, bay in sorted(self.assigner.late.items()):
            log.warning(
                "zone %s: item %s belongs to bay %s, already published without it",
                self.zone,
                epc.hex(),
                bay,
            )
        ordered = {location: counts.pop(location) for location in self.assigner.bays}
        ordered.update(counts)
        return ordered
