"""Tolerances, the book as of a moment, and count-versus-book comparison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from reconciler.model import AbcClass, BookLine, Movement, Row, Status
from reconciler.rules import Tolerance, TolerancePolicy, book_as_of, compare, compare_location

A, B, C = AbcClass.A, AbcClass.B, AbcClass.C
MATCH, OVER, SHORT = Status.MATCH, Status.OVER, Status.SHORT
UNEXPECTED, NOT_SCANNED, INCOMPLETE = Status.UNEXPECTED, Status.NOT_SCANNED, Status.INCOMPLETE
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def status_of(
    book_qty: int,
    counted: int,
    abc: AbcClass = A,
    policy: TolerancePolicy | None = None,
    unit_cost: float = 1.0,
) -> Status:
    """The status of one record S1 at L1 in a complete count."""
    line = BookLine("L1", "S1", book_qty, unit_cost, abc)
    rows = compare_location("L1", {"S1": line}, {"S1": counted}, True, policy or TolerancePolicy())
    assert len(rows) == 1
    return rows[0].status


# --------------------------------------------------------------------------- tolerance matrix

# Default policy: A ±1 %, B ±3 %, C ±5 %. Book 200: A admits 2 units, B 6, C 10.
DEFAULT_MATRIX = [
    # class, book, counted, expected            (why)
    (A, 200, 201, MATCH),  # over, inside (0.5 %)
    (A, 200, 202, MATCH),  # over, at the 1 % limit
    (A, 200, 203, OVER),  # over, outside (1.5 %)
    (A, 200, 199, MATCH),  # short, inside
    (A, 200, 198, MATCH),  # short, at
    (A, 200, 197, SHORT),  # short, outside
    (B, 200, 203, MATCH),
    (B, 200, 206, MATCH),
    (B, 200, 207, OVER),
    (B, 200, 197, MATCH),
    (B, 200, 194, MATCH),
    (B, 200, 193, SHORT),
    (C, 200, 205, MATCH),
    (C, 200, 210, MATCH),
    (C, 200, 211, OVER),
    (C, 200, 195, MATCH),
    (C, 200, 190, MATCH),
    (C, 200, 189, SHORT),
    # the same count, judged by class: 4 % over is fine only for C
    (A, 100, 104, OVER),
    (B, 100, 104, OVER),
    (C, 100, 104, MATCH),
    # limits that float arithmetic misses by a hair: 3 % of 700 is 21.000000000000004
    (B, 700, 721, MATCH),
    (B, 700, 679, MATCH),
    (B, 700, 722, OVER),
    (A, 300, 303, MATCH),  # 1 % of 300 = 3
    (A, 300, 297, MATCH),
    (A, 300, 304, OVER),
    # small stocks: 1 % of 50 is half a unit, so one unit off is out for A, in for C
    (A, 50, 49, SHORT),
    (C, 50, 49, MATCH),
    # book 0: a percentage of nothing admits nothing
    (A, 0, 0, MATCH),
    (C, 0, 1, UNEXPECTED),
    # a book line counted as 0 (or missing) is short by the whole book
    (C, 10, 0, SHORT),
]


@pytest.mark.parametrize(("abc", "book_qty", "counted", "expected"), DEFAULT_MATRIX)
def test_default_tolerance_matrix(
    abc: AbcClass, book_qty: int, counted: int, expected: Status
) -> None:
    assert status_of(book_qty, counted, abc) is expected


# Custom tolerances on class A; unit cost 60 unless given.
ABS_AND_VALUE = [
    # tolerance, book, counted, unit_cost, expected
    (Tolerance(abs_qty=2), 10, 12, 1, MATCH),  # 20 % over, but 2 units admitted
    (Tolerance(abs_qty=2), 10, 8, 1, MATCH),
    (Tolerance(abs_qty=2), 10, 13, 1, OVER),  # 3 units: neither abs nor % (0 %)
    (Tolerance(abs_qty=2, over_pct=50), 10, 15, 1, MATCH),  # abs fails, % admits
    (Tolerance(abs_qty=1.5), 2, 3, 1, MATCH),  # fractional abs_qty
    (Tolerance(abs_qty=1.5), 2, 4, 1, OVER),
    (Tolerance(over_pct=50, value=100), 10, 11, 60, MATCH),  # 60 <= 100
    (Tolerance(over_pct=50, value=120), 10, 12, 60, MATCH),  # 120 at the value limit
    (Tolerance(over_pct=50, value=100), 10, 12, 60, OVER),  # 20 % is fine, 120 is not
    (Tolerance(short_pct=50, value=100), 10, 8, 60, SHORT),
    (Tolerance(abs_qty=5, value=100), 10, 12, 60, OVER),  # value limit beats abs_qty
    (Tolerance(abs_qty=5, value=100), 10, 12, 40, MATCH),  # cheaper item: 80 <= 100
    (Tolerance(over_pct=100, short_pct=100, value=0), 10, 11, 0, MATCH),  # costless
    (Tolerance(over_pct=100), 10, 9, 1, SHORT),  # over_pct does not cover shorts
    (Tolerance(short_pct=100), 10, 11, 1, OVER),  # nor short_pct overs
    (Tolerance(abs_qty=5), 0, 3, 1, UNEXPECTED),  # no book: always unexpected
]


@pytest.mark.parametrize(("tol", "book_qty", "counted", "unit_cost", "expected"), ABS_AND_VALUE)
def test_abs_qty_and_value_limits(
    tol: Tolerance, book_qty: int, counted: int, unit_cost: float, expected: Status
) -> None:
    policy = TolerancePolicy(A=tol)
    assert status_of(book_qty, counted, A, policy, unit_cost) is expected


@pytest.mark.parametrize(
    ("tol", "diff", "book_qty", "expected"),
    [
        (Tolerance(over_pct=100, short_pct=100), 1, 0, False),  # book 0: % admits nothing
        (Tolerance(abs_qty=1), 1, 0, True),  # ... abs_qty does
        (Tolerance(abs_qty=1), 1.5, 0, False),
        (Tolerance(), 0, 0, True),  # diff 0 is always within
        (Tolerance(value=0), 0, 5, True),
        (Tolerance(over_pct=10), 1, 10, True),
        (Tolerance(over_pct=10), -1, 10, False),
    ],
)
def test_tolerance_admits(tol: Tolerance, diff: float, book_qty: float, expected: bool) -> None:
    assert tol.admits(diff, book_qty, unit_cost=1.0) is expected


@pytest.mark.parametrize(
    "bad",
    [{"over_pct": -1}, {"short_pct": -0.1}, {"abs_qty": -1}, {"value": -5}, {"over_pct": "nan"}],
)
def test_tolerance_rejects_negative_and_nan(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Tolerance.model_validate(bad)


def test_config_models_are_strict_and_frozen() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Tolerance.model_validate({"over_pc": 1})
    with pytest.raises(ValidationError, match="extra"):
        TolerancePolicy.model_validate({"D": {}})
    with pytest.raises(ValidationError):
        TolerancePolicy().A.over_pct = 5


def test_default_policy_is_the_textbook_programme() -> None:
    policy = TolerancePolicy()
    assert [(t.over_pct, t.short_pct) for t in (policy.A, policy.B, policy.C)] == [
        (1, 1),
        (3, 3),
        (5, 5),
    ]
    assert (policy.A.abs_qty, policy.A.value) == (None, None)


def test_policy_loads_from_config_dict() -> None:
    policy = TolerancePolicy.model_validate(
        {"A": {"over_pct": 0.5, "short_pct": 2, "value": 250}, "skus": {"S1": {"abs_qty": 3}}}
    )
    assert policy.A.model_dump() == {"over_pct": 0.5, "short_pct": 2, "abs_qty": None, "value": 250}
    assert (policy.B.over_pct, policy.B.short_pct) == (3, 3)
    assert policy.skus["S1"].abs_qty == 3


# --------------------------------------------------------------------------- precedence

# Book 100, counted 110 (10 % over): class A says over; the SKU override admits 10 %;
# the location override admits nothing.
PRECEDENCE_POLICY = TolerancePolicy(
    skus={"S1": Tolerance(over_pct=10)},
    locations={"L1": Tolerance(), "L9": Tolerance(over_pct=20)},
)


@pytest.mark.parametrize(
    ("location", "sku", "abc", "expected_tol", "expected_status"),
    [
        ("L2", "S2", A, PRECEDENCE_POLICY.A, OVER),  # class only
        ("L2", "S2", C, PRECEDENCE_POLICY.C, OVER),  # class C: 5 %
        ("L2", "S1", A, Tolerance(over_pct=10), MATCH),  # SKU beats class
        ("L1", "S1", A, Tolerance(), OVER),  # location beats SKU
        ("L9", "S2", A, Tolerance(over_pct=20), MATCH),  # location beats class
    ],
)
def test_override_precedence(
    location: str, sku: str, abc: AbcClass, expected_tol: Tolerance, expected_status: Status
) -> None:
    assert PRECEDENCE_POLICY.for_record(location, sku, abc) == expected_tol
    line = BookLine(location, sku, 100, 1.0, abc)
    rows = compare({(location, sku): line}, {location: ({sku: 110}, True)}, PRECEDENCE_POLICY)
    assert [r.status for r in rows] == [expected_status]


# --------------------------------------------------------------------------- properties

pcts = st.floats(0, 200, allow_nan=False)
optional_limit = st.none() | st.floats(0, 1000, allow_nan=False)
qtys = st.integers(0, 10_000)
costs = st.floats(0, 500, allow_nan=False)


@st.composite
def tolerances(draw: st.DrawFn) -> Tolerance:
    return Tolerance(
        over_pct=draw(pcts),
        short_pct=draw(pcts),
        abs_qty=draw(optional_limit),
        value=draw(optional_limit),
    )


@st.composite
def tighter(draw: st.DrawFn, tol: Tolerance) -> Tolerance:
    """A tolerance no looser than ``tol`` in any limit."""
    abs_qty = None if tol.abs_qty is None else draw(st.none() | st.floats(0, tol.abs_qty))
    value = draw(optional_limit) if tol.value is None else draw(st.floats(0, tol.value))
    return Tolerance(
        over_pct=draw(st.floats(0, tol.over_pct)),
        short_pct=draw(st.floats(0, tol.short_pct)),
        abs_qty=abs_qty,  # no allowance is tighter than any
        value=value,  # any limit is tighter than none
    )


@given(st.data(), tolerances(), qtys, qtys, costs, st.sampled_from(AbcClass))
def test_tightening_never_turns_an_exception_into_a_match(
    data: st.DataObject,
    loose: Tolerance,
    book_qty: int,
    counted: int,
    cost: float,
    abc: AbcClass,
) -> None:
    tight = data.draw(tighter(loose))
    loose_status = status_of(
        book_qty, counted, abc, TolerancePolicy(A=loose, B=loose, C=loose), cost
    )
    tight_status = status_of(
        book_qty, counted, abc, TolerancePolicy(A=tight, B=tight, C=tight), cost
    )
    if loose_status is not MATCH:
        assert tight_status is loose_status


@given(tolerances(), qtys, costs, st.sampled_from(AbcClass))
def test_equal_count_is_always_a_match(
    tol: Tolerance, qty: int, cost: float, abc: AbcClass
) -> None:
    policy = TolerancePolicy(A=tol, B=tol, C=tol)
    assert status_of(qty, qty, abc, policy, cost) is MATCH


@given(tolerances(), qtys.filter(lambda q: q > 0), qtys, costs)  # book held
def test_compare_agrees_with_tolerance_admits(
    tol: Tolerance, book_qty: int, counted: int, cost: float
) -> None:
    status = status_of(book_qty, counted, B, TolerancePolicy(B=tol), cost)
    within = tol.admits(counted - book_qty, book_qty, cost)
    assert (status is MATCH) is within
    if not within:
        assert status is (OVER if counted > book_qty else SHORT)


# --------------------------------------------------------------------------- book as of


def line(location: str, sku: str, qty: int, cost: float = 2.0, abc: AbcClass = A) -> BookLine:
    return BookLine(location, sku, qty, cost, abc)


def move(ts: datetime, location: str, sku: str, delta: int) -> Movement:
    return Movement(ts, location, sku, delta, user="u1", doc=f"D{ts:%H%M}")


SNAPSHOT = [line("L1", "S1", 10), line("L1", "S2", 4, cost=7.5, abc=B)]
MOVES = [
    move(T0 + 3 * H, "L1", "S1", +4),  # listed out of order on purpose
    move(T0 - H, "L1", "S1", +100),  # before the snapshot: already in it
    move(T0, "L1", "S1", +50),  # at the snapshot instant: already in it
    move(T0 + H, "L1", "S1", -3),
    move(T0 + 2 * H, "L2", "S2", +6),  # a new line for a known SKU
    move(T0 + 2 * H, "L3", "S9", +2),  # a new line for an unknown SKU
]


@pytest.mark.parametrize(
    ("at", "expected_s1"),
    [
        (T0, 10),  # the snapshot itself
        (T0 + H / 2, 10),
        (T0 + H, 7),  # a movement at exactly `at` is in the book
        (T0 + 2 * H, 7),
        (T0 + 5 * H, 11),
    ],
)
def test_book_as_of_applies_movements_up_to_at(at: datetime, expected_s1: int) -> None:
    book = book_as_of(SNAPSHOT, T0, MOVES, at)
    assert book["L1", "S1"] == line("L1", "S1", expected_s1)
    assert book["L1", "S2"] == SNAPSHOT[1]


def test_book_as_of_creates_lines_from_movements() -> None:
    book = book_as_of(SNAPSHOT, T0, MOVES, T0 + 5 * H)
    assert book["L2", "S2"] == BookLine("L2", "S2", 6, 7.5, B)  # cost and class of S2
    assert book["L3", "S9"] == BookLine("L3", "S9", 2, 0, C)  # unknown SKU
    assert set(book) == {("L1", "S1"), ("L1", "S2"), ("L2", "S2"), ("L3", "S9")}
    assert ("L2", "S2") not in book_as_of(SNAPSHOT, T0, MOVES, T0 + H)


def test_count_before_a_movement_is_compared_with_the_book_as_it_was() -> None:
    # Counted 7 of S1 at T0+2h; 4 more arrived at T0+3h, before the reconciler ran.
    counted = {"S1": 7, "S2": 4}
    then = book_as_of(SNAPSHOT, T0, MOVES, T0 + 2 * H)
    now = book_as_of(SNAPSHOT, T0, MOVES, T0 + 5 * H)
    by_sku_then = {sku: ln for (loc, sku), ln in then.items() if loc == "L1"}
    by_sku_now = {sku: ln for (loc, sku), ln in now.items() if loc == "L1"}
    policy = TolerancePolicy()
    assert [r.status for r in compare_location("L1", by_sku_then, counted, True, policy)] == [
        MATCH,
        MATCH,
    ]
    stale = compare_location("L1", by_sku_now, counted, True, policy)
    assert (stale[0].status, stale[0].diff) == (SHORT, -4)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (T0 - H / 2, 10),  # the pick at T0-30m was already in the book then
        (T0 - H, 13),  # before the pick of 3
        (T0 - 3 * H, 9),  # before the receipt of 4 as well
    ],
)
def test_book_as_of_before_the_snapshot_subtracts_later_movements(
    at: datetime, expected: int
) -> None:
    moves = [
        move(T0 - 2 * H, "L1", "S1", +4),
        move(T0 - H / 2, "L1", "S1", -3),
        move(T0 + H, "L1", "S1", +7),  # after the snapshot: irrelevant for the past
        move(T0 + H, "L2", "S2", +6),
    ]
    book = book_as_of([line("L1", "S1", 10)], T0, moves, at)
    assert book == {("L1", "S1"): line("L1", "S1", expected)}


def test_book_as_of_rejects_duplicate_snapshot_lines() -> None:
    with pytest.raises(ValueError, match="two lines"):
        book_as_of([line("L1", "S1", 1), line("L1", "S1", 2)], T0, [], T0)


# --------------------------------------------------------------------------- compare_location

BOOK_L1 = {
    "S3": line("L1", "S3", 5, cost=1),
    "S1": line("L1", "S1", 10, cost=2),
    "S2": line("L1", "S2", 20, cost=0.5, abc=C),
}


def test_not_scanned_location() -> None:
    rows = compare_location("L1", BOOK_L1, None, True, TolerancePolicy())
    assert rows == [
        Row("L1", "S1", 10, None, 0, 0, NOT_SCANNED, 2, A),
        Row("L1", "S2", 20, None, 0, 0, NOT_SCANNED, 0.5, C),
        Row("L1", "S3", 5, None, 0, 0, NOT_SCANNED, 1, A),
    ]


def test_incomplete_count_is_never_short() -> None:
    counted = {"S9": 2, "S1": 3}  # S1 far short, S2/S3 not seen, S9 unexpected
    rows = compare_location(
        "L1", BOOK_L1, counted, False, TolerancePolicy(), sku_info={"S9": (4, B)}
    )
    assert rows == [
        Row("L1", "S1", 10, 3, -7, -14, INCOMPLETE, 2, A),
        Row("L1", "S2", 20, None, 0, 0, INCOMPLETE, 0.5, C),
        Row("L1", "S3", 5, None, 0, 0, INCOMPLETE, 1, A),
        Row("L1", "S9", 0, 2, 2, 8, INCOMPLETE, 4, B),
    ]


def test_complete_count_flags_missing_and_unexpected_sorted_by_sku() -> None:
    counted = {"S9": 2, "S8": 3, "S1": 10, "S2": 19, "S7": 0}  # S3 not seen; S7: no row
    rows = compare_location(
        "L1", BOOK_L1, counted, True, TolerancePolicy(), sku_info={"S9": (4, B)}
    )
    assert rows == [
        Row("L1", "S1", 10, 10, 0, 0, MATCH, 2, A),
        Row("L1", "S2", 20, 19, -1, -0.5, MATCH, 0.5, C),  # 5 % short, class C
        Row("L1", "S3", 5, 0, -5, -5, SHORT, 1, A),  # missing: short by the book
        Row("L1", "S8", 0, 3, 3, 0, UNEXPECTED, 0, None),  # unknown SKU
        Row("L1", "S9", 0, 2, 2, 8, UNEXPECTED, 4, B),
    ]


def test_book_line_of_zero_counted_is_unexpected_with_its_cost() -> None:
    book = {"S1": line("L1", "S1", 0, cost=3)}
    policy = TolerancePolicy(A=Tolerance(abs_qty=10))  # even a generous abs_qty
    rows = compare_location("L1", book, {"S1": 2}, True, policy)
    assert rows == [Row("L1", "S1", 0, 2, 2, 6, UNEXPECTED, 3, A)]


@pytest.mark.parametrize("bad", [-1, -100])
@pytest.mark.parametrize("complete", [True, False])
def test_negative_count_is_rejected(bad: int, complete: bool) -> None:
    with pytest.raises(ValueError, match="invalid count"):
        compare_location("L1", BOOK_L1, {"S1": bad}, complete, TolerancePolicy())


# --------------------------------------------------------------------------- compare


def test_compare_whole_scan() -> None:
    book = {
        ("L2", "S1"): line("L2", "S1", 4),
        ("L1", "S2"): line("L1", "S2", 8, cost=3, abc=B),
        ("L1", "S1"): line("L1", "S1", 10),
    }
    counts = {
        "L3": ({"S2": 1}, True),  # a location with no book: S2 unexpected, cost from L1
        "L1": ({"S1": 10, "S2": 6}, True),
    }  # L2 not scanned
    rows = compare(book, counts, TolerancePolicy())
    assert [(r.location, r.sku, r.status) for r in rows] == [
        ("L1", "S1", MATCH),
        ("L1", "S2", SHORT),
        ("L2", "S1", NOT_SCANNED),
        ("L3", "S2", UNEXPECTED),
    ]
    assert (rows[1].diff, rows[1].diff_value) == (-2, -6)
    assert (rows[3].unit_cost, rows[3].abc, rows[3].diff_value) == (3, B, 3)

    only = compare(book, counts, TolerancePolicy(), locations=["L3", "L2", "L7"])
    assert [(r.location, r.sku) for r in only] == [("L2", "S1"), ("L3", "S2")]
    assert compare({}, {}, TolerancePolicy()) == []


def test_compare_equals_compare_location_per_location() -> None:
    book = {(f"L{i % 7}", f"S{i % 13}"): line(f"L{i % 7}", f"S{i % 13}", i % 9) for i in range(60)}
    counts = {  # L3 partly counted, L6 not scanned
        f"L{i}": ({f"S{j}": (i * j) % 10 for j in range(0, 13, 2)}, i != 3) for i in range(6)
    }
    policy = TolerancePolicy(
        locations={"L2": Tolerance(abs_qty=3)}, skus={"S4": Tolerance(over_pct=50)}
    )
    rows = compare(book, counts, policy)
    expected: list[Row] = []
    for loc in sorted({loc for loc, _ in book} | set(counts)):
        loc_book = {sku: ln for (lc, sku), ln in book.items() if lc == loc}
        counted, complete = counts.get(loc, (None, False))
        sku_info = {sku: (ln.unit_cost, ln.abc) for (_, sku), ln in book.items()}
        expected += compare_location(loc, loc_book, counted, complete, policy, sku_info=sku_info)
    assert rows == expected
    assert {r.status for r in rows} >= {MATCH, OVER, SHORT, UNEXPECTED, NOT_SCANNED, INCOMPLETE}
