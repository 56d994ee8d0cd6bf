"""``edgecount demo``: one night at a simulated warehouse, scored against its twin's truth.

It starts an MQTT broker in-process (amqtt; or uses ``--broker``), generates a small warehouse
twin, runs its device simulators (fixed LLRP readers on one zone, a drone flying an aisle of
the other with a serial module), the gateway daemon and the reconciler with SQLite under the
state directory; sends the night's scan requests, lets the reconciler recount, approves the
confirmed differences, prints the reconciliation summary and the counting-truth figures and
writes the HTML report (:mod:`edgecount.truth` does the work).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from edgecount.exitcodes import ExitCode
from edgecount.truth import NightOptions, run_night
from simulators.site import SitePlan
from simulators.twin import TwinSpec

MARKER = ".edgecount-demo"
"""A file in the state directory that says the demo made it (and may empty it again)."""

Aisles = tuple[tuple[str, int], ...]
SIZES: dict[str, tuple[TwinSpec, Aisles, Aisles]] = {
    # 10 fixed locations (with cameras) + a drone aisle of 5 bays x 2 levels; many errors
    "tiny": (
        TwinSpec(
            site="demo",
            zones=2,
            aisles_per_zone=1,
            bays_per_aisle=5,
            levels_per_bay=2,
            skus=20,
            error_rate=0.15,
            movements=4,
        ),
        (("Z2", 1),),
        (("Z1", 1),),
    ),
    # 60 fixed locations in zone Z1 (aisle Z1-01 with cameras too), 30 in aisle Z2-02, and a
    # drone aisle Z2-01 of 10 bays x 3 levels
    "small": (
        TwinSpec(
            site="demo",
            zones=2,
            aisles_per_zone=2,
            bays_per_aisle=10,
            levels_per_bay=3,
            skus=60,
            movements=8,
        ),
        (("Z2", 1),),
        (("Z1", 1),),
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount demo``."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--broker", metavar="mqtt://HOST:PORT", help="use this broker instead of the embedded one"
    )
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="small",
        help="the twin: small (120 locations, the default) or tiny (20, for tests)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the twin and the devices")
    parser.add_argument(
        "--error-rate",
        type=float,
        help="share of book records made wrong on purpose (default: 0.03; tiny 0.15)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".edgecount-demo"),
        help="reconciler database, gateway outbox, book CSVs and report.html "
        "(default ./.edgecount-demo, emptied at the start)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this long")


def _prepare(state_dir: Path) -> str | None:
    """Empty a state directory the demo made before; refuse anyone else's."""
    if state_dir.exists():
        if not state_dir.is_dir():
            return f"{state_dir} is not a directory"
        if (state_dir / MARKER).exists():
            shutil.rmtree(state_dir)
        elif any(state_dir.iterdir()):
            return f"{state_dir} is not empty and was not made by the demo; choose --state-dir"
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / MARKER).write_text("made by edgecount demo; emptied by its next run\n")
    return None


def _plan(args: argparse.Namespace) -> SitePlan:
    spec, drones, cameras = SIZES[args.size]
    changes: dict[str, Any] = {"seed": args.seed}
    if args.broker:  # a shared broker may hold other runs' retained messages: a site of our own
        changes["site"] = f"demo-{uuid.uuid4().hex[:6]}"
    if args.error_rate is not None:
        changes["error_rate"] = args.error_rate
    twin = TwinSpec(**{**spec.__dict__, **changes})
    return SitePlan(twin=twin, drone_aisles=drones, camera_aisles=cameras)


def _print(figures: dict[str, Any]) -> None:
    rec = figures["reconciliation"]
    counting = figures["counting"]
    scans = figures["scans"]
    top = ", ".join(f"{sku} {value:.2f}" for sku, value in rec["top_exception_skus"][:3])
    print(
        f"\nreconciliation of the night ({scans['nightly']} zone scans, "
        f"{scans['recounts']} recount scans):\n"
        f"  records counted {rec['records_counted']}, exceptions {rec['exceptions']}, "
        f"net variance {rec['net_variance']:+g}, variance value "
        f"{rec['absolute_variance_value']:.2f}\n"
        f"  top exception SKUs by value: {top or 'none'}\n"
        f"  {rec['confirmed']} confirmed by recounts and approved, "
        f"{rec['cleared_by_recount']} cleared by a recount"
    )
    print(
        f"\ncounting truth ({figures['locations']} locations, {figures['records']} records, "
        f"{figures['true_discrepancies']} true discrepancies in the book):\n"
        f"  recall           {figures['recall']:.1%}  ({figures['found']} found)\n"
        f"  precision        {figures['precision']:.1%}  ({figures['flagged']} flagged)\n"
        f"  false flag rate  {figures['false_flag_rate']:.2%}\n"
        f"  IRA before       {figures['ira_before']:.1%}\n"
        f"  IRA after        {figures['ira_after']:.1%}  (after approving the confirmed ones)\n"
        f"  counts equal to the shelf: {counting['first_count_exact']}/{counting['locations']} "
        f"locations first time, {counting['latest_count_exact']} after recounts"
    )
    devices = counting["by_device"]
    print(
        "  every count of the night equal to the shelf: "
        + ", ".join(
            f"{kind} {figures['exact']}/{figures['counts']}"
            for kind, figures in devices.items()
            if figures["counts"]
        )
    )
    if figures["missed"] or figures["false_flags"]:
        print(f"  missed: {figures['missed']}\n  false flags: {figures['false_flags']}")
    print(f"\nHTML report: {figures['report_html']}  ({figures['seconds']} s in all)")
    print(
        f"\nLook at the night in the console: run `make console`, open {figures['console_url']}"
        f" and sign in as {figures['console_user']} / {figures['console_password']}"
        f"\n  (or: edgecount reconcile console -c {figures['console_config']})"
    )


CONSOLE_USER = "demo"
CONSOLE_PORT = 8484


def _console(state_dir: Path, site: str) -> dict[str, str]:
    """A console config on the demo's database and an admin ``demo`` with a fresh password.

    ``make console`` (``edgecount reconcile console -c STATE/console.yaml``) serves it.
    """
    from reconciler.auth.roles import Role
    from reconciler.auth.users import UserStore
    from reconciler.store import open_store

    database = f"sqlite:///{(state_dir / 'reconciler.sqlite3').resolve()}"
    config = state_dir / "console.yaml"
    config.write_text(
        f"# the demo's console: edgecount reconcile console -c {config}\n"
        f"site: {site}\nstate_dir: {state_dir.resolve()}\ndatabase: {database}\n"
        f"api:\n  port: {CONSOLE_PORT}\n"
    )
    password = secrets.token_urlsafe(12)
    store = open_store(database)
    try:
        UserStore(store.engine).add(CONSOLE_USER, Role.ADMIN, password, actor="edgecount demo")
    finally:
        store.close()
    secret = state_dir / "console-password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    return {
        "console_url": f"http://127.0.0.1:{CONSOLE_PORT}/",
        "console_config": str(config),
        "console_user": CONSOLE_USER,
        "console_password": password,
    }


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when the night ran and every payload on the broker was valid."""
    problem = _prepare(args.state_dir)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return ExitCode.USAGE
    say = None if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    options = NightOptions(
        plan=_plan(args),
        state_dir=args.state_dir.resolve(),
        broker=args.broker,
        timeout=args.timeout,
        say=say,
    )
    try:
        figures = asyncio.run(run_night(options))
    except (TimeoutError, RuntimeError, OSError) as exc:
        print(f"demo FAILED: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    ok = not figures["invalid_payloads"]
    figures |= _console(args.state_dir, options.plan.twin.site)
    if args.json:
        print(json.dumps(figures, indent=2))
        return ExitCode.OK if ok else ExitCode.FAILED
    _print(figures)
    if not ok:
        print(f"demo FAILED: invalid payloads on the broker: {figures['invalid_payloads']}")
        return ExitCode.FAILED
    print("demo OK")
    return ExitCode.OK
