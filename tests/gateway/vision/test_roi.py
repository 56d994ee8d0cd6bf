"""Regions: loading, the bottom-centre rule on rendered shelves, and count confidence."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.vision.roi import (
    WHOLE_IMAGE,
    Roi,
    RoiError,
    assign,
    candidate_floor,
    count_rois,
    load_rois,
    points_in_polygon,
)
from models.detections import Detections
from simulators.camera.dataset import DatasetSpec, read_truth, write_dataset
from simulators.camera.render import RenderSettings, make_catalogue, render_shelf


def _square(x0: float, y0: float, x1: float, y1: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def _detections(
    boxes: Sequence[Sequence[float]], scores: Sequence[float] | None = None
) -> Detections:
    return Detections(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(scores if scores is not None else [0.9] * len(boxes), np.float32),
        np.zeros(len(boxes), np.int64),
    )


# -- point in polygon -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 9), st.integers(0, 2**32 - 1))
def test_points_in_polygon_agrees_with_opencv(corners: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # A star-shaped polygon (often concave) around (50, 50).
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = rng.uniform(5, 45, corners)
    polygon = np.stack([50 + radii * np.cos(angles), 50 + radii * np.sin(angles)], axis=1)
    polygon = polygon.astype(np.float32)
    points = rng.uniform(0, 100, (200, 2)).astype(np.float32)
    distance = np.array(
        [cv2.pointPolygonTest(polygon, (float(x), float(y)), True) for x, y in points]
    )
    clear = np.abs(distance) > 1e-3  # on the boundary either answer is allowed
    inside = points_in_polygon(points, polygon)
    assert (inside[clear] == (distance[clear] > 0)).all()


def test_a_point_on_a_shared_edge_belongs_to_one_region() -> None:
    left, right = _square(0, 0, 10, 10), _square(10, 0, 20, 10)
    points = np.array([[10, 5], [10, 0.5], [5, 5], [15, 5]], np.float32)
    both = points_in_polygon(points, left).astype(int) + points_in_polygon(points, right)
    assert both.tolist() == [1, 1, 1, 1]


# -- the bottom-centre rule -------------------------------------------------------------------


def test_bottom_centre_decides_the_region() -> None:
    upper = Roi("A01-L2", _square(0, 0, 100, 100), "SKU-1")
    lower = Roi("A01-L1", _square(0, 100, 100, 200), "SKU-2")
    neighbour = Roi("A02-L1", _square(100, 100, 200, 200))
    found = _detections(
        [
            [10, 60, 30, 150],  # tall: reaches into the bin above, stands in the lower one
            [80, 150, 140, 190],  # straddles two bays: its bottom-centre (110, 190) is right
            [70, 150, 120, 190],  # its bottom-centre (95, 190) is left
            [10, 10, 30, 90],  # wholly in the upper bin
            [300, 10, 320, 90],  # outside every region
        ]
    )
    counts = count_rois(found, [upper, lower, neighbour], conf=0.5)
    assert list(counts) == ["A01-L2", "A01-L1", "A02-L1"]
    assert {k: c.count for k, c in counts.items()} == {"A01-L2": 1, "A01-L1": 2, "A02-L1": 1}
    assert counts["A01-L1"].indices == (0, 2)
    assert counts["A02-L1"].indices == (1,)
    assert counts["A01-L1"].sku == "SKU-2"
    assert counts["A02-L1"].sku is None
    assert assign(found.bottom_centres(), [upper, lower, neighbour]).tolist() == [1, 2, 1, 0, -1]


def test_first_region_wins_where_polygons_overlap() -> None:
    first, second = Roi("first", _square(0, 0, 60, 60)), Roi("second", _square(40, 0, 100, 60))
    found = _detections([[45, 10, 55, 50], [70, 10, 80, 50]])
    assert {k: c.indices for k, c in count_rois(found, [first, second], conf=0.5).items()} == {
        "first": (0,),
        "second": (1,),
    }
    assert {k: c.indices for k, c in count_rois(found, [second, first], conf=0.5).items()} == {
        "second": (0, 1),
        "first": (),
    }


def test_without_regions_the_whole_image_is_one_count() -> None:
    found = _detections([[0, 0, 5, 5], [10, 10, 20, 20], [30, 30, 40, 40]], [0.9, 0.6, 0.2])
    counts = count_rois(found, [], conf=0.5)
    assert list(counts) == [WHOLE_IMAGE]
    assert counts[WHOLE_IMAGE].count == 2
    assert counts[WHOLE_IMAGE].indices == (0, 1)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_truth_boxes_give_the_truth_counts_on_tilted_shelves(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shelf = render_shelf(rng, RenderSettings(tilt=0.05, bays=3), make_catalogue(rng))
    rois = [Roi(b.location, b.polygon, b.sku) for b in shelf.bins]
    found = _detections(shelf.boxes.tolist())
    counts = count_rois(found, rois, conf=0.5)
    assert {k: c.count for k, c in counts.items()} == shelf.truth()
    owner = assign(found.bottom_centres(), rois)
    assert [rois[o].name for o in owner.tolist()] == shelf.owners
    assert sum(c.count for c in counts.values()) == len(shelf.boxes) > 0


def test_truth_json_regions_give_the_truth_counts(tmp_path: Path) -> None:
    write_dataset(tmp_path, DatasetSpec(train=3, val=0, seed=5))
    for truth_file in sorted((tmp_path / "truth" / "train").glob("*.json")):
        truth = read_truth(truth_file)
        rois = load_rois(truth_file)
        assert [r.name for r in rois] == [loc["name"] for loc in truth["locations"]]
        assert [r.sku for r in rois] == [loc["sku"] for loc in truth["locations"]]
        counts = count_rois(_detections(truth["boxes"]), rois, conf=0.25)
        assert {k: c.count for k, c in counts.items()} == {
            loc["name"]: loc["count"] for loc in truth["locations"]
        }


# -- confidence -------------------------------------------------------------------------------


def _confidence(scores: list[float], conf: float = 0.5, margin: float = 0.1) -> tuple[float, int]:
    boxes = [[i * 10, 0, i * 10 + 5, 5] for i in range(len(scores))]
    count = count_rois(_detections(boxes, scores), [], conf=conf, margin=margin)[WHOLE_IMAGE]
    return count.confidence, count.ambiguous


def test_confidence_is_one_when_every_candidate_is_clear() -> None:
    assert _confidence([]) == (1.0, 0)
    assert _confidence([0.95, 0.6, 0.61, 0.39, 0.05]) == (1.0, 0)


def test_confidence_falls_with_each_ambiguous_candidate() -> None:
    cases = [
        ([0.9, 0.5], 0.5, 1),  # a coin toss at the threshold
        ([0.5, 0.5], 0.25, 2),
        ([0.55], 0.75, 1),  # half-way to the band's edge
        ([0.45], 0.75, 1),  # a near miss weighs as much as a near hit
        ([0.55, 0.45, 0.9, 0.1], 0.5625, 2),
    ]
    for scores, expected, ambiguous in cases:
        value, doubtful = _confidence(scores)
        assert value == pytest.approx(expected, abs=1e-6), scores
        assert doubtful == ambiguous
    assert _confidence([0.5], margin=0.0) == (1.0, 0)


@given(st.lists(st.floats(0, 1, width=32), max_size=30), st.floats(0.05, 0.95))
def test_confidence_stays_in_unit_range_and_never_rises_with_more_doubt(
    scores: list[float], conf: float
) -> None:
    value, ambiguous = _confidence(scores, conf)
    assert 0.0 <= value <= 1.0
    assert ambiguous == sum(1 for s in scores if abs(float(np.float32(s)) - conf) / 0.1 < 1.0)
    more, _ = _confidence([*scores, conf], conf)
    assert more <= value / 2 + 1e-6


def test_candidate_floor() -> None:
    assert candidate_floor(0.4) == pytest.approx(0.3)
    assert candidate_floor(0.05) == pytest.approx(0.001)


# -- loading ----------------------------------------------------------------------------------

SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]


def test_load_rois_from_yaml_and_a_bare_json_list(tmp_path: Path) -> None:
    yaml_file = tmp_path / "rois.yaml"
    yaml_file.write_text(
        "rois:\n"
        "  - name: A01-L1\n"
        "    sku: SKU-1\n"
        "    polygon: [[0, 0], [100, 0], [100, 50.5], [0, 50.5]]\n"
        "  - name: A02-L1\n"
        "    polygon: [[100, 0], [200, 0], [150, 50]]\n"
    )
    rois = load_rois(yaml_file)
    assert [(r.name, r.sku) for r in rois] == [("A01-L1", "SKU-1"), ("A02-L1", None)]
    assert rois[0].polygon.dtype == np.float32
    assert rois[0].polygon.tolist() == [[0, 0], [100, 0], [100, 50.5], [0, 50.5]]
    json_file = tmp_path / "rois.json"
    json_file.write_text(json.dumps([{"name": "x", "polygon": SQUARE}]))
    assert [r.name for r in load_rois(json_file)] == ["x"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"rois": [{"name": "a", "polygon": SQUARE[:2]}]}, r"rois\[0\] \('a'\): 'polygon' must"),
        ({"rois": [{"name": "a", "polygon": [[0, 0], [1, "x"], [1, 1]]}]}, "point 1 must be two"),
        ({"rois": [{"name": "a", "polygon": [[0, 0], [1, True], [1, 1]]}]}, "point 1 must be"),
        ({"rois": [{"name": "a", "polygon": [[0, 0], [1, 1], [2, 2]]}]}, "has no area"),
        (
            {"rois": [{"name": "a", "polygon": SQUARE}, {"name": "a", "polygon": SQUARE}]},
            r"rois\[1\] \('a'\): name already used by rois\[0\]",
        ),
        ({"rois": [{"name": "a/b", "polygon": SQUARE}]}, "MQTT topic level"),
        ({"rois": [{"name": "a+", "polygon": SQUARE}]}, "MQTT topic level"),
        ({"rois": [{"name": "#", "polygon": SQUARE}]}, "MQTT topic level"),
        ({"rois": [{"name": "", "polygon": SQUARE}]}, "'name' must be a non-empty string"),
        ({"rois": [{"polygon": SQUARE}]}, r"rois\[0\]: 'name' must"),
        ({"rois": [{"name": "a", "polygon": SQUARE, "colour": 1}]}, r"unknown keys \['colour'\]"),
        ({"rois": [{"name": "a", "polygon": SQUARE, "sku": 7}]}, "'sku' must be a string"),
        ({"rois": []}, "non-empty list"),
        ({"regions": []}, "expected a 'rois' list"),
        ({"rois": ["a"]}, r"rois\[0\]: expected a mapping"),
        ([{"name": "a", "polygon": SQUARE, "count": 3}], r"\[0\] \('a'\): unknown keys"),
    ],
)
def test_load_rois_errors_name_the_file_and_the_entry(
    tmp_path: Path, document: Any, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(RoiError, match=message) as caught:
        load_rois(path)
    assert str(caught.value).startswith(f"{path}:")


def test_load_rois_reports_unreadable_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(RoiError, match="cannot read"):
        load_rois(tmp_path / "missing.yaml")
    broken_yaml = tmp_path / "broken.yaml"
    broken_yaml.write_text("rois: [\n  - name: a\n")
    with pytest.raises(RoiError, match=r"broken\.yaml: invalid YAML"):
        load_rois(broken_yaml)
    broken_json = tmp_path / "broken.json"
    broken_json.write_text('{"rois": [}')
    with pytest.raises(RoiError, match=r"broken\.json:1: invalid JSON"):
        load_rois(broken_json)
    nan = tmp_path / "nan.json"
    nan.write_text('[{"name": "a", "polygon": [[0, 0], [1, NaN], [1, 1]]}]')
    with pytest.raises(RoiError, match="finite numbers"):
        load_rois(nan)
