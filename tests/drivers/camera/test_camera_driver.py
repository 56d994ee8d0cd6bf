"""The camera driver against real sources: the HTTP simulator, a video file, an image folder."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from drivers.base import HealthState
from drivers.camera.driver import Camera, CameraSettings
from drivers.camera.frame import Frame
from drivers.camera.sources import infer_kind, make_source, redact
from simulators.camera.server import CameraServer

Image = npt.NDArray[np.uint8]
WAIT = 10.0
STALL = 0.5
FAST: dict[str, Any] = {
    "stall_seconds": STALL,
    "timeout_seconds": STALL,
    "backoff_initial": 0.05,
    "backoff_max": 0.2,
}
"""Settings that make a test's watchdog, timeouts and reconnects quick."""


def grey(index: int) -> tuple[Image, float | None]:
    """Frame ``index``: a flat grey of ``40 * (index % 6)``, pose ``index * 1.5``."""
    return np.full((48, 64, 3), 40 * (index % 6), dtype=np.uint8), index * 1.5


def level(frame: Frame) -> int:
    """The grey level of a flat frame."""
    return round(float(frame.image.mean()))


@asynccontextmanager
async def running(settings: CameraSettings) -> AsyncIterator[Camera]:
    camera = Camera(settings)
    await camera.start()
    try:
        yield camera
    finally:
        await camera.stop()


async def drain(camera: Camera) -> None:
    while not camera.queue.empty():
        camera.queue.get_nowait()


# --- sources from the simulator -------------------------------------------------------------


async def test_snapshot_frames_carry_the_pose_header() -> None:
    with CameraServer(grey, fps=20) as server:
        settings = CameraSettings("shelf-1", server.snapshot_url, fps=20, **FAST)
        async with running(settings) as camera:
            assert camera.health().state is HealthState.CONNECTED
            frames = [await camera.next_frame(WAIT) for _ in range(3)]
    assert [f.seq for f in frames] == [1, 2, 3]
    for frame in frames:
        assert frame.camera == "shelf-1"
        assert frame.image.shape == (48, 64, 3)
        assert frame.image.dtype == np.uint8
        assert frame.pose is not None
        assert abs(level(frame) - 40 * (round(frame.pose / 1.5) % 6)) <= 2
        assert abs(frame.t - time.time()) < WAIT
    assert camera.health().state is HealthState.STOPPED


async def test_mjpeg_stream_is_decoded_through_opencv() -> None:
    with CameraServer(grey, fps=25) as server:
        settings = CameraSettings("aisle-3", server.stream_url, **FAST)
        assert infer_kind(settings.url) == "stream"
        async with running(settings) as camera:
            frames = [await camera.next_frame(WAIT) for _ in range(4)]
            assert server.stats.streaming == 1
    assert [f.seq for f in frames] == [1, 2, 3, 4]
    assert all(f.pose is None for f in frames)  # part headers are not visible through OpenCV
    assert all(level(f) % 40 in (0, 1, 39) for f in frames)  # flat greys survive JPEG
    assert len({level(f) for f in frames}) > 1  # the stream moves on


async def test_first_attempt_fails_then_the_camera_connects_when_it_comes_up() -> None:
    server = CameraServer(grey, fps=20).start()
    port = server.port
    server.stop()
    url = f"http://127.0.0.1:{port}/snapshot.jpg"
    async with running(CameraSettings("late", url, fps=20, **FAST)) as camera:
        health = camera.health()
        assert health.state is HealthState.RECONNECTING
        assert health.connects == 0
        assert health.last_error is not None
        assert "connect failed" in health.last_error
        with CameraServer(grey, fps=20, port=port) as again:
            assert again.port == port
            assert await camera.wait_connected(WAIT)
            await camera.next_frame(WAIT)
    assert camera.failures >= 1


# --- the watchdog ---------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["snapshot", "stream"])
async def test_recovers_from_a_camera_that_stalls(endpoint: str) -> None:
    with CameraServer(grey, fps=20) as server:
        url = server.snapshot_url if endpoint == "snapshot" else server.stream_url
        async with running(CameraSettings("stally", url, fps=20, **FAST)) as camera:
            before = await camera.next_frame(WAIT)
            server.stall()
            stalled_at = time.monotonic()
            assert await camera.wait_for(lambda h: h.state is HealthState.RECONNECTING, WAIT)
            assert time.monotonic() - stalled_at < STALL + 1.0
            health = camera.health()
            assert health.disconnects == 1
            assert health.connects == 1
            assert health.last_error is not None
            server.resume()
            assert await camera.wait_connected(WAIT, count=2)
            await drain(camera)
            after = await camera.next_frame(WAIT)
            assert after.seq > before.seq
            assert camera.health().state is HealthState.CONNECTED
            assert camera.health().connects == 2
            assert camera.health().disconnects == 1


async def test_a_dropped_stream_reconnects() -> None:
    with CameraServer(grey, fps=20) as server:
        async with running(CameraSettings("droppy", server.stream_url, **FAST)) as camera:
            await camera.next_frame(WAIT)
            assert server.drop_clients() == 1
            assert await camera.wait_connected(WAIT, count=2)
            await drain(camera)
            await camera.next_frame(WAIT)
            assert camera.health().disconnects == 1


async def test_stop_is_prompt_while_a_read_is_blocked() -> None:
    with CameraServer(grey, fps=20) as server:
        settings = CameraSettings("stuck", server.stream_url, **FAST)
        camera = Camera(settings)
        await camera.start()
        await camera.next_frame(WAIT)
        server.stall()
        started = time.monotonic()
        await camera.stop()
        assert time.monotonic() - started < settings.timeout_seconds + 1.0
        assert camera.health().state is HealthState.STOPPED


# --- files and folders ----------------------------------------------------------------------


def write_folder(directory: Path, count: int) -> Path:
    directory.mkdir()
    for index in range(count):
        cv2.imwrite(str(directory / f"{index:03d}.png"), grey(index)[0])
    (directory / "notes.txt").write_text("not an image\n")
    return directory


def write_video(path: Path, count: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for index in range(count):
        writer.write(grey(index)[0])
    writer.release()
    return path


async def test_folder_images_in_name_order_then_the_camera_stops(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "shots", 5)
    settings = CameraSettings("folder", str(folder), queue_size=8, **FAST)
    async with running(settings) as camera:
        assert await camera.wait_for(lambda h: h.state is HealthState.STOPPED, WAIT)
        frames = [camera.queue.get_nowait() for _ in range(camera.queue.qsize())]
    assert [level(f) for f in frames] == [0, 40, 80, 120, 160]
    assert [f.seq for f in frames] == [1, 2, 3, 4, 5]
    assert camera.health().last_error is None


async def test_a_looped_folder_starts_over(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "shots", 3)
    settings = CameraSettings("loop", str(folder), loop=True, fps=100, **FAST)
    async with running(settings) as camera:
        frames = [await camera.next_frame(WAIT) for _ in range(5)]
    assert [level(f) for f in frames] == [0, 40, 80, 0, 40]


@pytest.mark.parametrize("loop", [False, True])
async def test_video_file_frames(tmp_path: Path, loop: bool) -> None:
    video = write_video(tmp_path / "pass.avi", 4)
    settings = CameraSettings("file", str(video), loop=loop, fps=100, queue_size=8, **FAST)
    assert infer_kind(settings.url) == "file"
    async with running(settings) as camera:
        frames = [await camera.next_frame(WAIT) for _ in range(6 if loop else 4)]
        if not loop:
            assert await camera.wait_for(lambda h: h.state is HealthState.STOPPED, WAIT)
    expected = [0, 40, 80, 120, 0, 40] if loop else [0, 40, 80, 120]
    assert [round(level(f) / 40) * 40 for f in frames] == expected
    assert frames[0].image.shape == (48, 64, 3)


# --- the queue ------------------------------------------------------------------------------


async def test_a_full_queue_drops_the_oldest_frames_and_counts_them(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "shots", 10)
    settings = CameraSettings("nobody-reads", str(folder), fps=100, queue_size=2, **FAST)
    async with running(settings) as camera:
        assert await camera.wait_for(lambda h: h.state is HealthState.STOPPED, WAIT)
        kept = [camera.queue.get_nowait() for _ in range(camera.queue.qsize())]
    health = camera.health()
    assert [f.seq for f in kept] == [9, 10]  # the freshest
    assert health.dropped == 8
    assert health.reads == 10


# --- configuration errors -------------------------------------------------------------------


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"ftp://cam\.example/live.*unknown camera URL scheme"):
        Camera(CameraSettings("x", "ftp://cam.example/live"))


def test_missing_paths_and_bad_kinds_name_the_url(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.avi"
    with pytest.raises(ValueError, match=r"nothing-here\.avi"):
        make_source(str(missing))
    with pytest.raises(ValueError, match="unknown camera kind 'webcam'"):
        make_source("usb:0", "webcam")
    with pytest.raises(ValueError, match="snapshot URL"):
        make_source("rtsp://cam/1", "snapshot")
    with pytest.raises(ValueError, match="usb:N or /dev/videoN"):
        make_source("usb:front", "device")


def test_kinds_inferred_from_urls(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", 1)
    assert infer_kind("rtsp://10.0.0.5:554/stream1") == "stream"
    assert infer_kind("http://cam/video.MJPG") == "stream"
    assert infer_kind("http://cam/cgi-bin/stream?ch=1") == "stream"
    assert infer_kind("https://cam/snapshot.jpg") == "snapshot"
    assert infer_kind("usb:0") == "device"
    assert infer_kind("/dev/video2") == "device"
    assert infer_kind(str(tmp_path)) == "folder"
    assert infer_kind(str(video)) == "file"
    assert infer_kind(video.as_uri()) == "file"


def test_passwords_are_redacted_from_errors() -> None:
    assert redact("rtsp://admin:s3cret@10.0.0.5:554/live") == "rtsp://admin:***@10.0.0.5:554/live"
    with pytest.raises(ValueError, match=r"\*\*\*") as caught:
        make_source("ftp://admin:s3cret@cam/live")
    assert "s3cret" not in str(caught.value)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="fps must be positive and above 1 / stall_seconds"):
        CameraSettings("slow", "usb:0", fps=0.1, stall_seconds=5.0)
    with pytest.raises(ValueError, match="queue_size"):
        CameraSettings("tiny", "usb:0", queue_size=0)
