"""The foreign evaluation renderers: deterministic, labels on what they drew, counts = labels."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from edgecount.cli import main
from simulators.camera.foreign import RENDERERS, foreign_held_out
from simulators.camera.foreign.scene import ForeignShelf
from tests.simulators.camera.conftest import CountTruth

ROOT = Path(__file__).resolve().parents[3]
FOREIGN = ROOT / "simulators" / "camera" / "foreign"
IMAGES = 6


@pytest.fixture(scope="module", params=sorted(RENDERERS))
def scenes(request: pytest.FixtureRequest) -> tuple[str, list[ForeignShelf]]:
    name = str(request.param)
    return name, list(foreign_held_out(name, IMAGES, seed=11))


def test_same_seed_same_images_other_seed_other_images(
    scenes: tuple[str, list[ForeignShelf]],
) -> None:
    name, first = scenes
    again = list(foreign_held_out(name, 2, seed=11))
    for a, b in zip(first[:2], again, strict=True):
        assert np.array_equal(a.shelf.image, b.shelf.image)
        assert np.array_equal(a.shelf.boxes, b.shelf.boxes)
        assert a.shelf.truth() == b.shelf.truth()
    other = next(foreign_held_out(name, 1, seed=12))
    assert not np.array_equal(other.shelf.image, first[0].shelf.image)


def test_every_box_holds_its_drawn_pixels_and_no_box_is_empty(
    scenes: tuple[str, list[ForeignShelf]],
) -> None:
    _, shelves = scenes
    for scene in shelves:
        boxes = scene.shelf.boxes
        assert len(boxes) > 0
        h, w = scene.ids.shape
        assert np.all(boxes[:, [0, 1]] >= 0)
        assert np.all(boxes[:, 2] <= w)
        assert np.all(boxes[:, 3] <= h)
        for k, (x1, y1, x2, y2) in enumerate(boxes.astype(int).tolist()):
            rows, cols = np.nonzero(scene.ids == k + 1)
            assert rows.size > 0, f"box {k} covers nothing drawn"
            # every visible pixel of the item lies in its box ...
            assert x1 <= cols.min()
            assert y1 <= rows.min()
            assert cols.max() < x2
            assert rows.max() < y2
            # ... and the item fills a good part of it (at least half stays visible)
            assert rows.size >= 0.3 * (x2 - x1) * (y2 - y1), f"box {k} mostly empty"
        assert scene.ids.max() == len(boxes)


def test_counts_equal_labels_by_the_gateways_own_rule(
    scenes: tuple[str, list[ForeignShelf]], count_truth_boxes: CountTruth
) -> None:
    """Truth boxes fed as perfect detections count exactly the truth in every location."""
    _, shelves = scenes
    for scene in shelves:
        shelf = scene.shelf
        assert count_truth_boxes(shelf) == shelf.truth()
        owned = [owner for owner in shelf.owners if owner]
        assert sum(shelf.truth().values()) == len(owned)
        assert all(shelf.owners.count(b.location) == b.count for b in shelf.bins)


def test_sets_vary_fill_and_layout(scenes: tuple[str, list[ForeignShelf]]) -> None:
    _, shelves = scenes
    counts = [c for s in shelves for c in s.shelf.truth().values()]
    assert min(counts) == 0 < max(counts)
    assert len({len(s.shelf.bins) for s in shelves}) > 1


def test_wire_cuts_items_at_the_frame_edge_outside_every_location() -> None:
    scenes = list(foreign_held_out("wire", 10, seed=3))
    edge = [s for s in scenes for owner in s.shelf.owners if owner == ""]
    assert edge, "no item at the frame edge in 10 images"
    cut = 0
    for scene in scenes:
        w = scene.ids.shape[1]
        for box, owner in zip(scene.shelf.boxes.tolist(), scene.shelf.owners, strict=True):
            cut += owner == "" and (box[0] == 0 or box[2] == w)
    assert cut > 0


def test_no_drawing_code_shared_with_the_training_renderer() -> None:
    """The foreign modules take only the truth containers from simulators.camera.render."""
    allowed = {"Bin", "ShelfImage"}
    for path in FOREIGN.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "simulators.camera.render":
                assert {a.name for a in node.names} <= allowed, path.name
            if isinstance(node, ast.Import):
                assert all("render" not in a.name for a in node.names), path.name


def test_sim_camera_dataset_writes_the_held_out_set(tmp_path: Path) -> None:
    out = tmp_path / "wood"
    args = ["sim", "camera", "dataset", "--renderer", "wood", "--train", "1", "--val", "2"]
    assert main([*args, "--seed", "7", "--out", str(out)]) == 0
    expected = list(foreign_held_out("wood", 2, seed=7))
    for index, scene in enumerate(expected):
        stem = f"{index:06d}"
        labels = (out / "labels" / "val" / f"{stem}.txt").read_text().splitlines()
        assert len(labels) == len(scene.shelf.boxes)
        truth = json.loads((out / "truth" / "val" / f"{stem}.json").read_text())
        assert {loc["name"]: loc["count"] for loc in truth["locations"]} == scene.shelf.truth()
    assert len(list((out / "images" / "train").glob("*.jpg"))) == 1
    assert "val: images/val" in (out / "data.yaml").read_text()
