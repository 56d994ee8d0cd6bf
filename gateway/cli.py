"""``edgecount gateway validate|run`` and ``edgecount scan``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from edgecount.yamlcfg import config_argument, load_or_report
from gateway.config import GatewayConfig, load_gateway_config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INCOMPLETE = 3


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
        return EXIT_CONFIG
    zones = ", ".join(
        f"{name} ({len(config.zone_locations(name))} locations)" for name in config.zones
    )
    print(
        f"{args.config}: valid; gateway {config.gateway_id} at site {config.site}; zones: {zones}"
    )
    return EXIT_OK


# -- run --------------------------------------------------------------------------------------


def add_gateway_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount gateway run``."""
    _config_argument(parser)


def run_gateway_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM or SIGINT."""
    from gateway.daemon import run_daemon

    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    return asyncio.run(run_daemon(config))


# -- scan -------------------------------------------------------------------------------------


def add_scan_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount scan``."""
    _config_argument(parser)
    parser.add_argument("--zone", required=True, help="zone to scan (a key of `zones:`)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument(
        "--no-progress", action="store_true", help="do not draw the progress bar on stderr"
    )


class ProgressBar:
    """A one-line progress bar on a terminal stream."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.label = label
        self.stream = stream
        self.width = width

    def __call__(self, fraction: float, reads: int) -> None:
        """Redraw with ``fraction`` done and ``reads`` so far."""
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {fraction:4.0%} {reads} reads")
        self.stream.flush()

    def close(self) -> None:
        """End the line."""
        self.stream.write("\n")
        self.stream.flush()


def run_scan(args: argparse.Namespace) -> int:
    """Run one zone scan; exit 0 when complete, 3 when incomplete."""
    from gateway.runtime import scan_once

    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    if args.zone not in config.zones:
        print(
            f"{args.config}: no zone {args.zone!r}; zones: {', '.join(config.zones)}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    bar = None if args.no_progress else ProgressBar(f"scan {args.zone}")
    try:
        result, delivered = asyncio.run(scan_once(config, args.zone, progress=bar))
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
                "warning: not every message was acknowledged by the broker yet; they stay in "
                "the outbox and are sent when the gateway next connects",
                file=sys.stderr,
            )
    return EXIT_OK if result.complete else EXIT_INCOMPLETE


def result_json(result: Any) -> dict[str, Any]:
    """A scan result as plain JSON-able data."""
    from gateway.scan import iso

    return {
        "scan_id": result.scan_id,
        "zone": result.zone,
        "complete": result.complete,
        "started_at": iso(result.started_at),
        "ended_at": iso(result.ended_at),
        "locations": [
            {
                "location": count.location,
                "source": count.source,
                "complete": count.complete,
                "total": count.total,
                "items": [{"sku": sku, "qty": qty} for sku, qty in count.skus.items()],
                **({"fusion": count.fusion} if count.fusion else {}),
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
