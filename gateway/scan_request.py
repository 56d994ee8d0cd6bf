"""``edgecount gateway scan-request``: ask the running daemon for a scan, and wait for it.

The request goes to ``cmd/{gateway_id}/scan`` as ``edgecount.scan-request/1`` with a fresh
``request_id``, from a client id of its own (never the daemon's). With ``--wait`` the client
subscribes to ``scan/{zone}`` and ``count/{zone}/+`` *before* it publishes, then follows the
scan that answers the request: the one whose ``request_id`` is the request's or, when the
daemon merged the request into a scan of the zone that was already waiting (that scan carries
the first request's id), the first scan of the zone that starts after the broker took the
request. The counts of that scan arrive before its final ``completed`` / ``incomplete``
message (one connection, in outbox order), so the result is whole when that message arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import socket
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgecount import contract
from edgecount.exitcodes import ExitCode
from edgecount.mqtt import MqttConnection, MqttSettingsError
from edgecount.settings import mqtt_settings
from edgecount.yamlcfg import config_argument
from gateway import cli
from gateway.config import GatewayConfig
from gateway.runtime import client_id

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 900.0
NO_MATCHING_SUBSCRIBERS = 0x10
"""MQTT 5 PUBACK reason: accepted, but nobody is subscribed (the daemon is not connected)."""


class RequestNotDeliveredError(Exception):
    """The broker could not be reached, or did not acknowledge the request (exit 4)."""


@dataclass(slots=True)
class ScanWatch:
    """Follows the scan messages of one zone and picks the scan that answers a request."""

    zone: str
    request_id: str
    locations: list[str] | None = None
    armed: bool = False
    """Set once the broker acknowledged the request; what came before is old news."""
    before: set[str] = field(default_factory=set)
    scan_id: str | None = None
    counts: dict[str, dict[str, contract.CountMessage]] = field(default_factory=dict)
    """scan_id -> location -> the latest count."""
    final: contract.ScanMessage | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def on_message(self, topic: str, raw: bytes) -> None:
        """Record a count, or follow a scan message."""
        try:
            message = contract.decode_message(topic, raw)
        except contract.ContractError as exc:  # an empty retained payload, or garbage
            log.debug("ignoring %s: %s", topic, exc)
            return
        if isinstance(message, contract.CountMessage):
            self.counts.setdefault(message.scan_id, {})[message.location] = message
            return
        if not isinstance(message, contract.ScanMessage) or message.zone != self.zone:
            return
        scan_id = message.scan_id
        if self.scan_id is None and self._answers(message):
            self.scan_id = scan_id
            log.info("following scan %s (request_id %s)", scan_id, message.request_id)
        if not self.armed:
            self.before.add(scan_id)
        if scan_id == self.scan_id and message.state is not contract.ScanState.STARTED:
            self.final = message
            self.done.set()

    def _answers(self, message: contract.ScanMessage) -> bool:
        if message.request_id == self.request_id:
            return True
        return (
            self.armed
            and message.state is contract.ScanState.STARTED
            and message.scan_id not in self.before
        )

    def report(self) -> dict[str, Any]:
        """The result in the shape ``edgecount scan --json`` prints."""
        final = self.final
        if final is None or self.scan_id is None:
            raise RuntimeError("no scan has ended yet")
        counts = self.counts.get(self.scan_id, {})
        wanted = self.locations or list(final.locations)
        rows = [_location_row(counts[name]) for name in wanted if name in counts]
        missing = [name for name in wanted if name not in counts]
        if self.locations:
            complete = not missing and all(row["complete"] for row in rows)
        else:
            complete = final.state is contract.ScanState.COMPLETED
        return {
            "scan_id": self.scan_id,
            "zone": self.zone,
            "complete": complete,
            "started_at": final.started_at,
            "ended_at": final.ended_at,
            "locations": rows,
            "readers": [_device(r.name, r.ok, "reads", r.reads, r.error) for r in final.readers],
            "cameras": [
                _device(c.name, c.ok, "frames", c.frames, c.error) for c in final.cameras or ()
            ],
            "request_id": self.request_id,
            "answered_request_id": final.request_id,
        }


def _location_row(count: contract.CountMessage) -> dict[str, Any]:
    """A location of the printed result (``edgecount scan --json``'s shape)."""
    row: dict[str, Any] = {
        "location": count.location,
        "source": count.source.value,
        "complete": count.complete,
        "total": count.total,
        "items": [{"sku": item.sku, "qty": item.qty} for item in count.items],
    }
    if count.fusion is not None:
        row["fusion"] = count.fusion.to_payload()
    return row


def _device(name: str, ok: bool, figure: str, value: int, error: str | None) -> dict[str, Any]:
    """A reader or camera of the printed result."""
    return {"name": name, "ok": ok, figure: value, "error": error}


class _Events:
    """The :class:`~edgecount.mqtt.ConnectionEvents` of the request's connection."""

    def __init__(self, watch: ScanWatch | None) -> None:
        loop = asyncio.get_running_loop()
        self.watch = watch
        self.connack: asyncio.Future[ReasonCode] = loop.create_future()
        self.acks: dict[int, asyncio.Future[ReasonCode]] = {}
        self.subacks: dict[str, asyncio.Future[list[ReasonCode]]] = {}
        self.closed = asyncio.Event()
        self.close_reason = ""

    def connection_acked(
        self, _conn: MqttConnection, reason: ReasonCode, _props: Properties | None
    ) -> None:
        if not self.connack.done():
            self.connack.set_result(reason)

    def connection_closed(self, _conn: MqttConnection, reason: str) -> None:
        self.close_reason = reason
        self.closed.set()

    def message_acked(self, _conn: MqttConnection, mid: int, reason: ReasonCode) -> None:
        future = self.acks.get(mid)
        if future is not None and not future.done():
            future.set_result(reason)

    def message_received(self, _conn: MqttConnection, topic: str, payload: bytes) -> None:
        if self.watch is not None:
            self.watch.on_message(topic, payload)

    def subscription_acked(
        self, _conn: MqttConnection, topic_filter: str, reasons: list[ReasonCode]
    ) -> None:
        future = self.subacks.get(topic_filter)
        if future is not None and not future.done():
            future.set_result(reasons)


async def _within(
    awaitable: asyncio.Future[Any], events: _Events, seconds: float, what: str
) -> Any:
    """The future's result, unless the connection closes or ``seconds`` pass first."""
    closed = asyncio.ensure_future(events.closed.wait())
    try:
        done, _ = await asyncio.wait(
            {awaitable, closed}, timeout=seconds, return_when="FIRST_COMPLETED"
        )
    finally:
        closed.cancel()
    if awaitable in done:
        return awaitable.result()
    why = f"connection closed ({events.close_reason})" if closed in done else f"{seconds:.0f} s"
    raise RequestNotDeliveredError(f"no {what} from the broker ({why})")


async def send_request(
    config: GatewayConfig,
    request: contract.ScanRequestMessage,
    watch: ScanWatch | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 - the operator's --timeout
) -> bool:
    """Publish the request (QoS 1); with ``watch``, subscribe first and wait for the result.

    Returns:
        True once the watched scan ended (or, without ``watch``, once the request was
        acknowledged); False when ``timeout`` passed first.

    Raises:
        RequestNotDeliveredError: The broker is unreachable, refused, or did not acknowledge,
            nobody is subscribed to the command topic, or the connection was lost.
    """
    settings = mqtt_settings(config.mqtt, client_id(config, "req"))
    events = _Events(watch)
    try:
        conn = MqttConnection(settings, settings.client_id, events, loop=asyncio.get_running_loop())
        await conn.open()
    except (MqttSettingsError, OSError, ValueError) as exc:
        raise RequestNotDeliveredError(f"cannot connect to {settings.describe()}: {exc}") from exc
    try:
        reason = await _within(events.connack, events, settings.connect_timeout, "CONNACK")
        if reason.is_failure:
            raise RequestNotDeliveredError(
                f"{settings.describe()} refused the connection: {reason}"
            )
        if watch is not None:
            await _subscribe(conn, events, config.site, watch.zone, settings.connect_timeout)
        topic = contract.cmd_scan_topic(config.site, config.gateway_id)
        await _publish(conn, events, topic, request, settings.connect_timeout)
        if watch is None:
            return True
        watch.armed = True
        return await _wait_result(watch, events, timeout)
    finally:
        conn.disconnect()
        await conn.close(5.0)


async def _subscribe(
    conn: MqttConnection, events: _Events, site: str, zone: str, limit: float
) -> None:
    root = contract.site_root(site)
    for flt in (contract.scan_topic(site, zone), f"{root}count/{zone}/+"):
        events.subacks[flt] = asyncio.get_running_loop().create_future()
        conn.subscribe(flt)
        reasons = await _within(events.subacks[flt], events, limit, f"SUBACK for {flt}")
        if any(reason.is_failure for reason in reasons):
            raise RequestNotDeliveredError(f"the broker refused the subscription to {flt}")


async def _publish(
    conn: MqttConnection,
    events: _Events,
    topic: str,
    request: contract.ScanRequestMessage,
    limit: float,
) -> None:
    mid = conn.publish(topic, contract.encode_message(request), qos=1, retain=False)
    if mid is None:
        raise RequestNotDeliveredError("the connection to the broker is gone")
    events.acks[mid] = asyncio.get_running_loop().create_future()
    ack = await _within(events.acks[mid], events, limit, "PUBACK for the request")
    if ack.is_failure:
        raise RequestNotDeliveredError(f"the broker refused the request: {ack}")
    if ack.value == NO_MATCHING_SUBSCRIBERS:
        raise RequestNotDeliveredError(
            f"nobody is subscribed to {topic}: the daemon is not connected to this broker;"
            " the request is lost (requests are not queued for an offline gateway)"
        )


async def _wait_result(watch: ScanWatch, events: _Events, timeout: float) -> bool:  # noqa: ASYNC109
    waiter = asyncio.ensure_future(watch.done.wait())
    closed = asyncio.ensure_future(events.closed.wait())
    await asyncio.wait({waiter, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    closed.cancel()
    if watch.done.is_set():
        return True
    if events.closed.is_set():
        raise RequestNotDeliveredError(
            f"lost the broker connection while waiting ({events.close_reason});"
            " the daemon still runs the scan"
        )
    return False


# -- command line -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount gateway scan-request``."""
    config_argument(parser, "gateway")
    parser.add_argument("--zone", required=True, help="zone to scan (a key of `zones:`)")
    parser.add_argument(
        "--locations", nargs="+", metavar="L", help="locations of the zone to report (--wait)"
    )
    parser.add_argument("--reason", default="manual", help="why (default: manual)")
    parser.add_argument(
        "--wait", action="store_true", help="wait for the scan's result and print it"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait with --wait (default {DEFAULT_TIMEOUT_S:.0f})",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def requester() -> str:
    """``user@host`` of whoever runs the command, for ``requested_by``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:128]


def _checked(args: argparse.Namespace) -> GatewayConfig | None:
    """The configuration when the arguments fit it; else print why and return None."""
    config = cli.load_with_zone(args.config, args.zone)
    if config is None:
        return None
    if args.timeout <= 0:
        print(f"--timeout must be positive, got {args.timeout}", file=sys.stderr)
        return None
    known = config.zone_locations(args.zone)
    strangers = [name for name in args.locations or [] if name not in known]
    if strangers:
        print(
            f"{args.config}: zone {args.zone!r} has no location {', '.join(strangers)};"
            f" it has {', '.join(known)}",
            file=sys.stderr,
        )
        return None
    return config


def run(args: argparse.Namespace) -> int:
    """Send the request; exit 0 sent (or complete), 3 incomplete, 4 not delivered, 5 timeout."""
    config = _checked(args)
    if config is None:
        return ExitCode.USAGE
    now = datetime.now(UTC)
    request = contract.scan_request_message(
        reason=args.reason,
        requested_by=requester(),
        zone=args.zone,
        locations=args.locations,
        at=now,
        expires_at=now + timedelta(seconds=args.timeout) if args.wait else None,
    )
    request_id = request.request_id
    watch = ScanWatch(args.zone, request_id, args.locations) if args.wait else None
    try:
        finished = asyncio.run(send_request(config, request, watch, args.timeout))
    except RequestNotDeliveredError as exc:
        print(f"scan-request {request_id}: {exc}", file=sys.stderr)
        return ExitCode.UNDELIVERED
    if watch is None:
        sent = {"request_id": request_id, "zone": args.zone, "sent": True}
        print(json.dumps(sent) if args.json else f"request {request_id} sent")
        return ExitCode.OK
    if not finished:
        following = f" (following scan {watch.scan_id})" if watch.scan_id else ""
        print(
            f"scan-request {request_id}: no result within {args.timeout:.0f} s"
            f"{following}; the daemon may still run it: its scan/{args.zone} message carries"
            " the request_id",
            file=sys.stderr,
        )
        return ExitCode.TIMEOUT
    report = watch.report()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        cli.print_table(report, sys.stdout)
    return ExitCode.OK if report["complete"] else ExitCode.INCOMPLETE
