"""The reconciler's REST API on a real store (SQLite; the approval path on PostgreSQL too)."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edgecount import contract
from reconciler import schema as t
from reconciler.api import create_app, serve_api
from reconciler.engine import Engine
from reconciler.model import AbcClass, BookLine
from reconciler.rules import TolerancePolicy
from reconciler.store import Store, open_store
from tests.reconciler.apiclient import api_client, bearer

SKU_A, SKU_B = "80614141123458", "80614141123465"
SNAPSHOT = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
BOOK = [
    BookLine("A-01", SKU_A, 10, 2.0, AbcClass.A),
    BookLine("A-01", SKU_B, 5, 10.0, AbcClass.B),
    BookLine("A-02", SKU_A, 4, 2.0, AbcClass.A),
]
DECISION = {"reason_code": "MISCOUNT", "note": "shelf behind A-01"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store (a file, WAL)."""
    opened = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
    yield opened
    opened.close()


def flagged(store: Store) -> tuple[Engine, int]:
    """An engine with the book loaded and one discrepancy at A-01 awaiting approval."""
    store.replace_book(BOOK, source="test", at=SNAPSHOT)
    engine = Engine(store, "s", TolerancePolicy(), max_recounts=0)
    draft = contract.count_payload(
        gateway="gw-1",
        site="s",
        zone="A",
        location="A-01",
        scan_id="s1",
        items=[{"sku": SKU_A, "qty": 6}, {"sku": SKU_B, "qty": 5}],
        observed_at=SNAPSHOT + timedelta(hours=4),
    )
    engine.on_count(contract.CountMessage.from_payload(contract.with_sequence(draft, 1)))
    (item,) = engine.list_discrepancies()
    assert item["state"] == "awaiting_approval"
    return engine, int(item["id"])


def approvals(store: Store) -> list[tuple[int, str, str, str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.approvals).order_by(t.approvals.c.id))
        return [(r.discrepancy_id, r.decision, r.reason_code, r.approver, r.note) for r in rows]


def error_locs(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


# -- discrepancies and decisions ---------------------------------------------------------------


def test_health_names_the_database_and_counts_open_discrepancies(store: Store) -> None:
    engine, _ = flagged(store)
    response = TestClient(create_app(engine)).get("/health")  # open: no sign-in
    assert response.json() == {"status": "ok", "database": "sqlite", "open_discrepancies": 1}


def test_approve_makes_one_adjustment_and_a_second_approve_conflicts(any_store: Store) -> None:
    engine, ident = flagged(any_store)
    client = api_client(engine)
    response = client.post(f"/discrepancies/{ident}/approve", json=DECISION)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "approved"
    assert response.json()["closed_at"] is not None
    assert approvals(any_store) == [(ident, "approved", "MISCOUNT", "kim", "shelf behind A-01")]
    (pending,) = engine.pending_adjustments()  # published by the service from the store
    adjustment = pending[1].message
    assert isinstance(adjustment, contract.AdjustmentMessage)
    assert (adjustment.sku, adjustment.diff, adjustment.approved_by, adjustment.reason_code) == (
        SKU_A,
        -4,
        "kim",
        "MISCOUNT",
    )
    again = client.post(f"/discrepancies/{ident}/approve", json=DECISION)
    assert again.status_code == 409
    assert again.json() == {"detail": f"discrepancy {ident} is approved, not awaiting_approval"}
    assert len(engine.pending_adjustments()) == 1
    assert client.get("/health").json()["open_discrepancies"] == 0


def test_reject_closes_without_an_adjustment(store: Store) -> None:
    engine, ident = flagged(store)
    client = api_client(engine, "lee")
    response = client.post(f"/discrepancies/{ident}/reject", json={"reason_code": "BOOK_ERROR"})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "rejected"
    assert approvals(store) == [(ident, "rejected", "BOOK_ERROR", "lee", "")]
    assert engine.pending_adjustments() == []
    assert client.get("/discrepancies").json() == []
    assert [d["state"] for d in client.get("/discrepancies", params={"all": "true"}).json()] == [
        "rejected"
    ]
    assert client.post(f"/discrepancies/{ident}/approve", json=DECISION).status_code == 409


def test_unknown_discrepancy_is_404(store: Store) -> None:
    engine, _ = flagged(store)
    client = api_client(engine)
    assert client.get("/discrepancies/999").json() == {"detail": "no discrepancy 999"}
    for verb in ("approve", "reject"):
        response = client.post(f"/discrepancies/999/{verb}", json=DECISION)
        assert (response.status_code, response.json()) == (404, {"detail": "no discrepancy 999"})
    assert client.get("/discrepancies/abc").status_code == 422


def test_bad_decision_body_is_422_naming_the_field(store: Store) -> None:
    engine, ident = flagged(store)
    client = api_client(engine)
    url = f"/discrepancies/{ident}/approve"
    assert error_locs(client.post(url, json={"note": "x"})) == [["body", "reason_code"]]
    named = client.post(url, json={**DECISION, "approver": "kim"})
    assert error_locs(named) == [["body"]]
    assert "recorded under the signed-in user" in named.json()["detail"][0]["msg"]
    assert error_locs(client.post(url, json={**DECISION, "reason_code": "X" * 65})) == [
        ["body", "reason_code"]
    ]
    assert error_locs(client.post(url, json={**DECISION, "approved": True})) == [
        ["body", "approved"]
    ]
    assert approvals(store) == []  # nothing was decided
    assert client.get(f"/discrepancies/{ident}").json()["state"] == "awaiting_approval"


def test_discrepancies_show_the_movements_since_the_last_good_count(store: Store) -> None:
    engine, ident = flagged(store)
    client = api_client(engine)
    moves = [
        {"ts": "2026-11-21T01:00:00Z", "location": "A-01", "sku": SKU_A, "qty_delta": -2}
        | {"user": "ann", "doc": "PICK-7", "movement_id": "M-1"},
        {"ts": "2026-11-21T01:05:00+01:00", "location": "A-02", "sku": SKU_A, "qty_delta": 1}
        | {"user": "bo", "doc": "PUT-3", "movement_id": "M-2"},
    ]
    added = {"added": 2, "already_imported": 0}
    assert client.post("/movements", json={"movements": moves}).json() == added
    assert [(m.location, m.ts, m.user, m.doc) for m in store.movements()] == [
        ("A-02", datetime(2026, 11, 21, 0, 5, tzinfo=UTC), "bo", "PUT-3"),
        ("A-01", datetime(2026, 11, 21, 1, 0, tzinfo=UTC), "ann", "PICK-7"),
    ]
    (item,) = client.get("/discrepancies").json()
    assert item["id"] == ident
    assert item["location"] == "A-01"
    assert [line["sku"] for line in item["lines"]] == [SKU_A]
    assert item["movements"] == [
        {
            "ts": "2026-11-21T01:00:00.000Z",
            "sku": SKU_A,
            "qty_delta": -2.0,
            "user": "ann",
            "doc": "PICK-7",
        }
    ]
    assert client.get(f"/discrepancies/{ident}").json() == item


def test_bad_movements_are_422_naming_the_item(store: Store) -> None:
    engine, _ = flagged(store)
    client = api_client(engine)
    good = {"ts": "2026-11-21T01:00:00Z", "location": "A-01", "sku": SKU_A, "qty_delta": -2}
    good |= {"user": "ann", "doc": "PICK-7", "movement_id": "M-1"}
    naive = {**good, "ts": "2026-11-21T01:00:00"}
    assert error_locs(client.post("/movements", json={"movements": [good, naive]})) == [
        ["body", "movements", 1, "ts"]
    ]
    nan = b'{"movements": [{"ts": "2026-11-21T01:00:00Z", "location": "A-01", "sku": "x",'
    nan += b' "qty_delta": NaN, "user": "ann", "doc": "", "movement_id": "M-1"}]}'
    response = client.post("/movements", content=nan, headers={"content-type": "application/json"})
    assert error_locs(response) == [["body", "movements", 0, "qty_delta"]]
    assert store.movements() == []
    assert error_locs(client.post("/movements", json={"movements": [good, good]})) == [
        ["body", "movements", 1, "movement_id"]
    ]
    no_id = {k: v for k, v in good.items() if k != "movement_id"}
    assert error_locs(client.post("/movements", json={"movements": [no_id]})) == [
        ["body", "movements", 0, "movement_id"]
    ]
    assert store.movements() == []
    nothing = {"added": 0, "already_imported": 0}
    assert client.post("/movements", json={"movements": []}).json() == nothing


# -- book snapshots ------------------------------------------------------------------------------


def test_book_snapshot_replaces_the_book(store: Store) -> None:
    engine, _ = flagged(store)
    client = api_client(engine)
    lines = [
        {"location": "B-01", "sku": SKU_A, "qty": 3, "unit_cost": 2.5, "abc": "a"},
        {"location": "B-01", "sku": SKU_B, "qty": 0, "unit_cost": 0, "abc": "C"},
        {"location": "B-02", "sku": SKU_A, "qty": 2.0, "unit_cost": 2.5, "abc": "B"},
    ]
    body = {"snapshot_at": "2026-11-22T23:00:00+01:00", "source": "wms-export", "lines": lines}
    refused = client.post("/book", json=body)  # every current record would go
    assert refused.status_code == 409
    assert "would remove 3 of the 3 current records" in refused.json()["detail"]
    assert store.book_snapshot_at() == SNAPSHOT
    answer = client.post("/book", json=body | {"confirm": True}).json()
    assert answer == {
        "applied": True,
        "records": 3,
        "added": {"records": 3, "value": 12.5},
        "changed": {"records": 0, "value": 0.0},
        "removed": {"records": 3, "value": 78.0},
        "unchanged": 0,
        "net_value": -65.5,
    }
    assert sorted(store.book_lines(), key=lambda b: (b.location, b.sku)) == [
        BookLine("B-01", SKU_A, 3, 2.5, AbcClass.A),
        BookLine("B-01", SKU_B, 0, 0, AbcClass.C),
        BookLine("B-02", SKU_A, 2, 2.5, AbcClass.B),
    ]
    assert store.book_snapshot_at() == datetime(2026, 11, 22, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("index", "fields", "loc"),
    [
        (2, {"location": "A-01", "sku": SKU_A}, ["body", "lines", 2]),
        (1, {"qty": -1}, ["body", "lines", 1, "qty"]),
        (0, {"unit_cost": -0.5}, ["body", "lines", 0, "unit_cost"]),
        (1, {"qty": 1.5}, ["body", "lines", 1, "qty"]),
        (2, {"abc": "D"}, ["body", "lines", 2, "abc"]),
        (1, {"sku": ""}, ["body", "lines", 1, "sku"]),
        (0, {"colour": "red"}, ["body", "lines", 0, "colour"]),
    ],
)
def test_bad_snapshot_line_is_422_naming_the_line(
    store: Store, index: int, fields: dict[str, Any], loc: list[Any]
) -> None:
    engine, _ = flagged(store)
    client = api_client(engine)
    lines = [
        {"location": b.location, "sku": b.sku, "qty": b.qty, "unit_cost": b.unit_cost}
        | {"abc": b.abc.value}
        for b in BOOK
    ]
    lines[index] |= fields
    body = {"snapshot_at": "2026-11-22T23:00:00Z", "source": "x", "lines": lines}
    response = client.post("/book", json=body)
    assert error_locs(response) == [loc]
    if loc == ["body", "lines", 2]:
        assert (
            response.json()["detail"][0]["msg"]
            == f"A-01/{SKU_A} appears twice (lines[0] and lines[2])"
        )
    assert store.book_snapshot_at() == SNAPSHOT  # the book was not touched


def test_snapshot_without_a_zone_is_422_and_without_lines_409(store: Store) -> None:
    engine, _ = flagged(store)
    client = api_client(engine)
    line = {"location": "B-01", "sku": SKU_A, "qty": 3, "unit_cost": 2.5, "abc": "A"}
    naive = {"snapshot_at": "2026-11-22T23:00:00", "source": "x", "lines": [line]}
    assert error_locs(client.post("/book", json=naive)) == [["body", "snapshot_at"]]
    empty = {"snapshot_at": "2026-11-22T23:00:00Z", "source": "x", "lines": []}
    assert client.post("/book", json=empty).status_code == 409  # refused: an empty book
    assert store.book_snapshot_at() == SNAPSHOT
    allowed = client.post("/book", json=empty, params={"allow_empty": True, "confirm": True})
    assert allowed.json()["removed"]["records"] == len(BOOK)
    assert store.book_lines() == []


# -- errors --------------------------------------------------------------------------------------


def test_database_unavailable_is_503_json() -> None:
    never_migrated = Store(sa.create_engine("sqlite://"))
    engine = Engine(never_migrated, "s", TolerancePolicy())
    response = TestClient(create_app(engine)).get("/health")  # open: no sign-in
    assert (response.status_code, response.json()) == (503, {"detail": "database unavailable"})


def test_unexpected_error_is_500_json_without_a_traceback(store: Store) -> None:
    app = create_app(Engine(store, "s", TolerancePolicy()))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    client = TestClient(app, raise_server_exceptions=False, headers=bearer(store))
    response = client.get("/boom")
    assert (response.status_code, response.json()) == (500, {"detail": "internal error"})


# -- over real HTTP, in the event loop -------------------------------------------------------------


async def started(app: FastAPI, stopping: asyncio.Event) -> tuple[asyncio.Task[None], str]:
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_api(app, "127.0.0.1", 0, stopping, on_listening=bound.set_result), name="api"
    )
    port = await asyncio.wait_for(bound, 5)
    return task, f"http://127.0.0.1:{port}"


async def test_serve_api_on_port_0_decides_once_under_concurrent_approvals(store: Store) -> None:
    engine, ident = flagged(store)
    stopping = asyncio.Event()
    task, base = await started(create_app(engine), stopping)
    try:
        headers = bearer(store)
        async with httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as client:
            assert (await client.get("/health")).json()["open_discrepancies"] == 1
            url = f"/discrepancies/{ident}/approve"
            answers = await asyncio.gather(*(client.post(url, json=DECISION) for _ in range(5)))
            assert sorted(r.status_code for r in answers) == [200, 409, 409, 409, 409]
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)
    assert len(engine.pending_adjustments()) == 1
    assert len(approvals(store)) == 1
    with pytest.raises(httpx.ConnectError):
        await httpx.AsyncClient().get(f"{base}/health")


async def test_a_request_waiting_for_the_database_does_not_stall_the_loop(
    store: Store, tmp_path: Path
) -> None:
    engine, _ = flagged(store)
    inserting = threading.Event()

    def on_execute(*args: Any) -> None:
        if str(args[2]).startswith("INSERT INTO movements"):
            inserting.set()

    headers = bearer(store)  # before the write lock below
    sa.event.listen(store.engine, "before_cursor_execute", on_execute)
    writer = sqlite3.connect(tmp_path / "rec.sqlite3", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock: the upload waits for it
    stopping = asyncio.Event()
    task, base = await started(create_app(engine), stopping)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as client:
            move: dict[str, Any] = {"ts": "2026-11-21T01:00:00Z", "location": "A-01"}
            move |= {"sku": SKU_A}
            move |= {"qty_delta": -1, "user": "ann", "doc": "PICK-1", "movement_id": "M-1"}
            upload = asyncio.create_task(client.post("/movements", json={"movements": [move]}))
            assert await asyncio.to_thread(inserting.wait, 5)
            assert (await client.get("/health")).status_code == 200  # the loop still answers
            assert not upload.done()
            writer.execute("ROLLBACK")
            assert (await upload).json() == {"added": 1, "already_imported": 0}
    finally:
        writer.close()
        stopping.set()
        await asyncio.wait_for(task, 10)


async def test_serve_api_raises_when_the_port_is_taken(store: Store) -> None:
    app = create_app(Engine(store, "s", TolerancePolicy()))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="in use"):
            await serve_api(app, "127.0.0.1", taken.getsockname()[1], asyncio.Event())
