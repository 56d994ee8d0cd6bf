"""How discrepancies end, as data for the WMS: decisions, adjustments, accepted variances.

Every end of a discrepancy writes one row to ``decisions`` in the same transaction as the
state change, holding the ``edgecount.decision/1`` message; the service publishes rows whose
``published_at`` is empty and stamps them on the broker's PUBACK (an outbox, like
adjustments). Both tables' ids are cursors: ``GET /decisions?after=ID`` and ``GET
/adjustments?after=ID`` let a WMS that missed messages catch up.

Outcomes:

* ``approved``: a person approved; each line became an adjustment (listed in the message);
* ``rejected``: a person rejected; the book stays, and each line is recorded in
  ``accepted_variances`` so the same difference is not flagged again until the book, the
  count or a movement changes it (:meth:`reconciler.store.Store.accepted_variances`);
* ``resolved``: a later complete count agreed with the book (by the reconciler);
* ``superseded``: a later count found a different difference while the discrepancy waited
  for a person; a new discrepancy is opened for it (by the reconciler).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from edgecount import contract
from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.transitions import State

APPROVE_REASONS = ("BOOK_ERROR", "MISPICK", "RECEIVING_ERROR", "DAMAGE", "THEFT", "MISCOUNT")
"""Documented reason codes for approving (the book was wrong); sites may use their own."""

REJECT_REASONS = ("ACCEPTED_VARIANCE", "SCAN_ERROR", "IN_TRANSIT", "WRONG_LOCATION")
"""Documented reason codes for rejecting (the book stays; the difference is accepted)."""


PAGE_LIMIT = 1000
"""Most items one cursor page returns."""


@dataclass(frozen=True, slots=True)
class Ended:
    """One end of a discrepancy, to record.

    Attributes:
        row: The discrepancy row as it was before the end (``discrepancies`` columns).
        outcome: How it ended.
        by: Who decided (a person, or the reconciler's actor name).
        reason: Reason code.
        at: When.
        note: Free text from the person.
        scan_id: The scan of the count the message refers to.
        count_msg_id: That count's msg_id.
        adjustments: For approvals: the adjustment payloads made of the lines.
    """

    row: Any
    outcome: State
    by: str
    reason: str
    at: datetime
    note: str = ""
    scan_id: str | None = None
    count_msg_id: str | None = None
    adjustments: Sequence[Mapping[str, Any]] = ()


def record(conn: sa.Connection, site: str, ended: Ended) -> int:
    """Write the decision row (and, for a rejection, the accepted variances); returns its id."""
    row = ended.row
    new_id = conn.execute(
        t.decisions.insert().values(
            discrepancy_id=row.id,
            zone=row.zone,
            location=row.location,
            outcome=ended.outcome.value,
            decided_by=ended.by,
            reason_code=ended.reason,
            note=ended.note,
            at=ended.at,
            payload={},
        )
    ).inserted_primary_key
    assert new_id is not None
    decision_id = int(new_id[0])
    fields: dict[str, Any] = {
        "decision_id": str(decision_id),
        "discrepancy_id": str(row.id),
        "site": site,
        "zone": row.zone,
        "location": row.location,
        "outcome": ended.outcome.value,
        "by": ended.by,
        "reason": ended.reason,
        "at": contract.to_iso(ended.at),
        "scan_id": ended.scan_id or row.scan_id,
        "count_msg_id": ended.count_msg_id or row.count_msg_id,
        "recounts": row.recounts,
        "lines": row.lines,
    }
    if ended.note:
        fields["note"] = ended.note
    if ended.outcome is State.APPROVED:
        fields["adjustments"] = [
            {k: a[k] for k in ("adjustment_id", "sku", "diff", "diff_value")}
            for a in ended.adjustments
        ]
    payload = contract.build(contract.DECISION, fields)
    conn.execute(
        t.decisions.update().where(t.decisions.c.id == decision_id).values(payload=payload)
    )
    if ended.outcome is State.REJECTED:
        conn.execute(
            t.accepted_variances.insert(),
            [
                {
                    "location": row.location,
                    "sku": line["sku"],
                    "book_qty": line["book_qty"],
                    "counted_qty": line["counted_qty"],
                    "discrepancy_id": row.id,
                    "reason_code": ended.reason,
                    "decided_by": ended.by,
                    "decided_at": ended.at,
                }
                for line in row.lines
            ],
        )
    return decision_id


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a cursor read: ``(cursor, payload, published)`` items, oldest first.

    ``next_after`` is the cursor to pass as ``after`` for the next page (the last item's, or
    the one asked for when the page is empty); ``more`` tells whether another page waits.
    """

    items: list[tuple[int, dict[str, Any], bool]]
    next_after: int
    more: bool


def page(engine: sa.Engine, table: sa.Table, after: int, limit: int) -> Page:
    """Rows of ``decisions`` or ``adjustments`` with ``id > after``, oldest first."""
    limit = max(1, min(limit, PAGE_LIMIT))
    query = (
        sa.select(table.c.id, table.c.payload, table.c.published_at)
        .where(table.c.id > after)
        .order_by(table.c.id)
        .limit(limit + 1)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    items = [(r.id, dict(r.payload), r.published_at is not None) for r in rows[:limit]]
    return Page(items, items[-1][0] if items else after, len(rows) > limit)


def unpublished(engine: sa.Engine, table: sa.Table) -> list[tuple[int, dict[str, Any]]]:
    """``(id, payload)`` of rows the broker has not acknowledged yet, oldest first."""
    query = (
        sa.select(table.c.id, table.c.payload)
        .where(table.c.published_at.is_(None))
        .order_by(table.c.id)
    )
    with engine.connect() as conn:
        return [(r.id, dict(r.payload)) for r in conn.execute(query)]


def mark_published(engine: sa.Engine, table: sa.Table, row_id: int, at: datetime) -> None:
    """The broker acknowledged row ``row_id`` of ``decisions`` or ``adjustments``."""
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == row_id).values(published_at=at))


def last_decision(engine: sa.Engine, discrepancy_id: int) -> dict[str, Any] | None:
    """The decision that ended a discrepancy (outcome, by, reason, note, at), or None."""
    d = t.decisions.c
    query = (
        sa.select(d.outcome, d.decided_by, d.reason_code, d.note, d.at)
        .where(d.discrepancy_id == discrepancy_id)
        .order_by(d.id.desc())
        .limit(1)
    )
    with engine.connect() as conn:
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
