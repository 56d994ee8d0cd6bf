"""The domain-randomised training renderer: its truth follows the labelling rule, and it varies."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from edgecount.cli import main
from simulators.camera.render import ShelfImage
from simulators.camera.varied import (
    VARIED_SEED,
    VariedSettings,
    frame_box,
    render,
    varied_shelves,
)
from simulators.camera.varied.optics import View
from simulators.camera.varied.products import KINDS, make_look, paint, silhouette
from simulators.camera.varied.scene import SHELVES, Fill, build
from simulators.camera.varied.textures import PHOTOS, photos, texture
from tests.simulators.camera.conftest import CountTruth

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = VariedSettings()


@pytest.fixture(scope="module")
def shelves() -> list[ShelfImage]:
    return list(varied_shelves(16, seed=21))


def test_same_seed_same_images_other_seed_other_images(shelves: list[ShelfImage]) -> None:
    again = list(varied_shelves(2, seed=21))
    for a, b in zip(shelves[:2], again, strict=True):
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.boxes, b.boxes)
        assert a.truth() == b.truth()
    assert not np.array_equal(next(varied_shelves(1, seed=22)).image, shelves[0].image)


def test_boxes_lie_in_the_frame_and_locations_wholly_inside_it(shelves: list[ShelfImage]) -> None:
    for shelf in shelves:
        h, w = shelf.image.shape[:2]
        assert shelf.image.shape == (SETTINGS.height, SETTINGS.width, 3)
        assert len(shelf.boxes) == len(shelf.owners) > 0
        assert np.all(shelf.boxes[:, :2] >= 0)
        assert np.all(shelf.boxes[:, 2] <= w - 1)
        assert np.all(shelf.boxes[:, 3] <= h - 1)
        assert np.all(shelf.boxes[:, 2] > shelf.boxes[:, 0])
        assert np.all(shelf.boxes[:, 3] > shelf.boxes[:, 1])
        for b in shelf.bins:
            assert np.all(b.polygon >= 0)
            assert np.all(b.polygon[:, 0] <= w - 1)
            assert np.all(b.polygon[:, 1] <= h - 1)


def test_counts_equal_labels_by_the_gateways_own_rule(
    shelves: list[ShelfImage], count_truth_boxes: CountTruth
) -> None:
    """Truth boxes fed as perfect detections count exactly the truth in every location."""
    located = 0
    for shelf in shelves:
        if not shelf.bins:  # no bin wholly in the frame (count_rois would count the frame)
            continue
        assert count_truth_boxes(shelf) == shelf.truth()
        assert all(shelf.owners.count(b.location) == b.count for b in shelf.bins)
        located += len(shelf.bins)
    assert located >= len(shelves), "too few locations wholly in the frame"


def test_items_at_the_frame_edge_are_cut_and_stand_outside_every_location(
    shelves: list[ShelfImage],
) -> None:
    cut = 0
    for shelf in shelves:
        h, w = shelf.image.shape[:2]
        for (x1, y1, x2, y2), owner in zip(shelf.boxes.tolist(), shelf.owners, strict=True):
            at_edge = x1 == 0 or y1 == 0 or x2 == w - 1 or y2 == h - 1
            cut += at_edge
            if at_edge:
                assert owner == ""
    assert cut > 0


@pytest.mark.parametrize(
    ("left", "top", "expected"),
    [
        (100.0, 50.0, (100.0, 50.0, 140.0, 130.0)),  # wholly inside: its bounds
        (-12.0, 50.0, (0.0, 50.0, 28.0, 130.0)),  # 70 % of its width inside: cut
        (-28.0, 50.0, None),  # 30 % inside: no box
        (300.0, -30.0, (300.0, 0.0, 340.0, 50.0)),  # 62 % of its height inside
        (300.0, 150.0, None),  # 30 % of its height inside (frame 174 high)
        (-20.0, 50.0, (0.0, 50.0, 20.0, 130.0)),  # exactly half: kept
    ],
)
def test_a_cut_item_keeps_its_box_only_when_half_of_it_is_in_the_frame(
    left: float, top: float, expected: tuple[float, float, float, float] | None
) -> None:
    outline = silhouette("bottle", 40, 80) + np.array([left, top], np.float32)
    box = frame_box(outline, 400, 175)
    if expected is None:
        assert box is None
    else:
        assert box == pytest.approx(expected, abs=1e-4)


def test_the_lens_moves_image_and_outline_alike() -> None:
    """A white dot painted in the scene lands where View.points says, distortion included."""
    rng = np.random.default_rng(2)
    size = (320, 200)
    scene = np.zeros((240, 380, 3), np.float32)
    for k in (-0.12, 0.0, 0.06):
        view = View.random(rng, (30.0, 20.0), size, 0.05, 0.0)
        view = View(view.homography, k, size)
        for point in ((60.0, 50.0), (330.0, 190.0), (190.0, 120.0)):
            scene[:] = 0
            x, y = int(point[0]), int(point[1])
            scene[y - 1 : y + 2, x - 1 : x + 2] = 255
            frame = view.image(scene)[..., 0]
            found = np.unravel_index(int(np.argmax(frame)), frame.shape)
            expected = view.points(np.array([[x, y]], np.float32))[0]
            assert frame.max() > 100
            assert abs(found[1] - expected[0]) <= 1.5
            assert abs(found[0] - expected[1]) <= 1.5


def test_every_shape_fills_its_box_and_is_not_a_rectangle_where_it_should_not_be() -> None:
    rng = np.random.default_rng(0)
    for kind in KINDS:
        outline = silhouette(kind, 40, 90, rng)
        assert outline.min(axis=0) == pytest.approx([0, 0], abs=0.2)
        assert outline.max(axis=0) == pytest.approx([40, 90], abs=0.2)
        look = make_look(rng, "S", kind, 40)
        patch, painted = paint(rng, look, 40, 90)
        coverage = patch[..., 3]
        assert patch.shape == (90, 40, 4)
        assert np.array_equal(painted, np.asarray(painted, np.float32))
        if kind in ("bottle", "carton", "irregular", "pouch"):
            # necks, gables and odd outlines leave the box's corners empty
            assert coverage[0, 0] < 0.5
            assert coverage[0, -1] < 0.5
        assert coverage.mean() > 0.5


def test_sixty_images_show_every_product_kind_and_shelf() -> None:
    rng = np.random.default_rng(9)
    kinds: set[str] = set()
    shelf_kinds: set[str] = set()
    for _ in range(60):
        scene = build(rng, (480, 272), Fill(60, 0.08, 0.3, 0.3, 0.15, 0.5), "V")
        kinds |= {item.kind for item in scene.items}
        shelf_kinds.add(scene.shelf)
    assert kinds == set(KINDS)
    assert shelf_kinds == set(SHELVES)


def test_labels_use_photographs_shipped_inside_scikit_image() -> None:
    loaded = photos()
    assert len(loaded) == len(PHOTOS)
    assert all(p.ndim == 3 and p.shape[2] == 3 and p.max() > 50 for p in loaded)
    rng = np.random.default_rng(0)
    crop = texture(rng, 30, 50, "photo")
    assert crop.shape == (30, 50, 3)
    assert crop.std() > 5


def test_fill_varies_from_empty_to_full(shelves: list[ShelfImage]) -> None:
    counts = [c for s in shelves for c in s.truth().values()]
    assert min(counts) == 0
    assert max(counts) >= 20


def test_shares_no_code_with_the_foreign_renderers() -> None:
    """Training and evaluation renderers stay independent in both directions."""
    pairs = (("varied", "foreign"), ("foreign", "varied"))
    for package, other in pairs:
        for path in (ROOT / "simulators" / "camera" / package).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    assert other not in (node.module or ""), path


def test_sim_camera_dataset_writes_a_varied_set(tmp_path: Path) -> None:
    out = tmp_path / "varied"
    args = ["sim", "camera", "dataset", "--renderer", "varied", "--train", "2", "--val", "1"]
    assert main([*args, "--seed", "3", "--out", str(out)]) == 0
    expected = list(varied_shelves(2, seed=3))
    for index, shelf in enumerate(expected):
        stem = f"{index:06d}"
        labels = (out / "labels" / "train" / f"{stem}.txt").read_text().splitlines()
        assert len(labels) == len(shelf.boxes)
        truth = json.loads((out / "truth" / "train" / f"{stem}.json").read_text())
        assert {loc["name"]: loc["count"] for loc in truth["locations"]} == shelf.truth()
    assert len(list((out / "images" / "val").glob("*.jpg"))) == 1


def test_render_takes_its_settings() -> None:
    small = VariedSettings(width=320, height=192, max_items=10, jpeg=(90, 90))
    shelf = render(np.random.default_rng(4), small)
    assert shelf.image.shape == (192, 320, 3)
    assert all(b.count <= 10 for b in shelf.bins)


def test_models_eval_scores_the_varied_held_out_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "eval", "--set", "varied", "--images", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    expected = list(varied_shelves(3, seed=VARIED_SEED))
    assert summary["set"] == "varied"
    assert summary["seed"] == VARIED_SEED
    assert summary["locations"] == sum(len(s.bins) for s in expected)
    assert summary["images"] == sum(1 for s in expected if s.bins)
