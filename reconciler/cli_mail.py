"""``edgecount report send``: the night's report by e-mail, once, after the scans settle.

Run by ``edgecount-report.timer`` in the morning. Exit status: 0 sent (or already sent to
every recipient), 1 refused for good (a wrong password, a 5xx answer, an untrusted
certificate, an unknown scan), 4 not delivered within ``email.retry.total_seconds`` (the
server was down or answered 4xx), 2 usage, configuration or database errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from datetime import UTC, datetime
from email.message import EmailMessage

from edgecount.argtypes import iso_date, utc_time
from edgecount.exitcodes import ExitCode
from reconciler.cli import _config_argument, _load, make_engine, reports_database_errors
from reconciler.config import ReconcilerConfig
from reconciler.email_config import EmailConfig, parse_address
from reconciler.queries import get_scan
from reconciler.report import render_csv, render_html
from reconciler.report_build import build_report
from reconciler.report_mail import (
    Period,
    build_message,
    default_night,
    night_period,
    scan_period,
    since_period,
    subject_of,
    wait_until_settled,
)
from reconciler.report_mail_store import delivered, record_delivery
from reconciler.smtp_send import DeliveryError, Outcome, deliver, read_secret
from reconciler.store import Store

log = logging.getLogger(__name__)

__all__ = ["add_report_send_arguments", "run_report_send"]


def add_report_send_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount report send``."""
    parser.description = (
        "E-mail a reconciliation report (HTML body, plain-text alternative, CSV attached) to"
        " email.to of the configuration, over SMTP with STARTTLS or TLS. Waits until no scan"
        " of the period runs and the last ended email.settle_seconds ago (at most"
        " email.settle_timeout_seconds). A report already accepted by the server for a"
        " recipient is not sent to them again. Exit 0 sent or already sent, 1 refused for good,"
        " 4 server unreachable or 4xx until email.retry.total_seconds, 2 usage or configuration."
    )
    _config_argument(parser)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--night",
        type=iso_date,
        metavar="DATE",
        help="the night that starts on DATE at email.night_start (default: the night that"
        " contains now: in the morning, the night that is ending)",
    )
    scope.add_argument(
        "--since",
        type=utc_time,
        metavar="TIME",
        help="the counts since TIME (YYYY-MM-DD, UTC midnight, or ISO-8601) instead of a night",
    )
    scope.add_argument("--scan", metavar="ID", help="the report of one scan")
    parser.add_argument(
        "--now", action="store_true", help="send at once, without waiting for the scans to settle"
    )
    parser.add_argument(
        "--force", action="store_true", help="send even to recipients who already got this report"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the message as it would be sent (no waiting, nothing sent or recorded)",
    )


def _period(args: argparse.Namespace, email: EmailConfig) -> Period:
    if args.scan is not None:
        return scan_period(args.scan)
    if args.since is not None:
        return since_period(args.since)
    return night_period(email, args.night or default_night(email, datetime.now(UTC)))


@reports_database_errors
def run_report_send(args: argparse.Namespace) -> int:
    """Build the report of a night (a period, a scan) and send it to whoever has not got it."""
    config = _load(args.config)
    if config is None:
        return ExitCode.USAGE
    if config.email is None:
        print(f"error: {args.config} has no `email:` section", file=sys.stderr)
        return ExitCode.USAGE
    email = config.email
    period = _period(args, email)
    store = make_engine(config).store
    try:
        return _send(args, config, email, period, store)
    finally:
        store.close()


def _send(
    args: argparse.Namespace,
    config: ReconcilerConfig,
    email: EmailConfig,
    period: Period,
    store: Store,
) -> int:
    if period.scan is not None and get_scan(store, period.scan) is None:
        print(f"error: no scan {period.scan!r} in the store", file=sys.stderr)
        return ExitCode.FAILED
    recipients = [parse_address(text).addr_spec for text in email.to]
    done = delivered(store, period.key)
    pending = [r for r in recipients if args.force or r.lower() not in done]
    if not pending and not args.dry_run:
        when = max(done.values()).isoformat(timespec="seconds")
        print(
            f"the report ({period.label}) was already sent to {', '.join(recipients)}"
            f" (last at {when}); --force sends it again",
            file=sys.stderr,
        )
        return ExitCode.OK
    running: list[str] = []
    if not (args.now or args.dry_run):
        running = wait_until_settled(store, period, email)
    message = _message(config, email, period, store, running)
    if args.dry_run:
        sys.stdout.write(message.as_string())
        print(f"dry run: not sent (would go to {', '.join(pending) or 'nobody'})", file=sys.stderr)
        return ExitCode.OK
    try:
        password = read_secret(email.password_file) if email.password_file else None
    except DeliveryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE

    def record(accepted: list[str]) -> None:
        record_delivery(
            store,
            period.key,
            accepted,
            message_id=str(message["Message-ID"]),
            subject=str(message["Subject"]),
            at=datetime.now(UTC),
        )

    outcome = deliver(email, password, message, pending, record)
    return _report(outcome, period)


def _message(
    config: ReconcilerConfig, email: EmailConfig, period: Period, store: Store, running: list[str]
) -> EmailMessage:
    """The report of ``period`` as it stands, as a message; ``running``: scans not settled."""
    data = build_report(
        store,
        config.tolerances,
        scan=period.scan,
        since=period.since,
        title=f"Reconciliation report, site {config.site}",
    )
    if running:
        data = dataclasses.replace(
            data, scope=f"{data.scope} (still running: {', '.join(running)})"
        )
    stem = period.key.replace(":", "-").replace("+", "")
    return build_message(
        email,
        subject_of(email, config.site, period, data),
        data,
        html=render_html(data),
        csv_text=render_csv(data),
        filename=f"edgecount-{config.site}-{stem}.csv",
    )


def _report(outcome: Outcome, period: Period) -> int:
    if outcome.accepted:
        print(
            f"sent the report ({period.label}) to {', '.join(outcome.accepted)}"
            f" ({outcome.attempts} attempts)",
            file=sys.stderr,
        )
    if outcome.error is None:
        return ExitCode.OK
    print(f"error: the report was not delivered: {outcome.error}", file=sys.stderr)
    return ExitCode.UNDELIVERED if outcome.error.temporary else ExitCode.FAILED
