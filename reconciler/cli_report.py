"""``edgecount reconcile report`` and ``edgecount plan``: reports and plans from the store.

Both take ``-c FILE`` (the reconciler's YAML) like every ``reconcile`` command and exit 0 on
success, 1 when what was asked for cannot be done (an unknown scan or zone, a broker that does
not acknowledge), 2 for usage and configuration errors.
"""

from __future__ import annotations

import argparse
import sys
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edgecount import contract
from edgecount.argtypes import iso_date, utc_time
from edgecount.exitcodes import ExitCode
from edgecount.mqtt import MqttSettings, MqttSettingsError, new_client
from edgecount.settings import mqtt_settings
from reconciler.cli import (
    _config_argument,
    _load,
    make_engine,
    reports_database_errors,
)
from reconciler.config import ReconcilerConfig
from reconciler.plan import Frequencies, Plan, make_plan
from reconciler.queries import (
    UNKNOWN_ZONE,
    Covered,
    coverage,
    plan_inputs,
)
from reconciler.report import ReportData, render_csv, render_html, render_json
from reconciler.report_build import UnknownScopeError, build_report

__all__ = [
    "PUBACK_TIMEOUT",
    "UnknownScopeError",
    "add_plan_arguments",
    "add_reconcile_report_arguments",
    "build_report",
    "publish_messages",
    "run_plan",
    "run_reconcile_report",
    "scan_requests",
]

PUBACK_TIMEOUT = 10.0
"""Seconds ``plan --publish`` waits for the broker to acknowledge every scan request."""

RENDERERS: Mapping[str, Callable[[ReportData], str]] = {
    "csv": render_csv,
    "json": render_json,
    "html": render_html,
}


# -- report -------------------------------------------------------------------------------------


def add_reconcile_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount reconcile report``."""
    _config_argument(parser)
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--scan", metavar="ID", help="one scan: its counts and unscanned locations")
    scope.add_argument(
        "--zone",
        metavar="Z",
        help=f"the latest count of each location of a zone ({UNKNOWN_ZONE!r}: the book's"
        " locations no gateway reported)",
    )
    scope.add_argument(
        "--since",
        type=utc_time,
        metavar="DATE",
        help="the latest count per location observed since DATE (YYYY-MM-DD, UTC, or ISO-8601),"
        " and the book's locations no count of the period covered",
    )
    parser.add_argument("--format", required=True, choices=sorted(RENDERERS), help="output format")
    parser.add_argument("-o", "--output", type=Path, metavar="OUT", help="file (default stdout)")


def _write(text: str, output: Path | None) -> bool:
    if not text.endswith("\n"):
        text += "\n"
    if output is None:
        sys.stdout.write(text)
        return True
    try:
        output.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        print(f"error: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


@reports_database_errors
def run_reconcile_report(args: argparse.Namespace) -> int:
    """Write a CSV, JSON or HTML report of a scan, a zone or the counts since a date."""
    config = _load(args.config)
    if config is None:
        return ExitCode.USAGE
    engine = make_engine(config)
    try:
        data = build_report(
            engine.store,
            config.tolerances,
            scan=args.scan,
            zone=args.zone,
            since=args.since,
            title=f"Reconciliation report, site {config.site}",
        )
    except UnknownScopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    finally:
        engine.store.close()
    return ExitCode.OK if _write(RENDERERS[args.format](data), args.output) else ExitCode.USAGE


# -- plan ---------------------------------------------------------------------------------------


def _capacity(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"capacity must be a whole number >= 0, got {text!r}")
    return value


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount plan``."""
    _config_argument(parser)
    parser.add_argument(
        "--date", type=iso_date, help="the night planned (YYYY-MM-DD; default today, UTC)"
    )
    parser.add_argument("--capacity", type=_capacity, metavar="N", help="most locations per night")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the plan as JSON")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="send one scan request per (gateway, zone) to the gateways over MQTT",
    )


def _planning(config: ReconcilerConfig) -> tuple[Frequencies, int | None]:
    """Frequencies and capacity from the ``planning: {A, B, C, capacity}`` section."""
    section = config.planning
    return Frequencies(A=section.A, B=section.B, C=section.C), section.capacity


@reports_database_errors
def run_plan(args: argparse.Namespace) -> int:
    """Print tonight's cycle-count plan; optionally save it and send it to the gateways."""
    config = _load(args.config)
    if config is None:
        return ExitCode.USAGE
    frequencies, capacity = _planning(config)
    if args.capacity is not None:
        capacity = args.capacity
    night = args.date or datetime.now(UTC).date()
    engine = make_engine(config)
    try:
        inputs = plan_inputs(engine.store, night)
        covered = coverage(engine.store)
    finally:
        engine.store.close()
    plan = make_plan(inputs, night, frequencies, capacity=capacity)
    print(plan.to_json() if args.json else plan.explain(), end="\n" if args.json else "")
    if args.out is not None and not _write(plan.to_json(), args.out):
        return ExitCode.USAGE
    if not args.publish:
        return ExitCode.OK
    return _publish(plan, config, covered)


def scan_requests(
    plan: Plan, site: str, covered: Mapping[str, Covered], gateways: Mapping[str, str]
) -> tuple[list[tuple[str, contract.ScanRequestMessage]], list[str]]:
    """One ``edgecount.scan-request/1`` per (gateway, zone) of a plan.

    The gateway of a location is the one configured for its zone (``gateways:``, as for
    recounts), else the one that last reported it in that zone.

    Args:
        plan: The plan.
        site: The site (topic root).
        covered: Location -> where it was last reported (:func:`reconciler.queries.coverage`).
        gateways: Zone -> gateway from the configuration.

    Returns:
        (topic, message) pairs in plan order, and the planned locations no gateway covers.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    unroutable: list[str] = []
    for entry in plan.entries:
        gateway = gateways.get(entry.zone)
        where = covered.get(entry.location)
        if gateway is None and where is not None and where.zone == entry.zone:
            gateway = where.gateway
        if gateway is None:
            unroutable.append(entry.location)
            continue
        groups.setdefault((gateway, entry.zone), []).append(entry.location)
    stamp = plan.date.strftime("%Y%m%d")
    messages = [
        (
            contract.cmd_scan_topic(site, gateway),
            contract.scan_request_message(
                reason="cycle",
                requested_by="planner",
                zone=None if zone == UNKNOWN_ZONE else zone,
                locations=locations,
                request_id=f"plan-{stamp}-{uuid.uuid4().hex[:12]}",
            ),
        )
        for (gateway, zone), locations in groups.items()
    ]
    return messages, unroutable


def _publish(plan: Plan, config: ReconcilerConfig, covered: Mapping[str, Covered]) -> int:
    messages, unroutable = scan_requests(plan, config.site, covered, config.gateways)
    if unroutable:
        print(
            f"warning: {len(unroutable)} planned locations have no gateway yet (zone"
            f" {UNKNOWN_ZONE!r}: no gateway reported them and `gateways:` names none);"
            f" not requested: {', '.join(unroutable)}",
            file=sys.stderr,
        )
    if not messages:
        print("nothing to publish", file=sys.stderr)
        return ExitCode.OK
    settings = mqtt_settings(config.mqtt, f"edgecount-{config.instance_id}-planner")
    client_id = f"edgecount-{config.instance_id}-plan-{uuid.uuid4().hex[:8]}"
    errors = publish_messages(settings, client_id, messages)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors:
        return ExitCode.FAILED
    requested = sum(len(message.locations or ()) for _, message in messages)
    print(
        f"published {len(messages)} scan requests ({requested} locations) to {settings.describe()}",
        file=sys.stderr,
    )
    return ExitCode.OK


# -- MQTT ---------------------------------------------------------------------------------------


class _Acks:
    """CONNACK, PUBACKs and the end of the connection, from paho's thread to the caller's."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.connack: ReasonCode | None = None
        self.closed: str | None = None
        self.pubacks: dict[int, ReasonCode] = {}

    def on_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        with self.cond:
            self.connack = reason
            self.cond.notify_all()

    def on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        with self.cond:
            self.closed = str(reason)
            self.cond.notify_all()

    def on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self.cond:
            self.pubacks[mid] = reason
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate() or self.closed is not None, timeout)


def publish_messages(
    settings: MqttSettings,
    client_id: str,
    messages: Sequence[tuple[str, contract.Message]],
    *,
    timeout: float = PUBACK_TIMEOUT,
) -> list[str]:
    """Publish contract messages with QoS 1 (not retained) and wait for every PUBACK.

    Args:
        settings: The broker connection.
        client_id: MQTT client id (must not be the reconciler service's).
        messages: (topic, message) pairs; each is encoded (and validated) as it is sent.
        timeout: Seconds to wait for the acknowledgements.

    Returns:
        What went wrong, one line per problem; empty when the broker acknowledged everything.
    """
    try:
        client = new_client(settings, client_id)
    except MqttSettingsError as exc:
        return [str(exc)]
    acks = _Acks()
    client.on_connect = acks.on_connect
    client.on_disconnect = acks.on_disconnect
    client.on_publish = acks.on_publish
    try:
        client.connect(settings.host, settings.port, settings.keepalive)
    except OSError as exc:
        return [f"cannot reach the broker at {settings.describe()}: {exc}"]
    client.loop_start()
    try:
        if not acks.wait(lambda: acks.connack is not None, settings.connect_timeout):
            return [f"no answer from the broker at {settings.describe()}"]
        if acks.connack is None or acks.connack.is_failure:
            return [f"the broker refused the connection: {acks.connack or acks.closed}"]
        sent: dict[int, str] = {}
        errors: list[str] = []
        for topic, message in messages:
            body = contract.encode(message.to_payload())
            info = client.publish(topic, body, qos=1, retain=False)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                errors.append(f"{topic}: not sent ({info.rc.name})")
                continue
            sent[info.mid] = topic
        acks.wait(lambda: sent.keys() <= acks.pubacks.keys(), timeout)
        for mid, topic in sent.items():
            reason = acks.pubacks.get(mid)
            if reason is None:
                errors.append(f"{topic}: no PUBACK within {timeout:g} s")
            elif reason.is_failure:
                errors.append(f"{topic}: refused by the broker ({reason})")
        return errors
    finally:
        client.disconnect()
        client.loop_stop()
