"""Movement import: the WMS's movement log, idempotent on the WMS's own ``movement_id``.

One importer behind ``edgecount book movements`` and ``POST /movements``. Every movement
carries ``movement_id``: one already imported is skipped and counted; the same id with other
content (``ts``, ``location``, ``sku``, ``qty_delta``) is an error, as is one id twice in one
file; then nothing of the file is applied. Two imports of one file at once apply it once (the
database's unique index on ``movement_id``; see :meth:`reconciler.store.Store.add_movements_once`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edgecount import timefmt
from edgecount.timefmt import utc
from reconciler.csvread import (
    LOCATION_ALIASES,
    SKU_ALIASES,
    Column,
    CsvImportError,
    Problem,
    Table,
    read_table,
)
from reconciler.model import Movement
from reconciler.store import Store

MOVEMENT_COLUMNS = (
    Column("movement_id", ("id", "movement", "movement no", "document line", "transaction id")),
    Column("ts", ("timestamp", "time", "datetime", "booked at")),
    Column("location", LOCATION_ALIASES),
    Column("sku", SKU_ALIASES),
    Column("qty_delta", ("delta", "qty change", "quantity change", "change")),
    Column("user", ("username", "operator", "by"), required=False),
    Column("doc", ("document", "reference", "ref"), required=False),
)
"""The movement log's columns and the header names accepted for each."""


@dataclass(frozen=True, slots=True)
class MovementFile:
    """A parsed movement log: the movements and the line of each."""

    moves: list[Movement]
    lines: list[int]
    encoding: str
    delimiter: str
    ignored: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MovementImport:
    """What an import did: movements added and movements imported before (skipped)."""

    added: int
    already: int

    def summary(self, source: str) -> str:
        """``movements: 3 added, 12 already imported from F``."""
        return f"movements: {self.added:,} added, {self.already:,} already imported from {source}"


def _ts(table: Table, line: int, row: dict[str, str]) -> datetime | None:
    text = table.text(line, row, "ts")
    if text is None:
        return None
    try:
        moment = timefmt.parse(text)
    except ValueError:
        table.error(line, "ts", f"not an ISO-8601 time: {text!r}")
        return None
    if moment.tzinfo is None:
        table.error(line, "ts", f"no time zone (add Z or +01:00): {text!r}")
        return None
    return utc(moment)


def parse_movements(
    data: bytes, source: str, *, encoding: str | None = None, delimiter: str | None = None
) -> MovementFile:
    """Parse a movement log CSV; GTIN SKUs become GTIN-14.

    Raises:
        CsvImportError: Every problem of the file (nothing was applied).
    """
    table = read_table(data, source, MOVEMENT_COLUMNS, encoding=encoding, delimiter=delimiter)
    moves: list[Movement] = []
    lines: list[int] = []
    first_seen: dict[str, int] = {}
    for line, row in table.rows:
        ident = table.text(line, row, "movement_id")
        ts = _ts(table, line, row)
        location = table.text(line, row, "location")
        sku = table.sku(line, row, "sku")
        delta = table.whole(line, row, "qty_delta")
        if ident is not None:
            first = first_seen.setdefault(ident, line)
            if first != line:
                why = f"{ident} appears twice (lines {first} and {line})"
                table.error(line, "movement_id", why)
        if ident is None or ts is None or location is None or sku is None or delta is None:
            continue
        user, doc = row.get("user", ""), row.get("doc", "")
        moves.append(Movement(ts, location, sku, delta, user, doc, ident))
        lines.append(line)
    table.finish()
    return MovementFile(moves, lines, table.encoding, table.delimiter, table.ignored)


def check_unique_ids(moves: Sequence[Movement], name: str) -> None:
    """Refuse one movement_id twice in a list (``name[i]``, from 0).

    Raises:
        CsvImportError: Naming both movements of every duplicate (``line`` is the index).
    """
    first_seen: dict[str, int] = {}
    problems = []
    for index, move in enumerate(moves):
        if move.movement_id is None:
            continue
        first = first_seen.setdefault(move.movement_id, index)
        if first != index:
            why = f"{move.movement_id} appears twice ({name}[{first}] and {name}[{index}])"
            problems.append(Problem(name, index, "movement_id", why))
    if problems:
        raise CsvImportError(problems)


def _describe(move: Movement) -> str:
    return f"ts {move.ts.isoformat()}, {move.location}/{move.sku}, qty_delta {move.qty_delta:+d}"


def import_movements(
    store: Store,
    moves: Sequence[Movement],
    *,
    source: str,
    lines: Sequence[int] | None = None,
    actor: str = "import",
) -> MovementImport:
    """Add the movements not imported before; all or nothing.

    Args:
        store: The reconciler's store.
        moves: The movements (ids unique among them).
        source: How errors name the file.
        lines: The file line of each movement (default: its index, from 0).
        actor: Who imports (the audit log).

    Raises:
        CsvImportError: A movement_id imported before with other content (nothing applied).
    """
    numbers = list(lines) if lines is not None else list(range(len(moves)))
    outcome = store.add_movements_once(moves, actor=actor)
    if outcome.conflicts:
        problems = [
            Problem(
                source,
                numbers[index],
                "movement_id",
                f"{moves[index].movement_id} was imported before with other content"
                f" (then: {_describe(before)}; now: {_describe(moves[index])})",
            )
            for index, before in outcome.conflicts
        ]
        raise CsvImportError(problems)
    return MovementImport(outcome.added, len(moves) - outcome.added)


def read_movements_csv(path: Path) -> list[Movement]:
    """The movements of a movement log CSV file (:func:`parse_movements`).

    Raises:
        CsvImportError: Every problem of the file.
        OSError: The file cannot be read.
    """
    return parse_movements(path.read_bytes(), str(path)).moves
