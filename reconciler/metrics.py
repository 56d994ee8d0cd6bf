"""Summary figures of a reconciliation, and the accuracy trend for the HTML report.

Pure logic, no I/O. Definitions follow domain.md ("Metrics"): inventory record accuracy
(IRA) is records within tolerance over records counted, so positive and negative
variances are never netted against each other; only ``net_variance`` nets them, and it is
reported beside the absolute variance, never instead of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.model import COUNTED, EXCEPTIONS, Row, Status, Summary

__all__ = ["TOP_EXCEPTION_SKUS", "summarize", "trend"]

TOP_EXCEPTION_SKUS = 5
"""How many SKUs :attr:`Summary.top_exception_skus` lists."""

_EPS = 1e-9


def summarize(
    rows: Iterable[Row],
    *,
    adjustments_value: float = 0.0,
    scan_seconds: float | None = None,
) -> Summary:
    """Sum up compared rows.

    Records counted are rows whose status is in :data:`~reconciler.model.COUNTED`
    (``not_scanned`` and ``incomplete`` rows are not counted). Of those, ``match`` rows are
    within tolerance, rows with ``diff`` 0 (within 1e-9) are exact matches, and rows whose
    status is in :data:`~reconciler.model.EXCEPTIONS` are exceptions. Rates divide by the
    records counted and are 0 when nothing was counted. Variances (net, absolute, and in
    value) and the book value counted are summed over counted rows only; ``accepted`` rows
    are counted but neither within tolerance nor exceptions. Coverage (see
    :class:`~reconciler.model.Summary`) is taken over every row, counted or not.

    Args:
        rows: Compared rows (from :func:`reconciler.rules.compare`).
        adjustments_value: Sum of the absolute values of the adjustments posted for these
            records; divided by the book value counted to give the gross adjustment rate.
        scan_seconds: How long the scan took, passed through.

    Returns:
        The summary; ``top_exception_skus`` lists up to five SKUs by the summed absolute
        variance value of their exception rows, largest first, ties by SKU.

    Raises:
        ValueError: ``adjustments_value`` is negative.
    """
    if not adjustments_value >= 0:
        raise ValueError(f"adjustments_value must be >= 0, got {adjustments_value!r}")
    tally = _Tally()
    for row in rows:
        tally.add(row)
    return tally.summary(adjustments_value, scan_seconds)


@dataclass(slots=True)
class _Tally:
    """Running sums of :func:`summarize`."""

    counted: int = 0
    within: int = 0
    exact: int = 0
    exceptions: int = 0
    net: float = 0.0
    absolute: float = 0.0
    net_value: float = 0.0
    abs_value: float = 0.0
    book_value: float = 0.0  # of counted rows
    total_value: float = 0.0  # of every row
    by_sku: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    stocked: set[str] = field(default_factory=set)  # locations whose book holds stock
    covered: set[str] = field(default_factory=set)  # locations a complete count covered

    def add(self, row: Row) -> None:
        self.total_value += row.book_qty * row.unit_cost
        if row.book_qty > 0:
            self.stocked.add(row.location)
        if row.status not in COUNTED:
            return
        self.covered.add(row.location)
        self.counted += 1
        diff = row.diff
        self.within += row.status is Status.MATCH
        self.exact += -_EPS <= diff <= _EPS
        self.net += diff
        self.absolute += abs(diff)
        self.net_value += row.diff_value
        self.abs_value += abs(row.diff_value)
        self.book_value += row.book_qty * row.unit_cost
        if row.status in EXCEPTIONS:
            self.exceptions += 1
            self.by_sku[row.sku] += abs(row.diff_value)

    def summary(self, adjustments_value: float, scan_seconds: float | None) -> Summary:
        top = sorted(self.by_sku.items(), key=lambda item: (-item[1], item[0]))
        counted, book_value, total_value = self.counted, self.book_value, self.total_value
        located = len(self.stocked & self.covered)
        return Summary(
            records_counted=counted,
            records_within_tolerance=self.within,
            exact_matches=self.exact,
            exceptions=self.exceptions,
            ira=_rate(self.within, counted),
            exact_match_rate=_rate(self.exact, counted),
            exception_rate=_rate(self.exceptions, counted),
            net_variance=self.net,
            absolute_variance=self.absolute,
            net_variance_value=self.net_value,
            absolute_variance_value=self.abs_value,
            book_value_counted=book_value,
            gross_adjustment_rate=adjustments_value / book_value if book_value > 0 else 0.0,
            scan_seconds=scan_seconds,
            top_exception_skus=top[:TOP_EXCEPTION_SKUS],
            locations_in_book=len(self.stocked),
            locations_counted=located,
            location_coverage=_rate(located, len(self.stocked)),
            book_value=total_value,
            value_coverage=book_value / total_value if total_value > 0 else 0.0,
        )


def trend(points: Iterable[tuple[str, datetime, Summary]]) -> list[dict[str, Any]]:
    """The accuracy trend, one JSON-able point per scan in time order.

    Args:
        points: (scan id, when the scan was taken, its summary); any order. Datetimes must
            be all naive or all aware.

    Returns:
        Dicts with ``scan_id``, ``at`` (ISO 8601), ``ira`` (fraction 0-1) and
        ``exceptions``, sorted by time then scan id.
    """
    return [
        {"scan_id": scan_id, "at": at.isoformat(), "ira": s.ira, "exceptions": s.exceptions}
        for scan_id, at, s in sorted(points, key=lambda p: (p[1], p[0]))
    ]


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
