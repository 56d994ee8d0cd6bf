"""*Map*: every known location, site → zone → aisle → location, coloured by its state.

Locations are the book's and those gateways reported (``coverage``, written in the same
transaction as every count and scan, so every counted location is there). A location's zone
is the one that reported it last, else :data:`~reconciler.queries.UNKNOWN_ZONE` (a book
location no gateway has reported yet); its aisle comes from its code (:func:`aisle_of`).

A location's state (:class:`MapState`), the first that applies (:func:`location_state`):

1. ``awaiting_approval``: its open discrepancy waits for a person;
2. ``exception``: a discrepancy is open in another state (``recount_requested``, ``open``);
3. ``not_scanned``: no count observed in the last ``days`` days (default 7);
4. ``incomplete``: its newest count is incomplete;
5. ``accepted``: a person closed its newest discrepancy (approved: the book now follows the
   count; rejected: the difference is accepted), and no complete count came after the one
   decided;
6. ``match``: its newest count is complete and opened nothing: within tolerance (a complete
   count outside it opens a discrepancy, or matches a difference a person accepted before).

The whole site is read in four set-based queries (book locations, coverage, the window's
counts grouped by location, the newest discrepancy of each location); :func:`map_cells`
turns their rows into states without touching the database.
"""

from __future__ import annotations

import enum
import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, NamedTuple
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from reconciler import schema as t
from reconciler.auth.identity import Identity
from reconciler.console.render import ROOT, render_page
from reconciler.queries import UNKNOWN_ZONE
from reconciler.store import Store
from reconciler.transitions import State

if TYPE_CHECKING:
    from reconciler.console.context import ConsoleContext

__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "Cell",
    "Facts",
    "MapState",
    "SiteMap",
    "add_routes",
    "aisle_of",
    "location_href",
    "location_state",
    "map_cells",
    "read_facts",
    "read_zones",
    "site_map",
]

DEFAULT_DAYS = 7
"""A location with no count observed in this many days is ``not_scanned``."""
MAX_DAYS = 366
OPEN_LIMIT = 5000
"""Zones are shown unfolded while the map shows at most this many locations."""


class MapState(enum.StrEnum):
    """A location's state on the map (legend order)."""

    MATCH = "match"
    EXCEPTION = "exception"
    AWAITING_APPROVAL = "awaiting_approval"
    ACCEPTED = "accepted"
    INCOMPLETE = "incomplete"
    NOT_SCANNED = "not_scanned"

    @property
    def label(self) -> str:
        """The state in words (``awaiting approval``)."""
        return self.value.replace("_", " ")


# Plain strings: an enum member's ``.value`` is a slow descriptor, and this runs per location.
_LABELS = {state: state.label for state in MapState}
_VALUES = {state: state.value for state in MapState}
_AWAITING = State.AWAITING_APPROVAL.value
_WAITING = frozenset({State.RECOUNT_REQUESTED.value, State.OPEN.value})
_DECIDED = frozenset({State.APPROVED.value, State.REJECTED.value})


class Facts(NamedTuple):
    """What decides one location's state (times aware UTC; None: none such).

    Attributes:
        last_count: When its newest count was observed.
        last_complete: When its newest complete count was observed.
        discrepancy: The state of its newest discrepancy.
        discrepancy_count: When the count that discrepancy last compared was observed.
    """

    last_count: datetime | None = None
    last_complete: datetime | None = None
    discrepancy: str | None = None
    discrepancy_count: datetime | None = None


NO_FACTS = Facts()


def location_state(facts: Facts, since: datetime) -> MapState:
    """A location's state (the rules of the module docstring); counts before ``since`` are
    not recent enough to say anything."""
    if facts.discrepancy == _AWAITING:
        return MapState.AWAITING_APPROVAL
    if facts.discrepancy in _WAITING:
        return MapState.EXCEPTION
    last, complete = facts.last_count, facts.last_complete
    if last is None or last < since:
        return MapState.NOT_SCANNED
    if complete is None or complete < last:
        return MapState.INCOMPLETE
    decided = facts.discrepancy_count
    if facts.discrepancy in _DECIDED and decided is not None and complete <= decided:
        return MapState.ACCEPTED
    return MapState.MATCH


_AISLE = re.compile(r"[^-._: ]+(?:[-._: ][^-._: ]+)?(?=[-._: ])")


@functools.lru_cache(maxsize=1 << 16)  # a site's codes repeat on every map request
def aisle_of(location: str, zone: str) -> str:
    """The aisle of a location code: the code without its last part, and at most its first
    two parts (parts split by ``-``, ``.``, ``_``, ``:`` or a space). ``A-01-02`` → ``A-01``;
    ``Z1-03-12-2`` (zone, aisle, bay, level) → ``Z1-03``; ``B-01`` → ``B``; a code of one part
    lies in the aisle named after its zone."""
    found = _AISLE.match(location)
    return zone if found is None else found.group()


_DIGITS = re.compile(r"\d+")


@functools.lru_cache(maxsize=1 << 16)
def natural_key(code: str) -> str:
    """Sort key that puts ``A-2`` before ``A-10`` (numbers padded to 12 digits)."""
    return _DIGITS.sub(lambda m: m.group().zfill(12), code)


_PLAIN = re.compile(r"[A-Za-z0-9._~-]+")


def _segment(text: str) -> str:
    """``text`` as one path segment (most codes need no quoting: spare them the call)."""
    return text if _PLAIN.fullmatch(text) else quote(text, safe="")


def location_href(zone: str, location: str) -> str:
    """The path of a location's page."""
    return f"{ROOT}/locations/{_segment(zone)}/{_segment(location)}"


class Cell(NamedTuple):
    """One location on the map."""

    zone: str
    aisle: str
    location: str
    state: MapState


def map_cells(
    locations: Iterable[str],
    zones: Mapping[str, str],
    facts: Mapping[str, Facts],
    since: datetime,
) -> list[Cell]:
    """Every location's cell, sorted by zone, aisle and location (naturally).

    Args:
        locations: The known locations (any order, repeats allowed).
        zones: Location → its zone (absent: :data:`UNKNOWN_ZONE`).
        facts: Location → what decides its state (absent: nothing counted or open).
        since: Counts observed before this are too old to tell the state.
    """
    keys: dict[str, str] = {}  # zones and aisles repeat: their keys are computed once

    def key(name: str) -> str:
        found = keys.get(name)
        if found is None:
            found = keys[name] = natural_key(name)
        return found

    cells = []
    for location in set(locations):
        zone = zones.get(location, UNKNOWN_ZONE)
        state = location_state(facts.get(location, NO_FACTS), since)
        cells.append(Cell(zone, aisle_of(location, zone), location, state))
    cells.sort(key=lambda c: (key(c.zone), key(c.aisle), natural_key(c.location)))
    return cells


# -- reading the store ---------------------------------------------------------------------


def read_zones(conn: sa.Connection, location: str | None = None) -> dict[str, str]:
    """Location → the zone that reported it last (``coverage``; as
    :func:`reconciler.queries.coverage`, without the gateway)."""
    v = t.coverage.c
    query = sa.select(v.location, v.zone).order_by(v.last_seen, v.zone)
    if location is not None:
        query = query.where(v.location == location)
    return dict(conn.execute(query).all())


def read_facts(
    conn: sa.Connection, since: datetime, location: str | None = None
) -> dict[str, Facts]:
    """Location → :class:`Facts`, from two grouped queries (one location's alone if given).

    Counts are read from ``since`` on only: older ones cannot change a state.
    """
    c, d = t.counts.c, t.discrepancies.c
    counts = (
        sa.select(
            c.location,
            sa.func.max(c.observed_at),
            sa.func.max(c.observed_at).filter(c.complete.is_(True)),
        )
        .where(c.observed_at >= since)
        .group_by(c.location)
    )
    newest = sa.select(sa.func.max(d.id)).group_by(d.location)
    if location is not None:
        counts = counts.where(c.location == location)
        newest = newest.where(d.location == location)
    facts: dict[str, Facts] = {}
    for loc, last, complete in conn.execute(counts).all():
        facts[loc] = Facts(_aware(last), None if complete is None else _aware(complete))
    newest_rows = sa.select(d.location, d.state, d.observed_at).where(
        d.id.in_(newest.scalar_subquery())
    )
    for loc, state, observed in conn.execute(newest_rows).all():
        counted = facts.get(loc, NO_FACTS)
        facts[loc] = Facts(counted.last_count, counted.last_complete, state, _aware(observed))
    return facts


def _aware(moment: datetime) -> datetime:
    """An aware time (SQLite gives naive UTC back; PostgreSQL's are aware: compared as they
    are, spared a conversion per row)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


Tile = tuple[str, str, str]
"""A location as the page draws it: its page's path, its state, its accessible name."""


@dataclass(frozen=True, slots=True)
class Aisle:
    """An aisle's locations, as tiles (plain tuples: the template's loop stays fast)."""

    name: str
    tiles: list[Tile]


@dataclass(slots=True)
class Zone:
    """A zone's aisles and how many of its locations are in each state."""

    name: str
    aisles: list[Aisle] = field(default_factory=list)
    states: Counter[MapState] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """Its locations shown."""
        return sum(len(a.tiles) for a in self.aisles)


@dataclass(slots=True)
class SiteMap:
    """What the page shows: the zones (filtered), the legend's figures, the filter's choices."""

    since: datetime
    days: int
    zones: list[Zone]
    legend: dict[MapState, int]
    zone_names: list[str]
    locations: int

    @property
    def shown(self) -> int:
        """Locations shown after the filters."""
        return sum(z.total for z in self.zones)

    @property
    def unfolded(self) -> bool:
        """Whether the zones' sections start open."""
        return self.shown <= OPEN_LIMIT or len(self.zones) == 1


def group(
    cells: Iterable[Cell], *, zone: str | None = None, state: MapState | None = None
) -> list[Zone]:
    """Sorted cells grouped by zone and aisle: every zone with its figures, tiles only for the
    cells shown (in ``zone`` and ``state`` when given)."""
    zones: list[Zone] = []
    for cell in cells:
        if not zones or zones[-1].name != cell.zone:
            zones.append(Zone(cell.zone))
        where = zones[-1]
        where.states[cell.state] += 1
        if (zone is not None and cell.zone != zone) or (state is not None and cell.state != state):
            continue
        if not where.aisles or where.aisles[-1].name != cell.aisle:
            where.aisles.append(Aisle(cell.aisle, []))
        title = f"{cell.location}: {_LABELS[cell.state]}"
        href = location_href(cell.zone, cell.location)
        where.aisles[-1].tiles.append((href, _VALUES[cell.state], title))
    return zones


def site_map(
    store: Store,
    *,
    days: int = DEFAULT_DAYS,
    zone: str | None = None,
    state: MapState | None = None,
    now: datetime | None = None,
) -> SiteMap:
    """The map's figures (blocking: run it in a worker thread).

    Args:
        store: The store.
        days: Counts older than this many days leave a location ``not_scanned``.
        zone: Show this zone only (None: all).
        state: Show locations in this state only (None: all); the legend counts all states.
        now: The time (for tests).
    """
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    with store.engine.connect() as conn:
        zone_of = read_zones(conn)
        facts = read_facts(conn, since)
        uncovered = sa.select(t.book.c.location).except_(sa.select(t.coverage.c.location))
        booked = conn.execute(uncovered).scalars().all()
    cells = map_cells([*booked, *zone_of], zone_of, facts, since)
    zones = group(cells, zone=zone, state=state)
    legend = dict.fromkeys(MapState, 0)
    for z in zones:
        if zone is None or z.name == zone:
            legend.update({s: legend[s] + n for s, n in z.states.items()})
    return SiteMap(
        since=since,
        days=days,
        zones=[z for z in zones if z.aisles],
        legend=legend,
        zone_names=[z.name for z in zones],
        locations=len(cells),
    )


def _state(value: str) -> MapState | None:
    """The ``state`` filter (empty: none); 422 naming the field when unknown."""
    if not value:
        return None
    try:
        return MapState(value)
    except ValueError:
        choices = ", ".join(s.value for s in MapState)
        raise HTTPException(422, f"state: must be one of {choices}") from None


def _days(value: str) -> int:
    """The ``days`` window (empty: the default); 422 naming the field when out of range."""
    if not value.strip():
        return DEFAULT_DAYS
    try:
        days = int(value)
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_DAYS:
        raise HTTPException(422, f"days: must be a whole number from 1 to {MAX_DAYS}")
    return days


def add_routes(app: FastAPI, context: ConsoleContext) -> None:
    """``GET /console/map``: the Map page (viewer and above)."""
    signed_in = Depends(context.auth.current_user())

    @app.get(f"{ROOT}/map", response_class=HTMLResponse, include_in_schema=False)
    async def map_page(
        request: Request,
        zone: Annotated[str, Query(max_length=128)] = "",
        state: Annotated[str, Query(max_length=32)] = "",
        days: Annotated[str, Query(max_length=8)] = "",
        identity: Identity = signed_in,
    ) -> HTMLResponse:
        wanted = _state(state)
        data = await run_in_threadpool(
            site_map, context.engine.store, days=_days(days), zone=zone or None, state=wanted
        )
        return render_page(
            request,
            identity,
            "map.html",
            title="Map",
            active="map",
            site=context.site,
            live="messages discrepancies",
            page=data,
            zone=zone,
            state=wanted,
            states=list(MapState),
            default_days=DEFAULT_DAYS,
        )
