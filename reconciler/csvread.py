"""Reading the CSV files WMSs export: encodings, delimiters, header aliases, every error at once.

:func:`read_table` decodes the bytes (a BOM names the encoding; else UTF-8 if the bytes are
valid UTF-8; else Windows-1252; else Latin-1), sniffs the delimiter from the header line (``,``
``;`` or tab), and maps header names to canonical columns: case-insensitively, ignoring spaces,
``_`` and ``-``, through each column's aliases. With ``;`` as delimiter a decimal comma is read
(``1,50`` is 1.5). The importers (:mod:`reconciler.book_import`,
:mod:`reconciler.movement_import`) read the cells through a :class:`Table`, which collects every
problem as ``FILE:LINE: column: why``; :meth:`Table.finish` raises them together.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from edgecount.gtin import GtinError, normalise_sku

MAX_SHOWN = 50
"""Errors listed in a message; the rest are counted."""
DELIMITERS = (",", ";", "\t")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_IGNORED_IN_NAMES = re.compile(r"[\s_\-]+")
LOCATION_ALIASES = ("loc", "bin", "bin location", "location code", "storage bin", "slot")
SKU_ALIASES = (
    "gtin",
    "ean",
    "upc",
    "article",
    "article number",
    "item",
    "item code",
    "item number",
    "product",
    "material",
)


class _Reader(Protocol):
    """What :func:`csv.reader` returns."""

    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...
    def __next__(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Problem:
    """One error of an import: where, which column, why."""

    source: str
    line: int
    column: str
    why: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.column}: {self.why}"


class CsvImportError(ValueError):
    """A file (or request) could not be imported; nothing of it was applied.

    Attributes:
        problems: Every problem found, in file order.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(format_problems(self.problems))


def format_problems(problems: Sequence[Problem]) -> str:
    """The first :data:`MAX_SHOWN` problems, one a line, then how many more there are."""
    shown = [str(p) for p in problems[:MAX_SHOWN]]
    if len(problems) > MAX_SHOWN:
        shown.append(f"… and {len(problems) - MAX_SHOWN} more errors")
    return "\n".join(shown)


@dataclass(frozen=True, slots=True)
class Column:
    """A canonical column and the header names that mean it."""

    name: str
    aliases: tuple[str, ...] = ()
    required: bool = True

    def names(self) -> tuple[str, ...]:
        """Every accepted header name, normalised (see :func:`header_key`)."""
        return (header_key(self.name), *(header_key(a) for a in self.aliases))


def header_key(name: str) -> str:
    """A header name as matched: lower case, without spaces, ``_`` and ``-``."""
    return _IGNORED_IN_NAMES.sub("", name.strip().lstrip("\ufeff")).lower()


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """Text of a file and the encoding used (given, from a BOM, or detected).

    Raises:
        UnicodeDecodeError: ``encoding`` was given and the bytes are not in it.
        LookupError: ``encoding`` is no known codec.
    """
    if encoding is not None:
        return data.decode(encoding), encoding
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data.decode(name), name
    for name in ("utf-8", "cp1252"):
        try:
            return data.decode(name), name
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def sniff_delimiter(header_line: str) -> str:
    """The delimiter of a header line: the most frequent of ``,`` ``;`` tab (``,`` if none)."""
    return max(DELIMITERS, key=lambda d: (header_line.count(d), d == ","))


@dataclass(slots=True)
class Table:
    """A decoded CSV file with canonical columns; collects the problems of its cells."""

    source: str
    encoding: str
    delimiter: str
    header: str
    ignored: tuple[str, ...]
    rows: list[tuple[int, dict[str, str]]]
    problems: list[Problem] = field(default_factory=list)

    @property
    def decimal_comma(self) -> bool:
        """``;``-separated files write decimals with a comma (``1,50``)."""
        return self.delimiter == ";"

    def error(self, line: int, column: str, why: str) -> None:
        """Note a problem of a cell (or of a line)."""
        self.problems.append(Problem(self.source, line, column, why))

    def finish(self) -> None:
        """Raise every problem noted, if any.

        Raises:
            CsvImportError: At least one problem was noted.
        """
        if self.problems:
            raise CsvImportError(sorted(self.problems, key=lambda p: p.line))

    def text(self, line: int, row: dict[str, str], column: str) -> str | None:
        """A required, non-empty cell (None, and a problem noted, when empty)."""
        value = row.get(column, "")
        if not value:
            self.error(line, column, "must not be empty")
            return None
        return value

    def number(self, line: int, row: dict[str, str], column: str) -> float | None:
        """A finite number (decimal comma in ``;`` files); None and a problem noted if not."""
        text = row.get(column, "")
        value = parse_number(text, decimal_comma=self.decimal_comma)
        if value is None:
            self.error(line, column, f"not a number: {text!r}")
        elif not math.isfinite(value):
            self.error(line, column, f"not a finite number: {text!r}")
            return None
        return value

    def whole(self, line: int, row: dict[str, str], column: str) -> int | None:
        """A whole number of units (``3``, ``3.0``; not ``3.5``); None and a problem if not."""
        value = self.number(line, row, column)
        if value is None:
            return None
        if value != int(value):
            self.error(line, column, f"not a whole number of units: {row[column]!r}")
            return None
        return int(value)

    def sku(self, line: int, row: dict[str, str], column: str = "sku") -> str | None:
        """A SKU, GTIN-8/12/13/14 as GTIN-14 (check digit verified); others as they are."""
        text = self.text(line, row, column)
        if text is None:
            return None
        try:
            return normalise_sku(text)
        except GtinError as exc:
            self.error(line, column, f"{exc} (a GTIN's last digit is its check digit)")
            return None


def parse_number(text: str, *, decimal_comma: bool = False) -> float | None:
    """``text`` as a float, or None; with ``decimal_comma``, ``1.234,5`` is 1234.5."""
    cleaned = text.strip()
    if decimal_comma and "," in cleaned:
        cleaned = cleaned.replace(".", "").replace(" ", "").replace(",", ".")
    try:
        return float(cleaned)
    except ValueError:
        return None


def _map_header(
    line: int, cells: Sequence[str], columns: Sequence[Column], table: Table
) -> dict[str, int] | None:
    wanted = {key: column.name for column in columns for key in column.names()}
    found: dict[str, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        name = wanted.get(header_key(cell))
        if name is None:
            if cell.strip():
                ignored.append(cell.strip())
            continue
        if name in found:
            first = cells[found[name]].strip()
            table.error(line, "header", f"{first!r} and {cell.strip()!r} both mean {name}")
            continue
        found[name] = index
    table.ignored = tuple(ignored)
    missing = [c.name for c in columns if c.required and c.name not in found]
    if missing:
        accepted = "; ".join(f"{c.name}: {', '.join((c.name, *c.aliases))}" for c in columns)
        table.error(
            line,
            "header",
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"in {table.header!r} (accepted names: {accepted})",
        )
    return None if table.problems else found


def _records(reader: _Reader) -> Iterator[tuple[int, list[str]]]:
    for cells in reader:
        if any(cell.strip() for cell in cells):
            yield reader.line_num, cells


def read_table(
    data: bytes,
    source: str,
    columns: Sequence[Column],
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> Table:
    """Decode and split a CSV file into rows of canonical columns (cells stripped).

    Blank lines are skipped; a line with more cells than the header is a problem.

    Args:
        data: The file's bytes.
        source: How problems name the file (its path, or ``request``).
        columns: The columns wanted.
        encoding: A codec name; detected when None.
        delimiter: ``,`` ``;`` or tab; sniffed from the header line when None.

    Raises:
        CsvImportError: The file cannot be decoded, or its header lacks a required column.
    """
    try:
        text, used = decode(data, encoding)
    except UnicodeDecodeError as exc:
        why = f"not {encoding}: {exc.reason} at byte {exc.start}"
        problem = Problem(source, data.count(b"\n", 0, exc.start) + 1, "encoding", why)
        raise CsvImportError([problem]) from None
    text = text.removeprefix("\ufeff")
    first = next((line for line in text.splitlines() if line.strip()), "")
    sep = delimiter or sniff_delimiter(first)
    table = Table(source, used, sep, first, (), [])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    records = _records(reader)
    header = next(records, None)
    if header is None:
        table.error(1, "header", f"empty file: expected {', '.join(c.name for c in columns)}")
        table.finish()
    assert header is not None
    mapping = _map_header(header[0], header[1], columns, table)
    table.finish()
    assert mapping is not None
    width = len(header[1])
    for line, cells in records:
        if len(cells) > width and any(c.strip() for c in cells[width:]):
            table.error(line, "line", f"{len(cells)} fields, the header has {width}")
            continue
        row = {name: cells[i].strip() if i < len(cells) else "" for name, i in mapping.items()}
        table.rows.append((line, row))
    return table
