"""Each supervised task of the reconciler service, made to fail, against real Mosquitto.

Faults come through public seams: an engine (the service's constructor argument) whose
reaction to a gateway's ``online`` cannot be encoded, the REST API's server stopped under
the service, a watchdog whose socket fails, a broker connection torn down by the broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path

import httpx
import pytest

from edgecount import contract
from edgecount.mqtt import MqttSettings
from edgecount.sdnotify import Notifier
from reconciler.config import ApiConfig
from reconciler.engine import Engine, Outgoing
from reconciler.rules import TolerancePolicy
from reconciler.service import ReconcileService, serve_until_signal
from reconciler.store import Store, open_store
from tests.conftest import BrokerAddress, MosquittoFactory, eventually
from tests.reconciler.test_service import count, engine_on, publisher


def traced(caplog: pytest.LogCaptureFixture, task: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "edgecount.supervisor" and r.exc_info and f"task {task} " in r.getMessage()
    ]


class UnencodableReaction(Engine):
    """An engine whose recount requests for a gateway coming online break the contract."""

    def recount_requests_for(self, gateway: str) -> list[Outgoing]:
        # made without the builder, so nothing checked it: the wire refuses it (no zone or
        # locations, a request_id with a '/', a time that is not one)
        request = contract.ScanRequestMessage(
            request_id="a/b", reason="recount", requested_by="test", at="yesterday"
        )
        return [Outgoing(f"test/{gateway}", request, retain=False)]


def service_on(
    store: Store, engine: Engine, broker: BrokerAddress, **extra: object
) -> ReconcileService:
    client_id = f"rec-{uuid.uuid4().hex[:8]}"
    settings = MqttSettings(host=broker.host, port=broker.port, client_id=client_id)
    return ReconcileService(engine, settings, client_id=client_id, **extra)  # type: ignore[arg-type]


async def test_a_crashing_ingest_is_logged_restarted_and_ingests_again(
    tmp_path: Path, broker: BrokerAddress, unique_site: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'ingest.sqlite3'}")
    engine_on(store, unique_site)
    engine = UnencodableReaction(store, unique_site, TolerancePolicy())
    service = service_on(store, engine, broker)
    task = asyncio.create_task(service.run())
    root = f"edgecount/v1/{unique_site}"
    send = publisher(broker)
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        online = contract.status_payload(gateway="gw-1", site=unique_site, state="online")
        await asyncio.to_thread(send, f"{root}/status/gw-1", json.dumps(online).encode())
        await eventually(lambda: service.tasks.health()["ingest"].restarts == 1, 10, "a restart")
        probe = count(unique_site, "A-02", {"80614141123458": 4}, seq=1)
        await asyncio.to_thread(send, f"{root}/count/A/A-02", contract.encode(probe.to_payload()))
        await asyncio.wait_for(service.wait_until(lambda s: s.applied >= 1), 10)
        assert not service.health_reasons()
    finally:
        service.stopping.set()
        await asyncio.wait_for(task, 10)
        store.close()
    records = traced(caplog, "ingest")
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], contract.ContractError)


async def test_a_rest_api_that_stops_ends_the_service_with_status_1(
    tmp_path: Path, broker: BrokerAddress, unique_site: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'api.sqlite3'}")
    service = service_on(store, engine_on(store, unique_site), broker, api=ApiConfig(port=0))
    run = asyncio.create_task(serve_until_signal(service))
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.api_port}") as http:
            assert (await http.get("/health")).status_code == 200
        assert service.api_server is not None
        service.api_server.close()  # uvicorn stops under the service
        assert await asyncio.wait_for(run, 20) == 1
    finally:
        service.stopping.set()
        store.close()
    assert "task rest-api failed: TaskReturned" in caplog.text
    assert "exiting with status 1" in caplog.text
    assert service.tasks.health()["ingest"].state == "finished"  # cancelled, not failed


class BrokenWatchdog(Notifier):
    def watchdog(self) -> bool:
        raise OSError("notify socket gone")


async def test_a_failing_watchdog_ends_the_service_with_status_1(
    tmp_path: Path, broker: BrokerAddress, unique_site: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'wd.sqlite3'}")
    service = service_on(store, engine_on(store, unique_site), broker)
    env = {"NOTIFY_SOCKET": f"@edgecount-test-{uuid.uuid4().hex}", "WATCHDOG_USEC": "200000"}
    service.notifier = BrokenWatchdog(env)
    try:
        assert await asyncio.wait_for(serve_until_signal(service), 20) == 1
    finally:
        store.close()
    assert len(traced(caplog, "watchdog")) == 1
    assert "task watchdog failed: OSError: notify socket gone" in caplog.text


async def test_a_broker_that_goes_away_is_reconnected_without_a_task_failure(
    tmp_path: Path, mosquitto_factory: MosquittoFactory, unique_site: str
) -> None:
    broker = mosquitto_factory()
    store = open_store(f"sqlite:///{tmp_path / 'conn.sqlite3'}")
    engine = engine_on(store, unique_site)
    settings = MqttSettings(
        host=broker.host, port=broker.port, reconnect_min_delay=0.05, reconnect_max_delay=0.3
    )
    service = ReconcileService(engine, settings, client_id=f"rec-{unique_site}")
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        broker.kill()
        await eventually(lambda: not service.ready.is_set(), 10, "the connection lost")
        broker.start()
        await asyncio.wait_for(service.ready.wait(), 20)
        health = service.tasks.health()["mqtt-connection"]
        assert (health.state, health.restarts) == ("running", 0)
        assert service.stats.connects == 2
    finally:
        service.stopping.set()
        await asyncio.wait_for(task, 10)
        store.close()
