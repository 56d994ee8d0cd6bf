"""``edgecount vision count`` as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from gateway.vision.roi import candidate_floor, count_rois, load_rois
from models.artifacts import SHELF_ONNX
from models.detector import load_detector
from simulators.camera.dataset import DatasetSpec, write_dataset
from tests.models.conftest_vision import ThrowawayModel, shared_throwaway_model

REPO = Path(__file__).resolve().parents[3]
CONF = 0.3


@pytest.fixture(scope="session")
def throwaway_model(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayModel:
    """The throw-away detector (one build per session, see ``conftest_vision``)."""
    return shared_throwaway_model(tmp_path_factory)


def edgecount(*args: str | Path | float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgecount", "vision", "count", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A rendered shelf image and its truth record (whose locations serve as regions)."""
    folder = tmp_path_factory.mktemp("shelf")
    write_dataset(folder, DatasetSpec(train=1, val=0, seed=21))
    return folder / "images" / "train" / "000000.jpg", folder / "truth" / "train" / "000000.json"


def _read(path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(path))
    assert image is not None, f"cv2 cannot read {path}"
    return np.asarray(image, dtype=np.uint8)


def _one_json_object(stdout: str) -> dict[str, Any]:
    report = json.loads(stdout)  # fails on anything but exactly one JSON document
    assert isinstance(report, dict)
    return report


def test_json_counts_per_region(throwaway_model: ThrowawayModel, shelf: tuple[Path, Path]) -> None:
    image, truth = shelf
    done = edgecount(
        "--image", image, "--rois", truth, "--model", throwaway_model.onnx, "--conf", CONF, "--json"
    )
    assert done.returncode == 0, done.stderr
    report = _one_json_object(done.stdout)
    rois = load_rois(truth)
    assert list(report["counts"]) == [roi.name for roi in rois]
    assert set(report["confidence"]) == set(report["counts"])
    assert all(0.0 <= value <= 1.0 for value in report["confidence"].values())
    # The detections list is the counts, item by item.
    assert report["total"] == len(report["detections"]) > 0
    per_roi = dict.fromkeys(report["counts"], 0)
    for item in report["detections"]:
        assert len(item["box"]) == 4
        assert item["score"] >= CONF
        if item["roi"] is not None:
            per_roi[item["roi"]] += 1
    assert per_roi == report["counts"]
    assert report["unassigned"] == sum(1 for d in report["detections"] if d["roi"] is None)
    assert sum(report["counts"].values()) + report["unassigned"] == report["total"]
    # And they are what the library computes for the same image and model.
    detector = load_detector(throwaway_model.onnx, conf=candidate_floor(CONF))
    picture = _read(image)
    expected = count_rois(detector.detect(picture), rois, conf=CONF)
    assert report["counts"] == {name: c.count for name, c in expected.items()}
    assert report["confidence"] == {name: round(c.confidence, 4) for name, c in expected.items()}


def test_gateway_config_rois_count_like_the_same_regions(
    throwaway_model: ThrowawayModel, shelf: tuple[Path, Path], tmp_path: Path
) -> None:
    """A camera's ROIs in a gateway.yaml count exactly as the same regions by name."""
    image, truth = shelf
    rois = load_rois(truth)
    written = "".join(
        f"      - {{location: {roi.name}, sku: '{index}', polygon: {roi.polygon.tolist()}}}\n"
        for index, roi in enumerate(rois)
    )
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "site: dc1\ngateway_id: gw1\ncameras:\n  - name: cam-a\n"
        f"    url: {image}\n    rois:\n{written}zones:\n  A: {{cameras: [cam-a]}}\n"
    )
    common = ("--image", image, "--model", throwaway_model.onnx, "--conf", CONF, "--json")
    by_config = edgecount(*common, "--rois", config, "--camera", "cam-a")
    by_truth = edgecount(*common, "--rois", truth)
    assert by_config.returncode == 0, by_config.stderr
    from_config, from_truth = _one_json_object(by_config.stdout), _one_json_object(by_truth.stdout)
    assert list(from_config["counts"]) == [roi.name for roi in rois]
    assert from_config["counts"] == from_truth["counts"]
    assert from_config["total"] == from_truth["total"] > 0


def test_whole_image_table_and_annotation(
    throwaway_model: ThrowawayModel, shelf: tuple[Path, Path], tmp_path: Path
) -> None:
    image, _truth = shelf
    drawn = tmp_path / "drawn.png"
    done = edgecount(
        "--image", image, "--model", throwaway_model.onnx, "--conf", CONF, "--annotate", drawn
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["LOCATION", "SKU", "COUNT"]
    name, sku, count, confidence, _doubt = lines[1].split()
    assert (name, sku) == ("image", "-")
    assert lines[2] == f"{count} items detected"
    assert 0.0 <= float(confidence) <= 1.0
    picture, annotated = _read(image), _read(drawn)
    assert annotated.shape == picture.shape
    assert np.count_nonzero(np.abs(annotated.astype(int) - picture.astype(int)).sum(axis=2)) > 500


def test_tiled_json_without_regions(
    throwaway_model: ThrowawayModel, shelf: tuple[Path, Path]
) -> None:
    image, _truth = shelf
    done = edgecount(
        "--image",
        image,
        "--model",
        throwaway_model.onnx,
        "--conf",
        CONF,
        "--tile-size",
        "400x300",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = _one_json_object(done.stdout)
    assert list(report["counts"]) == ["image"]
    assert report["counts"]["image"] == report["total"] == len(report["detections"]) > 0
    assert {d["roi"] for d in report["detections"]} == {"image"}


def test_ultralytics_back_end_keeps_stdout_clean(
    throwaway_model: ThrowawayModel, shelf: tuple[Path, Path], tmp_path: Path
) -> None:
    image, truth = shelf
    drawn = tmp_path / "drawn.jpg"
    args = ("--image", image, "--rois", truth, "--conf", CONF, "--json", "--annotate", drawn)
    torch_side = edgecount(*args, "--model", throwaway_model.pt)
    onnx_side = edgecount(*args, "--model", throwaway_model.onnx)
    assert torch_side.returncode == 0, torch_side.stderr
    assert (
        _one_json_object(torch_side.stdout)["counts"]
        == _one_json_object(onnx_side.stdout)["counts"]
    )
    assert _read(drawn).shape == _read(image).shape


def test_openvino_back_end_counts_as_onnxruntime(shelf: tuple[Path, Path]) -> None:
    image, truth = shelf  # the shipped model: the one a gateway would run on OpenVINO
    args = ("--image", image, "--rois", truth, "--model", SHELF_ONNX, "--json")
    vino = edgecount(*args, "--backend", "openvino")
    onnx = edgecount(*args, "--backend", "onnx")
    assert vino.returncode == 0, vino.stderr
    assert onnx.returncode == 0, onnx.stderr
    counts = _one_json_object(vino.stdout)["counts"]
    assert sum(counts.values()) > 0
    assert counts == _one_json_object(onnx.stdout)["counts"]


def test_errors_exit_2_with_a_message(
    throwaway_model: ThrowawayModel, shelf: tuple[Path, Path], tmp_path: Path
) -> None:
    image, _truth = shelf
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    bad_rois = tmp_path / "rois.yaml"
    bad_rois.write_text("rois:\n  - name: a/b\n    polygon: [[0, 0], [9, 0], [9, 9]]\n")
    cases = [
        (("--image", not_an_image), f"cannot read an image from {not_an_image}"),
        (("--image", tmp_path / "absent.png"), "cannot read an image"),
        (("--image", image, "--rois", bad_rois), f"{bad_rois}: rois[0] ('a/b')"),
        (("--image", image, "--model", tmp_path / "absent.onnx"), "no model at"),
        (("--image", image, "--annotate", tmp_path / "out.xyz"), "no image writer"),
    ]
    for args, message in cases:
        model = () if "--model" in args else ("--model", throwaway_model.onnx)
        done = edgecount(*args, *model)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert done.stdout == ""
