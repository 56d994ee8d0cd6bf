"""The gateway's health rule and its Prometheus metrics, read from live figures.

**Healthy** (what ``/healthz`` answers and what the systemd watchdog is fed on) means all of:

* the event loop runs: the watchdog pings and the HTTP answers come from it, so a loop
  blocked for longer than ``WatchdogSec`` gets the daemon restarted;
* the publisher is alive: its supervisor task has not failed (a broker that is merely away is
  not unhealthy: the outbox keeps the counts and a restart would not bring the broker back);
* no supervised task (scan worker, cron schedulers, metrics server) is restarting or
  failed (:meth:`edgecount.supervisor.Supervisor.reasons`);
* some reader has been connected within the last ``metrics.readers_down_seconds`` (only for a
  gateway with readers): when every reader fails for that long a restart is worth a try.

The figures of drivers and publisher are read into fresh metric families at each scrape. Counters
are totals since the daemon started (Prometheus' ``rate()`` turns them into reads per second).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from drivers.base import Device, DeviceHealth, HealthState
from edgecount import __version__
from edgecount.metrics import Family, counter, gauge, scrape_registry
from edgecount.supervisor import Supervisor
from gateway.config import GatewayConfig, MetricsConfig
from gateway.publisher import Publisher

__all__ = ["GatewayMonitor"]


class _Queued(Protocol):
    def qsize(self) -> int: ...


class _State(Protocol):
    """The parts of :class:`gateway.daemon.Gateway` watched here."""

    scans_run: int
    failed_scans: int
    rejected_commands: int
    scanning: str | None
    stopping: asyncio.Event

    @property
    def requests(self) -> _Queued: ...


class GatewayMonitor:
    """Health reasons and metrics of one running gateway.

    Args:
        config: The gateway configuration (``metrics.readers_down_seconds`` is the rule's X).
        gateway: The daemon's state (scans, rejected commands, the request queue).
        publisher: The publisher (outbox depth, acknowledgements, latency).
        readers: The started readers, by name.
        cameras: The started cameras, by name.
        tasks: The daemon's supervised tasks (a task restarting or failed is a reason).
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        config: GatewayConfig,
        gateway: _State,
        publisher: Publisher,
        readers: Mapping[str, Device[Any]],
        cameras: Mapping[str, Device[Any]],
        *,
        tasks: Supervisor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.gateway = gateway
        self.publisher = publisher
        self.readers = readers
        self.cameras = cameras
        self.tasks = tasks
        self.readers_down_seconds = (config.metrics or MetricsConfig()).readers_down_seconds
        self._clock = clock
        self._reader_up_at = clock()
        self._define()
        self.registry = scrape_registry(self._collect)

    # -- health ------------------------------------------------------------------------------

    def reasons(self) -> list[str]:
        """Why the gateway is unhealthy; empty when healthy."""
        reasons: list[str] = []
        state = self.publisher.health().state
        if state == "failed":
            reasons.append(f"publisher failed: {self.publisher.health().last_error}")
        if self.tasks is not None:
            reasons += self.tasks.reasons()
        now = self._clock()
        if not self.readers or any(_up(r.health()) for r in self.readers.values()):
            self._reader_up_at = now
        down = now - self._reader_up_at
        if down >= self.readers_down_seconds:
            reasons.append(f"no reader connected for {down:.0f} s")
        return reasons

    # -- metrics -----------------------------------------------------------------------------

    def _define(self) -> None:
        """What each scrape exports: a fresh family per key, filled by :meth:`_collect`."""
        about = ["gateway", "site", "version"]
        self.m: dict[str, Callable[[], Family]] = {
            "info": _gauge("edgecount_gateway_info", "The gateway.", about),
            "healthy": _gauge("edgecount_gateway_healthy", "1 when healthy (see /healthz)."),
            "scanning": _gauge("edgecount_gateway_scanning", "1 while a zone scan runs."),
            "requests": _gauge("edgecount_scan_requests_queued", "Scan requests waiting."),
            "scans": _counter("edgecount_scans_total", "Zone scans run to their end."),
            "failed": _counter("edgecount_scans_failed_total", "Zone scans that raised."),
            "rejected": _counter(
                "edgecount_commands_rejected_total", "Invalid or unknown scan commands."
            ),
        }  # fmt: skip
        for kind, unit in (("reader", "Tag reads"), ("camera", "Frames")):
            self.m[f"{kind}_reads"] = _counter(
                f"edgecount_{kind}_{'reads' if kind == 'reader' else 'frames'}_total",
                f"{unit} received.",
                [kind],
            )
            self.m[f"{kind}_dropped"] = _counter(
                f"edgecount_{kind}_dropped_total", f"{unit} dropped (queue full).", [kind]
            )
            self.m[f"{kind}_connects"] = _counter(
                f"edgecount_{kind}_connects_total", "Successful connections.", [kind]
            )
            self.m[f"{kind}_failures"] = _counter(
                f"edgecount_{kind}_failures_total",
                "Failed connection attempts and lost connections (camera stalls included).",
                [kind],
            )
            self.m[f"{kind}_connected"] = _gauge(
                f"edgecount_{kind}_connected", "1 while connected.", [kind]
            )
            self.m[f"{kind}_queue"] = _gauge(
                f"edgecount_{kind}_queue_depth", "Items waiting in the driver's queue.", [kind]
            )
        self.m["reader_waits"] = _counter(
            "edgecount_reader_handover_waits_total",
            "Times the reader's socket thread waited for room in a full queue (back-pressure).",
            ["reader"],
        )
        self.m["reader_wait_seconds"] = _counter(
            "edgecount_reader_handover_wait_seconds_total",
            "Seconds the reader's socket thread waited for room in all.",
            ["reader"],
        )
        self.m["camera_age"] = _gauge(
            "edgecount_camera_seconds_since_frame", "Age of the newest frame.", ["camera"]
        )
        self._define_publisher()

    def _define_publisher(self) -> None:
        gauges = {
            "connected": ("edgecount_mqtt_connected", "1 while a broker session is up."),
            "outbox_depth": ("edgecount_outbox_depth", "Messages waiting for a PUBACK."),
            "outbox_full": ("edgecount_outbox_full", "1 while the outbox's full alarm is on."),
            "inflight": ("edgecount_mqtt_inflight", "Messages sent, not yet acknowledged."),
        }
        counters = {
            "published": "PUBLISH packets sent (re-sends included).",
            "acked": "Messages acknowledged by the broker.",
            "replayed": "Messages sent again as historical after an outage.",
            "rejected": "Messages not accepted: outbox full or breaking the contract.",
            "refused": "Messages the broker refused.",
            "connects": "Broker connections.",
            "connect_failures": "Failed broker connection attempts.",
            "disconnects": "Broker connections lost or closed.",
            "dropped_incoming": "Incoming messages dropped (loop behind).",
            "transient_sent": "Best-effort messages (camera frames) sent with QoS 0.",
            "transient_dropped": "Best-effort messages (camera frames) dropped: no broker.",
        }
        for key, (name, text) in gauges.items():
            self.m[f"mqtt_{key}"] = _gauge(name, text)
        self._publisher_counters = tuple(counters)
        for key, text in counters.items():
            self.m[f"mqtt_{key}"] = _counter(f"edgecount_mqtt_{key}_total", text)
        self.m["ack_latency"] = _gauge(
            "edgecount_publish_ack_latency_seconds",
            "Send-to-PUBACK time: last, mean of the last 256, max since start.",
            ["stat"],
        )
        self.m["delivery_latency"] = _gauge(
            "edgecount_publish_delivery_latency_seconds",
            "Enqueue-to-PUBACK time of the last acknowledged message.",
        )

    def _collect(self) -> Iterator[Family]:
        m = {key: make() for key, make in self.m.items()}
        g = self.gateway
        m["info"].add_metric([self.config.gateway_id, self.config.site, __version__], 1)
        m["healthy"].add_metric([], 0 if self.reasons() else 1)
        m["scanning"].add_metric([], 0 if g.scanning is None else 1)
        m["requests"].add_metric([], g.requests.qsize())
        m["scans"].add_metric([], g.scans_run)
        m["failed"].add_metric([], g.failed_scans)
        m["rejected"].add_metric([], g.rejected_commands)
        for kind, devices in (("reader", self.readers), ("camera", self.cameras)):
            for name, device in devices.items():
                _collect_device(m, kind, name, device)
        health = self.publisher.health()
        for key in ("connected", "outbox_depth", "outbox_full", "inflight"):
            m[f"mqtt_{key}"].add_metric([], float(getattr(health, key)))
        for key in self._publisher_counters:
            m[f"mqtt_{key}"].add_metric([], getattr(health, key))
        for stat in ("last", "mean", "max"):
            value = getattr(health, f"ack_latency_{stat}_s")
            if value is not None:
                m["ack_latency"].add_metric([stat], value)
        if health.delivery_latency_last_s is not None:
            m["delivery_latency"].add_metric([], health.delivery_latency_last_s)
        families: list[Family] = list(m.values())
        if self.tasks is not None:
            families += self.tasks.families("edgecount_gateway")
        return iter(families)


def _gauge(name: str, text: str, labels: Sequence[str] = ()) -> Callable[[], Family]:
    return lambda: gauge(name, text, labels)


def _counter(name: str, text: str, labels: Sequence[str] = ()) -> Callable[[], Family]:
    return lambda: counter(name, text, labels)


def _collect_device(m: Mapping[str, Family], kind: str, name: str, device: Device[Any]) -> None:
    health = device.health()
    m[f"{kind}_reads"].add_metric([name], health.reads)
    m[f"{kind}_dropped"].add_metric([name], health.dropped)
    m[f"{kind}_connects"].add_metric([name], health.connects)
    m[f"{kind}_failures"].add_metric([name], device.failures)
    m[f"{kind}_connected"].add_metric([name], 1 if _up(health) else 0)
    queue = getattr(device, "queue", None)
    if queue is not None:
        m[f"{kind}_queue"].add_metric([name], queue.qsize())
    if kind == "reader" and "handover_waits" in health.extra:  # overflow: block
        m["reader_waits"].add_metric([name], health.extra["handover_waits"])
        m["reader_wait_seconds"].add_metric([name], health.extra["handover_wait_seconds"])
    age = health.extra.get("seconds_since_frame")
    if kind == "camera" and age is not None:
        m["camera_age"].add_metric([name], age)


def _up(health: DeviceHealth) -> bool:
    return health.state is HealthState.CONNECTED
