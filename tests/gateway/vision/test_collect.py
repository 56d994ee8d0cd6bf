"""``edgecount models collect`` against the camera simulator, and the bounded FrameKeeper."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from drivers.camera.driver import Camera
from drivers.camera.frame import Frame
from edgecount.yamlcfg import ConfigError
from gateway.config import CameraConfig, load_gateway_config
from gateway.vision.detectors import DetectorCache
from gateway.vision.frames import FrameKeeper, frame_name
from gateway.vision.roi import Roi, candidate_floor, count_rois
from gateway.vision.scan import CameraCounter, camera_settings
from models.artifacts import SHELF_INT8
from models.detector import load_detector
from simulators.camera.render import RenderSettings, ShelfImage, finish, render_shelf
from simulators.camera.server import CameraServer

REPO = Path(__file__).resolve().parents[3]


def shade(index: int) -> tuple[npt.NDArray[np.uint8], float | None]:
    """Frame ``index``: a flat grey that changes with the index, 64 x 48."""
    return np.full((48, 64, 3), 30 + 20 * (index % 10), dtype=np.uint8), None


def gateway_yaml(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "site: dc1\ngateway_id: gw1\ncameras:\n"
        f"  - name: cam-a\n    url: {url}\n    fps: 20\n    stall_seconds: 1\n"
        "    rois:\n      - {location: A-1, sku: X, polygon: [[0, 0], [64, 0], [64, 48]]}\n"
        f"  - name: cam-b\n    url: {url}\n"
        "    rois:\n      - {location: B-1, sku: X, polygon: [[0, 0], [64, 0], [64, 48]]}\n"
        "zones:\n  A: {cameras: [cam-a, cam-b]}\n",
        encoding="utf-8",
    )
    return path


def collect(*args: str | Path | float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgecount", "models", "collect", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_collect_saves_frames_of_the_named_camera(tmp_path: Path) -> None:
    with CameraServer(shade, fps=20) as server:
        config = gateway_yaml(tmp_path, server.snapshot_url)
        out = tmp_path / "frames"
        done = collect(
            "-c", config, "--camera", "cam-a", "--out", out, "--every", 0.1, "--count", 3
        )
    assert done.returncode == 0, done.stderr
    assert f"saved 3 frames of camera cam-a in {out}" in done.stdout
    assert "collect cam-a" in done.stderr  # progress
    saved = sorted(out.iterdir())
    assert len(saved) == 3
    assert all(path.name.startswith("cam-a-") and path.suffix == ".jpg" for path in saved)
    for path in saved:
        image = cv2.imread(str(path))
        assert image is not None
        assert image.shape == (48, 64, 3)
    seqs = [int(path.stem.rsplit("-", 1)[1]) for path in saved]
    assert len(set(seqs)) == 3


def test_collect_errors_name_the_file(tmp_path: Path) -> None:
    config = gateway_yaml(tmp_path, "http://127.0.0.1:9/snapshot.jpg")
    out = tmp_path / "frames"
    several = collect("-c", config, "--out", out)
    assert several.returncode == 2
    assert f"{config}: cameras: cam-a, cam-b; name one with --camera" in several.stderr
    unknown = collect("-c", config, "--camera", "cam-z", "--out", out)
    assert unknown.returncode == 2
    assert "no camera 'cam-z'" in unknown.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(config.read_text().replace("    fps: 20\n", "    fps: 20\n    colour: red\n"))
    bad = collect("-c", broken, "--camera", "cam-a", "--out", out)
    assert bad.returncode == 2
    assert f"{broken}:7: cameras[0].colour: unknown key" in bad.stderr
    for result in (several, unknown, bad):
        assert "Traceback" not in result.stderr
    assert not out.exists()


def test_frame_keeper_keeps_the_newest_within_its_limit(tmp_path: Path) -> None:
    folder = tmp_path / "low"
    folder.mkdir()
    (folder / "notes.txt").write_text("a person's file")
    keeper = FrameKeeper(folder, limit=3)
    paths = []
    for seq in range(1, 6):
        frame = Frame("cam-a", 1_700_000_000.0 + seq, shade(seq)[0], seq)
        paths.append(keeper.keep(frame))
        os.utime(paths[-1], ns=(seq * 10**9, seq * 10**9))  # distinct ages on any filesystem
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == sorted([*(p.name for p in paths[2:]), "notes.txt"])
    assert (keeper.saved, keeper.removed) == (5, 2)
    assert frame_name(Frame("cam-a", 1_700_000_000.25, shade(0)[0], 7)) == (
        "cam-a-20231114T221320.250Z-000007.jpg"
    )
    with pytest.raises(ValueError, match="at least 1"):
        FrameKeeper(folder, limit=0)


# --- collect_dir: frames of low confidence kept during scans ---------------------------------


def still(image: npt.NDArray[np.uint8], _index: int) -> tuple[npt.NDArray[np.uint8], None]:
    return image, None


def _counter(tmp_path: Path, url: str, shelf: ShelfImage, **extra: Any) -> CameraCounter:
    rois = [{"location": b.location, "sku": "X", "polygon": b.polygon.tolist()} for b in shelf.bins]
    raw = {"name": "cam-1", "url": url, "kind": "snapshot", "fps": 10.0, "rois": rois} | extra
    config = CameraConfig.model_validate(raw, context={"base_dir": tmp_path})
    return CameraCounter(config, Camera(camera_settings(config)), DetectorCache())


async def _scan(counter: CameraCounter) -> None:
    await counter.camera.start()
    try:
        counts = await counter.run(time.monotonic() + 0.3)
    finally:
        await counter.camera.stop()
    assert counts.outcome.ok, counts.outcome.error
    assert counts.outcome.frames == 3


async def test_collect_dir_keeps_low_confidence_frames_within_its_bound(tmp_path: Path) -> None:
    shelf = render_shelf(np.random.default_rng(5), RenderSettings(occlusion=0.0))
    picture = finish(np.random.default_rng(0), shelf.image, RenderSettings().clean())
    blank = np.full_like(picture, 128)
    # A count at conf 0.95 puts the shelf's items near the threshold: confidence is low.
    detector = load_detector(SHELF_INT8, conf=candidate_floor(0.95))
    rois = [Roi(b.location, b.polygon.astype(np.float32)) for b in shelf.bins]
    counted = count_rois(detector.detect(picture), rois, conf=0.95).values()
    assert min(c.confidence for c in counted) < 0.8
    assert len(detector.detect(blank)) == 0  # nothing in doubt: confidence 1.0
    for image, kept in ((picture, 2), (blank, 0)):
        folder = tmp_path / f"kept-{kept}"
        with CameraServer(functools.partial(still, image), fps=20.0) as server:
            counter = _counter(
                tmp_path, server.snapshot_url, shelf,
                conf=0.95, frames=3, collect_dir=folder.name, collect_max=2,
            )  # fmt: skip
            await _scan(counter)
        assert counter.keeper is not None
        saved = sorted(folder.glob("cam-1-*.jpg")) if folder.exists() else []
        assert len(saved) == kept
        assert counter.keeper.saved == (3 if kept else 0)
        assert counter.keeper.removed == (1 if kept else 0)


async def test_collect_dir_that_cannot_be_written_never_fails_the_scan(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shelf = render_shelf(np.random.default_rng(5), RenderSettings(occlusion=0.0))
    picture = finish(np.random.default_rng(0), shelf.image, RenderSettings().clean())
    (tmp_path / "not-a-folder").write_text("a file where the folder should be")
    with CameraServer(functools.partial(still, picture), fps=20.0) as server:
        counter = _counter(
            tmp_path, server.snapshot_url, shelf,
            conf=0.95, frames=3, collect_dir="not-a-folder",
        )  # fmt: skip
        await _scan(counter)  # ok, three frames counted
    assert counter.keeper is not None
    assert counter.keeper.saved == 0
    assert "cannot keep a low-confidence frame" in caplog.text


def test_collect_dir_errors_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file")
    head = "site: s\ngateway_id: g\ncameras:\n  - name: cam-1\n    url: usb:0\n"
    rois = "    rois:\n      - {location: A-1, sku: X, polygon: [[0, 0], [10, 0], [10, 10]]}\n"
    tail = "zones:\n  A: {cameras: [cam-1]}\n"
    for extra, message in [
        ("    moving: true\n    collect_dir: kept\n", "a moving camera keeps no frames"),
        ("    collect_dir: taken\n", f"{tmp_path / 'taken'} is not a folder"),
    ]:
        path = tmp_path / "gateway.yaml"
        path.write_text(head + extra + rois + tail)
        with pytest.raises(ConfigError) as caught:
            load_gateway_config(path)
        line = 6 + extra.count("\n") - 1
        assert f"{path}:{line}: cameras[0].collect_dir: {message}" in str(caught.value)
