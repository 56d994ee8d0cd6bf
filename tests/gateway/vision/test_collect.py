"""``edgecount models collect`` against the camera simulator, and the bounded FrameKeeper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from drivers.camera.frame import Frame
from gateway.vision.collect import FrameKeeper, frame_name
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
