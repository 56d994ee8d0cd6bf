"""Report and planning queries on a store filled through the real Store and Engine API.

Every test runs on SQLite and on a fresh PostgreSQL database. The warehouse (:func:`fill`):

* book snapshot three days ago at 22:00; zone A holds A-01..A-05 (A-05 empty in the book),
  B-01 is in the book but no gateway ever reported it;
* scan s1 (incomplete, 10 min): A-01 counted before a pick, A-02 counted twice (the second
  count with one unit over and an unexpected SKU; its discrepancy approved), A-03 not
  counted (a movement after the snapshot), A-04 read incompletely;
* scan s2 (completed) a day later: A-01 again, after the pick; scan s3 still running.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from edgecount import contract
from reconciler.engine import Engine
from reconciler.metrics import summarize
from reconciler.model import AbcClass, BookLine, Movement, Row
from reconciler.plan import PlanInput
from reconciler.queries import (
    UNKNOWN_ZONE,
    Covered,
    adjustments_value,
    compare_selections,
    coverage,
    get_scan,
    plan_inputs,
    scan_selections,
    since_selection,
    trend_scans,
    zone_locations,
    zone_selection,
)
from reconciler.rules import TolerancePolicy
from reconciler.store import Store

SKU_A, SKU_B, SKU_C = "80614141123458", "80614141123465", "80614141123472"

# Relative to now: the engine stamps discrepancies and adjustments with the real clock.
NOW = datetime.now(UTC).replace(microsecond=0)
SNAPSHOT = (NOW - timedelta(days=3)).replace(hour=22, minute=0, second=0)
T0 = SNAPSHOT + timedelta(hours=4)  # scan s1
T1 = T0 + timedelta(days=1)  # scan s2
ZONE_A = ["A-01", "A-02", "A-03", "A-04", "A-05"]

BOOK = [
    BookLine("A-01", SKU_A, 10, 2.0, AbcClass.A),
    BookLine("A-01", SKU_B, 5, 10.0, AbcClass.B),
    BookLine("A-02", SKU_A, 4, 2.0, AbcClass.A),
    BookLine("A-03", SKU_B, 8, 10.0, AbcClass.B),
    BookLine("A-04", SKU_C, 3, 1.0, AbcClass.C),
    BookLine("B-01", SKU_C, 20, 1.0, AbcClass.C),
]
MOVES = [
    Movement(SNAPSHOT - timedelta(hours=1), "B-01", SKU_C, 5, "ann", "RCV-0"),  # in the snapshot
    Movement(SNAPSHOT + timedelta(hours=1), "A-03", SKU_B, -2, "ann", "PICK-1"),
    Movement(T0 + timedelta(minutes=30), "A-01", SKU_A, -3, "bob", "PICK-2"),  # after its count
    Movement(T0 + timedelta(hours=2), "A-02", SKU_A, 1, "bob", "PUT-3"),  # after its count
]


@pytest.fixture
def store(any_store: Store) -> Store:
    """The store of each test: SQLite and PostgreSQL (see conftest.py)."""
    return any_store


@dataclass
class World:
    """What :func:`fill` stored, for the tests to refer to."""

    site: str
    counts: dict[str, contract.CountMessage] = field(default_factory=dict)  # name -> count
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


def _count(
    world: World, store: Store, name: str, scan: str, location: str, items: dict[str, int], *,
    at: datetime, complete: bool = True,
) -> None:  # fmt: skip
    draft = contract.count_payload(
        gateway="gw-1",
        site=world.site,
        zone="A",
        location=location,
        scan_id=scan,
        items=[{"sku": sku, "qty": qty} for sku, qty in items.items()],
        complete=complete,
        observed_at=at,
    )
    message = contract.CountMessage.from_payload(contract.with_sequence(draft, world.next_seq()))
    assert store.record_count(message, at + timedelta(seconds=5))
    world.counts[name] = message


def _scan(
    world: World, store: Store, scan: str, state: str, locations: list[str], *,
    started: datetime, ended: datetime | None = None, incomplete: tuple[str, ...] = (),
) -> None:  # fmt: skip
    draft = contract.scan_payload(
        gateway="gw-1",
        site=world.site,
        zone="A",
        scan_id=scan,
        state=state,
        started_at=started,
        ended_at=ended,
        locations=locations,
        incomplete_locations=incomplete,
    )
    message = contract.ScanMessage.from_payload(contract.with_sequence(draft, world.next_seq()))
    assert store.record_scan(message, started)


def fill(store: Store, site: str = "s") -> World:
    """Store the warehouse of the module docstring; approve A-02's discrepancy."""
    world = World(site)
    store.replace_book(BOOK, source="test", at=SNAPSHOT)
    store.add_movements(MOVES)
    minute = timedelta(minutes=1)
    _scan(world, store, "s1", "started", ZONE_A, started=T0)
    _count(world, store, "a01", "s1", "A-01", {SKU_A: 10, SKU_B: 5}, at=T0 + minute)
    _count(world, store, "a02-first", "s1", "A-02", {SKU_A: 1}, at=T0 + 2 * minute)
    _count(world, store, "a02", "s1", "A-02", {SKU_A: 5, SKU_B: 2}, at=T0 + 3 * minute)
    _count(world, store, "a04", "s1", "A-04", {SKU_C: 1}, at=T0 + 4 * minute, complete=False)
    _scan(world, store, "s1", "incomplete", ZONE_A, started=T0, ended=T0 + 10 * minute,
          incomplete=("A-04",))  # fmt: skip
    _scan(world, store, "s2", "started", ["A-01"], started=T1)
    _count(world, store, "a01-again", "s2", "A-01", {SKU_A: 7, SKU_B: 5}, at=T1 + minute)
    _scan(world, store, "s2", "completed", ["A-01"], started=T1, ended=T1 + 5 * minute)
    _scan(world, store, "s3", "started", ["A-03"], started=T1 + timedelta(hours=2))
    engine = Engine(store, site, TolerancePolicy(), max_recounts=0)
    engine.on_count(world.counts["a02"])
    (item,) = engine.list_discrepancies()
    engine.decide(item["id"], approve=True, reason_code="MISCOUNT", approver="kim")
    return world


def table(rows: list[Row]) -> list[tuple[str, str, float, float | None, float, float, str]]:
    """Rows as the report CSV shows them (``diff_value`` rounded to cents)."""
    return [
        (r.location, r.sku, r.book_qty, r.counted_qty, r.diff, round(r.diff_value, 2), r.status)
        for r in rows
    ]


# Hand-computed: A-01 compared with the book before the pick (10, not 7); A-02's latest count
# of s1 (5 against 4: over 1 % for class A; SKU_B unexpected at 10.00 each); A-03 as of the
# scan's end (8 - 2); A-04 incomplete (never short); A-05 holds nothing and shows no row.
SCAN_S1 = [
    ("A-01", SKU_A, 10, 10, 0, 0.0, "match"),
    ("A-01", SKU_B, 5, 5, 0, 0.0, "match"),
    ("A-02", SKU_A, 4, 5, 1, 2.0, "over"),
    ("A-02", SKU_B, 0, 2, 2, 20.0, "unexpected"),
    ("A-03", SKU_B, 6, None, 0, 0.0, "not_scanned"),
    ("A-04", SKU_C, 3, 1, -2, -2.0, "incomplete"),
]
SCAN_S2 = [("A-01", SKU_A, 7, 7, 0, 0.0, "match"), ("A-01", SKU_B, 5, 5, 0, 0.0, "match")]
ZONE_ROWS = SCAN_S2 + SCAN_S1[2:]
# A period report after s1: the book as of NOW (before the approval's adjustment) of every
# stocked location no count of the period covered: A-02 4 + 1 put away, A-03 8 - 2, A-04, B-01.
SINCE_NOT_SCANNED = [
    ("A-02", SKU_A, 5, None, 0, 0.0, "not_scanned"),
    ("A-03", SKU_B, 6, None, 0, 0.0, "not_scanned"),
    ("A-04", SKU_C, 3, None, 0, 0.0, "not_scanned"),
    ("B-01", SKU_C, 20, None, 0, 0.0, "not_scanned"),
]


def test_scan_rows_use_the_latest_count_and_the_book_as_of_each_count(store: Store) -> None:
    world = fill(store)
    scan = get_scan(store, "s1")
    assert scan is not None
    assert (scan.state, scan.seconds, scan.incomplete_locations) == ("incomplete", 600, ["A-04"])
    (selection,) = scan_selections(store, [scan])
    assert [c.msg_id for c in selection.counts] == [
        world.counts[name].msg_id for name in ("a01", "a02", "a04")
    ]
    assert selection.unscanned == ["A-03", "A-05"]
    (rows,) = compare_selections(store, TolerancePolicy(), [selection])
    assert table(rows) == SCAN_S1
    # the same comparison as the engine's for each count
    engine = Engine(store, world.site, TolerancePolicy())
    for name in ("a01", "a02", "a04"):
        mine = [r for r in rows if r.location == world.counts[name].location]
        assert mine == engine.compare_count(world.counts[name])


def test_a_location_the_scan_says_is_incomplete_is_never_flagged(store: Store) -> None:
    fill(store)
    scan = get_scan(store, "s1")
    assert scan is not None
    # the scan lists A-01 as incomplete too: its complete count no longer counts as complete
    partial = replace(scan, incomplete_locations=["A-01", "A-03"])
    (selection,) = scan_selections(store, [partial])
    (rows,) = compare_selections(store, TolerancePolicy(), [selection])
    statuses = {(r.location, r.sku): r.status.value for r in rows}
    assert statuses[("A-01", SKU_A)] == "incomplete"
    assert statuses[("A-03", SKU_B)] == "incomplete"  # unscanned, but begun: not not_scanned


def test_zone_rows_take_the_latest_count_of_each_location(store: Store) -> None:
    fill(store)
    selection = zone_selection(store, "A", NOW)
    assert selection is not None
    assert selection.unscanned == ["A-03", "A-05"]
    (rows,) = compare_selections(store, TolerancePolicy(), [selection])
    assert table(rows) == ZONE_ROWS
    assert zone_selection(store, "nowhere", NOW) is None
    assert zone_locations(store, ["A", "nowhere"]) == {"A": ZONE_A}


def test_since_takes_counts_observed_since_then(store: Store) -> None:
    fill(store)
    selection = since_selection(store, T0 + timedelta(hours=12), NOW)
    assert [c.location for c in selection.counts] == ["A-01"]
    # every other location whose book holds stock at the end of the period (A-05 holds none)
    assert selection.unscanned == ["A-02", "A-03", "A-04", "B-01"]
    (rows,) = compare_selections(store, TolerancePolicy(), [selection])
    assert table(rows) == SCAN_S2 + SINCE_NOT_SCANNED
    everything = since_selection(store, SNAPSHOT, NOW)
    assert [c.location for c in everything.counts] == ["A-01", "A-02", "A-04"]
    assert everything.unscanned == ["A-03", "B-01"]
    assert since_selection(store, NOW, NOW).counts == []


def test_since_report_coverage_by_hand(store: Store) -> None:
    fill(store)
    (rows,) = compare_selections(
        store, TolerancePolicy(), [since_selection(store, T0 + timedelta(hours=12), NOW)]
    )
    summary = summarize(rows)
    # in the book at NOW, B-01; only A-01 counted (in s2)
    assert (summary.locations_counted, summary.locations_in_book) == (1, 5)
    assert summary.location_coverage == pytest.approx(1 / 5)
    # A-01 as of its count: 7 * 2.00 + 5 * 10.00 = 64.00 of 64 + A-02 5 * 2.00 + A-03 6 *
    # 10.00 + A-04 3 * 1.00 + B-01 20 * 1.00 = 157.00
    assert summary.book_value_counted == pytest.approx(64.0)
    assert summary.book_value == pytest.approx(157.0)
    assert summary.value_coverage == pytest.approx(64 / 157)
    assert (summary.records_counted, summary.ira) == (2, 1.0)  # not_scanned rows: not counted


def test_a_complete_count_covers_a_location_a_later_partial_read_does_not(store: Store) -> None:
    world = fill(store)
    later, minute = T1 + timedelta(hours=3), timedelta(minutes=1)
    # A-01 read again, in part: its complete count of s2 still covers it
    _count(world, store, "a01-part", "s4", "A-01", {SKU_A: 1}, at=later, complete=False)
    # A-03 only read in part in the period: its rows are incomplete, not covered
    _count(world, store, "a03-part", "s4", "A-03", {SKU_B: 2}, at=later, complete=False)
    # and within scan s2 itself, a partial read after its complete count
    _count(world, store, "a01-s2-part", "s2", "A-01", {SKU_A: 2}, at=T1 + 2 * minute,
           complete=False)  # fmt: skip
    s2 = get_scan(store, "s2")
    assert s2 is not None
    (in_s2,) = scan_selections(store, [s2])
    assert [c.msg_id for c in in_s2.counts] == [world.counts["a01-again"].msg_id]
    selection = since_selection(store, T1, NOW)
    chosen = {c.location: c.msg_id for c in selection.counts}
    assert chosen == {"A-01": world.counts["a01-again"].msg_id,
                      "A-03": world.counts["a03-part"].msg_id}  # fmt: skip
    (rows,) = compare_selections(store, TolerancePolicy(), [selection])
    assert [r for r in table(rows) if r[0] == "A-03"] == [
        ("A-03", SKU_B, 6, 2, -4, -40.0, "incomplete")
    ]
    summary = summarize(rows)
    assert (summary.locations_counted, summary.locations_in_book) == (1, 5)
    zone = zone_selection(store, "A", NOW)
    assert zone is not None
    assert {c.location: c.complete for c in zone.counts}["A-01"]  # the zone report agrees


def test_unknown_zone_lists_book_locations_no_gateway_reported(store: Store) -> None:
    fill(store)
    selection = zone_selection(store, UNKNOWN_ZONE, NOW)
    assert selection is not None
    assert (selection.counts, selection.unscanned) == ([], ["B-01"])
    (rows,) = compare_selections(store, TolerancePolicy(), [selection])
    assert table(rows) == [SINCE_NOT_SCANNED[-1]]
    assert summarize(rows).location_coverage == 0.0


def test_an_empty_location_counted_empty_is_no_record(store: Store) -> None:
    world = fill(store)
    # nothing in the book; the gateway reports a SKU with 0 (a camera's planogram slot)
    _count(world, store, "a05", "s4", "A-05", {SKU_A: 0}, at=T1 + timedelta(hours=3))
    selection = since_selection(store, T1, NOW)
    assert "A-05" in {c.location for c in selection.counts}
    (rows,) = compare_selections(store, TolerancePolicy(), [selection])
    assert "A-05" not in {r.location for r in rows}
    assert summarize(rows).records_counted == 2  # A-01's two records only


def test_trend_is_ended_scans_of_the_zone_oldest_first(store: Store) -> None:
    fill(store)
    scans = trend_scans(store, ["A"])
    assert [s.scan_id for s in scans] == ["s1", "s2"]  # s3 still runs
    assert [s.scan_id for s in trend_scans(store, ["A"], limit=1)] == ["s2"]
    assert [s.scan_id for s in trend_scans(store, ["A"], until=T0)] == ["s1"]
    assert [s.scan_id for s in trend_scans(store, ["A"], since=T1)] == ["s2"]
    assert trend_scans(store, ["B"]) == []
    s1, s2 = compare_selections(store, TolerancePolicy(), scan_selections(store, scans))
    assert (table(s1), table(s2)) == (SCAN_S1, SCAN_S2)


def test_adjustments_value_counts_approved_adjustments_of_the_counts_shown(store: Store) -> None:
    world = fill(store)
    assert adjustments_value(store, [world.counts["a02"].msg_id]) == pytest.approx(22.0)
    assert adjustments_value(store, [world.counts["a01"].msg_id]) == 0.0
    assert adjustments_value(store, []) == 0.0


def test_plan_inputs_from_the_store(store: Store) -> None:
    fill(store)
    assert coverage(store)["A-05"] == Covered("A", "gw-1")
    inputs = {i.location: i for i in plan_inputs(store, NOW.date())}
    assert inputs == {
        # counted last in s2; the pick was before that count
        "A-01": PlanInput("A-01", "A", AbcClass.A, 70.0, T1.date(), 0, 0),
        # one put-away after its count (the adjustment's own posting does not count); the
        # approved discrepancy is a past exception
        "A-02": PlanInput("A-02", "A", AbcClass.A, 8.0, (T0 + timedelta(minutes=3)).date(), 1, 1),
        # never counted: movements since the snapshot
        "A-03": PlanInput("A-03", "A", AbcClass.B, 80.0, None, 1, 0),
        # only an incomplete count: never counted
        "A-04": PlanInput("A-04", "A", AbcClass.C, 3.0, None, 0, 0),
        # reported by a gateway, empty in the book
        "A-05": PlanInput("A-05", "A", AbcClass.C, 0.0, None, 0, 0),
        # in the book, never reported; its movement predates the snapshot
        "B-01": PlanInput("B-01", UNKNOWN_ZONE, AbcClass.C, 20.0, None, 0, 0),
    }
    later = {i.location: i for i in plan_inputs(store, NOW.date() + timedelta(days=92))}
    assert later["A-02"].past_exceptions == 0  # out of the 90-day window


def test_empty_store_gives_nothing(store: Store) -> None:
    assert plan_inputs(store, NOW.date()) == []
    assert get_scan(store, "s1") is None
    assert compare_selections(store, TolerancePolicy(), [since_selection(store, NOW)]) == [[]]
    assert zone_selection(store, UNKNOWN_ZONE, NOW) is None
