"""The store's messages: counts and scans recorded once, and which gateway covers a location.

:class:`CountStore` is the part of :class:`reconciler.store.Store` that records what gateways
report (``counts``, ``scans``, ``messages``, ``coverage``). Recording is idempotent: a message
delivered twice (QoS 1) is stored once, keyed by its ``msg_id``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from edgecount.contract import CountMessage, CountSource, ScanMessage, StatusMessage
from edgecount.timefmt import parse_utc, utc
from reconciler import schema as t


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
        return bool(self.record_counts([count], received_at))

    def record_counts(
        self, counts: Iterable[CountMessage], received_at: datetime
    ) -> list[CountMessage]:
        """Store a batch of counts in one transaction (:func:`store_new_counts`); returns the
        ones not seen before."""
        with self.engine.begin() as conn:
            return store_new_counts(conn, counts, received_at)

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
                covered = {(scan.zone, location): scan.gateway for location in scan.locations}
                _cover_many(conn, covered, received_at)
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

    def gateway_for(self, zone: str, location: str) -> str | None:
        """The gateway that last reported this location."""
        query = sa.select(t.coverage.c.gateway).where(
            t.coverage.c.zone == zone, t.coverage.c.location == location
        )
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return str(value) if value is not None else None


def store_new_counts(
    conn: Connection, counts: Iterable[CountMessage], received_at: datetime
) -> list[CountMessage]:
    """Store counts in the caller's transaction; returns those not stored before, in order.

    ``counts.msg_id`` is the primary key: an insert that meets an existing one does nothing
    (``ON CONFLICT DO NOTHING``), so a redelivery, also one stored meanwhile by another
    instance of a shared subscription, is stored once and never fails the batch. What was
    inserted is read back from ``RETURNING``: one round trip for the batch.
    """
    unique: dict[str, CountMessage] = {}
    for count in counts:
        unique.setdefault(count.msg_id, count)
    if not unique:
        return []
    rows = [_count_row(count, received_at) for count in unique.values()]
    if conn.dialect.name == "postgresql":
        inserted = set(conn.execute(_insert_arrays(), _as_arrays(rows, received_at)).scalars())
    else:
        insert = _dialect_insert(conn)(t.counts)
        statement = insert.on_conflict_do_nothing(index_elements=["msg_id"]).returning(
            t.counts.c.msg_id
        )
        inserted = set(conn.execute(statement, rows).scalars())
    new = [count for msg_id, count in unique.items() if msg_id in inserted]
    latest = {(count.zone, count.location): count.gateway for count in new if _covers(count)}
    _cover_many(conn, latest, received_at)
    return new


_ARRAY_COLUMNS: tuple[str, ...] = ("msg_id", "gateway", "zone", "location", "scan_id")
_ARRAY_COLUMNS += ("observed_at", "source", "complete", "historical", "items")


@functools.cache
def _insert_arrays() -> sa.Insert:
    """PostgreSQL: insert the counts given as one array per column (``unnest``), once each.

    One statement whose text is the same whatever the number of counts: PostgreSQL plans
    it once (psycopg prepares a statement run often) and psycopg parses it once, where a
    multi-row VALUES list is a new text each time (``bench/centre_ingest.py``).
    """
    columns = [t.counts.c[name] for name in _ARRAY_COLUMNS]
    values = [
        sa.func.unnest(sa.bindparam(c.name, type_=ARRAY(c.type)))
        if c.name != "items"
        else sa.cast(sa.func.unnest(sa.bindparam(c.name, type_=ARRAY(sa.Text()))), c.type)
        for c in columns
    ]
    arrays = sa.select(*values, sa.bindparam("received_at", type_=t.counts.c.received_at.type))
    return (
        postgresql_insert(t.counts)
        .from_select([*columns, t.counts.c.received_at], arrays)
        .on_conflict_do_nothing(index_elements=["msg_id"])
        .returning(t.counts.c.msg_id)
    )


def _as_arrays(rows: list[dict[str, Any]], received_at: datetime) -> dict[str, Any]:
    """The parameters of :func:`_insert_arrays`: each column's values, in row order."""
    arrays: dict[str, Any] = {name: [row[name] for row in rows] for name in _ARRAY_COLUMNS}
    arrays["items"] = [json.dumps(items) for items in arrays["items"]]
    return arrays | {"received_at": received_at}


def _dialect_insert(conn: Connection) -> Any:
    """The dialect's INSERT with ``ON CONFLICT`` (SQLite and PostgreSQL both have it)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql_insert
    if dialect == "sqlite":
        return sqlite_insert
    raise NotImplementedError(f"the store runs on SQLite or PostgreSQL, not {dialect}")


def _cover_many(conn: Connection, latest: Mapping[tuple[str, str], str], at: datetime) -> None:
    """Upsert coverage rows in one statement, in key order (two instances upserting the same
    rows take their locks in one order, so they cannot deadlock)."""
    keys = sorted(latest)
    if not keys:  # every count of the batch was a person's
        return
    if conn.dialect.name == "postgresql":
        arrays = {
            "zone": [zone for zone, _ in keys],
            "location": [location for _, location in keys],
            "gateway": [latest[key] for key in keys],
        }
        conn.execute(_cover_arrays(), arrays | {"last_seen": at})
        return
    rows = [
        {"zone": zone, "location": location, "gateway": latest[zone, location], "last_seen": at}
        for zone, location in keys
    ]
    statement = _dialect_insert(conn)(t.coverage)
    conn.execute(_upsert_coverage(statement), rows)


@functools.cache
def _cover_arrays() -> sa.Insert:
    """PostgreSQL: upsert coverage given as one array per column (see :func:`_insert_arrays`)."""
    c = t.coverage.c
    values = [
        sa.func.unnest(sa.bindparam(name, type_=ARRAY(c[name].type)))
        for name in ("zone", "location", "gateway")
    ]
    arrays = sa.select(*values, sa.bindparam("last_seen", type_=c.last_seen.type))
    statement = postgresql_insert(t.coverage).from_select(
        [c.zone, c.location, c.gateway, c.last_seen], arrays
    )
    upsert: sa.Insert = _upsert_coverage(statement)
    return upsert


def _upsert_coverage(statement: Any) -> Any:
    """An INSERT into coverage that updates the gateway and time of a location known."""
    return statement.on_conflict_do_update(
        index_elements=["zone", "location"],
        set_={"gateway": statement.excluded.gateway, "last_seen": statement.excluded.last_seen},
    )
