"""The RFID slice end to end: LLRP simulator → TCP → real sllurp → pipeline → real Mosquitto.

Truth comes from the scene: each tag's location is the antenna where its mean RSSI is
strongest; its SKU is the GTIN its SGTIN-96 encodes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from drivers.llrp.codec import AISpec
from drivers.llrp.driver import LlrpReader
from gateway.config import GatewayConfig, LlrpReaderConfig
from gateway.readers import build_readers, llrp_settings
from gateway.runtime import open_publisher
from gateway.scan import ScanResult, create_zone_scan
from simulators.llrp.server import LLRPSimulator
from simulators.scene import Scene
from simulators.shelf import shelf_scene, truth_by_antenna
from tests.conftest import BrokerAddress, RecorderFactory

LOCATIONS = {1: "A-01-01", 2: "A-01-02", 3: "A-01-03", 4: "A-01-04"}


def llrp_reader(config: GatewayConfig) -> LlrpReaderConfig:
    reader = config.reader("aisle-a")
    assert isinstance(reader, LlrpReaderConfig)
    return reader


def truth_of(scene: Scene) -> dict[str, Counter[str]]:
    return {LOCATIONS[antenna]: skus for antenna, skus in truth_by_antenna(scene).items()}


def gateway_config(
    site: str, broker: BrokerAddress, port: int, state_dir: Path, **zone: Any
) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "site": site,
            "gateway_id": f"gw-{uuid.uuid4().hex[:8]}",
            "state_dir": str(state_dir),
            "mqtt": {"host": broker.host, "port": broker.port},
            "readers": [
                {
                    "type": "llrp",
                    "name": "aisle-a",
                    "host": "127.0.0.1",
                    "port": port,
                    "antennas": LOCATIONS,
                    "keepalive_seconds": 1.0,
                }
            ],
            "zones": {"A": {"readers": ["aisle-a"], "scan_seconds": 2.0} | zone},
        }
    )


async def scan(config: GatewayConfig, sim: LLRPSimulator | None = None) -> ScanResult:
    """One scan; with ``sim``, the simulator drops the connection once the ROSpec runs."""
    async with open_publisher(config) as publisher:
        readers = build_readers(config)
        await asyncio.gather(*(reader.start() for reader in readers.values()))
        dropper = None
        if sim is not None:

            async def drop_when_running() -> None:
                await sim.wait_rospec_started()
                sim.drop_connection()

            dropper = asyncio.create_task(drop_when_running())
        try:
            result = await create_zone_scan(config, "A", readers, publisher).run()
        finally:
            await asyncio.gather(*(reader.stop() for reader in readers.values()))
        if dropper is not None:
            await dropper
        assert await publisher.flush(10.0)
    return result


async def test_counts_on_the_broker_equal_the_truth(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    scene = shelf_scene()
    assert len(scene.epcs) >= 1000
    truth = truth_of(scene)
    recorder = mqtt_recorder(broker, f"edgecount/v1/{unique_site}/#")
    async with LLRPSimulator(scene) as sim:
        config = gateway_config(unique_site, broker, sim.port, tmp_path)
        result = await scan(config)

    assert result.complete
    for location, expected in truth.items():
        assert result.locations[location].skus == dict(expected), location
    counts = await recorder.await_for(4, f"edgecount/v1/{unique_site}/count/A/+", timeout=10)
    on_broker = {m.payload["location"]: m.payload for m in counts if m.payload}
    assert set(on_broker) == set(LOCATIONS.values())
    for location, payload in on_broker.items():
        assert payload["complete"] is True
        assert payload["scan_id"] == result.scan_id
        assert {i["sku"]: i["qty"] for i in payload["items"]} == dict(truth[location])
        assert payload["total"] == sum(truth[location].values())
    states = [
        m.payload["state"]
        for m in recorder.matching(f"edgecount/v1/{unique_site}/scan/A")
        if m.payload
    ]
    assert states[0] == "started"
    done = await recorder.await_for(
        1,
        f"edgecount/v1/{unique_site}/scan/A",
        where=lambda m: m.payload is not None and m.payload["state"] == "completed",
    )
    assert done[0].payload is not None
    assert done[0].payload["readers"][0]["ok"] is True


async def test_reader_dropped_mid_scan_makes_its_locations_incomplete(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    recorder = mqtt_recorder(broker, f"edgecount/v1/{unique_site}/#")
    async with LLRPSimulator(shelf_scene(tags_per_location=30)) as sim:
        config = gateway_config(unique_site, broker, sim.port, tmp_path)
        result = await scan(config, sim)
        assert sim.stats.drops == 1

    assert not result.complete
    assert all(not count.complete for count in result.locations.values())
    assert result.readers["aisle-a"].ok is False
    counts = await recorder.await_for(4, f"edgecount/v1/{unique_site}/count/A/+", timeout=10)
    assert all(m.payload is not None and m.payload["complete"] is False for m in counts)
    outcome = await recorder.await_for(
        1,
        f"edgecount/v1/{unique_site}/scan/A",
        where=lambda m: m.payload is not None and m.payload["state"] != "started",
    )
    assert outcome[0].payload is not None
    assert outcome[0].payload["state"] == "incomplete"
    assert sorted(outcome[0].payload["incomplete_locations"]) == sorted(LOCATIONS.values())


async def test_keepalive_watchdog_detects_a_silent_reader_and_reconnects(
    broker: BrokerAddress, unique_site: str, tmp_path: Path
) -> None:
    async with LLRPSimulator(shelf_scene(tags_per_location=5)) as sim:
        config = gateway_config(unique_site, broker, sim.port, tmp_path)
        reader = LlrpReader(llrp_settings(llrp_reader(config)))
        await reader.start()
        assert reader.connected
        loop = asyncio.get_running_loop()
        silenced_at = loop.time()
        sim.go_silent()
        await asyncio.wait_for(reader.failed.wait(), 5)
        detected_after = loop.time() - silenced_at
        # the reader sends a keepalive every second; a dead link is noticed within two
        assert detected_after <= 2.0, detected_after
        assert "keepalive" in (reader.health().last_error or "")
        sim.resume()
        async with asyncio.timeout(10):
            await sim.wait_connected(count=2)
            assert await reader.wait_connected(10)
        await reader.stop()
        assert reader.health().connects == 2


async def test_full_read_queue_drops_and_counts(
    broker: BrokerAddress, unique_site: str, tmp_path: Path
) -> None:
    async with LLRPSimulator(shelf_scene(tags_per_location=50)) as sim:
        config = gateway_config(unique_site, broker, sim.port, tmp_path)
        settings = dataclasses.replace(
            llrp_settings(llrp_reader(config)),
            queue_size=1,
            report_every_n_tags=10,
            overflow="drop",  # the waiting kind: tests/drivers/llrp/test_llrp_backpressure.py
        )
        reader = LlrpReader(settings)
        await reader.start()
        await reader.start_inventory()
        async with asyncio.timeout(10):
            await sim.wait_tag_reports(100)
        await reader.stop_inventory()
        sent = sim.stats.tag_reports_sent
        await reader.stop()
    health = reader.health()
    assert reader.queue.qsize() == 1
    kept = reader.queue.get_nowait()
    assert health.dropped > 0
    assert health.reads == len(kept)
    # nothing vanished: every tag report the reader sent was either queued or counted as dropped
    assert health.reads + health.dropped == sent


async def test_antennas_power_and_session_preset_reach_the_reader(
    broker: BrokerAddress, unique_site: str, tmp_path: Path
) -> None:
    async with LLRPSimulator(shelf_scene(tags_per_location=20)) as sim:
        config = gateway_config(unique_site, broker, sim.port, tmp_path)
        reader_config = llrp_reader(config).model_copy(
            update={
                "antennas": {1: "A-01-01", 3: "A-01-03"},
                "tx_power_dbm": 27.0,
                "preset": "balanced",
            }
        )
        reader = LlrpReader(llrp_settings(reader_config))
        await reader.start()
        await reader.start_inventory()
        async with asyncio.timeout(10):
            await sim.wait_for(lambda stats: stats.reads >= 100)
        runner = sim.reader.runner
        assert runner is not None
        (aispec,) = runner.rospec.specs
        assert isinstance(aispec, AISpec)
        assert sorted(aispec.antenna_ids) == [1, 3]
        configs = aispec.inventory_parameter_specs[0].antenna_configurations
        for antenna_config in configs:
            assert (
                sim.reader.settings.tx_power_dbm(antenna_config.antenna_id, antenna_config) == 27.0
            )
            singulation = antenna_config.inventory_commands[0].singulation_control
            assert singulation is not None
            assert (singulation.session, singulation.tag_population) == (1, 256)
        await reader.stop_inventory()
        batches = []
        while not reader.queue.empty():
            batches.append(reader.queue.get_nowait())
        await reader.stop()
    antennas = {read.antenna for batch in batches for read in batch}
    assert antennas == {1, 3}
    assert all(-90 < read.rssi < -20 for batch in batches for read in batch)
