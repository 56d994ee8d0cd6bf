"""Detector pipeline: letterbox, decoding, NMS, tiling, and the two back-ends agreeing."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import models.detector as detector_module
from gateway.vision.roi import Roi, count_rois
from models.artifacts import SHELF_ONNX
from models.detections import Detections
from models.detector import (
    BackendUnavailableError,
    Detector,
    ModelError,
    ModelNotFoundError,
    OnnxDetector,
    OpenVinoDetector,
    UltralyticsDetector,
    load_detector,
)
from models.postprocess import (
    PAD_VALUE,
    box_iou,
    decode_yolo,
    detections_from_output,
    input_tensor,
    letterbox,
    nms,
    nms_per_class,
    unletterbox,
)
from models.tiling import TileSettings, plan_tiles, tiled_detect
from simulators.camera.render import RenderSettings, render_shelf
from tests.models.conftest_vision import ThrowawayModel, shared_throwaway_model

Image = npt.NDArray[np.uint8]


@pytest.fixture(scope="session")
def throwaway_model(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayModel:
    """The throw-away detector (one build per session, see ``conftest_vision``)."""
    return shared_throwaway_model(tmp_path_factory)


# -- letterbox --------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.integers(8, 700),
    st.integers(8, 700),
    st.integers(32, 320),
    st.integers(32, 320),
    st.data(),
)
def test_letterbox_round_trip(
    src_h: int, src_w: int, out_h: int, out_w: int, data: st.DataObject
) -> None:
    image = np.full((src_h, src_w, 3), 255, dtype=np.uint8)
    boxed, scale, (left, top) = letterbox(image, (out_h, out_w))
    assert boxed.shape == (out_h, out_w, 3)
    assert scale == pytest.approx(min(out_h / src_h, out_w / src_w))
    # The picture is centred: the padding on both sides differs by at most one pixel.
    content = np.argwhere(boxed[:, :, 0] == 255)
    (y0, x0), (y1, x1) = content.min(axis=0), content.max(axis=0) + 1
    assert (x0, y0) == (left, top)
    assert abs(left - (out_w - x1)) <= 1
    assert abs(top - (out_h - y1)) <= 1
    assert (boxed[:, :x0] == PAD_VALUE).all()
    assert (boxed[y1:] == PAD_VALUE).all()
    # The content maps back onto the whole source image, to within half an input pixel.
    back = unletterbox(np.array([[x0, y0, x1, y1]], np.float32), scale, (left, top), image.shape)
    assert back[0] == pytest.approx([0, 0, src_w, src_h], abs=0.5 / scale + 1e-3)
    # Any box inside the image survives the trip input -> source exactly.
    x = sorted(data.draw(st.lists(st.floats(0, src_w), min_size=2, max_size=2)))
    y = sorted(data.draw(st.lists(st.floats(0, src_h), min_size=2, max_size=2)))
    box = np.array([[x[0], y[0], x[1], y[1]]], np.float32)
    forward = box * scale + np.array([left, top, left, top], np.float32)
    assert unletterbox(forward, scale, (left, top), image.shape)[0] == pytest.approx(
        box[0], abs=1e-3 * max(1.0, 1 / scale)
    )


def test_letterbox_puts_an_object_where_unletterbox_finds_it() -> None:
    image = np.zeros((544, 960, 3), np.uint8)
    cv2.rectangle(image, (300, 200), (459, 299), (255, 255, 255), -1)
    boxed, scale, pad = letterbox(image, 480)
    assert scale == 0.5
    assert pad == (0.0, 104.0)
    ys, xs = np.nonzero(boxed[:, :, 1] > 127)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = unletterbox(found, scale, pad, image.shape)
    assert back[0] == pytest.approx([300, 200, 460, 300], abs=2 / scale)


def test_unletterbox_clips_to_the_image() -> None:
    boxes = np.array([[-20, -20, 500, 500], [10, 110, 20, 120]], np.float32)
    back = unletterbox(boxes, 0.5, (0.0, 104.0), (544, 960, 3))
    assert back.tolist() == [[0, 0, 960, 544], [20, 12, 40, 32]]


def test_input_tensor_is_rgb_chw_in_unit_range() -> None:
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    tensor = input_tensor(image)
    assert tensor.shape == (1, 3, 4, 6)
    assert tensor.dtype == np.float32
    assert tensor[0, 2].min() == 1.0  # blue is the last RGB channel
    assert tensor[0, :2].max() == 0.0


# -- NMS --------------------------------------------------------------------------------------


def _iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference_nms(boxes: list[list[float]], scores: list[float], iou: float) -> list[int]:
    """The textbook loop: pairwise, no vectorisation."""
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in order:
        if all(_iou(boxes[i], boxes[k]) <= iou for k in kept):
            kept.append(i)
    return kept


box_lists = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(1, 30), st.integers(1, 30)).map(
        lambda t: [float(t[0]), float(t[1]), float(t[0] + t[2]), float(t[1] + t[3])]
    ),
    min_size=0,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(box_lists, st.data(), st.sampled_from([0.0, 0.3, 0.5, 0.7]))
def test_nms_matches_the_pairwise_reference(
    boxes: list[list[float]], data: st.DataObject, iou: float
) -> None:
    scores = data.draw(
        st.lists(st.integers(0, 20).map(lambda v: v / 20), min_size=len(boxes), max_size=len(boxes))
    )  # coarse scores: ties happen
    kept = nms(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), iou)
    assert kept.tolist() == _reference_nms(boxes, scores, iou)
    for a in kept.tolist():
        for b in kept.tolist():
            assert a == b or _iou(boxes[a], boxes[b]) <= iou


@settings(max_examples=80, deadline=None)
@given(box_lists, st.data())
def test_class_aware_nms_is_nms_per_class(boxes: list[list[float]], data: st.DataObject) -> None:
    n = len(boxes)
    scores = data.draw(st.lists(st.floats(0, 1, width=32), min_size=n, max_size=n))
    classes = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    kept = nms_per_class(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(scores, np.float32),
        np.array(classes, np.int64),
        0.5,
    )
    expected: list[int] = []
    for cls in set(classes):
        members = [i for i in range(n) if classes[i] == cls]
        picked = _reference_nms([boxes[i] for i in members], [scores[i] for i in members], 0.5)
        expected.extend(members[i] for i in picked)
    assert sorted(kept.tolist()) == sorted(expected)
    kept_scores = [scores[i] for i in kept.tolist()]
    assert kept_scores == sorted(kept_scores, reverse=True)


def test_nms_stops_at_max_det() -> None:
    boxes = np.array([[i * 10, 0, i * 10 + 5, 5] for i in range(10)], np.float32)
    scores = np.linspace(0.1, 1.0, 10).astype(np.float32)
    assert nms(boxes, scores, 0.5, max_det=3).tolist() == [9, 8, 7]


# -- decoding ---------------------------------------------------------------------------------


def _head(anchors: list[tuple[float, float, float, float, list[float]]]) -> npt.NDArray[np.float32]:
    """A synthetic (1, 4 + nc, N) head output from (cx, cy, w, h, class scores) per anchor."""
    return np.array([[cx, cy, w, h, *cls] for cx, cy, w, h, cls in anchors], np.float32).T[None]


def test_decode_yolo_keeps_anchors_at_or_above_the_threshold() -> None:
    output = _head(
        [
            (100, 50, 20, 10, [0.10, 0.90, 0.20]),
            (200, 80, 40, 40, [0.30, 0.05, 0.29]),
            (10, 10, 4, 4, [0.29, 0.01, 0.02]),
            (50, 60, 10, 30, [0.00, 0.00, 0.30]),
        ]
    )
    boxes, scores, classes = decode_yolo(output, 0.3)
    assert boxes.tolist() == [[90, 45, 110, 55], [180, 60, 220, 100], [45, 45, 55, 75]]
    assert scores == pytest.approx([0.9, 0.3, 0.3])
    assert classes.tolist() == [1, 0, 2]
    assert boxes.dtype == np.float32
    assert classes.dtype == np.int64


def test_decode_yolo_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match="one image"):
        decode_yolo(np.zeros((2, 5, 10), np.float32), 0.5)
    with pytest.raises(ValueError, match="classes"):
        decode_yolo(np.zeros((1, 4, 10), np.float32), 0.5)


def test_post_processing_suppresses_and_maps_back() -> None:
    # Two anchors on one item (the weaker is a duplicate), one item of another class on
    # top of it (kept: classes do not suppress each other), one below the threshold.
    output = _head(
        [
            (240, 240, 40, 40, [0.80, 0.0]),
            (242, 241, 40, 40, [0.70, 0.0]),
            (240, 240, 40, 40, [0.00, 0.6]),
            (100, 300, 20, 20, [0.10, 0.0]),
        ]
    )
    found = detections_from_output(
        output, conf=0.25, iou=0.6, max_det=100, scale=0.5, pad=(0.0, 104.0), image_shape=(544, 960)
    )
    assert found.classes.tolist() == [0, 1]
    assert found.scores == pytest.approx([0.8, 0.6])
    # (220, 220, 260, 260) in the input; minus the top padding of 104, times 2.
    assert found.boxes.tolist() == [[440, 232, 520, 312]] * 2


# -- tiling -----------------------------------------------------------------------------------


class BlobDetector:
    """Finds white rectangles on black exactly: a perfect detector for tiling tests."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, image: Image) -> Detections:
        self.calls.append(image.shape)
        mask = (image[:, :, 0] > 127).astype(np.uint8)
        count, _labels, stats, _centroids = cv2.connectedComponentsWithStats(mask, connectivity=4)
        boxes = [[x, y, x + w, y + h] for x, y, w, h, _area in stats[1:count].tolist()]
        return Detections(
            np.array(boxes, np.float32).reshape(-1, 4),
            np.full(len(boxes), 0.9, np.float32),
            np.zeros(len(boxes), np.int64),
        )


def _canvas(width: int, height: int, rects: list[tuple[int, int, int, int]]) -> Image:
    image = np.zeros((height, width, 3), np.uint8)
    for x1, y1, x2, y2 in rects:
        image[y1:y2, x1:x2] = 255
    return image


def _tiled(image: Image, tile: TileSettings) -> Detections:
    # iou=1.0 turns the final NMS off: the tiling rules alone must give one box per item.
    return tiled_detect(image, BlobDetector(), tile, iou=1.0, max_det=1000)


def _as_set(found: Detections) -> set[tuple[float, ...]]:
    return {tuple(box) for box in found.boxes.tolist()}


def test_tiling_merges_a_box_cut_by_a_tile_border_into_one() -> None:
    tile = TileSettings(200, 200, overlap=0.25)
    tiles = plan_tiles(500, 200, (200, 200), 0.25)
    assert [(t.x0, t.x1) for t in tiles] == [(0, 200), (150, 350), (300, 500)]
    item = (180, 20, 215, 60)  # cut by the first tile's right border, whole in the second
    big = (130, 100, 340, 190)  # wider than a tile: every tile sees a piece of it
    found = _tiled(_canvas(500, 200, [item, big]), tile)
    assert _as_set(found) == {tuple(map(float, item)), tuple(map(float, big))}


@settings(max_examples=40, deadline=None)
@given(st.integers(120, 700), st.integers(120, 500), st.integers(64, 256), st.data())
def test_tiling_finds_every_rectangle_once(
    width: int, height: int, size: int, data: st.DataObject
) -> None:
    # Rectangles on a grid of cells keep at least 2 px apart; sizes up to the tile size.
    cell = 70
    rects = []
    for gy in range(height // cell):
        for gx in range(width // cell):
            if data.draw(st.booleans()):
                w, h = data.draw(st.integers(4, 68)), data.draw(st.integers(4, 68))
                rects.append((gx * cell, gy * cell, gx * cell + w, gy * cell + h))
    found = _tiled(_canvas(width, height, rects), TileSettings(size, size, overlap=0.3))
    assert len(found) == len(rects)
    assert _as_set(found) == {tuple(map(float, r)) for r in rects}


def test_no_tiling_when_the_image_fits_in_one_tile() -> None:
    blobs = BlobDetector()
    image = _canvas(300, 200, [(10, 10, 50, 50)])
    found = tiled_detect(image, blobs, TileSettings(480, 480), iou=0.6, max_det=100)
    assert blobs.calls == [(200, 300, 3)]
    assert found.boxes.tolist() == [[10, 10, 50, 50]]
    # The default tile is the training frame: such a frame is never tiled.
    tiled_detect(np.zeros((544, 960, 3), np.uint8), blobs, TileSettings(), iou=0.6, max_det=9)
    assert blobs.calls[1:] == [(544, 960, 3)]


@pytest.mark.parametrize(
    "bad", [{"width": 8}, {"height": 0}, {"overlap": 0.9}, {"overlap": -0.1}, {"edge": -1.0}]
)
def test_tile_settings_are_checked(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="tile"):
        TileSettings(**bad)  # type: ignore[arg-type]


@given(st.integers(1, 2000), st.integers(1, 2000), st.integers(16, 640), st.floats(0, 0.6))
def test_tile_cores_partition_the_image(width: int, height: int, size: int, overlap: float) -> None:
    tiles = plan_tiles(width, height, (size, size), overlap)
    xs = sorted({(t.x0, t.x1, t.core[0], t.core[2]) for t in tiles})
    for (x0, x1, c0, c1), nxt in zip(xs, [*xs[1:], None], strict=True):
        assert 0 <= x0 < x1 <= width
        assert x1 - x0 == min(size, width)
        assert x0 <= c0 or c0 == -np.inf
        assert c1 <= x1 or c1 == np.inf
        if nxt is None:
            assert x1 == width
            assert c1 == np.inf
        else:
            assert nxt[2] == c1  # cores meet: no gap, no overlap
            assert x1 - nxt[0] >= np.ceil(size * overlap) - 1  # the overlap asked for
    assert xs[0][0] == 0


# -- ONNX and ultralytics back-ends -----------------------------------------------------------


def _shelves() -> list[Image]:
    rng = np.random.default_rng(3)
    tilted = render_shelf(rng).image
    clean = render_shelf(rng, RenderSettings().clean()).image
    portrait = render_shelf(rng, RenderSettings(width=400, height=640, bays=1, levels=4)).image
    return [tilted, clean, portrait]


def _match(a: Detections, b: Detections) -> None:
    """Every box of ``a`` has one in ``b`` with IoU > 0.9 and a score within 0.02."""
    assert len(a) == len(b)
    if not len(a):
        return
    iou = box_iou(a.boxes, b.boxes)
    best = iou.argmax(axis=1)
    assert (iou.max(axis=1) > 0.9).all()
    assert len(set(best.tolist())) == len(a)  # one to one
    assert np.abs(a.scores - b.scores[best]).max() < 0.02


@pytest.mark.train
def test_onnx_and_ultralytics_agree() -> None:
    # The shipped weights: a trained model scores items clearly, so the comparison is not at the
    # mercy of near-ties in NMS (an untrained one scores hundreds of boxes alike).
    onnx = OnnxDetector(SHELF_ONNX, conf=0.3, iou=0.6)
    torch_side = UltralyticsDetector(SHELF_ONNX.with_suffix(".pt"), conf=0.3, iou=0.6)
    assert onnx.input_size == torch_side.input_size == (288, 480)
    assert onnx.names == {0: "item"}
    rois = [
        Roi("left", np.array([[0, 0], [200, 0], [200, 700], [0, 700]], np.float32)),
        Roi("right", np.array([[200, 0], [960, 0], [960, 700], [200, 700]], np.float32)),
    ]
    shelves = _shelves()
    try:
        for image in shelves:
            a, b = onnx.detect(image), torch_side.detect(image)
            assert len(a) > 5  # the model finds things: the comparison means something
            _match(a, b)
            counts_a = count_rois(a, rois, conf=0.3)
            counts_b = count_rois(b, rois, conf=0.3)
            assert {k: v.count for k, v in counts_a.items()} == {
                k: v.count for k, v in counts_b.items()
            }
        onnx.tile = torch_side.tile = TileSettings(480, 480, overlap=0.2)
        _match(onnx.detect(shelves[0]), torch_side.detect(shelves[0]))
    finally:
        torch_side.close()


def test_onnx_detections_are_in_image_pixels(throwaway_model: ThrowawayModel) -> None:
    image = _shelves()[0]
    found = load_detector(throwaway_model.onnx, conf=0.3).detect(image)
    assert len(found) > 5
    assert found.boxes.dtype == np.float32
    assert (found.boxes[:, :2] >= 0).all()
    assert (found.boxes[:, 2] <= image.shape[1]).all()
    assert (found.boxes[:, 3] <= image.shape[0]).all()
    assert (found.boxes[:, 2:] >= found.boxes[:, :2]).all()
    assert (found.scores >= 0.3).all()
    # Boxes span the whole image, not just the letterboxed square's corner.
    assert found.boxes[:, 2].max() > 0.75 * image.shape[1]


def test_a_lower_threshold_only_adds_candidates(throwaway_model: ThrowawayModel) -> None:
    # What counting relies on: detecting at a floor below conf, then keeping >= conf, gives
    # exactly what detecting at conf gives.
    image = _shelves()[1]
    high = load_detector(throwaway_model.onnx, conf=0.35).detect(image)
    low = load_detector(throwaway_model.onnx, conf=0.25).detect(image)
    assert len(low) > len(high) > 0
    again = low.select(low.scores >= 0.35)
    assert again.boxes.tolist() == high.boxes.tolist()
    assert again.scores.tolist() == high.scores.tolist()


def test_load_detector_picks_the_back_end_by_suffix(
    throwaway_model: ThrowawayModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    onnx = load_detector(throwaway_model.onnx, tile=True)
    assert isinstance(onnx, OnnxDetector)
    assert isinstance(onnx, Detector)
    assert onnx.tile == TileSettings()
    image = _shelves()[1]  # a training-sized frame: tiling leaves it whole
    plain = load_detector(throwaway_model.onnx).detect(image)
    assert onnx.detect(image).boxes.tolist() == plain.boxes.tolist()
    assert onnx.name == "onnx:throwaway.onnx"
    pt = load_detector(throwaway_model.pt)
    assert isinstance(pt, UltralyticsDetector)
    assert pt.name == "ultralytics:throwaway.pt"
    pt.close()
    monkeypatch.setattr(detector_module, "SHELF_INT8", throwaway_model.onnx)
    default = load_detector()
    assert isinstance(default, OnnxDetector)
    assert default.path == throwaway_model.onnx


def test_load_detector_errors(
    throwaway_model: ThrowawayModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelNotFoundError, match=r"no model at .*nope\.onnx"):
        load_detector(missing)
    with pytest.raises(FileNotFoundError):
        load_detector(missing)
    with pytest.raises(ValueError, match=r"suffix '\.bin'"):
        load_detector(tmp_path / "weights.bin")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load_detector(garbage)
    with pytest.raises(ValueError, match="unknown back-end"):
        load_detector(throwaway_model.onnx, backend="tensorrt")  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # as if it were not installed
    with pytest.raises(BackendUnavailableError, match=r"pip install 'edgecount\[train\]'"):
        load_detector(throwaway_model.pt)


def test_openvino_runs_the_shipped_model_like_onnxruntime() -> None:
    """The optional back-end: the same .onnx, the same boxes and counts as onnxruntime."""
    onnx = OnnxDetector(SHELF_ONNX, conf=0.3, iou=0.6)
    vino = load_detector(SHELF_ONNX, backend="openvino", conf=0.3, iou=0.6)
    assert isinstance(vino, OpenVinoDetector)
    assert vino.name == f"openvino:{SHELF_ONNX.name}"
    assert vino.input_size == onnx.input_size == (288, 480)
    assert vino.names == onnx.names == {0: "item"}
    rois = [
        Roi("left", np.array([[0, 0], [200, 0], [200, 700], [0, 700]], np.float32)),
        Roi("right", np.array([[200, 0], [960, 0], [960, 700], [200, 700]], np.float32)),
    ]
    for image in _shelves():
        a, b = onnx.detect(image), vino.detect(image)
        assert len(a) > 5
        _match(a, b)
        counts_a = {k: v.count for k, v in count_rois(a, rois, conf=0.3).items()}
        assert counts_a == {k: v.count for k, v in count_rois(b, rois, conf=0.3).items()}


def test_openvino_detector_from_threads_at_once() -> None:
    """Cameras share one detector: concurrent calls take turns on its inference request."""
    from concurrent.futures import ThreadPoolExecutor

    vino = OpenVinoDetector(SHELF_ONNX, conf=0.3)
    images = _shelves()
    alone = [vino.detect(image).boxes.tolist() for image in images]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda image: vino.detect(image).boxes.tolist(), images * 3))
    assert together == alone * 3


def test_openvino_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load_detector(garbage, backend="openvino")
    with pytest.raises(ModelNotFoundError):
        load_detector(tmp_path / "nope.onnx", backend="openvino")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    with pytest.raises(BackendUnavailableError, match=r"pip install 'edgecount\[openvino\]'"):
        load_detector(SHELF_ONNX, backend="openvino")


def test_detect_rejects_a_grey_image(throwaway_model: ThrowawayModel) -> None:
    with pytest.raises(ValueError, match="BGR"):
        load_detector(throwaway_model.onnx).detect(np.zeros((100, 100), np.uint8))
