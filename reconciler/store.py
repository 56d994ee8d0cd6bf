"""The reconciler's store: one SQLAlchemy Core code path for SQLite and PostgreSQL.

:func:`open_store` creates the engine (SQLite in WAL mode, foreign keys on), brings the schema
to the newest Alembic revision, and returns a :class:`Store`. Writes that must be idempotent
(messages delivered twice by QoS 1) insert into ``messages`` first and stop on a duplicate.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
from edgecount.timefmt import parse_utc, utc
from reconciler import schema as t
from reconciler.model import AbcClass, BookLine, Movement
from reconciler.rules import AcceptedFigures, book_as_of

log = logging.getLogger(__name__)

_CLASSES = {abc.value: abc for abc in AbcClass}


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


class DatabaseUnavailableError(Exception):
    """The database cannot be opened; the message names the URL (password masked) and a fix."""


def masked(url: str) -> str:
    """A database URL fit to print: its password replaced by ``***``."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _driver_hint(exc: ImportError) -> str:
    if exc.name is not None and exc.name.startswith("psycopg"):
        return "install it: pip install 'edgecount[postgres]'"
    return "install the driver the URL names, or use postgresql+psycopg:// or sqlite:///"


def open_store(url: str) -> Store:
    """Open (and migrate) the database at a SQLAlchemy URL.

    Raises:
        DatabaseUnavailableError: The URL is not valid, its driver is not installed, or the database
            cannot be reached (one line, the URL with its password masked).
    """
    shown = masked(url)
    try:
        engine = sa.create_engine(url, future=True)
    except ImportError as exc:
        why = f"its driver {exc.name or exc} is not installed"
        raise DatabaseUnavailableError(f"database {shown}: {why}; {_driver_hint(exc)}") from None
    except sa.exc.ArgumentError as exc:
        raise DatabaseUnavailableError(
            f"database URL {shown} is not valid ({exc}); expected e.g."
            " sqlite:////var/lib/edgecount/reconciler.sqlite3 or"
            " postgresql+psycopg://user@host:5432/edgecount"
        ) from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    try:
        migrate(engine)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise DatabaseUnavailableError(
            f"database {shown} cannot be reached: {reason}; check host, port, name and"
            " credentials in `database:` and that the server runs"
        ) from None
    return Store(engine)


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
        rows = _book_rows(lines)
        with self.engine.begin() as conn:
            conn.execute(t.book.delete())
            _insert_book(conn, rows)
            self._book_meta(conn, at, source, len(rows))
            self.audit_in(conn, "import", "book.import", source, {"rows": len(rows)})
        return len(rows)

    def replace_locations(self, lines: Iterable[BookLine], *, source: str, at: datetime) -> int:
        """Replace the book of the locations in ``lines``; keep every other location.

        The book has one snapshot time. The kept locations that moved between the old
        snapshot time and ``at`` are brought to ``at`` (:func:`reconciler.rules.book_as_of`),
        so their book at any moment stays what it was.

        Returns:
            The book's row count after the import.
        """
        new = list(lines)
        replaced = {b.location for b in new}
        with self.engine.begin() as conn:
            old_at = conn.execute(sa.select(t.book_meta.c.snapshot_at)).scalar()
            if old_at is not None and utc(old_at) != utc(at):
                self._roll_kept(conn, utc(old_at), utc(at), replaced)
            for chunk in chunks(replaced):
                conn.execute(t.book.delete().where(t.book.c.location.in_(chunk)))
            _insert_book(conn, _book_rows(new))
            total = conn.execute(sa.select(sa.func.count()).select_from(t.book)).scalar_one()
            self._book_meta(conn, at, source, total)
            detail = {"rows": len(new), "locations": len(replaced), "total": total}
            self.audit_in(conn, "import", "book.import_locations", source, detail)
        return int(total)

    def _roll_kept(
        self, conn: Connection, old_at: datetime, at: datetime, replaced: set[str]
    ) -> None:
        lo, hi = min(old_at, at), max(old_at, at)
        m = t.movements.c
        moved = conn.execute(
            sa.select(m.location).distinct().where(m.ts > lo, m.ts <= hi)
        ).scalars()
        for chunk in chunks(set(moved) - replaced):
            lines = [
                BookLine(r.location, r.sku, r.qty, r.unit_cost, _CLASSES[r.abc])
                for r in conn.execute(sa.select(t.book).where(t.book.c.location.in_(chunk)))
            ]
            moves = [
                _movement(r)
                for r in conn.execute(
                    sa.select(t.movements).where(m.location.in_(chunk), m.ts > lo, m.ts <= hi)
                )
            ]
            rolled = book_as_of(lines, old_at, moves, at)
            conn.execute(t.book.delete().where(t.book.c.location.in_(chunk)))
            _insert_book(conn, _book_rows(rolled.values()))

    def _book_meta(self, conn: Connection, at: datetime, source: str, rows: int) -> None:
        conn.execute(t.book_meta.delete())
        conn.execute(
            t.book_meta.insert().values(id=1, snapshot_at=utc(at), source=source, rows=rows)
        )

    def add_movements(self, moves: Iterable[Movement], *, actor: str = "import") -> int:
        """Append movements to the log; returns how many."""
        rows = _movement_rows(moves)
        if rows:
            with self.engine.begin() as conn:
                conn.execute(t.movements.insert(), rows)
                self.audit_in(conn, actor, "movements.add", "movements", {"rows": len(rows)})
        return len(rows)

    def add_movements_once(
        self, moves: Sequence[Movement], *, actor: str = "import"
    ) -> MovementOutcome:
        """Add the movements whose ``movement_id`` is not stored yet, all or nothing.

        A movement stored before with the same id and the same ts, location, SKU and
        qty_delta is skipped; with other content it is a conflict, and nothing is added.
        Movements without an id are always added. If another import stores some of the ids
        at the same moment, the unique index refuses this transaction and the check runs
        again, so a movement is never applied twice.

        Returns:
            How many were added, and the conflicts (index in ``moves``, the stored movement).
        """
        for _ in range(5):
            try:
                return self._add_movements_once(moves, actor)
            except IntegrityError:
                log.info("movements: another import stored some of these ids; checking again")
        raise RuntimeError("movements: the import kept colliding with another one")

    def _add_movements_once(self, moves: Sequence[Movement], actor: str) -> MovementOutcome:
        ids = [m.movement_id for m in moves if m.movement_id is not None]
        with self.engine.begin() as conn:
            stored: dict[str, Movement] = {}
            for chunk in chunks(ids):
                query = sa.select(t.movements).where(t.movements.c.movement_id.in_(chunk))
                stored.update((r.movement_id, _movement(r)) for r in conn.execute(query))
            conflicts = [
                (index, stored[m.movement_id])
                for index, m in enumerate(moves)
                if m.movement_id in stored and not _same(stored[m.movement_id], m)
            ]
            if conflicts:
                return MovementOutcome(0, conflicts)
            new = [m for m in moves if m.movement_id is None or m.movement_id not in stored]
            if new:
                conn.execute(t.movements.insert(), _movement_rows(new))
                detail = {"rows": len(new), "already_imported": len(moves) - len(new)}
                self.audit_in(conn, actor, "movements.add", "movements", detail)
        return MovementOutcome(len(new), [])

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


@dataclass(frozen=True, slots=True)
class MovementOutcome:
    """What :meth:`Store.add_movements_once` did."""

    added: int
    conflicts: list[tuple[int, Movement]]
    """(index in the movements given, the movement stored before with that id)."""


def _same(a: Movement, b: Movement) -> bool:
    return (utc(a.ts), a.location, a.sku, a.qty_delta) == (
        utc(b.ts),
        b.location,
        b.sku,
        b.qty_delta,
    )


def _book_rows(lines: Iterable[BookLine]) -> list[dict[str, Any]]:
    return [
        {"location": b.location, "sku": b.sku, "qty": b.qty, "unit_cost": b.unit_cost}
        | {"abc": b.abc.value}
        for b in lines
    ]


def _insert_book(conn: Connection, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 5000):
        conn.execute(t.book.insert(), rows[start : start + 5000])


def _movement_rows(moves: Iterable[Movement]) -> list[dict[str, Any]]:
    return [
        {"ts": utc(m.ts), "location": m.location, "sku": m.sku, "qty_delta": m.qty_delta}
        | {"user": m.user, "doc": m.doc, "movement_id": m.movement_id}
        for m in moves
    ]


def _movement(r: Any) -> Movement:
    return Movement(utc(r.ts), r.location, r.sku, r.qty_delta, r.user, r.doc, r.movement_id)


_parse = parse_utc
