"""The tally of a mobile zone: the readers move past the bays, which are published as they pass.

A mobile zone (``mobile:`` in its configuration) has readers on a robot or cart and a location
reference tag on every bay. :class:`MobileTally` is its zone scan's tally strategy
(:class:`gateway.tally.Tally`): the reads go to a :class:`gateway.mobile.MobileAssigner`
instead of the fixed zones' window aggregator; at every look of the window
(:data:`gateway.scan.WINDOW_TICK`), the bays the reader has passed
(:meth:`~gateway.mobile.MobileAssigner.closed_bays`) are published as ``complete: true``
counts. When the window ends the remaining bays are published from
:meth:`~gateway.mobile.MobileAssigner.finish`: if a reader failed during the window the run
stopped early, and the bays it did not finish are ``complete: false``. Each location is
published once per scan.

The assigner runs on the clock of the reads: "now" is the newest read's time stamp. A bay
therefore closes only while reads keep coming in, so a reader that goes silent (its link
dropped, not yet detected) closes nothing it did not actually pass; and closing stops as soon
as a reader's failure is seen (the zone scan stops asking).

With ``assign: pose`` the zone's ``robot`` reports where it is on
``edgecount/v1/{site}/pose/{robot}`` (:mod:`edgecount.pose`); the tally subscribes through the
publisher for the scan's duration, hands the poses to a :class:`gateway.mobile.PoseAssigner`, and
closes a bay once the robot has covered its extent and is ``margin_metres`` past it, at the
newest read's time (so the same rule holds: a silent reader closes nothing). The poses' ``at``
(UTC) becomes UNIX seconds, the clock of :attr:`drivers.base.TagRead.t`: robot, gateway and
readers must be NTP-synced. A malformed pose is rejected, counted (:attr:`poses_rejected`) and
logged, and the scan goes on; if no pose arrives at all, no bay was seen to be covered and
every bay is published ``complete: false`` (never "0 found").
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence

from drivers.base import TagRead
from edgecount.contract import ContractError
from edgecount.pose import parse_pose, pose_topic
from gateway.config import GatewayConfig
from gateway.counts import LocationCount, ReaderOutcome
from gateway.epc import EpcDecoder
from gateway.mobile import MobileAssigner, PoseAssigner
from gateway.publisher import MessageCallback, Publisher

log = logging.getLogger(__name__)

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


class MobileTally:
    """The tally strategy of a mobile zone (see the module's description).

    Args:
        config: The gateway configuration.
        zone: The zone scanned; it must have ``mobile`` set.
        decoder: Turns EPCs into SKUs.
        publisher: Where the robot's poses come from, with ``assign: pose``.

    Raises:
        ValueError: The zone is not a mobile zone.
    """

    def __init__(
        self, config: GatewayConfig, zone: str, decoder: EpcDecoder, publisher: Publisher
    ) -> None:
        zone_config = config.zones[zone]
        mobile = zone_config.mobile
        if mobile is None:
            raise ValueError(f"zone {zone!r} is not a mobile zone")
        self.zone = zone
        self.publisher = publisher
        bays, window, min_reads = mobile.locations(), mobile.window_seconds, zone_config.min_reads
        self.pose_topic: str | None = None
        """The robot's pose topic, with ``assign: pose``."""
        self.assigner: MobileAssigner
        if mobile.assign == "pose" and mobile.robot is not None and mobile.extents is not None:
            self.pose_topic = pose_topic(config.site, mobile.robot)
            self.assigner = PoseAssigner(
                mobile.references,
                mobile.extents,
                margin=mobile.margin_metres,
                bays=bays,
                window=window,
                min_reads=min_reads,
                decoder=decoder,
            )
        else:
            self.assigner = MobileAssigner(
                mobile.references, bays=bays, window=window, min_reads=min_reads, decoder=decoder
            )
        self.poses = 0
        """Poses received during this scan."""
        self.poses_rejected = 0
        """Pose messages rejected as malformed during this scan."""
        self.reads = 0
        """Reads taken so far."""
        self.latest_read: float | None = None
        """Time stamp of the newest read: the assigner's "now"."""

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """Listen to the robot's poses (with ``assign: pose``) for the duration of the block."""
        if self.pose_topic is None:
            yield
            return
        stop_listening = listen(self.publisher, self.pose_topic, self._on_pose)
        try:
            yield
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

    def add(self, batch: Sequence[TagRead]) -> int:
        """Take a batch; returns its number of reads."""
        self.assigner.add(batch)
        self.reads += len(batch)
        if batch:
            newest = max(read.t for read in batch)
            if self.latest_read is None or newest > self.latest_read:
                self.latest_read = newest
        return len(batch)

    def passed(self) -> list[LocationCount]:
        """The bays the reader has passed since the last look (by the newest read's clock)."""
        if self.latest_read is None:
            return []
        bays = self.assigner.closed_bays(self.latest_read)
        for bay, count in bays.items():
            log.info("zone %s: bay %s passed, %d items", self.zone, bay, count.total)
        return list(bays.values())

    def counts(self, outcomes: Mapping[str, ReaderOutcome]) -> dict[str, LocationCount]:
        """Every bay; those a run stopped early (a reader failed) did not finish are incomplete."""
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
