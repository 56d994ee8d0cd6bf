"""The Map and location pages' data: states from rows (pure), and from a real store.

The store tests run on SQLite and PostgreSQL with counts and decisions applied through the
real :class:`~reconciler.engine.Engine`: A-01 matches, A-02 awaits approval, A-03 was read
incompletely, A-04's difference was approved, A-05 was last counted ten days ago, A-06 waits
for a recount, B-01 is in the book only (no gateway reported it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edgecount import contract
from reconciler.console.location import CountLine, chart, location_view
from reconciler.console.map import (
    Facts,
    MapState,
    aisle_of,
    group,
    location_href,
    location_state,
    map_cells,
    natural_key,
    site_map,
)
from reconciler.engine import Engine
from reconciler.model import AbcClass, BookLine, Movement
from reconciler.queries import UNKNOWN_ZONE
from reconciler.rules import TolerancePolicy
from reconciler.store import Store

NOW = datetime.now(UTC).replace(microsecond=0)
SINCE = NOW - timedelta(days=7)
HOUR = timedelta(hours=1)
SKU_A, SKU_B = "80614141123458", "80614141123465"


# -- pure: codes, states, cells ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "aisle"),
    [
        ("A-01-02", "A-01"),
        ("Z1-03-12-2", "Z1-03"),
        ("A-01", "A"),
        ("R.4.7", "R.4"),
        ("BULK", "Z9"),
        ("-X", "Z9"),
    ],
)
def test_the_aisle_is_the_code_without_its_last_part_and_at_most_two_parts(
    code: str, aisle: str
) -> None:
    assert aisle_of(code, "Z9") == aisle


def test_codes_sort_naturally() -> None:
    codes = ["A-10", "A-2", "A-01-10", "A-01-9", "B-1"]
    assert sorted(codes, key=natural_key) == ["A-01-9", "A-01-10", "A-2", "A-10", "B-1"]


@pytest.mark.parametrize(
    ("facts", "state"),
    [
        (Facts(), MapState.NOT_SCANNED),
        (Facts(NOW - 8 * 24 * HOUR, NOW - 8 * 24 * HOUR), MapState.NOT_SCANNED),
        (Facts(NOW, NOW), MapState.MATCH),
        (Facts(NOW, NOW - HOUR), MapState.INCOMPLETE),
        (Facts(NOW, None), MapState.INCOMPLETE),
        # an open discrepancy wins over anything the counts say, however old they are
        (Facts(None, None, "awaiting_approval", NOW), MapState.AWAITING_APPROVAL),
        (Facts(NOW, NOW - HOUR, "recount_requested", NOW - HOUR), MapState.EXCEPTION),
        (Facts(NOW, NOW, "open", NOW), MapState.EXCEPTION),
        # a person's decision on the newest complete count: accepted, either way
        (Facts(NOW, NOW, "approved", NOW), MapState.ACCEPTED),
        (Facts(NOW, NOW, "rejected", NOW), MapState.ACCEPTED),
        # a complete count after the decided one opened nothing: within tolerance
        (Facts(NOW, NOW, "approved", NOW - HOUR), MapState.MATCH),
        (Facts(NOW, NOW, "resolved", NOW), MapState.MATCH),
        # a newer incomplete count, or none recent, hides the decision
        (Facts(NOW, NOW - HOUR, "approved", NOW - HOUR), MapState.INCOMPLETE),
        (Facts(NOW - 9 * 24 * HOUR, NOW - 9 * 24 * HOUR, "approved", NOW), MapState.NOT_SCANNED),
    ],
)
def test_location_state(facts: Facts, state: MapState) -> None:
    assert location_state(facts, SINCE) is state


def test_cells_know_every_location_once_sorted_with_its_zone() -> None:
    facts = {"A-02": Facts(NOW, NOW), "A-10": Facts(None, None, "awaiting_approval", NOW)}
    zones = {"A-02": "A", "A-10": "A"}
    cells = map_cells(["A-10", "A-02", "X-1", "A-02", "B-1"], zones, facts, SINCE)
    assert [(c.zone, c.aisle, c.location, c.state) for c in cells] == [
        ("A", "A", "A-02", MapState.MATCH),
        ("A", "A", "A-10", MapState.AWAITING_APPROVAL),
        (UNKNOWN_ZONE, "B", "B-1", MapState.NOT_SCANNED),
        (UNKNOWN_ZONE, "X", "X-1", MapState.NOT_SCANNED),
    ]


def test_grouping_counts_every_zone_and_draws_only_what_the_filters_keep() -> None:
    zones = {"A-01-01": "A", "A-01-02": "A", "A-02-01": "A", "B-01-01": "B"}
    facts = {"A-01-02": Facts(NOW, NOW), "B-01-01": Facts(NOW, NOW)}
    cells = map_cells(zones, zones, facts, SINCE)
    every = group(cells)
    assert [(z.name, [a.name for a in z.aisles], z.total) for z in every] == [
        ("A", ["A-01", "A-02"], 3),
        ("B", ["B-01"], 1),
    ]
    assert every[0].aisles[0].tiles == [
        ("/console/locations/A/A-01-01", "not_scanned", "A-01-01: not scanned"),
        ("/console/locations/A/A-01-02", "match", "A-01-02: match"),
    ]
    kept = group(cells, zone="A", state=MapState.MATCH)
    assert [(z.name, z.total, dict(z.states)) for z in kept] == [
        ("A", 1, {MapState.NOT_SCANNED: 2, MapState.MATCH: 1}),
        ("B", 0, {MapState.MATCH: 1}),
    ]


def test_a_location_s_path_quotes_its_parts() -> None:
    assert location_href("unknown", "R 1/2") == "/console/locations/unknown/R%201%2F2"


def _line(total: int, source: str, minutes: int, complete: bool = True) -> CountLine:
    return CountLine(
        msg_id=f"m{minutes}",
        observed_at=NOW + timedelta(minutes=minutes),
        source=source,
        scan_id="s",
        gateway="gw",
        complete=complete,
        items=(("S", total),),
        verdict="within tolerance",
    )


def test_the_chart_draws_oldest_left_scaled_to_the_largest_total() -> None:
    newest_first = [_line(5, "manual", 2), _line(10, "vision", 1), _line(0, "rfid", 0, False)]
    drawn = chart(newest_first)
    assert [b.source for b in drawn.bars] == ["rfid", "vision", "manual"]
    assert [b.x for b in drawn.bars] == sorted(b.x for b in drawn.bars)
    heights = [b.height for b in drawn.bars]
    assert heights[0] == 0
    assert heights[1] == pytest.approx(2 * heights[2])
    assert all(b.y + b.height == pytest.approx(drawn.height) for b in drawn.bars)
    assert drawn.top == 10
    assert drawn.sources == ["rfid", "vision", "manual"]
    assert "incomplete" in drawn.bars[0].title
    assert chart([]).bars == []


# -- from a store ----------------------------------------------------------------------------

BOOK = [
    *(BookLine(f"A-0{n}", SKU_A, 10, 5.0, AbcClass.A) for n in range(1, 7)),
    BookLine("B-01", SKU_B, 4, 2.5, AbcClass.B),
]


class Feed:
    """Counts into the store and the engine, as the service applies them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = Engine(store, "s", TolerancePolicy(), max_recounts=0)
        self.patient = Engine(store, "s", TolerancePolicy(), max_recounts=2)
        self.seq = 0

    def count(
        self,
        location: str,
        qty: int,
        at: datetime,
        *,
        complete: bool = True,
        source: str = "rfid",
        recounts: bool = False,
    ) -> contract.CountMessage:
        self.seq += 1
        fusion = None
        if source == "fused":
            figure = {"total": qty, "complete": complete}
            fusion = {"rfid": figure, "vision": figure, "disagreement": False}
            fusion["tolerance"] = {"abs": 0, "pct": 0.1}
        draft = contract.count_payload(
            gateway="gw-1", site="s", zone="A", location=location, scan_id=f"scan-{self.seq}",
            items=[{"sku": SKU_A, "qty": qty}], complete=complete, observed_at=at, source=source,
            fusion=fusion,
        )  # fmt: skip
        message = contract.CountMessage.from_payload(contract.with_sequence(draft, self.seq))
        assert self.store.record_count(message, at + timedelta(seconds=1))
        (self.patient if recounts else self.engine).on_count(message)
        return message


@pytest.fixture
def feed(any_store: Store) -> Feed:
    any_store.replace_book(BOOK, source="test", at=NOW - 20 * 24 * HOUR)
    fed = Feed(any_store)
    fed.count("A-01", 10, NOW - 2 * HOUR)
    fed.count("A-02", 7, NOW - 2 * HOUR)
    fed.count("A-03", 10, NOW - 3 * 24 * HOUR)
    fed.count("A-03", 4, NOW - 2 * HOUR, complete=False, source="vision")
    fed.count("A-04", 10, NOW - 26 * HOUR)  # a match, then a pick booked after it
    any_store.add_movements([Movement(NOW - 25 * HOUR, "A-04", SKU_A, -1, "bob", "PICK-1")])
    fed.count("A-04", 6, NOW - 2 * HOUR, source="fused")
    (item,) = [d for d in fed.engine.list_discrepancies() if d["location"] == "A-04"]
    fed.engine.decide(
        item["id"], approve=True, reason_code="MISCOUNT", approver="kim", note="shelf checked"
    )
    fed.count("A-05", 10, NOW - 10 * 24 * HOUR)
    fed.count("A-06", 3, NOW - HOUR, recounts=True)
    return fed


STATES = {
    "A-01": MapState.MATCH,
    "A-02": MapState.AWAITING_APPROVAL,
    "A-03": MapState.INCOMPLETE,
    "A-04": MapState.ACCEPTED,
    "A-05": MapState.NOT_SCANNED,
    "A-06": MapState.EXCEPTION,
    "B-01": MapState.NOT_SCANNED,
}


def test_the_site_map_from_the_store(feed: Feed) -> None:
    seen = site_map(feed.store)
    assert seen.zone_names == ["A", UNKNOWN_ZONE]
    assert {
        title.split(": ")[0]: state
        for z in seen.zones
        for a in z.aisles
        for _, state, title in a.tiles
    } == {location: state.value for location, state in STATES.items()}
    assert seen.legend == {
        MapState.MATCH: 1,
        MapState.EXCEPTION: 1,
        MapState.AWAITING_APPROVAL: 1,
        MapState.ACCEPTED: 1,
        MapState.INCOMPLETE: 1,
        MapState.NOT_SCANNED: 2,
    }
    assert seen.locations == 7


def test_the_window_and_the_filters(feed: Feed) -> None:
    wide = site_map(feed.store, days=30)  # A-05's count is recent enough now
    assert wide.legend[MapState.NOT_SCANNED] == 1
    assert wide.legend[MapState.MATCH] == 2
    zone_a = site_map(feed.store, zone="A", state=MapState.NOT_SCANNED)
    assert [z.name for z in zone_a.zones] == ["A"]
    assert [t for a in zone_a.zones[0].aisles for t in a.tiles] == [
        ("/console/locations/A/A-05", "not_scanned", "A-05: not scanned")
    ]
    assert sum(zone_a.legend.values()) == 6  # the legend counts the zone's every state
    assert zone_a.zone_names == ["A", UNKNOWN_ZONE]


def test_a_location_s_view(feed: Feed) -> None:
    view = location_view(feed.store, TolerancePolicy(), "A", "A-04")
    assert view is not None
    assert view.state is MapState.ACCEPTED
    assert [(c.source, c.total, c.verdict) for c in view.counts] == [
        ("fused", 6, "outside tolerance"),  # compared with the book of then: 9
        ("rfid", 10, "within tolerance"),
    ]
    # the book now follows the approved count: 10 - 1 picked - 3 adjusted
    assert [(b.sku, b.qty, b.unit_cost, b.abc) for b in view.book] == [(SKU_A, 6, 5.0, AbcClass.A)]
    (decided,) = view.discrepancies
    assert decided.state == "approved"
    assert decided.decision is not None
    assert (decided.decision.outcome, decided.decision.by, decided.decision.reason) == (
        "approved",
        "kim",
        "MISCOUNT",
    )
    assert decided.decision.note == "shelf checked"
    # the approval is the last good moment: its own adjustment is not "since"
    assert view.good_since == decided.closed_at
    assert view.movements == []


def test_movements_since_the_last_good_count(feed: Feed) -> None:
    feed.store.add_movements([Movement(NOW - HOUR, "A-01", SKU_A, 2, "ann", "GR-7")])
    view = location_view(feed.store, TolerancePolicy(), "A", "A-01")
    assert view is not None
    assert view.good_since == NOW - 2 * HOUR
    assert [(m.sku, m.qty_delta, m.doc) for m in view.movements] == [(SKU_A, 2, "GR-7")]
    incomplete = location_view(feed.store, TolerancePolicy(), "A", "A-03")
    assert incomplete is not None
    assert [c.verdict for c in incomplete.counts] == ["incomplete", "within tolerance"]
    assert incomplete.good_since == NOW - 3 * 24 * HOUR


def test_unknown_locations_and_zones_have_no_view(feed: Feed) -> None:
    policy = TolerancePolicy()
    assert location_view(feed.store, policy, "A", "Z-99") is None
    assert location_view(feed.store, policy, "B", "A-01") is None
    assert location_view(feed.store, policy, "A", "B-01") is None
    booked = location_view(feed.store, policy, UNKNOWN_ZONE, "B-01")
    assert booked is not None
    assert booked.counts == []
    assert booked.state is MapState.NOT_SCANNED
    assert [(b.sku, b.qty) for b in booked.book] == [(SKU_B, 4)]
