"""What ``edgecount report send`` reads and writes in the store.

* :func:`scan_activity`: whether the night's scans have settled (none running, the last end).
* :func:`delivered` and :func:`record_delivery`: the ``report_deliveries`` table, one row per
  (report scope, recipient), written only after the SMTP server accepted the message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.store import Store

__all__ = ["ScanActivity", "delivered", "record_delivery", "scan_activity"]

RUNNING = "started"
"""The state of a scan that has not ended (``edgecount.scan/1``)."""


@dataclass(frozen=True, slots=True)
class ScanActivity:
    """The scans that started in a period.

    Attributes:
        scans: How many.
        running: Ids of those still running (state ``started``), oldest first.
        last_ended: The latest end of those that ended; None when none has.
    """

    scans: int
    running: list[str]
    last_ended: datetime | None


def scan_activity(
    store: Store, *, since: datetime | None = None, scan_id: str | None = None
) -> ScanActivity:
    """The scans that started at ``since`` or later (aware), or the scan ``scan_id``."""
    s = t.scans
    query = sa.select(s.c.scan_id, s.c.state, s.c.ended_at).order_by(s.c.started_at, s.c.scan_id)
    if since is not None:
        query = query.where(s.c.started_at >= since)
    if scan_id is not None:
        query = query.where(s.c.scan_id == scan_id)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    ended = [utc(row.ended_at) for row in rows if row.ended_at is not None]
    return ScanActivity(
        scans=len(rows),
        running=[row.scan_id for row in rows if row.state == RUNNING],
        last_ended=max(ended, default=None),
    )


def delivered(store: Store, scope: str) -> dict[str, datetime]:
    """Recipient (lower case) -> when the report of ``scope`` was last accepted for them."""
    d = t.report_deliveries
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(d.c.recipient, d.c.sent_at).where(d.c.scope == scope))
        return {row.recipient: utc(row.sent_at) for row in rows}


def record_delivery(
    store: Store,
    scope: str,
    recipients: Iterable[str],
    *,
    message_id: str,
    subject: str,
    at: datetime,
) -> None:
    """Record that the SMTP server accepted the report of ``scope`` for ``recipients``.

    A recipient recorded before (a ``--force`` run) gets the new message id and time, and
    its ``sends`` goes up by one. All recipients are written in one transaction.
    """
    d = t.report_deliveries
    with store.engine.begin() as conn:
        for recipient in recipients:
            key = (d.c.scope == scope) & (d.c.recipient == recipient.lower())
            values = {"message_id": message_id, "subject": subject[:512], "sent_at": at}
            changed = conn.execute(
                d.update().where(key).values(sends=d.c.sends + 1, **values)
            ).rowcount
            if not changed:
                conn.execute(
                    d.insert().values(scope=scope, recipient=recipient.lower(), sends=1, **values)
                )
