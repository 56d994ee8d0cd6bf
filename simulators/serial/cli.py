"""``edgecount sim serial``: serve a simulated serial UHF module from a scene or a cart spec.

With ``--cart SPEC`` (:class:`simulators.cart.CartSpec`) the module rides a cart along an
aisle: the cart starts at the first inventory round and stays at its end once there. With
``--pose-broker mqtt://HOST:PORT --site SITE --robot NAME`` the cart also publishes its pose
on ``edgecount/v1/{SITE}/pose/{NAME}`` (:class:`simulators.pose.PosePublisher`), for a
gateway zone with ``assign: pose``.

Over TCP it prints ``listening on HOST:PORT`` (a host opens ``socket://HOST:PORT``); with
``--pty`` it prints ``pty PATH`` (and ``link PATH`` with ``--pty-link``), the device a host
opens. It then serves until SIGTERM or SIGINT (exit status 0). A bad scene or option exits
with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

from edgecount.exitcodes import ExitCode
from simulators.cart import CartProvider, scene_or_cart
from simulators.pose import PosePublisher
from simulators.scene import Scene
from simulators.serial.module import RoundSource, SerialFaults
from simulators.serial.server import SerialModuleSimulator


def add_sim_serial_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser``."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--scene", type=Path, help="scene file (YAML or JSON)")
    what.add_argument(
        "--cart", type=Path, metavar="SPEC", help="moving cart spec (YAML or JSON) instead"
    )
    parser.add_argument(
        "--antenna", type=int, default=1, help="which scene antenna the module sees (default 1)"
    )
    parser.add_argument("--seed", type=int, default=None, help="RNG seed (default: the scene's)")
    where = parser.add_argument_group("where to serve (TCP unless --pty)")
    where.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    where.add_argument("--port", type=int, default=4001, help="TCP port (default 4001; 0 = free)")
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal")
    where.add_argument(
        "--pty-link", type=Path, metavar="PATH", help="keep a symlink to the pty here"
    )
    pose = parser.add_argument_group("the cart's pose on MQTT (with --cart)")
    pose.add_argument("--pose-broker", metavar="URL", help="publish the pose to mqtt://HOST[:PORT]")
    pose.add_argument("--site", help="site id of the pose topic")
    pose.add_argument("--robot", default="cart", help="robot id of the pose topic (cart)")
    pose.add_argument(
        "--pose-rate", type=float, default=10.0, metavar="HZ", help="poses per second (10)"
    )
    faults = parser.add_argument_group("fault injection")
    faults.add_argument(
        "--garbage", type=float, default=0.0, metavar="P", help="chance of noise before a frame"
    )
    faults.add_argument(
        "--garbage-max", type=int, default=8, metavar="N", help="most noise bytes at a time"
    )
    faults.add_argument(
        "--split",
        type=int,
        default=0,
        metavar="N",
        help="write frames in random pieces of 1..N bytes (1: byte by byte)",
    )
    faults.add_argument(
        "--bad-checksum", type=float, default=0.0, metavar="P", help="chance of a bad checksum"
    )
    faults.add_argument(
        "--truncate", type=float, default=0.0, metavar="P", help="chance of a cut-short frame"
    )
    faults.add_argument(
        "--blind-errors",
        type=float,
        default=0.0,
        metavar="P",
        help="chance of notice damage the checksum misses (the tag CRC catches it)",
    )
    faults.add_argument(
        "--disconnect-after", type=float, metavar="S", help="drop a connection after S seconds"
    )
    faults.add_argument(
        "--disconnect-after-frames", type=int, metavar="N", help="drop after N frames sent"
    )
    faults.add_argument(
        "--disconnect-times", type=int, default=1, metavar="N", help="drops in all (0 = every)"
    )


def _faults(args: argparse.Namespace) -> SerialFaults | str:
    """The fault plan, or what is wrong with the options."""
    for name in ("garbage", "bad_checksum", "truncate", "blind_errors"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            return f"--{name.replace('_', '-')} is a probability between 0 and 1"
    if args.split < 0 or args.garbage_max < 1 or args.disconnect_times < 0:
        return "--split, --garbage-max and --disconnect-times must not be negative"
    return SerialFaults(
        garbage_prob=args.garbage,
        garbage_max=args.garbage_max,
        chunk_max=args.split,
        bad_checksum_prob=args.bad_checksum,
        truncate_prob=args.truncate,
        blind_error_prob=args.blind_errors,
        disconnect_after_seconds=args.disconnect_after,
        disconnect_after_frames=args.disconnect_after_frames,
        disconnect_times=args.disconnect_times,
    )


def _scene(args: argparse.Namespace) -> tuple[Scene, RoundSource | None] | str:
    """The scene and round source, or what is wrong with the file."""
    return scene_or_cart(args.scene, args.cart, args.seed)


def _poses(args: argparse.Namespace, source: RoundSource | None) -> PosePublisher | str | None:
    """The pose publisher the options ask for (None: none), or what is wrong with them."""
    if args.pose_broker is None:
        return None
    if not isinstance(source, CartProvider):
        return "--pose-broker needs --cart"
    url = urlsplit(args.pose_broker)
    if url.scheme != "mqtt" or not url.hostname:
        return "--pose-broker must be mqtt://HOST[:PORT]"
    if not args.site:
        return "--pose-broker needs --site"
    try:
        return PosePublisher(
            source,
            host=url.hostname,
            port=url.port or 1883,
            site=args.site,
            robot=args.robot,
            rate=args.pose_rate,
        )
    except ValueError as exc:
        return f"invalid pose options: {exc}"


def _inputs(
    args: argparse.Namespace,
) -> tuple[Scene, RoundSource | None, SerialFaults, PosePublisher | None] | str:
    """Everything the options describe, or what is wrong with them."""
    loaded = _scene(args)
    if isinstance(loaded, str):
        return loaded
    scene, source = loaded
    faults = _faults(args)
    if isinstance(faults, str):
        return faults
    if args.pty_link is not None and not args.pty:
        return "--pty-link needs --pty"
    poses = _poses(args, source)
    if isinstance(poses, str):
        return poses
    return scene, source, faults, poses


def run_sim_serial(args: argparse.Namespace) -> int:
    """Run the simulator; returns the exit status."""
    inputs = _inputs(args)
    if isinstance(inputs, str):
        print(inputs, file=sys.stderr)
        return ExitCode.USAGE
    scene, source, faults, poses = inputs
    try:
        sim = SerialModuleSimulator(
            scene,
            antenna=args.antenna,
            seed=args.seed,
            faults=faults,
            host=args.host,
            port=args.port,
            pty=args.pty,
            pty_link=args.pty_link,
            source=source,
        )
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return ExitCode.USAGE
    try:
        return asyncio.run(_serve(sim, poses))
    except OSError as exc:
        print(f"cannot serve: {exc}", file=sys.stderr)
        return 1


async def _serve(sim: SerialModuleSimulator, poses: PosePublisher | None = None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await sim.start()
    try:
        if sim.use_pty:
            print(f"pty {sim.pty_path}", flush=True)
            if sim.pty_link is not None:
                print(f"link {sim.pty_link}", flush=True)
        else:
            print(f"listening on {sim.host}:{sim.port}", flush=True)
        if poses is not None:
            await poses.start()
            print(f"pose {poses.topic}", flush=True)
        await stop.wait()
    finally:
        if poses is not None:
            await poses.stop()
        await sim.stop()
    return ExitCode.OK
