"""*Tonight*: the night's scans with live progress, device health, open discrepancies, trend.

A scan's progress and devices: :mod:`reconciler.console.scans`. "Tonight" is the last
:data:`WINDOW_HOURS` hours.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from reconciler import schema as t
from reconciler.auth.identity import Identity
from reconciler.auth.limits import discrepancy_value
from reconciler.console.render import ROOT, render_page
from reconciler.console.scans import ScanProgress, scan_progress
from reconciler.engine import Engine
from reconciler.metrics import summarize, trend
from reconciler.queries.selections import (
    ScanRecord,
    compare_selections,
    scan_selections,
    trend_scans,
)
from reconciler.report_trend import trend_section
from reconciler.transitions import OPEN_STATES

if TYPE_CHECKING:
    from reconciler.console.context import ConsoleContext

__all__ = ["WINDOW_HOURS", "Tonight", "TrendCache", "add_routes", "tonight"]

WINDOW_HOURS = 18


@dataclass(slots=True)
class Tonight:
    """What the page shows."""

    since: datetime
    scans: list[ScanProgress] = field(default_factory=list)
    open_by_state: dict[str, tuple[int, float]] = field(default_factory=dict)
    gateways: list[dict[str, Any]] = field(default_factory=list)
    trend_html: str = ""

    @property
    def locations_done(self) -> int:
        """Locations counted in tonight's scans."""
        return sum(s.done for s in self.scans)

    @property
    def running(self) -> int:
        """Scans started and not ended."""
        return sum(1 for s in self.scans if s.state == "started")


def _scans(conn: sa.Connection, since: datetime) -> list[ScanProgress]:
    rows = conn.execute(
        sa.select(t.scans)
        .where(t.scans.c.started_at >= since)
        .order_by(t.scans.c.zone, t.scans.c.started_at.desc())
    ).all()
    return scan_progress(conn, rows)


def _open_by_state(conn: sa.Connection) -> dict[str, tuple[int, float]]:
    rows = conn.execute(
        sa.select(t.discrepancies.c.state, t.discrepancies.c.lines).where(
            t.discrepancies.c.state.in_([s.value for s in OPEN_STATES])
        )
    ).all()
    out: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for state, lines in rows:
        out[state][0] += 1
        out[state][1] += discrepancy_value(lines)
    return {state: (int(n), value) for state, (n, value) in sorted(out.items())}


def _gateways(conn: sa.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(t.gateway_status).order_by(t.gateway_status.c.gateway)).all()
    return [dict(row._mapping) for row in rows]


class TrendCache:
    """The last trend drawn, and what it was drawn from.

    Comparing the past scans again costs seconds on a big site, and their figures change only
    when a scan ends or the book, its movements or the accepted variances change: the chart is
    drawn again only then (one lock: two pages asking at once draw it once).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._html = ""

    def get(self, key: tuple[Any, ...], draw: Callable[[], str]) -> str:
        """The chart for ``key``, drawn by ``draw`` when it is not the last one's."""
        with self._lock:
            if key != self._key:
                self._html = draw()
                self._key = key
            return self._html


def _inputs(conn: sa.Connection) -> tuple[Any, ...]:
    """What the figures of past scans depend on besides the scans themselves."""
    return tuple(
        conn.execute(
            sa.select(
                sa.select(sa.func.max(t.book_meta.c.id)).scalar_subquery(),
                sa.select(sa.func.max(t.book_meta.c.snapshot_at)).scalar_subquery(),
                sa.select(sa.func.max(t.movements.c.id)).scalar_subquery(),
                sa.select(sa.func.max(t.accepted_variances.c.id)).scalar_subquery(),
            )
        ).one()
    )


def _trend(engine: Engine, zones: set[str], cache: TrendCache) -> str:
    if not zones:
        return ""
    history: list[ScanRecord] = trend_scans(engine.store, sorted(zones))
    if not history:
        return ""
    with engine.store.engine.connect() as conn:
        inputs = _inputs(conn)
    key = (tuple((s.scan_id, s.state, s.ended_at) for s in history), inputs)
    return cache.get(key, lambda: _draw_trend(engine, history))


def _draw_trend(engine: Engine, history: list[ScanRecord]) -> str:
    selections = scan_selections(engine.store, history)
    compared = compare_selections(engine.store, engine.policy, selections)
    points = trend(
        (s.scan_id, s.started_at, summarize(rows))
        for s, rows in zip(history, compared, strict=True)
    )
    return trend_section(points)


def tonight(engine: Engine, cache: TrendCache, now: datetime | None = None) -> Tonight:
    """The figures of the page (blocking: run it in a worker thread)."""
    since = (now or datetime.now(UTC)) - timedelta(hours=WINDOW_HOURS)
    with engine.store.engine.connect() as conn:
        page = Tonight(
            since=since,
            scans=_scans(conn, since),
            open_by_state=_open_by_state(conn),
            gateways=_gateways(conn),
        )
    page.trend_html = _trend(engine, {s.zone for s in page.scans}, cache)
    return page


def add_routes(app: FastAPI, context: ConsoleContext) -> None:
    """``GET /console/``: the Tonight page."""
    signed_in = Depends(context.auth.current_user())
    cache = TrendCache()

    @app.get(f"{ROOT}/", response_class=HTMLResponse, include_in_schema=False)
    async def tonight_page(request: Request, identity: Identity = signed_in) -> HTMLResponse:
        data = await run_in_threadpool(tonight, context.engine, cache)
        return render_page(
            request,
            identity,
            "tonight.html",
            title="Tonight",
            active="tonight",
            site=context.site,
            live="messages discrepancies gateways",
            page=data,
        )
