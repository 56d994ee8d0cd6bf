"""*Book*: the current book snapshot, its figures by zone and class, a search, and the import.

Everyone signed in sees the snapshot (when it was taken, its source, its records), the
records, units and value per zone (a location's zone is where a gateway reported it;
:data:`~reconciler.queries.UNKNOWN_ZONE` for the others) and per ABC class, and can search
records by location or SKU (at most :data:`SEARCH_LIMIT` shown, each with its book now:
the snapshot plus the movements booked since).

Approvers and admins (the ``book`` scope) import a book CSV: ``static/book.js`` first sends
the file to ``POST /book/preview`` (what would change, record by record, or every bad line;
nothing applied), then the same bytes to ``POST /book`` on "Apply import"
(:mod:`reconciler.api_upload`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from edgecount import timefmt
from reconciler import schema as t
from reconciler.auth.identity import Identity
from reconciler.auth.roles import Scope
from reconciler.console.render import ROOT, render_page
from reconciler.engine import Engine
from reconciler.queries import UNKNOWN_ZONE
from reconciler.store import BookLedger

if TYPE_CHECKING:
    from reconciler.console.context import ConsoleContext

__all__ = ["SEARCH_LIMIT", "BookPage", "Group", "Hit", "Snapshot", "add_routes", "book_page"]

SEARCH_LIMIT = 100
"""Most records a search shows."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The book's metadata: when the snapshot was taken, where from, how many records."""

    at: datetime
    source: str
    rows: int


@dataclass(frozen=True, slots=True)
class Group:
    """The book's figures of a zone or a class."""

    name: str
    locations: int
    records: int
    units: int
    value: float


@dataclass(frozen=True, slots=True)
class Hit:
    """A record found by a search, with its book now (``qty_now``)."""

    location: str
    sku: str
    qty: int
    qty_now: int
    unit_cost: float
    abc: str


@dataclass(slots=True)
class BookPage:
    """What the page shows."""

    snapshot: Snapshot | None
    zones: list[Group] = field(default_factory=list)
    classes: list[Group] = field(default_factory=list)
    query: str = ""
    hits: list[Hit] = field(default_factory=list)
    more: bool = False
    """The search found more than :data:`SEARCH_LIMIT` records."""

    @property
    def total(self) -> Group:
        """The whole book's figures."""
        return Group(
            "all",
            sum(g.locations for g in self.zones),
            sum(g.records for g in self.zones),
            sum(g.units for g in self.zones),
            sum(g.value for g in self.zones),
        )


def _groups(conn: sa.Connection, by: sa.ColumnElement[str], joined: sa.FromClause) -> list[Group]:
    b = t.book.c
    rows = conn.execute(
        sa.select(
            by.label("name"),
            sa.func.count(sa.distinct(b.location)),
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(b.qty), 0),
            sa.func.coalesce(sa.func.sum(b.qty * b.unit_cost), 0.0),
        )
        .select_from(joined)
        .group_by(by)
        .order_by(by)
    ).all()
    return [Group(str(n), int(locs), int(recs), int(u), float(v)) for n, locs, recs, u, v in rows]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search(engine: Engine, query: str, now: datetime) -> tuple[list[Hit], bool]:
    b = t.book.c
    pattern = _like(query)
    found = (
        sa.select(b.location, b.sku, b.qty, b.unit_cost, b.abc)
        .where(b.location.ilike(pattern, escape="\\") | b.sku.ilike(pattern, escape="\\"))
        .order_by(b.location, b.sku)
        .limit(SEARCH_LIMIT + 1)
    )
    with engine.store.engine.connect() as conn:
        rows = conn.execute(found).all()
    more = len(rows) > SEARCH_LIMIT
    rows = rows[:SEARCH_LIMIT]
    ledger = BookLedger.load(engine.store, {r.location for r in rows}, now)
    hits = []
    for r in rows:
        line = ledger.book(r.location, now).get(r.sku)
        hits.append(
            Hit(r.location, r.sku, r.qty, 0 if line is None else line.qty, r.unit_cost, r.abc)
        )
    return hits, more


def book_page(engine: Engine, query: str = "", now: datetime | None = None) -> BookPage:
    """The page's figures, and the records a search finds (blocking: run it in a thread)."""
    when = now or datetime.now(UTC)
    c = t.coverage.c
    zone_of = (
        sa.select(c.location, sa.func.min(c.zone).label("zone")).group_by(c.location).subquery()
    )
    zone = sa.func.coalesce(zone_of.c.zone, UNKNOWN_ZONE)
    with engine.store.engine.connect() as conn:
        meta = conn.execute(sa.select(t.book_meta)).first()
        snapshot = None
        if meta is not None:
            snapshot = Snapshot(timefmt.utc(meta.snapshot_at), meta.source, meta.rows)
        page = BookPage(
            snapshot,
            zones=_groups(
                conn, zone, t.book.outerjoin(zone_of, zone_of.c.location == t.book.c.location)
            ),
            classes=_groups(conn, t.book.c.abc, t.book),
            query=query,
        )
    if query:
        page.hits, page.more = _search(engine, query, when)
    return page


def add_routes(app: FastAPI, context: ConsoleContext) -> None:
    """``GET /console/book``: the Book page (``?q=`` searches)."""
    signed_in = Depends(context.auth.current_user())

    @app.get(f"{ROOT}/book", response_class=HTMLResponse, include_in_schema=False)
    async def book_route(
        request: Request,
        q: Annotated[str, Query(max_length=128)] = "",
        identity: Identity = signed_in,
    ) -> HTMLResponse:
        data = await run_in_threadpool(book_page, context.engine, q.strip())
        return render_page(
            request,
            identity,
            "book.html",
            title="Book",
            active="book",
            site=context.site,
            live="book",
            page=data,
            can_import=identity.may(Scope.BOOK),
        )
