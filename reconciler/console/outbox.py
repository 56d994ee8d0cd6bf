"""The console's outbox: MQTT messages a page asks for, published by the running service.

A page (through the REST API) writes what must go to the broker — a "Scan now" scan request,
what a manual count makes the engine say — as rows of ``console_outbox`` in the same
database transaction as the rest of its change; the service's store publisher sends them
(:func:`reconciler.loops.store_streams`) and stamps ``published_at`` on the broker's PUBACK.
So a request made while the broker is away, or by an API process without an MQTT
connection, is sent when the service can, once per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa

from edgecount import contract
from reconciler import schema as t
from reconciler.messages import Outgoing

__all__ = ["BATCH", "enqueue", "mark_published", "pending"]

BATCH = 500
"""Most rows one publisher round sends."""


def enqueue(conn: sa.Connection, messages: Iterable[Outgoing], *, by: str, now: datetime) -> int:
    """Add messages to the outbox in ``conn``'s transaction; returns how many."""
    rows = [
        {
            "topic": out.topic,
            "payload": None if out.message is None else out.message.to_payload(),
            "retain": out.retain,
            "created_by": by,
            "created_at": now,
        }
        for out in messages
    ]
    if rows:
        conn.execute(t.console_outbox.insert(), rows)
    return len(rows)


def pending(engine: sa.Engine, limit: int = BATCH) -> list[tuple[int, Outgoing]]:
    """``(row id, message)`` not acknowledged by the broker yet, oldest first."""
    query = (
        sa.select(t.console_outbox.c.id, t.console_outbox.c.topic, t.console_outbox.c.payload,
                  t.console_outbox.c.retain)
        .where(t.console_outbox.c.published_at.is_(None))
        .order_by(t.console_outbox.c.id)
        .limit(limit)
    )  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        (
            row.id,
            Outgoing(
                row.topic,
                None if row.payload is None else contract.message_from_payload(row.payload),
                bool(row.retain),
            ),
        )
        for row in rows
    ]


def mark_published(engine: sa.Engine, row_id: int, now: datetime) -> None:
    """The broker acknowledged row ``row_id``."""
    with engine.begin() as conn:
        conn.execute(
            t.console_outbox.update()
            .where(t.console_outbox.c.id == row_id, t.console_outbox.c.published_at.is_(None))
            .values(published_at=now)
        )
