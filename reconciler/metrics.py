"""Summary figures of a reconciliation, and the accuracy trend for the HTML report.

Pure logic, no I/O. Definitions follow domain.md ("Metrics"): inventory record accuracy
(IRA) is records within tolerance over records counted, so positive and negative
variances are never netted against each other; only ``net_variance`` nets them, and it is
reported beside the absolute variance, never instead of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
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
    counted = within = exact = exceptions = 0
    net = absolute = net_value = abs_value = book_value = total_value = 0.0
    by_sku: defaultdict[str, float] = defaultdict(float)
    stocked: set[str] = set()  # locations whose book holds stock
    covered: set[str] = set()  # locations a complete count covered
    for row in rows:
        total_value += row.book_qty * row.unit_cost
        if row.book_qty > 0:
            stocked.add(row.location)
        if row.status not in COUNTED:
            continue
        covered.add(row.location)
        counted += 1
        diff = row.diff
        within += row.status is Status.MATCH
        exact += -_EPS <= diff <= _EPS
        net += diff
        absolute += abs(diff)
        net_value += row.diff_value
        abs_value += abs(row.diff_value)
        book_value += row.book_qty * row.unit_cost
        if row.status in EXCEPTIONS:
            exceptions += 1
            by_sku[row.sku] += abs(row.diff_value)

    top = sorted(by_sku.items(), key=lambda item: (-item[1], item[0]))[:TOP_EXCEPTION_SKUS]
    return Summary(
        records_counted=counted,
        records_within_tolerance=within,
        exact_matches=exact,
        exceptions=exceptions,
        ira=_rate(within, counted),
        exact_match_rate=_rate(exact, counted),
        exception_rate=_rate(exceptions, counted),
        net_variance=net,
        absolute_variance=absolute,
        net_variance_value=net_value,
        absolute_variance_value=abs_value,
        book_value_counted=book_value,
        gross_adjustment_rate=adjustments_value / book_value if book_value > 0 else 0.0,
        scan_seconds=scan_seconds,
        top_exception_skus=top,
        locations_in_book=len(stocked),
        locations_counted=len(stocked & covered),
        location_coverage=_rate(len(stocked & covered), len(stocked)),
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
