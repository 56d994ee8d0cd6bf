"""The store's messages: counts and scans recorded once, and which gateway covers a location.

:class:`CountStore` is the part of :class:`reconciler.store.Store` that records what gateways
report (``counts``, ``scans``, ``messages``, ``coverage``). Recording is idempotent: a message
delivered twice (QoS 1) is stored once, keyed by its ``msg_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from edgecount.contract import CountMessage, CountSource, ScanMessage, StatusMessage
from edgecount.timefmt import parse_utc, utc
from reconciler import schema as t
from reconciler.store_book import chunks


def _count_row(count: CountMessage, received_at: datetime) -> dict[str, Any]:
    """The ``counts`` row of a count (its items as the message carries them)."""
    return {
        "msg_id": count.msg_id,
        "gateway": count.gateway,
        "zone": count.zone,
        "location": count.location,
        "scan_id": count.scan_id,
        "observed_at": parse_utc(count.observed_at),
        "source": count.source.value,
        "complete": count.complete,
        "historical": count.historical,
        "received_at": received_at,
        "items": [item.to_payload() for item in count.items],
    }


def _covers(count: CountMessage) -> bool:
    """Whether a count says which gateway covers its location: a person's manual count (its
    ``gateway`` is the console, which cannot scan) does not."""
    return count.source is not CountSource.MANUAL


class CountStore:
    """Counts, scans and coverage of :class:`reconciler.store.Store` (mixed into it)."""

    __slots__ = ()
    engine: Engine

    def record_count(self, count: CountMessage, received_at: datetime) -> bool:
        """Store an ``edgecount.count/1`` once; False when its msg_id was seen before."""
        try:
            with self.engine.begin() as conn:
                conn.execute(t.counts.insert().values(_count_row(count, received_at)))
                if _covers(count):
                    self._cover(conn, count.zone, count.location, count.gateway, received_at)
        except IntegrityError:
            return False
        return True

    def record_counts(
        self, counts: Iterable[CountMessage], received_at: datetime
    ) -> list[CountMessage]:
        """Store a batch of counts in one transaction; returns the ones not seen before.

        Falls back to one message at a time if another instance stored one of them in the
        meantime (a redelivery to a second member of a shared subscription).
        """
        unique: dict[str, CountMessage] = {}
        for count in counts:
            unique.setdefault(count.msg_id, count)
        if not unique:
            return []
        try:
            with self.engine.begin() as conn:
                seen: set[str] = set()
                for chunk in chunks(unique):
                    seen.update(
                        conn.execute(
                            sa.select(t.counts.c.msg_id).where(t.counts.c.msg_id.in_(chunk))
                        ).scalars()
                    )
                new = [count for msg_id, count in unique.items() if msg_id not in seen]
                if new:
                    self._insert_counts(conn, new, received_at)
        except IntegrityError:
            return [count for count in unique.values() if self.record_count(count, received_at)]
        return new

    def _insert_counts(
        self, conn: Connection, new: list[CountMessage], received_at: datetime
    ) -> None:
        # counts.msg_id is the primary key: it alone makes a count idempotent
        conn.execute(t.counts.insert(), [_count_row(count, received_at) for count in new])
        latest = {(count.zone, count.location): count.gateway for count in new if _covers(count)}
        self._cover_many(conn, latest, received_at)

    def _cover_many(
        self, conn: Connection, latest: Mapping[tuple[str, str], str], at: datetime
    ) -> None:
        """Upsert coverage rows in one statement (SQLite and PostgreSQL both have ON CONFLICT)."""
        rows: list[dict[str, Any]] = [
            {"zone": zone, "location": location, "gateway": gateway, "last_seen": at}
            for (zone, location), gateway in latest.items()
        ]
        if not rows:  # every count of the batch was a person's
            return
        dialect = self.engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            for row in rows:
                self._cover(conn, row["zone"], row["location"], row["gateway"], at)
            return
        insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
        statement = insert(t.coverage)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["zone", "location"],
                set_={
                    "gateway": statement.excluded.gateway,
                    "last_seen": statement.excluded.last_seen,
                },
            ),
            rows,
        )

    def record_scan(self, scan: ScanMessage, received_at: datetime) -> bool:
        """Store or advance an ``edgecount.scan/1``; False for a duplicate message."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    t.messages.insert().values(
                        msg_id=scan.msg_id, schema=scan.SCHEMA, received_at=received_at
                    )
                )
                values = {
                    "gateway": scan.gateway,
                    "zone": scan.zone,
                    "state": scan.state.value,
                    "started_at": parse_utc(scan.started_at),
                    "ended_at": parse_utc(scan.ended_at) if scan.ended_at else None,
                    "request_id": scan.request_id,
                    "locations": list(scan.locations),
                    "incomplete_locations": list(scan.incomplete_locations),
                    "readers": [reader.to_payload() for reader in scan.readers],
                    "cameras": (
                        None
                        if scan.cameras is None
                        else [camera.to_payload() for camera in scan.cameras]
                    ),
                }
                updated = conn.execute(
                    t.scans.update().where(t.scans.c.scan_id == scan.scan_id).values(values)
                ).rowcount
                if not updated:
                    conn.execute(t.scans.insert().values(scan_id=scan.scan_id, **values))
                for location in scan.locations:
                    self._cover(conn, scan.zone, location, scan.gateway, received_at)
        except IntegrityError:
            return False
        return True

    def record_status(self, status: StatusMessage, received_at: datetime) -> None:
        """Keep a gateway's latest ``edgecount.status/1`` (an older one changes nothing)."""
        at = parse_utc(status.at)
        values = {
            "state": status.state.value,
            "at": at,
            "version": status.version,
            "received_at": received_at,
        }
        with self.engine.begin() as conn:
            known = conn.execute(
                sa.select(t.gateway_status.c.at).where(t.gateway_status.c.gateway == status.gateway)
            ).scalar()
            if known is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            t.gateway_status.insert().values(gateway=status.gateway, **values)
                        )
                except IntegrityError:  # another instance stored it meanwhile
                    pass
                return
            if utc(known) <= at:
                conn.execute(
                    t.gateway_status.update()
                    .where(t.gateway_status.c.gateway == status.gateway)
                    .values(values)
                )

    def _cover(
        self, conn: Connection, zone: str, location: str, gateway: str, at: datetime
    ) -> None:
        updated = conn.execute(
            t.coverage.update()
            .where(t.coverage.c.zone == zone, t.coverage.c.location == location)
            .values(gateway=gateway, last_seen=at)
        ).rowcount
        if not updated:
            conn.execute(
                t.coverage.insert().values(
                    zone=zone, location=location, gateway=gateway, last_seen=at
                )
            )

    def gateway_for(self, zone: str, location: str) -> str | None:
        """The gateway that last reported this location."""
        query = sa.select(t.coverage.c.gateway).where(
            t.coverage.c.zone == zone, t.coverage.c.location == location
        )
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return str(value) if value is not None else None
