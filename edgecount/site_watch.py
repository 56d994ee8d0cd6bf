"""What a night's WMS sees on the broker: every payload validated, the scans and counts noted.

:class:`SiteWatcher` is :mod:`edgecount.truth`'s view of the site's topics: it sends the
night's scan requests, notes every scan that ended and every count, and keeps the payloads
that failed validation.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgecount import contract

__all__ = ["REQUESTED_BY", "SiteWatcher"]

REQUESTED_BY = "edgecount-demo"
"""Who asks for the night's scans (and approves its confirmed differences)."""

Say = Callable[[str], None]


@dataclass
class _Scan:
    scan_id: str
    zone: str
    request_id: str
    state: contract.ScanState
    locations: int
    incomplete: int


class SiteWatcher:
    """Watches the site's topics like a WMS would: validates every payload, notes the scans.

    Args:
        host: Broker address.
        port: Broker port.
        site: The site.
        gateway_id: The gateway to watch.
        say: Where scan progress lines go.
    """

    def __init__(self, host: str, port: int, site: str, gateway_id: str, say: Say) -> None:
        self.root = contract.site_root(site)
        self.say = say
        self.started = time.monotonic()
        self.invalid: list[str] = []
        self.scans: list[_Scan] = []
        self.first_counts: dict[str, dict[str, int]] = {}
        self.latest_counts: dict[str, dict[str, int]] = {}
        self.retained: set[str] = set()
        """Topics the gateway publishes retained (counts, its status): cleared by :meth:`close`
        on an external broker."""
        self.vision_totals: list[tuple[str, int]] = []
        """(location, items the cameras saw) of every fused count with a complete vision
        figure."""
        self.all_counts: list[tuple[str, str, dict[str, int]]] = []
        """(zone, location, SKU quantities) of every complete count, in arrival order."""
        self.online = threading.Event()
        self._subscribed = threading.Event()
        self._changed = threading.Condition()
        self._status_topic = f"{self.root}status/{gateway_id}"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"edgecount-night-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe(
            [(f"{self.root}count/#", 1), (f"{self.root}scan/#", 1), (self._status_topic, 1)]
        )

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        if not message.payload:
            return  # a cleared retained message
        try:
            received = contract.decode_message(message.topic, bytes(message.payload))
        except contract.ContractError as exc:
            self.invalid.append(f"{message.topic}: {exc}")
            return
        with self._changed:
            if isinstance(received, contract.CountMessage | contract.StatusMessage):
                self.retained.add(message.topic)
            if message.topic == self._status_topic:
                if (
                    isinstance(received, contract.StatusMessage)
                    and received.state is contract.GatewayState.ONLINE
                ):
                    self.online.set()
            elif isinstance(received, contract.CountMessage):
                self._note_count(received)
            elif (
                isinstance(received, contract.ScanMessage)
                and received.state is not contract.ScanState.STARTED
            ):
                scan = _Scan(
                    received.scan_id,
                    received.zone,
                    received.request_id or "",
                    received.state,
                    len(received.locations),
                    len(received.incomplete_locations),
                )
                self.scans.append(scan)
                self._note(scan)
            self._changed.notify_all()

    def _note_count(self, count: contract.CountMessage) -> None:
        items = count.quantities
        self.first_counts.setdefault(count.location, items)
        self.latest_counts[count.location] = items
        if count.complete:
            self.all_counts.append((count.zone, count.location, items))
        vision = None if count.fusion is None else count.fusion.vision
        if vision is not None and vision.complete:
            self.vision_totals.append((count.location, vision.total))

    def _note(self, scan: _Scan) -> None:
        kind = "recount" if scan.request_id.startswith("recount-") else "nightly"
        gaps = f", {scan.incomplete} incomplete" if scan.incomplete else ""
        self.say(
            f"[{time.monotonic() - self.started:6.1f} s] zone {scan.zone} scanned ({kind}): "
            f"{scan.locations} locations{gaps}"
        )

    def wait_subscribed(self, timeout: float) -> bool:
        """Block until the subscriptions are acknowledged."""
        return self._subscribed.wait(timeout)

    def scanned(self, request_ids: Iterable[str]) -> bool:
        """Whether every one of these scan requests has been answered by a finished scan."""
        with self._changed:
            done = {scan.request_id for scan in self.scans}
        return set(request_ids) <= done

    def ended(self) -> dict[str, int]:
        """Scans that ended: scan id → how many locations they published."""
        with self._changed:
            return {scan.scan_id: scan.locations for scan in self.scans}

    def request_scan(self, gateway_id: str, zone: str, request_id: str) -> None:
        """Send the gateway a scan request for ``zone`` (QoS 1)."""
        payload = contract.scan_request_payload(
            reason="nightly cycle count",
            requested_by=REQUESTED_BY,
            zone=zone,
            request_id=request_id,
        )
        site = self.root.rstrip("/").rsplit("/", 1)[-1]
        topic = contract.cmd_scan_topic(site, gateway_id)
        self.client.publish(topic, json.dumps(payload), qos=1)

    def clear_retained(self) -> None:
        """Clear the retained messages of :attr:`retained` (after the gateway stopped)."""
        for topic in sorted(self.retained):
            self.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5.0)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()
