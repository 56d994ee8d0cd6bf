"""The ByteTrack-style tracker: identities, lifecycles, two-stage association, camera motion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from gateway.vision.tracker import (
    Track,
    Tracker,
    TrackerSettings,
    estimate_shift,
    greedy_match,
    iou_matrix,
)
from models.detections import Detections

FloatArray = npt.NDArray[np.float64]


def dets(boxes: Sequence[Sequence[float]] | FloatArray, score: float = 0.9) -> Detections:
    arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return Detections(arr, np.full(len(arr), score, np.float32), np.zeros(len(arr), np.int64))


def row(x0: float, count: int, pitch: float, width: float, y1: float, y2: float) -> FloatArray:
    x = x0 + pitch * np.arange(count, dtype=np.float64)
    return np.stack([x, np.full(count, y1), x + width, np.full(count, y2)], axis=1)


def ids(tracks: list[Track]) -> list[int]:
    return sorted(t.id for t in tracks)


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], dtype=np.float64)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=np.float64)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 1 / 3, 0.0], [0.0, 0.0, 0.0]])
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)


def test_greedy_match_takes_the_best_pairs_first() -> None:
    iou = np.array([[0.9, 0.8], [0.85, 0.1], [0.0, 0.0]])
    assert greedy_match(iou, 0.3) == [(0, 0)]
    assert greedy_match(iou, 0.05) == [(0, 0), (1, 1)]


def test_a_box_moving_at_constant_velocity_keeps_one_id() -> None:
    tracker = Tracker()
    for frame in range(40):
        x = 100.0 + 9.0 * frame  # 9 px per frame: a 30 px box overlaps its last place by 0.54
        active = tracker.update(dets([[x, 50, x + 30, 90]]), pose=0.0)
        if frame >= 2:
            assert ids(active) == [1]
    (track,) = tracker.tracks
    assert track.hits == 40
    assert track.velocity[0] == pytest.approx(9.0, abs=0.5)
    np.testing.assert_allclose(track.box, [451, 50, 481, 90], atol=1.0)


def test_still_items_seen_by_a_moving_camera_keep_their_ids() -> None:
    items = row(500, 12, 33, 30, 100, 150)  # adjacent, 3 px apart, in aisle coordinates
    tracker = Tracker()
    for frame in range(30):
        pose = 20.0 * frame
        in_view = items[(items[:, 0] >= pose) & (items[:, 2] <= pose + 640)]
        tracker.update(dets(in_view - [pose, 0, pose, 0]), pose=pose)
    tracks = tracker.confirmed()
    assert len(tracks) == 12
    for track in tracks:
        seen = np.asarray(track.seen)
        assert np.ptp(seen, axis=0).max() < 1e-3  # always the same item, in aisle coordinates


def test_crossing_items_keep_distinct_ids() -> None:
    tracker = Tracker()
    paths: dict[str, list[FloatArray]] = {"a": [], "b": []}
    for frame in range(50):
        a = np.array([100.0 + 8 * frame, 100, 140.0 + 8 * frame, 160])
        b = np.array([500.0 - 8 * frame, 104, 540.0 - 8 * frame, 164])
        paths["a"].append(a)
        paths["b"].append(b)
        tracker.update(dets(np.stack([a, b])), pose=0.0)
    assert len(tracker.confirmed()) == 2
    for track in tracker.confirmed():
        seen = np.asarray(track.seen)
        going_right = seen[-1, 0] > seen[0, 0]
        np.testing.assert_allclose(seen, np.stack(paths["a" if going_right else "b"]))


def test_a_track_unseen_for_longer_than_max_age_dies() -> None:
    tracker = Tracker(TrackerSettings(max_age=5))
    box = [[100, 100, 140, 160]]
    for _ in range(4):
        tracker.update(dets(box), pose=0.0)
    for _ in range(5):
        assert tracker.update(Detections.empty(), pose=0.0) == []
    (track,) = tracker.tracks
    assert (track.missed, track.age) == (5, 9)
    assert ids(tracker.update(dets(box), pose=0.0)) == [track.id]  # back within max_age
    for _ in range(6):
        tracker.update(Detections.empty(), pose=0.0)
    assert tracker.tracks == []
    assert tracker.finished == [track]
    assert ids(tracker.update(dets(box), pose=0.0)) == []  # a new, tentative track
    assert tracker.tracks[0].id != track.id


def test_a_one_frame_false_positive_never_confirms() -> None:
    tracker = Tracker()
    tracker.update(dets([[10, 10, 50, 50]], score=0.95), pose=0.0)
    assert len(tracker.tracks) == 1
    assert not tracker.tracks[0].confirmed
    for _ in range(3):
        tracker.update(Detections.empty(), pose=0.0)
    assert tracker.tracks == []
    assert tracker.confirmed() == []


def test_weak_detections_never_start_a_track() -> None:
    tracker = Tracker()
    for _ in range(20):
        assert tracker.update(dets([[10, 10, 50, 50]], score=0.3), pose=0.0) == []
    assert tracker.tracks == []
    assert tracker.confirmed() == []


def test_weak_detections_extend_a_track() -> None:
    tracker = Tracker(TrackerSettings(max_age=2))
    for _ in range(3):
        tracker.update(dets([[10, 10, 50, 50]], score=0.9), pose=0.0)
    for _ in range(20):  # far beyond max_age: only the weak detections keep it alive
        assert ids(tracker.update(dets([[11, 10, 51, 50]], score=0.2), pose=0.0)) == [1]
    (track,) = tracker.tracks
    assert track.hits == 23
    assert track.scores[-1] == pytest.approx(0.2)
    assert track.mean_score == pytest.approx((3 * 0.9 + 20 * 0.2) / 23, abs=1e-6)


def test_weak_detections_below_low_are_ignored() -> None:
    tracker = Tracker(TrackerSettings(max_age=2))
    for _ in range(3):
        tracker.update(dets([[10, 10, 50, 50]], score=0.9), pose=0.0)
    for _ in range(3):
        tracker.update(dets([[10, 10, 50, 50]], score=0.05), pose=0.0)
    assert tracker.tracks == []


def test_a_new_track_claims_the_weak_detections_just_before_it() -> None:
    tracker = Tracker()
    for _ in range(3):
        tracker.update(dets([[10, 10, 50, 50]], score=0.3), pose=0.0)
    assert ids(tracker.update(dets([[10, 10, 50, 50]], score=0.8), pose=0.0)) == [1]
    (track,) = tracker.tracks
    assert track.frames == [1, 2, 3, 4]
    assert track.scores == pytest.approx([0.3, 0.3, 0.3, 0.8])


def test_a_duplicate_box_does_not_start_a_second_track() -> None:
    tracker = Tracker()
    for _ in range(5):
        tracker.update(dets([[10, 10, 50, 50], [12, 11, 52, 49]]), pose=0.0)
    assert len(tracker.tracks) == 1


def test_without_a_pose_the_tracker_follows_the_camera() -> None:
    rng = np.random.default_rng(0)
    items = np.concatenate(
        [row(0, 60, 41, 38, 40, 100), row(10, 45, 55, 50, 150, 190), row(5, 80, 31, 29, 250, 300)]
    )
    tracker = Tracker(frame_width=640)
    frames_in_view = np.zeros(len(items), dtype=np.int64)
    for frame in range(60):
        true_pose = 27.0 * frame
        in_view = (items[:, 0] >= true_pose) & (items[:, 2] <= true_pose + 640)
        frames_in_view += in_view
        boxes = items[in_view] - [true_pose, 0, true_pose, 0]
        tracker.update(dets(boxes + rng.uniform(-2, 2, boxes.shape)), pose=None)
        assert tracker.pose == pytest.approx(true_pose, abs=3.0)
    assert tracker.camera_velocity == pytest.approx(27.0, abs=1.0)
    assert len(tracker.confirmed()) == int(np.sum(frames_in_view >= 3))


def test_estimate_shift_prefers_the_true_shift_over_a_row_pitch() -> None:
    # One row of identical items, 41 px apart; the racking starts half-way into the first view.
    items = row(480, 20, 41, 38, 40, 100)
    before = items[items[:, 2] <= 960]
    after = items[(items[:, 0] >= 96) & (items[:, 2] <= 96 + 960)] - [96, 0, 96, 0]
    shift = estimate_shift(before, after, 240.0, views=(0.0, 0.0, 960.0))
    assert shift == pytest.approx(96.0)
    assert estimate_shift(before, np.zeros((0, 4)), 240.0) is None
