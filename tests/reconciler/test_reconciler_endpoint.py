"""The reconciler's /metrics (inside its REST API), scraped while real messages arrive."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.publish as mqtt_publish
from fastapi.testclient import TestClient

from edgecount import contract
from edgecount.metrics import render
from edgecount.mqtt import MqttSettings
from reconciler.api import DISCREPANCY_STATES, create_app, metrics_registry
from reconciler.config import ApiConfig
from reconciler.engine import Engine
from reconciler.model import AbcClass, BookLine
from reconciler.rules import TolerancePolicy
from reconciler.service import ReconcileService
from reconciler.store import open_store
from tests.conftest import BrokerAddress
from tests.edgecount.exposition import parse, value

SKU = "80614141123458"


def short_count(site: str, seq: int) -> dict[str, object]:
    """A count of 6 at A-01, where the book says 10: a discrepancy."""
    draft = contract.count_payload(
        gateway="gw-1", site=site, zone="A", location="A-01", scan_id=f"s{seq}",
        items=[{"sku": SKU, "qty": 6}], observed_at=datetime.now(UTC),
    )  # fmt: skip
    return contract.with_sequence(draft, seq)


def test_metrics_without_a_service_show_the_database(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
    try:
        with TestClient(create_app(Engine(store, "s", TolerancePolicy()))) as client:
            answer = client.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        samples = parse(answer.text)
        for state in DISCREPANCY_STATES:
            assert value(samples, "edgecount_reconciler_discrepancies", state=state) == 0
        assert value(samples, "edgecount_reconciler_adjustments_pending") == 0
    finally:
        store.close()


async def test_service_counters_and_open_discrepancies_change_with_messages(
    tmp_path: Path, broker: BrokerAddress, unique_site: str
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
    store.replace_book(
        [BookLine("A-01", SKU, 10, 2.0, AbcClass.A)], source="test", at=datetime.now(UTC)
    )
    engine = Engine(store, unique_site, TolerancePolicy(), max_recounts=0)
    client_id = f"rec-{unique_site}"
    settings = MqttSettings(host=broker.host, port=broker.port, client_id=client_id)
    service = ReconcileService(engine, settings, client_id=client_id, api=ApiConfig(port=0))
    task = asyncio.create_task(service.run())
    root = f"edgecount/v1/{unique_site}"

    def send(topic: str, payload: bytes) -> None:
        mqtt_publish.single(topic, payload, qos=1, hostname=broker.host, port=broker.port)

    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.api_port}") as http:
            before = parse((await http.get("/metrics")).text)
            assert value(before, "edgecount_reconciler_messages_received_total") == 0
            assert value(before, "edgecount_reconciler_subscribed") == 1
            assert value(before, "edgecount_reconciler_healthy") == 1

            await asyncio.to_thread(send, f"{root}/count/A/A-01", b"not json")
            count = json.dumps(short_count(unique_site, 1)).encode()
            await asyncio.to_thread(send, f"{root}/count/A/A-01", count)
            await asyncio.to_thread(send, f"{root}/count/A/A-01", count)  # a QoS 1 duplicate
            await asyncio.wait_for(
                service.wait_until(lambda s: s.applied + s.duplicates + s.rejected >= 3), 10
            )
            after = parse((await http.get("/metrics")).text)
        assert value(after, "edgecount_reconciler_messages_received_total") == 3
        assert value(after, "edgecount_reconciler_messages_applied_total") == 1
        assert value(after, "edgecount_reconciler_messages_duplicate_total") == 1
        assert value(after, "edgecount_reconciler_deadletters_total") == 1
        assert value(after, "edgecount_reconciler_inbox_depth") == 0
        opened = sum(
            value(after, "edgecount_reconciler_discrepancies", state=state)
            for state in ("open", "recount_requested", "awaiting_approval")
        )
        assert opened == 1
    finally:
        service.stopping.set()
        await asyncio.wait_for(task, 10)
        store.close()


def test_a_database_that_stops_answering_keeps_its_last_figures_and_reports_down(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rec.sqlite3"
    store = open_store(f"sqlite:///{path}")
    try:
        registry = metrics_registry(Engine(store, "s", TolerancePolicy()), lambda: {"received": 3})
        before = parse(render(registry))
        assert value(before, "edgecount_reconciler_database_up") == 1
        store.engine.dispose()
        path.unlink()  # the next connection opens an empty file: "no such table"
        after = parse(render(registry))
        assert value(after, "edgecount_reconciler_database_up") == 0
        assert value(after, "edgecount_reconciler_discrepancies", state="open") == 0
        assert (
            value(after, "edgecount_reconciler_received_total") == 3
        )  # service figures still come
    finally:
        store.close()
