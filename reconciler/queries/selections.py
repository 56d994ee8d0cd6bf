"""Which counts a report compares, and their comparison with the book.

Reports compare *selections* of counts (:func:`scan_selections`, :func:`zone_selection`,
:func:`since_selection`) with the book as of each count's ``observed_at``, as
:meth:`reconciler.engine.Engine.compare_count` does; :func:`compare_selections` loads the
book and movements of every location involved once for any number of
selections (a report and its trend). ``IN`` lists are sent in chunks of
:data:`reconciler.store.IN_CHUNK` values (both databases limit bound parameters per
statement).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.model import Row
from reconciler.queries.planning import UNKNOWN_ZONE, coverage
from reconciler.rules import TolerancePolicy, apply_accepted, compare_location
from reconciler.store import BookLedger, Store, chunks
from reconciler.transitions import State

TREND_SCANS = 30
"""How many past scans a report's accuracy trend shows."""

TREND_STATES = ("completed", "incomplete")
"""Scan states that end a scan (a ``started`` scan is still running)."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class CountRecord:
    """One stored ``edgecount.count/1``: what a report needs of it.

    Attributes:
        msg_id: Message id.
        zone: Zone of the location.
        location: The location counted.
        observed_at: When (aware UTC).
        complete: Whether the whole location was read.
        items: Counted quantity by SKU.
    """

    msg_id: str
    zone: str
    location: str
    observed_at: datetime
    complete: bool
    items: dict[str, int]


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """One row of the ``scans`` table (times aware UTC; ``ended_at`` None while running)."""

    scan_id: str
    gateway: str
    zone: str
    state: str
    started_at: datetime
    ended_at: datetime | None
    locations: list[str]
    incomplete_locations: list[str]

    @property
    def seconds(self) -> float | None:
        """Duration in seconds, None while the scan runs."""
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class Selection:
    """What one comparison covers.

    Attributes:
        counts: The counts to compare, at most one per location.
        unscanned: Locations in scope without a count, compared with the book as of ``book_at``.
        book_at: When to take the book for ``unscanned`` locations.
        incomplete: Locations the scan did not fully read: always ``incomplete`` rows.
    """

    counts: list[CountRecord]
    unscanned: list[str]
    book_at: datetime
    incomplete: frozenset[str] = field(default_factory=frozenset)

    @property
    def locations(self) -> set[str]:
        """Every location the selection touches."""
        return {c.location for c in self.counts} | set(self.unscanned)


def _count(row: Any) -> CountRecord:
    return CountRecord(
        msg_id=row.msg_id,
        zone=row.zone,
        location=row.location,
        observed_at=utc(row.observed_at),
        complete=bool(row.complete),
        items={str(item["sku"]): int(item["qty"]) for item in row.items},
    )


def _scan(row: Any) -> ScanRecord:
    return ScanRecord(
        scan_id=row.scan_id,
        gateway=row.gateway,
        zone=row.zone,
        state=row.state,
        started_at=utc(row.started_at),
        ended_at=None if row.ended_at is None else utc(row.ended_at),
        locations=list(row.locations),
        incomplete_locations=list(row.incomplete_locations),
    )


_COUNT_ORDER = (t.counts.c.observed_at, t.counts.c.received_at, t.counts.c.msg_id)


# --------------------------------------------------------------------------- selections


def get_scan(store: Store, scan_id: str) -> ScanRecord | None:
    """One scan by id; None when the store has no such scan.

    Args:
        store: The store.
        scan_id: The scan.
    """
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(t.scans).where(t.scans.c.scan_id == scan_id)).first()
    return None if row is None else _scan(row)


def scan_selections(store: Store, scans: Sequence[ScanRecord]) -> list[Selection]:
    """The selection of each scan: its latest count per location, the rest unscanned.

    A complete count of a location wins over a later incomplete one of the same scan.

    One query over ``counts`` by ``scan_id`` (index ``ix_counts_scan``): O(counts of the scans).

    Args:
        store: The store.
        scans: The scans.

    Returns:
        One selection per scan, in the same order. Unscanned locations take the book as of
        the scan's end (its start while it runs).
    """
    latest: dict[str, dict[str, CountRecord]] = {s.scan_id: {} for s in scans}
    with store.engine.connect() as conn:
        for ids in chunks(latest):
            query = sa.select(t.counts).where(t.counts.c.scan_id.in_(ids)).order_by(*_COUNT_ORDER)
            for row in conn.execute(query):
                found = _count(row)
                mine = latest[row.scan_id]
                earlier = mine.get(row.location)
                # later rows win, but an incomplete count does not undo a complete one
                if earlier is None or found.complete or not earlier.complete:
                    mine[row.location] = found
    out = []
    for scan in scans:
        counted = latest[scan.scan_id]
        out.append(
            Selection(
                counts=sorted(counted.values(), key=lambda c: c.location),
                unscanned=sorted(set(scan.locations) - counted.keys()),
                book_at=scan.ended_at or scan.started_at,
                incomplete=frozenset(scan.incomplete_locations),
            )
        )
    return out


def _latest_counts(conn: sa.Connection, where: sa.ColumnElement[bool]) -> list[CountRecord]:
    """The latest count per location among counts matching ``where`` (a window function).

    A complete count wins over any incomplete one: a location a later scan read only in part
    stays covered by its last complete count.
    """
    order = [t.counts.c.complete.desc(), *(c.desc() for c in _COUNT_ORDER)]
    rank = sa.func.row_number().over(partition_by=t.counts.c.location, order_by=order).label("rank")
    inner = sa.select(t.counts, rank).where(where).subquery()
    query = sa.select(inner).where(inner.c.rank == 1).order_by(inner.c.location)
    return [_count(row) for row in conn.execute(query)]


def book_locations(store: Store, at: datetime) -> set[str]:
    """Locations whose book as of ``at`` holds stock (some SKU with a quantity above 0).

    The snapshot's lines plus the movements booked after the snapshot up to ``at``, summed
    per (location, SKU) in one grouped query. Empty when no book was imported.

    Args:
        store: The store.
        at: The moment (at or after the snapshot; movements after ``at`` are left out).
    """
    snapshot_at = store.book_snapshot_at()
    if snapshot_at is None:
        return set()
    b, m = t.book.c, t.movements.c
    lines = sa.select(b.location, b.sku, b.qty.label("qty"))
    moved = sa.select(m.location, m.sku, m.qty_delta.label("qty")).where(
        m.ts > snapshot_at, m.ts <= at
    )
    both = sa.union_all(lines, moved).subquery()
    stocked = (
        sa.select(both.c.location)
        .group_by(both.c.location, both.c.sku)
        .having(sa.func.sum(both.c.qty) > 0)
    )
    with store.engine.connect() as conn:
        return set(conn.execute(stocked).scalars())


def zone_selection(store: Store, zone: str, now: datetime) -> Selection | None:
    """The latest count of each location of a zone; its uncounted locations unscanned.

    The zone's locations are those the coverage table lists for it plus those counted in it;
    for :data:`UNKNOWN_ZONE` also every location whose book holds stock that no gateway ever
    reported. Cost: one pass over the zone's counts (no index on ``zone``: a scan of
    ``counts``) and one over its coverage rows (all of them, and the book, for the unknown
    zone).

    Args:
        store: The store.
        zone: The zone.
        now: When to take the book for unscanned locations.

    Returns:
        The selection, or None when the store knows no location of that zone.
    """
    with store.engine.connect() as conn:
        counts = _latest_counts(conn, t.counts.c.zone == zone)
        covered = set(
            conn.execute(sa.select(t.coverage.c.location).where(t.coverage.c.zone == zone))
            .scalars()
            .all()
        )
    if zone == UNKNOWN_ZONE:
        covered |= book_locations(store, now) - coverage(store).keys()
    if not counts and not covered:
        return None
    counted = {c.location for c in counts}
    return Selection(counts=counts, unscanned=sorted(covered - counted), book_at=now)


def since_selection(store: Store, since: datetime, now: datetime | None = None) -> Selection:
    """The latest count per location observed at or after ``since``, and the book's rest.

    Per location the latest complete count, else the latest incomplete one (its rows show
    ``incomplete``). Every location whose book as of ``now`` holds stock and that has no
    count in the period is unscanned: a period report shows what was *not* counted too.

    Args:
        store: The store.
        since: Earliest ``observed_at``.
        now: End of the period, when to take the book of unscanned locations (default now).

    Returns:
        The selection (only unscanned locations when nothing was counted since then).
    """
    end = now or datetime.now(UTC)
    with store.engine.connect() as conn:
        counts = _latest_counts(conn, t.counts.c.observed_at >= since)
    counted = {c.location for c in counts}
    unscanned = sorted(book_locations(store, end) - counted)
    return Selection(counts=counts, unscanned=unscanned, book_at=end)


def trend_scans(
    store: Store,
    zones: Iterable[str],
    *,
    until: datetime | None = None,
    since: datetime | None = None,
    limit: int = TREND_SCANS,
) -> list[ScanRecord]:
    """The last ``limit`` ended (completed or incomplete) scans of some zones, oldest first.

    Args:
        store: The store.
        zones: The zones.
        until: Only scans started at or before this moment.
        since: Only scans started at or after this moment.
        limit: How many scans at most (the newest ones).

    Returns:
        The scans, by start time then id.
    """
    wanted = sorted(set(zones))
    if not wanted or limit <= 0:
        return []
    query = sa.select(t.scans).where(t.scans.c.zone.in_(wanted), t.scans.c.state.in_(TREND_STATES))
    if until is not None:
        query = query.where(t.scans.c.started_at <= until)
    if since is not None:
        query = query.where(t.scans.c.started_at >= since)
    query = query.order_by(t.scans.c.started_at.desc(), t.scans.c.scan_id.desc()).limit(limit)
    with store.engine.connect() as conn:
        found = [_scan(row) for row in conn.execute(query)]
    return found[::-1]


def zone_locations(store: Store, zones: Iterable[str]) -> dict[str, list[str]]:
    """Zone -> its locations (coverage table), both sorted, for the report's heat map.

    Args:
        store: The store.
        zones: The zones wanted (those without locations are left out).
    """
    out: dict[str, list[str]] = {}
    with store.engine.connect() as conn:
        for names in chunks(zones):
            query = (
                sa.select(t.coverage.c.zone, t.coverage.c.location)
                .where(t.coverage.c.zone.in_(names))
                .order_by(t.coverage.c.zone, t.coverage.c.location)
            )
            for zone, location in conn.execute(query):
                out.setdefault(zone, []).append(location)
    return out


def adjustments_value(store: Store, count_msg_ids: Iterable[str]) -> float:
    """Σ value (absolute) of the approved adjustments decided on some counts.

    An adjustment belongs to the count its discrepancy was last compared with
    (``discrepancies.count_msg_id``, also in the adjustment's payload).

    Args:
        store: The store.
        count_msg_ids: The counts' ``msg_id``.
    """
    total = 0.0
    join = t.adjustments.join(
        t.discrepancies, t.adjustments.c.discrepancy_id == t.discrepancies.c.id
    )
    with store.engine.connect() as conn:
        for ids in chunks(count_msg_ids):
            query = (
                sa.select(sa.func.coalesce(sa.func.sum(t.adjustments.c.value), 0.0))
                .select_from(join)
                .where(t.discrepancies.c.count_msg_id.in_(ids))
                .where(t.discrepancies.c.state == State.APPROVED)
            )
            total += float(conn.execute(query).scalar_one())
    return total


# --------------------------------------------------------------------------- comparison


def compare_selections(
    store: Store, policy: TolerancePolicy, selections: Sequence[Selection]
) -> list[list[Row]]:
    """Compare selections with the book, each count as of its ``observed_at``.

    Each count as :meth:`reconciler.engine.Engine.compare_count` does (SKUs its location's
    book lacks get cost and class from the whole book), as incomplete where the selection
    says so; unscanned locations give ``not_scanned`` (or ``incomplete``) rows from the book
    as of ``book_at``. Exceptions a person already rejected with the same figures show as
    ``accepted`` (:func:`reconciler.rules.apply_accepted`). Book, movements and accepted
    variances loaded once: O(lines + movements + items + rows).

    Args:
        store: The store.
        policy: The tolerances.
        selections: The selections.

    Returns:
        Per selection, its rows sorted by (location, SKU).
    """
    moments = [c.observed_at for s in selections for c in s.counts]
    moments += [s.book_at for s in selections if s.unscanned]
    if not moments:
        return [[] for _ in selections]
    locations = set().union(*(s.locations for s in selections))
    ledger = BookLedger.load(store, locations, min(moments))
    books = [
        {c.msg_id: ledger.book(c.location, c.observed_at) for c in s.counts} for s in selections
    ]
    strangers = {
        sku
        for s, by_msg in zip(selections, books, strict=True)
        for c in s.counts
        for sku in c.items
        if sku not in by_msg[c.msg_id]
    }
    info = store.sku_info(strangers)
    accepted = store.accepted_variances({c.location for s in selections for c in s.counts})
    out = []
    for s, by_msg in zip(selections, books, strict=True):
        rows: list[Row] = []
        for c in s.counts:
            complete = c.complete and c.location not in s.incomplete
            rows += compare_location(
                c.location, by_msg[c.msg_id], c.items, complete, policy, sku_info=info
            )
        for location in s.unscanned:
            counted: dict[str, int] | None = {} if location in s.incomplete else None
            rows += compare_location(
                location, ledger.book(location, s.book_at), counted, False, policy
            )
        rows.sort(key=lambda r: (r.location, r.sku))
        out.append(apply_accepted(rows, accepted))
    return out
