"""Who decided what about a report's rows: the store query behind its decision columns.

An exception row belongs to the count its selection compared; that count belongs to one
discrepancy of its location: the one whose ``count_msg_id`` is the count, else, since a
discrepancy keeps only the *last* count it was compared with (recounts replace it), the
first discrepancy of the location whose last count was observed at or after this one (at a
location one discrepancy is open at a time, and a good count resolving it leaves its last
count as it was). The decision is that discrepancy's latest ``decisions`` row, else (decided
before that table existed) its latest ``approvals`` row; an open discrepancy has none.

An ``accepted`` row shows the rejection that accepted its figures: the latest
``accepted_variances`` row of its location x SKU with the same book and counted quantity.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa

from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.model import Row, Status
from reconciler.queries import CountRecord
from reconciler.report import Decision
from reconciler.store import Store, chunks
from reconciler.transitions import State

__all__ = ["row_decisions"]

_Key = tuple[str, str]
"""(location, SKU) of a row."""


def row_decisions(
    store: Store, counts: Sequence[CountRecord], rows: Iterable[Row]
) -> dict[_Key, Decision]:
    """The decision shown on each exception or ``accepted`` row that has one.

    Args:
        store: The store.
        counts: The counts the rows were compared from, at most one per location.
        rows: The compared rows.

    Returns:
        (location, SKU) -> the decision; rows without one are left out.
    """
    by_location = {c.location: c for c in counts}
    exceptions = [r for r in rows if r.is_exception and r.location in by_location]
    accepted = [r for r in rows if r.status is Status.ACCEPTED]
    out: dict[_Key, Decision] = {}
    if exceptions:
        wanted = [by_location[loc] for loc in sorted({r.location for r in exceptions})]
        of_count = _discrepancy_of_count(store, wanted)
        decided = _decisions(store, set(of_count.values()))
        for row in exceptions:
            found = decided.get(of_count.get(by_location[row.location].msg_id, -1))
            if found is not None:
                out[row.location, row.sku] = found
    if accepted:
        out.update(_acceptances(store, accepted))
    return out


def _discrepancy_of_count(store: Store, counts: Sequence[CountRecord]) -> dict[str, int]:
    """Count ``msg_id`` -> id of the discrepancy it belongs to (module docstring)."""
    d = t.discrepancies.c
    earliest = min(c.observed_at for c in counts)
    found: dict[str, list[tuple[datetime, int, str]]] = {}
    with store.engine.connect() as conn:
        for chunk in chunks(c.location for c in counts):
            query = sa.select(d.location, d.observed_at, d.id, d.count_msg_id).where(
                d.location.in_(chunk), d.observed_at >= earliest
            )
            for location, observed_at, ident, msg_id in conn.execute(query):
                found.setdefault(location, []).append((utc(observed_at), ident, msg_id))
    out: dict[str, int] = {}
    for count in counts:
        candidates = sorted(found.get(count.location, ()))
        exact = [ident for _, ident, msg_id in candidates if msg_id == count.msg_id]
        later = [ident for at, ident, _ in candidates if at >= count.observed_at]
        chosen = exact or later
        if chosen:
            out[count.msg_id] = chosen[0]
    return out


def _decisions(store: Store, discrepancy_ids: set[int]) -> dict[int, Decision]:
    """Discrepancy id -> its latest decision, else its latest approval (by row id)."""
    dec, app = t.decisions.c, t.approvals.c
    out: dict[int, Decision] = {}
    fallback: dict[int, Decision] = {}
    with store.engine.connect() as conn:
        for chunk in chunks(str(i) for i in sorted(discrepancy_ids)):
            ids = [int(i) for i in chunk]
            query = (
                sa.select(dec.discrepancy_id, dec.outcome, dec.decided_by, dec.reason_code)
                .where(dec.discrepancy_id.in_(ids))
                .order_by(dec.id)
            )
            for ident, outcome, by, reason in conn.execute(query):
                out[ident] = Decision(outcome, by, reason)  # later rows win
            query = (
                sa.select(app.discrepancy_id, app.decision, app.approver, app.reason_code)
                .where(app.discrepancy_id.in_(ids))
                .order_by(app.id)
            )
            for ident, outcome, by, reason in conn.execute(query):
                fallback[ident] = Decision(outcome, by, reason)
    return fallback | out


def _acceptances(store: Store, rows: Sequence[Row]) -> dict[_Key, Decision]:
    """(location, SKU) -> the latest rejection that accepted the row's figures."""
    av = t.accepted_variances.c
    figures = {(r.location, r.sku): (r.book_qty, r.counted_qty) for r in rows}
    out: dict[_Key, Decision] = {}
    with store.engine.connect() as conn:
        for chunk in chunks(sorted({r.location for r in rows})):
            query = (
                sa.select(
                    av.location, av.sku, av.book_qty, av.counted_qty, av.decided_by,
                    av.reason_code,
                )
                .where(av.location.in_(chunk))
                .order_by(av.decided_at, av.id)
            )  # fmt: skip
            for location, sku, book_qty, counted_qty, by, reason in conn.execute(query):
                if figures.get((location, sku)) == (book_qty, counted_qty):
                    out[location, sku] = Decision(State.REJECTED.value, by, reason)
    return out
