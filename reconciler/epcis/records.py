"""The per-scan export records of the EPCIS sender (table ``epcis_exports``).

Invariants:

* A scan has at most one record (its ``scan_id`` is the key); discovering it twice, from two
  instances, inserts it once (``ON CONFLICT DO NOTHING``).
* A record is worked on by one instance at a time: :meth:`ExportRecords.claim` is one
  ``UPDATE … WHERE state = 'pending' OR (state = 'sending' AND lease_until < now)``; SQLite
  serialises writers and PostgreSQL re-checks the ``WHERE`` on the row it locked, so of two
  instances claiming the same record one updates one row and the other none. Every later
  write names the claimant (``claimed_by``) and does nothing once the claim was lost.
* ``next_event`` only grows, and only after the capture interface accepted the events before
  it (``jobs`` has their capture job): a restart resumes after them, never sends them again.
  The sender orders a scan's events by arrival (``received_at``), so counts arriving later are
  appended and a record that was ``sent`` is opened again for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.store import Store

__all__ = ["ExportRecord", "ExportRecords", "ScanBusyError"]

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
ENDED_SCAN_STATES = ("completed", "incomplete")


class ScanBusyError(Exception):
    """Another instance is sending this scan right now."""


@dataclass(slots=True)
class ExportRecord:
    """One scan's export record, as claimed."""

    scan_id: str
    attempts: int
    next_event: int
    jobs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ExportRecords:
    """Reads and writes ``epcis_exports`` for one instance (``me``)."""

    store: Store
    me: str

    def discover(self, now: datetime, settle: timedelta, backfill: timedelta) -> int:
        """Add a pending record for each scan that ended between ``now - backfill`` and
        ``now - settle``, and open again the sent records of scans with counts not yet sent.
        Returns how many records were added or opened."""
        s, e = t.scans.c, t.epcis_exports.c
        ended = (
            sa.select(s.scan_id)
            .where(
                s.state.in_(ENDED_SCAN_STATES),
                s.ended_at.is_not(None),
                s.ended_at <= now - settle,
                s.ended_at >= now - backfill,
                ~sa.exists().where(e.scan_id == s.scan_id),
            )
            .limit(1000)
        )
        with self.store.engine.begin() as conn:
            new = list(conn.execute(ended).scalars())
            if new:
                rows = [_pending_row(scan_id, now) for scan_id in new]
                insert = (
                    postgresql_insert
                    if self.store.engine.dialect.name == "postgresql"
                    else sqlite_insert
                )
                conn.execute(insert(t.epcis_exports).on_conflict_do_nothing(), rows)
            complete = (
                sa.select(sa.func.count())
                .select_from(t.counts)
                .where(t.counts.c.scan_id == e.scan_id, t.counts.c.complete.is_(True))
                .scalar_subquery()
            )
            reopened = conn.execute(
                t.epcis_exports.update()
                .where(e.state == SENT, e.next_event < complete)
                .values(state=PENDING, next_attempt_at=now)
            ).rowcount
        return len(new) + reopened

    def request(self, scan_id: str, now: datetime) -> None:
        """Make a scan's record pending now (``epcis send``): a sent or failed scan is sent
        again from its first event.

        Raises:
            ScanBusyError: An instance holds it (its lease has not run out).
        """
        e = t.epcis_exports.c
        with self.store.engine.begin() as conn:
            row = conn.execute(
                sa.select(e.state, e.lease_until).where(e.scan_id == scan_id)
            ).first()
            if row is None:
                conn.execute(t.epcis_exports.insert().values(_pending_row(scan_id, now)))
                return
            if row.state == SENDING and row.lease_until is not None and utc(row.lease_until) > now:
                raise ScanBusyError(f"scan {scan_id!r} is being sent by another instance")
            conn.execute(
                t.epcis_exports.update()
                .where(e.scan_id == scan_id)
                .values(_pending_row(scan_id, now) | {"scan_id": scan_id})
            )

    def candidates(self, now: datetime, limit: int = 20) -> list[str]:
        """Scans that may be claimed now, oldest record first."""
        e = t.epcis_exports.c
        query = (
            sa.select(e.scan_id)
            .where(_claimable(now))
            .order_by(e.created_at, e.scan_id)
            .limit(limit)
        )
        with self.store.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def claim(self, scan_id: str, now: datetime, lease: timedelta) -> ExportRecord | None:
        """Take a scan for ``lease``; None when another instance has it or it is not due."""
        e = t.epcis_exports.c
        with self.store.engine.begin() as conn:
            taken = conn.execute(
                t.epcis_exports.update()
                .where(e.scan_id == scan_id, _claimable(now))
                .values(state=SENDING, claimed_by=self.me, lease_until=now + lease)
            ).rowcount
            if taken != 1:
                return None
            row = conn.execute(
                sa.select(e.attempts, e.next_event, e.jobs).where(e.scan_id == scan_id)
            ).one()
        return ExportRecord(scan_id, row.attempts, row.next_event, list(row.jobs))

    def renew(self, scan_id: str, until: datetime) -> bool:
        """Extend our lease; False when the claim was lost (the lease ran out, another took it)."""
        return self._mine(scan_id, lease_until=until)

    def progress(
        self, scan_id: str, next_event: int, jobs: Sequence[dict[str, Any]], events: int
    ) -> bool:
        """Record accepted documents and their jobs; False when the claim was lost."""
        return self._mine(scan_id, next_event=next_event, jobs=list(jobs), events=events)

    def finish(self, scan_id: str, now: datetime, *, error: str | None = None) -> bool:
        """Sent (no error), or failed for good (the capture interface refused a document)."""
        state = SENT if error is None else FAILED
        return self._mine(
            scan_id,
            state=state,
            sent_at=now if error is None else None,
            last_error=error,
            claimed_by=None,
            lease_until=None,
        )

    def release(self, scan_id: str, attempts: int, retry_at: datetime, error: str) -> bool:
        """Give a scan back after a transient failure: due again at ``retry_at``."""
        return self._mine(
            scan_id,
            state=PENDING,
            attempts=attempts,
            next_attempt_at=retry_at,
            last_error=error[:1024],
            claimed_by=None,
            lease_until=None,
        )

    def state(self, scan_id: str) -> dict[str, Any] | None:
        """A record as a dict (for the CLI and the tests)."""
        e = t.epcis_exports.c
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(t.epcis_exports).where(e.scan_id == scan_id)).first()
        return None if row is None else dict(row._mapping)

    def _mine(self, scan_id: str, **values: Any) -> bool:
        e = t.epcis_exports.c
        with self.store.engine.begin() as conn:
            updated = conn.execute(
                t.epcis_exports.update()
                .where(e.scan_id == scan_id, e.state == SENDING, e.claimed_by == self.me)
                .values(**values)
            ).rowcount
        return updated == 1


def _claimable(now: datetime) -> sa.ColumnElement[bool]:
    e = t.epcis_exports.c
    return sa.or_(
        sa.and_(e.state == PENDING, e.next_attempt_at <= now),
        sa.and_(e.state == SENDING, e.lease_until < now),
    )


def _pending_row(scan_id: str, now: datetime) -> dict[str, Any]:
    return {
        "scan_id": scan_id,
        "state": PENDING,
        "created_at": now,
        "next_attempt_at": now,
        "attempts": 0,
        "events": None,
        "next_event": 0,
        "jobs": [],
        "claimed_by": None,
        "lease_until": None,
        "last_error": None,
        "sent_at": None,
    }
