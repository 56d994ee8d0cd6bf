"""Book import: one importer behind ``edgecount book import`` and ``POST /book``.

:func:`parse_book` reads a book CSV as WMSs export it (see :mod:`reconciler.csvread`) into
:class:`~reconciler.model.BookLine` records, every error of the file at once.
:func:`import_book` compares the records with the current book, refuses what is most likely a
mistake (an empty book; removing more than half of the records without ``confirm``), and
applies them unless it is a dry run:

* by default the file is the FULL book: it replaces every record;
* with ``locations_only`` it replaces the records of the locations it lists and keeps every
  other location (their records are brought to the new snapshot time with the movements
  booked in between, so their book stays what it was).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reconciler.csvread import (
    LOCATION_ALIASES,
    SKU_ALIASES,
    Column,
    CsvImportError,
    Problem,
    read_table,
)
from reconciler.model import AbcClass, BookLine
from reconciler.store import Store

BOOK_COLUMNS = (
    Column("location", LOCATION_ALIASES),
    Column("sku", SKU_ALIASES),
    Column("qty", ("quantity", "qty on hand", "on hand", "stock", "stock qty")),
    Column("unit_cost", ("cost", "price", "unit price")),
    Column("abc", ("class", "abc class")),
)
"""The book's columns and the header names accepted for each (see docs/reconciliation.md)."""

_CLASSES = {abc.value: abc for abc in AbcClass}


class ImportRefusedError(Exception):
    """The import is refused as it stands (an empty book, a mass removal without confirm)."""


@dataclass(frozen=True, slots=True)
class BookFile:
    """A parsed book file: its records and how it was read."""

    lines: list[BookLine]
    encoding: str
    delimiter: str
    ignored: tuple[str, ...]
    """Header names that match no column (ignored)."""


def parse_book(
    data: bytes, source: str, *, encoding: str | None = None, delimiter: str | None = None
) -> BookFile:
    """Parse a book CSV; GTIN SKUs become GTIN-14.

    Raises:
        CsvImportError: Every problem of the file (nothing was applied).
    """
    table = read_table(data, source, BOOK_COLUMNS, encoding=encoding, delimiter=delimiter)
    lines: list[BookLine] = []
    first_seen: dict[tuple[str, str], int] = {}
    for line, row in table.rows:
        location = table.text(line, row, "location")
        sku = table.sku(line, row, "sku")
        qty = table.whole(line, row, "qty")
        if qty is not None and qty < 0:
            table.error(line, "qty", f"must not be negative: {row['qty']!r}")
        cost = table.number(line, row, "unit_cost")
        if cost is not None and cost < 0:
            table.error(line, "unit_cost", f"must not be negative: {row['unit_cost']!r}")
        abc = _CLASSES.get(row["abc"].upper())
        if abc is None:
            table.error(line, "abc", f"must be A, B or C, got {row['abc']!r}")
        if location is None or sku is None:
            continue
        first = first_seen.setdefault((location, sku), line)
        if first != line:
            table.error(line, "sku", f"{location}/{sku} appears twice (lines {first} and {line})")
        if qty is None or qty < 0 or cost is None or cost < 0 or abc is None:
            continue
        lines.append(BookLine(location, sku, qty, cost, abc))
    table.finish()
    return BookFile(lines, table.encoding, table.delimiter, table.ignored)


def check_unique(lines: Sequence[BookLine], name: str) -> None:
    """Refuse two records of one (location, SKU) in a list (``name[i]``, from 0).

    Raises:
        CsvImportError: Naming both records of every duplicate (``line`` is the index).
    """
    first_seen: dict[tuple[str, str], int] = {}
    problems = []
    for index, line in enumerate(lines):
        first = first_seen.setdefault((line.location, line.sku), index)
        if first != index:
            why = f"{line.location}/{line.sku} appears twice ({name}[{first}] and {name}[{index}])"
            problems.append(Problem(name, index, "sku", why))
    if problems:
        raise CsvImportError(problems)


@dataclass(frozen=True, slots=True)
class Change:
    """Records of one kind of change and their value (sum of qty * unit_cost).

    For changed records ``value`` is the change of value (new minus old).
    """

    records: int = 0
    value: float = 0.0


@dataclass(frozen=True, slots=True)
class BookDiff:
    """What an import changes in the book, and whether it was applied."""

    records: int
    """Records in the file."""
    added: Change
    changed: Change
    removed: Change
    unchanged: int
    applied: bool

    @property
    def net_value(self) -> float:
        """The change of the book's value."""
        return self.added.value + self.changed.value - self.removed.value

    def summary(self, source: str) -> str:
        """``book: 1,234 records imported from F (12 added, 3 changed, 1 removed)``."""
        verb = "imported" if self.applied else "would be imported (dry run)"
        return (
            f"book: {self.records:,} records {verb} from {source} ({self.added.records:,} added,"
            f" {self.changed.records:,} changed, {self.removed.records:,} removed)"
        )

    def details(self) -> list[str]:
        """The value of each kind of change, one a line."""
        return [
            f"  added:   {self.added.records:>8,} records, value {self.added.value:+,.2f}",
            f"  changed: {self.changed.records:>8,} records, value {self.changed.value:+,.2f}",
            f"  removed: {self.removed.records:>8,} records, value {-self.removed.value:+,.2f}",
            f"  net value change {self.net_value:+,.2f}",
        ]


@dataclass(frozen=True, slots=True)
class BookOptions:
    """How to import (``--dry-run``, ``--allow-empty``, ``--yes``, ``--locations-only``)."""

    dry_run: bool = False
    allow_empty: bool = False
    confirm: bool = False
    locations_only: bool = False


def _value(line: BookLine) -> float:
    return line.qty * line.unit_cost


def diff_book(
    current: Sequence[BookLine], new: Sequence[BookLine], *, locations_only: bool
) -> BookDiff:
    """Compare new records with the current ones (of the file's locations if locations_only)."""
    scope = {line.location for line in new} if locations_only else None
    old = {(b.location, b.sku): b for b in current if scope is None or b.location in scope}
    fresh = {(b.location, b.sku): b for b in new}
    added = [b for key, b in fresh.items() if key not in old]
    removed = [b for key, b in old.items() if key not in fresh]
    changed = [(old[key], b) for key, b in fresh.items() if key in old and old[key] != b]
    return BookDiff(
        records=len(new),
        added=Change(len(added), sum(map(_value, added))),
        changed=Change(len(changed), sum(_value(b) - _value(a) for a, b in changed)),
        removed=Change(len(removed), sum(map(_value, removed))),
        unchanged=len(fresh) - len(added) - len(changed),
        applied=False,
    )


def import_book(
    store: Store,
    lines: Sequence[BookLine],
    *,
    source: str,
    at: datetime,
    options: BookOptions,
) -> BookDiff:
    """Compare, check and (unless a dry run) apply a book snapshot.

    Args:
        store: The reconciler's store.
        lines: The records (unique by location and SKU).
        source: Where they come from (recorded in the book's metadata and the audit log).
        at: When the snapshot was taken.
        options: Dry run, allow an empty book, confirm a mass removal, locations only.

    Returns:
        What changed (or would change, for a dry run).

    Raises:
        ImportRefusedError: An empty book without ``allow_empty``; more than half of the current
            records removed without ``confirm``.
    """
    if not lines and options.locations_only:
        raise ImportRefusedError("the file has no records, so no locations to replace: refused")
    if not lines and not options.allow_empty:
        raise ImportRefusedError(
            "the book has no records: refused (an empty export is most likely a mistake;"
            " allow it with --allow-empty / allow_empty)"
        )
    current = store.book_lines()
    diff = diff_book(current, lines, locations_only=options.locations_only)
    if current and diff.removed.records * 2 > len(current) and not options.confirm:
        raise ImportRefusedError(
            f"the import would remove {diff.removed.records:,} of the {len(current):,} current"
            " records (more than half): refused; confirm with --yes / confirm"
        )
    if options.dry_run:
        return diff
    if options.locations_only:
        store.replace_locations(lines, source=source, at=at)
    else:
        store.replace_book(lines, source=source, at=at)
    return BookDiff(
        diff.records, diff.added, diff.changed, diff.removed, diff.unchanged, applied=True
    )


def read_book_csv(path: Path) -> list[BookLine]:
    """The records of a book CSV file (:func:`parse_book`; encoding and delimiter detected).

    Raises:
        CsvImportError: Every problem of the file.
        OSError: The file cannot be read.
    """
    return parse_book(path.read_bytes(), str(path)).lines
