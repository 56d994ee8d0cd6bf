"""The book side of the warehouse twin: injected book errors, the movement log, CSV writers.

See :mod:`simulators.twin` for the model and every default. The CSV formats are those of
:func:`reconciler.book_import.read_book_csv` (``location,sku,qty,unit_cost,abc``) and
:func:`reconciler.movement_import.read_movements_csv`
(``movement_id,ts,location,sku,qty_delta,user,doc``; the id is ``TWIN-`` and the movement's
position in the log).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

ERROR_KINDS = ("miscount", "misplaced", "missing", "unexpected")
BOOK_HEADER = ("location", "sku", "qty", "unit_cost", "abc")
MOVEMENT_HEADER = ("movement_id", "ts", "location", "sku", "qty_delta", "user", "doc")
ERRORS_HEADER = ("event", "kind", "location", "sku", "book_qty", "true_qty")
RECEIPT_SHARE = 0.4
MOVEMENT_SPACING = timedelta(minutes=7)

Key = tuple[str, str]  # (location, GTIN)


@dataclass(frozen=True, slots=True)
class BookRecord:
    """One line of the book snapshot."""

    location: str
    sku: str
    qty: int
    unit_cost: float
    abc: str


@dataclass(frozen=True, slots=True)
class InjectedError:
    """One (location, SKU) where the book snapshot differs from the shelf on purpose.

    ``event`` numbers the injected error; a ``misplaced`` event has two entries.
    """

    kind: str
    location: str
    sku: str
    book_qty: int
    true_qty: int
    event: int


@dataclass(frozen=True, slots=True)
class TwinMovement:
    """A movement of the WMS log, applied to the shelf and the book alike."""

    ts: datetime
    location: str
    sku: str
    qty_delta: int
    user: str
    doc: str


class _Injector:
    """Picks disjoint (location, SKU) keys and rewrites the book one error event at a time."""

    def __init__(
        self,
        truth: Mapping[Key, int],
        gtins: Sequence[str],
        neighbours: Callable[[str], list[list[str]]],
        qty_range: tuple[int, int],
        rng: random.Random,
    ) -> None:
        self.truth = truth
        self.book = dict(truth)
        self.gtins = gtins
        self.neighbours = neighbours
        self.qty_range = qty_range
        self.rng = rng
        self.pool = sorted(truth)
        rng.shuffle(self.pool)
        self.locations = sorted({loc for loc, _ in truth})
        self.used: set[Key] = set()
        self.errors: list[InjectedError] = []

    def _take(self, ok: Callable[[Key], bool] = lambda _: True) -> Key | None:
        for key in self.pool:
            if key not in self.used and ok(key):
                self.used.add(key)
                return key
        return None

    def _note(self, kind: str, key: Key, book_qty: int, true_qty: int, event: int) -> None:
        self.errors.append(InjectedError(kind, key[0], key[1], book_qty, true_qty, event))
        if book_qty:
            self.book[key] = book_qty
        else:
            self.book.pop(key, None)

    def miscount(self, event: int) -> bool:
        key = self._take()
        if key is None:
            return False
        qty = self.truth[key]
        delta = self.rng.randint(1, 5)
        book = qty - delta if qty - delta >= 1 and self.rng.random() < 0.5 else qty + delta
        self._note("miscount", key, book, qty, event)
        return True

    def unexpected(self, event: int) -> bool:
        key = self._take()
        if key is None:
            return False
        self._note("unexpected", key, 0, self.truth[key], event)
        return True

    def _free_neighbours(self, key: Key) -> list[str]:
        for tier in self.neighbours(key[0]):
            free = [
                n for n in tier if (n, key[1]) not in self.truth and (n, key[1]) not in self.used
            ]
            if free:
                return free
        return []

    def misplaced(self, event: int) -> bool:
        key = self._take(lambda k: bool(self._free_neighbours(k)))
        if key is None:
            return False
        near = self.rng.choice(self._free_neighbours(key))
        qty = self.truth[key]
        self.used.add((near, key[1]))
        self._note("misplaced", key, 0, qty, event)
        self._note("misplaced", (near, key[1]), qty, 0, event)
        return True

    def missing(self, event: int) -> bool:
        for _ in range(100):
            key = (self.rng.choice(self.locations), self.rng.choice(self.gtins))
            if key not in self.truth and key not in self.used:
                self.used.add(key)
                self._note("missing", key, self.rng.randint(*self.qty_range), 0, event)
                return True
        return False


def inject_errors(
    truth: Mapping[Key, int],
    *,
    rate: float,
    gtins: Sequence[str],
    neighbours: Callable[[str], list[list[str]]],
    qty_range: tuple[int, int],
    rng: random.Random,
) -> tuple[dict[Key, int], list[InjectedError]]:
    """The book snapshot: the truth with ``round(rate x records)`` error events.

    Kinds come in equal shares, shuffled; a kind that finds no place (a tiny warehouse) is
    skipped, so the rate may fall short there.

    Args:
        truth: True quantity per (location, GTIN) at the snapshot (all > 0).
        rate: Error events per truth record.
        gtins: All GTINs (phantoms pick from them).
        neighbours: Neighbouring locations of a location in tiers, nearest first (one is
            picked at random from the first tier with a free place).
        qty_range: Quantity range of phantom records.
        rng: The random source.

    Returns:
        The book quantities by (location, GTIN), and the injected errors.
    """
    injector = _Injector(truth, gtins, neighbours, qty_range, rng)
    events = round(rate * len(truth))
    kinds = [ERROR_KINDS[i % len(ERROR_KINDS)] for i in range(events)]
    rng.shuffle(kinds)
    event = 0
    for kind in kinds:
        if getattr(injector, kind)(event):
            event += 1
    return injector.book, injector.errors


def make_movements(
    stock: dict[str, dict[str, list[str]]],
    frozen: set[Key],
    *,
    count: int,
    book_at: datetime,
    new_epcs: Callable[[str, int], list[str]],
    rng: random.Random,
) -> list[TwinMovement]:
    """Receipts and picks after the snapshot, applied to ``stock`` in place.

    Only records that exist and are not in ``frozen`` (the keys of injected errors) move, and
    a pick never empties a record.

    Args:
        stock: EPCs by location and GTIN (changed: receipts add tags, picks remove the last).
        frozen: Keys that must not move.
        count: How many movements.
        book_at: The snapshot time; movement ``i`` is about ``(i + 1) x 7`` minutes later.
        new_epcs: Makes ``n`` new EPCs of a GTIN.
        rng: The random source.
    """
    keys = sorted((loc, gtin) for loc, per in stock.items() for gtin in per)
    keys = [key for key in keys if key not in frozen]
    moves: list[TwinMovement] = []
    receipts = picks = 0
    for index in range(count if keys else 0):
        ts = book_at + (index + 1) * MOVEMENT_SPACING + timedelta(seconds=rng.randint(0, 59))
        location, gtin = rng.choice(keys)
        epcs = stock[location][gtin]
        if rng.random() < RECEIPT_SHARE or len(epcs) < 2:
            receipts += 1
            qty = rng.randint(1, 12)
            epcs.extend(new_epcs(gtin, qty))
            moves.append(TwinMovement(ts, location, gtin, qty, "receiving", f"GR-{receipts:06d}"))
        else:
            picks += 1
            qty = rng.randint(1, min(5, len(epcs) - 1))
            del epcs[-qty:]
            user = f"picker-{rng.randint(1, 9)}"
            moves.append(TwinMovement(ts, location, gtin, -qty, user, f"PK-{picks:06d}"))
    return moves


def book_records(
    book: Mapping[Key, int], costs: Mapping[str, tuple[float, str]]
) -> list[BookRecord]:
    """Book lines sorted by (location, GTIN) from quantities and (unit cost, ABC) per GTIN."""
    return [BookRecord(loc, gtin, qty, *costs[gtin]) for (loc, gtin), qty in sorted(book.items())]


class BookSide(Protocol):
    """What the CSV writers read of a twin (:class:`simulators.twin.Twin` has it all)."""

    @property
    def book(self) -> Sequence[BookRecord]:
        """The book snapshot."""
        ...

    @property
    def errors(self) -> Sequence[InjectedError]:
        """The injected errors."""
        ...

    @property
    def movements(self) -> Sequence[TwinMovement]:
        """The movement log after the snapshot."""
        ...


def _write(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_book_csv(twin: BookSide, path: str | Path) -> None:
    """Write the book snapshot as the reconciler's book import CSV.

    Args:
        twin: The twin.
        path: Where (overwritten).
    """
    _write(
        path,
        BOOK_HEADER,
        ((r.location, r.sku, r.qty, f"{r.unit_cost:.2f}", r.abc) for r in twin.book),
    )


def write_movements_csv(twin: BookSide, path: str | Path) -> None:
    """Write the movement log as the reconciler's movement CSV (ISO-8601 UTC ``ts``).

    Args:
        twin: The twin.
        path: Where (overwritten).
    """
    _write(
        path,
        MOVEMENT_HEADER,
        (
            (f"TWIN-{n:06d}", _iso(m.ts), m.location, m.sku, m.qty_delta, m.user, m.doc)
            for n, m in enumerate(twin.movements, start=1)
        ),
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def write_errors_csv(twin: BookSide, path: str | Path) -> None:
    """Write the injected errors (the true discrepancies of the book snapshot) as CSV.

    Columns ``event,kind,location,sku,book_qty,true_qty``; a ``misplaced`` event has two rows.

    Args:
        twin: The twin.
        path: Where (overwritten).
    """
    _write(
        path,
        ERRORS_HEADER,
        ((e.event, e.kind, e.location, e.sku, e.book_qty, e.true_qty) for e in twin.errors),
    )
