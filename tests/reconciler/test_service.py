"""The reconciliation service against real Mosquitto, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.publish as mqtt_publish
import pytest
import sqlalchemy as sa

from edgecount import contract
from edgecount.mqtt import MqttSettings
from reconciler import ingest
from reconciler import schema as t
from reconciler import service as service_module
from reconciler.config import ApiConfig
from reconciler.engine import Engine, Outgoing
from reconciler.model import AbcClass, BookLine, Movement
from reconciler.rules import TolerancePolicy
from reconciler.service import ReconcileService, ServiceStats, StoreStream
from reconciler.store import Store, open_store
from tests.conftest import BrokerAddress, RecorderFactory, eventually

SKU_A, SKU_B = "80614141123458", "80614141123465"


@pytest.fixture
def store(any_store: Store) -> Store:
    """The store of each test: SQLite and PostgreSQL (see conftest.py)."""
    return any_store


SNAPSHOT = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
BOOK = [
    BookLine("A-01", SKU_A, 10, 2.0, AbcClass.A),
    BookLine("A-01", SKU_B, 5, 10.0, AbcClass.B),
    BookLine("A-02", SKU_A, 4, 2.0, AbcClass.A),
]


def engine_on(store: Store, site: str, max_recounts: int = 2) -> Engine:
    store.replace_book(BOOK, source="test", at=SNAPSHOT)
    return Engine(store, site, TolerancePolicy(), max_recounts)


def count(
    site: str,
    location: str,
    items: dict[str, int],
    *,
    seq: int,
    scan: str = "s1",
    observed: datetime | None = None,
    complete: bool = True,
) -> contract.CountMessage:
    draft = contract.count_payload(
        gateway="gw-1",
        site=site,
        zone="A",
        location=location,
        scan_id=scan,
        items=[{"sku": sku, "qty": qty} for sku, qty in items.items()],
        complete=complete,
        observed_at=observed or SNAPSHOT + timedelta(hours=4),
    )
    return contract.CountMessage.from_payload(contract.with_sequence(draft, seq))


def states(store: Store) -> list[tuple[str, str, int]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.discrepancies).order_by(t.discrepancies.c.id))
        return [(r.location, r.state, r.recounts) for r in rows]


def test_same_message_twice_is_applied_once(store: Store) -> None:
    engine = engine_on(store, "s")
    message = count("s", "A-01", {SKU_A: 10, SKU_B: 5}, seq=1)
    assert store.record_count(message, datetime.now(UTC))
    assert not store.record_count(message, datetime.now(UTC))
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.counts)).scalar() == 1
    assert engine.on_count(message) == []  # everything matches: nothing to say


def test_count_before_a_movement_is_compared_with_the_book_as_it_was(store: Store) -> None:
    engine = engine_on(store, "s")
    counted_at = SNAPSHOT + timedelta(hours=4)
    # 3 units picked an hour after the count: the book now says 7, but the count saw 10
    store.add_movements(
        [Movement(counted_at + timedelta(hours=1), "A-01", SKU_A, -3, "ann", "PICK-1")]
    )
    rows = engine.compare_count(count("s", "A-01", {SKU_A: 10, SKU_B: 5}, seq=1))
    assert [(r.sku, r.book_qty, r.status.value) for r in rows] == [
        (SKU_A, 10, "match"),
        (SKU_B, 5, "match"),
    ]
    # a count taken after the pick is compared with 7
    later = count(
        "s", "A-01", {SKU_A: 7, SKU_B: 5}, seq=2, observed=counted_at + timedelta(hours=2)
    )
    assert [r.book_qty for r in engine.compare_count(later)] == [7, 5]
    assert all(r.status.value == "match" for r in engine.compare_count(later))


def test_incomplete_location_is_never_flagged(store: Store) -> None:
    engine = engine_on(store, "s")
    assert engine.on_count(count("s", "A-01", {}, seq=1, complete=False)) == []
    assert states(store) == []


def test_recounts_then_approval_then_one_adjustment_per_line(store: Store) -> None:
    engine = engine_on(store, "s", max_recounts=2)
    sent = engine.on_count(count("s", "A-01", {SKU_A: 6, SKU_B: 5}, seq=1, scan="s1"))
    assert [m.topic for m in sent] == [
        "edgecount/v1/s/discrepancy/A/A-01",
        "edgecount/v1/s/cmd/gw-1/scan",
    ]
    assert states(store) == [("A-01", "recount_requested", 0)]
    engine.on_count(count("s", "A-01", {SKU_A: 6, SKU_B: 5}, seq=2, scan="s2"))
    assert states(store) == [("A-01", "recount_requested", 1)]
    last = engine.on_count(count("s", "A-01", {SKU_A: 6, SKU_B: 5}, seq=3, scan="s3"))
    assert states(store) == [("A-01", "awaiting_approval", 2)]
    assert [m.topic for m in last] == ["edgecount/v1/s/discrepancy/A/A-01"]  # no more recounts
    (item,) = engine.list_discrepancies()
    assert [line["sku"] for line in item["lines"]] == [SKU_A]
    engine.decide(item["id"], approve=True, reason_code="MISCOUNT", approver="kim")
    pending = engine.pending_adjustments()
    assert len(pending) == 1
    adjustment = pending[0][1].message
    assert isinstance(adjustment, contract.AdjustmentMessage)
    contract.validate(adjustment.to_payload())
    assert (adjustment.sku, adjustment.diff, adjustment.approved_by) == (SKU_A, -4, "kim")
    # the local book learned the adjustment: the same count now matches
    after = count(
        "s",
        "A-01",
        {SKU_A: 6, SKU_B: 5},
        seq=4,
        scan="s4",
        observed=datetime.now(UTC) + timedelta(seconds=1),
    )
    assert all(r.status.value == "match" for r in engine.compare_count(after))


def test_an_incomplete_recount_counts_as_an_attempt_and_asks_again(store: Store) -> None:
    engine = engine_on(store, "s", max_recounts=2)
    engine.on_count(count("s", "A-02", {SKU_A: 9}, seq=1, scan="s1"))
    # the recount came back incomplete (a reader failed): asked again, not left waiting
    again = engine.on_count(count("s", "A-02", {}, seq=2, scan="s2", complete=False))
    assert states(store) == [("A-02", "recount_requested", 1)]
    assert [m.topic for m in again] == [
        "edgecount/v1/s/discrepancy/A/A-02",
        "edgecount/v1/s/cmd/gw-1/scan",
    ]
    # the same incomplete scan is one attempt, however many of its counts arrive
    assert engine.on_count(count("s", "A-02", {}, seq=3, scan="s2", complete=False)) == []
    # a second failed attempt: a person decides, from the last complete count
    last = engine.on_count(count("s", "A-02", {}, seq=4, scan="s3", complete=False))
    assert states(store) == [("A-02", "awaiting_approval", 2)]
    assert [m.topic for m in last] == ["edgecount/v1/s/discrepancy/A/A-02"]
    (item,) = engine.list_discrepancies()
    assert [(line["sku"], line["counted_qty"]) for line in item["lines"]] == [(SKU_A, 9)]
    # an incomplete count where nothing waits for a recount changes nothing
    assert engine.on_count(count("s", "A-01", {}, seq=5, scan="s4", complete=False)) == []


def test_a_good_recount_resolves_the_discrepancy(store: Store) -> None:
    engine = engine_on(store, "s")
    engine.on_count(count("s", "A-02", {SKU_A: 9}, seq=1, scan="s1"))
    cleared = engine.on_count(count("s", "A-02", {SKU_A: 4}, seq=2, scan="s2"))
    assert states(store) == [("A-02", "resolved", 0)]
    assert [(m.topic, m.message, m.retain) for m in cleared] == [
        ("edgecount/v1/s/discrepancy/A/A-02", None, True)
    ]


# -- the running service over MQTT --------------------------------------------------------------


async def run_service(
    store: Store, broker: BrokerAddress, site: str
) -> tuple[ReconcileService, asyncio.Task[None]]:
    engine = engine_on(store, site)
    settings = MqttSettings(host=broker.host, port=broker.port, client_id=f"rec-{site}")
    service = ReconcileService(engine, settings, client_id=f"rec-{site}")
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.ready.wait(), 10)
    return service, task


def publisher(broker: BrokerAddress) -> Callable[[str, bytes], None]:
    def send(topic: str, body: bytes) -> None:
        mqtt_publish.single(topic, body, qos=1, hostname=broker.host, port=broker.port)

    return send


async def test_service_dedups_rejects_to_deadletter_and_requests_recounts(
    store: Store, broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory
) -> None:
    root = f"edgecount/v1/{unique_site}"
    recorder = mqtt_recorder(
        broker, [f"{root}/deadletter", f"{root}/cmd/+/scan", f"{root}/discrepancy/#"]
    )
    service, task = await run_service(store, broker, unique_site)
    send = publisher(broker)
    try:
        wrong = count(unique_site, "A-01", {SKU_A: 3, SKU_B: 5}, seq=7)
        body = contract.encode(wrong.to_payload())
        await asyncio.to_thread(send, f"{root}/count/A/A-01", b"{broken")
        await asyncio.to_thread(send, f"{root}/count/A/A-01", body)
        await asyncio.to_thread(send, f"{root}/count/A/A-01", body)  # a QoS 1 duplicate
        letters = await recorder.await_for(1, f"{root}/deadletter")
        assert letters[0].payload is not None
        assert "JSON" in letters[0].payload["reason"] or "json" in letters[0].payload["reason"]
        requests = await recorder.await_for(1, f"{root}/cmd/gw-1/scan")
        assert requests[0].payload is not None
        assert requests[0].payload["locations"] == ["A-01"]
        flagged = await recorder.await_for(1, f"{root}/discrepancy/A/A-01")
        assert flagged[0].payload is not None
        assert flagged[0].payload["state"] == "recount_requested"
        probe = count(unique_site, "A-02", {SKU_A: 4}, seq=8)
        await asyncio.to_thread(send, f"{root}/count/A/A-02", contract.encode(probe.to_payload()))
        await asyncio.wait_for(service.wait_until(lambda stats: stats.applied >= 2), 10)
        assert service.stats.duplicates == 1
        assert service.stats.rejected == 1
        assert len(recorder.matching(f"{root}/cmd/gw-1/scan")) == 1
    finally:
        service.stopping.set()
        await asyncio.wait_for(task, 10)


async def test_rest_api_runs_inside_the_service(
    tmp_path: Path, broker: BrokerAddress, unique_site: str
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'api.sqlite3'}")
    engine = engine_on(store, unique_site)
    settings = MqttSettings(host=broker.host, port=broker.port, client_id=f"rec-{unique_site}")
    service = ReconcileService(
        engine, settings, client_id=f"rec-{unique_site}", api=ApiConfig(port=0)
    )
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        assert service.api_port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.api_port}") as http:
            health = await http.get("/health")
        assert health.status_code == 200
        assert health.json()["open_discrepancies"] == 0
    finally:
        service.stopping.set()
        await asyncio.wait_for(task, 10)
        store.close()


def more_than(applied: int) -> Callable[[ServiceStats], bool]:
    return lambda stats: stats.applied > applied


async def test_shared_subscription_splits_messages_and_applies_each_once(
    tmp_path: Path, broker: BrokerAddress, unique_site: str
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'shared.sqlite3'}")
    engine_on(store, unique_site)
    services = [
        ReconcileService(
            Engine(store, unique_site, TolerancePolicy()),
            MqttSettings(host=broker.host, port=broker.port, client_id=f"r{i}-{unique_site}"),
            client_id=f"r{i}-{unique_site}",
            shared_group=f"g-{unique_site}",
        )
        for i in range(2)
    ]
    tasks = [asyncio.create_task(s.run()) for s in services]
    try:
        for service in services:
            await asyncio.wait_for(service.ready.wait(), 10)
        root = f"edgecount/v1/{unique_site}"
        send = publisher(broker)
        for seq in range(1, 41):
            message = count(unique_site, "A-02", {SKU_A: 4}, seq=seq, scan=f"s{seq}")
            await asyncio.to_thread(
                send, f"{root}/count/A/A-02", contract.encode(message.to_payload())
            )

        async def all_applied() -> None:
            while sum(s.stats.applied for s in services) < 40:
                waits = [
                    asyncio.ensure_future(s.wait_until(more_than(s.stats.applied)))
                    for s in services
                ]
                _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for waiter in pending:
                    waiter.cancel()

        await asyncio.wait_for(all_applied(), 15)
        assert [s.stats.applied > 0 for s in services] == [True, True]  # the load was shared
        with store.engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(t.counts)).scalar()
        assert stored == 40
    finally:
        for service in services:
            service.stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        store.close()


async def test_recount_requests_are_sent_again_when_the_gateway_comes_online(
    store: Store, broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory
) -> None:
    root = f"edgecount/v1/{unique_site}"
    recorder = mqtt_recorder(broker, f"{root}/cmd/+/scan")
    service, task = await run_service(store, broker, unique_site)
    send = publisher(broker)
    try:
        wrong = count(unique_site, "A-01", {SKU_A: 3, SKU_B: 5}, seq=1)
        await asyncio.to_thread(send, f"{root}/count/A/A-01", contract.encode(wrong.to_payload()))
        first = await recorder.await_for(1, f"{root}/cmd/gw-1/scan")
        online = contract.status_payload(gateway="gw-1", site=unique_site, state="online")
        await asyncio.to_thread(send, f"{root}/status/gw-1", json.dumps(online).encode())
        both = await recorder.await_for(2, f"{root}/cmd/gw-1/scan")
        assert first[0].payload is not None
        assert both[1].payload is not None
        assert both[1].payload["request_id"] == first[0].payload["request_id"]
        assert both[1].payload["locations"] == ["A-01"]
        # another gateway coming online gets nothing
        other = contract.status_payload(gateway="gw-2", site=unique_site, state="online")
        await asyncio.to_thread(send, f"{root}/status/gw-2", json.dumps(other).encode())
        await asyncio.wait_for(service.wait_until(lambda s: s.statuses >= 2), 10)
        assert recorder.matching(f"{root}/cmd/gw-2/scan") == []
    finally:
        service.stopping.set()
        await asyncio.wait_for(task, 10)


async def test_a_failing_store_stream_is_logged_shown_retried_and_resumes(
    tmp_path: Path,
    broker: BrokerAddress,
    unique_site: str,
    mqtt_recorder: RecorderFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = f"test/{unique_site}/probe"
    recorder = mqtt_recorder(broker, topic)
    away = threading.Event()
    away.set()
    done: list[int] = []

    def fetch() -> list[tuple[int, Outgoing]]:
        if away.is_set():
            raise sa.exc.OperationalError("SELECT", {}, Exception("database away"))
        return [] if done else [(7, Outgoing(topic, None, retain=False))]

    store = open_store(f"sqlite:///{tmp_path / 'streams.sqlite3'}")
    settings = MqttSettings(host=broker.host, port=broker.port)
    service = ReconcileService(
        engine_on(store, unique_site),
        settings,
        client_id=f"rec-{unique_site}",
        api=ApiConfig(port=0),
    )
    service.streams.append(
        StoreStream("probe", fetch, done.append, "probes_published", unique_site)
    )
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        await eventually(lambda: service.publisher_health.errors >= 2, 10, "two failed rounds")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.api_port}") as http:
            health = await http.get("/health")
            assert health.status_code == 503
            assert health.json()["publisher"]["healthy"] is False
            assert "database away" in health.json()["publisher"]["last_error"]
            metrics = (await http.get("/metrics")).text
            assert "edgecount_reconciler_publisher_healthy 0" in metrics
            assert "edgecount_reconciler_store_errors_total 0" not in metrics
            assert "edgecount_reconciler_probes_published_total 0" in metrics
            traced = [r for r in caplog.records if r.name == "reconciler.service" and r.exc_info]
            assert traced, "the failure was not logged with its trace"
            away.clear()  # the database is back
            await asyncio.wait_for(service.wait_until(lambda s: s.published.get("probe") == 1), 15)
            assert done == [7]
            assert len(await recorder.await_for(1, topic)) == 1
            assert (await http.get("/health")).status_code == 200
        assert not service.health_reasons()
    finally:
        service.stopping.set()
        await asyncio.wait_for(task, 10)
        store.close()


async def test_a_broker_sending_past_the_bound_is_held_back_by_tcp_not_dropped(
    tmp_path: Path, broker: BrokerAddress, unique_site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MQTT 3.1.1 has no Receive Maximum: Mosquitto sends up to its in-flight limit (20)
    at once, as 2.0.11 does past an MQTT 5 Receive Maximum under load. While the ingest is
    held (a slow database), the messages waiting for it stay inside the connection's bound
    (here 5), so paho's thread waits and the rest waits in TCP and the broker; the inbox
    (here 10) never overflows, and every count is stored once the ingest goes on. Before,
    the inbox filled and the messages beyond it were dropped unacknowledged."""
    monkeypatch.setattr(service_module, "UNACKED", 5)
    monkeypatch.setattr(service_module, "INBOX", 10)
    go_on = threading.Event()
    real = ingest.handle_sites

    def slow_database(*args: Any, **kwargs: Any) -> Any:
        assert go_on.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(service_module, "handle_sites", slow_database)
    store = open_store(f"sqlite:///{tmp_path / 'held.sqlite3'}")
    engine = engine_on(store, unique_site)
    settings = MqttSettings(
        host=broker.host, port=broker.port, client_id=f"held-{unique_site}", protocol="3.1.1"
    )
    service = ReconcileService(engine, settings, client_id=f"held-{unique_site}")
    task = asyncio.create_task(service.run())
    root = f"edgecount/v1/{unique_site}"
    total = 60
    bodies = [
        contract.encode(
            count(unique_site, "A-02", {SKU_A: 4}, seq=seq, scan=f"s{seq}").to_payload()
        )
        for seq in range(1, total + 1)
    ]
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        conn = service._conn
        assert conn is not None
        flood = asyncio.create_task(
            asyncio.to_thread(
                mqtt_publish.multiple,
                [{"topic": f"{root}/count/A/A-02", "payload": b, "qos": 1} for b in bodies],
                hostname=broker.host,
                port=broker.port,
            )
        )
        await eventually(lambda: conn.waits > 0, 10, "paho's thread waiting for room")
        go_on.set()
        await flood
        await asyncio.wait_for(service.wait_until(lambda s: s.applied >= total), 20)
        counters = service.counters()
        assert counters["messages_dropped"] == 0  # neither the inbox nor the connection
        assert counters["mqtt_held_back"] >= 1  # on /metrics: the broker was held back
        with store.engine.connect() as db:
            stored = db.execute(sa.select(sa.func.count()).select_from(t.counts)).scalar()
        assert stored == total
    finally:
        go_on.set()
        service.stopping.set()
        await asyncio.wait_for(task, 10)
        store.close()
