"""``edgecount gateway validate|run`` and ``edgecount scan``.

Exit codes (``scan`` and ``gateway scan-request`` share them): 0 complete; 1 failed;
2 bad configuration or usage, or the state directory is held by another process (the daemon);
3 the scan was incomplete; 4 not every message reached the broker (they stay in the outbox);
5 ``scan-request --wait`` gave up waiting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from edgecount.exitcodes import ExitCode
from edgecount.progress import Progress
from edgecount.yamlcfg import config_argument, load_or_report
from gateway.config import GatewayConfig, load_gateway_config

if TYPE_CHECKING:
    from gateway.counts import ScanResult
    from gateway.runtime import StateDirBusyError


def _config_argument(parser: argparse.ArgumentParser) -> None:
    config_argument(parser, "gateway")


def _load(path: Path) -> GatewayConfig | None:
    return load_or_report(load_gateway_config, path)


# -- validate -------------------------------------------------------------------------------


def add_gateway_validate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount gateway validate``."""
    _config_argument(parser)


def run_gateway_validate(args: argparse.Namespace) -> int:
    """Exit 0 when the file is valid, 2 with one line per error otherwise."""
    config = _load(args.config)
    if config is None:
        return ExitCode.USAGE
    zones = ", ".join(
        f"{name} ({len(config.zone_locations(name))} locations)" for name in config.zones
    )
    print(
        f"{args.config}: valid; gateway {config.gateway_id} at site {config.site}; zones: {zones}"
    )
    return ExitCode.OK


# -- run --------------------------------------------------------------------------------------


def add_gateway_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount gateway run``."""
    _config_argument(parser)


def run_gateway_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM or SIGINT."""
    from gateway.daemon import run_daemon
    from gateway.runtime import StateDirBusyError

    config = _load(args.config)
    if config is None:
        return ExitCode.USAGE
    try:
        return asyncio.run(run_daemon(config))
    except StateDirBusyError as exc:
        print(
            f"{args.config}: state_dir {config.state_dir} is in use ({exc.holder or 'locked'},"
            f" lock {exc.lock_file}); one daemon per state_dir",
            file=sys.stderr,
        )
        return ExitCode.USAGE


# -- scan -------------------------------------------------------------------------------------


def add_scan_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount scan``."""
    _config_argument(parser)
    parser.add_argument("--zone", required=True, help="zone to scan (a key of `zones:`)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="do not show progress on stderr")


def scan_progress(zone: str) -> Progress:
    """The scan's progress on stderr: a live bar on a terminal, plain lines when redirected."""
    return Progress(f"scan {zone}", 100)


def load_with_zone(path: Path, zone: str) -> GatewayConfig | None:
    """The configuration, if it loads and has ``zone``; else print why and return None."""
    config = _load(path)
    if config is None:
        return None
    if zone not in config.zones:
        print(f"{path}: no zone {zone!r}; zones: {', '.join(config.zones)}", file=sys.stderr)
        return None
    return config


def run_scan(args: argparse.Namespace) -> int:
    """Run one zone scan; exit 0 complete, 3 incomplete, 4 not delivered, 2 daemon running."""
    from gateway.runtime import StateDirBusyError, scan_once, state_lock

    config = load_with_zone(args.config, args.zone)
    if config is None:
        return ExitCode.USAGE
    bar = None if args.no_progress else scan_progress(args.zone)

    def show(fraction: float, reads: int) -> None:
        if bar is not None:
            bar.update_fraction(fraction, f"{reads} reads")

    try:
        with state_lock(config, "scan"):
            result, delivered = asyncio.run(scan_once(config, args.zone, progress=show))
    except StateDirBusyError as exc:
        print(_busy(args, exc), file=sys.stderr)
        return ExitCode.USAGE
    finally:
        if bar is not None:
            bar.close()
    report = result_json(result)
    if args.json:
        print(json.dumps(report | {"delivered": delivered}, indent=2))
    else:
        print_table(report, sys.stdout)
    if not delivered:
        print(
            "error: not every message was acknowledged by the broker; they stay in the outbox"
            f" under {config.state_dir} and are sent by the daemon or the next scan",
            file=sys.stderr,
        )
        return ExitCode.UNDELIVERED
    return ExitCode.OK if result.complete else ExitCode.INCOMPLETE


def _busy(args: argparse.Namespace, exc: StateDirBusyError) -> str:
    """The one line ``scan`` prints when the state directory is held."""
    holder = exc.holder or "another process"
    if exc.by_daemon:
        return (
            f"{args.config}: the gateway daemon is running for this config ({holder}); ask it"
            f" for the scan: edgecount gateway scan-request -c {args.config}"
            f" --zone {args.zone} --wait"
        )
    return f"{args.config}: the state_dir is in use ({holder}); try again when it has finished"


def result_json(result: ScanResult) -> dict[str, Any]:
    """A scan result as plain JSON-able data."""
    from edgecount.timefmt import to_iso

    return {
        "scan_id": result.scan_id,
        "zone": result.zone,
        "complete": result.complete,
        "started_at": to_iso(result.started_at),
        "ended_at": to_iso(result.ended_at),
        "locations": [
            {
                "location": count.location,
                "source": count.source.value,
                "complete": count.complete,
                "total": count.total,
                "items": [{"sku": sku, "qty": qty} for sku, qty in count.skus.items()],
                **({"fusion": count.fusion.to_payload()} if count.fusion else {}),
            }
            for count in result.locations.values()
        ],
        "readers": [
            {"name": o.name, "ok": o.ok, "reads": o.reads, "error": o.error}
            for o in result.readers.values()
        ],
        "cameras": [
            {"name": o.name, "ok": o.ok, "frames": o.frames, "error": o.error}
            for o in result.cameras.values()
        ],
    }


def print_table(report: dict[str, Any], out: TextIO) -> None:
    """The per-location table printed by ``edgecount scan``."""
    state = "complete" if report["complete"] else "INCOMPLETE"
    total = sum(loc["total"] for loc in report["locations"])
    out.write(f"scan {report['scan_id']} zone {report['zone']}: {state}, {total} items\n")
    out.write(f"{'LOCATION':<16} {'SOURCE':<7} {'COMPLETE':<8} {'TOTAL':>6}  SKUS\n")
    for loc in report["locations"]:
        skus = ", ".join(f"{item['sku']} x{item['qty']}" for item in loc["items"]) or "-"
        done = "yes" if loc["complete"] else "NO"
        if loc.get("fusion", {}).get("disagreement"):
            fusion = loc["fusion"]
            skus += f"  (RFID {fusion['rfid']['total']} vs vision {fusion['vision']['total']})"
        out.write(f"{loc['location']:<16} {loc['source']:<7} {done:<8} {loc['total']:>6}  {skus}\n")
    for device in [*report["readers"], *report["cameras"]]:
        if not device["ok"]:
            out.write(f"{device['name']} failed: {device['error']}\n")
