"""``vision count --rois`` reading a camera's ROIs as the gateway configuration writes them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from gateway.config import load_gateway_config
from gateway.vision.roi import RoiError
from gateway.vision.roi_config import load_count_rois

REPO = Path(__file__).resolve().parents[3]
COMMAND = (sys.executable, "-m", "edgecount", "vision", "count")

CAMERA_A = (
    "  - name: cam-a\n"
    "    url: http://10.0.4.21/snapshot.jpg\n"
    "    rois:\n"
    "      - {location: A-01-01, sku: '806141',\n"
    "         polygon: [[14, 8], [473, 8], [473, 179], [14, 179]]}\n"
    "      - location: A-01-02\n"
    "        sku: '806142'\n"
    "        polygon: [[487, 8], [946, 8], [946, 179], [487, 179]]\n"
)
CAMERA_B = (
    "  - name: cam-b\n"
    "    url: usb:0\n"
    "    rois:\n"
    "      - {location: B-01-01, sku: '806143', polygon: [[0, 0], [100, 0], [100, 50]]}\n"
)


def gateway_yaml(cameras: str, zone_cameras: str) -> str:
    return (
        "site: dc1\n"
        "gateway_id: gw1\n"
        f"cameras:\n{cameras}"
        f"zones:\n  A: {{cameras: [{zone_cameras}]}}\n"
    )


def write(tmp_path: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_one_camera_gateway_config_gives_its_rois_named_by_location(tmp_path: Path) -> None:
    path = write(tmp_path, gateway_yaml(CAMERA_A, "cam-a"))
    rois = load_count_rois(path)
    config = load_gateway_config(path)  # the same file the gateway runs on is valid
    assert [roi.name for roi in rois] == [r.location for r in config.camera("cam-a").rois]
    assert [roi.sku for roi in rois] == ["806141", "806142"]
    np.testing.assert_array_equal(rois[1].polygon, [[487, 8], [946, 8], [946, 179], [487, 179]])
    assert rois[1].polygon.dtype == np.float32


def test_camera_is_picked_by_name_and_needed_among_several(tmp_path: Path) -> None:
    path = write(tmp_path, gateway_yaml(CAMERA_A + CAMERA_B, "cam-a, cam-b"))
    assert [roi.name for roi in load_count_rois(path, "cam-b")] == ["B-01-01"]
    with pytest.raises(RoiError) as several:
        load_count_rois(path)
    assert str(several.value) == (
        f"{path}:3: cameras: 2 cameras (cam-a, cam-b); name one with --camera"
    )
    with pytest.raises(RoiError) as unknown:
        load_count_rois(path, "cam-z")
    assert f"{path}:3: cameras: no camera 'cam-z' (cameras: cam-a, cam-b)" == str(unknown.value)


def test_gateway_config_errors_name_file_line_and_key(tmp_path: Path) -> None:
    bad = gateway_yaml(CAMERA_A, "cam-a").replace("        sku: '806142'\n", "        skew: x\n")
    path = write(tmp_path, bad)
    with pytest.raises(RoiError) as caught:
        load_count_rois(path, "cam-a")
    text = str(caught.value)
    assert f"{path}:10: cameras[0].rois[1].skew: unknown key" in text
    assert f"{path}:9: cameras[0].rois[1].sku: required key is missing" in text


def test_a_moving_camera_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        gateway_yaml(CAMERA_A.replace("    rois:", "    moving: true\n    rois:"), "cam-a"),
    )
    with pytest.raises(RoiError, match="is moving: its ROIs are in aisle pixels"):
        load_count_rois(path)


def test_a_rois_list_as_written_in_the_config(tmp_path: Path) -> None:
    listing = "rois:\n" + "\n".join(
        line[4:] for line in CAMERA_A.split("    rois:\n", 1)[1].splitlines()
    )
    path = write(tmp_path, listing + "\n", "rois.yaml")
    rois = load_count_rois(path)
    assert [(roi.name, roi.sku) for roi in rois] == [("A-01-01", "806141"), ("A-01-02", "806142")]


def test_rois_list_errors_name_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rois:\n"
        "  - {location: A-1, sku: X, polygon: [[0, 0], [10, 0], [10, 10]]}\n"
        "  - {location: A/2, sku: X, polygon: [[0, 0], [10, 0], [10, 10]]}\n"
        "  - {location: A-1, sku: X, polygon: [[0, 0], [10, 0]]}\n",
        "rois.yaml",
    )
    with pytest.raises(RoiError) as caught:
        load_count_rois(path)
    text = str(caught.value)
    assert f"{path}:3: rois[1].location:" in text
    assert f"{path}:4: rois[2].polygon:" in text


def test_camera_option_refused_for_a_plain_regions_file(tmp_path: Path) -> None:
    path = write(tmp_path, "rois:\n  - {name: a, polygon: [[0, 0], [9, 0], [9, 9]]}\n", "r.yaml")
    assert [roi.name for roi in load_count_rois(path)] == ["a"]  # load_rois' form still read
    with pytest.raises(RoiError, match="--camera cam-a needs a gateway configuration file"):
        load_count_rois(path, "cam-a")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "site: dc1\ncameras:\n  - name: [unclosed\n", "gateway.yaml")
    with pytest.raises(RoiError, match=rf"^{path}:\d+: invalid YAML"):
        load_count_rois(path)


def test_cli_reports_a_config_error_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, gateway_yaml(CAMERA_A + CAMERA_B, "cam-a, cam-b"))
    image = tmp_path / "snapshot.png"
    assert cv2.imwrite(str(image), np.zeros((200, 960, 3), dtype=np.uint8))
    for extra, message in [
        ((), f"{path}:3: cameras: 2 cameras (cam-a, cam-b); name one with --camera"),
        (("--camera", "cam-q"), "no camera 'cam-q'"),
    ]:
        done = subprocess.run(
            [*COMMAND, "--image", str(image), "--rois", str(path), *extra],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
        assert "Traceback" not in done.stderr
        assert done.stdout == ""
