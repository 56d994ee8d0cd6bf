"""``edgecount sim camera``: write a shelf data set, or serve a simulated shelf camera.

``dataset`` renders shelves with exact truth into a YOLO data set (see
:mod:`simulators.camera.dataset`), showing its progress on stderr. ``serve`` runs a
:class:`~simulators.camera.server.CameraServer`: a fixed camera on one shelf (the same contents
every frame, fresh lighting and noise), or with ``--pan`` a camera carried along an aisle
(:mod:`simulators.camera.pan`; the pose header is the frame's aisle offset). It prints
``listening on HOST:PORT`` and one ``NAME URL`` line per endpoint on stdout, then serves until
SIGTERM or SIGINT (exit status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.exitcodes import ExitCode
from edgecount.progress import Progress
from simulators.camera.dataset import DatasetSpec, truth_record, write_dataset
from simulators.camera.foreign import RENDERERS, write_foreign
from simulators.camera.render import Image, RenderSettings, finish, render_shelf
from simulators.camera.server import CameraServer, FrameProvider
from simulators.camera.varied import write_varied

_DEFAULT = RenderSettings()


def add_sim_camera_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``dataset`` and ``serve`` modes and their options to ``parser``."""
    modes = parser.add_subparsers(dest="mode", metavar="MODE", required=True)
    dataset = modes.add_parser("dataset", help="write a YOLO data set of rendered shelves")
    dataset.add_argument("--out", required=True, type=Path, help="folder to write into")
    dataset.add_argument("--train", type=int, default=400, metavar="N", help="training images")
    dataset.add_argument("--val", type=int, default=80, metavar="N", help="validation images")
    dataset.add_argument("--seed", type=int, default=0, help="RNG seed (default 0)")
    dataset.add_argument(
        "--renderer",
        choices=("training", "varied", *RENDERERS),
        default="training",
        help="training: the simulator's own shelves (default); varied: domain-randomised"
        " training shelves (simulators/camera/varied); wood, wire: a foreign renderer"
        " for evaluation (simulators/camera/foreign: its own layout, --bays/--levels/--width/"
        "--height do not apply; its val split is bench/vision.py's held-out set of that seed)",
    )
    _scene_arguments(dataset, bays_help=f"bays across each image (default {_DEFAULT.bays})")

    serve = modes.add_parser("serve", help="serve a simulated shelf camera over HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = free)")
    serve.add_argument("--fps", type=float, default=10.0, help="frames per second (default 10)")
    serve.add_argument("--seed", type=int, default=0, help="RNG seed of the scene (default 0)")
    _scene_arguments(
        serve, bays_help="bays in view (default 2), or along the aisle with --pan (default 8)"
    )
    serve.add_argument(
        "--pan", action="store_true", help="a camera moving along an aisle instead of a fixed one"
    )
    serve.add_argument(
        "--step", type=float, default=24.0, metavar="PX", help="pan: pixels per frame (default 24)"
    )
    serve.add_argument(
        "--once",
        action="store_true",
        help="pan: one pass, then stay parked at the end of the aisle (default: loop)",
    )
    faults = serve.add_argument_group("fault injection")
    faults.add_argument(
        "--stall-after",
        type=float,
        metavar="SECONDS",
        help="stall SECONDS after start: connections stay open, nothing more is sent",
    )
    faults.add_argument(
        "--stall-for",
        type=float,
        metavar="SECONDS",
        help="resume SECONDS after a stall began (default: stay stalled)",
    )


def _scene_arguments(parser: argparse.ArgumentParser, *, bays_help: str) -> None:
    parser.add_argument("--bays", type=int, default=None, metavar="N", help=bays_help)
    parser.add_argument(
        "--levels", type=int, default=_DEFAULT.levels, metavar="N", help="shelf levels (default 3)"
    )
    parser.add_argument(
        "--width", type=int, default=_DEFAULT.width, metavar="PX", help="image width (default 960)"
    )
    parser.add_argument(
        "--height",
        type=int,
        default=_DEFAULT.height,
        metavar="PX",
        help="image height (default 544)",
    )


def run_sim_camera(args: argparse.Namespace) -> int:
    """Run the chosen mode; returns the exit status."""
    problem = _check(args)
    if problem:
        print(problem, file=sys.stderr)
        return ExitCode.USAGE
    if args.mode == "dataset":
        return _dataset(args)
    try:
        provider, truth = _provider(args)
    except ValueError as exc:
        print(f"cannot render the scene: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        server = CameraServer(provider, args.fps, host=args.host, port=args.port)
        server.truth = truth
        return asyncio.run(_serve(server, args))
    except OSError as exc:
        print(f"cannot listen: {exc}", file=sys.stderr)
        return 1


def _check(args: argparse.Namespace) -> str | None:
    if (args.bays is not None and args.bays < 1) or args.levels < 1:
        return "--bays and --levels must be at least 1"
    if args.width < 64 or args.height < 64:
        return "--width and --height must be at least 64 pixels"
    if args.mode == "dataset":
        return "--train and --val must not be negative" if min(args.train, args.val) < 0 else None
    if args.fps <= 0 or args.step <= 0:
        return "--fps and --step must be positive"
    if (args.stall_after or 0) < 0 or (args.stall_for or 0) < 0:
        return "--stall-after and --stall-for must not be negative"
    return None


def _settings(args: argparse.Namespace, bays: int) -> RenderSettings:
    return replace(_DEFAULT, width=args.width, height=args.height, bays=bays, levels=args.levels)


def _dataset(args: argparse.Namespace) -> int:
    if args.renderer != "training":
        return _other_dataset(args)
    spec = DatasetSpec(
        train=args.train,
        val=args.val,
        seed=args.seed,
        settings=_settings(args, args.bays or _DEFAULT.bays),
    )
    shown = Progress("data set", spec.train + spec.val, unit="images")
    try:
        with shown:
            data = write_dataset(args.out, spec, lambda done, _total: shown.update(done))
    except OSError as exc:
        print(f"cannot write the data set: {exc}", file=sys.stderr)
        return 1
    print(f"data set ready: {data}", flush=True)
    return ExitCode.OK


def _other_dataset(args: argparse.Namespace) -> int:
    shown = Progress(f"{args.renderer} set", args.train + args.val, unit="images")
    try:
        with shown:
            progress = lambda done, _total: shown.update(done)  # noqa: E731
            if args.renderer == "varied":
                data = write_varied(
                    args.out, train=args.train, val=args.val, seed=args.seed, progress=progress
                )
            else:
                data = write_foreign(
                    args.out,
                    args.renderer,
                    train=args.train,
                    val=args.val,
                    seed=args.seed,
                    progress=progress,
                )
    except OSError as exc:
        print(f"cannot write the data set: {exc}", file=sys.stderr)
        return 1
    print(f"data set ready: {data}", flush=True)
    return ExitCode.OK


def _provider(args: argparse.Namespace) -> tuple[FrameProvider, dict[str, Any]]:
    """The frame provider and its truth (``truth_record`` of the shelf or the aisle)."""
    rng = np.random.default_rng(args.seed)
    if args.pan:
        from simulators.camera.pan import pan_provider, render_aisle

        settings = _settings(args, args.bays or 8)
        aisle = render_aisle(rng, settings.bays, settings)
        provider = pan_provider(
            aisle, width=args.width, step=args.step, rng=rng, loop=not args.once
        )
        truth = truth_record(aisle, "aisle")
        truth["pan"] = {"frame_width": args.width, "step": args.step}
        return provider, truth
    settings = _settings(args, args.bays or _DEFAULT.bays)
    clean = replace(settings, lighting=(1.0, 1.0), blur=0.0, noise=0.0, jpeg_quality=0)
    shelf = render_shelf(rng, clean)  # tilt and occlusion stay: they are the scene

    def frame(_index: int) -> tuple[Image, float | None]:
        return finish(rng, shelf.image, settings), None

    return frame, truth_record(shelf, "snapshot.jpg")


async def _serve(server: CameraServer, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server.start()
    try:
        print(f"listening on {args.host}:{server.port}", flush=True)
        for name, url in (
            ("snapshot", server.snapshot_url),
            ("stream", server.stream_url),
            ("truth", f"{server.url}/truth.json"),
        ):
            print(f"{name} {url}", flush=True)
        if args.stall_after is not None:
            loop.call_later(args.stall_after, _stall, loop, server, args.stall_for)
        await stop.wait()
    finally:
        await asyncio.to_thread(server.stop)
    return ExitCode.OK


def _stall(loop: asyncio.AbstractEventLoop, server: CameraServer, seconds: float | None) -> None:
    server.stall()
    print("stalled", flush=True)
    if seconds is not None:
        loop.call_later(seconds, _resume, server)


def _resume(server: CameraServer) -> None:
    server.resume()
    print("resumed", flush=True)
