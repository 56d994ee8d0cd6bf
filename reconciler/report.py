"""Reconciliation reports: CSV, JSON and a self-contained HTML page.

Everything here renders data that is already computed (compared :class:`~reconciler.model.Row` s,
a :class:`~reconciler.model.Summary`, a trend); nothing reads a database or the network.

* :func:`render_csv` -- the discrepancy report CSV: the columns of ``docs/design.md`` ("Book
  and report formats") first, ``location,sku,book_qty,counted_qty,diff,diff_value,status``,
  then ``zone,abc,unit_cost,decision,decided_by,reason`` (:data:`CSV_HEADER`).
* :func:`render_json` -- the same report as one JSON object, with the summary and the trend.
* :func:`render_html` -- one offline HTML page (inline CSS and SVG, no JavaScript); see
  :mod:`reconciler.report_html`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from typing import Any

from reconciler.model import Row, Summary
from reconciler.report_data import Decision, ReportData
from reconciler.report_html import render_html

__all__ = ["CSV_HEADER", "Decision", "ReportData", "render_csv", "render_html", "render_json"]

CSV_HEADER = (
    *("location", "sku", "book_qty", "counted_qty", "diff", "diff_value", "status"),
    *("zone", "abc", "unit_cost", "decision", "decided_by", "reason"),
)
"""Columns of the discrepancy report CSV, in order: design.md's seven, then the extras."""


def format_number(value: float) -> str:
    """Format a quantity without needless decimals: ``12.0`` -> ``"12"``, ``2.5`` -> ``"2.5"``.

    Args:
        value: The quantity.

    Returns:
        The shortest text that reads back as the same float (``repr``), without ``.0``.
    """
    if math.isfinite(value) and value == int(value):
        return str(int(value))  # also turns -0.0 into "0"
    return repr(float(value))


def render_csv(data: ReportData) -> str:
    """Render the discrepancy report CSV.

    The header is exactly :data:`CSV_HEADER`; one line per row, in the order of ``data.rows``.
    Quantities and the unit cost have no needless decimals, ``diff_value`` has two,
    ``counted_qty`` is empty when the record was not counted; ``zone`` (from ``data.zones``),
    ``abc`` and the decision columns are empty where unknown. Lines end with ``\\n``;
    fields are quoted by the :mod:`csv` module only where needed.

    Args:
        data: The report.

    Returns:
        The CSV text.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    zone_of = data.zone_of()
    for row in data.rows:
        decision = data.decisions.get((row.location, row.sku), Decision("", "", ""))
        writer.writerow(
            (
                row.location,
                row.sku,
                format_number(row.book_qty),
                "" if row.counted_qty is None else format_number(row.counted_qty),
                format_number(row.diff),
                f"{row.diff_value + 0.0:.2f}",
                row.status.value,
                zone_of.get(row.location, ""),
                "" if row.abc is None else row.abc.value,
                format_number(row.unit_cost),
                *decision,
            )
        )
    return buffer.getvalue()


def _finite(value: Any) -> Any:
    """Replace NaN and infinities (not valid JSON) by ``None``, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _row_json(row: Row, zone: str | None, decision: Decision | None) -> dict[str, Any]:
    return {
        "location": row.location,
        "sku": row.sku,
        "book_qty": row.book_qty,
        "counted_qty": row.counted_qty,
        "diff": row.diff,
        "diff_value": row.diff_value,
        "status": row.status.value,
        "unit_cost": row.unit_cost,
        "abc": None if row.abc is None else row.abc.value,
        "zone": zone,
        "decision": None if decision is None else decision._asdict(),
    }


def summary_json(summary: Summary) -> dict[str, Any]:
    """The summary as a JSON-ready dict: every field, ``top_exception_skus`` as objects.

    Args:
        summary: Figures of a reconciliation.

    Returns:
        ``{field: value, ..., "top_exception_skus": [{"sku": str, "value": float}, ...]}``.
    """
    out = asdict(summary)
    out["top_exception_skus"] = [
        {"sku": sku, "value": value} for sku, value in summary.top_exception_skus
    ]
    return out


def render_json(data: ReportData) -> str:
    """Render the report as one JSON object.

    Keys: ``title``, ``generated_at`` (ISO-8601), ``scope``, ``summary`` (every
    :class:`~reconciler.model.Summary` field, coverage included), ``rows`` (every
    :class:`~reconciler.model.Row` field, ``status`` and ``abc`` as their letters/names, plus
    ``zone`` and ``decision``: ``{"outcome", "decided_by", "reason"}`` or null) and ``trend``
    (as given).
    Non-finite numbers become ``null`` so the output is strict JSON.

    Args:
        data: The report.

    Returns:
        The JSON text (UTF-8 safe; non-ASCII characters are kept as they are).
    """
    zone_of = data.zone_of()
    document = {
        "title": data.title,
        "generated_at": data.generated_at.isoformat(),
        "scope": data.scope,
        "summary": summary_json(data.summary),
        "rows": [
            _row_json(row, zone_of.get(row.location), data.decisions.get((row.location, row.sku)))
            for row in data.rows
        ],
        "trend": list(data.trend),
    }
    return json.dumps(_finite(document), ensure_ascii=False, indent=2, allow_nan=False)
