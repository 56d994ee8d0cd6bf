"""Reads of the store's outboxes: what the broker has not acknowledged, and cursor pages.

Every end of a discrepancy is a row of ``decisions`` and every approved line a row of
``adjustments``, each holding its message; :mod:`reconciler.repository` writes them and
stamps ``published_at`` on the broker's PUBACK. Both tables' ids are cursors: ``GET
/decisions?after=ID`` and ``GET /adjustments?after=ID`` let a WMS that missed messages catch
up (:func:`page`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from edgecount import contract
from reconciler import schema as t
from reconciler.store import Store

__all__ = ["PAGE_LIMIT", "Page", "page", "pending_adjustments", "pending_decisions"]

PAGE_LIMIT = 1000
"""Most items one cursor page returns."""

M = TypeVar("M", contract.AdjustmentMessage, contract.DecisionMessage)


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


def pending_adjustments(store: Store) -> list[tuple[int, contract.AdjustmentMessage]]:
    """``(id, adjustment)`` the broker has not acknowledged yet, oldest first."""
    return _unpublished(store, t.adjustments, contract.AdjustmentMessage)


def pending_decisions(store: Store) -> list[tuple[int, contract.DecisionMessage]]:
    """``(id, decision)`` the broker has not acknowledged yet, oldest first."""
    return _unpublished(store, t.decisions, contract.DecisionMessage)


def _unpublished(store: Store, table: sa.Table, cls: type[M]) -> list[tuple[int, M]]:
    """The unpublished rows' messages (each row holds the payload validated when written)."""
    query = (
        sa.select(table.c.id, table.c.payload)
        .where(table.c.published_at.is_(None))
        .order_by(table.c.id)
    )
    with store.engine.connect() as conn:
        return [(r.id, cls.from_payload(r.payload)) for r in conn.execute(query)]
