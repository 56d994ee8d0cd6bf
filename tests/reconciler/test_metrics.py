"""Summary figures and the accuracy trend, checked against hand-computed values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.metrics import summarize, trend
from reconciler.model import AbcClass, Row, Status, Summary

A, B = AbcClass.A, AbcClass.B
S = Status

# location, sku, book, counted, diff, diff_value, status, unit_cost
ROWS = [
    Row("L1", "S1", 10, 10, 0, 0, S.MATCH, 2.0, A),  # exact;            book value 20
    Row("L1", "S2", 100, 102, 2, 3.0, S.MATCH, 1.5, B),  # within, not exact; 150
    Row("L1", "S3", 20, 15, -5, -20.0, S.SHORT, 4.0, A),  # 80
    Row("L2", "S3", 5, 8, 3, 12.0, S.OVER, 4.0, A),  # 20
    Row("L2", "S4", 0, 2, 2, 20.0, S.UNEXPECTED, 10.0, None),  # 0
    Row("L2", "S7", 50, 49, -1, -0.5, S.SHORT, 0.5, B),  # 25
    Row("L3", "S5", 7, None, 0, 0, S.NOT_SCANNED, 100.0, A),  # not counted
    Row("L4", "S6", 9, 3, -6, -30.0, S.INCOMPLETE, 5.0, A),  # not counted
]


def test_summary_of_hand_made_rows() -> None:
    s = summarize(ROWS, adjustments_value=59.0, scan_seconds=12.5)
    assert (s.records_counted, s.records_within_tolerance, s.exact_matches, s.exceptions) == (
        6,
        2,
        1,
        4,
    )
    assert s.ira == pytest.approx(2 / 6)
    assert s.exact_match_rate == pytest.approx(1 / 6)
    assert s.exception_rate == pytest.approx(4 / 6)
    assert s.net_variance == pytest.approx(0 + 2 - 5 + 3 + 2 - 1)  # 1
    assert s.absolute_variance == pytest.approx(13)
    assert s.net_variance_value == pytest.approx(3 - 20 + 12 + 20 - 0.5)  # 14.5
    assert s.absolute_variance_value == pytest.approx(3 + 20 + 12 + 20 + 0.5)  # 55.5
    assert s.book_value_counted == pytest.approx(20 + 150 + 80 + 20 + 0 + 25)  # 295
    assert s.gross_adjustment_rate == pytest.approx(59 / 295)  # 0.2
    assert s.scan_seconds == 12.5
    # S3 sums its two exception rows (20 + 12); S2's variance is within tolerance
    assert s.top_exception_skus == [("S3", 32.0), ("S4", 20.0), ("S7", 0.5)]


def test_ira_never_nets_positive_against_negative() -> None:
    rows = [
        Row("L1", "S1", 10, 15, 5, 5.0, S.OVER, 1.0, A),
        Row("L1", "S2", 10, 5, -5, -5.0, S.SHORT, 1.0, A),
    ]
    s = summarize(rows)
    assert (s.net_variance, s.net_variance_value) == (0, 0)
    assert (s.absolute_variance, s.absolute_variance_value) == (10, 10)
    assert (s.ira, s.exceptions, s.exact_matches) == (0.0, 2, 0)


def test_top_exception_skus_keeps_five_largest_ties_by_sku() -> None:
    values = {"S6": 5.0, "S4": 9.0, "S1": 1.0, "S2": 9.0, "S3": 5.0, "S5": 7.0, "S7": 0.0}
    rows = [Row("L1", sku, 10, 11, 1, -v, S.SHORT, v, A) for sku, v in values.items()]
    rows.append(Row("L1", "S0", 200, 201, 1, 198.0, S.MATCH, 198.0, A))  # not an exception
    s = summarize(rows)
    assert s.top_exception_skus == [
        ("S2", 9.0),
        ("S4", 9.0),
        ("S5", 7.0),
        ("S3", 5.0),
        ("S6", 5.0),
    ]


@pytest.mark.parametrize(
    ("rows", "in_book", "book_value"),
    [
        ([], 0, 0.0),
        (
            [
                Row("L1", "S1", 5, None, 0, 0, S.NOT_SCANNED, 2.0, A),
                Row("L1", "S2", 5, 1, -4, -8.0, S.INCOMPLETE, 2.0, A),
            ],
            1,
            20.0,
        ),
    ],
)
def test_nothing_counted_gives_zeros(rows: list[Row], in_book: int, book_value: float) -> None:
    s = summarize(rows, adjustments_value=10.0)
    assert s == Summary(
        records_counted=0,
        records_within_tolerance=0,
        exact_matches=0,
        exceptions=0,
        ira=0.0,
        exact_match_rate=0.0,
        exception_rate=0.0,
        net_variance=0.0,
        absolute_variance=0.0,
        net_variance_value=0.0,
        absolute_variance_value=0.0,
        book_value_counted=0.0,
        gross_adjustment_rate=0.0,
        scan_seconds=None,
        top_exception_skus=[],
        locations_in_book=in_book,
        locations_counted=0,
        location_coverage=0.0,
        book_value=book_value,
        value_coverage=0.0,
    )


def test_coverage_of_hand_made_rows() -> None:
    s = summarize(ROWS)
    # in the book: L1, L2 (counted), L3 (not scanned), L4 (incomplete: not covered)
    assert (s.locations_counted, s.locations_in_book) == (2, 4)
    assert s.location_coverage == 0.5
    # 295 counted + L3 7 * 100 + L4 9 * 5
    assert s.book_value == pytest.approx(295 + 700 + 45)
    assert s.value_coverage == pytest.approx(295 / 1040)


def test_a_location_holding_nothing_in_the_book_is_not_in_the_coverage() -> None:
    rows = [
        Row("L1", "S1", 4, 4, 0, 0.0, S.MATCH, 1.0, A),
        Row("L2", "S2", 0, 3, 3, 3.0, S.UNEXPECTED, 1.0, A),  # counted, but nothing booked
    ]
    s = summarize(rows)
    assert (s.locations_counted, s.locations_in_book, s.location_coverage) == (1, 1, 1.0)
    assert (s.book_value, s.value_coverage) == (4.0, 1.0)


def test_accepted_rows_are_counted_but_neither_within_tolerance_nor_exceptions() -> None:
    rows = [
        Row("L1", "S1", 10, 10, 0, 0.0, S.MATCH, 1.0, A),
        Row("L1", "S2", 10, 7, -3, -3.0, S.ACCEPTED, 1.0, A),
    ]
    s = summarize(rows)
    assert (s.records_counted, s.records_within_tolerance, s.exceptions) == (2, 1, 0)
    assert (s.ira, s.exception_rate, s.top_exception_skus) == (0.5, 0.0, [])
    assert s.absolute_variance == 3


def test_unexpected_only_has_no_book_value_and_no_rate() -> None:
    s = summarize([Row("L1", "S1", 0, 3, 3, 30.0, S.UNEXPECTED, 10.0, A)], adjustments_value=30)
    assert (s.records_counted, s.exceptions, s.book_value_counted) == (1, 1, 0.0)
    assert s.gross_adjustment_rate == 0.0
    assert s.exception_rate == 1.0


def test_rows_may_be_a_generator() -> None:
    assert summarize(r for r in ROWS).records_counted == 6


def test_negative_adjustments_value_is_rejected() -> None:
    with pytest.raises(ValueError, match="adjustments_value"):
        summarize(ROWS, adjustments_value=-1.0)


def test_trend_in_time_order_and_json_able() -> None:
    t0 = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
    good = summarize(ROWS[:2])
    bad = summarize(ROWS)
    points = trend(
        [
            ("scan-3", t0 + timedelta(days=2), good),
            ("scan-1", t0, bad),
            ("scan-2", t0 + timedelta(days=1), good),
        ]
    )
    assert points == [
        {"scan_id": "scan-1", "at": "2025-03-01T02:00:00+00:00", "ira": 2 / 6, "exceptions": 4},
        {"scan_id": "scan-2", "at": "2025-03-02T02:00:00+00:00", "ira": 1.0, "exceptions": 0},
        {"scan_id": "scan-3", "at": "2025-03-03T02:00:00+00:00", "ira": 1.0, "exceptions": 0},
    ]
    assert json.loads(json.dumps(points)) == points
    assert trend([]) == []
