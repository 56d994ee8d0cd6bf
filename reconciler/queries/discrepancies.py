"""Reads of discrepancies: the open one of a location, one by id, lists for people, recounts.

The engine reads a discrepancy as a typed :class:`~reconciler.model.Discrepancy` (inside its
transaction, through the connection it passes); people and the WMS (the CLI's list, the REST
API) get JSON-able views with the lines, how it ended (the decision, when closed) and the
movements of its location since its last good count (who moved what, when, with which
document: the likely cause of a difference).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from edgecount import contract
from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.model import Discrepancy, Movement
from reconciler.store import Store, chunks
from reconciler.store_book import Locations, of_locations
from reconciler.transitions import OPEN_STATES, State

__all__ = [
    "by_id",
    "discrepancy_view",
    "discrepancy_views",
    "last_decision",
    "movements_since_good_count",
    "open_at",
    "open_discrepancies",
    "open_locations",
    "open_locations_in",
    "open_locations_query",
    "recount_requests",
    "unannounced",
]

_d = t.discrepancies.c


def _record(row: Any) -> Discrepancy:
    return Discrepancy(
        id=row.id,
        zone=row.zone,
        location=row.location,
        gateway=row.gateway,
        state=State(row.state),
        opened_at=utc(row.opened_at),
        updated_at=utc(row.updated_at),
        closed_at=None if row.closed_at is None else utc(row.closed_at),
        recounts=row.recounts,
        scan_id=row.scan_id,
        count_msg_id=row.count_msg_id,
        observed_at=utc(row.observed_at),
        lines=tuple(contract.DecisionLine.from_payload(line) for line in row.lines),
        announced=bool(row.announced),
    )


# -- for the engine -----------------------------------------------------------------------


def open_locations(store: Store, locations: Iterable[str]) -> set[str]:
    """Those of ``locations`` where a discrepancy is open."""
    with store.engine.connect() as conn:
        return open_locations_in(conn, locations)


def open_locations_in(conn: sa.Connection, locations: Iterable[str]) -> set[str]:
    """:func:`open_locations`, read in the caller's connection."""
    found: set[str] = set()
    for chunk in chunks(locations):
        found.update(conn.execute(open_locations_query(t.discrepancies, chunk)).scalars())
    return found


def open_locations_query(discrepancies: sa.Table, locations: Locations) -> sa.Select[Any]:
    """Those of ``locations`` where a discrepancy is open (for any copy of the table)."""
    d = discrepancies.c
    return sa.select(d.location).where(
        of_locations(d.location, locations), d.state.in_(OPEN_STATES)
    )


def open_at(conn: sa.Connection, location: str) -> Discrepancy | None:
    """The discrepancy open at a location (at most one), read in the caller's transaction."""
    query = sa.select(t.discrepancies).where(_d.location == location, _d.state.in_(OPEN_STATES))
    row = conn.execute(query).first()
    return None if row is None else _record(row)


def by_id(conn: sa.Connection, discrepancy_id: int) -> Discrepancy | None:
    """One discrepancy, read in the caller's transaction; None when unknown."""
    row = conn.execute(sa.select(t.discrepancies).where(_d.id == discrepancy_id)).first()
    return None if row is None else _record(row)


def open_discrepancies(store: Store) -> list[Discrepancy]:
    """Every open discrepancy (its retained message is published again on each connect)."""
    query = sa.select(t.discrepancies).where(_d.state.in_(OPEN_STATES)).order_by(_d.id)
    with store.engine.connect() as conn:
        return [_record(row) for row in conn.execute(query)]


def unannounced(store: Store) -> list[Discrepancy]:
    """Decided discrepancies whose retained message has not been cleared yet."""
    query = sa.select(t.discrepancies).where(_d.announced.is_(False)).order_by(_d.id)
    with store.engine.connect() as conn:
        return [_record(row) for row in conn.execute(query)]


def recount_requests(store: Store, gateway: str) -> list[tuple[str, str]]:
    """``(request_id, location)`` of the latest recount request of each discrepancy still
    waiting for its recount, where that request went to ``gateway``."""
    r = t.recounts.c
    latest = (
        sa.select(r.discrepancy_id, sa.func.max(r.requested_at).label("requested_at"))
        .group_by(r.discrepancy_id)
        .subquery()
    )
    query = (
        sa.select(r.request_id, _d.location)
        .join(
            latest,
            sa.and_(
                latest.c.discrepancy_id == r.discrepancy_id,
                latest.c.requested_at == r.requested_at,
            ),
        )
        .join(t.discrepancies, _d.id == r.discrepancy_id)
        .where(r.gateway == gateway, _d.state == State.RECOUNT_REQUESTED)
    )
    with store.engine.connect() as conn:
        return [(request_id, location) for request_id, location in conn.execute(query)]


# -- for people and the WMS ---------------------------------------------------------------


def discrepancy_views(store: Store, *, open_only: bool = True) -> list[dict[str, Any]]:
    """Discrepancies with their lines, newest first (only the open ones by default)."""
    query = sa.select(t.discrepancies).order_by(_d.id.desc())
    if open_only:
        query = query.where(_d.state.in_(OPEN_STATES))
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [_describe(store, row) for row in rows]


def discrepancy_view(store: Store, discrepancy_id: int) -> dict[str, Any] | None:
    """One discrepancy shaped like an item of :func:`discrepancy_views`; None when unknown."""
    query = sa.select(t.discrepancies).where(_d.id == discrepancy_id)
    with store.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return None if row is None else _describe(store, row)


def _describe(store: Store, row: sa.RowMapping) -> dict[str, Any]:
    """A discrepancy row as JSON-able data."""
    item = dict(row)
    for key in ("opened_at", "updated_at", "closed_at", "observed_at"):
        if item[key] is not None:
            item[key] = contract.to_iso(utc(item[key]))
    item["decision"] = None if row["state"] in OPEN_STATES else last_decision(store, row["id"])
    item["movements"] = [
        {
            "ts": contract.to_iso(m.ts),
            "sku": m.sku,
            "qty_delta": m.qty_delta,
            "user": m.user,
            "doc": m.doc,
        }
        for m in movements_since_good_count(store, row["location"])
    ]
    return item


def last_decision(store: Store, discrepancy_id: int) -> dict[str, Any] | None:
    """The decision that ended a discrepancy (outcome, by, reason, note, at), or None."""
    d = t.decisions.c
    query = (
        sa.select(d.outcome, d.decided_by, d.reason_code, d.note, d.at)
        .where(d.discrepancy_id == discrepancy_id)
        .order_by(d.id.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return {
        "outcome": row.outcome,
        "by": row.decided_by,
        "reason": row.reason_code,
        "note": row.note,
        "at": contract.to_iso(utc(row.at)),
    }


def movements_since_good_count(
    store: Store, location: str, sku: str | None = None
) -> list[Movement]:
    """Movements of a location (and SKU) since its last count without exceptions."""
    with store.engine.connect() as conn:
        last_good = conn.execute(
            sa.select(sa.func.max(_d.closed_at)).where(
                _d.location == location, _d.state.in_((State.RESOLVED, State.APPROVED))
            )
        ).scalar()
    after = utc(last_good) if last_good is not None else None
    return store.movements(location, after=after, sku=sku)
