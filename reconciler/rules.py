"""Comparison rules: tolerances, the book as of a moment, and count-versus-book records.

Pure logic, no I/O. The reconciler's config loads :class:`TolerancePolicy` from YAML;
:func:`compare` turns a book and the counts of a scan into :class:`~reconciler.model.Row` s.

Tolerance semantics
-------------------
A record with ``diff = counted - book`` is **within tolerance** when ``diff == 0``, or when
both of these pass:

* the value check: ``value is None`` or ``abs(diff) * unit_cost <= value``;
* the quantity check: ``abs_qty is not None and abs(diff) <= abs_qty``, or ``book > 0`` and
  either ``0 < diff <= over_pct / 100 * book`` or ``0 < -diff <= short_pct / 100 * book``.

With a book of 0 only ``abs_qty`` can admit a difference (a percentage of nothing is
nothing). Quantities are whole units; the percentage limits allow a relative slack of 1e-9
(plus 1e-9 absolute), so float arithmetic never turns a limit into a miss.

Statuses (see :class:`~reconciler.model.Status`), decided per record in this order:

1. the location was not scanned: ``not_scanned`` (``counted_qty`` None, ``diff`` 0);
2. the location's count is not complete: ``incomplete``, never short or over. SKUs seen
   show their count and ``diff``; book SKUs not seen yet show ``counted_qty`` None, ``diff`` 0;
3. ``diff`` is 0: ``match``;
4. the book does not hold the SKU here (no line, or a quantity of 0 or less) and some was
   counted: ``unexpected``, always an exception whatever ``abs_qty`` says (stock where the
   book has none is a location error, not a counting error);
5. within tolerance: ``match``; otherwise ``over`` or ``short`` by the sign of ``diff``.

In a complete count, a book SKU that was not seen counts as 0. A SKU counted 0 where the
book has no line gives **no row**: nothing booked and nothing found is not a record whose
accuracy was checked, so it must not raise the accuracy figures (a location counted empty
with an empty book has no rows at all).

Default tolerances
------------------
The textbook ABC programme (docs: domain.md, "Cycle counting"): class A ±1 %, B ±3 %,
C ±5 %, both ways. ``abs_qty`` and ``value`` default to None: RFID and camera counts are
exact units, so a default allowance of units would hide whole missing items on small
stocks, and a value limit needs the site's currency and cost scale. Set them per class,
SKU or location in the config.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from reconciler.model import AbcClass, BookLine, Movement, Row, Status

__all__ = [
    "Tolerance",
    "TolerancePolicy",
    "book_as_of",
    "compare",
    "compare_location",
]

_EPS = 1e-9
_SLACK = 1.0 + _EPS

AcceptedFigures: TypeAlias = Mapping[tuple[str, str], set[tuple[int, int]]]
"""(location, SKU) -> the (book_qty, counted_qty) figures people accepted there."""

_MATCH = Status.MATCH
_OVER = Status.OVER
_SHORT = Status.SHORT
_UNEXPECTED = Status.UNEXPECTED
_NOT_SCANNED = Status.NOT_SCANNED
_INCOMPLETE = Status.INCOMPLETE

_NO_SKU_INFO: Mapping[str, tuple[float, AbcClass]] = MappingProxyType({})

_Facts = tuple[float, AbcClass | None]
"""Unit cost and ABC class of a SKU (no class when the SKU is unknown)."""
_UNKNOWN: _Facts = (0.0, None)


class _Limits(NamedTuple):
    """A tolerance as plain floats for the hot path (limits already padded by the slack)."""

    over_frac: float
    short_frac: float
    abs_qty: float | None
    value: float | None


def _pad(limit: float | None) -> float | None:
    return None if limit is None else limit * _SLACK + _EPS


def _admits(lim: _Limits, diff: float, book: float, unit_cost: float) -> bool:
    """The tolerance semantics of the module docstring, for a non-zero ``diff``."""
    size = -diff if diff < 0 else diff
    if lim.value is not None and size * unit_cost > lim.value:
        return False
    if lim.abs_qty is not None and size <= lim.abs_qty:
        return True
    if book <= 0:
        return False
    frac = lim.over_frac if diff > 0 else lim.short_frac
    return size <= frac * book * _SLACK + _EPS


def _is_zero(diff: float, book: float) -> bool:
    return -_EPS * (1.0 + abs(book)) <= diff <= _EPS * (1.0 + abs(book))


class Tolerance(BaseModel):
    """How far a count may differ from the book and still be accepted.

    Attributes:
        over_pct: Allowed positive deviation (counted above book), in % of the book quantity.
        short_pct: Allowed negative deviation (counted below book), in % of the book quantity.
        abs_qty: A difference of at most this many units is accepted whatever the %.
            None: no such allowance.
        value: Limit on ``abs(diff) * unit_cost``; a difference worth more is never
            accepted. None: no value limit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    over_pct: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    short_pct: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    abs_qty: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    value: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    def admits(self, diff: float, book: float, unit_cost: float) -> bool:
        """Whether a record with this difference is within tolerance.

        This is the tolerance rule only: :func:`compare_location` additionally flags stock
        counted where the book holds none as ``unexpected`` whatever ``abs_qty`` says.

        Args:
            diff: Counted minus book quantity.
            book: Book quantity.
            unit_cost: Cost of one unit, for the value limit.

        Returns:
            True when ``diff`` is 0 or passes both the value and the quantity check.
        """
        if _is_zero(diff, book):
            return True
        return _admits(self._limits(), diff, book, unit_cost)

    def _limits(self) -> _Limits:
        return _Limits(
            self.over_pct / 100, self.short_pct / 100, _pad(self.abs_qty), _pad(self.value)
        )


class TolerancePolicy(BaseModel):
    """Tolerances per ABC class, with per-SKU and per-location overrides.

    Precedence: a location override, then a SKU override, then the SKU's ABC class.

    Attributes:
        A: Class A tolerance (default ±1 %).
        B: Class B tolerance (default ±3 %).
        C: Class C tolerance (default ±5 %).
        skus: Overrides by SKU.
        locations: Overrides by location (for every SKU there).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    A: Tolerance = Tolerance(over_pct=1.0, short_pct=1.0)
    B: Tolerance = Tolerance(over_pct=3.0, short_pct=3.0)
    C: Tolerance = Tolerance(over_pct=5.0, short_pct=5.0)
    skus: dict[str, Tolerance] = Field(default_factory=dict)
    locations: dict[str, Tolerance] = Field(default_factory=dict)

    def for_record(self, location: str, sku: str, abc: AbcClass) -> Tolerance:
        """The tolerance that applies to one (location, SKU) record.

        Args:
            location: The record's location.
            sku: The record's SKU.
            abc: The SKU's ABC class.

        Returns:
            The location override, else the SKU override, else the class tolerance.
        """
        found = self.locations.get(location) or self.skus.get(sku)
        if found is not None:
            return found
        return self.for_class(abc)

    def for_class(self, abc: AbcClass) -> Tolerance:
        """The tolerance of an ABC class.

        Args:
            abc: The class.

        Returns:
            ``A``, ``B`` or ``C``.
        """
        return {AbcClass.A: self.A, AbcClass.B: self.B, AbcClass.C: self.C}[abc]


class _Lookup:
    """A policy flattened to plain limits, and SKU facts, built once per comparison."""

    __slots__ = ("classes", "locations", "sku_info", "skus")

    def __init__(self, policy: TolerancePolicy, sku_info: Callable[[str], _Facts]) -> None:
        self.sku_info = sku_info
        self.locations = {k: t._limits() for k, t in policy.locations.items()}
        self.skus = {k: t._limits() for k, t in policy.skus.items()}
        self.classes = {c: policy.for_class(c)._limits() for c in AbcClass}


# --------------------------------------------------------------------------- book as of


def book_as_of(
    lines: Iterable[BookLine],
    snapshot_at: datetime,
    movements: Iterable[Movement],
    at: datetime,
    *,
    known: Mapping[str, tuple[float, AbcClass]] = _NO_SKU_INFO,
) -> dict[tuple[str, str], BookLine]:
    """The book as it was (or will be) at a moment, from a snapshot and the movement log.

    For ``at >= snapshot_at`` the movements with ``snapshot_at < ts <= at`` are added:
    later ones are ignored, so a count observed before a movement is compared with the
    book as it was then. For ``at < snapshot_at`` the movements with
    ``at < ts <= snapshot_at`` are subtracted: the book then was the snapshot minus what
    moved since. A movement for a (location, SKU) not in the snapshot creates a line, with
    the unit cost and ABC class of another snapshot line of that SKU (the first one), else
    from ``known``, else 0 and class C. Lines that reach 0 are kept. All datetimes must be
    either naive or aware.

    Args:
        lines: The book snapshot, one line per (location, SKU).
        snapshot_at: When the snapshot was taken.
        movements: The movement log (any order; only the window between the snapshot and
            ``at`` matters).
        at: The moment wanted.
        known: Unit cost and class of SKUs whose lines are elsewhere in the book (when
            ``lines`` is only part of it).

    Returns:
        The book at ``at``, keyed by (location, SKU).

    Raises:
        ValueError: The snapshot has two lines for one (location, SKU).
    """
    book: dict[tuple[str, str], BookLine] = {}
    sku_info: dict[str, tuple[float, AbcClass]] = dict(known)
    for line in lines:
        key = (line.location, line.sku)
        if key in book:
            raise ValueError(f"book snapshot has two lines for location {key[0]!r} SKU {key[1]!r}")
        book[key] = line
        sku_info.setdefault(line.sku, (line.unit_cost, line.abc))

    forward = at >= snapshot_at
    lo, hi = (snapshot_at, at) if forward else (at, snapshot_at)
    deltas: defaultdict[tuple[str, str], int] = defaultdict(int)
    for move in movements:
        if lo < move.ts <= hi:
            deltas[move.location, move.sku] += move.qty_delta if forward else -move.qty_delta

    for key, delta in deltas.items():
        old = book.get(key)
        if old is not None:
            book[key] = replace(old, qty=old.qty + delta)
            continue
        cost, abc = sku_info.get(key[1], (0.0, AbcClass.C))
        book[key] = BookLine(key[0], key[1], delta, cost, abc)
    return book


# --------------------------------------------------------------------------- comparison


def compare_location(
    location: str,
    book: Mapping[str, BookLine],
    counted: Mapping[str, int] | None,
    complete: bool,
    policy: TolerancePolicy,
    *,
    sku_info: Mapping[str, tuple[float, AbcClass]] = _NO_SKU_INFO,
) -> list[Row]:
    """Compare one location's count with its book (statuses: see the module docstring).

    Args:
        location: The location.
        book: This location's book lines by SKU.
        counted: Counted quantity by SKU; None when the location was not scanned.
        complete: Whether the count covers the whole location (absent SKUs count as 0).
        policy: The tolerances.
        sku_info: Unit cost and ABC class of SKUs not in this location's book, for
            ``unexpected`` rows (unknown SKUs get cost 0 and no class).

    Returns:
        One row per SKU in the book or the count (none for a SKU counted 0 that the book
        lacks here), sorted by SKU.

    Raises:
        ValueError: A counted quantity is negative or not a number.
    """
    lookup = _Lookup(policy, lambda sku: sku_info.get(sku, _UNKNOWN))
    return _compare_one(lookup, location, book, counted, complete)


def compare(
    book: Mapping[tuple[str, str], BookLine],
    counts: Mapping[str, tuple[Mapping[str, int], bool]],
    policy: TolerancePolicy,
    *,
    locations: Iterable[str] | None = None,
) -> list[Row]:
    """Compare a scan's counts with the book, location by location.

    Locations in the book but not in ``counts`` are ``not_scanned``. The unit cost and
    class of an ``unexpected`` SKU come from its first line elsewhere in the book.

    Args:
        book: Book lines by (location, SKU).
        counts: Per location, (counted quantity by SKU, whether the count was complete).
        policy: The tolerances.
        locations: Only these locations; default every location in the book or the counts.

    Returns:
        The rows, sorted by (location, SKU).

    Raises:
        ValueError: A counted quantity is negative or not a number.
    """
    by_location: dict[str, dict[str, BookLine]] = {}
    first_line: dict[str, BookLine] = {}  # lines, not (cost, class) tuples: fewer objects
    for (loc, sku), line in book.items():
        loc_book = by_location.get(loc)
        if loc_book is None:
            loc_book = by_location[loc] = {}
        loc_book[sku] = line
        if sku not in first_line:
            first_line[sku] = line

    def sku_info(sku: str) -> _Facts:
        line = first_line.get(sku)
        return _UNKNOWN if line is None else (line.unit_cost, line.abc)

    wanted = by_location.keys() | counts.keys()
    if locations is not None:
        wanted &= set(locations)
    lookup = _Lookup(policy, sku_info)
    rows: list[Row] = []
    empty: dict[str, BookLine] = {}
    for loc in sorted(wanted):
        count = counts.get(loc)
        counted, complete = (None, False) if count is None else count
        loc_book = by_location.get(loc, empty)
        rows += _compare_one(lookup, loc, loc_book, counted, complete)
    return rows


def _compare_one(
    lookup: _Lookup,
    location: str,
    book: Mapping[str, BookLine],
    counted: Mapping[str, int] | None,
    complete: bool,
) -> list[Row]:
    if counted is None:
        return [
            Row(location, s, ln.qty, None, 0, 0.0, _NOT_SCANNED, ln.unit_cost, ln.abc)
            for s, ln in sorted(book.items())
        ]
    if not complete:
        return _incomplete(location, book, counted, lookup.sku_info)

    loc_limits = lookup.locations.get(location)
    sku_limits = lookup.skus
    classes = lookup.classes
    rows: list[Row] = []
    append = rows.append
    for sku in sorted(book.keys() | counted.keys()):
        line = book.get(sku)
        qty = counted.get(sku, 0)
        if not qty >= 0:  # also catches NaN
            raise _bad_count(location, sku, qty)
        if line is None:
            if qty == 0:  # nothing booked, nothing found: no record (module docstring)
                continue
            cost, abc = lookup.sku_info(sku)
            append(Row(location, sku, 0, qty, qty, qty * cost, _UNEXPECTED, cost, abc))
            continue
        bq = line.qty
        cost = line.unit_cost
        diff = qty - bq
        if diff == 0:
            status = _MATCH
        elif bq <= 0 and qty > 0:
            status = _UNEXPECTED
        else:
            lim = loc_limits or sku_limits.get(sku) or classes[line.abc]
            ok = _admits(lim, diff, bq, cost)
            status = _MATCH if ok else (_OVER if diff > 0 else _SHORT)
        append(Row(location, sku, bq, qty, diff, diff * cost, status, cost, line.abc))
    return rows


def _bad_count(location: str, sku: str, qty: int) -> ValueError:
    return ValueError(f"negative or invalid count {qty!r} for location {location!r} SKU {sku!r}")


def _incomplete(
    location: str,
    book: Mapping[str, BookLine],
    counted: Mapping[str, int],
    sku_info: Callable[[str], _Facts],
) -> list[Row]:
    rows: list[Row] = []
    for sku in sorted(book.keys() | counted.keys()):
        line = book.get(sku)
        qty = counted.get(sku)
        if qty is not None and not qty >= 0:
            raise _bad_count(location, sku, qty)
        bq = 0 if line is None else line.qty
        cost, abc = sku_info(sku) if line is None else (line.unit_cost, line.abc)
        diff = 0 if qty is None or qty == bq else qty - bq
        rows.append(Row(location, sku, bq, qty, diff, diff * cost, _INCOMPLETE, cost, abc))
    return rows


def apply_accepted(rows: list[Row], accepted: AcceptedFigures) -> list[Row]:
    """Mark exceptions a person already accepted as ``accepted`` (no longer exceptions).

    A row is accepted when its location x SKU had a rejected discrepancy with the very same
    book and counted quantities (and nothing moved there since: the store's query checks
    that). A different count or book figure is flagged again.

    Args:
        rows: Compared rows.
        accepted: From :meth:`reconciler.store.Store.accepted_variances`.

    Returns:
        The rows, the accepted ones with status ``accepted`` (others unchanged).
    """
    if not accepted:
        return rows

    def judged(row: Row) -> Row:
        figures = accepted.get((row.location, row.sku))
        if row.is_exception and figures and (row.book_qty, row.counted_qty) in figures:
            return replace(row, status=Status.ACCEPTED)
        return row

    return [judged(row) for row in rows]
