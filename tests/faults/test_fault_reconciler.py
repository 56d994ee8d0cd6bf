"""Reconciler faults: the service SIGKILLed mid-ingest, down during scans, its database away.

The reconciler runs as a real process (``edgecount reconcile serve -c FILE``) on a private
Mosquitto configured as docs/reconciliation.md asks of a site (``max_queued_messages``); the
PostgreSQL test runs a private cluster that it stops for 30 s. Counts are published like a
gateway publishes them (QoS 1, retained). Every test ends with each published count stored
exactly once; the figures (duplicates on the wire against rows stored) are printed with
``-s`` and recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BrokerAddress, MosquittoFactory, RecorderFactory
from tests.faults.reconciler_process import (
    BROKER_QUEUE,
    CountPublisher,
    PrivatePostgres,
    ReconcilerProcess,
    book_csv,
    counted_once,
    locations,
    wait_for,
)

OUTAGE_SECONDS = 30.0


def config(site: str, broker: BrokerAddress, database: str, **extra: Any) -> dict[str, Any]:
    """A reconciler configuration (as YAML gives it) with a persistent session (default)."""
    return {
        "site": site,
        "instance_id": f"rec-{site}",
        "database": database,
        "mqtt": {"host": broker.host, "port": broker.port, "keepalive": 5},
        "max_recounts": 0,
    } | extra


def started(rec: ReconcilerProcess, book: dict[str, int], tmp_path: Path) -> None:
    done = rec.cli("book", "import", str(book_csv(tmp_path / "book.csv", book)))
    assert done.returncode == 0, done.stderr
    rec.start()


def figures(rec: ReconcilerProcess, what: str, began: float) -> None:
    def settled() -> bool:
        handled = rec.metric("messages_applied_total") + rec.metric("messages_duplicate_total")
        return handled >= rec.metric("messages_received_total")

    wait_for(settled, 30, "every message received handled")
    received = rec.metric("messages_received_total")
    duplicates = rec.metric("messages_duplicate_total")
    print(  # the figures of docs/benchmarks.md (pytest -s)
        f"\n{what}: {time.monotonic() - began:.1f} s; the last process received {received:.0f}, "
        f"{duplicates:.0f} of them duplicates; {len(rec.stored_msg_ids())} rows stored"
    )


def test_killed_mid_ingest_every_count_of_the_scan_is_stored_once(
    mosquitto_factory: MosquittoFactory, unique_site: str, tmp_path: Path
) -> None:
    broker = mosquitto_factory(BROKER_QUEUE)
    book = dict.fromkeys(locations(999), 5)
    rec = ReconcilerProcess(
        tmp_path, config(unique_site, broker.address, f"sqlite:///{tmp_path / 'rec.db'}")
    )
    began = time.monotonic()
    try:
        started(rec, book, tmp_path)
        publisher = CountPublisher(broker.address, unique_site)
        with ThreadPoolExecutor(1) as pool:
            streaming = pool.submit(publisher.publish_scan, book, "scan-1", per_chunk=5)
            wait_for(lambda: len(rec.stored_msg_ids()) >= 50, 20, "the first counts stored")
            rec.kill()
            at_kill = len(rec.stored_msg_ids())
            streaming.result(60)
        assert 0 < at_kill < len(book), f"not killed mid-ingest ({at_kill} stored)"
        rec.start()
        wait_for(lambda: len(rec.stored_msg_ids()) >= len(book), 30, "every count stored")
        assert list(counted_once(rec.stored_msg_ids(), publisher.sent)) == []
        figures(rec, f"killed mid-ingest at {at_kill} of {len(book)}", began)
    finally:
        rec.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_down_during_two_scans_both_are_stored_once_on_restart(
    mosquitto_factory: MosquittoFactory, unique_site: str, tmp_path: Path, protocol: str
) -> None:
    broker = mosquitto_factory(BROKER_QUEUE)
    book = dict.fromkeys(locations(200), 5)
    database = f"sqlite:///{tmp_path / 'rec.db'}"
    mqtt = {"host": broker.host, "port": broker.port, "keepalive": 5, "protocol": protocol}
    rec = ReconcilerProcess(tmp_path, config(unique_site, broker.address, database, mqtt=mqtt))
    began = time.monotonic()
    try:
        started(rec, book, tmp_path)  # the broker now holds its session
        rec.kill()
        publisher = CountPublisher(broker.address, unique_site)
        publisher.publish_scan(book, "scan-1")
        publisher.publish_scan(book, "scan-2")  # same locations: retained keeps only these
        rec.start()
        wait_for(lambda: len(rec.stored_msg_ids()) >= 2 * len(book), 30, "both scans stored")
        assert list(counted_once(rec.stored_msg_ids(), publisher.sent)) == []
        figures(rec, f"down during two scans (MQTT {protocol})", began)
    finally:
        rec.close()


def test_with_clean_start_the_first_scan_is_lost(
    mosquitto_factory: MosquittoFactory, unique_site: str, tmp_path: Path
) -> None:
    """What ``mqtt_session_expiry_seconds: null`` costs (the behaviour before issue 11)."""
    broker = mosquitto_factory(BROKER_QUEUE)
    book = dict.fromkeys(locations(20), 5)
    database = f"sqlite:///{tmp_path / 'rec.db'}"
    extra = {"mqtt_session_expiry_seconds": None}
    rec = ReconcilerProcess(tmp_path, config(unique_site, broker.address, database, **extra))
    try:
        started(rec, book, tmp_path)
        rec.kill()
        publisher = CountPublisher(broker.address, unique_site)
        publisher.publish_scan(book, "scan-1")
        last_scan = set(publisher.sent)
        publisher.publish_scan(book, "scan-2")
        rec.start()
        wait_for(lambda: len(rec.stored_msg_ids()) >= len(book), 30, "the retained counts")
        assert set(rec.stored_msg_ids()) == publisher.sent - last_scan
    finally:
        rec.close()


def test_database_away_during_ingest_and_approvals_loses_and_repeats_nothing(
    mosquitto_factory: MosquittoFactory,
    mqtt_recorder: RecorderFactory,
    unique_site: str,
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory(BROKER_QUEUE)
    postgres = PrivatePostgres()
    book = dict.fromkeys(locations(300), 5)
    counted = book | {"F-010": 9, "F-020": 9, "F-030": 9}  # three differences to approve
    began = time.monotonic()
    rec: ReconcilerProcess | None = None
    try:
        postgres.start()
        database = postgres.create_database("edgecount")
        rec = ReconcilerProcess(tmp_path, config(unique_site, broker.address, database))
        started(rec, book, tmp_path)
        adjustments = mqtt_recorder(broker.address, f"edgecount/v1/{unique_site}/adjustment")
        publisher = CountPublisher(broker.address, unique_site)

        # 1. ingest: the database goes away while the scan streams in
        with ThreadPoolExecutor(1) as pool:
            streaming = pool.submit(publisher.publish_scan, counted, "scan-1", per_chunk=5)
            wait_for(lambda: len(rec.stored_msg_ids()) >= 30, 20, "the first counts stored")
            postgres.stop()
            down = time.monotonic()
            streaming.result(60)
        wait_for(lambda: not ingest_healthy(rec), 20, "/health showing ingest failing")
        time.sleep(max(0.0, down + OUTAGE_SECONDS - time.monotonic()))  # the outage itself
        postgres.start()
        wait_for(lambda: len(rec.stored_msg_ids()) >= len(counted), 60, "every count stored")
        assert list(counted_once(rec.stored_msg_ids(), publisher.sent)) == []
        wait_for(lambda: len(rec.awaiting_approval()) == 3, 20, "3 awaiting approval")

        # 2. approvals: two before the outage, one refused during it and made after
        first, second, third = rec.awaiting_approval()
        for number in (first, second):
            assert approve(rec, number).returncode == 0
        postgres.stop()
        down = time.monotonic()
        assert approve(rec, third).returncode != 0  # the database is away: nothing applied
        wait_for(lambda: rec.health().status_code == 503, 20, "/health 503")
        time.sleep(max(0.0, down + OUTAGE_SECONDS - time.monotonic()))  # the outage itself
        postgres.start()
        assert approve(rec, third).returncode == 0, rec.log_text()[-3000:]
        wait_for(lambda: rec.metric("adjustments_pending") == 0, 40, "adjustments published")
        wait_for(lambda: rec.health().status_code == 200, 20, "/health 200 again")
        seen = [m.payload["adjustment_id"] for m in adjustments.matching() if m.payload]
        assert sorted(seen) == sorted(set(seen)), f"an adjustment published twice: {seen}"
        assert len(seen) == 3
        errors = rec.metric("store_errors_total")
        assert errors > 0
        figures(rec, f"database away twice for 30 s ({errors:.0f} store errors)", began)
        print(f"adjustments on the wire: {len(seen)} for 3 approvals")  # docs/benchmarks.md
    finally:
        if rec is not None:
            rec.close()
        postgres.destroy()


def ingest_healthy(rec: ReconcilerProcess) -> bool:
    body: dict[str, Any] = rec.health().json()
    return bool(body["ingest"]["healthy"])


def approve(rec: ReconcilerProcess, number: int) -> Any:
    """``edgecount reconcile approve`` as an approver would run it."""
    return rec.cli("reconcile", "approve", str(number), "--reason", "MISCOUNT", "--by", "test")
