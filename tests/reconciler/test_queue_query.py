"""The discrepancy queue's reads on SQLite and PostgreSQL: value, class, filters, order, pages."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from reconciler import schema as t
from reconciler.auth.roles import Role
from reconciler.console.queue import PAGE_SIZE, parse_filters
from reconciler.console.queue_query import Filters, open_counts, open_zones, queue_page
from reconciler.engine import Engine
from reconciler.model import AbcClass, BookLine
from reconciler.rules import TolerancePolicy
from reconciler.store import Store
from reconciler.transitions import State
from tests.reconciler.apiclient import api_client

NOW = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
BOOK = [
    BookLine("A-01", "SA", 10, 5.0, AbcClass.A),
    BookLine("A-01", "SB", 4, 2.5, AbcClass.B),
    BookLine("A-02", "SB", 4, 2.5, AbcClass.B),
    BookLine("B-01", "SC", 8, 1.0, AbcClass.C),
    BookLine("B-01", "SB", 8, 1.0, AbcClass.C),  # SB is C here, B elsewhere
]


def line(sku: str, book: int, counted: int, value: float | None) -> dict[str, Any]:
    status = "unexpected" if book == 0 else "exception"
    diff = counted - book
    return {
        "sku": sku,
        "book_qty": book,
        "counted_qty": counted,
        "diff": diff,
        "diff_value": value,
        "status": status,
    }


def add(
    store: Store,
    location: str,
    lines: list[dict[str, Any]],
    *,
    state: str = "awaiting_approval",
    zone: str | None = None,
    n: int = 0,
) -> int:
    """A discrepancy row as the engine writes it; returns its id."""
    row = {
        "zone": zone or location[0],
        "location": location,
        "gateway": "gw-1",
        "state": state,
        "opened_at": NOW + timedelta(seconds=n),
        "updated_at": NOW + timedelta(seconds=n),
        "recounts": 0,
        "scan_id": "s1",
        "count_msg_id": f"m-{location}-{n}",
        "observed_at": NOW,
        "lines": lines,
        "announced": True,
    }
    with store.engine.begin() as conn:
        made = sa.insert(t.discrepancies).values(**row).returning(t.discrepancies.c.id)
        return int(conn.execute(made).scalar_one())


def page(store: Store, **filters: Any) -> tuple[list[tuple[str, float, str]], int]:
    with store.engine.connect() as conn:
        rows, total = queue_page(conn, Filters(**filters), PAGE_SIZE)
    return [(r.location, round(r.value, 2), r.abc) for r in rows], total


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)


def test_value_is_the_sum_of_absolute_line_values_and_class_the_highest(any_store: Store) -> None:
    any_store.replace_book(BOOK, source="test", at=NOW - timedelta(hours=4))
    add(any_store, "A-01", [line("SA", 10, 7, -15.0), line("SB", 4, 6, 5.0)])  # 20, A
    add(any_store, "A-02", [line("SB", 4, 0, -10.0), line("SZ", 0, 3, None)])  # 10, B; SZ unknown
    add(any_store, "B-01", [line("SB", 8, 9, 1.0)])  # SB is C at B-01
    add(any_store, "B-02", [line("SA", 0, 2, 10.0)])  # unexpected: SA's class elsewhere, A
    add(any_store, "B-03", [line("SZ", 0, 1, None)])  # known nowhere: C, worth 0
    add(any_store, "B-04", [])  # no line: worth 0, class C
    rows, total = page(any_store)
    assert total == 6
    assert rows == [
        ("A-01", 20.0, "A"),
        ("B-02", 10.0, "A"),
        ("A-02", 10.0, "B"),
        ("B-01", 1.0, "C"),
        ("B-04", 0.0, "C"),
        ("B-03", 0.0, "C"),
    ]  # equal values: the newest first


def test_filters_by_zone_class_state_and_minimum_value(any_store: Store) -> None:
    any_store.replace_book(BOOK, source="test", at=NOW - timedelta(hours=4))
    add(any_store, "A-01", [line("SA", 10, 7, -15.0)])
    add(any_store, "A-02", [line("SB", 4, 0, -10.0)])
    add(any_store, "B-01", [line("SC", 8, 5, -3.0)], state="recount_requested")
    closed = add(any_store, "A-01", [line("SA", 10, 9, -5.0)], state="approved", n=1)
    with any_store.engine.begin() as conn:
        conn.execute(
            sa.insert(t.decisions).values(
                discrepancy_id=closed, zone="A", location="A-01", outcome="approved",
                decided_by="ada", reason_code="THEFT", note="", at=NOW, payload={},
            )
        )  # fmt: skip
    assert page(any_store)[1] == 3  # open ones only
    assert page(any_store, zone="B")[0] == [("B-01", 3.0, "C")]
    assert page(any_store, abc=AbcClass.B)[0] == [("A-02", 10.0, "B")]
    assert page(any_store, min_value=10.0)[0] == [("A-01", 15.0, "A"), ("A-02", 10.0, "B")]
    assert page(any_store, state=State.RECOUNT_REQUESTED)[0] == [("B-01", 3.0, "C")]
    with any_store.engine.connect() as conn:
        rows, total = queue_page(conn, Filters(state=State.APPROVED), PAGE_SIZE)
        assert total == 1
        assert rows[0].ending is not None
        assert (rows[0].ending.by, rows[0].ending.reason) == ("ada", "THEFT")
        assert open_counts(conn, Filters()) == {
            "open": 0,
            "recount_requested": 1,
            "awaiting_approval": 2,
        }
        assert open_counts(conn, Filters(min_value=10.0, zone="A"))["awaiting_approval"] == 2
        assert open_counts(conn, Filters(abc=AbcClass.C))["awaiting_approval"] == 0
        assert open_zones(conn) == ["A", "B"]


def test_pages_of_a_long_queue_are_one_statement_each(any_store: Store) -> None:
    any_store.replace_book(BOOK, source="test", at=NOW - timedelta(hours=4))
    for n in range(250):
        add(any_store, f"A-{n:03d}", [line("SA", 10, 9, -float(n + 1))], n=n)
    with statements(any_store) as seen:
        first, total = page(any_store)
    assert len(seen) == 1
    assert total == 250
    assert [r[1] for r in first[:3]] == [250.0, 249.0, 248.0]
    third, total = page(any_store, page=3)
    assert (len(third), total) == (50, 250)
    assert third[-1] == ("A-000", 1.0, "A")
    past, total = page(any_store, page=4)
    assert (past, total) == ([], 250)


def test_five_thousand_open_discrepancies_answer_quickly(any_store: Store) -> None:
    books = [BookLine(f"L-{n:05d}", f"S{k}", 10, 1.0 + k, AbcClass("ABC"[k])) for n in range(5000)
             for k in range(3)]  # fmt: skip
    any_store.replace_book(books, source="test", at=NOW - timedelta(hours=4))
    rows = [
        {
            "zone": "L", "location": f"L-{n:05d}", "gateway": "gw-1", "state": "awaiting_approval",
            "opened_at": NOW, "updated_at": NOW, "recounts": 0, "scan_id": "s1",
            "count_msg_id": f"m{n}", "observed_at": NOW, "announced": True,
            "lines": [line("S1", 10, 7, -3.0 * (n % 97)), line("S2", 10, 9, -(n % 13) * 1.0)],
        }
        for n in range(5000)
    ]  # fmt: skip
    with any_store.engine.begin() as conn:
        conn.execute(sa.insert(t.discrepancies), rows)
    started = time.perf_counter()
    first, total = page(any_store, abc=AbcClass.B)
    took = time.perf_counter() - started
    assert (len(first), total) == (PAGE_SIZE, 5000)
    assert first[0][1] == 96 * 3 + 12  # n = 1164: 288 + 12
    assert took < 3.0, f"{took:.2f} s for one page of 5,000"
    engine = Engine(any_store, "s", TolerancePolicy())
    client = api_client(engine, "vic", Role.VIEWER)
    started = time.perf_counter()
    answer = client.get("/console/discrepancies?page=2")
    took = time.perf_counter() - started
    assert answer.status_code == 200
    assert "100 of 5,000 discrepancies (rows 101 to 200)" in answer.text
    assert answer.text.count('<tr data-id="') == PAGE_SIZE
    assert took < 5.0, f"{took:.2f} s for the page"
    assert "data-decide" not in answer.text  # a viewer decides nothing
    assert "Approve selected" not in answer.text


def test_bad_filters_are_named() -> None:
    _, errors = parse_filters({"state": "closed", "abc": "D", "min_value": "-1", "page": "1.5"})
    assert [e.split(":")[0] for e in errors] == ["abc", "state", "min_value", "page"]
    filters, errors = parse_filters({"zone": " A ", "abc": "b", "min_value": "12.5", "page": "2"})
    assert errors == []
    assert filters == Filters("A", AbcClass.B, None, 12.5, 2)
    assert parse_filters({"min_value": "nan"})[1] == [
        "min_value: 'nan' is not a number of at least 0"
    ]
