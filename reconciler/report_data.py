"""What a reconciliation report shows: :class:`ReportData` and the :class:`Decision` of a row.

The renderers (:mod:`reconciler.report` for CSV and JSON, :mod:`reconciler.report_html` for
the page) all take these; they live apart so that no renderer imports another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from reconciler.model import Row, Summary


class Decision(NamedTuple):
    """How a person (or the reconciler) ended the discrepancy of a row.

    Attributes:
        outcome: ``approved``, ``rejected``, ``resolved`` or ``superseded``.
        decided_by: Who decided (an approver, or the reconciler for a good recount).
        reason: The reason code.
    """

    outcome: str
    decided_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything one report shows.

    Attributes:
        title: Heading of the report.
        generated_at: When the report was made (shown as given; prefer an aware UTC time).
        scope: What the report covers, e.g. ``"scan gw-01.A.20261105"``, ``"zone A"``.
        rows: Compared records, in the order the tables show them.
        summary: Figures of the reconciliation.
        zones: Zone -> its locations in display order (``A-01-03``); drives the heat map.
        trend: Past scans in time order, items ``{"scan_id": str, "at": ISO-8601 str,
            "ira": float 0-1, "exceptions": int}``.
        decisions: (location, SKU) -> the decision on that row (exception and ``accepted``
            rows that have one).
    """

    title: str
    generated_at: datetime
    scope: str
    rows: list[Row]
    summary: Summary
    zones: dict[str, list[str]] = field(default_factory=dict)
    trend: list[dict[str, Any]] = field(default_factory=list)
    decisions: dict[tuple[str, str], Decision] = field(default_factory=dict)

    def zone_of(self) -> dict[str, str]:
        """Location -> its zone, from :attr:`zones` (the first zone listing it)."""
        out: dict[str, str] = {}
        for zone, locations in self.zones.items():
            for location in locations:
                out.setdefault(location, zone)
        return out
