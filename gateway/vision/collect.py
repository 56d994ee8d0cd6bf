"""``edgecount models collect``: frames from a configured camera, for a site's data set.

It saves frames through the gateway's own camera driver (the URL, kind, fps and watchdog of
the camera's configuration), so the frames are what the detector will see. A camera's
``collect_dir`` does the same during scans for frames counted with low confidence
(:mod:`gateway.vision.frames`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from drivers.camera.driver import Camera
from drivers.camera.sources import redact
from edgecount.argtypes import bounded
from edgecount.exitcodes import ExitCode
from edgecount.progress import Progress
from edgecount.yamlcfg import config_argument, load_or_report
from gateway.config import CameraConfig, GatewayConfig, load_gateway_config
from gateway.vision.frames import save_frame
from gateway.vision.scan import camera_settings

PROG = "edgecount models collect"


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


_seconds = bounded(float, 0.0, 86400.0, "seconds")


_count = bounded(int, 1, 100_000, "a number of frames")


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
