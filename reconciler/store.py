"""The reconciler's store: one SQLAlchemy Core code path for SQLite and PostgreSQL.

:func:`open_store` creates the engine (SQLite in WAL mode, foreign keys on), brings the schema
to the newest Alembic revision, and returns a :class:`Store`. Writes that must be idempotent
(messages delivered twice by QoS 1) insert into ``messages`` first and stop on a duplicate.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

import reconciler.migrations
from reconciler import schema as t
from reconciler.model import AbcClass, BookLine, Movement
from reconciler.rules import AcceptedFigures, book_as_of

log = logging.getLogger(__name__)

BOOK_COLUMNS = ("location", "sku", "qty", "unit_cost", "abc")
_CLASSES = {abc.value: abc for abc in AbcClass}
MOVEMENT_COLUMNS = ("ts", "location", "sku", "qty_delta", "user", "doc")


class CsvImportError(ValueError):
    """A CSV file could not be imported; the message names file, line and column."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, fast
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema revision (Alembic ``upgrade head``)."""
    config = Config()
    config.set_main_option("script_location", str(Path(reconciler.migrations.__file__).parent))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_store(url: str) -> Store:
    """Open (and migrate) the database at a SQLAlchemy URL."""
    engine = sa.create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    migrate(engine)
    return Store(engine)


def utc(moment: datetime) -> datetime:
    """Aware UTC (SQLite gives naive datetimes back)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _number(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CsvImportError(f"{where}: {column}: not a number: {text!r}") from None
    if not math.isfinite(value):
        raise CsvImportError(f"{where}: {column}: not a finite number: {text!r}")
    return value


def _whole(text: str, where: str, column: str) -> int:
    value = _number(text, where, column)
    if value != int(value):
        raise CsvImportError(f"{where}: {column}: not a whole number of units: {text!r}")
    return int(value)


def _read_csv(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = tuple(name.strip() for name in reader.fieldnames or ())
        if header != columns:
            raise CsvImportError(
                f"{path}:1: header must be {','.join(columns)}; got {','.join(header) or '(empty)'}"
            )
        for row in reader:
            yield (
                f"{path}:{reader.line_num}",
                {k.strip(): (v or "").strip() for k, v in row.items()},
            )


def read_book_csv(path: Path) -> list[BookLine]:
    """Parse a book CSV (``location,sku,qty,unit_cost,abc``); every error names its line."""
    lines: list[BookLine] = []
    seen: set[tuple[str, str]] = set()
    for where, row in _read_csv(path, BOOK_COLUMNS):
        if not row["location"] or not row["sku"]:
            raise CsvImportError(f"{where}: location and sku must not be empty")
        if row["abc"].upper() not in ("A", "B", "C"):
            raise CsvImportError(f"{where}: abc: must be A, B or C, got {row['abc']!r}")
        key = (row["location"], row["sku"])
        if key in seen:
            raise CsvImportError(f"{where}: {key[0]}/{key[1]} appears twice")
        seen.add(key)
        qty = _whole(row["qty"], where, "qty")
        cost = _number(row["unit_cost"], where, "unit_cost")
        if qty < 0 or cost < 0:
            raise CsvImportError(f"{where}: qty and unit_cost must not be negative")
        lines.append(BookLine(key[0], key[1], qty, cost, AbcClass(row["abc"].upper())))
    return lines


def read_movements_csv(path: Path) -> list[Movement]:
    """Parse a movement log CSV (``ts,location,sku,qty_delta,user,doc``)."""
    found: list[Movement] = []
    for where, row in _read_csv(path, MOVEMENT_COLUMNS):
        try:
            ts = utc(datetime.fromisoformat(row["ts"].replace("Z", "+00:00")))
        except ValueError:
            raise CsvImportError(f"{where}: ts: not an ISO-8601 time: {row['ts']!r}") from None
        delta = _whole(row["qty_delta"], where, "qty_delta")
        found.append(Movement(ts, row["location"], row["sku"], delta, row["user"], row["doc"]))
    return found


@dataclass(slots=True)
class Store:
    """Typed access to the reconciler's tables."""

    engine: Engine

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # -- book and movements ---------------------------------------------------------------

    def replace_book(self, lines: Iterable[BookLine], *, source: str, at: datetime) -> int:
        """Replace the whole book with a snapshot taken at ``at``; returns its row count."""
        rows = [
            {
                "location": b.location,
                "sku": b.sku,
                "qty": b.qty,
                "unit_cost": b.unit_cost,
                "abc": b.abc.value,
            }
            for b in lines
        ]
        with self.engine.begin() as conn:
            conn.execute(t.book.delete())
            for start in range(0, len(rows), 5000):
                conn.execute(t.book.insert(), rows[start : start + 5000])
            conn.execute(t.book_meta.delete())
            conn.execute(
                t.book_meta.insert().values(
                    id=1, snapshot_at=utc(at), source=source, rows=len(rows)
                )
            )
            self.audit_in(conn, "import", "book.import", source, {"rows": len(rows)})
        return len(rows)

    def add_movements(self, moves: Iterable[Movement], *, actor: str = "import") -> int:
        """Append movements to the log; returns how many."""
        rows = [
            {
                "ts": utc(m.ts),
                "location": m.location,
                "sku": m.sku,
                "qty_delta": m.qty_delta,
                "user": m.user,
                "doc": m.doc,
                "movement_id": m.movement_id,
            }
            for m in moves
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(t.movements.insert(), rows)
                self.audit_in(conn, actor, "movements.add", "movements", {"rows": len(rows)})
        return len(rows)

    def book_snapshot_at(self) -> datetime | None:
        """When the current book snapshot was taken (None: no book imported yet)."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(t.book_meta.c.snapshot_at)).scalar()
        return utc(value) if value is not None else None

    def book_lines(self, location: str | None = None) -> list[BookLine]:
        """The current book (snapshot), for one location or all (a million rows: seconds)."""
        query = sa.select(
            t.book.c.location, t.book.c.sku, t.book.c.qty, t.book.c.unit_cost, t.book.c.abc
        )
        if location is not None:
            query = query.where(t.book.c.location == location)
        classes = _CLASSES
        with self.engine.connect() as conn:
            return [
                BookLine(loc, sku, qty, cost, classes[abc])
                for loc, sku, qty, cost, abc in conn.execute(query)
            ]

    def book_lines_of(self, locations: Iterable[str]) -> dict[str, list[BookLine]]:
        """Book lines of several locations, by location (chunked IN queries)."""
        found: dict[str, list[BookLine]] = {}
        for chunk in chunks(locations):
            query = sa.select(t.book).where(t.book.c.location.in_(chunk))
            with self.engine.connect() as conn:
                for r in conn.execute(query):
                    found.setdefault(r.location, []).append(
                        BookLine(r.location, r.sku, r.qty, r.unit_cost, AbcClass(r.abc))
                    )
        return found

    def movements_of(
        self, locations: Iterable[str], *, after: datetime | None = None
    ) -> dict[str, list[Movement]]:
        """Movements of several locations (only those after ``after``), oldest first."""
        found: dict[str, list[Movement]] = {}
        for chunk in chunks(locations):
            query = (
                sa.select(t.movements)
                .where(t.movements.c.location.in_(chunk))
                .order_by(t.movements.c.ts, t.movements.c.id)
            )
            if after is not None:
                query = query.where(t.movements.c.ts > after)
            with self.engine.connect() as conn:
                for r in conn.execute(query):
                    found.setdefault(r.location, []).append(_movement(r))
        return found

    def sku_info(self, skus: Iterable[str]) -> dict[str, tuple[float, AbcClass]]:
        """Unit cost and class of SKUs, from any book line that holds them."""
        wanted = list(set(skus))
        if not wanted:
            return {}
        query = sa.select(t.book.c.sku, t.book.c.unit_cost, t.book.c.abc).where(
            t.book.c.sku.in_(wanted)
        )
        with self.engine.connect() as conn:
            return {r.sku: (r.unit_cost, AbcClass(r.abc)) for r in conn.execute(query)}

    def movements(
        self,
        location: str | None = None,
        *,
        after: datetime | None = None,
        sku: str | None = None,
    ) -> list[Movement]:
        """Movements, oldest first, optionally of one location / SKU and after a time."""
        query = sa.select(t.movements).order_by(t.movements.c.ts, t.movements.c.id)
        if location is not None:
            query = query.where(t.movements.c.location == location)
        if sku is not None:
            query = query.where(t.movements.c.sku == sku)
        if after is not None:
            query = query.where(t.movements.c.ts > after)
        with self.engine.connect() as conn:
            return [_movement(r) for r in conn.execute(query)]

    # -- messages --------------------------------------------------------------------------

    def record_count(self, payload: Mapping[str, Any], received_at: datetime) -> bool:
        """Store an ``edgecount.count/1`` once; False when its msg_id was seen before."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    t.counts.insert().values(
                        msg_id=payload["msg_id"],
                        gateway=payload["gateway"],
                        zone=payload["zone"],
                        location=payload["location"],
                        scan_id=payload["scan_id"],
                        observed_at=_parse(payload["observed_at"]),
                        source=payload["source"],
                        complete=payload["complete"],
                        historical=payload["historical"],
                        received_at=received_at,
                        items=payload["items"],
                    )
                )
                self._cover(
                    conn, payload["zone"], payload["location"], payload["gateway"], received_at
                )
        except IntegrityError:
            return False
        return True

    def record_counts(
        self, payloads: Iterable[Mapping[str, Any]], received_at: datetime
    ) -> list[Mapping[str, Any]]:
        """Store a batch of counts in one transaction; returns the ones not seen before.

        Falls back to one message at a time if another instance stored one of them in the
        meantime (a redelivery to a second member of a shared subscription).
        """
        unique: dict[str, Mapping[str, Any]] = {}
        for payload in payloads:
            unique.setdefault(payload["msg_id"], payload)
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
                new = [p for msg_id, p in unique.items() if msg_id not in seen]
                if new:
                    self._insert_counts(conn, new, received_at)
        except IntegrityError:
            return [p for p in unique.values() if self.record_count(p, received_at)]
        return new

    def _insert_counts(
        self, conn: Connection, new: list[Mapping[str, Any]], received_at: datetime
    ) -> None:
        # counts.msg_id is the primary key: it alone makes a count idempotent
        conn.execute(
            t.counts.insert(),
            [
                {
                    "msg_id": p["msg_id"],
                    "gateway": p["gateway"],
                    "zone": p["zone"],
                    "location": p["location"],
                    "scan_id": p["scan_id"],
                    "observed_at": _parse(p["observed_at"]),
                    "source": p["source"],
                    "complete": p["complete"],
                    "historical": p["historical"],
                    "received_at": received_at,
                    "items": p["items"],
                }
                for p in new
            ],
        )
        latest = {(p["zone"], p["location"]): p["gateway"] for p in new}
        self._cover_many(conn, latest, received_at)

    def _cover_many(
        self, conn: Connection, latest: Mapping[tuple[str, str], str], at: datetime
    ) -> None:
        """Upsert coverage rows in one statement (SQLite and PostgreSQL both have ON CONFLICT)."""
        rows: list[dict[str, Any]] = [
            {"zone": zone, "location": location, "gateway": gateway, "last_seen": at}
            for (zone, location), gateway in latest.items()
        ]
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

    def record_scan(self, payload: Mapping[str, Any], received_at: datetime) -> bool:
        """Store or advance an ``edgecount.scan/1``; False for a duplicate message."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    t.messages.insert().values(
                        msg_id=payload["msg_id"], schema=payload["schema"], received_at=received_at
                    )
                )
                values = {
                    "gateway": payload["gateway"],
                    "zone": payload["zone"],
                    "state": payload["state"],
                    "started_at": _parse(payload["started_at"]),
                    "ended_at": _parse(payload["ended_at"]) if payload.get("ended_at") else None,
                    "request_id": payload.get("request_id"),
                    "locations": payload["locations"],
                    "incomplete_locations": payload.get("incomplete_locations", []),
                }
                updated = conn.execute(
                    t.scans.update().where(t.scans.c.scan_id == payload["scan_id"]).values(values)
                ).rowcount
                if not updated:
                    conn.execute(t.scans.insert().values(scan_id=payload["scan_id"], **values))
                for location in payload["locations"]:
                    self._cover(conn, payload["zone"], location, payload["gateway"], received_at)
        except IntegrityError:
            return False
        return True

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

    def audit_in(
        self, conn: Connection, actor: str, action: str, subject: str, detail: Mapping[str, Any]
    ) -> None:
        """Write one audit log entry inside the caller's transaction."""
        conn.execute(
            t.audit.insert().values(
                at=datetime.now(UTC),
                actor=actor,
                action=action,
                subject=subject,
                detail=dict(detail),
            )
        )

    def audit(self, actor: str, action: str, subject: str, detail: Mapping[str, Any]) -> None:
        """Write one audit log entry."""
        with self.engine.begin() as conn:
            self.audit_in(conn, actor, action, subject, detail)

    def accepted_variances(self, locations: Iterable[str]) -> AcceptedFigures:
        """Differences people accepted (rejected discrepancies) that still stand, by record.

        A rejected line stands until a movement of its location x SKU is booked after the
        decision; a new count or book changes the figures themselves, so
        :func:`reconciler.rules.apply_accepted` no longer finds them.

        Args:
            locations: The locations wanted.

        Returns:
            (location, SKU) -> the set of (book_qty, counted_qty) figures accepted there.
        """
        av, m = t.accepted_variances.c, t.movements.c
        moved_since = (
            sa.select(m.id)
            .where(m.location == av.location, m.sku == av.sku, m.ts > av.decided_at)
            .exists()
        )
        found: dict[tuple[str, str], set[tuple[int, int]]] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(locations):
                query = sa.select(av.location, av.sku, av.book_qty, av.counted_qty).where(
                    av.location.in_(chunk), ~moved_since
                )
                for location, sku, book_qty, counted_qty in conn.execute(query):
                    found.setdefault((location, sku), set()).add((book_qty, counted_qty))
        return found


@dataclass(frozen=True, slots=True)
class BookLedger:
    """Snapshot lines and movements of some locations: their book at any moment.

    ``snapshot_at`` is None when no book was imported (every book is then empty).
    """

    snapshot_at: datetime | None
    lines: dict[str, list[BookLine]]
    moves: dict[str, list[Movement]]
    known: dict[str, tuple[float, AbcClass]] = field(default_factory=dict)
    """Cost and class of SKUs that moved into a location whose snapshot lacks them."""

    @classmethod
    def load(
        cls, store: Store, locations: Iterable[str], earliest: datetime | None = None
    ) -> BookLedger:
        """Read once what the book of ``locations`` needs, for moments at/after ``earliest``."""
        snapshot_at = store.book_snapshot_at()
        if snapshot_at is None:
            return cls(None, {}, {})
        wanted = set(locations)
        floor = None if earliest is None else min(snapshot_at, earliest)
        lines = store.book_lines_of(wanted)
        moves = store.movements_of(wanted, after=floor)
        strangers: set[str] = set()
        for location, found in moves.items():
            own = {line.sku for line in lines.get(location, ())}
            strangers.update(m.sku for m in found if m.sku not in own)
        return cls(snapshot_at, lines, moves, store.sku_info(strangers))

    def book(self, location: str, at: datetime) -> dict[str, BookLine]:
        """One location's book lines by SKU at ``at`` (:func:`reconciler.rules.book_as_of`)."""
        if self.snapshot_at is None:
            return {}
        book = book_as_of(
            self.lines.get(location, ()),
            self.snapshot_at,
            self.moves.get(location, ()),
            at,
            known=self.known,
        )
        return {sku: line for (_, sku), line in book.items()}


IN_CHUNK = 900  # values per SQL IN list (SQLite and PostgreSQL take far more; plans stay small)


def chunks(values: Iterable[str]) -> Iterator[list[str]]:
    """Distinct values, sorted, in lists of at most :data:`IN_CHUNK` (for IN queries)."""
    ordered = sorted(set(values))
    for start in range(0, len(ordered), IN_CHUNK):
        yield ordered[start : start + IN_CHUNK]


def _movement(r: Any) -> Movement:
    return Movement(utc(r.ts), r.location, r.sku, r.qty_delta, r.user, r.doc, r.movement_id)


def _parse(text: str) -> datetime:
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
