"""Frames for a site's data set: ``edgecount models collect`` and a camera's ``collect_dir``.

``models collect`` saves frames from a configured camera through the gateway's own camera
driver (the URL, kind, fps and watchdog of its configuration), so the frames are what the
detector will see. :class:`FrameKeeper` is the bounded folder behind a camera's
``collect_dir``: during scans it keeps the frames whose count confidence was low, at most
``limit`` files, the oldest removed first.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path

import cv2

from drivers.camera.driver import Camera
from drivers.camera.frame import Frame
from drivers.camera.sources import redact
from edgecount.exitcodes import ExitCode
from edgecount.progress import Progress
from edgecount.yamlcfg import config_argument, load_or_report
from gateway.config import CameraConfig, GatewayConfig, load_gateway_config
from gateway.vision.scan import camera_settings

PROG = "edgecount models collect"
_SAVED = re.compile(r"^.+-\d{8}T\d{6}\.\d{3}Z-\d{6}\.jpg$")


def frame_name(frame: Frame) -> str:
    """``CAMERA-YYYYMMDDTHHMMSS.mmmZ-SEQ.jpg``: sorts by time, unique per camera and frame."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(frame.t))
    millis = int((frame.t % 1) * 1000)
    return f"{frame.camera}-{stamp}.{millis:03d}Z-{frame.seq:06d}.jpg"


def save_frame(folder: Path, frame: Frame) -> Path:
    """Write ``frame`` as a JPEG into ``folder`` (made if needed); returns its path.

    Raises:
        OSError: The folder cannot be made or the file written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / frame_name(frame)
    if not cv2.imwrite(str(path), frame.image):
        raise OSError(f"{path}: OpenCV could not write the JPEG")
    return path


class FrameKeeper:
    """A folder that keeps at most ``limit`` saved frames, removing the oldest first.

    Only files named as :func:`frame_name` names them count and are removed; anything else
    in the folder is left alone. So the folder holds at most ``limit`` frames of this kind;
    its size is bounded by ``limit`` times the largest JPEG of the camera.

    Args:
        folder: Where frames go (made on the first save).
        limit: Most frames kept.
    """

    def __init__(self, folder: Path, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.folder = folder
        self.limit = limit
        self.saved = 0
        """Frames saved by this keeper."""
        self.removed = 0
        """Older frames removed to stay within ``limit``."""

    def keep(self, frame: Frame) -> Path:
        """Save ``frame``, then remove the oldest frames beyond ``limit``.

        Raises:
            OSError: Writing failed (nothing is removed then).
        """
        path = save_frame(self.folder, frame)
        self.saved += 1
        frames = sorted(
            (p for p in self.folder.iterdir() if _SAVED.match(p.name)),
            key=lambda p: (p.stat().st_mtime_ns, p.name),
        )
        for old in frames[: max(len(frames) - self.limit, 0)]:
            old.unlink(missing_ok=True)
            self.removed += 1
        return path


async def collect(
    camera: Camera,
    out: Path,
    *,
    every: float,
    count: int,
    frame_wait: float,
    label: str = "",
) -> list[Path]:
    """Save ``count`` frames of a started camera, at least ``every`` seconds apart.

    Args:
        camera: The camera driver, started.
        out: The folder to save into.
        every: Least seconds between saved frames (by capture time).
        count: Frames to save.
        frame_wait: Longest wait for any one frame beyond ``every``, seconds.
        label: Label of the progress display.

    Raises:
        TimeoutError: No frame came within ``frame_wait + every``.
        OSError: A frame could not be written.
    """
    saved: list[Path] = []
    last: float | None = None
    with Progress(label or f"collect {camera.name}", total=count, unit="frames") as progress:
        while len(saved) < count:
            frame = await camera.next_frame(timeout=frame_wait + every)
            if last is not None and frame.t - last < every:
                continue
            saved.append(await asyncio.to_thread(save_frame, out, frame))
            last = frame.t
            progress.update(len(saved))
    return saved


def pick_camera(config: GatewayConfig, path: Path, name: str | None) -> CameraConfig:
    """The camera called ``name``, or the only one.

    Raises:
        ValueError: No camera, several and no name, or no camera of that name; the message
            names the file.
    """
    names = [camera.name for camera in config.cameras]
    if not names:
        raise ValueError(f"{path}: cameras: the configuration has no camera")
    if name is None and len(names) > 1:
        raise ValueError(f"{path}: cameras: {', '.join(names)}; name one with --camera")
    chosen = name if name is not None else names[0]
    if chosen not in names:
        raise ValueError(f"{path}: cameras: no camera {chosen!r} (cameras: {', '.join(names)})")
    return config.camera(chosen)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0.0 <= value <= 86400.0:
        raise argparse.ArgumentTypeError(f"expected 0 to 86400 seconds, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"expected 1 to 100000 frames, got {text!r}")
    return value


def add_models_collect_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``edgecount models collect``."""
    config_argument(parser, "gateway configuration")
    parser.add_argument(
        "--camera", metavar="NAME", help="the camera to collect from (default: the only one)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder to save the frames in"
    )
    parser.add_argument(
        "--every",
        type=_seconds,
        default=5.0,
        metavar="S",
        help="least seconds between saved frames, by capture time (default: %(default)s)",
    )
    parser.add_argument(
        "--count", type=_count, default=100, metavar="N", help="frames to save (default: 100)"
    )


def run_models_collect(args: argparse.Namespace) -> int:
    """Collect frames; exit 0 when done, 2 for a bad config or camera, 1 when frames stop."""
    config = load_or_report(load_gateway_config, args.config)
    if config is None:
        return ExitCode.USAGE
    try:
        chosen = pick_camera(config, args.config, args.camera)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        saved = asyncio.run(_collect(chosen, args.out, args.every, args.count))
    except TimeoutError:
        wait = 3 * chosen.stall_seconds
        print(
            f"{PROG}: camera {chosen.name} ({redact(chosen.url)}) gave no frame for"
            f" {wait + args.every:g} s; the frames saved so far are in {args.out}",
            file=sys.stderr,
        )
        return ExitCode.FAILED
    except OSError as exc:
        print(f"{PROG}: cannot save into {args.out}: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    print(f"saved {len(saved)} frames of camera {chosen.name} in {args.out}")
    return ExitCode.OK


async def _collect(config: CameraConfig, out: Path, every: float, count: int) -> list[Path]:
    camera = Camera(camera_settings(config))
    await camera.start()
    try:
        # Three watchdog periods: the driver reconnects a stalled source twice in that time.
        return await collect(
            camera, out, every=every, count=count, frame_wait=3 * config.stall_seconds
        )
    finally:
        await camera.stop()
