"""The camera side of a zone scan: frames in, one count per ROI location out.

A fixed camera counts ``frames`` fresh frames spread over the scan window and publishes the
median per location (one frame with a forklift in front of the rack does not move the
count). A moving camera (robot cart, drone) feeds every frame of the window, with the pose it
reports, to a tracker, so an item seen in ten frames counts once; a location its path never
fully covered is incomplete. Detection runs in a worker thread, one frame at a time per camera.

A camera that delivers no usable frame makes its locations incomplete, like a reader that
drops out: never "0 found" for a shelf nobody looked at.

:class:`VisionPart` is the part a zone scan (:mod:`gateway.scan`) is given when its zone has
cameras: it starts one :class:`CameraCounter` per camera for the window, then adds what they
counted to the RFID counts (a location only a camera sees is published as ``source:
vision``, one both see is fused, :mod:`gateway.vision.fusion`). With ``publish_frames`` (the
default), a fixed camera also keeps the frame each location's median count came from, and the
part publishes it annotated, best effort, once the counts are out
(:mod:`gateway.vision.picture`, ``edgecount.frame/1``).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from drivers.camera.driver import Camera, CameraSettings
from drivers.camera.frame import Frame
from edgecount import contract
from gateway.config import CameraConfig, GatewayConfig
from gateway.counts import CameraOutcome, LocationCount
from gateway.publisher import Publisher
from gateway.vision.detectors import DetectorCache
from gateway.vision.frames import FrameKeeper
from gateway.vision.fusion import Figure, fuse
from gateway.vision.moving import MovingCounter
from gateway.vision.picture import Picture, location_picture, pick
from gateway.vision.roi import Roi, RoiCount, candidate_floor, count_rois
from gateway.vision.tracker import TrackerSettings
from models.detections import Detections
from models.detector import Detector

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CameraCounts:
    """What one camera counted: a figure per location, and the outcome."""

    outcome: CameraOutcome
    figures: dict[str, Figure] = field(default_factory=dict)
    pictures: dict[str, Picture] = field(default_factory=dict)
    """Fixed cameras with ``publish_frames``: the annotated frame of each location's count."""


def rois_of(config: CameraConfig) -> list[Roi]:
    """The camera's ROIs as counting regions."""
    return [
        Roi(roi.location, np.asarray(roi.polygon, dtype=np.float32), roi.sku) for roi in config.rois
    ]


def camera_settings(config: CameraConfig) -> CameraSettings:
    """Driver settings from the camera's configuration."""
    return CameraSettings(
        name=config.name,
        url=config.url,
        kind=config.kind,
        fps=config.fps,
        stall_seconds=config.stall_seconds,
        queue_size=config.queue_size,
    )


def build_cameras(config: GatewayConfig, names: list[str] | None = None) -> dict[str, Camera]:
    """Drivers for the named cameras (all when ``names`` is None), not yet started."""
    wanted = names if names is not None else [camera.name for camera in config.cameras]
    return {name: Camera(camera_settings(config.camera(name))) for name in wanted}


class VisionPart:
    """The cameras of one zone scan: count over the window, then add or fuse the figures.

    Args:
        config: The gateway configuration.
        zone: The zone scanned.
        cameras: Started cameras by name (at least the zone's).
        detectors: The process's detector cache (:mod:`gateway.runtime` owns it).
        publisher: Where the annotated frames go (:meth:`publish_frames`); None: nowhere.
    """

    def __init__(
        self,
        config: GatewayConfig,
        zone: str,
        cameras: Mapping[str, Camera],
        detectors: DetectorCache,
        publisher: Publisher | None = None,
    ) -> None:
        self.config = config
        self.zone = zone
        self.cameras = {name: cameras[name] for name in config.zones[zone].cameras}
        self.detectors = detectors
        self.publisher = publisher
        self.pictures: dict[str, Picture] = {}  # of the figures merged, by location

    def start(self) -> list[asyncio.Task[CameraCounts]]:
        """One counting task per camera over a window that starts now."""
        zone = self.config.zones[self.zone]
        window_end = time.monotonic() + zone.scan_seconds
        tasks = []
        for name, camera in self.cameras.items():
            counter = CameraCounter(self.config.camera(name), camera, self.detectors)
            tasks.append(asyncio.create_task(counter.run(window_end), name=f"camera:{name}"))
        return tasks

    def merge(self, counts: dict[str, LocationCount], camera_counts: list[CameraCounts]) -> None:
        """Add camera figures as vision counts, or fuse them with the RFID count, in place."""
        figures: dict[str, Figure] = {}
        self.pictures = {}
        for camera in camera_counts:
            for location, figure in camera.figures.items():
                best = figures.get(location)
                if best is None or (figure.complete and not best.complete):
                    figures[location] = figure
                    if (picture := camera.pictures.get(location)) is not None:
                        self.pictures[location] = picture
                    else:
                        self.pictures.pop(location, None)
        rfid_locations = set(self.config.rfid_locations(self.zone))
        tolerance = self.config.zones[self.zone].fusion_tolerance
        for location, figure in figures.items():
            if location not in rfid_locations:
                counts[location] = LocationCount(
                    location,
                    skus=figure.quantities,
                    complete=figure.complete,
                    source=contract.CountSource.VISION,
                    items=figure.items,
                )
                continue
            rfid = counts[location]
            seen = Figure(rfid.count_items(), complete=rfid.complete)
            fused = fuse(seen, figure, tolerance)
            rfid.skus = {item.sku: item.qty for item in fused.items}
            rfid.complete, rfid.source = fused.complete, contract.CountSource.FUSED
            rfid.items, rfid.fusion = fused.items, fused.fusion

    def publish_frames(self, scan_id: str) -> int:
        """Publish the annotated frame of each merged location (best effort); how many went.

        QoS 0, retained, outside the outbox: a frame the broker cannot take now is dropped
        and counted by the publisher, never queued; one that breaks the contract is logged.
        """
        if self.publisher is None:
            return 0
        sent = 0
        for location, picture in self.pictures.items():
            try:
                message = contract.frame_message(
                    gateway=self.config.gateway_id,
                    site=self.config.site,
                    zone=self.zone,
                    location=location,
                    scan_id=scan_id,
                    jpeg=picture.jpeg,
                    width=picture.width,
                    height=picture.height,
                    observed_at=datetime.fromtimestamp(picture.taken, UTC),
                )
                topic = contract.frame_topic(self.config.site, self.zone, location)
                sent += self.publisher.publish_transient(topic, message, retain=True)
            except contract.ContractError as exc:  # a frame is never worth a scan: log, go on
                log.warning("frame of %s not published: %s", location, exc)
        return sent


class CameraCounter:
    """Counts one camera's locations over one scan window."""

    def __init__(self, config: CameraConfig, camera: Camera, detectors: DetectorCache) -> None:
        self.config = config
        self.camera = camera
        self.detectors = detectors
        self.rois = rois_of(config)
        self.pictures: dict[str, Picture] = {}
        self.keeper = (
            FrameKeeper(config.collect_dir, config.collect_max)
            if config.collect_dir is not None
            else None
        )

    async def run(self, window_end: float) -> CameraCounts:
        """Count over the window ending at ``window_end`` (``time.monotonic()``).

        A moving camera counts every frame until the window ends. A fixed camera takes its
        frames spread over the window (the first now) and may take up to ``stall_seconds``
        past its end to get them, the time its watchdog needs to reconnect once.
        """
        outcome = CameraOutcome(self.config.name)
        try:
            # Loaded here (once per model, in a worker thread) so that a missing or broken
            # model fails this camera's counts, not the scan.
            detector = await asyncio.to_thread(self.detectors.get, self.config)
            _discard_queued(self.camera)
            if self.config.moving:
                figures = await self._moving(detector, window_end, outcome)
            else:
                figures = await self._fixed(detector, window_end, outcome)
        except Exception as exc:
            log.exception("camera %s: counting failed", self.config.name)
            outcome.ok, outcome.error = False, f"{type(exc).__name__}: {exc}"
            figures = {}
        if outcome.frames == 0:
            outcome.ok = False
            outcome.error = outcome.error or "no frame during the scan window"
        if not outcome.ok:
            figures = {
                roi.name: Figure((), complete=False) for roi in self.rois if roi.name not in figures
            } | {name: _incomplete(fig) for name, fig in figures.items()}
        return CameraCounts(outcome, figures, self.pictures)

    async def _frames(self, deadline: float) -> Frame | None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            return await self.camera.next_frame(timeout=left)
        except TimeoutError:
            return None

    async def _fixed(
        self, detector: Detector, window_end: float, outcome: CameraOutcome
    ) -> dict[str, Figure]:
        per_roi: dict[str, list[tuple[int, float]]] = {roi.name: [] for roi in self.rois}
        seen: list[_Seen] = []  # with publish_frames: each frame, to draw the median one
        wanted = self.config.frames
        start = time.monotonic()
        spacing = max(window_end - start, 0.0) / wanted
        deadline = window_end + self.config.stall_seconds
        while outcome.frames < wanted:
            due = start + outcome.frames * spacing
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)  # pacing, not synchronisation: frames spread out
                _discard_queued(self.camera)
            frame = await self._frames(deadline)
            if frame is None:
                break
            detections = await asyncio.to_thread(detector.detect, frame.image)
            counted = count_rois(detections, self.rois, conf=self.config.conf)
            for name, count in counted.items():
                if name in per_roi:
                    per_roi[name].append((count.count, count.confidence))
            outcome.frames += 1
            if self.config.publish_frames:
                seen.append(_Seen(frame, detections, counted))
            least = min((count.confidence for count in counted.values()), default=1.0)
            if least < self.config.collect_below:
                await self._keep(frame, least)
        if seen:
            self.pictures = await asyncio.to_thread(self._pictures, seen)
        return {
            roi.name: self._figure(roi, per_roi[roi.name], complete=bool(per_roi[roi.name]))
            for roi in self.rois
        }

    def _pictures(self, seen: list[_Seen]) -> dict[str, Picture]:
        """The annotated frame each location's median count came from (blocking)."""
        pictures: dict[str, Picture] = {}
        for roi in self.rois:
            on = [one for one in seen if roi.name in one.counted]
            if not on:
                continue
            chosen = on[pick([one.counted[roi.name].count for one in on])]
            picture = location_picture(
                chosen.frame.image,
                chosen.detections,
                roi,
                chosen.counted[roi.name],
                conf=self.config.conf,
                taken=chosen.frame.t,
            )
            if picture is not None:
                pictures[roi.name] = picture
        return pictures

    async def _keep(self, frame: Frame, confidence: float) -> None:
        """Save a frame counted with low confidence into ``collect_dir``; never fail the scan."""
        if self.keeper is None:
            return
        try:
            path = await asyncio.to_thread(self.keeper.keep, frame)
        except OSError as exc:
            # A full or read-only disk must not cost the count: log it, count on.
            log.warning("camera %s: cannot keep a low-confidence frame: %s", frame.camera, exc)
            return
        log.info("camera %s: kept %s (confidence %.2f)", frame.camera, path.name, confidence)

    async def _moving(
        self, detector: Detector, deadline: float, outcome: CameraOutcome
    ) -> dict[str, Figure]:
        conf = self.config.conf
        tracking = TrackerSettings(high=conf, start=conf, low=candidate_floor(conf))
        counter = MovingCounter(self.rois, settings=tracking, conf=candidate_floor(conf))
        while (frame := await self._frames(deadline)) is not None:
            detections = await asyncio.to_thread(detector.detect, frame.image)
            counter.add(detections, frame.pose, width=frame.image.shape[1])
            outcome.frames += 1
        figures: dict[str, Figure] = {}
        counts = counter.counts()
        for roi in self.rois:
            unique = counts.get(roi.name)
            if unique is None:
                figures[roi.name] = Figure((), complete=False)
                continue
            sample = [(unique.count, unique.confidence)]
            figures[roi.name] = self._figure(roi, sample, complete=unique.complete)
        return figures

    @staticmethod
    def _figure(roi: Roi, samples: list[tuple[int, float]], *, complete: bool) -> Figure:
        if not samples:
            return Figure((), complete=False)
        qty = round(statistics.median(count for count, _ in samples))
        confidence = round(statistics.fmean(conf for _, conf in samples), 4)
        item = contract.CountItem(
            sku=roi.sku or contract.UNKNOWN_SKU, qty=qty, confidence=confidence
        )
        return Figure((item,), complete=complete, confidence=confidence)


@dataclass(frozen=True, slots=True)
class _Seen:
    """One frame a fixed camera counted, with what it found there."""

    frame: Frame
    detections: Detections
    counted: Mapping[str, RoiCount]


def _discard_queued(camera: Camera) -> None:
    """Drop frames captured before the scan started: a count describes the scan window."""
    while not camera.queue.empty():
        camera.queue.get_nowait()


def _incomplete(figure: Figure) -> Figure:
    return Figure(figure.items, complete=False, confidence=figure.confidence)
