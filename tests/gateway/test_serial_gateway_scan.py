"""A serial module configured as a gateway reader (``type: serial``) in a zone scan.

The reader comes from the configuration through :func:`gateway.readers.build_readers`, like an
LLRP reader; only the test's short watchdog and backoff are set on the driver settings.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from pathlib import Path

from drivers.serial.driver import SerialReader
from edgecount.backoff import Backoff
from gateway.config import GatewayConfig
from gateway.publisher import MemoryPublisher
from gateway.readers import build_readers
from gateway.scan import ScanResult, create_zone_scan
from simulators.serial.server import SerialModuleSimulator
from simulators.shelf import shelf_scene, truth_by_antenna

LOCATION = "A-01-01"


def config(state_dir: Path, url: str) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "site": "dc1",
            "gateway_id": "gw-cart",
            "state_dir": str(state_dir),
            "mqtt": {"host": "127.0.0.1", "port": 1883},
            "readers": [
                {
                    "type": "serial",
                    "name": "cart",
                    "url": url,
                    "location": LOCATION,
                    "tx_power_dbm": 26.0,
                    "watchdog_seconds": 0.4,
                    "command_timeout_seconds": 0.3,
                }
            ],
            "zones": {"A": {"readers": ["cart"], "scan_seconds": 1.0}},
        }
    )


async def scan(tmp_path: Path, sim: SerialModuleSimulator, drop: bool) -> ScanResult:
    gateway = config(tmp_path, sim.url)
    assert gateway.zone_locations("A") == [LOCATION]
    built = build_readers(gateway)["cart"]
    assert isinstance(built, SerialReader)
    assert built.settings.tx_power_dbm == 26.0
    quick = dataclasses.replace(built.settings, backoff=Backoff(0.05, 0.1, random.Random(3)))
    reader = SerialReader(quick)
    publisher = MemoryPublisher(site="dc1", gateway_id="gw-cart")
    await reader.start()
    try:
        if drop:
            sim.faults.disconnect_after_frames = 50  # mid-window: ~0.25 s of notices
        return await create_zone_scan(gateway, "A", {"cart": reader}, publisher).run()
    finally:
        await reader.stop()


async def test_a_zone_scan_counts_what_the_module_sees(tmp_path: Path) -> None:
    scene = shelf_scene(locations=1, tags_per_location=40, read_prob=0.7, rounds_per_second=100)
    truth: Counter[str] = truth_by_antenna(scene)[1]
    async with SerialModuleSimulator(scene) as sim:
        result = await scan(tmp_path, sim, drop=False)
    assert result.complete
    assert result.readers["cart"].ok
    assert result.locations[LOCATION].skus == dict(truth)


async def test_a_module_dropping_mid_scan_makes_its_location_incomplete(tmp_path: Path) -> None:
    scene = shelf_scene(locations=1, tags_per_location=40, read_prob=0.7, rounds_per_second=100)
    async with SerialModuleSimulator(scene) as sim:
        result = await scan(tmp_path, sim, drop=True)
        assert sim.stats.drops == 1
    assert not result.complete
    assert not result.locations[LOCATION].complete
    assert not result.readers["cart"].ok
    assert result.readers["cart"].error
