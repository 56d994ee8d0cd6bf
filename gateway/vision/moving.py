"""Unique item counts per location from a camera moving along an aisle.

A fixed camera counts the items in one image; a camera on a cart sees each item in many frames
and must count it once. :class:`MovingCounter` feeds every frame's detections to the
:class:`~gateway.vision.tracker.Tracker` (in aisle coordinates), and when asked for counts turns
the confirmed tracks into items: one per track, except that tracks at the same place are one
item whose track was lost and found again (:meth:`MovingCounter.items`). Each item counts once,
at the location whose polygon held its bottom-centre in most of the frames it was detected in
(a tie goes to the location that held it last). Tentative tracks (one-frame false positives,
mostly) never count.

It also keeps, per location, how many frames looked at it and whether every part of it was in
view in enough frames to count what stands there: a pass cut short, or a location at the edge of
what the camera reaches, is reported as incomplete rather than as a low count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gateway.vision.tracker import Track, Tracker, TrackerSettings, iou_matrix
from models.detections import Detections

Points = npt.NDArray[np.float64]

_OUTSIDE = -1


class RoiLike(Protocol):
    """A named location: a polygon in aisle pixels and the SKU it should hold."""

    @property
    def name(self) -> str:
        """Location name."""
        ...

    @property
    def polygon(self) -> npt.NDArray[np.float32]:
        """(K, 2) corners in aisle pixels."""
        ...

    @property
    def sku(self) -> str | None:
        """Planogram SKU, when known."""
        ...


@dataclass(frozen=True, slots=True)
class UniqueCount:
    """Items counted at one location over a pass.

    Attributes:
        location: Location name.
        sku: Planogram SKU of the location.
        count: Unique items assigned to the location.
        confidence: 0..1: the mean over its items of their mean detection score, lowered for
            items seen in few frames (1.0 for an empty location), times the share of the
            location covered.
        frames_seen: Frames whose field of view overlapped the location.
        complete: Every part of the location was in view in at least ``min_views`` frames.
        tracks: Ids of the counted tracks (an item followed by two tracks has both).
    """

    location: str
    sku: str | None
    count: int
    confidence: float
    frames_seen: int
    complete: bool
    tracks: tuple[int, ...]


class MovingCounter:
    """Counts unique items per location over one pass of a moving camera.

    Args:
        rois: Locations, with polygons in aisle coordinates (any objects with ``name``,
            ``polygon`` and ``sku``).
        frame_width: Frame width in pixels: how much of the aisle one frame shows. When None,
            the first ``add(..., width=...)`` sets it; until then a frame's view is taken to be
            the span of its detections, which never overstates coverage.
        settings: Tracker thresholds; the defaults when None.
        conf: Detections scoring below this are dropped before tracking.
        min_views: Frames a point must be in view in for its location to be complete; the
            tracker's ``min_hits`` when None.
        origin: Aisle x of the first frame's left edge, when the camera reports no pose.
        merge_iou: Least overlap of the median boxes of two tracks of one item (see
            :meth:`items`).
    """

    def __init__(
        self,
        rois: Sequence[RoiLike],
        *,
        frame_width: float | None = None,
        settings: TrackerSettings | None = None,
        conf: float = 0.1,
        min_views: int | None = None,
        origin: float = 0.0,
        merge_iou: float = 0.5,
    ) -> None:
        self.rois = list(rois)
        self.frame_width = frame_width
        self.conf = conf
        self.merge_iou = merge_iou
        self.tracker = Tracker(settings, origin=origin, frame_width=frame_width)
        self.min_views = self.tracker.settings.min_hits if min_views is None else min_views
        self._extent = np.array(
            [[np.min(r.polygon[:, 0]), np.max(r.polygon[:, 0])] for r in self.rois],
            dtype=np.float64,
        ).reshape(-1, 2)
        self._left = np.floor(self._extent[:, 0]).astype(np.int64)
        self._views = [
            np.zeros(int(np.ceil(hi)) - int(lo) + 1, dtype=np.int32)
            for lo, hi in zip(self._left, self._extent[:, 1], strict=True)
        ]
        self._frames_seen = np.zeros(len(self.rois), dtype=np.int64)

    def add(
        self, detections: Detections, pose: float | None = None, *, width: float | None = None
    ) -> list[Track]:
        """Take one frame.

        Args:
            detections: Detections in the frame's pixel coordinates.
            pose: Aisle x of the frame's left edge; None when the camera does not report it
                (the tracker then estimates it).
            width: The frame's width in pixels, if the counter was not told at construction.

        Returns:
            The confirmed tracks detected in this frame.
        """
        if width is not None:
            self.frame_width = self.tracker.frame_width = width
        kept = detections.select(detections.scores >= self.conf)
        active = self.tracker.update(kept, pose)
        start = self.tracker.pose if self.tracker.pose is not None else 0.0
        if self.frame_width is not None:
            self._cover(start, start + self.frame_width)
        elif len(kept):
            self._cover(
                start + float(kept.boxes[:, 0].min()), start + float(kept.boxes[:, 2].max())
            )
        return active

    def counts(self) -> dict[str, UniqueCount]:
        """Unique items per location so far, keyed by location name."""
        items = self.items()
        mine: dict[int, list[Item]] = {}
        for item, owner in zip(items, self._owners(items), strict=True):
            mine.setdefault(owner, []).append(item)
        min_hits = self.tracker.settings.min_hits
        out = {}
        for index, roi in enumerate(self.rois):
            here = mine.get(index, [])
            coverage = self.coverage(index)
            quality = [item.confidence(min_hits) for item in here]
            confidence = (float(np.mean(quality)) if quality else 1.0) * coverage
            out[roi.name] = UniqueCount(
                location=roi.name,
                sku=roi.sku,
                count=len(here),
                confidence=confidence,
                frames_seen=int(self._frames_seen[index]),
                complete=coverage >= 1.0,
                tracks=tuple(sorted(i for item in here for i in item.tracks)),
            )
        return out

    def items(self) -> list[Item]:
        """The unique items so far: confirmed tracks, with fragments of one item joined.

        Items stand still, so two confirmed tracks at the same place (their median boxes in
        aisle coordinates overlap by ``merge_iou``) follow one item: its track was lost and
        started again, say after a false positive pulled it away (the two may even share a
        frame, the old one on the false positive), or the detector boxed it twice. Two items
        cannot overlap that much in view: one behind another is hidden.
        """
        tracks = self.tracker.confirmed()
        if not tracks:
            return []
        medians = np.array([np.median(np.asarray(t.seen), axis=0) for t in tracks])
        overlap = np.triu(iou_matrix(medians, medians), k=1)
        group = list(range(len(tracks)))
        for i, j in zip(*np.nonzero(overlap >= self.merge_iou), strict=True):
            a, b = _root(group, int(i)), _root(group, int(j))
            if a != b:
                group[max(a, b)] = min(a, b)
        members: dict[int, list[Track]] = {}
        for index, track in enumerate(tracks):
            members.setdefault(_root(group, index), []).append(track)
        return [Item.of(parts) for parts in members.values()]

    def coverage(self, index: int) -> float:
        """Share of location ``index``'s x-extent in view in at least ``min_views`` frames."""
        views = self._views[index]
        return float(np.mean(views >= self.min_views)) if views.size else 0.0

    def unassigned(self) -> list[Item]:
        """Items whose bottom-centre was mostly outside every location."""
        items = self.items()
        owners = self._owners(items)
        return [item for item, owner in zip(items, owners, strict=True) if owner == _OUTSIDE]

    def _cover(self, left: float, right: float) -> None:
        """Record one frame's field of view, ``left..right`` in aisle pixels."""
        seen = (self._extent[:, 1] >= left) & (self._extent[:, 0] <= right)
        self._frames_seen += seen
        for index in np.flatnonzero(seen):
            lo = self._left[index]
            views = self._views[index]
            first = max(0, int(np.ceil(left)) - lo)
            last = min(views.size, int(np.floor(right)) - lo + 1)
            views[first:last] += 1

    def _owners(self, items: list[Item]) -> list[int]:
        """Each item's location: the one holding its bottom-centre in most of its frames.

        A tie goes to the location that held it last; _OUTSIDE when outside every location
        wins the vote.
        """
        if not items:
            return []
        points = np.concatenate([item.points for item in items])
        frames = np.concatenate([item.frames for item in items])
        owner = np.repeat(np.arange(len(items)), [len(item.points) for item in items])
        where = np.full(len(points), _OUTSIDE, dtype=np.int64)
        for index, roi in enumerate(self.rois):
            free = where == _OUTSIDE
            where[free & inside(points, roi.polygon)] = index
        labels = len(self.rois) + 1
        cell = owner * labels + (where - _OUTSIDE)
        votes = np.bincount(cell, minlength=len(items) * labels)
        latest = np.zeros(len(items) * labels, dtype=np.int64)
        np.maximum.at(latest, cell, frames)
        key = votes * (int(frames.max()) + 1) + latest
        best = key.reshape(len(items), labels).argmax(axis=1) + _OUTSIDE
        return [int(label) for label in best]


@dataclass(frozen=True, slots=True)
class Item:
    """One counted item: the confirmed tracks that followed it, pooled.

    Attributes:
        tracks: Track ids, in order.
        points: (N, 2) bottom-centre of every detection of the item, aisle pixels.
        frames: (N,) frame number of each detection.
        scores: (N,) score of each detection.
    """

    tracks: tuple[int, ...]
    points: Points
    frames: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float64]

    @classmethod
    def of(cls, tracks: list[Track]) -> Item:
        """Pool the detections of the tracks of one item."""
        return cls(
            tracks=tuple(sorted(t.id for t in tracks)),
            points=np.array([p for t in tracks for p in t.positions], dtype=np.float64),
            frames=np.array([f for t in tracks for f in t.frames], dtype=np.int64),
            scores=np.array([s for t in tracks for s in t.scores], dtype=np.float64),
        )

    def confidence(self, min_hits: int) -> float:
        """Mean score, lowered in proportion when seen in fewer than ``3 * min_hits`` frames."""
        return float(np.mean(self.scores)) * min(1.0, len(self.scores) / (3 * max(min_hits, 1)))


def _root(group: list[int], index: int) -> int:
    while group[index] != index:
        group[index] = group[group[index]]
        index = group[index]
    return index


def inside(points: Points, polygon: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    """Which points lie inside a polygon (even-odd rule; points on an edge may go either way).

    Args:
        points: (N, 2) ``x, y``.
        polygon: (K, 2) corners in order.

    Returns:
        (N,) True for the points inside.
    """
    x, y = points[:, 0], points[:, 1]
    corners = np.asarray(polygon, dtype=np.float64)
    result = np.zeros(len(points), dtype=bool)
    for (x1, y1), (x2, y2) in zip(corners, np.roll(corners, -1, axis=0), strict=True):
        crosses = (y1 > y) != (y2 > y)
        if not np.any(crosses):
            continue
        at = x1 + (y - y1) * (x2 - x1) / np.where(y2 != y1, y2 - y1, 1.0)
        result ^= crosses & (x < at)
    return result
