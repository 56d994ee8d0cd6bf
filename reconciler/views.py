"""Read-only views of discrepancies for people and the WMS (the CLI's list, the REST API).

Each discrepancy comes with its lines, how it ended (the decision, when closed) and the
movements of its location since its last good count (who moved what, when, with which
document: the likely cause of a difference).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from edgecount import contract
from edgecount.timefmt import utc
from reconciler import decisions
from reconciler import schema as t
from reconciler.model import Movement
from reconciler.store import Store
from reconciler.transitions import OPEN_STATES, State


def discrepancies(store: Store, *, open_only: bool = True) -> list[dict[str, Any]]:
    """Discrepancies with their lines, newest first (only the open ones by default)."""
    query = sa.select(t.discrepancies).order_by(t.discrepancies.c.id.desc())
    if open_only:
        query = query.where(t.discrepancies.c.state.in_(OPEN_STATES))
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [_describe(store, row) for row in rows]


def discrepancy(store: Store, discrepancy_id: int) -> dict[str, Any] | None:
    """One discrepancy shaped like an item of :func:`discrepancies`; None when unknown."""
    query = sa.select(t.discrepancies).where(t.discrepancies.c.id == discrepancy_id)
    with store.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return None if row is None else _describe(store, row)


def _describe(store: Store, row: sa.RowMapping) -> dict[str, Any]:
    """A discrepancy row as JSON-able data."""
    item = dict(row)
    for key in ("opened_at", "updated_at", "closed_at", "observed_at"):
        if item[key] is not None:
            item[key] = contract.to_iso(utc(item[key]))
    item["decision"] = (
        None if row["state"] in OPEN_STATES else decisions.last_decision(store.engine, row["id"])
    )
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


def movements_since_good_count(
    store: Store, location: str, sku: str | None = None
) -> list[Movement]:
    """Movements of a location (and SKU) since its last count without exceptions."""
    with store.engine.connect() as conn:
        last_good = conn.execute(
            sa.select(sa.func.max(t.discrepancies.c.closed_at)).where(
                t.discrepancies.c.location == location,
                t.discrepancies.c.state.in_((State.RESOLVED, State.APPROVED)),
            )
        ).scalar()
    after = utc(last_good) if last_good is not None else None
    return store.movements(location, after=after, sku=sku)
