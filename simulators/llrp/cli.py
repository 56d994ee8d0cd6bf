"""``edgecount sim llrp``: serve simulated LLRP readers from a scene file.

Prints one ``listening on HOST:PORT`` line per reader on stdout, then serves until SIGTERM
or SIGINT (exit status 0). Bad scene or replay files exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from edgecount.yamlcfg import ConfigError
from simulators.llrp.replay import ReplayError, load_replay, write_replay
from simulators.llrp.server import FaultPlan, LLRPSimulator, start_readers
from simulators.scene import Scene, load_scene

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser``."""
    parser.add_argument("--scene", required=True, type=Path, help="scene file (YAML or JSON)")
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


def run(args: argparse.Namespace) -> int:
    """Run the simulator; returns the exit status."""
    try:
        scene = load_scene(args.scene)
    except ConfigError as exc:
        print(f"invalid scene:\n{exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.readers < 1:
        print("--readers must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.write_replay is not None:
        size = write_replay(
            args.write_replay, scene, args.replay_reports, args.replay_tags_per_report
        )
        print(f"wrote {args.replay_reports} reports ({size} bytes) to {args.write_replay}")
        return EXIT_OK
    replay = None
    if args.replay is not None:
        try:
            replay = load_replay(args.replay)
        except (ReplayError, OSError) as exc:
            print(f"invalid replay file: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    faults = FaultPlan(
        drop_after=args.drop_after,
        drop_times=args.drop_times,
        silent_after=args.silent_after,
        garbage_after=args.garbage_after,
        garbage_bytes=args.garbage_bytes,
    )
    try:
        return asyncio.run(_serve(scene, args, replay, faults))
    except OSError as exc:
        print(f"cannot listen: {exc}", file=sys.stderr)
        return 1


async def _serve(
    scene: Scene, args: argparse.Namespace, replay: Sequence[bytes] | None, faults: FaultPlan
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sims: list[LLRPSimulator] = await start_readers(
        scene,
        args.readers,
        host=args.host,
        port=args.port,
        replay=replay,
        seed=args.seed,
        faults=faults,
    )
    try:
        for sim in sims:
            print(f"listening on {sim.host}:{sim.port}", flush=True)
        await stop.wait()
    finally:
        await asyncio.gather(*(sim.stop() for sim in sims), return_exceptions=True)
    return EXIT_OK
