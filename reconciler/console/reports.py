"""*Reports*: the night's reconciliation report, its charts, and its CSV and JSON downloads.

The report is the one of ``edgecount reconcile report`` (:func:`reconciler.report_build.
build_report`) over a scope picked by query parameters: ``scan`` (one scan), else ``zone`` (the
latest count of each location of a zone), else ``since`` (the latest count per location since
then; default the last :data:`~reconciler.console.tonight.WINDOW_HOURS` hours). The page shows
the headline figures and embeds the HTML report's sections (summary, heat map, trend,
exceptions; :func:`reconciler.report_html.report_sections`, classes only, so the console's
Content-Security-Policy holds); ``report.csv`` and ``report.json`` download the same report
through the CLI's renderers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from edgecount import timefmt
from reconciler import schema as t
from reconciler.auth.identity import Identity
from reconciler.console.render import ROOT, render_page
from reconciler.console.tonight import WINDOW_HOURS
from reconciler.engine import Engine
from reconciler.report import ReportData, render_csv, render_json
from reconciler.report_build import UnknownScopeError, build_report
from reconciler.report_html import fmt_money, fmt_pct, report_sections

if TYPE_CHECKING:
    from reconciler.console.context import ConsoleContext

__all__ = [
    "Card",
    "Choices",
    "ReportScope",
    "ScopeError",
    "add_routes",
    "cards",
    "choices",
    "default_since",
    "make_report",
]

Param = Annotated[str, Query(max_length=128)]
_UNSAFE_IN_NAMES = re.compile(r"[^A-Za-z0-9._-]+")


class ScopeError(ValueError):
    """A scope parameter that cannot be read (``field``: which)."""

    def __init__(self, field_name: str, why: str) -> None:
        super().__init__(f"{field_name}: {why}")
        self.field = field_name


def default_since(now: datetime) -> datetime:
    """The start of "tonight": :data:`WINDOW_HOURS` hours ago, to the minute."""
    return (now - timedelta(hours=WINDOW_HOURS)).replace(second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class ReportScope:
    """What a report covers: a scan, else a zone, else the counts since a moment."""

    scan: str | None = None
    zone: str | None = None
    since: datetime | None = None

    @classmethod
    def parse(cls, scan: str, zone: str, since: str, now: datetime) -> ReportScope:
        """The scope of query parameters (empty ones are absent; a scan wins over a zone,
        a zone over a time; neither: the last :data:`WINDOW_HOURS` hours).

        Raises:
            ScopeError: ``since`` is not a date or an ISO-8601 time.
        """
        if scan.strip():
            return cls(scan=scan.strip())
        if zone.strip():
            return cls(zone=zone.strip())
        if not since.strip():
            return cls(since=default_since(now))
        try:
            return cls(since=timefmt.parse_utc(since.strip()))
        except ValueError:
            raise ScopeError(
                "since", f"not a date (YYYY-MM-DD) or ISO-8601 time: {since!r}"
            ) from None

    def query(self) -> str:
        """The query string that asks for this scope again."""
        if self.scan is not None:
            return f"scan={_quote(self.scan)}"
        if self.zone is not None:
            return f"zone={_quote(self.zone)}"
        assert self.since is not None
        return f"since={_quote(self.since.strftime('%Y-%m-%dT%H:%M:%S'))}"


def _quote(text: str) -> str:
    return quote(text, safe="")


@dataclass(frozen=True, slots=True)
class ScanChoice:
    """A scan to pick in the scope form."""

    scan_id: str
    zone: str
    state: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Choices:
    """What the scope form offers: tonight's scans and every zone reported."""

    scans: list[ScanChoice] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)


def choices(engine: Engine, since: datetime) -> Choices:
    """Scans started since ``since`` (newest first) and the zones known."""
    s = t.scans.c
    with engine.store.engine.connect() as conn:
        scans = conn.execute(
            sa.select(s.scan_id, s.zone, s.state, s.started_at)
            .where(s.started_at >= since)
            .order_by(s.started_at.desc(), s.scan_id)
        ).all()
        zones = conn.execute(
            sa.union(sa.select(t.coverage.c.zone), sa.select(s.zone)).order_by("zone")
        ).scalars()
        return Choices(
            [ScanChoice(r.scan_id, r.zone, r.state, timefmt.utc(r.started_at)) for r in scans],
            list(zones),
        )


def make_report(engine: Engine, scope: ReportScope, now: datetime) -> ReportData:
    """The report of ``scope`` (blocking: run it in a worker thread).

    Raises:
        UnknownScopeError: The scan or zone is not in the store.
    """
    return build_report(
        engine.store,
        engine.policy,
        scan=scope.scan,
        zone=scope.zone,
        since=scope.since,
        now=now,
        title=f"Reconciliation report, site {engine.site}",
    )


@dataclass(frozen=True, slots=True)
class Card:
    """A headline figure: its name, the figure, a note under it."""

    label: str
    figure: str
    note: str = ""


def cards(data: ReportData) -> list[Card]:
    """The report's headline figures: IRA, records counted, exceptions and their value."""
    summary = data.summary
    value = sum(abs(row.diff_value) for row in data.rows if row.is_exception)
    return [
        Card(
            "IRA",
            fmt_pct(summary.ira, 2),
            f"{summary.records_within_tolerance:,} records within tolerance",
        ),
        Card(
            "Records counted",
            f"{summary.records_counted:,}",
            f"{summary.locations_counted:,} of {summary.locations_in_book:,} locations",
        ),
        Card(
            "Exceptions", f"{summary.exceptions:,}", f"{fmt_pct(summary.exception_rate)} of counted"
        ),
        Card(
            "Exception value",
            fmt_money(value),
            f"net variance {fmt_money(summary.net_variance_value, signed=True)}",
        ),
    ]


@dataclass(frozen=True, slots=True)
class _Page:
    scope: ReportScope
    choices: Choices
    report: ReportData | None = None
    cards: list[Card] = field(default_factory=list)
    sections: str = ""
    error: str | None = None


def _page(engine: Engine, scope: ReportScope, now: datetime, error: str | None) -> _Page:
    offered = choices(engine, now - timedelta(hours=WINDOW_HOURS))
    if error is not None:
        return _Page(scope, offered, error=error)
    try:
        data = make_report(engine, scope, now)
    except UnknownScopeError as exc:
        return _Page(scope, offered, error=str(exc))
    return _Page(scope, offered, data, cards(data), report_sections(data))


def _scope(scan: str, zone: str, since: str, now: datetime) -> ReportScope:
    try:
        return ReportScope.parse(scan, zone, since, now)
    except ScopeError as exc:
        raise HTTPException(422, str(exc)) from None


def add_routes(app: FastAPI, context: ConsoleContext) -> None:
    """``GET /console/reports`` and its downloads ``report.csv`` and ``report.json``."""
    signed_in = Depends(context.auth.current_user())
    engine = context.engine

    @app.get(f"{ROOT}/reports", response_class=HTMLResponse, include_in_schema=False)
    async def reports_page(
        request: Request,
        scan: Param = "",
        zone: Param = "",
        since: Param = "",
        identity: Identity = signed_in,
    ) -> HTMLResponse:
        now = datetime.now(UTC)
        status, error = 200, None
        try:
            scope = ReportScope.parse(scan, zone, since, now)
        except ScopeError as exc:
            status, error = 422, str(exc)
            scope = ReportScope(since=default_since(now))
        page = await run_in_threadpool(_page, engine, scope, now, error)
        if status == 200 and page.error is not None:
            status = 404
        shown = scope.since or default_since(now)
        return render_page(
            request,
            identity,
            "reports.html",
            title="Reports",
            active="reports",
            site=context.site,
            status_code=status,
            page=page,
            since_value=shown.strftime("%Y-%m-%dT%H:%M"),
        )

    _add_download_routes(app, context, signed_in)


def _add_download_routes(app: FastAPI, context: ConsoleContext, signed_in: Any) -> None:
    """``report.csv`` and ``report.json`` of a scope, as attachments."""
    engine = context.engine

    async def download(scan: str, zone: str, since: str, kind: str) -> Response:
        now = datetime.now(UTC)
        scope = _scope(scan, zone, since, now)
        try:
            data = await run_in_threadpool(make_report, engine, scope, now)
        except UnknownScopeError as exc:
            raise HTTPException(404, str(exc)) from None
        if kind == "csv":
            body, media = render_csv(data), "text/csv; charset=utf-8"
        else:
            body, media = render_json(data) + "\n", "application/json"
        site = _UNSAFE_IN_NAMES.sub("_", context.site)
        name = f"edgecount-report-{site}-{now.strftime('%Y-%m-%d')}.{kind}"
        return Response(
            body,
            media_type=media,
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @app.get(f"{ROOT}/reports/report.csv", include_in_schema=False, dependencies=[signed_in])
    async def report_csv(scan: Param = "", zone: Param = "", since: Param = "") -> Response:
        return await download(scan, zone, since, "csv")

    @app.get(f"{ROOT}/reports/report.json", include_in_schema=False, dependencies=[signed_in])
    async def report_json(scan: Param = "", zone: Param = "", since: Param = "") -> Response:
        return await download(scan, zone, since, "json")
