"""Reconciler benchmark (issue 3).

1. ``ingest``: count messages from Mosquitto into the store (SQLite), through the running
   service (validation, idempotent store, comparison with the book). A separate process
   publishes N pre-encoded counts (QoS 1); the rate is N / (first publish → last applied).
   Goal ≥ 5,000 messages/s.
2. ``reconcile``: 1,000,000 book rows against a full scan: (a) the comparison alone, in
   memory; (b) reading the book and the counts from the SQLite store, then comparing.
   Goal ≤ 10 s.

Run: ``.venv/bin/python bench/reconciler.py [--parts ingest,reconcile] [--messages N]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is called reconciler.py (the issue names it) and Python puts its folder first on
# sys.path, where it would shadow the `reconciler` package: take the folder off again.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import asyncio
import json
import multiprocessing
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edgecount import contract
from edgecount.mqtt import MqttSettings
from reconciler.engine import Engine
from reconciler.metrics import summarize
from reconciler.model import AbcClass, BookLine
from reconciler.rules import TolerancePolicy, compare
from reconciler.service import ReconcileService
from reconciler.store import open_store

SKU = "80614141123458"
SNAPSHOT = datetime(2026, 11, 20, tzinfo=UTC)


def counts_for(site: str, n: int, scan: str) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        location = f"L{i:07d}"
        draft = contract.count_payload(
            gateway="gw-bench",
            site=site,
            zone="Z",
            location=location,
            scan_id=scan,
            items=[{"sku": SKU, "qty": 10}],
            observed_at=SNAPSHOT + timedelta(hours=1),
        )
        payload = contract.with_sequence(draft, i + 1)
        out.append((contract.count_topic(site, "Z", location), contract.encode(payload)))
    return out


BROKER_CONF = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
# The default (1000) drops QoS 1 messages queued for a subscriber that falls behind a burst;
# a reconciler needs a deep queue (see docs/operations.md).
max_queued_messages 1000000
max_inflight_messages 1000
"""


def start_broker(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private Mosquitto with a deep per-client queue, on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = work / "mosquitto.conf"
    conf.write_text(BROKER_CONF.format(port=port))
    broker = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return broker, port
        time.sleep(0.05)
    broker.kill()
    raise RuntimeError("mosquitto did not start")


def publish_all(
    messages: list[tuple[str, bytes]],
    port: int,
    started: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    """Publish every message QoS 1 as fast as the broker takes them (own process)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    started.put(time.time())
    infos = [client.publish(topic, body, qos=1) for topic, body in messages]
    for info in infos:
        info.wait_for_publish(60)
    started.put(time.time())  # when the broker had acknowledged every message
    client.disconnect()
    client.loop_stop()


async def catch_up(n: int, work: Path) -> dict[str, float]:
    """Publish every count retained first, then start the reconciler: it drains them alone."""
    site = f"bench{uuid.uuid4().hex[:8]}"
    store = open_store(f"sqlite:///{work / 'catchup.sqlite3'}")
    store.replace_book(
        [BookLine(f"L{i:07d}", SKU, 10, 2.5, AbcClass.B) for i in range(n)],
        source="bench",
        at=SNAPSHOT,
    )
    broker, port = start_broker(work)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-retain-{site}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(t, b, qos=1, retain=True) for t, b in counts_for(site, n, "scan-1")]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()
    engine = Engine(store, site, TolerancePolicy())
    service = ReconcileService(
        engine, MqttSettings(port=port, client_id=f"rec-{site}"), client_id=f"rec-{site}"
    )
    started = time.time()
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.wait_until(lambda s: s.applied >= n), 120)
    elapsed = time.time() - started
    service.stopping.set()
    await task
    store.close()
    broker.terminate()
    broker.wait(10)
    rate = n / elapsed
    print(
        f"caught up on {n:,} retained counts after a (re)start in {elapsed:.2f} s: "
        f"{rate:,.0f} messages/s (connect and subscribe included)"
    )
    return {"messages": n, "seconds": elapsed, "per_s": rate}


async def ingest(n: int, work: Path) -> dict[str, float]:
    site = f"bench{uuid.uuid4().hex[:8]}"
    store = open_store(f"sqlite:///{work / 'ingest.sqlite3'}")
    store.replace_book(
        [BookLine(f"L{i:07d}", SKU, 10, 2.5, AbcClass.B) for i in range(n)],
        source="bench",
        at=SNAPSHOT,
    )
    engine = Engine(store, site, TolerancePolicy())
    broker, port = start_broker(work)
    service = ReconcileService(
        engine, MqttSettings(port=port, client_id=f"rec-{site}"), client_id=f"rec-{site}"
    )
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.ready.wait(), 10)
    messages = counts_for(site, n, "scan-1")
    started_q: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()  # type: ignore[type-arg]
    publisher = multiprocessing.get_context("spawn").Process(
        target=publish_all, args=(messages, port, started_q)
    )
    publisher.start()
    started = await asyncio.to_thread(started_q.get, True, 60)
    try:
        await asyncio.wait_for(service.wait_until(lambda s: s.applied >= n), 60)
    except TimeoutError:
        print("timed out:", service.stats)
        raise
    elapsed = time.time() - started
    published = await asyncio.to_thread(started_q.get, True, 60) - started
    publisher.join(30)
    stats = service.stats
    service.stopping.set()
    await task
    store.close()
    broker.terminate()
    broker.wait(10)
    rate = n / elapsed
    print(
        f"ingested {stats.applied:,} counts in {elapsed:.2f} s: {rate:,.0f} messages/s "
        f"({stats.batches} batches, {stats.duplicates} duplicates, {stats.dropped} dropped)"
        f" (goal ≥ 5,000); the publisher's last PUBACK came after {published:.2f} s"
    )
    return {"messages": n, "seconds": elapsed, "per_s": rate, "publisher_s": published}


def reconcile(rows: int, work: Path) -> dict[str, float]:
    per_location = 4
    locations = rows // per_location
    skus = [f"0861414112{j:04d}" for j in range(per_location)]
    book = {
        (f"L{i:07d}", sku): BookLine(f"L{i:07d}", sku, 10, 3.0, AbcClass("ABC"[i % 3]))
        for i in range(locations)
        for sku in skus
    }
    counts = {
        f"L{i:07d}": (
            {sku: (9 if i % 50 == 0 and j == 0 else 10) for j, sku in enumerate(skus)},
            True,
        )
        for i in range(locations)
    }
    policy = TolerancePolicy()
    started = time.perf_counter()
    result = compare(book, counts, policy)
    summary = summarize(result)
    in_memory = time.perf_counter() - started
    print(
        f"(a) compare {len(result):,} records in memory: {in_memory:.2f} s "
        f"(IRA {summary.ira:.4f}, {summary.exceptions:,} exceptions)"
    )

    store = open_store(f"sqlite:///{work / 'reconcile.sqlite3'}")
    store.replace_book(book.values(), source="bench", at=SNAPSHOT)
    started = time.perf_counter()
    loaded = {(line.location, line.sku): line for line in store.book_lines()}
    result = compare(loaded, counts, policy)
    summary = summarize(result)
    from_store = time.perf_counter() - started
    store.close()
    print(
        f"(b) read {len(loaded):,} book rows from SQLite and compare: {from_store:.2f} s "
        f"(goal ≤ 10 s)"
    )
    return {"rows": float(len(result)), "in_memory_s": in_memory, "from_store_s": from_store}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="ingest,reconcile")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        if "ingest" in args.parts:
            print(f"== ingest: {args.messages:,} count messages through Mosquitto")
            figures["ingest"] = asyncio.run(ingest(args.messages, work))
            print(f"== catch-up: {args.messages:,} retained counts read after a start")
            figures["catch_up"] = asyncio.run(catch_up(args.messages, work))
        if "reconcile" in args.parts:
            print(f"== reconcile: {args.rows:,} book rows against a full scan")
            figures["reconcile"] = reconcile(args.rows, work)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
