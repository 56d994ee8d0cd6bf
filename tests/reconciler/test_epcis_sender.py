"""The EPCIS sender against the project's own capture endpoint (tests/epcis_capture_server.py).

Sent after a scan ends, capture jobs polled, retries until the endpoint is up, 413 handled,
nothing sent twice across a restart, one claim per scan among instances on one PostgreSQL.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edgecount.contract import CountItem
from reconciler.config import ReconcilerConfig
from reconciler.epcis.document import document_bytes
from reconciler.epcis.records import ExportRecords
from reconciler.epcis.sender import EpcisSender, make_sender
from reconciler.store import Store, open_store
from tests.conftest import eventually
from tests.epcis_capture_server import CaptureServer
from tests.pgdb import fresh_database
from tests.reconciler.epcis_helpers import GTIN, SITE, add_scan, validator

LOCATIONS = {f"A-{n:02d}": [CountItem(sku=GTIN, qty=n)] for n in range(1, 7)}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
    now = datetime.now(UTC)
    add_scan(opened, "s1", LOCATIONS, ended_at=now - timedelta(seconds=1))
    yield opened
    opened.close()


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with socket.socket() as probe:  # a port nobody listens on yet (for "down" first)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    capture = CaptureServer(validator(), port=port, job_polls_running=1)
    yield capture
    capture.stop()


def _config(url: str, **epcis: Any) -> ReconcilerConfig:
    settings = {"capture_url": url, "settle_seconds": 0, "poll_seconds": 0.02}
    settings |= {"retry": {"min_seconds": 0.05, "max_seconds": 0.2}} | epcis
    return ReconcilerConfig.model_validate({"site": SITE, "epcis": settings})


def _sender(store: Store, config: ReconcilerConfig, **fields: Any) -> EpcisSender:
    sender = make_sender(store, config, validator())
    sender.discover_seconds = 0.05
    for name, value in fields.items():
        setattr(sender, name, value)
    return sender


async def _running(sender: EpcisSender, until: Callable[[], Awaitable[None]]) -> None:
    stopping = asyncio.Event()
    task = asyncio.create_task(sender.run(stopping), name="epcis-sender")
    try:
        await until()
    finally:
        stopping.set()
        await asyncio.wait_for(task, 5)


def _state(store: Store, scan_id: str = "s1") -> dict[str, Any]:
    return ExportRecords(store, "reader").state(scan_id) or {}


def _sent_once(server: CaptureServer, events: int = len(LOCATIONS)) -> None:
    assert len(server.event_ids) == events
    assert set(server.event_ids.values()) == {1}, server.event_ids


def test_a_scan_is_sent_once_after_it_ended_and_its_job_polled(
    store: Store, server: CaptureServer
) -> None:
    server.start()
    add_scan(store, "s2", {"B-01": []}, ended_at=None, seq=100)  # still running: not sent
    sender = _sender(store, _config(server.url))

    async def until() -> None:
        await eventually(lambda: _state(store).get("state") == "sent", 10, "scan s1 sent")

    asyncio.run(_running(sender, until))
    _sent_once(server)
    assert server.polls >= 2  # running once, then finished
    record = _state(store)
    assert record["next_event"] == len(LOCATIONS)
    assert [job["state"] for job in record["jobs"]] == ["success"]
    assert _state(store, "s2") == {}


def test_retries_until_the_endpoint_is_up_and_answers(store: Store, server: CaptureServer) -> None:
    sender = _sender(store, _config(server.url))

    async def until() -> None:
        await eventually(lambda: _state(store).get("attempts", 0) >= 2, 10, "retried while down")
        assert _state(store)["state"] == "pending"
        assert "ConnectError" in _state(store)["last_error"]
        server.fail_next = 2  # up, but failing twice more with 500
        server.start()
        await eventually(lambda: _state(store).get("state") == "sent", 10, "sent once up")

    asyncio.run(_running(sender, until))
    _sent_once(server)
    assert server.fail_next == 0


@pytest.mark.parametrize("tell_limits", [False, True], ids=["halve", "server-limit"])
def test_a_413_splits_the_scan_into_smaller_documents(
    store: Store, server: CaptureServer, tell_limits: bool
) -> None:
    server.limit_bytes = 2400  # about two events and the header
    server.tell_limits = tell_limits
    server.start()
    sender = _sender(store, _config(server.url))

    async def until() -> None:
        await eventually(lambda: _state(store).get("state") == "sent", 10, "sent in parts")

    asyncio.run(_running(sender, until))
    assert server.too_large >= 1
    assert len(server.documents) >= 2
    assert all(len(document_bytes(doc)) <= 2400 for doc in server.documents)
    _sent_once(server)


def test_nothing_is_sent_twice_across_a_restart(store: Store, server: CaptureServer) -> None:
    server.job_polls_running = 10_000  # the first job keeps running: the sender stops meanwhile
    server.start()
    config = _config(server.url, max_events=2, lease_seconds=30)

    async def first_document_accepted() -> None:
        await eventually(lambda: _state(store).get("next_event") == 2, 10, "first document")

    asyncio.run(_running(_sender(store, config), first_document_accepted))
    assert len(server.documents) == 1
    assert _state(store)["state"] == "sending"

    server.job_polls_running = 0
    later = datetime.now(UTC) + timedelta(seconds=60)  # the first run's lease has run out
    restarted = _sender(store, config, clock=lambda: later)

    async def until() -> None:
        await eventually(lambda: _state(store).get("state") == "sent", 10, "sent after restart")

    asyncio.run(_running(restarted, until))
    assert len(server.documents) == 3
    _sent_once(server)
    assert [job["state"] for job in _state(store)["jobs"]] == ["success"] * 3


def test_a_refused_document_marks_the_scan_failed(store: Store, server: CaptureServer) -> None:
    server.start()
    server.validator = type(server.validator)(None)  # semantics only: still accepts ours
    config = _config(server.url.replace("/capture", "/elsewhere"))
    sender = _sender(store, config)

    async def until() -> None:
        await eventually(lambda: _state(store).get("state") == "failed", 10, "failed")

    asyncio.run(_running(sender, until))
    assert "404" in _state(store)["last_error"]
    assert server.documents == []


def test_one_claim_per_scan_among_instances_on_postgresql() -> None:
    with fresh_database() as url:
        shared = open_store(url)
        try:
            now = datetime.now(UTC)
            add_scan(shared, "s1", {"A-01": []}, ended_at=now)
            ExportRecords(shared, "setup").request("s1", now)
            won: list[str] = []
            barrier = threading.Barrier(6)

            def claim(me: str) -> None:
                barrier.wait()
                if ExportRecords(shared, me).claim("s1", now, timedelta(seconds=60)):
                    won.append(me)

            threads = [threading.Thread(target=claim, args=(f"rec-{n}",)) for n in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            assert len(won) == 1, won
            assert _state(shared)["claimed_by"] == won[0]
            # the lease ran out: another instance takes it over, the first can no longer write
            later = now + timedelta(seconds=61)
            assert ExportRecords(shared, "rec-late").claim("s1", later, timedelta(seconds=60))
            assert not ExportRecords(shared, won[0]).renew("s1", later)
        finally:
            shared.close()


def test_epcis_send_sends_a_scan_now_and_again(
    store: Store, server: CaptureServer, tmp_path: Path
) -> None:
    from edgecount.cli import main

    server.start()
    config = tmp_path / "rec.yaml"
    config.write_text(
        f"site: {SITE}\ndatabase: sqlite:///{tmp_path / 'rec.sqlite3'}\n"
        f"epcis:\n  capture_url: {server.url}\n"
        "  poll_seconds: 0.02\n",
        encoding="utf-8",
    )
    assert main(["epcis", "send", "-c", str(config), "--scan", "s1"]) == 0
    _sent_once(server)
    assert main(["epcis", "send", "-c", str(config), "--scan", "s1"]) == 0  # asked again: sent
    assert set(server.event_ids.values()) == {2}
    assert main(["epcis", "send", "-c", str(config), "--scan", "nope"]) == 1
