"""``edgecount demo``: the whole RFID pipeline on embedded defaults, checked against truth.

It starts an MQTT broker in-process (amqtt; or uses ``--broker``), an LLRP reader simulator
with a shelf scene, subscribes to the count topics like a WMS would, runs one zone scan through
the real gateway code (sllurp over TCP, outbox, paho-mqtt), and compares the counts that
arrived on the broker with the simulator's ground truth.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgecount import contract
from edgecount.mqtt import MqttSettings
from gateway.cli import ProgressBar, print_table, result_json
from gateway.config import GatewayConfig
from gateway.runtime import open_publisher, started_readers
from gateway.scan import ZoneScan
from reconciler.engine import Engine
from reconciler.model import AbcClass, BookLine
from reconciler.rules import TolerancePolicy
from reconciler.service import ReconcileService
from reconciler.store import open_store
from simulators.llrp.server import LLRPSimulator
from simulators.shelf import shelf_scene, truth_by_antenna

SITE = "demo"
ZONE = "A"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount demo``."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--broker", metavar="mqtt://HOST:PORT", help="use this broker instead of the embedded one"
    )
    parser.add_argument("--locations", type=int, default=4, help="shelf locations (antennas)")
    parser.add_argument("--tags", type=int, default=260, help="tags per location")
    parser.add_argument("--seconds", type=float, default=3.0, help="scan window")
    parser.add_argument("--state-dir", type=Path, help="keep the outbox here (default: temp)")


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def embedded_broker() -> AsyncIterator[tuple[str, int]]:
    """An amqtt broker (MQTT 3.1.1) on a free loopback port, anonymous."""
    import logging
    import warnings

    from amqtt.broker import Broker

    logging.getLogger("amqtt").setLevel(logging.ERROR)
    logging.getLogger("transitions").setLevel(logging.ERROR)
    port = _free_port()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        broker = Broker(config)
        await broker.start()
    try:
        yield "127.0.0.1", port
    finally:
        await broker.shutdown()


class CountWatcher:
    """Subscribes to the demo's count topics like a WMS would, validating each payload."""

    def __init__(self, host: str, port: int) -> None:
        self.counts: dict[str, dict[str, Any]] = {}
        self.invalid: list[str] = []
        self._subscribed = threading.Event()
        self._changed = threading.Condition()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"edgecount-demo-wms-{_free_port()}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self.client.on_connect = lambda c, *_: c.subscribe(
            f"{contract.site_root(SITE)}count/{ZONE}/+", qos=1
        )
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        try:
            payload = contract.decode(bytes(message.payload), topic=message.topic)
        except contract.ContractError as exc:
            self.invalid.append(f"{message.topic}: {exc}")
            return
        with self._changed:
            self.counts[payload["location"]] = payload
            self._changed.notify_all()

    def wait_subscribed(self, timeout: float) -> bool:
        """Block until the subscription is acknowledged."""
        return self._subscribed.wait(timeout)

    def wait_counts(self, scan_id: str, locations: int, timeout: float) -> None:
        """Block until every location's count of ``scan_id`` arrived (or timeout)."""
        with self._changed:
            self._changed.wait_for(
                lambda: sum(c["scan_id"] == scan_id for c in self.counts.values()) >= locations,
                timeout,
            )

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


async def _run(args: argparse.Namespace, state_dir: Path) -> dict[str, Any]:
    scene = shelf_scene(args.locations, args.tags)
    truth = truth_by_antenna(scene)
    antennas = {a: f"{ZONE}-01-{a:02d}" for a in range(1, args.locations + 1)}
    async with contextlib.AsyncExitStack() as stack:
        if args.broker:
            url = urlparse(args.broker)
            host, port = url.hostname or "127.0.0.1", url.port or 1883
            _say(args, f"using the broker at {host}:{port}")
        else:
            host, port = await stack.enter_async_context(embedded_broker())
            _say(args, f"embedded MQTT broker (amqtt) listening on {host}:{port}")
        sim = await stack.enter_async_context(LLRPSimulator(scene))
        _say(
            args,
            f"LLRP reader simulator on 127.0.0.1:{sim.port}: {args.locations} antennas, "
            f"{len(scene.epcs)} tags, 2 % misses, stray reads 15 dB weaker next door",
        )
        config = GatewayConfig.model_validate(
            {
                "site": SITE,
                # a fresh state dir restarts the outbox sequence: a new id keeps msg_ids unique
                "gateway_id": f"demo-{uuid.uuid4().hex[:6]}",
                "state_dir": str(state_dir),
                "mqtt": {"host": host, "port": port, "protocol": "3.1.1"},
                "readers": [
                    {
                        "type": "llrp",
                        "name": "sim-reader",
                        "host": "127.0.0.1",
                        "port": sim.port,
                        "antennas": antennas,
                    }
                ],
                "zones": {ZONE: {"readers": ["sim-reader"], "scan_seconds": args.seconds}},
            }
        )
        watcher = CountWatcher(host, port)
        stack.callback(watcher.close)
        await asyncio.to_thread(watcher.wait_subscribed, 10.0)
        reconciler = await stack.enter_async_context(
            running_reconciler(state_dir, host, port, _demo_book(truth, antennas))
        )
        _say(
            args,
            f"reconciler: book of {len(_demo_book(truth, antennas))} records with "
            f"{len(BOOK_ERRORS)} deliberate errors; SQLite under {state_dir}",
        )
        publisher = await stack.enter_async_context(open_publisher(config))
        readers = await stack.enter_async_context(started_readers(config))
        bar = None if args.json else ProgressBar(f"scanning zone {ZONE}")
        started = time.monotonic()
        result = await ZoneScan(config, ZONE, readers, publisher, progress=bar).run()
        if bar is not None:
            bar.close()
        delivered = await publisher.flush(10.0)
        await asyncio.to_thread(watcher.wait_counts, result.scan_id, len(antennas), 10.0)
        # retained counts of earlier runs may arrive too: wait for this scan's own
        await asyncio.wait_for(
            reconciler.wait_until(
                lambda _stats: _stored_counts(reconciler.engine, result.scan_id) >= len(antennas)
            ),
            10.0,
        )
        elapsed = time.monotonic() - started
        injected = {
            (antennas[antenna], sorted(truth[antenna])[index]) for antenna, index, _ in BOOK_ERRORS
        }
        reconciliation = reconciliation_summary(reconciler.engine, result.scan_id, injected)
    report = result_json(result)
    received = {loc: c for loc, c in watcher.counts.items() if c["scan_id"] == result.scan_id}
    matches = {
        location: location in received
        and {i["sku"]: i["qty"] for i in received[location]["items"]} == dict(truth[antenna])
        for antenna, location in antennas.items()
    }
    report["demo"] = {
        "seconds": round(elapsed, 2),
        "delivered": delivered,
        "counts_on_broker": len(received),
        "invalid_payloads": watcher.invalid,
        "true_items": sum(sum(c.values()) for c in truth.values()),
        "counted_items": sum(loc["total"] for loc in report["locations"]),
        "locations_matching_truth": sum(matches.values()),
        "locations": len(antennas),
    }
    report["reconciliation"] = reconciliation
    return report


# (antenna, SKU index, book minus truth): the book is wrong at these records, on purpose.
BOOK_ERRORS = ((1, 0, +2), (3, 1, -3))


def _demo_book(truth: dict[int, Any], antennas: dict[int, str]) -> list[BookLine]:
    errors = {(antenna, index): delta for antenna, index, delta in BOOK_ERRORS}
    return [
        BookLine(antennas[antenna], sku, qty + errors.get((antenna, index), 0), 4.5, AbcClass.A)
        for antenna, skus in truth.items()
        for index, (sku, qty) in enumerate(sorted(skus.items()))
    ]


@contextlib.asynccontextmanager
async def running_reconciler(
    state_dir: Path, host: str, port: int, book: list[BookLine]
) -> AsyncIterator[ReconcileService]:
    """The reconciliation service on SQLite under ``state_dir`` (no recounts in the demo)."""
    store = open_store(f"sqlite:///{state_dir / 'reconciler.sqlite3'}")
    store.replace_book(book, source="demo", at=datetime.now(UTC) - timedelta(hours=1))
    engine = Engine(store, SITE, TolerancePolicy(), max_recounts=0)
    settings = MqttSettings(
        host=host, port=port, protocol="3.1.1", client_id="edgecount-demo-reconciler"
    )
    service = ReconcileService(engine, settings, client_id=settings.client_id)
    task = asyncio.create_task(service.run(), name="reconciler")
    try:
        await asyncio.wait_for(service.ready.wait(), 10.0)
        yield service
    finally:
        service.stopping.set()
        await asyncio.wait_for(task, 10.0)
        store.close()


def _stored_counts(engine: Engine, scan_id: str) -> int:
    import sqlalchemy as sa

    from reconciler.schema import counts

    query = sa.select(sa.func.count()).select_from(counts).where(counts.c.scan_id == scan_id)
    with engine.store.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def reconciliation_summary(
    engine: Engine, scan_id: str, injected: set[tuple[str, str]]
) -> dict[str, Any]:
    """The summary figures of one scan, and how many injected book errors were flagged."""
    from reconciler.cli_report import build_report

    data = build_report(engine.store, engine.policy, scan=scan_id)
    summary = data.summary
    flagged = {(row.location, row.sku) for row in data.rows if row.is_exception}
    return {
        "records_counted": summary.records_counted,
        "ira": summary.ira,
        "exact_match_rate": summary.exact_match_rate,
        "exceptions": summary.exceptions,
        "net_variance": summary.net_variance,
        "absolute_variance_value": summary.absolute_variance_value,
        "errors_found": len(flagged & injected),
        "false_flags": len(flagged - injected),
        "awaiting_approval": sum(
            1 for item in engine.list_discrepancies() if item["scan_id"] == scan_id
        ),
    }


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when every count on the broker equals the truth."""
    with tempfile.TemporaryDirectory(prefix="edgecount-demo-") as temp:
        report = asyncio.run(_run(args, args.state_dir or Path(temp)))
    demo = report["demo"]
    ok = (
        report["reconciliation"]["errors_found"] == len(BOOK_ERRORS)
        and report["reconciliation"]["false_flags"] == 0
        and report["complete"]
        and demo["delivered"]
        and not demo["invalid_payloads"]
        and demo["locations_matching_truth"] == demo["locations"]
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if ok else 1
    print_table(report, sys.stdout)
    print(
        f"\n{demo['counts_on_broker']}/{demo['locations']} location counts arrived on the broker; "
        f"{demo['locations_matching_truth']}/{demo['locations']} equal the simulator's ground "
        f"truth ({demo['counted_items']} of {demo['true_items']} items counted) "
        f"in {demo['seconds']} s."
    )
    rec = report["reconciliation"]
    print(
        f"\nreconciliation of scan {report['scan_id']} against a book with "
        f"{len(BOOK_ERRORS)} deliberate errors:\n"
        f"  records counted {rec['records_counted']}, inventory record accuracy "
        f"{rec['ira']:.1%}, exact matches {rec['exact_match_rate']:.1%}\n"
        f"  exceptions {rec['exceptions']} (found {rec['errors_found']} of "
        f"{len(BOOK_ERRORS)} book errors, {rec['false_flags']} false flags), "
        f"net variance {rec['net_variance']:+g}, "
        f"variance value {rec['absolute_variance_value']:.2f}\n"
        f"  open discrepancies awaiting approval: {rec['awaiting_approval']}"
    )
    print("demo OK" if ok else "demo FAILED: counts differ from the truth (see above)")
    return 0 if ok else 1
