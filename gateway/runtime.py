"""Wiring shared by the CLI and the daemon: publisher, readers and cameras from the config."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from drivers.base import Reader
from edgecount.settings import mqtt_settings
from gateway.config import GatewayConfig
from gateway.mqtt_publisher import MqttPublisher
from gateway.outbox import Outbox
from gateway.readers import build_readers
from gateway.scan import Progress, ScanResult, ZoneScan

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
    outbox = Outbox(config.state_dir / OUTBOX_FILE, gateway_id=config.gateway_id)
    try:
        publisher = MqttPublisher(
            mqtt_settings(config.mqtt, f"edgecount-{config.gateway_id}"),
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


@contextlib.asynccontextmanager
async def started_readers(
    config: GatewayConfig, names: list[str] | None = None
) -> AsyncIterator[dict[str, Reader]]:
    """Start the readers (each returns after its first connection attempt); stop them after."""
    readers = build_readers(config, names)
    try:
        await asyncio.gather(*(reader.start() for reader in readers.values()))
        yield readers
    finally:
        await asyncio.gather(*(reader.stop() for reader in readers.values()))


@contextlib.asynccontextmanager
async def started_cameras(
    config: GatewayConfig, names: list[str] | None = None
) -> AsyncIterator[dict[str, Camera]]:
    """Start the cameras (each returns after its first connection attempt); stop them after.

    The camera stack (OpenCV, ONNX Runtime) is imported only when cameras are configured.
    """
    wanted = names if names is not None else [camera.name for camera in config.cameras]
    if not wanted:
        yield {}
        return
    from gateway.vision.scan import build_cameras  # only when cameras are configured

    cameras = build_cameras(config, wanted)
    try:
        await asyncio.gather(*(camera.start() for camera in cameras.values()))
        yield cameras
    finally:
        await asyncio.gather(*(camera.stop() for camera in cameras.values()))


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
            scan = ZoneScan(config, zone, readers, publisher, progress=progress, cameras=cameras)
            result = await scan.run()
        delivered = await publisher.flush(FLUSH_SECONDS)
    return result, delivered
