"""Unique counts per location from a panning camera, against the renderer's exact truth.

No trained detector is needed: each frame's "detections" are the truth boxes visible in it, as a
detector would return them: every edge off by up to 3 px, scores anywhere in 0.3..0.95, 3 % of
the items missed in each frame, and up to three false positives that last one frame. The camera
mount wobbles up to 2 px vertically, which the pose never reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from gateway.vision.moving import MovingCounter, UniqueCount, inside
from gateway.vision.tracker import TrackerSettings
from models.detections import Detections
from simulators.camera.pan import (
    EXPOSURE,
    PanView,
    frame_truth,
    pan_frames,
    pan_provider,
    pan_views,
    render_aisle,
)
from simulators.camera.render import RenderSettings, ShelfImage, make_catalogue, motion_blur

WIDTH = 960
BAYS = 6
SCENE = RenderSettings(occlusion=0.0, levels=3)


@dataclass(frozen=True)
class Roi:
    """A location as the gateway configures it."""

    name: str
    polygon: npt.NDArray[np.float32]
    sku: str | None


@pytest.fixture(scope="module")
def aisle() -> ShelfImage:
    rng = np.random.default_rng(4)
    return render_aisle(rng, bays=BAYS, settings=SCENE, catalogue=make_catalogue(rng))


def rois_of(aisle: ShelfImage) -> list[Roi]:
    return [Roi(b.location, b.polygon, b.sku) for b in aisle.bins]


def detect(rng: np.random.Generator, aisle: ShelfImage, view: PanView) -> Detections:
    """What a decent detector would report for one frame."""
    boxes, _ = frame_truth(aisle, view)
    boxes = boxes[rng.random(len(boxes)) >= 0.03]
    boxes = boxes + rng.uniform(-3, 3, boxes.shape).astype(np.float32)
    false = int(rng.integers(0, 4))
    x = rng.uniform(0, WIDTH - 80, false)
    y = rng.uniform(0, aisle.image.shape[0] - 80, false)
    size = rng.uniform(20, 70, (false, 2))
    fake = np.stack([x, y, x + size[:, 0], y + size[:, 1]], axis=1).astype(np.float32)
    boxes = np.concatenate([boxes, fake]).reshape(-1, 4).astype(np.float32)
    scores = rng.uniform(0.3, 0.95, len(boxes)).astype(np.float32)
    return Detections(boxes, scores, np.zeros(len(boxes), np.int64))


def run_pass(
    aisle: ShelfImage,
    *,
    step: float,
    seed: int,
    with_pose: bool = True,
    frames: int | None = None,
    pose_noise: float = 0.0,
) -> tuple[MovingCounter, list[PanView]]:
    rng = np.random.default_rng(seed)
    views = pan_views(
        aisle, width=WIDTH, step=step, rng=rng, jitter=2, pose_noise=pose_noise, frames=frames
    )
    counter = MovingCounter(rois_of(aisle), frame_width=WIDTH)
    for view in views:
        counter.add(detect(rng, aisle, view), view.offset if with_pose else None)
    return counter, views


def frames_per_item(aisle: ShelfImage, views: list[PanView]) -> npt.NDArray[np.int64]:
    seen = np.zeros(len(aisle.boxes), dtype=np.int64)
    for view in views:
        seen[frame_truth(aisle, view)[1]] += 1
    return seen


def assert_exact(counts: dict[str, UniqueCount], aisle: ShelfImage) -> None:
    assert {name: c.count for name, c in counts.items()} == aisle.truth()
    assert all(c.complete for c in counts.values())
    assert all(c.frames_seen >= 3 for c in counts.values())
    assert all(0.0 < c.confidence <= 1.0 for c in counts.values())
    for b in aisle.bins:
        assert counts[b.location].sku == b.sku


def test_panorama_keeps_its_truth_in_panorama_coordinates(aisle: ShelfImage) -> None:
    assert aisle.image.shape == (544, BAYS * 480 + 2 * 480, 3)
    assert len(aisle.bins) == BAYS * 3
    assert sum(aisle.truth().values()) == len(aisle.boxes) > 300
    assert aisle.boxes[:, 0].min() > 480
    assert aisle.boxes[:, 2].max() < 480 + BAYS * 480
    for b in aisle.bins:
        mine = aisle.boxes[[owner == b.location for owner in aisle.owners]]
        centres = np.stack([(mine[:, 0] + mine[:, 2]) / 2, mine[:, 3]], axis=1)
        assert inside(centres.astype(np.float64), b.polygon).all()


def test_frames_show_the_panorama_where_the_truth_says(aisle: ShelfImage) -> None:
    clean = RenderSettings(blur=0.0, noise=0.0, lighting=(1.0, 1.0), jpeg_quality=0)
    frames = pan_frames(
        aisle, width=WIDTH, step=120.0, rng=np.random.default_rng(1), settings=clean, frames=4
    )
    assert [f.offset for f in frames] == [0.0, 120.0, 240.0, 360.0]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    blur = round(EXPOSURE * 120)
    smeared = motion_blur(aisle.image.astype(np.float32), blur)
    rows, cols = slice(10, 530), slice(blur, WIDTH - blur)
    for frame in frames:
        assert frame.image.shape == (544, WIDTH, 3)
        assert frame.width == WIDTH
        assert abs(frame.y) <= 2
        seen = frame.image[rows, cols].astype(np.float32)
        there = smeared[rows.start + frame.y : rows.stop + frame.y, frame.x + blur :]
        assert np.abs(seen - np.floor(there[:, : seen.shape[1]])).max() <= 1
        plain = aisle.image[rows.start + frame.y : rows.stop + frame.y, frame.x + blur :]
        assert np.abs(seen - plain[:, : seen.shape[1]]).mean() > 1  # the travel shows


def test_frame_truth_keeps_boxes_at_least_half_in_view(aisle: ShelfImage) -> None:
    view = PanView(index=0, offset=1000.0, x=1000, y=-2, width=WIDTH)
    boxes, index = frame_truth(aisle, view)
    full = aisle.boxes[index]
    assert len(boxes) == len(index) > 50
    assert boxes[:, [0, 2]].min() >= 0
    assert boxes[:, [0, 2]].max() <= WIDTH
    np.testing.assert_allclose(boxes[:, [1, 3]], full[:, [1, 3]] + 2)
    visible = (boxes[:, 2] - boxes[:, 0]) / (full[:, 2] - full[:, 0])
    assert visible.min() >= 0.5
    assert (visible < 1).any()
    x1, x2 = aisle.boxes[:, 0], aisle.boxes[:, 2]
    inside_x = np.clip(x2, 1000, 1960) - np.clip(x1, 1000, 1960)
    assert len(index) == int(np.sum(inside_x >= 0.5 * (x2 - x1)))


def test_provider_loops_back_to_the_start(aisle: ShelfImage) -> None:
    provider = pan_provider(aisle, WIDTH, 480.0, np.random.default_rng(2))
    poses = [provider(i)[1] for i in range(8)]
    assert poses == [0.0, 480.0, 960.0, 1440.0, 1920.0, 2400.0, 2880.0, 0.0]
    image, _ = provider(100)
    assert image.shape == (544, WIDTH, 3)
    assert image.dtype == np.uint8


def test_provider_without_loop_parks_at_the_end(aisle: ShelfImage) -> None:
    provider = pan_provider(aisle, WIDTH, 480.0, np.random.default_rng(2), loop=False)
    poses = [provider(i)[1] for i in range(9)]
    assert poses == [0.0, 480.0, 960.0, 1440.0, 1920.0, 2400.0, 2880.0, 2880.0, 2880.0]


def test_a_pan_counts_every_item_once(aisle: ShelfImage) -> None:
    counter, views = run_pass(aisle, step=24, seed=1, pose_noise=1.5)
    assert frames_per_item(aisle, views).min() >= 10
    assert_exact(counter.counts(), aisle)
    assert counter.unassigned() == []


def test_without_a_pose_the_camera_motion_is_estimated(aisle: ShelfImage) -> None:
    counter, views = run_pass(aisle, step=24, seed=2, with_pose=False)
    assert counter.tracker.pose is not None
    assert abs(counter.tracker.pose - views[-1].x) < 8
    assert_exact(counter.counts(), aisle)


@pytest.mark.parametrize("with_pose", [True, False])
def test_a_fast_pan_still_counts_exactly(aisle: ShelfImage, with_pose: bool) -> None:
    counter, views = run_pass(aisle, step=96, seed=3, with_pose=with_pose)
    assert len(views) == 31
    assert frames_per_item(aisle, views).min() >= 4
    assert_exact(counter.counts(), aisle)


def test_a_pass_cut_short_reports_what_it_missed_as_incomplete(aisle: ShelfImage) -> None:
    counter, views = run_pass(aisle, step=24, seed=5, frames=40)
    assert views[-1].offset == 39 * 24
    counts = counter.counts()
    truth = aisle.truth()
    by_bay: dict[str, list[UniqueCount]] = {}
    for name, c in counts.items():
        by_bay.setdefault(name[:3], []).append(c)
    for c in by_bay["B01"] + by_bay["B02"]:
        assert c.complete
        assert c.count == truth[c.location]
    for c in by_bay["B03"]:  # in view up to x = 1896 of 1449..1913
        assert not c.complete
        assert c.frames_seen > 0
        assert c.confidence < 1.0
    for c in by_bay["B04"] + by_bay["B05"] + by_bay["B06"]:
        assert not c.complete
        assert (c.count, c.frames_seen, c.confidence) == (0, 0, 0.0)


def test_false_positives_alone_count_nothing(aisle: ShelfImage) -> None:
    rng = np.random.default_rng(6)
    counter = MovingCounter(rois_of(aisle), frame_width=WIDTH)
    for index in range(60):
        x = rng.uniform(0, WIDTH - 80, 3)
        y = rng.uniform(0, 460, 3)
        boxes = np.stack([x, y, x + 50, y + 60], axis=1).astype(np.float32)
        scores = rng.uniform(0.5, 0.95, 3).astype(np.float32)
        counter.add(Detections(boxes, scores, np.zeros(3, np.int64)), 24.0 * index)
    assert all(c.count == 0 for c in counter.counts().values())
    assert counter.tracker.confirmed() == []


def test_an_item_lost_and_found_again_counts_once() -> None:
    polygon = np.array([[0, 0], [400, 0], [400, 200], [0, 200]], dtype=np.float32)
    settings = TrackerSettings(max_age=3)
    counter = MovingCounter([Roi("A", polygon, "SKU")], frame_width=400, settings=settings)
    box = np.array([[100, 100, 140, 160]], dtype=np.float32)
    seen = Detections(box, np.array([0.9], np.float32), np.zeros(1, np.int64))
    for index in range(20):
        hidden = 6 <= index < 12  # long enough for the first track to die
        counter.add(Detections.empty() if hidden else seen, 0.0)
    tracks = counter.tracker.confirmed()
    assert len(tracks) == 2
    count = counter.counts()["A"]
    assert count.count == 1
    assert count.tracks == tuple(t.id for t in tracks)


def test_the_frame_width_can_come_with_the_frames(aisle: ShelfImage) -> None:
    rng = np.random.default_rng(7)
    views = pan_views(aisle, width=WIDTH, step=48, rng=rng)
    told = MovingCounter(rois_of(aisle), frame_width=WIDTH)
    later = MovingCounter(rois_of(aisle))
    unknown = MovingCounter(rois_of(aisle))
    for view in views:
        detections = detect(rng, aisle, view)
        told.add(detections, view.offset)
        later.add(detections, view.offset, width=WIDTH)
        unknown.add(detections, view.offset)
    # Without a width, a frame's view is the span of its detections: never more than it saw.
    assert {name: c.count for name, c in unknown.counts().items()} == aisle.truth()
    for index in range(len(aisle.bins)):
        assert unknown.coverage(index) <= told.coverage(index)
    assert told.counts() == later.counts()


@pytest.mark.parametrize(("frames_in_a", "owner"), [(12, "A"), (10, "B"), (8, "B")])
def test_an_item_counts_where_it_stood_in_most_frames(frames_in_a: int, owner: str) -> None:
    rois = [
        Roi("A", np.array([[0, 0], [100, 0], [100, 200], [0, 200]], np.float32), None),
        Roi("B", np.array([[100, 0], [200, 0], [200, 200], [100, 200]], np.float32), None),
    ]
    counter = MovingCounter(rois, frame_width=400)
    for frame in range(20):  # nudged across the boundary at x = 100, 2 px a frame
        centre = 100.0 + 2 * (frame - frames_in_a) + 1
        box = np.array([[centre - 20, 100, centre + 20, 150]], np.float32)
        counter.add(Detections(box, np.array([0.9], np.float32), np.zeros(1, np.int64)), 0.0)
    counts = counter.counts()
    assert len(counter.items()) == 1
    assert {name: c.count for name, c in counts.items()} == {
        "A": int(owner == "A"),
        "B": int(owner == "B"),
    }
