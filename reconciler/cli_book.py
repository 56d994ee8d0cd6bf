"""``edgecount book import`` and ``edgecount book movements``: the WMS's files in.

Exit status: 0 applied (or a dry run that would apply), 1 file errors or a refused import
(nothing applied), 2 usage or configuration (a bad option, the config, the database).
"""

from __future__ import annotations

import argparse
import codecs
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

from edgecount import timefmt
from edgecount.exitcodes import ExitCode
from reconciler.book_import import BookOptions, ImportRefusedError, import_book, parse_book
from reconciler.cli import (
    _config_argument,
    _load,
    make_engine,
    reports_database_errors,
)
from reconciler.csvread import CsvImportError
from reconciler.movement_import import import_movements, parse_movements

DELIMITERS = {",": ",", ";": ";", "tab": "\t", "\\t": "\t", "\t": "\t"}


def _encoding(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {name!r}") from None


def _delimiter(text: str) -> str:
    try:
        return DELIMITERS[text]
    except KeyError:
        raise argparse.ArgumentTypeError("must be ',', ';' or tab") from None


def _file_arguments(parser: argparse.ArgumentParser, columns: str) -> None:
    _config_argument(parser)
    parser.add_argument("file", type=Path, help=f"CSV ({columns}; aliases in the docs)")
    parser.add_argument(
        "--encoding",
        type=_encoding,
        help="the file's encoding (default: a BOM's, else UTF-8 if valid, else Windows-1252)",
    )
    parser.add_argument(
        "--delimiter", type=_delimiter, help="',', ';' or tab (default: sniffed from the header)"
    )


def _report_errors(exc: CsvImportError, what: str) -> int:
    print(str(exc), file=sys.stderr)
    count = len(exc.problems)
    print(f"{what}: nothing imported ({count} error{'s' if count != 1 else ''})", file=sys.stderr)
    return ExitCode.FAILED


class _Parsed(Protocol):
    @property
    def ignored(self) -> tuple[str, ...]: ...


_P = TypeVar("_P", bound=_Parsed)


def _parse(args: argparse.Namespace, parse: Callable[..., _P], what: str) -> _P | int:
    """Read and parse ``args.file``; an exit status when it cannot be (errors printed)."""
    source = str(args.file)
    try:
        parsed = parse(
            args.file.read_bytes(), source, encoding=args.encoding, delimiter=args.delimiter
        )
    except OSError as exc:
        print(f"error: {source}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.FAILED
    except CsvImportError as exc:
        return _report_errors(exc, what)
    if parsed.ignored:
        print(f"notice: {source}: columns ignored: {', '.join(parsed.ignored)}", file=sys.stderr)
    return parsed


# -- book import --------------------------------------------------------------------------------


def add_book_import_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount book import``."""
    _file_arguments(parser, "location,sku,qty,unit_cost,abc")
    parser.add_argument("--as-of", help="when the snapshot was taken (ISO-8601; default now)")
    parser.add_argument("--dry-run", action="store_true", help="print what would change only")
    parser.add_argument(
        "--allow-empty", action="store_true", help="accept a file without records (empties it)"
    )
    parser.add_argument(
        "--yes", action="store_true", help="confirm removing more than half of the records"
    )
    parser.add_argument(
        "--locations-only",
        action="store_true",
        help="replace only the locations in the file; keep every other location",
    )


def _as_of(text: str | None) -> datetime | None:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = timefmt.parse(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


@reports_database_errors
def run_book_import(args: argparse.Namespace) -> int:
    """Import a book snapshot CSV: the whole book, or ``--locations-only``."""
    config = _load(args.config)
    if config is None:
        return ExitCode.USAGE
    at = _as_of(args.as_of)
    if at is None:
        print(f"error: --as-of: not an ISO-8601 time with zone: {args.as_of!r}", file=sys.stderr)
        return ExitCode.USAGE
    source = str(args.file)
    parsed = _parse(args, parse_book, "book")
    if isinstance(parsed, int):
        return parsed
    options = BookOptions(args.dry_run, args.allow_empty, args.yes, args.locations_only)
    engine = make_engine(config)
    try:
        diff = import_book(engine.store, parsed.lines, source=source, at=at, options=options)
    except ImportRefusedError as exc:
        print(f"error: {source}: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    finally:
        engine.store.close()
    print(diff.summary(source))
    for line in diff.details():
        print(line)
    return ExitCode.OK


# -- movements ----------------------------------------------------------------------------------


def add_book_movements_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount book movements``."""
    _file_arguments(parser, "movement_id,ts,location,sku,qty_delta[,user,doc]")


@reports_database_errors
def run_book_movements(args: argparse.Namespace) -> int:
    """Import a movement log CSV; movements imported before (same movement_id) are skipped."""
    config = _load(args.config)
    if config is None:
        return ExitCode.USAGE
    source = str(args.file)
    parsed = _parse(args, parse_movements, "movements")
    if isinstance(parsed, int):
        return parsed
    engine = make_engine(config)
    try:
        done = import_movements(engine.store, parsed.moves, source=source, lines=parsed.lines)
    except CsvImportError as exc:
        return _report_errors(exc, "movements")
    finally:
        engine.store.close()
    print(done.summary(source))
    return ExitCode.OK
