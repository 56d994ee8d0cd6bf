"""Every end of a discrepancy as a decision; accepted variances stay decided; cursor reads.

On SQLite and PostgreSQL (the engine and the REST API), and through the running service
with real Mosquitto (the decision and adjustment messages, each once, validated).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from edgecount import contract
from reconciler import schema as t
from reconciler.decisions import APPROVE_REASONS, REJECT_REASONS
from reconciler.engine import DecisionError, Engine
from reconciler.model import AbcClass, BookLine, Movement, Status
from reconciler.store import Store
from tests.conftest import BrokerAddress, RecorderFactory
from tests.reconciler.apiclient import api_client
from tests.reconciler.test_service import (
    BOOK,
    SKU_A,
    SKU_B,
    SNAPSHOT,
    count,
    engine_on,
    publisher,
    run_service,
    states,
)


@pytest.fixture
def store(any_store: Store) -> Store:
    """SQLite and PostgreSQL (see conftest.py)."""
    return any_store


LATER = SNAPSHOT + timedelta(days=1)


def awaiting(engine: Engine, items: dict[str, int], location: str = "A-01", seq: int = 1) -> int:
    """Flag ``location`` with ``items`` through all its recounts; returns the discrepancy id."""
    for attempt in range(engine.max_recounts + 1):
        engine.on_count(count("s", location, items, seq=seq + attempt, scan=f"s{seq + attempt}"))
    (item,) = [d for d in engine.list_discrepancies() if d["location"] == location]
    assert item["state"] == "awaiting_approval"
    return int(item["id"])


def decisions_of(engine: Engine) -> list[dict[str, Any]]:
    """The decision payloads waiting to be published, each validated against the contract."""
    payloads = []
    for _, out in engine.pending_decisions():
        assert out.topic == "edgecount/v1/s/decision"
        assert isinstance(out.message, contract.DecisionMessage)
        payload = out.message.to_payload()
        contract.validate(payload)
        payloads.append(payload)
    return payloads


def test_approval_is_a_decision_with_its_adjustments(store: Store) -> None:
    engine = engine_on(store, "s")
    number = awaiting(engine, {SKU_A: 6, SKU_B: 5})
    engine.decide(number, approve=True, reason_code="BOOK_ERROR", approver="kim", note="bin swap")
    (decision,) = decisions_of(engine)
    assert {k: decision[k] for k in ("discrepancy_id", "outcome", "by", "reason", "note")} == {
        "discrepancy_id": str(number),
        "outcome": "approved",
        "by": "kim",
        "reason": "BOOK_ERROR",
        "note": "bin swap",
    }
    assert decision["lines"] == [
        {
            "sku": SKU_A,
            "book_qty": 10,
            "counted_qty": 6,
            "diff": -4,
            "diff_value": -8.0,
            "status": "short",
        }
    ]
    (adjustment,) = [m.message for _, m in engine.pending_adjustments()]
    assert isinstance(adjustment, contract.AdjustmentMessage)
    assert decision["adjustments"] == [
        {"adjustment_id": adjustment.adjustment_id, "sku": SKU_A, "diff": -4, "diff_value": -8.0}
    ]
    assert all(isinstance(v, int) for v in (adjustment.book_qty, adjustment.diff))
    (row_id, _), *_ = engine.pending_decisions()
    engine.decision_published(row_id)
    assert engine.pending_decisions() == []
    assert engine.discrepancy(number)["decision"]["outcome"] == "approved"  # type: ignore[index]


def test_a_rejected_difference_is_not_flagged_again_until_something_changes(store: Store) -> None:
    engine = engine_on(store, "s")
    number = awaiting(engine, {SKU_A: 6, SKU_B: 5})
    engine.decide(number, approve=False, reason_code="ACCEPTED_VARIANCE", approver="kim")
    (decision,) = decisions_of(engine)
    assert (decision["outcome"], decision["reason"], "adjustments" in decision) == (
        "rejected",
        "ACCEPTED_VARIANCE",
        False,
    )
    # the next night counts the same: accepted, not flagged, no recount asked
    same = count("s", "A-01", {SKU_A: 6, SKU_B: 5}, seq=10, scan="n2", observed=LATER)
    assert [(r.sku, r.status) for r in engine.compare_count(same)] == [
        (SKU_A, Status.ACCEPTED),
        (SKU_B, Status.MATCH),
    ]
    assert engine.on_count(same) == []
    assert [s for _, s, _ in states(store)] == ["rejected"]
    # a different count of that SKU is a new difference: flagged again
    other = count("s", "A-01", {SKU_A: 5, SKU_B: 5}, seq=11, scan="n3", observed=LATER)
    assert [m.topic for m in engine.on_count(other)][-1] == "edgecount/v1/s/cmd/gw-1/scan"
    assert [s for _, s, _ in states(store)] == ["rejected", "recount_requested"]


def test_a_movement_after_the_rejection_ends_the_acceptance(store: Store) -> None:
    engine = engine_on(store, "s")
    number = awaiting(engine, {SKU_A: 6, SKU_B: 5})
    engine.decide(number, approve=False, reason_code="SCAN_ERROR", approver="kim")
    same = count("s", "A-01", {SKU_A: 6, SKU_B: 5}, seq=10, scan="n2", observed=LATER)
    assert engine.compare_count(same)[0].status is Status.ACCEPTED
    # +2 and -2: the book is the same again, but stock moved: a person looks again
    moved = datetime.now(UTC) + timedelta(seconds=1)
    store.add_movements(
        [
            Movement(moved, "A-01", SKU_A, 2, "ann", "RCV-9", "m-1"),
            Movement(moved, "A-01", SKU_A, -2, "ann", "PICK-9", "m-2"),
        ]
    )
    again = count("s", "A-01", {SKU_A: 6, SKU_B: 5}, seq=11, scan="n3", observed=moved)
    assert engine.compare_count(again)[0].status is Status.SHORT


def test_a_new_book_figure_ends_the_acceptance(store: Store) -> None:
    engine = engine_on(store, "s")
    number = awaiting(engine, {SKU_A: 6, SKU_B: 5})
    engine.decide(number, approve=False, reason_code="ACCEPTED_VARIANCE", approver="kim")
    # the WMS sends a new book in which A-01 holds 11 of SKU_A: 6 counted is a new difference
    lines = [b for b in BOOK if (b.location, b.sku) != ("A-01", SKU_A)]
    store.replace_book(
        [*lines, BookLine("A-01", SKU_A, 11, 2.0, AbcClass.A)], source="wms", at=SNAPSHOT
    )
    same = count("s", "A-01", {SKU_A: 6, SKU_B: 5}, seq=10, scan="n2", observed=LATER)
    assert engine.compare_count(same)[0].status is Status.SHORT


def test_a_good_count_resolves_and_says_so(store: Store) -> None:
    engine = engine_on(store, "s")
    engine.on_count(count("s", "A-02", {SKU_A: 9}, seq=1, scan="s1"))
    engine.on_count(count("s", "A-02", {SKU_A: 4}, seq=2, scan="s2"))
    (decision,) = decisions_of(engine)
    assert (decision["outcome"], decision["by"], decision["reason"], decision["scan_id"]) == (
        "resolved",
        "reconciler",
        "RECOUNT_MATCH",
        "s2",
    )
    assert decision["lines"][0]["counted_qty"] == 9  # what was flagged, not the good count


def test_a_different_count_supersedes_a_discrepancy_awaiting_approval(store: Store) -> None:
    engine = engine_on(store, "s")
    number = awaiting(engine, {SKU_A: 6, SKU_B: 5})
    # the same difference again: still the same discrepancy, still waiting
    engine.on_count(count("s", "A-01", {SKU_A: 6, SKU_B: 5}, seq=20, scan="n2", observed=LATER))
    assert [(s, r) for _, s, r in states(store)] == [("awaiting_approval", 2)]
    # a different one: the old ends superseded, a new one starts its recounts
    sent = engine.on_count(
        count("s", "A-01", {SKU_A: 3, SKU_B: 5}, seq=21, scan="n3", observed=LATER)
    )
    assert [m.topic for m in sent] == [
        "edgecount/v1/s/discrepancy/A/A-01",
        "edgecount/v1/s/cmd/gw-1/scan",
    ]
    assert [(s, r) for _, s, r in states(store)] == [("superseded", 2), ("recount_requested", 0)]
    (decision,) = decisions_of(engine)
    assert (decision["discrepancy_id"], decision["outcome"], decision["scan_id"]) == (
        str(number),
        "superseded",
        "n3",
    )
    with pytest.raises(DecisionError, match="superseded"):
        engine.decide(number, approve=True, reason_code="BOOK_ERROR", approver="kim")


def test_cursor_pages_and_the_book_over_rest(store: Store) -> None:
    engine = engine_on(store, "s")
    for n, location in enumerate(("A-01", "A-02")):
        number = awaiting(engine, {SKU_A: 1}, location=location, seq=10 * n + 1)
        engine.decide(number, approve=True, reason_code="BOOK_ERROR", approver="kim")
    client = api_client(engine)
    first = client.get("/decisions", params={"limit": 1}).json()
    assert (len(first["items"]), first["more"]) == (1, True)
    assert first["items"][0]["payload"]["location"] == "A-01"
    rest = client.get("/decisions", params={"after": first["next_after"]}).json()
    assert [i["payload"]["location"] for i in rest["items"]] == ["A-02"]
    assert rest["more"] is False
    for item in first["items"] + rest["items"]:
        contract.validate(item["payload"])
        assert item["published"] is False
    empty = client.get("/decisions", params={"after": rest["next_after"]}).json()
    assert empty == {"items": [], "next_after": rest["next_after"], "more": False}
    adjustments = client.get("/adjustments", params={"after": 0}).json()["items"]
    # A-01 book has both SKUs: counted {SKU_A: 1} is short of both; A-02 only SKU_A
    assert [(a["payload"]["location"], a["payload"]["sku"]) for a in adjustments] == [
        ("A-01", SKU_A),
        ("A-01", SKU_B),
        ("A-02", SKU_A),
    ]
    cursors = [a["cursor"] for a in adjustments]
    assert cursors == sorted(cursors)
    tail = client.get("/adjustments", params={"after": cursors[1]}).json()["items"]
    assert [a["cursor"] for a in tail] == cursors[2:]
    assert client.get("/adjustments", params={"limit": 0}).status_code == 422
    # the approvals are in the book: A-01 holds 1 of SKU_A and 0 of SKU_B now
    book = client.get("/book", params={"location": "A-01"}).json()
    assert [(ln["sku"], ln["qty"]) for ln in book["lines"]] == [(SKU_A, 1), (SKU_B, 0)]
    assert all(isinstance(ln["qty"], int) for ln in book["lines"])
    assert client.get("/book", params={"location": "nowhere"}).json()["lines"] == []
    assert client.get("/book").status_code == 422


def test_reason_codes_are_documented() -> None:
    assert "ACCEPTED_VARIANCE" in REJECT_REASONS
    assert "SCAN_ERROR" in REJECT_REASONS
    assert set(APPROVE_REASONS).isdisjoint(REJECT_REASONS)


async def test_service_publishes_each_decision_and_adjustment_once(
    store: Store, broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory
) -> None:
    root = f"edgecount/v1/{unique_site}"
    recorder = mqtt_recorder(broker, [f"{root}/decision", f"{root}/adjustment"])
    service, task = await run_service(store, broker, unique_site)
    send = publisher(broker)
    try:
        for seq in range(1, 4):  # flagged, recounted twice: awaiting approval
            wrong = count(unique_site, "A-01", {SKU_A: 6, SKU_B: 5}, seq=seq, scan=f"s{seq}")
            await asyncio.to_thread(
                send, f"{root}/count/A/A-01", contract.encode(wrong.to_payload())
            )
        await asyncio.wait_for(service.wait_until(lambda s: s.applied >= 3), 10)
        (item,) = service.engine.list_discrepancies()
        await asyncio.to_thread(
            service.engine.decide,
            item["id"],
            approve=True,
            reason_code="BOOK_ERROR",
            approver="kim",
        )
        decided = await recorder.await_for(1, f"{root}/decision")
        adjusted = await recorder.await_for(1, f"{root}/adjustment")
        await asyncio.wait_for(service.wait_until(lambda s: s.decisions_published >= 1), 10)
        assert decided[0].payload is not None
        assert adjusted[0].payload is not None
        assert (
            decided[0].payload["adjustments"][0]["adjustment_id"]
            == (adjusted[0].payload["adjustment_id"])
        )
        # acknowledged: nothing left for the store poller to send again
        await asyncio.wait_for(service.wait_until(lambda s: s.adjustments_published >= 1), 10)
        with store.engine.connect() as conn:
            waiting = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.decisions)
                .where(t.decisions.c.published_at.is_(None))
            ).scalar()
        assert waiting == 0
        assert len(recorder.matching(f"{root}/decision")) == 1
        assert len(recorder.matching(f"{root}/adjustment")) == 1
    finally:
        service.stopping.set()
        await asyncio.wait_for(task, 10)


def test_an_approved_unexpected_sku_keeps_its_cost_and_class(store: Store) -> None:
    engine = engine_on(store, "s")
    number = awaiting(engine, {SKU_A: 4, SKU_B: 3}, location="A-02")  # SKU_B: only A-01 has it
    engine.decide(number, approve=True, reason_code="BOOK_ERROR", approver="kim")
    book = api_client(engine).get("/book", params={"location": "A-02"}).json()
    assert [(ln["sku"], ln["qty"], ln["unit_cost"], ln["abc"]) for ln in book["lines"]] == [
        (SKU_A, 4, 2.0, "A"),
        (SKU_B, 3, 10.0, "B"),  # from A-01's line, not 0 and class C
    ]
