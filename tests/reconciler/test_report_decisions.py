"""Decisions and accepted differences in reports, on a store filled through the real Engine.

Every test runs on SQLite and on a fresh PostgreSQL database, on the warehouse of
:func:`tests.reconciler.test_queries.fill` (A-03 holds 6 of SKU_B at T1; A-02's discrepancy
was approved by kim with ``MISCOUNT``).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from reconciler import schema as t
from reconciler.cli_report import build_report
from reconciler.engine import Engine
from reconciler.queries import compare_selections, get_scan, scan_selections
from reconciler.report import Decision, render_csv, render_html
from reconciler.report_decisions import row_decisions
from reconciler.rules import TolerancePolicy
from reconciler.store import Store
from tests.reconciler.test_queries import (
    SKU_A,
    SKU_B,
    T1,
    World,
    _count,
    _scan,
    fill,
    store,  # noqa: F401 - the fixture
)
from tests.reconciler.test_report import heat_cells, parse_page

POLICY = TolerancePolicy()
LATER = T1 + timedelta(hours=1)


def _count_in_scan(
    world: World, db: Store, name: str, scan: str, items: dict[str, int], at: datetime
) -> None:
    """A completed scan of A-03 holding one count."""
    _scan(world, db, scan, "started", ["A-03"], started=at)
    _count(world, db, name, scan, "A-03", items, at=at)
    _scan(world, db, scan, "completed", ["A-03"], started=at, ended=at + timedelta(minutes=1))


def _scan_rows_and_decisions(db: Store, scan_id: str) -> dict[tuple[str, str], Decision]:
    found = get_scan(db, scan_id)
    assert found is not None
    (selection,) = scan_selections(db, [found])
    (rows,) = compare_selections(db, POLICY, [selection])
    return row_decisions(db, selection.counts, rows)


def _pending(engine: Engine) -> int:
    (item,) = [d for d in engine.list_discrepancies() if d["state"] == "awaiting_approval"]
    return int(item["id"])


def test_a_recounted_exception_shows_the_decision_of_its_discrepancy(store: Store) -> None:  # noqa: F811
    world = fill(store)
    engine = Engine(store, world.site, POLICY, max_recounts=1)
    # A-03 short (4 of 6): a recount is asked; the recount is short again and waits
    _count_in_scan(world, store, "a03", "s5", {SKU_B: 4}, LATER)
    engine.on_count(world.counts["a03"])
    _count_in_scan(world, store, "a03-recount", "s6", {SKU_B: 3}, LATER + timedelta(minutes=10))
    engine.on_count(world.counts["a03-recount"])
    engine.decide(_pending(engine), approve=True, reason_code="SHRINK", approver="ann")
    approved = Decision("approved", "ann", "SHRINK")
    # s6's count is the discrepancy's count_msg_id; s5's count was replaced by the recount
    assert _scan_rows_and_decisions(store, "s6") == {("A-03", SKU_B): approved}
    assert _scan_rows_and_decisions(store, "s5") == {("A-03", SKU_B): approved}
    # scan s1: A-02's approval (its over and unexpected rows); A-01, A-04 have none
    kim = Decision("approved", "kim", "MISCOUNT")
    assert _scan_rows_and_decisions(store, "s1") == {("A-02", SKU_A): kim, ("A-02", SKU_B): kim}


def test_an_open_discrepancy_has_no_decision(store: Store) -> None:  # noqa: F811
    world = fill(store)
    engine = Engine(store, world.site, POLICY, max_recounts=0)
    _count_in_scan(world, store, "a03", "s5", {SKU_B: 4}, LATER)
    engine.on_count(world.counts["a03"])
    assert _pending(engine) > 0
    assert _scan_rows_and_decisions(store, "s5") == {}


def test_the_decisions_table_wins_over_approvals(store: Store) -> None:  # noqa: F811
    world = fill(store)
    engine = Engine(store, world.site, POLICY)
    (decided,) = engine.list_discrepancies(open_only=False)
    with store.engine.begin() as conn:
        conn.execute(
            t.decisions.insert().values(
                discrepancy_id=decided["id"],
                zone="A",
                location="A-02",
                outcome="approved",
                decided_by="kim@site",
                reason_code="MISCOUNT-2",
                note="",
                at=datetime.now(UTC),
                payload={},
            )
        )
    assert set(_scan_rows_and_decisions(store, "s1").values()) == {
        Decision("approved", "kim@site", "MISCOUNT-2")
    }


def _accepted_variance(db: Store, discrepancy_id: int, book: int, counted: int) -> None:
    """The record of a rejection, unless the engine wrote it already (the lead's change)."""
    av = t.accepted_variances
    with db.engine.begin() as conn:
        query = sa.select(sa.func.count()).where(av.c.discrepancy_id == discrepancy_id)
        if conn.execute(query).scalar_one():
            return
        conn.execute(
            av.insert().values(
                location="A-03",
                sku=SKU_B,
                book_qty=book,
                counted_qty=counted,
                discrepancy_id=discrepancy_id,
                reason_code="KNOWN_DAMAGE",
                decided_by="lee",
                decided_at=datetime.now(UTC),
            )
        )


def test_a_rejected_difference_counted_again_shows_as_accepted(store: Store) -> None:  # noqa: F811
    world = fill(store)
    engine = Engine(store, world.site, POLICY, max_recounts=0)
    _count_in_scan(world, store, "a03", "s5", {SKU_B: 4}, LATER)
    engine.on_count(world.counts["a03"])
    rejected = _pending(engine)
    engine.decide(rejected, approve=False, reason_code="KNOWN_DAMAGE", approver="lee")
    _accepted_variance(store, rejected, 6, 4)
    # a later scan counts the very same figure
    _count_in_scan(world, store, "a03-again", "s6", {SKU_B: 4}, LATER + timedelta(hours=12))
    data = build_report(store, POLICY, since=LATER + timedelta(hours=1))
    (row,) = [r for r in data.rows if r.location == "A-03"]
    assert (row.status.value, row.book_qty, row.counted_qty) == ("accepted", 6, 4)
    assert data.decisions[("A-03", SKU_B)] == Decision("rejected", "lee", "KNOWN_DAMAGE")
    assert data.summary.exceptions == 0
    assert data.summary.records_counted == 1  # A-01 was counted before the period
    (line,) = [r for r in csv.DictReader(io.StringIO(render_csv(data))) if r["location"] == "A-03"]
    assert (line["status"], line["decision"], line["decided_by"], line["reason"]) == (
        "accepted",
        "rejected",
        "lee",
        "KNOWN_DAMAGE",
    )
    assert heat_cells(parse_page(render_html(data)))["A-03"] == "hm-acc"
    # a different figure is an exception again
    _count_in_scan(world, store, "a03-other", "s7", {SKU_B: 3}, LATER + timedelta(hours=13))
    data = build_report(store, POLICY, since=LATER + timedelta(hours=1))
    assert [r.status.value for r in data.rows if r.location == "A-03"] == ["short"]


def test_an_empty_location_counted_empty_shows_no_record(store: Store) -> None:  # noqa: F811
    world = fill(store)
    # nothing in the book; the gateway reports a SKU with 0 (a camera's planogram slot)
    _count(world, store, "a05", "s4", "A-05", {SKU_A: 0}, at=LATER)
    data = build_report(store, POLICY, since=T1)
    assert "A-05" not in {r.location for r in data.rows}
    assert data.summary.records_counted == 2  # A-01's two records only
    assert data.summary.ira == 1.0
    assert heat_cells(parse_page(render_html(data)))["A-05"] == "hm-empty"  # no records
