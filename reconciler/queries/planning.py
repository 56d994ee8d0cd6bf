"""What the count planner needs per location: value, class, coverage, movement, exceptions.

:func:`plan_inputs` gives the planner (:mod:`reconciler.plan`) its
:class:`~reconciler.plan.PlanInput` s from four grouped queries; :func:`coverage` says which
zone and gateway last reported each location.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

import sqlalchemy as sa

from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.messages import ADJUSTMENT_PREFIX
from reconciler.model import AbcClass
from reconciler.plan import PlanInput
from reconciler.store import Store

EXCEPTION_WINDOW_DAYS = 90
"""Days before the planned night in which discrepancies count as past exceptions."""

UNKNOWN_ZONE = "unknown"
"""Zone of a book location that no gateway has reported yet."""


class Covered(NamedTuple):
    """Where a location was last reported (coverage table): its zone and gateway."""

    zone: str
    gateway: str


def coverage(store: Store) -> dict[str, Covered]:
    """Location -> the (zone, gateway) that last reported it (one pass over ``coverage``).

    Args:
        store: The store.
    """
    query = sa.select(t.coverage).order_by(t.coverage.c.last_seen, t.coverage.c.zone)
    with store.engine.connect() as conn:
        return {r.location: Covered(r.zone, r.gateway) for r in conn.execute(query)}


def _last_complete_counts() -> sa.Subquery:
    return (
        sa.select(t.counts.c.location, sa.func.max(t.counts.c.observed_at).label("last"))
        .where(t.counts.c.complete.is_(True))
        .group_by(t.counts.c.location)
        .subquery()
    )


def _movements_since_count(conn: sa.Connection, snapshot_at: datetime | None) -> dict[str, int]:
    """Movements per location after its last complete count (after the snapshot if never)."""
    last = _last_complete_counts()
    m = t.movements.c
    never: sa.ColumnElement[bool] = last.c.last.is_(None)
    if snapshot_at is not None:
        never = sa.and_(never, m.ts > sa.bindparam("snapshot_at", snapshot_at, type_=t.TS))
    query = (
        sa.select(m.location, sa.func.count())
        .select_from(t.movements.outerjoin(last, last.c.location == m.location))
        .where(sa.or_(never, m.ts > last.c.last))
        # an approval books its difference as a movement named by the adjustment id: the
        # count's own correction, not stock moving, so planning does not count it
        .where(sa.not_(m.doc.startswith(ADJUSTMENT_PREFIX, autoescape=True)))
        .group_by(m.location)
    )
    return {location: int(n) for location, n in conn.execute(query)}


def plan_inputs(
    store: Store, night: date, *, window_days: int = EXCEPTION_WINDOW_DAYS
) -> list[PlanInput]:
    """What the planner needs per location, from the store.

    Locations: the book's, plus those gateways reported (class C, value 0 when the book has
    none there). Zone: the latest coverage, else :data:`UNKNOWN_ZONE`. Class: the highest
    of its snapshot lines; value: their Σ qty * unit_cost. Last counted: UTC date of the
    latest complete count; movements after it (after the snapshot if never counted), not
    the reconciler's own adjustment postings; discrepancies opened within ``window_days``
    before ``night``. One grouped pass per table: O(book + counts + movements + discrepancies).

    Args:
        store: The store.
        night: The night planned.
        window_days: The exception window.

    Returns:
        One input per location, sorted by location.
    """
    covered = coverage(store)
    snapshot_at = store.book_snapshot_at()
    cutoff = datetime.combine(night - timedelta(days=window_days), time(), UTC)
    b, d = t.book.c, t.discrepancies.c
    last = _last_complete_counts()
    with store.engine.connect() as conn:
        book = {
            loc: (AbcClass(abc), float(value))
            for loc, abc, value in conn.execute(
                sa.select(
                    b.location, sa.func.min(b.abc), sa.func.sum(b.qty * b.unit_cost)
                ).group_by(b.location)
            )
        }
        counted = {loc: utc(at).date() for loc, at in conn.execute(sa.select(last))}
        moved = _movements_since_count(conn, snapshot_at)
        recent = sa.select(d.location, sa.func.count()).where(d.opened_at >= cutoff)
        exceptions = {loc: int(n) for loc, n in conn.execute(recent.group_by(d.location))}
    inputs = []
    for location in sorted(book.keys() | covered.keys()):
        abc, value = book.get(location, (AbcClass.C, 0.0))
        where = covered.get(location)
        inputs.append(
            PlanInput(
                location=location,
                zone=UNKNOWN_ZONE if where is None else where.zone,
                abc=abc,
                value=max(value, 0.0),
                last_counted=counted.get(location),
                movements_since_count=moved.get(location, 0),
                past_exceptions=exceptions.get(location, 0),
            )
        )
    return inputs
