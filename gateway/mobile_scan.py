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

With ``assign: pose`` the zone's ``robot`` reports where it is on
``edgecount/v1/{site}/pose/{robot}`` (:mod:`edgecount.pose`); the scan subscribes through the
publisher for its duration, hands the poses to a :class:`gateway.mobile.PoseAssigner`, and
closes a bay once the robot has covered its extent and is ``margin_metres`` past it, at the
newest read's time (so the same rule holds: a silent reader closes nothing). The poses' ``at``
(UTC) becomes UNIX seconds, the clock of :attr:`drivers.base.TagRead.t`: robot, gateway and
readers must be NTP-synced. A malformed pose is rejected, counted (:attr:`poses_rejected`) and
logged, and the scan goes on; if no pose arrives at all, no bay was seen to be covered and
every bay is published ``complete: false`` (never "0 found").
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from drivers.base import Reader
from edgecount.contract import ContractError
from edgecount.pose import parse_pose, pose_topic
from gateway.config import GatewayConfig
from gateway.mobile import MobileAssigner, PoseAssigner
from gateway.publisher import MessageCallback, Publisher
from gateway.scan import LocationCount, ReaderOutcome, ScanResult, ZoneScan

log = logging.getLogger(__name__)

CLOSE_EVERY = 0.25
"""Seconds between two looks for bays the reader has passed."""

_routes: weakref.WeakKeyDictionary[Publisher, dict[str, list[MessageCallback]]] = (
    weakref.WeakKeyDictionary()
)


def listen(publisher: Publisher, topic: str, callback: MessageCallback) -> Callable[[], None]:
    """Hand ``topic``'s messages to ``callback`` until the returned function is called.

    :class:`~gateway.publisher.Publisher` has no unsubscribe, so each (publisher, topic) is
    subscribed once and its messages go to whichever scans listen at the moment; between
    scans they are dropped.
    """
    routes = _routes.setdefault(publisher, {})
    listeners = routes.get(topic)
    if listeners is None:
        listeners = routes[topic] = []
        targets = listeners

        def dispatch(topic: str, payload: bytes) -> None:
            for target in list(targets):
                target(topic, payload)

        publisher.subscribe(topic, dispatch)
    listeners.append(callback)
    return lambda: listeners.remove(callback)


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
        options = {
            "bays": mobile.locations(),
            "window": mobile.window_seconds,
            "min_reads": self.zone_config.min_reads,
            "decoder": self.decoder,
        }
        self.pose_topic: str | None = None
        """The robot's pose topic, with ``assign: pose``."""
        self.assigner: MobileAssigner
        if mobile.assign == "pose" and mobile.robot is not None and mobile.extents is not None:
            self.pose_topic = pose_topic(config.site, mobile.robot)
            self.assigner = PoseAssigner(
                mobile.references, mobile.extents, margin=mobile.margin_metres, **options
            )
        else:
            self.assigner = MobileAssigner(mobile.references, **options)
        self.poses = 0
        """Poses received during this scan."""
        self.poses_rejected = 0
        """Pose messages rejected as malformed during this scan."""
        self.reads = 0
        self.latest_read: float | None = None
        """Time stamp of the newest read: the assigner's "now"."""

    async def run(self, scan_id: str | None = None, request_id: str | None = None) -> ScanResult:
        """Run the scan (see :meth:`gateway.scan.ZoneScan.run`), listening to the robot's poses."""
        if self.pose_topic is None:
            return await super().run(scan_id, request_id)
        stop_listening = listen(self.publisher, self.pose_topic, self._on_pose)
        try:
            return await super().run(scan_id, request_id)
        finally:
            stop_listening()

    def _on_pose(self, topic: str, payload: bytes) -> None:
        """A pose message: add it, or count, log and drop it when malformed."""
        assert isinstance(self.assigner, PoseAssigner)
        try:
            pose = parse_pose(payload, topic=topic)
        except ContractError as exc:
            self.poses_rejected += 1
            # The first one loudly; a robot that keeps sending bad poses would flood the log
            # 10 times a second (the scan's summary counts them all).
            level = logging.WARNING if self.poses_rejected == 1 else logging.DEBUG
            log.log(level, "zone %s: rejected pose on %s: %s", self.zone, topic, exc)
            return
        self.assigner.add_pose(pose.t, pose.x)
        self.poses += 1

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
        if self.pose_topic is not None:
            log.log(
                logging.WARNING if self.poses_rejected else logging.INFO,
                "zone %s: %d poses on %s, %d rejected",
                self.zone,
                self.poses,
                self.pose_topic,
                self.poses_rejected,
            )
            if not self.poses:
                log.warning("zone %s: no pose on %s: bays incomplete", self.zone, self.pose_topic)
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
