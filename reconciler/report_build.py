"""Building a reconciliation report: its scope (a scan, a zone or a period), the comparison,
the trend of past scans and the heat map. ``edgecount reconcile report``
(:mod:`reconciler.cli_report`) and the console's Reports page render what it builds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.metrics import summarize, trend
from reconciler.queries import (
    UNKNOWN_ZONE,
    ScanRecord,
    Selection,
    adjustments_value,
    compare_selections,
    coverage,
    get_scan,
    scan_selections,
    since_selection,
    trend_scans,
    zone_locations,
    zone_selection,
)
from reconciler.report import ReportData
from reconciler.report_decisions import row_decisions
from reconciler.rules import TolerancePolicy
from reconciler.store import Store

__all__ = ["UnknownScopeError", "build_report"]


class UnknownScopeError(LookupError):
    """The scan or zone a report asks for is not in the store."""


@dataclass(frozen=True, slots=True)
class _Scope:
    """A report's main selection and where its trend and heat map come from."""

    text: str
    selection: Selection
    zones: dict[str, list[str]]
    history: list[ScanRecord]
    scan_seconds: float | None = None


def _scope(
    store: Store, *, scan: str | None, zone: str | None, since: datetime | None, now: datetime
) -> _Scope:
    if scan is not None:
        found = get_scan(store, scan)
        if found is None:
            raise UnknownScopeError(f"no scan {scan!r} in the store")
        (selection,) = scan_selections(store, [found])
        history = trend_scans(store, [found.zone], until=found.started_at)
        places = sorted(set(found.locations) | {c.location for c in selection.counts})
        text = f"scan {scan} (zone {found.zone}, gateway {found.gateway}, {found.state})"
        return _Scope(text, selection, {found.zone: places}, history, found.seconds)
    if zone is not None:
        chosen = zone_selection(store, zone, now)
        if chosen is None:
            raise UnknownScopeError(f"zone {zone!r} has no reported location and no count")
        history = trend_scans(store, [zone])
        return _Scope(f"zone {zone}", chosen, _heat_zones(store, [zone], chosen), history)
    if since is None:
        raise ValueError("a report needs a scan, a zone or a start time")
    selection = since_selection(store, since, now)
    counted = {c.zone for c in selection.counts}
    where = coverage(store)
    zones = counted | {where[loc].zone for loc in selection.unscanned if loc in where}
    history = trend_scans(store, counted, since=since)
    text = f"since {since.isoformat()}"
    return _Scope(text, selection, _heat_zones(store, zones, selection), history)


def _heat_zones(store: Store, zones: Iterable[str], selection: Selection) -> dict[str, list[str]]:
    """The heat map's zones: their reported locations, the selection's others as unknown."""
    out = zone_locations(store, zones)
    listed = {loc for locations in out.values() for loc in locations}
    rest = sorted(selection.locations - listed)
    if rest:
        out.setdefault(UNKNOWN_ZONE, []).extend(rest)
    return out


def build_report(
    store: Store,
    policy: TolerancePolicy,
    *,
    scan: str | None = None,
    zone: str | None = None,
    since: datetime | None = None,
    now: datetime | None = None,
    title: str = "Reconciliation report",
) -> ReportData:
    """The report of a scan, a zone or a period (give exactly one of the three).

    Args:
        store: The store.
        policy: The tolerances.
        scan: A scan id.
        zone: A zone.
        since: Earliest ``observed_at`` (aware).
        now: When the report is made (default now); the book time of unscanned locations
            of a zone or a period.
        title: Heading.

    Returns:
        Rows (exceptions already rejected with the same figures as ``accepted``), summary
        (coverage, the approved adjustments on the counts shown and, for a scan, its
        duration), the decision on each exception or accepted row, the trend of the last
        scans of the zones in scope, and the heat map. A period report lists every location
        whose book (as of ``now``) holds stock and that no count of the period covered as
        ``not_scanned``; the zone :data:`~reconciler.queries.UNKNOWN_ZONE` holds the book's
        locations that no gateway ever reported.

    Raises:
        UnknownScopeError: The scan or zone is not in the store.
        ValueError: Neither a scan, a zone nor a start time was given.
    """
    moment = now or datetime.now(UTC)
    scope = _scope(store, scan=scan, zone=zone, since=since, now=moment)
    history = scan_selections(store, scope.history)
    rows, *past = compare_selections(store, policy, [scope.selection, *history])
    spent = adjustments_value(store, (c.msg_id for c in scope.selection.counts))
    points = trend(
        (s.scan_id, s.started_at, summarize(r)) for s, r in zip(scope.history, past, strict=True)
    )
    return ReportData(
        title=title,
        generated_at=moment,
        scope=scope.text,
        rows=rows,
        summary=summarize(rows, adjustments_value=spent, scan_seconds=scope.scan_seconds),
        zones=scope.zones,
        trend=points,
        decisions=row_decisions(store, scope.selection.counts, rows),
    )
