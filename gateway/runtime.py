"""Wiring shared by the CLI and the daemon: publisher, readers and cameras from the config."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol, TypeVar

from drivers.base import Reader
from edgecount.settings import mqtt_settings
from gateway.config import GatewayConfig
from gateway.mqtt_publisher import MqttPublisher
from gateway.outbox import Outbox
from gateway.readers import build_readers
from gateway.scan import Progress, ScanResult, create_zone_scan

if TYPE_CHECKING:
    from drivers.camera.driver import Camera

log = logging.getLogger(__name__)

FLUSH_SECONDS = 10.0
OUTBOX_FILE = "outbox.sqlite3"


@contextlib.asynccontextmanager
async def open_publisher(
    config: GatewayConfig, *, start: bool = True
) -> AsyncIterator[MqttPublisher]:
    """Open the outbox under ``state_dir`` and the MQTT publisher; stop and close after.

    With ``start=False`` the caller subscribes first and starts it (the daemon does, so its
    command subscription exists before its ``online`` birth tells anyone it is there).
    """
    config.state_dir.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(
        mqtt_settings(config.mqtt, f"edgecount-{config.gateway_id}"),
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
        )
        if start:
            await publisher.start()
        try:
            yield publisher
        finally:
            await publisher.stop()
    finally:
        outbox.close()


class _Device(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


D = TypeVar("D", bound=_Device)


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


def started_cameras(
    config: GatewayConfig, names: list[str] | None = None
) -> contextlib.AbstractAsyncContextManager[dict[str, Camera]]:
    """The cameras (all, or ``names``), started; stopped when the context ends.

    The camera stack (OpenCV, ONNX Runtime) is imported only when cameras are configured.
    """
    wanted = names if names is not None else [camera.name for camera in config.cameras]
    if not wanted:
        return _started({})
    from gateway.vision.scan import build_cameras  # only when cameras are configured

    return _started(build_cameras(config, wanted))


async def scan_once(
    config: GatewayConfig, zone: str, *, progress: Progress | None = None
) -> tuple[ScanResult, bool]:
    """Connect, scan ``zone`` once, publish; returns the result and whether all was acked."""
    zone_config = config.zones[zone]
    async with open_publisher(config) as publisher:
        async with (
            started_readers(config, zone_config.readers) as readers,
            started_cameras(config, zone_config.cameras) as cameras,
        ):
            scan = create_zone_scan(
                config, zone, readers, publisher, progress=progress, cameras=cameras
            )
            result = await scan.run()
        delivered = await publisher.flush(FLUSH_SECONDS)
    return result, delivered
