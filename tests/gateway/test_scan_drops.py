"""Reads dropped by a full reader queue make the reader's locations incomplete.

An overloaded gateway drops reads it cannot queue (counted in the reader's health); a count
missing them would be an undercount published as complete, and the reconciler would flag the
location short. The scan notices the drops of its window and publishes the locations as
``complete: false`` instead.
"""

from __future__ import annotations

import time

from drivers.base import DeviceHealth, Reader, ReadQueue, TagRead
from edgecount import contract
from gateway.config import GatewayConfig
from gateway.publisher import MemoryPublisher
from gateway.scan import create_zone_scan

EPC = bytes.fromhex("3034257BF7194E4000003039")  # GTIN 80614141123458, serial 12345


class QueueReader(Reader):
    """Delivers one batch when inventory starts; ``drop`` more reads are lost to a full queue."""

    def __init__(self, drop: int) -> None:
        self.name = "aisle-a"
        self.queue = ReadQueue(maxsize=1)
        self._health = DeviceHealth(self.name)
        self._drop = drop

    async def start(self) -> None:
        """Nothing to connect."""

    async def start_inventory(self) -> None:
        """Queue the reads that fit, count the rest as dropped (as the drivers do)."""
        now = time.time()
        self.queue.put_nowait([TagRead(self.name, 1, EPC, -50.0, now, 3)])
        self._health.reads += 1
        self._health.dropped += self._drop

    async def stop_inventory(self) -> None:
        """Nothing to stop."""

    async def stop(self) -> None:
        """Nothing to close."""

    def health(self) -> DeviceHealth:
        """Its figures, drops included."""
        return self._health

    @property
    def failures(self) -> int:
        """The link never failed."""
        return 0


def config() -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "site": "dc1",
            "gateway_id": "gw-1",
            "readers": [
                {"type": "llrp", "name": "aisle-a", "host": "127.0.0.1", "antennas": {1: "A-01"}}
            ],
            "zones": {"A": {"readers": ["aisle-a"], "scan_seconds": 0.3}},
        }
    )


async def scan(drop: int) -> tuple[bool, dict[str, bool], str | None]:
    publisher = MemoryPublisher(site="dc1", gateway_id="gw-1")
    reader = QueueReader(drop)
    result = await create_zone_scan(config(), "A", {"aisle-a": reader}, publisher).run()
    published = {
        count.location: count.complete for count in publisher.published(contract.CountMessage)
    }
    return result.complete, published, result.readers["aisle-a"].error


async def test_a_scan_without_drops_is_complete() -> None:
    assert await scan(drop=0) == (True, {"A-01": True}, None)


async def test_reads_dropped_in_the_window_make_the_locations_incomplete() -> None:
    complete, published, error = await scan(drop=40)
    assert (complete, published) == (False, {"A-01": False})
    assert error == "40 reads dropped (queue full)"
