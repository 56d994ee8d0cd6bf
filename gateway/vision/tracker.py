"""Multi-object tracking of shelf items across the frames of a moving camera, ByteTrack-style.

Items stand still on the racking while the camera moves along the aisle, so tracks live in
aisle coordinates: a detection's aisle x is its frame x plus the camera's pose (the frame's left
edge along the aisle). Once the pose is applied, an item's box barely moves from frame to frame
and plain IoU association works even for dense rows of identical boxes. What the pose misses is
residual motion, which each track follows with a small constant-velocity (alpha-beta) filter.

When the camera reports no pose the tracker estimates it (dead reckoning from the origin):
every detection is compared with every track seen in the previous frame that stands in the same
row and has the same shape, and the horizontal displacement most of those pairs agree on is the
camera's shift. A row of identical items also agrees on shifts of one item pitch, so when the
frame width is known the candidates are checked against what each frame could see (see
:func:`estimate_shift`). With too few votes, say while the camera looks at a bare end wall, it
falls back to constant velocity, which cannot know that a standing camera started to move: the
pass should start with items in view.

Association follows ByteTrack (Zhang et al., 2022): confident detections are matched first to
confirmed tracks, then weak detections to the tracks still unmatched (a weak detection extends a
track but never starts one), then the remaining detections to tentative tracks. Matching is
greedy by descending IoU. A track is confirmed after ``min_hits`` detections; a tentative track
is dropped after ``tentative_age`` missed frames, a confirmed one after ``max_age``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from models.detections import Detections

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """Thresholds of the tracker.

    Attributes:
        high: Detections scoring at least this are confident (first association).
        low: Detections scoring below this are ignored.
        start: A new track needs an unmatched confident detection scoring at least this.
        match_iou: Least IoU for confident detections against confirmed tracks.
        low_iou: Least IoU for weak detections against the remaining confirmed tracks.
        tentative_iou: Least IoU for the remaining detections against tentative tracks.
        duplicate_iou: An unmatched detection overlapping a track matched in the same frame, or
            a more confident new detection, by at least this is a duplicate of that item, not a
            new one.
        min_hits: Detections that confirm a track.
        max_age: Frames a confirmed track survives without a detection.
        tentative_age: Frames a tentative track survives without a detection (an item seen in
            few frames, say at a fast pan, may be missed once while it is tentative).
        backfill: Frames back a new track claims the unmatched weak detections at its place,
            as hits: an item that scored low in the frames before its first confident detection
            is confirmed sooner (it may be in view for few frames).
        gain: Share of the residual (detection minus prediction) a track's box takes.
        reshape_gain: The same for a detection of another shape than the track's box.
        velocity_gain: Share of the residual per frame added to a track's velocity.
        max_shift: Largest camera shift per frame searched for when no pose is reported (px).
        jitter: Largest difference of one edge of a still item between two frames, in pixels
            (detector jitter plus mount wobble): the slack of a shift vote's row and shape.
        shape_tolerance: Largest relative change of width or height (beyond ``jitter``) for a
            shift vote, and for a detection to update a track's velocity (an item cut by the
            frame's edge changes shape without moving).
    """

    high: float = 0.5
    low: float = 0.1
    start: float = 0.5
    match_iou: float = 0.3
    low_iou: float = 0.4
    tentative_iou: float = 0.5
    duplicate_iou: float = 0.5
    min_hits: int = 3
    max_age: int = 30
    tentative_age: int = 2
    backfill: int = 4
    gain: float = 0.7
    reshape_gain: float = 0.3
    velocity_gain: float = 0.2
    max_shift: float = 240.0
    jitter: float = 10.0
    shape_tolerance: float = 0.15


@dataclass(eq=False, slots=True)
class Track:
    """One item followed across frames, in aisle coordinates.

    Attributes:
        id: Unique within the tracker, in order of creation.
        box: (4,) smoothed ``x1, y1, x2, y2`` in aisle pixels.
        velocity: (2,) residual motion of the box's centre per frame, ``dx, dy``.
        hits: Detections matched to the track.
        age: Frames since the track started (1 in its first frame).
        missed: Frames since its last detection (0 when detected in the latest frame).
        confirmed: Whether it has had ``min_hits`` detections.
        scores: Score of each matched detection.
        seen: Box of each matched detection, aisle pixels.
        frames: Frame number of each matched detection.
    """

    id: int
    box: FloatArray
    velocity: FloatArray = field(default_factory=lambda: np.zeros(2))
    hits: int = 0
    age: int = 1
    missed: int = 0
    confirmed: bool = False
    scores: list[float] = field(default_factory=list)
    seen: list[tuple[float, float, float, float]] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)

    @property
    def mean_score(self) -> float:
        """Mean score of the detections matched to the track."""
        return float(np.mean(self.scores)) if self.scores else 0.0

    @property
    def positions(self) -> list[tuple[float, float]]:
        """Bottom-centre ``(x, y)`` of each matched detection: where the item stood, aisle px."""
        return [((x1 + x2) / 2, y2) for x1, _, x2, y2 in self.seen]

    def predicted(self) -> FloatArray:
        """Where the box should be in the current frame (``missed`` frames after its last)."""
        out: FloatArray = self.box + np.tile(self.velocity, 2) * self.missed
        return out


class Tracker:
    """ByteTrack-style tracker with camera-motion compensation along the aisle.

    Args:
        settings: Thresholds; the defaults when None.
        origin: Pose assumed for the first frame when the camera reports none.
        frame_width: Frame width in pixels; when known, an estimated camera shift is checked
            against what each frame could see (see :func:`estimate_shift`).
    """

    def __init__(
        self,
        settings: TrackerSettings | None = None,
        *,
        origin: float = 0.0,
        frame_width: float | None = None,
    ) -> None:
        self.settings = settings or TrackerSettings()
        self.origin = origin
        self.frame_width = frame_width
        self.tracks: list[Track] = []
        """Live tracks, tentative and confirmed."""
        self.finished: list[Track] = []
        """Confirmed tracks that have died."""
        self.frame = 0
        """Frames processed."""
        self.pose: float | None = None
        """The latest frame's pose, reported or estimated."""
        self.camera_velocity = 0.0
        """The camera's latest shift per frame along the aisle, in pixels."""
        self._next_id = 1
        self._weak: deque[_Weak] = deque(maxlen=max(self.settings.backfill, 1))

    def update(self, detections: Detections, pose: float | None = None) -> list[Track]:
        """Take one frame's detections and advance every track.

        Args:
            detections: Detections in frame pixel coordinates.
            pose: Aisle x of the frame's left edge; None to estimate it from the detections.

        Returns:
            The confirmed tracks detected in this frame.
        """
        self.frame += 1
        keep = detections.scores >= self.settings.low
        boxes = detections.boxes[keep].astype(np.float64).reshape(-1, 4)
        scores = detections.scores[keep].astype(np.float64)
        for track in self.tracks:
            track.age += 1
            track.missed += 1
        predicted = np.array([t.predicted() for t in self.tracks], dtype=np.float64).reshape(-1, 4)
        boxes[:, [0, 2]] += self._locate(boxes, pose)
        self._associate(boxes, scores, predicted)
        self._retire()
        return [t for t in self.tracks if t.confirmed and t.missed == 0]

    def confirmed(self) -> list[Track]:
        """Every track ever confirmed, dead or alive, in order of creation."""
        live = [t for t in self.tracks if t.confirmed]
        return sorted(self.finished + live, key=lambda t: t.id)

    def _locate(self, boxes: FloatArray, pose: float | None) -> float:
        """Set and return the frame's pose: the reported one, or the camera shift voted for."""
        if pose is None:
            prior = self.origin if self.pose is None else self.pose + self.camera_velocity
            # Items stand still: their last boxes, not their residual motion, anchor the vote
            # (a velocity shared by every track is indistinguishable from camera motion).
            recent = [t.box for t in self.tracks if t.missed == 1]
            reference = np.array(recent, dtype=np.float64).reshape(-1, 4)
            shifted = boxes + np.array([prior, 0.0, prior, 0.0])
            known = self.frame_width is not None and self.pose is not None
            views = (self.pose or 0.0, prior, self.frame_width or 0.0) if known else None
            s = self.settings
            tolerances = (s.jitter, s.shape_tolerance)
            shift = estimate_shift(reference, shifted, s.max_shift, *tolerances, views=views)
            pose = prior + (shift or 0.0)
        if self.pose is not None:
            self.camera_velocity = pose - self.pose
        self.pose = pose
        return pose

    def _associate(self, boxes: FloatArray, scores: FloatArray, predicted: FloatArray) -> None:
        s = self.settings
        confirmed = np.array([t.confirmed for t in self.tracks], dtype=bool)
        tracks = np.flatnonzero(confirmed)
        high = np.flatnonzero(scores >= s.high)
        low = np.flatnonzero(scores < s.high)
        matches, tracks, high = _stage(predicted, boxes, tracks, high, s.match_iou)
        more, _, low = _stage(predicted, boxes, tracks, low, s.low_iou)
        matches += more
        rest = np.concatenate([high, low])
        more, _, rest = _stage(predicted, boxes, np.flatnonzero(~confirmed), rest, s.tentative_iou)
        matches += more
        for t, d in matches:
            self._hit(self.tracks[t], predicted[t], boxes[d], float(scores[d]))
        self._start(boxes, scores, rest, boxes[[d for _, d in matches]].reshape(-1, 4))

    def _start(
        self, boxes: FloatArray, scores: FloatArray, rest: IndexArray, matched: FloatArray
    ) -> None:
        """Start tracks on the confident detections left over; keep the weak ones for a while."""
        s = self.settings
        starts = rest[scores[rest] >= s.start]
        taken = list(matched)
        for d in starts[np.argsort(-scores[starts], kind="stable")]:
            if taken and iou_matrix(boxes[d][None], np.array(taken)).max() >= s.duplicate_iou:
                continue  # the same item, boxed twice
            taken.append(boxes[d])
            track = Track(self._next_id, boxes[d].copy())
            self._next_id += 1
            self._backfill(track)
            self._hit(track, track.box, boxes[d], float(scores[d]))
            self.tracks.append(track)
        weak = rest[scores[rest] < s.start]
        self._weak.append(_Weak(self.frame, boxes[weak], scores[weak]))

    def _backfill(self, track: Track) -> None:
        """Give a new track the unmatched weak detections at its place in the frames before."""
        s = self.settings
        found: list[tuple[int, FloatArray, float]] = []
        gap = 0
        for weak in reversed(self._weak):
            if weak.frame < self.frame - s.backfill or gap > s.tentative_age:
                break
            overlap = iou_matrix(track.box[None], weak.boxes)[0]
            overlap[weak.used] = 0.0
            best = int(np.argmax(overlap)) if len(overlap) else -1
            if best < 0 or overlap[best] < s.tentative_iou:
                gap += 1
                continue
            weak.used[best] = True
            found.append((weak.frame, weak.boxes[best], float(weak.scores[best])))
            gap = 0
        for frame, box, score in reversed(found):
            track.hits += 1
            track.scores.append(score)
            track.seen.append((float(box[0]), float(box[1]), float(box[2]), float(box[3])))
            track.frames.append(frame)

    def _hit(self, track: Track, predicted: FloatArray, box: FloatArray, score: float) -> None:
        s = self.settings
        residual = box - predicted
        size = np.array([box[2] - box[0], box[3] - box[1]])
        before = np.array([predicted[2] - predicted[0], predicted[3] - predicted[1]])
        steady = bool(np.all(np.abs(size - before) <= s.shape_tolerance * before + s.jitter / 2))
        if not track.hits:
            track.box = box.copy()
        elif steady:
            track.box = predicted + s.gain * residual
            shift = (residual[:2] + residual[2:]) / 2 / max(track.missed, 1)
            limit = 0.5 * before
            track.velocity = np.clip(track.velocity + s.velocity_gain * shift, -limit, limit)
        else:
            # Cut by the frame's edge, or a stray box: follow it, but warily.
            track.box = predicted + s.reshape_gain * residual
        track.hits += 1
        track.missed = 0
        track.confirmed = track.confirmed or track.hits >= s.min_hits
        track.scores.append(score)
        track.seen.append((float(box[0]), float(box[1]), float(box[2]), float(box[3])))
        track.frames.append(self.frame)

    def _retire(self) -> None:
        live = []
        for track in self.tracks:
            limit = self.settings.max_age if track.confirmed else self.settings.tentative_age
            if track.missed <= limit:
                live.append(track)
            elif track.confirmed:
                self.finished.append(track)
        self.tracks = live


@dataclass(slots=True)
class _Weak:
    """Weak detections no track took in one frame, in aisle coordinates."""

    frame: int
    boxes: FloatArray
    scores: FloatArray
    used: npt.NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        self.used = np.zeros(len(self.boxes), dtype=bool)


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Intersection over union of every box in ``a`` with every box in ``b``.

    Args:
        a: (N, 4) boxes ``x1, y1, x2, y2``.
        b: (M, 4) boxes.

    Returns:
        (N, M) IoU in 0..1 (0 where both boxes are empty).
    """
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    out: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return out


def greedy_match(iou: FloatArray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, column) taken greedily by descending IoU, each row and column at most once.

    Args:
        iou: (N, M) IoU matrix.
        threshold: Least IoU of a pair.

    Returns:
        The pairs, best first.
    """
    rows, cols = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_rows = np.zeros(iou.shape[0], dtype=bool)
    used_cols = np.zeros(iou.shape[1], dtype=bool)
    pairs = []
    for r, c in zip(rows[order].tolist(), cols[order].tolist(), strict=True):
        if used_rows[r] or used_cols[c]:
            continue
        used_rows[r] = used_cols[c] = True
        pairs.append((r, c))
    return pairs


def estimate_shift(
    reference: FloatArray,
    boxes: FloatArray,
    search: float,
    jitter: float = 10.0,
    shape_tolerance: float = 0.15,
    *,
    tolerance: float = 4.0,
    min_votes: int = 3,
    views: tuple[float, float, float] | None = None,
) -> float | None:
    """The horizontal shift that lines ``boxes`` up with ``reference``, by a vote.

    Every pair of a reference box and a box in the same row with the same shape votes for the
    shift between their centres; a shift's support is the number of votes within ``tolerance``
    of it. A row of identical items also supports shifts of one item pitch, one vote short per
    row end. So when several shifts have good support and the views are known, each is checked
    against what the camera must have seen: a box it leaves unpaired although the other frame
    saw its place counts against it. The winner (on a tie, the smaller shift) is refined by the
    median of its votes.

    Args:
        reference: (N, 4) boxes where the items were (the tracks' last boxes).
        boxes: (M, 4) boxes where they are now, placed with the expected pose.
        search: Largest shift considered, in pixels.
        jitter: Largest difference of the top or bottom edges of a voting pair, in pixels.
        shape_tolerance: Largest relative difference of width and height of a voting pair,
            beyond ``jitter / 2``.
        tolerance: Votes this close to a shift support it, in pixels (detection jitter).
        min_votes: Fewest votes for an answer.
        views: ``(previous_left, current_left, width)``: the previous frame's field of view
            and the current one's before the shift, in the boxes' coordinates; None skips the
            check.

    Returns:
        The shift to add to ``boxes``' x, or None when too few pairs agree.
    """
    if not len(reference) or not len(boxes) or search <= 0:
        return None
    votes, pairs = _votes(reference, boxes, search, jitter, shape_tolerance)
    if votes.size < min_votes:
        return None
    ranked = np.sort(votes)
    support = np.searchsorted(ranked, votes + tolerance, side="right") - np.searchsorted(
        ranked, votes - tolerance, side="left"
    )
    score = support - np.abs(votes) / (2 * search + 1)
    best = votes[int(np.argmax(score))]
    if views is not None:
        peaks = _peaks(votes, score, tolerance, support.max() / 2)
        near = [np.abs(votes - votes[k]) <= tolerance for k in peaks]
        unpaired = [
            _unpaired(reference, boxes, pairs, n, shift=float(votes[k]), views=views)
            for k, n in zip(peaks, near, strict=True)
        ]
        best = votes[peaks[int(np.argmax(score[peaks] - np.array(unpaired)))]]
    near_votes = votes[np.abs(votes - best) <= tolerance]
    if near_votes.size < min_votes:
        return None
    return float(np.median(near_votes))


def _votes(
    reference: FloatArray, boxes: FloatArray, search: float, jitter: float, shape_tolerance: float
) -> tuple[FloatArray, tuple[IndexArray, IndexArray]]:
    """The shift each same-row, same-shape pair votes for, and the pairs (reference, box)."""
    rw, rh = reference[:, 2] - reference[:, 0], reference[:, 3] - reference[:, 1]
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    ok = np.abs(reference[:, None, 1] - boxes[None, :, 1]) <= jitter
    ok &= np.abs(reference[:, None, 3] - boxes[None, :, 3]) <= jitter
    ok &= np.abs(rw[:, None] - bw[None, :]) <= (shape_tolerance * rw + jitter / 2)[:, None]
    ok &= np.abs(rh[:, None] - bh[None, :]) <= (shape_tolerance * rh + jitter / 2)[:, None]
    dx = (reference[:, None, 0] + reference[:, None, 2] - boxes[None, :, 0] - boxes[None, :, 2]) / 2
    rows, cols = np.nonzero(ok & (np.abs(dx) <= search))
    return dx[rows, cols], (rows, cols)


def _peaks(
    votes: FloatArray, score: FloatArray, tolerance: float, least: float, most: int = 4
) -> list[int]:
    """Indices of the best-scored votes at least ``2 * tolerance`` apart (local maxima)."""
    peaks: list[int] = []
    for k in np.argsort(-score, kind="stable").tolist():
        if score[k] < least or len(peaks) == most:
            break
        if all(abs(votes[k] - votes[p]) > 2 * tolerance for p in peaks):
            peaks.append(k)
    return peaks


def _unpaired(
    reference: FloatArray,
    boxes: FloatArray,
    pairs: tuple[IndexArray, IndexArray],
    near: npt.NDArray[np.bool_],
    *,
    shift: float,
    views: tuple[float, float, float],
) -> int:
    """Boxes a shift leaves without a partner although the other frame saw their place."""
    previous, current, width = views
    paired_ref = np.zeros(len(reference), dtype=bool)
    paired_box = np.zeros(len(boxes), dtype=bool)
    paired_ref[pairs[0][near]] = True
    paired_box[pairs[1][near]] = True
    moved = boxes[:, [0, 2]] + shift
    left = current + shift
    seen_before = (moved[:, 0] >= previous) & (moved[:, 1] <= previous + width)
    seen_now = (reference[:, 0] >= left) & (reference[:, 2] <= left + width)
    return int(np.sum(seen_before & ~paired_box) + np.sum(seen_now & ~paired_ref))


def _stage(
    predicted: FloatArray,
    boxes: FloatArray,
    tracks: IndexArray,
    detections: IndexArray,
    threshold: float,
) -> tuple[list[tuple[int, int]], IndexArray, IndexArray]:
    """Match a subset of tracks to a subset of detections; returns pairs and the leftovers."""
    if not len(tracks) or not len(detections):
        return [], tracks, detections
    local = greedy_match(iou_matrix(predicted[tracks], boxes[detections]), threshold)
    pairs = [(int(tracks[t]), int(detections[d])) for t, d in local]
    taken_t = np.isin(tracks, [t for t, _ in pairs])
    taken_d = np.isin(detections, [d for _, d in pairs])
    return pairs, tracks[~taken_t], detections[~taken_d]
