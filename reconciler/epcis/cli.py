"""``edgecount epcis export | validate | send``: EPCIS 2.0 documents of the store's counts.

Exit status: 0 done (every file valid), 1 the work failed (an unknown scan, an invalid file, a
document the capture interface refused or could not take), 2 usage and configuration errors (a
bad date, no schema for ``validate``, a database that does not exist or cannot be opened).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from edgecount.argtypes import utc_time
from edgecount.exitcodes import ExitCode
from reconciler.cli import _config_argument, _load, reports_database_errors
from reconciler.config import ReconcilerConfig
from reconciler.epcis.export import Exporter, ExportInvalidError, UnknownScanError
from reconciler.epcis.validate import (
    EpcisValidator,
    SchemaUnavailableError,
    load_schema,
    schema_path,
)
from reconciler.store import Store, open_store

__all__ = [
    "add_epcis_export_arguments",
    "add_epcis_send_arguments",
    "add_epcis_validate_arguments",
    "run_epcis_export",
    "run_epcis_send",
    "run_epcis_validate",
]

SHOWN_PROBLEMS = 20
"""Problems printed per invalid file (the count of the rest is printed)."""


def _schema_argument(parser: argparse.ArgumentParser, required_note: str) -> None:
    parser.add_argument(
        "--schema",
        type=Path,
        metavar="PATH",
        help="the GS1 EPCIS 2.0 JSON Schema (EPCIS-JSON-Schema.json; default"
        f" $EDGECOUNT_EPCIS_SCHEMA, else epcis.schema_file of -c FILE){required_note}",
    )


def _existing_store(config: ReconcilerConfig) -> Store | None:
    """The store, or None (said on stderr) when its SQLite file does not exist yet."""
    url = config.database_url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            print(
                f"error: no database at {path} (has `edgecount reconcile serve` run with this"
                " config?)",
                file=sys.stderr,
            )
            return None
    return open_store(url)


def _validator(
    config: ReconcilerConfig | None, explicit: Path | None, *, required: bool
) -> EpcisValidator | None:
    """The validator: the schema when one is given (required: or say why not), semantics always."""
    configured = config.epcis.schema_file if config is not None else None
    try:
        path = schema_path(explicit, configured)
    except SchemaUnavailableError as exc:
        if required:
            print(f"error: {exc}", file=sys.stderr)
            return None
        return EpcisValidator(None)
    try:
        return EpcisValidator(load_schema(path))
    except SchemaUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _write_atomically(text: str, output: Path) -> bool:
    """Write ``text`` to ``output`` through a temporary file in its folder and a rename."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent or Path())
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        Path(tmp).replace(output)
    except OSError as exc:
        print(f"error: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        with_tmp = locals().get("tmp")
        if with_tmp:
            Path(with_tmp).unlink(missing_ok=True)
        return False
    return True


# -- export ---------------------------------------------------------------------------------


def add_epcis_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount epcis export``."""
    _config_argument(parser)
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--scan", metavar="ID", help="the complete counts of one scan")
    scope.add_argument(
        "--since",
        type=utc_time,
        metavar="DATE",
        help="the complete counts observed since DATE (YYYY-MM-DD, UTC, or ISO-8601)",
    )
    parser.add_argument("-o", "--output", type=Path, metavar="OUT", help="file (default stdout)")
    _schema_argument(parser, "; without one only the semantic checks run")


@reports_database_errors
def run_epcis_export(args: argparse.Namespace) -> int:
    """Write one EPCIS 2.0 JSON-LD document (an EPCISDocument) of complete location counts."""
    config = _load(args.config)
    if config is None:
        return ExitCode.USAGE
    validator = _validator(config, args.schema, required=False)
    store = _existing_store(config) if validator is not None else None
    if validator is None or store is None:
        return ExitCode.USAGE
    exporter = Exporter.configured(store, config.site, config.epcis, config.locations, validator)
    try:
        counts = exporter.scan_counts(args.scan) if args.scan else exporter.counts_since(args.since)
        document = exporter.document(exporter.events(counts), datetime.now(UTC))
    except UnknownScanError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return ExitCode.FAILED
    except ExportInvalidError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    finally:
        store.close()
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return ExitCode.OK
    return ExitCode.OK if _write_atomically(text, args.output) else ExitCode.FAILED


# -- validate -------------------------------------------------------------------------------


def add_epcis_validate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount epcis validate``."""
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="JSON(-LD) files")
    _schema_argument(parser, "; required")
    parser.add_argument(
        "-c", "--config", type=Path, metavar="FILE", help="reconciler YAML (for epcis.schema_file)"
    )


def run_epcis_validate(args: argparse.Namespace) -> int:
    """Check EPCIS 2.0 documents, events or queries: the GS1 schema and the semantic checks."""
    config = None
    if args.config is not None:
        config = _load(args.config)
        if config is None:
            return ExitCode.USAGE
    validator = _validator(config, args.schema, required=True)
    if validator is None:
        return ExitCode.USAGE
    status = ExitCode.OK
    for path in args.files:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror or exc}")
            status = ExitCode.FAILED
            continue
        except ValueError as exc:
            print(f"{path}: not JSON: {exc}")
            status = ExitCode.FAILED
            continue
        problems = validator.validate(doc)
        if not problems:
            print(f"{path}: valid")
            continue
        status = ExitCode.FAILED
        print(f"{path}: INVALID ({len(problems)} problems)")
        for problem in problems[:SHOWN_PROBLEMS]:
            print(f"  {problem}")
        if len(problems) > SHOWN_PROBLEMS:
            print(f"  … and {len(problems) - SHOWN_PROBLEMS} more")
    return status


# -- send -----------------------------------------------------------------------------------


def add_epcis_send_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount epcis send``."""
    _config_argument(parser)
    parser.add_argument("--scan", required=True, metavar="ID", help="the scan to send (again)")


@reports_database_errors
def run_epcis_send(args: argparse.Namespace) -> int:
    """Send one scan's events to epcis.capture_url now (again, from its first event)."""
    from reconciler.epcis.sender import send_now

    config = _load(args.config)
    if config is None:
        return ExitCode.USAGE
    if config.epcis.capture_url is None:
        print(f"error: {args.config}: epcis.capture_url is not set", file=sys.stderr)
        return ExitCode.USAGE
    validator = _validator(config, None, required=False)
    if validator is None:
        return ExitCode.USAGE
    store = _existing_store(config)
    if store is None:
        return ExitCode.USAGE
    try:
        message = asyncio.run(send_now(store, config, validator, args.scan))
    finally:
        store.close()
    print(message[1], file=sys.stderr if message[0] else sys.stdout)
    return ExitCode.FAILED if message[0] else ExitCode.OK
