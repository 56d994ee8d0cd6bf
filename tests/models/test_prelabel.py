"""``edgecount models prelabel``: YOLO labels from the shipped ONNX detector, real images."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from ruamel.yaml import YAML

from models.artifacts import SHELF_ONNX
from models.detections import Detections
from models.detector import load_detector
from models.prelabel import PrelabelError, prelabel, yolo_lines
from simulators.camera.dataset import DatasetSpec, write_dataset

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shelves(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Five rendered shelf images in one folder, and the folder of their truth records."""
    rendered = tmp_path_factory.mktemp("rendered")
    write_dataset(rendered, DatasetSpec(train=5, val=0, seed=33))
    return rendered / "images" / "train", rendered / "truth" / "train"


def _boxes(label: Path, width: int, height: int) -> npt.NDArray[np.float64]:
    rows = [line.split() for line in label.read_text().splitlines()]
    assert all(len(row) == 5 and row[0] == "0" for row in rows)
    values = np.array([[float(v) for v in row[1:]] for row in rows]).reshape(-1, 4)
    assert ((values >= 0) & (values <= 1)).all()
    cx, cy, w, h = values.T
    scale = np.array([width, height, width, height])
    corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * scale
    return np.asarray(corners, dtype=np.float64)


def _iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter), dtype=np.float64)


def test_labels_are_the_items_of_each_shelf(shelves: tuple[Path, Path], tmp_path: Path) -> None:
    images, truths = shelves
    out = tmp_path / "site"
    summary = prelabel(images, out, load_detector(SHELF_ONNX, conf=0.5), val_every=5)
    assert (summary.images, summary.val, summary.unreadable) == (5, 1, ())
    assert sorted(p.name for p in (out / "images" / "val").iterdir()) == ["000004.jpg"]
    matched = total = 0
    for truth_file in sorted(truths.iterdir()):
        truth = json.loads(truth_file.read_text())
        split = "val" if truth_file.stem == "000004" else "train"
        assert (out / "images" / split / f"{truth_file.stem}.jpg").is_file()
        boxes = _boxes(out / "labels" / split / f"{truth_file.stem}.txt", truth["width"],
                       truth["height"])  # fmt: skip
        true_boxes = np.asarray(truth["boxes"], dtype=np.float64)
        total += len(true_boxes)
        if len(boxes):
            matched += int((_iou(true_boxes, boxes).max(axis=1) >= 0.5).sum())
        assert abs(len(boxes) - len(true_boxes)) <= 2, truth_file
    assert summary.boxes >= 0.9 * total
    assert matched >= 0.9 * total  # the shipped model finds its own renderer's items
    data = YAML(typ="safe").load((out / "data.yaml").read_text())
    assert data == {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": {0: "item"},
    }
    assert (out / "classes.txt").read_text() == "item\n"


def test_yolo_lines_normalise_and_clip() -> None:
    detections = Detections(
        np.array([[10, 20, 110, 70], [-5, 0, 20, 10], [50, 50, 50, 60]], np.float32),
        np.array([0.9, 0.8, 0.7], np.float32),
        np.array([0, 0, 0], np.int64),
    )
    assert yolo_lines(detections, 200, 100) == [
        "0 0.300000 0.450000 0.500000 0.500000",
        "0 0.050000 0.050000 0.100000 0.100000",  # clipped at the left edge
    ]  # the zero-width box is dropped


def test_corrected_labels_are_kept_and_bad_input_refused(
    shelves: tuple[Path, Path], tmp_path: Path
) -> None:
    images, _truths = shelves
    source = tmp_path / "frames"
    shutil.copytree(images, source)
    (source / "broken.png").write_text("not an image")
    out = tmp_path / "site"
    detector = load_detector(SHELF_ONNX)
    summary = prelabel(source, out, detector, val_every=0)
    assert summary.unreadable == (source / "broken.png",)
    assert summary.images == 5
    assert summary.val == 0
    label = out / "labels" / "train" / "000000.txt"
    label.write_text("0 0.5 0.5 0.1 0.1\n")  # a person's correction
    with pytest.raises(PrelabelError, match=r"000000\.txt exists .*--overwrite"):
        prelabel(source, out, detector)
    assert label.read_text() == "0 0.5 0.5 0.1 0.1\n"
    prelabel(source, out, detector, val_every=0, overwrite=True)
    assert label.read_text() != "0 0.5 0.5 0.1 0.1\n"
    (source / "000001.png").write_text("x")
    with pytest.raises(PrelabelError, match="share the name '000001'"):
        prelabel(source, tmp_path / "other", detector)
    with pytest.raises(PrelabelError, match="no such folder"):
        prelabel(tmp_path / "absent", out, detector)


def test_command_line(shelves: tuple[Path, Path], tmp_path: Path) -> None:
    images, _truths = shelves
    out = tmp_path / "site"

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "edgecount", "models", "prelabel", *map(str, args)]
        return subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
        )

    done = run("--images", images, "--out", out, "--conf", "0.4")
    assert done.returncode == 0, done.stderr
    assert "labelled 5 images (4 train, 1 val)" in done.stdout
    assert "prelabel" in done.stderr  # progress on stderr
    assert len(list((out / "labels" / "train").glob("*.txt"))) == 4
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in [
        (("--images", empty, "--out", out), f"{empty}: no images"),
        (("--images", images, "--out", out), "exists (perhaps corrected by hand)"),
        (("--images", images, "--out", out, "--model", tmp_path / "no.onnx"), "no model at"),
    ]:
        failed = run(*args)
        assert failed.returncode == 2, failed.stderr
        assert message in failed.stderr
        assert "Traceback" not in failed.stderr
