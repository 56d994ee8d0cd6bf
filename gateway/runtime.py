"""Wiring shared by the CLI and the daemon: publisher, readers and cameras from the config.

The runtime owns what lives as long as the process: the state-dir lock, the publisher, the
started devices, and the one :class:`~gateway.vision.detectors.DetectorCache` that every
zone scan of the process uses (:class:`Cameras`), so a detector loads once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from drivers.base import Device, Reader
from edgecount.settings import mqtt_settings
from gateway.config import GatewayConfig
from gateway.mqtt_publisher import MqttPublisher, default_client_id
from gateway.outbox import Outbox
from gateway.readers import build_readers
from gateway.scan import Progress, ScanResult, create_zone_scan
from gateway.vision.detectors import DetectorCache

if TYPE_CHECKING:
    from drivers.camera.driver import Camera

log = logging.getLogger(__name__)

FLUSH_SECONDS = 10.0
OUTBOX_FILE = "outbox.sqlite3"
LOCK_FILE = "gateway.lock"


class StateDirBusyError(RuntimeError):
    """Another process (the daemon, or a scan) holds the gateway's ``state_dir``.

    Attributes:
        lock_file: The lock file.
        holder: What the holder wrote there: its role (``daemon`` or ``scan``) and pid.
    """

    def __init__(self, lock_file: Path, holder: str) -> None:
        self.lock_file = lock_file
        self.holder = holder
        super().__init__(f"{lock_file} is held by {holder or 'another process'}")

    @property
    def by_daemon(self) -> bool:
        """Whether the holder is the gateway daemon."""
        return self.holder.startswith("daemon")


@contextlib.contextmanager
def state_lock(config: GatewayConfig, role: str) -> Iterator[Path]:
    """Hold the exclusive lock on ``state_dir`` (``flock`` on ``gateway.lock``) for the block.

    The daemon holds it for its lifetime and ``edgecount scan`` for its scan, so two of them
    never share the outbox or the reader connections. The kernel releases it when the holder
    exits, even by ``kill -9``: a stale lock file is harmless.

    Args:
        config: The gateway configuration.
        role: Written into the lock file (with the pid) to name the holder to others.

    Raises:
        StateDirBusyError: Another process holds the lock.
        OSError: The state directory or the lock file cannot be created.
    """
    config.state_dir.mkdir(parents=True, exist_ok=True)
    path = config.state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            raise StateDirBusyError(path, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{role} pid {os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def client_id(config: GatewayConfig, role: str | None = None) -> str:
    """The MQTT client id of a process: the daemon's, or one derived from it per process.

    The daemon uses ``mqtt.client_id`` (default ``edgecount-{site}-{gateway_id}``); every other
    process (``scan``, ``scan-request``) appends ``-{role}-{pid}``, so it never takes the
    daemon's session over.
    """
    base = config.mqtt.client_id or default_client_id(config.site, config.gateway_id)
    return base if role is None else f"{base}-{role}-{os.getpid()}"


@contextlib.asynccontextmanager
async def open_publisher(
    config: GatewayConfig, *, start: bool = True, role: str | None = None
) -> AsyncIterator[MqttPublisher]:
    """Open the outbox under ``state_dir`` and the MQTT publisher; stop and close after.

    With ``start=False`` the caller subscribes first and starts it (the daemon does, so its
    command subscription exists before its ``online`` birth tells anyone it is there).

    Args:
        config: The gateway configuration.
        start: Start the publisher before yielding it.
        role: None for the daemon (its client id, and the gateway's status messages);
            otherwise a derived client id (:func:`client_id`) and no status messages.
    """
    config.state_dir.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(
        mqtt_settings(config.mqtt, client_id(config, role)),
        max_inflight=config.outbox.max_inflight,
        reconnect_min_delay=config.outbox.reconnect_min_seconds,
        reconnect_max_delay=config.outbox.reconnect_max_seconds,
    )
    outbox = Outbox(
        config.state_dir / OUTBOX_FILE,
        gateway_id=config.gateway_id,
        max_rows=config.outbox.max_rows,
    )
    try:
        publisher = MqttPublisher(
            settings,
            outbox,
            site=config.site,
            gateway_id=config.gateway_id,
            announce=role is None,
        )
        if start:
            await publisher.start()
        try:
            yield publisher
        finally:
            await publisher.stop()
    finally:
        outbox.close()


D = TypeVar("D", bound=Device[Any])


@contextlib.asynccontextmanager
async def _started(devices: dict[str, D]) -> AsyncIterator[dict[str, D]]:
    """Start every device (each returns after its first connection attempt); stop them after."""
    try:
        await asyncio.gather(*(device.start() for device in devices.values()))
        yield devices
    finally:
        await asyncio.gather(*(device.stop() for device in devices.values()))


def started_readers(
    config: GatewayConfig, names: list[str] | None = None
) -> contextlib.AbstractAsyncContextManager[dict[str, Reader]]:
    """The readers (all, or ``names``), started; stopped when the context ends."""
    return _started(build_readers(config, names))


@dataclasses.dataclass(frozen=True, slots=True)
class Cameras:
    """A process's started cameras and the detector cache that all its scans share.

    Attributes:
        devices: The started cameras, by name (none when none are configured).
        detectors: Created once with the cameras; each detector in it loads on first use.
    """

    devices: dict[str, Camera]
    detectors: DetectorCache


@contextlib.asynccontextmanager
async def started_cameras(
    config: GatewayConfig, names: list[str] | None = None
) -> AsyncIterator[Cameras]:
    """The cameras (all, or ``names``), started, with the process's detector cache.

    The cameras are stopped when the context ends. The camera stack (OpenCV) is imported
    only when cameras are configured, the detector stack when a scan first needs a detector.
    """
    wanted = names if names is not None else [camera.name for camera in config.cameras]
    devices: dict[str, Camera] = {}
    if wanted:
        from gateway.vision.scan import build_cameras  # only when cameras are configured

        devices = build_cameras(config, wanted)
    async with _started(devices) as started:
        yield Cameras(started, DetectorCache())


async def scan_once(
    config: GatewayConfig, zone: str, *, progress: Progress | None = None
) -> tuple[ScanResult, bool]:
    """Connect, scan ``zone`` once, publish; returns the result and whether all was acked.

    The caller holds :func:`state_lock` (the outbox is the daemon's too).
    """
    zone_config = config.zones[zone]
    async with open_publisher(config, role="scan") as publisher:
        async with (
            started_readers(config, zone_config.readers) as readers,
            started_cameras(config, zone_config.cameras) as cameras,
        ):
            scan = create_zone_scan(
                config,
                zone,
                readers,
                publisher,
                progress=progress,
                cameras=cameras.devices,
                detectors=cameras.detectors,
            )
            result = await scan.run()
        delivered = await publisher.flush(FLUSH_SECONDS)
    return result, delivered
