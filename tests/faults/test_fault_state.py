"""A gateway that lost its state_dir (and with it its outbox and sequence) is still heard."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from gateway.config import GatewayConfig
from gateway.readers import build_readers
from gateway.runtime import open_publisher
from gateway.scan import create_zone_scan
from simulators.llrp.server import LLRPSimulator
from simulators.shelf import shelf_scene
from tests.conftest import MosquittoFactory
from tests.faults.fault_harness import (
    LOCATIONS,
    ZONE,
    book_of,
    gateway_dict,
    new_gateway_id,
    running_reconciler,
)


async def _scan_and_flush(config: GatewayConfig) -> tuple[str, list[int]]:
    """One scan; returns the outbox epoch and the sequence numbers of its counts."""
    async with open_publisher(config) as publisher:
        readers = build_readers(config)
        await asyncio.gather(*(reader.start() for reader in readers.values()))
        try:
            result = await create_zone_scan(config, ZONE, readers, publisher).run()
        finally:
            await asyncio.gather(*(reader.stop() for reader in readers.values()))
        assert result.complete
        assert await publisher.flush(10)
        return publisher.outbox.epoch, list(range(2, 2 + len(result.locations)))


async def test_counts_after_a_lost_state_dir_are_not_dropped_as_duplicates(
    mosquitto_factory: MosquittoFactory, unique_site: str, tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    scene = shelf_scene(len(LOCATIONS), 6)
    state_dir = tmp_path / "gw"
    async with (
        running_reconciler(broker.address, unique_site, book_of(scene), tmp_path / "rec.db") as rec,
        LLRPSimulator(scene) as sim,
    ):
        config = GatewayConfig.model_validate(
            gateway_dict(
                site=unique_site,
                gateway_id=new_gateway_id(),
                state_dir=state_dir,
                broker=broker.address,
                reader_port=sim.port,
                scan_seconds=0.5,
            )
        )
        first_epoch, first = await _scan_and_flush(config)
        await rec.wait_until(lambda s: s.applied >= 2 + len(LOCATIONS))
        shutil.rmtree(state_dir)  # a wiped disk: the outbox and its sequence are gone
        second_epoch, second = await _scan_and_flush(config)
        await rec.wait_until(lambda s: s.applied >= 2 * (2 + len(LOCATIONS)))

    assert first == second  # the sequence started again at 1 ...
    assert first_epoch != second_epoch  # ... under a new epoch
    assert rec.stats.duplicates == 0
    stored = rec.counts()
    assert len(stored) == 2 * len(LOCATIONS)
    assert len({count.scan_id for count in stored}) == 2
