"""Movement import: idempotent on movement_id, all or nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from edgecount import contract
from reconciler.csvread import CsvImportError
from reconciler.engine import Engine
from reconciler.model import AbcClass, BookLine, Status
from reconciler.movement_import import import_movements, parse_movements
from reconciler.rules import TolerancePolicy
from reconciler.store import Store

EAN = "4006381333931"
GTIN = "04006381333931"
AT = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
LOG = (
    "Movement ID;Timestamp;Bin;EAN;Delta;Operator;Reference;Note\n"
    f"M-1;2026-11-21T01:00:00Z;A-01;{EAN};-2;ann;PICK-7;é\n"
    f"M-2;2026-11-21T02:00:00+01:00;A-01;{EAN};5;bo;PUT-3;\n"
    f"M-3;2026-11-21T03:00:00Z;A-02;{EAN};1;bo;PUT-4;\n"
).encode("cp1252")


def test_a_wms_log_is_read_with_aliases_and_gtin14() -> None:
    log = parse_movements(LOG, "moves.csv")
    assert (log.encoding, log.delimiter, log.ignored) == ("cp1252", ";", ("Note",))
    assert log.lines == [2, 3, 4]
    first = log.moves[0]
    assert (first.movement_id, first.sku, first.qty_delta, first.user, first.doc) == (
        "M-1",
        GTIN,
        -2,
        "ann",
        "PICK-7",
    )
    assert log.moves[1].ts == datetime(2026, 11, 21, 1, 0, tzinfo=UTC)


def test_every_bad_row_is_reported_and_ids_are_required() -> None:
    data = (
        b"movement_id,ts,location,sku,qty_delta\n"
        b"M-1,2026-11-21T01:00:00Z,A-01,x,1\n"
        b",2026-11-21T01:00:00Z,A-01,x,1\n"
        b"M-2,2026-11-21T01:00:00,A-01,x,1\n"
        b"M-3,yesterday,A-01,x,1.5\n"
        b"M-1,2026-11-21T01:00:00Z,A-01,x,1\n"
    )
    with pytest.raises(CsvImportError) as caught:
        parse_movements(data, "m.csv")
    assert [str(p) for p in caught.value.problems] == [
        "m.csv:3: movement_id: must not be empty",
        "m.csv:4: ts: no time zone (add Z or +01:00): '2026-11-21T01:00:00'",
        "m.csv:5: ts: not an ISO-8601 time: 'yesterday'",
        "m.csv:5: qty_delta: not a whole number of units: '1.5'",
        "m.csv:6: movement_id: M-1 appears twice (lines 2 and 6)",
    ]
    with pytest.raises(CsvImportError, match="missing column movement_id"):
        parse_movements(b"ts,location,sku,qty_delta,user,doc\n", "old.csv")


def count(location: str, qty: int, observed_at: datetime) -> contract.CountMessage:
    draft = contract.count_payload(
        gateway="gw-1",
        site="s",
        zone="A",
        location=location,
        scan_id="s1",
        items=[{"sku": GTIN, "qty": qty}],
        observed_at=observed_at,
    )
    return contract.CountMessage.from_payload(contract.with_sequence(draft, 1))


def test_importing_a_log_twice_applies_it_once(any_store: Store) -> None:
    any_store.replace_book([BookLine("A-01", GTIN, 10, 2.0, AbcClass.A)], source="b", at=AT)
    log = parse_movements(LOG, "moves.csv")
    first = import_movements(any_store, log.moves, source="moves.csv", lines=log.lines)
    assert first.summary("moves.csv") == "movements: 3 added, 0 already imported from moves.csv"
    again = import_movements(any_store, log.moves, source="moves.csv", lines=log.lines)
    assert (again.added, again.already) == (0, 3)
    assert len(any_store.movements()) == 3
    # the shelf holds 10 - 2 + 5 = 13: a count of 13 matches (it would be "over" by 3 if
    # the log had been applied twice)
    engine = Engine(any_store, "s", TolerancePolicy())
    (row,) = engine.compare_count(count("A-01", 13, AT + timedelta(hours=5)))
    assert (row.book_qty, row.status) == (13, Status.MATCH)


def test_the_same_id_with_other_content_is_an_error_and_nothing_applies(any_store: Store) -> None:
    log = parse_movements(LOG, "moves.csv")
    import_movements(any_store, log.moves[:1], source="moves.csv", lines=log.lines[:1])
    changed = LOG.replace(
        b"M-1;2026-11-21T01:00:00Z;A-01;" + EAN.encode() + b";-2",
        b"M-1;2026-11-21T01:00:00Z;A-01;" + EAN.encode() + b";-3",
    )
    log2 = parse_movements(changed, "moves2.csv")
    with pytest.raises(CsvImportError) as caught:
        import_movements(any_store, log2.moves, source="moves2.csv", lines=log2.lines)
    (problem,) = caught.value.problems
    assert str(problem).startswith(
        "moves2.csv:2: movement_id: M-1 was imported before with other content"
    )
    assert "qty_delta -2" in str(problem)
    assert "qty_delta -3" in str(problem)
    assert [m.movement_id for m in any_store.movements()] == ["M-1"]  # M-2, M-3 not applied


def test_two_imports_at_once_apply_the_log_once(any_store: Store) -> None:
    log = parse_movements(LOG, "moves.csv")
    start = threading.Barrier(4)
    results = []

    def run() -> None:
        start.wait()
        results.append(import_movements(any_store, log.moves, source="moves.csv"))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r.added for r in results) == [0, 0, 0, 3]
    assert len(any_store.movements()) == 3
