"""A location's page: its counts over time by source, its book, what moved, what was decided.

* **Counts**: the newest :data:`HISTORY` counts (any source: ``rfid``, ``vision``, ``fused``,
  ``manual``), each compared with the book as it was when observed (as the engine does:
  :mod:`reconciler.rules`, differences a person accepted included), and a bar chart of their
  totals coloured by source.
* **Book**: the snapshot plus the movements booked since (as ``GET /book``).
* **Movements since the last good count**: after the newest complete count within tolerance,
  or the newest approval or resolution of a discrepancy (the book then follows the count; as
  the discrepancy view reckons it), whichever is later; after the snapshot when neither.
* **Discrepancies** with how each ended (outcome, by whom, when, reason, note).
* **Camera frame**: the latest annotated frame a fixed camera's vision count of the location
  came from (``edgecount.frame/1``, kept by :mod:`reconciler.frames`), when one is stored.

``GET /console/locations/{zone}/{location}`` (viewer and above) answers 404 for a location
neither the book nor any gateway knows, or a zone it was never reported in.
``GET /console/locations/{zone}/{location}/frame.jpg`` (viewer and above) is the frame's JPEG
(``Cache-Control: no-store``), 404 when none is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.auth.identity import Identity
from reconciler.auth.roles import Role
from reconciler.console.map import (
    DEFAULT_DAYS,
    MapState,
    location_href,
    location_state,
    read_facts,
    read_zones,
)
from reconciler.console.render import ROOT, render_page
from reconciler.frames import StoredFrame, latest_frame
from reconciler.model import BookLine, Movement, Status
from reconciler.queries import UNKNOWN_ZONE
from reconciler.rules import TolerancePolicy, apply_accepted, compare_location
from reconciler.store import BookLedger, Store
from reconciler.transitions import State

if TYPE_CHECKING:
    from reconciler.console.context import ConsoleContext

__all__ = [
    "HISTORY",
    "SOURCES",
    "Chart",
    "CountLine",
    "LocationView",
    "add_routes",
    "chart",
    "location_view",
]

HISTORY = 60
"""Most counts the page lists (newest first) and draws."""

SOURCES = ("rfid", "vision", "fused", "manual")
"""Count sources, in the chart's legend order."""

WITHIN = "within tolerance"
OUTSIDE = "outside tolerance"
ACCEPTED = "difference accepted"
INCOMPLETE = "incomplete"


@dataclass(frozen=True, slots=True)
class CountLine:
    """One count of the location, and how it compared with the book then."""

    msg_id: str
    observed_at: datetime
    source: str
    scan_id: str
    gateway: str
    complete: bool
    items: tuple[tuple[str, int], ...]
    verdict: str

    @property
    def total(self) -> int:
        """Units counted."""
        return sum(qty for _, qty in self.items)

    @property
    def good(self) -> bool:
        """Complete and within tolerance (or a difference a person accepted)."""
        return self.verdict in (WITHIN, ACCEPTED)


@dataclass(frozen=True, slots=True)
class Bar:
    """One count in the chart: its box (SVG units), its source, its title."""

    x: float
    y: float
    width: float
    height: float
    source: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Total per count, oldest left, as SVG bars (``width`` x ``height`` view box)."""

    width: int
    height: int
    top: int
    bars: list[Bar]
    sources: list[str]


CHART_WIDTH = 600
CHART_HEIGHT = 160
CHART_PAD = 18  # room above the bars for the scale's label
BAR_MAX = 40.0  # a few counts still look like bars, not blocks


def chart(counts: Sequence[CountLine]) -> Chart:
    """The chart of ``counts`` (newest first, as listed): one bar per count, oldest left."""
    ordered = list(reversed(counts))
    top = max((c.total for c in ordered), default=0) or 1
    slot = CHART_WIDTH / max(len(ordered), 1)
    width = min(max(slot * 0.8, 1.0), BAR_MAX)
    room = CHART_HEIGHT - CHART_PAD
    bars = []
    for i, count in enumerate(ordered):
        height = room * count.total / top
        when = count.observed_at.strftime("%Y-%m-%d %H:%M")
        complete = "" if count.complete else ", incomplete"
        bars.append(
            Bar(
                x=round(i * slot + (slot - width) / 2, 2),
                y=round(CHART_HEIGHT - height, 2),
                width=round(width, 2),
                height=round(height, 2),
                source=count.source,
                title=f"{when}: {count.total} units ({count.source}{complete})",
            )
        )
    used = {c.source for c in ordered}
    sources = [s for s in SOURCES if s in used] + sorted(used - set(SOURCES))
    return Chart(CHART_WIDTH, CHART_HEIGHT, top, bars, sources)


@dataclass(frozen=True, slots=True)
class Decided:
    """How a discrepancy ended."""

    outcome: str
    by: str
    at: datetime
    reason: str
    note: str


@dataclass(frozen=True, slots=True)
class DiscrepancyLine:
    """One discrepancy of the location."""

    id: int
    state: str
    opened_at: datetime
    closed_at: datetime | None
    scan_id: str
    lines: list[dict[str, Any]]
    decision: Decided | None


@dataclass(slots=True)
class LocationView:
    """What the page shows."""

    zone: str
    location: str
    state: MapState
    now: datetime
    snapshot_at: datetime | None
    counts: list[CountLine] = field(default_factory=list)
    book: list[BookLine] = field(default_factory=list)
    movements: list[Movement] = field(default_factory=list)
    good_since: datetime | None = None
    good_what: str = ""
    discrepancies: list[DiscrepancyLine] = field(default_factory=list)
    frame: StoredFrame | None = None  # without its JPEG (the frame.jpg route serves that)

    @property
    def frame_src(self) -> str:
        """The path of the frame's image."""
        return location_href(self.zone, self.location) + "/frame.jpg"

    @property
    def chart(self) -> Chart:
        """The counts' chart."""
        return chart(self.counts)


# -- reading -------------------------------------------------------------------------------------


def _zones_of(conn: sa.Connection, location: str) -> tuple[set[str], bool]:
    """Zones the location was reported in, and whether the book holds it."""
    reported = set(
        conn.execute(
            sa.select(t.coverage.c.zone).where(t.coverage.c.location == location)
        ).scalars()
    )
    booked = conn.execute(
        sa.select(t.book.c.location).where(t.book.c.location == location).limit(1)
    ).first()
    return reported, booked is not None


def _counts(conn: sa.Connection, location: str) -> list[Any]:
    c = t.counts.c
    query = (
        sa.select(c.msg_id, c.observed_at, c.source, c.scan_id, c.gateway, c.complete, c["items"])
        .where(c.location == location)
        .order_by(c.observed_at.desc(), c.received_at.desc())
        .limit(HISTORY)
    )
    return list(conn.execute(query).all())


def _verdicts(
    store: Store, policy: TolerancePolicy, location: str, rows: Sequence[Any]
) -> tuple[list[CountLine], BookLedger]:
    """Each count compared with the book as it was when observed."""
    ledger = BookLedger.load(store, [location])
    accepted = store.accepted_variances([location])
    counted = [{str(i["sku"]): int(i["qty"]) for i in row.items} for row in rows]
    booked = {line.sku for line in ledger.lines.get(location, ())}
    info = store.sku_info({sku for items in counted for sku in items} - booked)
    lines = []
    for row, items in zip(rows, counted, strict=True):
        observed = utc(row.observed_at)
        verdict = INCOMPLETE
        if row.complete:
            book = ledger.book(location, observed)
            compared = compare_location(location, book, items, True, policy, sku_info=info)
            compared = apply_accepted(compared, accepted)
            verdict = WITHIN
            if any(r.is_exception for r in compared):
                verdict = OUTSIDE
            elif any(r.status is Status.ACCEPTED for r in compared):
                verdict = ACCEPTED
        lines.append(
            CountLine(
                msg_id=row.msg_id,
                observed_at=observed,
                source=row.source,
                scan_id=row.scan_id,
                gateway=row.gateway,
                complete=bool(row.complete),
                items=tuple(sorted(items.items())),
                verdict=verdict,
            )
        )
    return lines, ledger


def _discrepancies(conn: sa.Connection, location: str) -> list[DiscrepancyLine]:
    d, e = t.discrepancies.c, t.decisions.c
    ended: dict[int, Decided] = {}
    decided = (
        sa.select(e.discrepancy_id, e.outcome, e.decided_by, e.at, e.reason_code, e.note)
        .where(e.location == location)
        .order_by(e.id)
    )
    for row in conn.execute(decided):
        ended[row.discrepancy_id] = Decided(
            row.outcome, row.decided_by, utc(row.at), row.reason_code, row.note
        )
    query = sa.select(t.discrepancies).where(d.location == location).order_by(d.id.desc())
    return [
        DiscrepancyLine(
            id=row.id,
            state=row.state,
            opened_at=utc(row.opened_at),
            closed_at=None if row.closed_at is None else utc(row.closed_at),
            scan_id=row.scan_id,
            lines=list(row.lines),
            decision=ended.get(row.id),
        )
        for row in conn.execute(query)
    ]


def _last_good(
    counts: Iterable[CountLine], discrepancies: Iterable[DiscrepancyLine]
) -> tuple[datetime | None, str]:
    """When the location was last known right, and what made it so."""
    found: list[tuple[datetime, str]] = []
    good = next((c for c in counts if c.good), None)
    if good is not None:
        found.append((good.observed_at, f"the {good.source} count of scan {good.scan_id}"))
    settled = (State.APPROVED.value, State.RESOLVED.value)
    for d in discrepancies:
        if d.state in settled and d.closed_at is not None:
            found.append((d.closed_at, f"discrepancy {d.id} {d.state}"))
            break
    if not found:
        return None, ""
    return max(found)


def location_view(
    store: Store,
    policy: TolerancePolicy,
    zone: str,
    location: str,
    *,
    now: datetime | None = None,
) -> LocationView | None:
    """The page's data (blocking: run it in a worker thread); None for an unknown location.

    Args:
        store: The store.
        policy: The tolerances (the engine's), to compare each count.
        zone: The zone in the path: one the location was reported in (or
            :data:`UNKNOWN_ZONE` for a book location no gateway reported).
        location: The location.
        now: The time (for tests).
    """
    now = now or datetime.now(UTC)
    with store.engine.connect() as conn:
        reported, booked = _zones_of(conn, location)
        latest = read_zones(conn, location).get(location, UNKNOWN_ZONE)
        if not (reported or booked) or (zone not in reported and zone != latest):
            return None
        since = now - timedelta(days=DEFAULT_DAYS)
        facts = read_facts(conn, since, location).get(location)
        rows = _counts(conn, location)
        discrepancies = _discrepancies(conn, location)
    counts, ledger = _verdicts(store, policy, location, rows)
    state = location_state(facts, since) if facts is not None else MapState.NOT_SCANNED
    view = LocationView(
        zone=zone,
        location=location,
        state=state,
        now=now,
        snapshot_at=ledger.snapshot_at,
        counts=counts,
        book=sorted(ledger.book(location, now).values(), key=lambda line: line.sku),
        discrepancies=discrepancies,
        frame=latest_frame(store.engine, zone, location, with_jpeg=False),
    )
    view.good_since, view.good_what = _last_good(counts, discrepancies)
    after = view.good_since or ledger.snapshot_at
    view.movements = [
        m for m in ledger.moves.get(location, ()) if (after is None or m.ts > after) and m.ts <= now
    ]
    return view


def add_routes(app: FastAPI, context: ConsoleContext) -> None:
    """A location's page and its camera frame (viewer and above)."""
    signed_in = Depends(context.auth.current_user())

    # before the page: its ``{location:path}`` would take ``A-01/frame.jpg`` too
    @app.get(
        f"{ROOT}/locations/{{zone}}/{{location:path}}/frame.jpg",
        response_class=Response,
        include_in_schema=False,
    )
    async def location_frame(zone: str, location: str, _: Identity = signed_in) -> Response:
        db = context.engine.store.engine
        frame = await run_in_threadpool(latest_frame, db, zone, location)
        if frame is None or frame.jpeg is None:
            raise HTTPException(404, f"no camera frame of {location!r} in zone {zone!r}")
        headers = {"Cache-Control": "no-store"}
        return Response(frame.jpeg, media_type=frame.content_type, headers=headers)

    @app.get(
        f"{ROOT}/locations/{{zone}}/{{location:path}}",
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    async def location_page(
        request: Request, zone: str, location: str, identity: Identity = signed_in
    ) -> HTMLResponse:
        engine = context.engine
        view = await run_in_threadpool(location_view, engine.store, engine.policy, zone, location)
        if view is None:
            raise HTTPException(404, f"no location {location!r} in zone {zone!r}")
        return render_page(
            request,
            identity,
            "location.html",
            title=f"Location {location}",
            active="map",
            site=context.site,
            live="messages discrepancies book",
            page=view,
            may_request=identity.role >= Role.APPROVER,
        )
