"""The discrepancy queue's reads: filtered, valued, classed, sorted and paged in the database.

A discrepancy's **value** is the sum of the absolute ``diff_value`` of its lines (as
:func:`reconciler.auth.limits.discrepancy_value` computes it); its **ABC class** is the
highest class of its lines' SKUs (A above B above C). The lines (a JSON array) hold no
class, so each line's SKU is looked up in the book: the class it has at the discrepancy's
location, else (an unexpected SKU) the highest class it has anywhere in the book, else C,
as the comparison itself treats it (:mod:`reconciler.rules`).

Both figures are computed by the database, in the one query that also filters, sorts by
value and cuts the page (:func:`queue_page`), so a queue of thousands reads one page of
rows, not every row, and never one query per row. The lines are expanded by a table-valued
JSON function (``json_array_elements`` on PostgreSQL, ``json_each`` on SQLite:
:class:`json_elements`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.model import AbcClass
from reconciler.transitions import OPEN_STATES, State

__all__ = [
    "Filters",
    "QueueLine",
    "QueueRow",
    "json_elements",
    "open_counts",
    "open_zones",
    "queue_page",
]

_d = t.discrepancies.c
OPEN = tuple(state.value for state in OPEN_STATES)


class json_elements(FunctionElement[Any]):  # noqa: N801 - an SQL function, named like one
    """The elements of a JSON array, one row each (column ``value``)."""

    inherit_cache = True
    name = "json_elements"


@compiles(json_elements)
def _json_elements(element: json_elements, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_array_elements({compiler.process(element.clauses, **kw)})"


@compiles(json_elements, "sqlite")
def _json_each(element: json_elements, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_each({compiler.process(element.clauses, **kw)})"


@dataclass(frozen=True, slots=True)
class Filters:
    """What the queue shows: the query parameters of the page, checked.

    Attributes:
        zone: Only this zone; empty: every zone.
        abc: Only discrepancies of this class (their highest line class); None: any.
        state: Only this state; None: every open state.
        min_value: Only discrepancies worth at least this much.
        page: The page, from 1.
    """

    zone: str = ""
    abc: AbcClass | None = None
    state: State | None = None
    min_value: float = 0.0
    page: int = 1

    @property
    def states(self) -> tuple[str, ...]:
        """The states shown."""
        return OPEN if self.state is None else (self.state.value,)

    @property
    def by_figures(self) -> bool:
        """Whether the filter needs each discrepancy's value or class."""
        return self.abc is not None or self.min_value > 0


@dataclass(frozen=True, slots=True)
class QueueLine:
    """One line of a discrepancy as the queue shows it."""

    sku: str
    book_qty: int
    counted_qty: int


@dataclass(frozen=True, slots=True)
class Ending:
    """How a closed discrepancy ended."""

    outcome: str
    by: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One discrepancy of the queue."""

    id: int
    zone: str
    location: str
    state: str
    lines: tuple[QueueLine, ...]
    value: float
    abc: str
    recounts: int
    opened_at: datetime
    updated_at: datetime
    ending: Ending | None = None

    @property
    def awaiting(self) -> bool:
        """Whether a person may decide it now."""
        return self.state == State.AWAITING_APPROVAL


# -- the figures of each discrepancy -------------------------------------------------------


def _figures(where: Sequence[sa.ColumnElement[bool]]) -> sa.Subquery:
    """``(id, value, abc)`` of each discrepancy matching ``where``."""
    element = json_elements(_d.lines).table_valued(sa.column("value", sa.JSON)).alias("element")
    diff_value = element.c.value["diff_value"].as_float()
    lines = (
        sa.select(
            _d.id,
            _d.location,
            element.c.value["sku"].as_string().label("sku"),
            sa.func.abs(sa.func.coalesce(diff_value, 0.0)).label("value"),
        )
        .select_from(t.discrepancies.outerjoin(element, sa.true()))
        .where(*where)
        .cte("line")
    )
    here = t.book.alias("here")
    anywhere = (
        sa.select(t.book.c.sku, sa.func.min(t.book.c.abc).label("abc"))
        .where(t.book.c.sku.in_(sa.select(lines.c.sku)))
        .group_by(t.book.c.sku)
        .subquery("anywhere")
    )
    booked = lines.outerjoin(
        here, sa.and_(here.c.location == lines.c.location, here.c.sku == lines.c.sku)
    ).outerjoin(anywhere, anywhere.c.sku == lines.c.sku)
    # min(): "A" < "B" < "C", so the highest class of the lines
    abc = sa.func.min(sa.func.coalesce(here.c.abc, anywhere.c.abc, AbcClass.C.value))
    return (
        sa.select(lines.c.id, sa.func.sum(lines.c.value).label("value"), abc.label("abc"))
        .select_from(booked)
        .group_by(lines.c.id)
        .subquery("figures")
    )


def _where(filters: Filters, states: Sequence[str]) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = [_d.state.in_(states)]
    if filters.zone:
        where.append(_d.zone == filters.zone)
    return where


def _by_figures(figures: sa.Subquery, filters: Filters) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if filters.abc is not None:
        where.append(figures.c.abc == filters.abc.value)
    if filters.min_value > 0:
        where.append(figures.c.value >= filters.min_value)
    return where


# -- the page ---------------------------------------------------------------------------------


def queue_page(conn: sa.Connection, filters: Filters, size: int) -> tuple[list[QueueRow], int]:
    """One page of the queue, largest value first, and how many match in all.

    One query: filtered, valued and classed, sorted and cut by the database. A page past
    the end is empty (the total still says how many match: a second query, only then).
    """
    figures = _figures(_where(filters, filters.states))
    query = (
        sa.select(
            t.discrepancies,
            figures.c.value,
            figures.c.abc,
            sa.func.count().over().label("total"),
        )
        .select_from(t.discrepancies.join(figures, figures.c.id == _d.id))
        .where(*_by_figures(figures, filters))
        .order_by(figures.c.value.desc(), _d.id.desc())
        .limit(size)
        .offset((filters.page - 1) * size)
    )
    found = conn.execute(query).all()
    if not found:
        return [], 0 if filters.page == 1 else _count(conn, filters, figures)
    endings = _endings(conn, [row.id for row in found if row.state not in OPEN])
    return [_row(row, endings.get(row.id)) for row in found], int(found[0].total)


def _count(conn: sa.Connection, filters: Filters, figures: sa.Subquery) -> int:
    query = sa.select(sa.func.count()).select_from(figures).where(*_by_figures(figures, filters))
    return int(conn.execute(query).scalar_one())


def _row(row: sa.Row[Any], ending: Ending | None) -> QueueRow:
    return QueueRow(
        id=row.id,
        zone=row.zone,
        location=row.location,
        state=row.state,
        lines=tuple(
            QueueLine(str(line["sku"]), int(line["book_qty"]), int(line["counted_qty"]))
            for line in row.lines
        ),
        value=float(row.value or 0.0),
        abc=row.abc,
        recounts=row.recounts,
        opened_at=utc(row.opened_at),
        updated_at=utc(row.updated_at),
        ending=ending,
    )


def _endings(conn: sa.Connection, ids: list[int]) -> dict[int, Ending]:
    """The last decision of each closed discrepancy of the page."""
    if not ids:
        return {}
    d = t.decisions.c
    query = (
        sa.select(d.discrepancy_id, d.outcome, d.decided_by, d.reason_code, d.at)
        .where(d.discrepancy_id.in_(ids))
        .order_by(d.id)
    )
    return {
        row.discrepancy_id: Ending(row.outcome, row.decided_by, row.reason_code, utc(row.at))
        for row in conn.execute(query)
    }


# -- around the page --------------------------------------------------------------------------


def open_counts(conn: sa.Connection, filters: Filters) -> dict[str, int]:
    """How many discrepancies of each open state match the filters other than the state.

    Without a class or value filter no line is read: a count by state.
    """
    where = _where(filters, OPEN)
    if filters.by_figures:
        figures = _figures(where)
        query = (
            sa.select(_d.state, sa.func.count())
            .select_from(t.discrepancies.join(figures, figures.c.id == _d.id))
            .where(*_by_figures(figures, filters))
            .group_by(_d.state)
        )
    else:
        query = sa.select(_d.state, sa.func.count()).where(*where).group_by(_d.state)
    counted = {state: int(n) for state, n in conn.execute(query).all()}
    return {state: counted.get(state, 0) for state in OPEN}


def open_zones(conn: sa.Connection) -> list[str]:
    """The zones where a discrepancy is open, for the zone filter."""
    query = sa.select(_d.zone).where(_d.state.in_(OPEN)).distinct().order_by(_d.zone)
    return list(conn.execute(query).scalars())
