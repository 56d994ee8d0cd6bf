"""The gateway daemon: keeps readers connected, scans on request and on schedule.

Scan requests arrive on ``cmd/{gateway_id}/scan`` or from a zone's cron ``schedule``. Scans
run one at a time (a reader runs one inventory at a time, and zones may share readers); a
request for a zone that is already waiting is merged into it. On SIGTERM the daemon lets the
running scan finish, publishes ``stopped`` and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from drivers.base import Reader
from edgecount import contract
from edgecount.exitcodes import ExitCode
from edgecount.metrics_http import Endpoint, MetricsServer
from edgecount.sdnotify import Notifier
from edgecount.supervisor import FATAL, RESTART, Supervisor, TaskFailed
from gateway.config import GatewayConfig
from gateway.health import GatewayMonitor
from gateway.publisher import Publisher
from gateway.runtime import Cameras, open_publisher, started_cameras, started_readers, state_lock
from gateway.scan import create_zone_scan

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """A zone to scan, and why."""

    zone: str
    reason: str
    requested_by: str
    request_id: str | None = None


class Gateway:
    """The daemon's state: a queue of scan requests and one worker draining it."""

    def __init__(self, config: GatewayConfig, publisher: Publisher) -> None:
        self.config = config
        self.publisher = publisher
        self.requests: asyncio.Queue[ScanRequest] = asyncio.Queue()
        self._waiting: set[str] = set()
        self.rejected_commands = 0
        self.scans_run = 0
        self.failed_scans = 0
        self.scanning: str | None = None
        """The zone being scanned now, if any."""
        self.stopping = asyncio.Event()
        self.notifier = Notifier()
        """systemd notifications (a no-op outside systemd)."""
        self.monitor: GatewayMonitor | None = None
        """Health and metrics, once :func:`serve` has started the devices."""
        self.metrics_port: int | None = None
        """The port ``/metrics`` and ``/healthz`` listen on, once listening."""
        self.metrics: MetricsServer | None = None
        """The ``/metrics`` and ``/healthz`` server, once listening."""
        self.tasks: Supervisor | None = None
        """The daemon's supervised tasks, once :func:`serve` has started them."""

    @property
    def idle(self) -> bool:
        """No scan running and none queued."""
        return self.scanning is None and self.requests.empty()

    def request(self, request: ScanRequest) -> bool:
        """Queue a scan unless the zone already waits for one. Returns True when queued."""
        if request.zone in self._waiting:
            log.info(
                "zone %s already waiting for a scan; merged (%s)", request.zone, request.reason
            )
            return False
        self._waiting.add(request.zone)
        self.requests.put_nowait(request)
        return True

    def on_command(self, topic: str, raw: bytes) -> None:
        """Handle one message on ``cmd/{gateway_id}/scan``: validate, resolve zones, queue."""
        try:
            message = contract.message_from_payload(contract.decode(raw))
        except contract.ContractError as exc:
            self._reject(topic, str(exc))
            return
        if not isinstance(message, contract.ScanRequestMessage):
            self._reject(topic, f"expected a scan request, got {message.SCHEMA!r}")
            return
        expires = message.expires_at
        if expires is not None and contract.parse_iso(expires) < datetime.now(UTC):
            self._reject(topic, f"request {message.request_id} expired at {expires}")
            return
        zones = self._zones_for(message)
        if not zones:
            self._reject(topic, "names no zone or location of this gateway")
            return
        for zone in zones:
            self.request(
                ScanRequest(zone, message.reason, message.requested_by, message.request_id)
            )

    def _zones_for(self, message: contract.ScanRequestMessage) -> list[str]:
        if message.zone is not None:
            return [message.zone] if message.zone in self.config.zones else []
        if message.locations is None:
            return []
        wanted = set(message.locations)
        return [
            name for name in self.config.zones if set(self.config.zone_locations(name)) & wanted
        ]

    def _reject(self, topic: str, why: str) -> None:
        self.rejected_commands += 1
        log.warning(
            "rejected command on %s: %s (%d rejected so far)", topic, why, self.rejected_commands
        )

    async def worker(self, readers: dict[str, Reader], cameras: Cameras | None = None) -> None:
        """Run queued scans one after another until stopping.

        Args:
            readers: The started readers.
            cameras: The started cameras and the runtime's detector cache, which every scan
                shares.
        """
        while not self.stopping.is_set():
            getter = asyncio.ensure_future(self.requests.get())
            stopper = asyncio.ensure_future(self.stopping.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if getter not in done:
                getter.cancel()
                return
            request = getter.result()
            self._waiting.discard(request.zone)
            log.info(
                "scanning zone %s (%s, by %s)", request.zone, request.reason, request.requested_by
            )
            scan = create_zone_scan(
                self.config, request.zone, readers, self.publisher,
                cameras=cameras.devices if cameras is not None else None,
                detectors=cameras.detectors if cameras is not None else None,
            )  # fmt: skip
            self.scanning = request.zone
            self.notifier.status(f"scanning zone {request.zone} ({request.reason})")
            try:
                result = await scan.run(request_id=request.request_id)
            except Exception:  # the worker outlives a failed scan; it is logged with its trace
                self.failed_scans += 1
                log.exception("zone %s: scan failed", request.zone)
                continue
            finally:
                self.scanning = None
            self.scans_run += 1
            self.notifier.status(
                f"idle; last scan {result.scan_id} of zone {request.zone}"
                f" {'complete' if result.complete else 'incomplete'}; {self.scans_run} run,"
                f" {self.failed_scans} failed"
            )
            log.info(
                "zone %s scan %s: %s",
                request.zone,
                result.scan_id,
                "complete" if result.complete else "incomplete",
            )

    async def scheduler(self, zone: str, expression: str) -> None:
        """Queue a scan of ``zone`` at every time ``expression`` (cron) fires."""
        schedule = croniter(expression, datetime.now(UTC))
        while not self.stopping.is_set():
            due: datetime = schedule.get_next(datetime)
            wait = (due - datetime.now(UTC)).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), max(wait, 0.0))
            if not self.stopping.is_set():
                self.request(ScanRequest(zone, f"schedule {expression}", "schedule"))


async def run_daemon(config: GatewayConfig) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status.

    Holds the lock on ``state_dir`` for its lifetime (:func:`gateway.runtime.state_lock`).

    Raises:
        gateway.runtime.StateDirBusyError: Another daemon or a scan holds ``state_dir``.
    """
    with state_lock(config, "daemon"):
        async with open_publisher(config, start=False) as publisher:
            return await serve(config, publisher)


async def serve(config: GatewayConfig, publisher: Publisher, gateway: Gateway | None = None) -> int:
    """The daemon's body: subscribe to commands, start the publisher, scan until stopped.

    The publisher may be started already; if not, it is started after the subscription, so
    the retained ``online`` birth means "ready for commands". Under systemd it then says
    ``READY=1`` (once readers and cameras had their first connection attempt), feeds the
    watchdog while healthy (:mod:`gateway.health`) and says ``STOPPING=1`` on the way out;
    with a ``metrics`` section it serves ``/metrics`` and ``/healthz``. Its tasks run under
    a :class:`~edgecount.supervisor.Supervisor` (policies in docs/architecture.md, "Task
    trees").

    Args:
        config: The gateway configuration.
        publisher: Where messages go (and commands come from).
        gateway: The daemon's state, for a caller that watches it or stops it by setting
            its ``stopping`` event (like SIGTERM does); a new one if None.

    Returns:
        0 once stopped; 1 when a task failed for good (logged with its trace), so that
        systemd restarts the daemon.

    Raises:
        OSError: The metrics address cannot be bound.
    """
    gateway = gateway or Gateway(config, publisher)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, gateway.stopping.set)
    publisher.subscribe(contract.cmd_scan_topic(config.site, config.gateway_id), gateway.on_command)
    await publisher.start()
    try:
        async with started_readers(config) as readers, started_cameras(config) as cameras:
            tasks = Supervisor("gateway", gateway.stopping)
            monitor = GatewayMonitor(
                config, gateway, publisher, readers, cameras.devices, tasks=tasks
            )
            gateway.monitor, gateway.tasks = monitor, tasks
            try:
                await _run_tasks(config, gateway, monitor, (dict(readers), cameras), tasks)
            except TaskFailed as failed:
                log.error("%s; exiting with status %d", failed, ExitCode.FAILED)  # noqa: TRY400
                gateway.notifier.stopping(f"failed: {failed}")
                return ExitCode.FAILED
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return ExitCode.OK


async def _run_tasks(
    config: GatewayConfig,
    gateway: Gateway,
    monitor: GatewayMonitor,
    devices: tuple[dict[str, Reader], Cameras],
    tasks: Supervisor,
) -> None:
    """Start the daemon's tasks, wait for the stop, let them end (the running scan finishes).

    Raises:
        TaskFailed: A task failed for good (the others are cancelled).
        OSError: The metrics address cannot be bound.
    """
    async with tasks:
        if config.metrics is not None:

            def bound(port: int) -> None:
                gateway.metrics_port = port

            endpoint = Endpoint(monitor.registry, monitor.reasons)
            server = MetricsServer(
                endpoint, config.metrics.host, config.metrics.port, on_listening=bound
            )
            await server.open()  # a taken port fails the daemon here
            gateway.metrics = server
            tasks.start("metrics-http", functools.partial(server.serve, gateway.stopping), RESTART)
        tasks.start("scan-worker", functools.partial(gateway.worker, *devices), RESTART)
        for name, zone in config.zones.items():
            if zone.schedule:
                cron = functools.partial(gateway.scheduler, name, zone.schedule)
                tasks.start(f"cron:{name}", cron, RESTART)
        feeder = functools.partial(gateway.notifier.feed_watchdog, monitor.reasons)
        tasks.start("watchdog", feeder, FATAL, may_finish=True, cancel_on_stop=True)
        _ready(gateway, gateway.publisher)
        await tasks.wait()
        log.info("stopping: letting the running scan finish")
        gateway.notifier.stopping("stopping: letting the running scan finish")


def _ready(gateway: Gateway, publisher: Publisher) -> None:
    """Tell systemd the daemon is up, and whether the broker has its birth yet.

    A broker that is down does not hold READY back: counts wait in the outbox, and holding
    it would only get the daemon killed at ``TimeoutStartSec``.
    """
    health = publisher.health()
    if health.connected:
        status = "ready: subscribed to commands, online"
    else:
        status = f"ready: broker unreachable ({health.last_error}); counts buffer in the outbox"
    log.info("%s", status)
    gateway.notifier.ready(status)
