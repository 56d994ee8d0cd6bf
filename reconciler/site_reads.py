"""What the engine reads to assess new counts: of one site, or of many sites at once.

To compare a batch of counts the engine needs, for the batch's locations, where a
discrepancy is open, the book snapshot and its lines, the movements since, and the
differences people accepted (:class:`SiteReads`). One site reads them with one statement
each (:meth:`SiteReads.read`). A centre's batch holds counts of a hundred sites, each in its
own PostgreSQL schema: :func:`read_many` reads every site's part with the same five
statements, each a ``UNION ALL`` of the same query over every site's copy of the table,
tagged with the site's schema. So a batch costs five round trips whatever the number of
sites, instead of five per site (measured in ``bench/centre_ingest.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.model import BookLine, Movement
from reconciler.queries.discrepancies import open_locations_in, open_locations_query
from reconciler.rules import AcceptedFigures
from reconciler.store_book import (
    Accepted,
    BookLedger,
    Locations,
    accepted_query,
    accepted_variances,
    book_lines_query,
    collect_accepted,
    collect_book_lines,
    collect_movements,
    movements_query,
    sku_info,
    snapshot_query,
)

__all__ = ["SiteReads", "read_many"]

SITE = "edgecount_site"  # the column naming the schema a row of a union came from


@dataclass(frozen=True, slots=True)
class SiteReads:
    """What assessing counts of some locations of one site needs."""

    flagged: set[str]
    """Those locations where a discrepancy is open."""
    ledger: BookLedger
    accepted: AcceptedFigures

    @classmethod
    def read(cls, conn: sa.Connection, locations: Collection[str]) -> SiteReads:
        """Read them in ``conn`` (the site's store), one statement each."""
        return cls(
            open_locations_in(conn, locations),
            BookLedger.read(conn, locations),
            accepted_variances(conn, locations),
        )


def read_many(conn: sa.Connection, wanted: Mapping[str, Collection[str]]) -> dict[str, SiteReads]:
    """:meth:`SiteReads.read` for many sites of one PostgreSQL database, at once.

    Args:
        conn: A connection to the database (any schema translation is ignored: every
            statement names each site's schema).
        wanted: Schema → the locations wanted there.

    Returns:
        Schema → what was read there.
    """
    if not wanted:
        return {}
    flagged: dict[str, set[str]] = {schema: set() for schema in wanted}
    rows = _union(conn, wanted, "open", lambda tb, locs: open_locations_query(tb.d, locs))
    for schema, row in rows:
        flagged[schema].add(row.location)
    taken: dict[str, datetime | None] = dict.fromkeys(wanted)
    for schema, row in _union(conn, wanted, "snapshot", lambda tb, _: snapshot_query(tb.meta)):
        taken[schema] = utc(row.snapshot_at)
    lines: dict[str, dict[str, list[BookLine]]] = {schema: {} for schema in wanted}
    rows = _union(conn, wanted, "book", lambda tb, locs: book_lines_query(tb.book, locs))
    for schema, group in _grouped(rows):
        collect_book_lines(lines[schema], group)
    moves: dict[str, dict[str, list[Movement]]] = {schema: {} for schema in wanted}
    rows = _union(
        conn,
        wanted,
        "movements",
        lambda tb, locs: movements_query(tb.moves, locs),
        order=("ts", "id"),
    )
    for schema, group in _grouped(rows):
        collect_movements(moves[schema], group)
    accepted: dict[str, Accepted] = {schema: {} for schema in wanted}
    rows = _union(
        conn, wanted, "accepted", lambda tb, locs: accepted_query(tb.accepted, tb.moves, locs)
    )
    for schema, group in _grouped(rows):
        collect_accepted(accepted[schema], group)
    return {
        schema: SiteReads(
            flagged[schema],
            _ledger(conn, schema, taken[schema], lines[schema], moves[schema]),
            accepted[schema],
        )
        for schema in wanted
    }


def _ledger(
    conn: sa.Connection,
    schema: str,
    taken: datetime | None,
    lines: dict[str, list[BookLine]],
    moves: dict[str, list[Movement]],
) -> BookLedger:
    """The site's ledger; the rare SKU that moved into a location without a book line of it
    is looked up in the site's book (:meth:`BookLedger.read` does the same)."""
    if taken is None:
        return BookLedger(None, {}, {})
    strangers: set[str] = set()
    for location, found in moves.items():
        own = {line.sku for line in lines.get(location, ())}
        strangers.update(m.sku for m in found if m.sku not in own)
    known = sku_info(conn, strangers, book=_tables(schema).book) if strangers else {}
    return BookLedger(taken, lines, moves, known)


@dataclass(frozen=True, slots=True)
class _Tables:
    """One site's copies of the tables read here, in its schema."""

    d: sa.Table
    meta: sa.Table
    book: sa.Table
    moves: sa.Table
    accepted: sa.Table


_COPIES: dict[str, _Tables] = {}
_METADATA = sa.MetaData()


def _tables(schema: str) -> _Tables:
    found = _COPIES.get(schema)
    if found is None:
        copy = {  # to_metadata keeps one copy per (schema, name) in _METADATA
            name: table.to_metadata(_METADATA, schema=schema)
            for name, table in {
                "d": t.discrepancies,
                "meta": t.book_meta,
                "book": t.book,
                "moves": t.movements,
                "accepted": t.accepted_variances,
            }.items()
        }
        found = _COPIES.setdefault(schema, _Tables(**copy))
    return found


Query = Callable[[_Tables, "Locations"], sa.Select[Any]]

_BRANCHES: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
_PARAM = re.compile(r"%\((\w+)\)s")


def _branch(
    conn: sa.Connection, kind: str, query: Query, schema: str
) -> tuple[str, dict[str, Any]]:
    """One site's part of a union: its SQL, with parameters named apart from the other
    parts' (``{schema}__…``; a schema is an identifier), and the parameters it fixes; the
    locations go in ``{schema}__l``.

    Compiled once per query and site (PostgreSQL's ``= ANY(array)`` keeps the text the same
    whatever the locations), so a batch of a hundred sites is not compiled a hundred times.
    """
    cached = _BRANCHES.get((kind, schema))
    if cached is None:
        locations = sa.bindparam("l", value=[], type_=ARRAY(sa.String()))
        select = query(_tables(schema), locations).add_columns(sa.literal(schema).label(SITE))
        compiled = select.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        prefix = f"{schema}__"
        sql = _PARAM.sub(lambda m: f"%({prefix}{m.group(1)})s", str(compiled))
        fixed = {prefix + name: value for name, value in compiled.params.items() if name != "l"}
        cached = _BRANCHES.setdefault((kind, schema), (sql, fixed))
    return cached


def _union(
    conn: sa.Connection,
    wanted: Mapping[str, Collection[str]],
    kind: str,
    query: Query,
    *,
    order: tuple[str, ...] = (),
) -> Iterable[tuple[str, Any]]:
    """Run ``query`` on every site's tables in one statement; (schema, row) of each row.

    The rows come grouped by schema (ordered by it, then by ``order``).
    """
    branches: list[str] = []
    params: dict[str, Any] = {}
    for schema, locations in sorted(wanted.items()):
        sql, fixed = _branch(conn, kind, query, schema)
        branches.append(sql)
        params |= fixed
        params[f"{schema}__l"] = sorted(locations)
    keys = ", ".join((SITE, *order))
    # compiled SQL of our own queries and identifiers; every value is a parameter
    union = " UNION ALL ".join(branches)
    statement = f"SELECT * FROM ({union}) AS u ORDER BY {keys}"  # noqa: S608
    for row in conn.exec_driver_sql(statement, params):
        yield row._mapping[SITE], row


def _grouped(rows: Iterable[tuple[str, Any]]) -> Iterable[tuple[str, list[Any]]]:
    """Consecutive rows of one schema, together."""
    current: str | None = None
    group: list[Any] = []
    for schema, row in rows:
        if schema != current:
            if current is not None:
                yield current, group
            current, group = schema, []
        group.append(row)
    if current is not None:
        yield current, group
