"""``edgecount sim llrp``: serve simulated LLRP readers from a scene file or a cart spec.

With ``--cart SPEC`` (:class:`simulators.cart.CartSpec`, the file ``edgecount sim serial
--cart`` takes) one reader rides a cart along an aisle: the cart starts at the first inventory
round and stays at its end once there.

Prints one ``listening on HOST:PORT`` line per reader on stdout, then serves until SIGTERM
or SIGINT (exit status 0). Bad scene, cart or replay files and options that do not go
together exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from edgecount.exitcodes import ExitCode
from simulators.cart import scene_or_cart
from simulators.llrp.inventory import RoundSource
from simulators.llrp.replay import ReplayError, load_replay, write_replay
from simulators.llrp.server import FaultPlan, LLRPSimulator, start_readers
from simulators.scene import Scene


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser``."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--scene", type=Path, help="scene file (YAML or JSON)")
    what.add_argument(
        "--cart",
        type=Path,
        metavar="SPEC",
        help="moving cart spec (YAML or JSON) instead: one reader rides along an aisle",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=5084, help="port of the first reader; 0 picks free ports"
    )
    parser.add_argument("--readers", type=int, default=1, help="independent readers to serve")
    parser.add_argument("--seed", type=int, default=None, help="RNG seed (default: the scene's)")
    parser.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="stream the RO_ACCESS_REPORTs of FILE (raw LLRP messages) when an ROSpec starts",
    )
    faults = parser.add_argument_group("fault injection")
    faults.add_argument(
        "--drop-after", type=float, metavar="S", help="abort a connection S s after accepting it"
    )
    faults.add_argument(
        "--drop-times", type=int, default=1, metavar="N", help="connections to drop (0 = all)"
    )
    faults.add_argument(
        "--silent-after",
        type=float,
        metavar="S",
        help="go silent on the first connection after S s",
    )
    faults.add_argument(
        "--garbage-after",
        type=float,
        metavar="S",
        help="send garbage on the first connection after S s",
    )
    faults.add_argument("--garbage-bytes", type=int, default=64, metavar="N", help="garbage size")
    maker = parser.add_argument_group("replay files")
    maker.add_argument(
        "--write-replay",
        type=Path,
        metavar="FILE",
        help="simulate the scene into a replay file and exit",
    )
    maker.add_argument("--replay-reports", type=int, default=1000, metavar="N")
    maker.add_argument("--replay-tags-per-report", type=int, default=100, metavar="N")


def _cart_conflict(args: argparse.Namespace) -> str | None:
    """What in the options does not go with ``--cart``, if anything."""
    if args.readers != 1:
        return "--cart serves one reader (the one on the cart); leave out --readers"
    if args.replay is not None:
        return "--replay streams recorded reports; it does not go with --cart"
    if args.write_replay is not None:
        return "--write-replay simulates a scene; it needs --scene, not --cart"
    return None


def _scene(args: argparse.Namespace) -> tuple[Scene, RoundSource | None] | str:
    """The scene and round source, or what is wrong with the file or the options."""
    conflict = None if args.cart is None else _cart_conflict(args)
    return conflict if conflict is not None else scene_or_cart(args.scene, args.cart, args.seed)


def run(args: argparse.Namespace) -> int:
    """Run the simulator; returns the exit status."""
    if args.readers < 1:
        print("--readers must be at least 1", file=sys.stderr)
        return ExitCode.USAGE
    loaded = _scene(args)
    if isinstance(loaded, str):
        print(loaded, file=sys.stderr)
        return ExitCode.USAGE
    scene, source = loaded
    if args.write_replay is not None:
        size = write_replay(
            args.write_replay, scene, args.replay_reports, args.replay_tags_per_report
        )
        print(f"wrote {args.replay_reports} reports ({size} bytes) to {args.write_replay}")
        return ExitCode.OK
    replay = None
    if args.replay is not None:
        try:
            replay = load_replay(args.replay)
        except (ReplayError, OSError) as exc:
            print(f"invalid replay file: {exc}", file=sys.stderr)
            return ExitCode.USAGE
    faults = FaultPlan(
        drop_after=args.drop_after,
        drop_times=args.drop_times,
        silent_after=args.silent_after,
        garbage_after=args.garbage_after,
        garbage_bytes=args.garbage_bytes,
    )
    try:
        return asyncio.run(_serve(scene, args, replay, faults, source))
    except OSError as exc:
        print(f"cannot listen: {exc}", file=sys.stderr)
        return 1


async def _serve(
    scene: Scene,
    args: argparse.Namespace,
    replay: Sequence[bytes] | None,
    faults: FaultPlan,
    source: RoundSource | None,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sims: list[LLRPSimulator]
    if source is None:
        sims = await start_readers(
            scene,
            args.readers,
            host=args.host,
            port=args.port,
            replay=replay,
            seed=args.seed,
            faults=faults,
        )
    else:
        sim = LLRPSimulator(
            scene, host=args.host, port=args.port, seed=args.seed, faults=faults, source=source
        )
        await sim.start()
        sims = [sim]
    try:
        for sim in sims:
            print(f"listening on {sim.host}:{sim.port}", flush=True)
        await stop.wait()
    finally:
        await asyncio.gather(*(sim.stop() for sim in sims), return_exceptions=True)
    return ExitCode.OK
