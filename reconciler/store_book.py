"""The store's book and movements: snapshots, the movement log, and the book at any moment.

:class:`BookStore` is the part of :class:`reconciler.store.Store` that imports and reads the
book (``book``, ``book_meta``) and the movement log (``movements``), and reads the variances
people accepted; :class:`BookLedger` holds what the book of some locations needs to be taken
as of any moment. Imports write one audit entry in their own transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.model import AbcClass, BookLine, Movement
from reconciler.repository import audit
from reconciler.rules import AcceptedFigures, book_as_of

log = logging.getLogger(__name__)

_CLASSES = {abc.value: abc for abc in AbcClass}

Accepted = dict[tuple[str, str], set[tuple[int, int]]]  # AcceptedFigures, being filled


class BookStore:
    """Book and movements of :class:`reconciler.store.Store` (mixed into it)."""

    __slots__ = ()
    engine: Engine

    def replace_book(self, lines: Iterable[BookLine], *, source: str, at: datetime) -> int:
        """Replace the whole book with a snapshot taken at ``at``; returns its row count."""
        rows = _book_rows(lines)
        with self.engine.begin() as conn:
            conn.execute(t.book.delete())
            _insert_book(conn, rows)
            self._book_meta(conn, at, source, len(rows))
            audit(conn, "import", "book.import", source, {"rows": len(rows)})
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
            audit(conn, "import", "book.import_locations", source, detail)
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
                audit(conn, actor, "movements.add", "movements", {"rows": len(rows)})
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
                audit(conn, actor, "movements.add", "movements", detail)
        return MovementOutcome(len(new), [])

    def book_snapshot_at(self) -> datetime | None:
        """When the current book snapshot was taken (None: no book imported yet)."""
        with self.engine.connect() as conn:
            return snapshot_at(conn)

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
        with self.engine.connect() as conn:
            return book_lines_of(conn, locations)

    def movements_of(
        self, locations: Iterable[str], *, after: datetime | None = None
    ) -> dict[str, list[Movement]]:
        """Movements of several locations (only those after ``after``), oldest first."""
        with self.engine.connect() as conn:
            return movements_of(conn, locations, after=after)

    def sku_info(self, skus: Iterable[str]) -> dict[str, tuple[float, AbcClass]]:
        """Unit cost and class of SKUs, from any book line that holds them."""
        with self.engine.connect() as conn:
            return sku_info(conn, skus)

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

    def accepted_variances(self, locations: Iterable[str]) -> AcceptedFigures:
        """Differences people accepted that still stand (:func:`accepted_variances`)."""
        with self.engine.connect() as conn:
            return accepted_variances(conn, locations)


# -- readers in the caller's connection (one round trip each, chunked IN lists) -------------


def snapshot_at(conn: Connection) -> datetime | None:
    """When the current book snapshot was taken (None: no book imported yet)."""
    value = conn.execute(snapshot_query(t.book_meta)).scalar()
    return utc(value) if value is not None else None


def book_lines_of(conn: Connection, locations: Iterable[str]) -> dict[str, list[BookLine]]:
    """Book lines of several locations, by location."""
    found: dict[str, list[BookLine]] = {}
    for chunk in chunks(locations):
        collect_book_lines(found, conn.execute(book_lines_query(t.book, chunk)))
    return found


def movements_of(
    conn: Connection, locations: Iterable[str], *, after: datetime | None = None
) -> dict[str, list[Movement]]:
    """Movements of several locations (only those after ``after``), oldest first."""
    found: dict[str, list[Movement]] = {}
    for chunk in chunks(locations):
        query = movements_query(t.movements, chunk, after).order_by(
            t.movements.c.ts, t.movements.c.id
        )
        collect_movements(found, conn.execute(query))
    return found


def sku_info(
    conn: Connection, skus: Iterable[str], *, book: sa.Table = t.book
) -> dict[str, tuple[float, AbcClass]]:
    """Unit cost and class of SKUs, from any book line that holds them (in ``book``)."""
    wanted = list(set(skus))
    if not wanted:
        return {}
    query = sa.select(book.c.sku, book.c.unit_cost, book.c.abc).where(book.c.sku.in_(wanted))
    return {r.sku: (r.unit_cost, _CLASSES[r.abc]) for r in conn.execute(query)}


def accepted_variances(conn: Connection, locations: Iterable[str]) -> AcceptedFigures:
    """Differences people accepted (rejected discrepancies) that still stand, by record.

    A rejected line stands until a movement of its location x SKU is booked after the
    decision; a new count or book changes the figures themselves, so
    :func:`reconciler.rules.apply_accepted` no longer finds them.

    Returns:
        (location, SKU) -> the set of (book_qty, counted_qty) figures accepted there.
    """
    found: Accepted = {}
    for chunk in chunks(locations):
        query = accepted_query(t.accepted_variances, t.movements, chunk)
        collect_accepted(found, conn.execute(query))
    return found


# -- the queries, for any copy of the tables (a centre reads many sites' schemas at once) ---


def snapshot_query(book_meta: sa.Table) -> sa.Select[Any]:
    """The snapshot time (one row, or none before the first import)."""
    return sa.select(book_meta.c.snapshot_at)


Locations = Sequence[str] | sa.BindParameter[Any]
"""Locations a query is about: a list, or an array parameter (PostgreSQL's ``= ANY``)."""


def of_locations(column: sa.Column[Any], locations: Locations) -> sa.ColumnElement[bool]:
    """``column`` is one of ``locations`` (IN a list, or ``= ANY`` an array parameter)."""
    if isinstance(locations, sa.BindParameter):
        return column == sa.any_(locations)
    return column.in_(locations)


def book_lines_query(book: sa.Table, locations: Locations) -> sa.Select[Any]:
    """Book lines of ``locations``: location, sku, qty, unit_cost, abc."""
    c = book.c
    return sa.select(c.location, c.sku, c.qty, c.unit_cost, c.abc).where(
        of_locations(c.location, locations)
    )


def collect_book_lines(found: dict[str, list[BookLine]], rows: Iterable[Any]) -> None:
    """Add the rows of :func:`book_lines_query` to ``found``, by location."""
    classes = _CLASSES
    for r in rows:
        found.setdefault(r.location, []).append(
            BookLine(r.location, r.sku, r.qty, r.unit_cost, classes[r.abc])
        )


def movements_query(
    movements: sa.Table, locations: Locations, after: datetime | None = None
) -> sa.Select[Any]:
    """Movements of ``locations`` (after ``after``); the caller orders them by ts, id."""
    query = sa.select(movements).where(of_locations(movements.c.location, locations))
    return query if after is None else query.where(movements.c.ts > after)


def collect_movements(found: dict[str, list[Movement]], rows: Iterable[Any]) -> None:
    """Add the rows of :func:`movements_query` (oldest first) to ``found``, by location."""
    for r in rows:
        found.setdefault(r.location, []).append(_movement(r))


def accepted_query(accepted: sa.Table, movements: sa.Table, locations: Locations) -> sa.Select[Any]:
    """Accepted variances of ``locations`` not overtaken by a movement booked since."""
    av, m = accepted.c, movements.c
    moved_since = (
        sa.select(m.id).where(m.location == av.location, m.sku == av.sku, m.ts > av.decided_at)
    ).exists()
    return sa.select(av.location, av.sku, av.book_qty, av.counted_qty).where(
        of_locations(av.location, locations), ~moved_since
    )


def collect_accepted(found: Accepted, rows: Iterable[Any]) -> None:
    """Add the rows of :func:`accepted_query` to ``found``."""
    for r in rows:
        found.setdefault((r.location, r.sku), set()).add((r.book_qty, r.counted_qty))


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
        cls, store: BookStore, locations: Iterable[str], earliest: datetime | None = None
    ) -> BookLedger:
        """Read once what the book of ``locations`` needs, for moments at/after ``earliest``."""
        with store.engine.connect() as conn:
            return cls.read(conn, locations, earliest)

    @classmethod
    def read(
        cls, conn: Connection, locations: Iterable[str], earliest: datetime | None = None
    ) -> BookLedger:
        """:meth:`load` in the caller's connection (and transaction)."""
        taken = snapshot_at(conn)
        if taken is None:
            return cls(None, {}, {})
        wanted = set(locations)
        floor = None if earliest is None else min(taken, earliest)
        lines = book_lines_of(conn, wanted)
        moves = movements_of(conn, wanted, after=floor)
        strangers: set[str] = set()
        for location, found in moves.items():
            own = {line.sku for line in lines.get(location, ())}
            strangers.update(m.sku for m in found if m.sku not in own)
        return cls(taken, lines, moves, sku_info(conn, strangers))

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
