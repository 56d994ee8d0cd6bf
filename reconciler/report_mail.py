"""The night's report as an e-mail: which period, when the scans have settled, the message.

* :class:`Period` and :func:`night_period`: a **night** runs from ``email.night_start``
  (in ``email.timezone``, default 12:00 UTC) to the same time the next day; night D starts
  on day D. The report of a night is the ``edgecount reconcile report --since START`` report
  of its start (the latest count per location since then, and the stocked locations no count
  of the period covered). Without ``--night`` the command takes the night that contains now,
  which is the night now ending when the timer runs in the morning.
* :func:`wait_until_settled`: no scan of the period still running, and the last one ended
  ``settle_seconds`` ago (bounded by ``settle_timeout_seconds``, progress in the log).
* :func:`build_message`: the report's HTML page as the body, a plain-text alternative, and
  the report's CSV attached, byte for byte.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from reconciler.email_config import EmailConfig, parse_address
from reconciler.report import format_number
from reconciler.report_data import ReportData
from reconciler.report_mail_store import ScanActivity, scan_activity
from reconciler.store import Store

log = logging.getLogger(__name__)

__all__ = [
    "Period",
    "build_message",
    "default_night",
    "night_period",
    "render_text",
    "subject_of",
    "wait_until_settled",
]

MAX_TEXT_EXCEPTIONS = 50
"""Exception rows listed in the plain-text part (the HTML page and the CSV have them all)."""


@dataclass(frozen=True, slots=True)
class Period:
    """What one report mail covers.

    Attributes:
        key: The record's scope: ``night:D``, ``since:ISO`` or ``scan:ID``.
        label: How the subject names it (``night of D``, ``scan ID``, ``since ISO``).
        since: Start of the period (a night or ``--since``); None for a scan.
        scan: The scan (``--scan``); None otherwise.
    """

    key: str
    label: str
    since: datetime | None = None
    scan: str | None = None


def night_period(config: EmailConfig, night: date) -> Period:
    """The period of night ``night``: from its ``night_start`` (in ``timezone``) on."""
    start = datetime.combine(night, config.night_start, tzinfo=config.zone).astimezone(UTC)
    return Period(f"night:{night.isoformat()}", f"night of {night.isoformat()}", since=start)


def default_night(config: EmailConfig, now: datetime) -> date:
    """The night that contains ``now`` (aware): today's if it has begun, else yesterday's."""
    local = now.astimezone(config.zone)
    begun = local.timetz().replace(tzinfo=None) >= config.night_start
    return local.date() if begun else local.date() - timedelta(days=1)


def since_period(since: datetime) -> Period:
    """The period of ``--since``."""
    text = since.astimezone(UTC).isoformat()
    return Period(f"since:{text}", f"since {text}", since=since)


def scan_period(scan_id: str) -> Period:
    """The period of ``--scan``."""
    return Period(f"scan:{scan_id}", f"scan {scan_id}", scan=scan_id)


def _settled(activity: ScanActivity, settle: float, now: datetime) -> float:
    """Seconds until the scans have settled (0: settled); inf while one runs."""
    if activity.running:
        return float("inf")
    if activity.last_ended is None:
        return 0.0
    return max(0.0, settle - (now - activity.last_ended).total_seconds())


def wait_until_settled(
    store: Store,
    period: Period,
    config: EmailConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Wait until no scan of ``period`` runs and the last ended ``settle_seconds`` ago.

    Looks at the store every ``poll_seconds`` (sooner when the settle time ends first), and
    logs what it waits for each time that changes. Gives up after ``settle_timeout_seconds``.

    Returns:
        The scans still running when it gave up (empty when the scans settled).
    """
    deadline = clock() + config.settle_timeout_seconds
    shown: tuple[object, ...] | None = None
    while True:
        activity = _activity(store, period)
        left = _settled(activity, config.settle_seconds, datetime.now(UTC))
        if left <= 0:
            if activity.scans == 0 and period.scan is None:
                log.warning("report mail: no scan started %s", period.label)
            return []
        remaining = deadline - clock()
        if remaining <= 0:
            log.warning(
                "report mail: scans still running after settle_timeout_seconds %g: %s;"
                " sending the report as it stands",
                config.settle_timeout_seconds,
                ", ".join(activity.running),
            )
            return activity.running
        state = (tuple(activity.running), activity.last_ended)
        if state != shown:
            shown = state
            if activity.running:
                log.info(
                    "report mail: waiting for %d running scans (%s)",
                    len(activity.running),
                    ", ".join(activity.running),
                )
            else:
                log.info(
                    "report mail: last scan ended at %s; waiting %.0f s for the scans to settle",
                    activity.last_ended.isoformat() if activity.last_ended else "-",
                    left,
                )
        sleep(min(config.poll_seconds, left, remaining))


def _activity(store: Store, period: Period) -> ScanActivity:
    if period.scan is not None:
        return scan_activity(store, scan_id=period.scan)
    assert period.since is not None  # a night or --since
    return scan_activity(store, since=period.since)


def subject_of(config: EmailConfig, site: str, period: Period, data: ReportData) -> str:
    """The subject: ``email.subject`` with the report's figures filled in."""
    summary = data.summary
    return config.subject.format(
        site=site,
        period=period.label,
        scope=data.scope,
        ira=summary.ira,
        exceptions=summary.exceptions,
        records=summary.records_counted,
        coverage=summary.location_coverage,
    )


def render_text(data: ReportData) -> str:
    """The plain-text part: the figures, then the exception rows (up to 50)."""
    s = data.summary
    lines = [
        data.title,
        f"Scope: {data.scope}",
        f"Generated: {data.generated_at.isoformat(timespec='minutes')}",
        "",
        f"Records counted: {s.records_counted}",
        f"Within tolerance: {s.records_within_tolerance} (IRA {s.ira:.1%})",
        f"Exceptions: {s.exceptions}",
        f"Locations counted: {s.locations_counted} of {s.locations_in_book}"
        f" in the book ({s.location_coverage:.1%})",
        f"Net variance value: {s.net_variance_value:.2f}",
        f"Absolute variance value: {s.absolute_variance_value:.2f}",
    ]
    exceptions = [row for row in data.rows if row.is_exception]
    if exceptions:
        lines += ["", "Exceptions (location, sku, book, counted, diff, value, status):"]
        for row in exceptions[:MAX_TEXT_EXCEPTIONS]:
            counted = "-" if row.counted_qty is None else format_number(row.counted_qty)
            lines.append(
                f"  {row.location}  {row.sku}  {format_number(row.book_qty)}  {counted}"
                f"  {format_number(row.diff)}  {row.diff_value:.2f}  {row.status.value}"
            )
        if len(exceptions) > MAX_TEXT_EXCEPTIONS:
            lines.append(f"  … and {len(exceptions) - MAX_TEXT_EXCEPTIONS} more (see the CSV)")
    lines += ["", "The full report is the HTML part of this message; the CSV is attached."]
    return "\n".join(lines) + "\n"


def build_message(
    config: EmailConfig,
    subject: str,
    data: ReportData,
    *,
    html: str,
    csv_text: str,
    filename: str,
) -> EmailMessage:
    """The message: text and HTML alternatives, the CSV attached as its exact bytes."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = config.sender
    message["To"] = ", ".join(config.to)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid("edgecount-report", parse_address(config.sender).domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render_text(data))
    message.add_alternative(html, subtype="html")
    message.add_attachment(
        csv_text.encode("utf-8"),
        maintype="text",
        subtype="csv",
        filename=filename,
        params={"charset": "utf-8"},
    )
    return message
