"""``edgecount reconcile …`` (``book …`` is in :mod:`reconciler.cli_book`): each takes ``-c FILE``.

Every command that opens the store goes through :func:`reports_database_errors`: a database that
cannot be opened (bad URL, missing driver, unreachable) is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgecount.exitcodes import ExitCode
from edgecount.settings import mqtt_settings
from edgecount.yamlcfg import ConfigError, config_argument, load_or_report
from reconciler.config import ApiConfig, ReconcilerConfig, load_reconciler_config
from reconciler.engine import DecisionError, Engine
from reconciler.epcis.validate import EpcisValidator, SchemaUnavailableError, load_schema
from reconciler.store import DatabaseUnavailableError, EnginePool, open_store

if TYPE_CHECKING:
    from reconciler.epcis.sender import EpcisSender


def _config_argument(parser: argparse.ArgumentParser) -> None:
    config_argument(parser, "reconciler")


def _load(path: Path) -> ReconcilerConfig | None:
    return load_or_report(load_reconciler_config, path)


Run = Callable[[argparse.Namespace], int]


def reports_database_errors(run: Run) -> Run:
    """Wrap a command: a database that cannot be opened is one line on stderr and exit 2."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except DatabaseUnavailableError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return ExitCode.USAGE

    return wrapper


def make_engine(config: ReconcilerConfig, pool: EnginePool | None = None) -> Engine:
    """The engine on the configured database (migrated to the newest schema).

    Args:
        config: One site's configuration.
        pool: Share connection pools with other sites' stores (a centre).

    Raises:
        DatabaseUnavailableError: The database cannot be opened (see :func:`open_store`).
    """
    if config.database is None:
        config.state_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(config.database_url, schema=config.database_schema, pool=pool)
    return Engine(
        store,
        config.site,
        config.tolerances,
        config.max_recounts,
        dict(config.gateways),
        authorized=config.authorization(),
    )


# -- serve ------------------------------------------------------------------------------------


def add_reconcile_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount reconcile serve``."""
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        required=True,
        metavar="FILE",
        help="reconciler YAML file of one site, or a centre's file naming many (sites:)",
    )


@reports_database_errors
def run_reconcile_serve(args: argparse.Namespace) -> int:
    """Run the service until SIGTERM/SIGINT."""
    from reconciler.centre import is_centre_document

    try:
        centre = is_centre_document(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return ExitCode.USAGE
    if centre:
        return _serve_centre(args.config)
    from reconciler.loops import describe_session
    from reconciler.service import ReconcileService, serve_until_signal

    config = _load(args.config)
    if config is None:
        return ExitCode.USAGE
    engine = make_engine(config)
    try:
        epcis = _epcis_sender(config, engine)
    except SchemaUnavailableError as exc:
        print(f"error: {args.config}: epcis.schema_file: {exc}", file=sys.stderr)
        engine.store.close()
        return ExitCode.USAGE
    settings = dataclasses.replace(
        mqtt_settings(config.mqtt, f"edgecount-{config.instance_id}"),
        session_expiry=config.mqtt_session_expiry_seconds,
    )
    service = ReconcileService(
        engine,
        settings,
        client_id=settings.client_id,
        shared_group=config.shared_group,
        api=config.api,
        epcis=[] if epcis is None else [epcis],
    )
    describe_session(settings, settings.client_id)
    try:
        return asyncio.run(serve_until_signal(service))
    finally:
        engine.store.close()


def _serve_centre(path: Path) -> int:
    """``reconcile serve`` of a centre: every site's engine, one MQTT session, shared pools."""
    from reconciler.centre import load_centre_config
    from reconciler.loops import describe_session
    from reconciler.service import ReconcileService, serve_until_signal

    try:
        centre, sites = load_centre_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return ExitCode.USAGE
    pool = EnginePool()
    try:
        engines = [make_engine(site.config, pool) for site in sites]
        try:
            senders = [
                sender
                for site, engine in zip(sites, engines, strict=True)
                if (sender := _epcis_sender(site.config, engine)) is not None
            ]
        except SchemaUnavailableError as exc:
            print(f"error: epcis.schema_file: {exc}", file=sys.stderr)
            return ExitCode.USAGE
        settings = dataclasses.replace(
            mqtt_settings(centre.mqtt, f"edgecount-{centre.instance_id}"),
            session_expiry=centre.mqtt_session_expiry_seconds,
        )
        metrics = None if centre.metrics is None else (centre.metrics.host, centre.metrics.port)
        service = ReconcileService(
            engines,
            settings,
            client_id=settings.client_id,
            shared_group=centre.shared_group,
            metrics=metrics,
            epcis=senders,
        )
        describe_session(settings, settings.client_id)
        group = f" in shared group {centre.shared_group}" if centre.shared_group else ""
        logging.getLogger(__name__).info(
            "serving %d sites as %s%s", len(engines), settings.client_id, group
        )
        return asyncio.run(serve_until_signal(service))
    finally:
        pool.close()


def _epcis_sender(config: ReconcilerConfig, engine: Engine) -> EpcisSender | None:
    """The EPCIS sender when ``epcis.capture_url`` is set (docs/epcis.md)."""
    if config.epcis.capture_url is None:
        return None
    from reconciler.epcis.sender import make_sender

    schema = config.epcis.schema_file
    validator = EpcisValidator(load_schema(schema) if schema is not None else None)
    return make_sender(engine.store, config, validator)


# -- console ----------------------------------------------------------------------------------


def add_reconcile_console_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount reconcile console``."""
    _config_argument(parser)
    parser.add_argument(
        "--port", type=int, default=None, help="TCP port (default: api.port of the file; 0: any)"
    )


@reports_database_errors
def run_reconcile_console(args: argparse.Namespace) -> int:
    """Serve the REST API and the console on the database alone (no broker) until Ctrl-C.

    For looking at a night (``make console`` after ``make demo``) or a console on another
    host than the service: decisions, count tasks and scan requests are stored, and the
    service (``reconcile serve``) on the same database publishes what they make.
    """
    from reconciler.api import ApiServer, create_app
    from reconciler.auth.dependencies import Auth

    config = _load(args.config)
    if config is None:
        return ExitCode.USAGE
    api = config.api or ApiConfig()
    engine = make_engine(config)
    port = api.port if args.port is None else args.port
    app = create_app(engine, auth=Auth(engine.store.engine, api))
    server = ApiServer(app, api.host, port)
    try:
        bound = server.open()
    except OSError as exc:
        print(f"error: cannot listen on {api.host}:{port}: {exc}", file=sys.stderr)
        engine.store.close()
        return ExitCode.USAGE
    print(f"console: http://{api.host}:{bound}/  (Ctrl-C stops it)", flush=True)

    async def serve() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await server.serve(stopping)

    try:
        asyncio.run(serve())
    finally:
        engine.store.close()
    return ExitCode.OK


# -- list / approve / reject -------------------------------------------------------------------


def add_reconcile_list_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount reconcile list``."""
    _config_argument(parser)
    parser.add_argument("--all", action="store_true", help="closed discrepancies too")
    parser.add_argument("--json", action="store_true", help="print JSON")


@reports_database_errors
def run_reconcile_list(args: argparse.Namespace) -> int:
    """Print discrepancies with their lines and the movements since the last good count."""
    config = _load(args.config)
    if config is None:
        return ExitCode.USAGE
    engine = make_engine(config)
    items = engine.list_discrepancies(open_only=not args.all)
    engine.store.close()
    if args.json:
        print(json.dumps(items, indent=2, default=str))
        return ExitCode.OK
    for item in items:
        print(
            f"#{item['id']} {item['location']} ({item['zone']}) {item['state']}, "
            f"recounts {item['recounts']}, scan {item['scan_id']}"
        )
        for line in item["lines"]:
            print(
                f"    {line['sku']}: book {line['book_qty']:g}, counted {line['counted_qty']:g},"
                f" diff {line['diff']:+g} ({line['diff_value']:+.2f}) {line['status']}"
            )
        for move in item["movements"]:
            print(
                f"    moved {move['ts']} {move['sku']} {move['qty_delta']:+g} by {move['user']}"
                f" ({move['doc']})"
            )
    if not items:
        print("no discrepancies")
    return ExitCode.OK


def _decision_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument("discrepancy", type=int, help="discrepancy number (see `list`)")
    parser.add_argument("--reason", required=True, help="reason code, e.g. MISCOUNT, THEFT")
    parser.add_argument("--by", required=True, help="who decides (recorded in the audit log)")
    parser.add_argument("--note", default="", help="free text for the audit log")


add_reconcile_approve_arguments = _decision_arguments
add_reconcile_reject_arguments = _decision_arguments


def _decide(args: argparse.Namespace, approve: bool) -> int:
    config = _load(args.config)
    if config is None:
        return ExitCode.USAGE
    engine = make_engine(config)
    try:
        engine.decide(
            args.discrepancy,
            approve=approve,
            reason_code=args.reason,
            approver=args.by,
            note=args.note,
        )
    except DecisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    finally:
        engine.store.close()
    verb = "approved: the adjustment is published by the service" if approve else "rejected"
    print(f"discrepancy {args.discrepancy} {verb}")
    return ExitCode.OK


@reports_database_errors
def run_reconcile_approve(args: argparse.Namespace) -> int:
    """Approve a discrepancy awaiting approval; its difference becomes an adjustment."""
    return _decide(args, approve=True)


@reports_database_errors
def run_reconcile_reject(args: argparse.Namespace) -> int:
    """Reject a discrepancy awaiting approval (no adjustment)."""
    return _decide(args, approve=False)
