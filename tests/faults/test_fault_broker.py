"""Broker faults: Mosquitto killed (SIGKILL) during a scan, restarted on the same port.

The gateway runs in this process (its publisher's health is the window onto its state), the
reconciler too; the broker is a real ``mosquitto`` the test pauses, kills and restarts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config import GatewayConfig
from gateway.mqtt_publisher import MqttPublisher
from gateway.outbox import OutboxFullError
from gateway.readers import build_readers
from gateway.runtime import open_publisher
from gateway.scan import ScanResult, create_zone_scan
from simulators.llrp.server import LLRPSimulator
from simulators.shelf import shelf_scene
from tests.conftest import MosquittoFactory, RecorderFactory, eventually
from tests.faults.fault_harness import (
    LOCATIONS,
    ZONE,
    assert_exactly_once,
    book_of,
    gateway_dict,
    new_gateway_id,
    running_reconciler,
)


async def _scan(config: GatewayConfig, publisher: MqttPublisher) -> ScanResult:
    readers = build_readers(config)
    await asyncio.gather(*(reader.start() for reader in readers.values()))
    try:
        return await create_zone_scan(config, ZONE, readers, publisher).run()
    finally:
        await asyncio.gather(*(reader.stop() for reader in readers.values()))


async def test_broker_killed_during_a_scan_every_count_reaches_the_reconciler_once(
    mosquitto_factory: MosquittoFactory,
    mqtt_recorder: RecorderFactory,
    unique_site: str,
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory()
    scene = shelf_scene(len(LOCATIONS), 12)
    gateway_id = new_gateway_id()
    async with (
        running_reconciler(broker.address, unique_site, book_of(scene), tmp_path / "rec.db") as rec,
        LLRPSimulator(scene) as sim,
    ):
        config = GatewayConfig.model_validate(
            gateway_dict(
                site=unique_site,
                gateway_id=gateway_id,
                state_dir=tmp_path / "gw",
                broker=broker.address,
                reader_port=sim.port,
                scan_seconds=1.5,
                max_inflight=2,  # two counts in flight when the broker dies, the rest queued
            )
        )
        async with open_publisher(config) as publisher:
            assert await publisher.wait_connected(5)
            scan = asyncio.create_task(_scan(config, publisher))
            # the reconciler has the scan's "started": the broker dies while the readers run
            await rec.wait_until(lambda s: s.applied >= 1)
            await eventually(lambda: publisher.outbox.depth == 0, what="'started' acknowledged")
            broker.pause()  # no PUBACKs from here on: what is sent stays in flight
            await eventually(
                lambda: (
                    publisher.outbox.last_seq == 6
                    and publisher.outbox.depth == 5
                    and publisher.health().inflight == 2
                ),
                timeout=10,
                what="the scan's 4 counts and its end in the outbox, 2 of them in flight",
            )
            result = await scan
            broker.restart(kill=True)  # SIGKILL the paused broker, start it on the same port
            assert await publisher.flush(20)
            health = publisher.health()
            epoch = publisher.outbox.epoch
        # 1 scan started + 4 counts + 1 scan completed
        await rec.wait_until(lambda s: s.applied >= 2 + len(LOCATIONS))

    assert result.complete
    assert health.disconnects >= 1
    assert health.replayed == 2  # the two that were in flight when the broker died
    published = {f"{gateway_id}:{epoch}:{seq}" for seq in range(2, 2 + len(LOCATIONS))}
    assert_exactly_once(rec.counts(), published)
    assert all(count.complete for count in rec.counts())
    assert rec.discrepancies() == []
    # on the wire (the retained copies left after the restart): in-flight ones are historical
    recorder = mqtt_recorder(broker.address, f"edgecount/v1/{unique_site}/count/#")
    retained = await recorder.await_for(len(LOCATIONS), timeout=5)
    historical = {m.payload["seq"]: m.payload["historical"] for m in retained if m.payload}
    assert historical == {2: True, 3: True, 4: False, 5: False}


async def test_a_full_outbox_raises_the_alarm_refuses_new_counts_and_keeps_the_rest(
    mosquitto_factory: MosquittoFactory, unique_site: str, tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    scene = shelf_scene(len(LOCATIONS), 8)
    gateway_id = new_gateway_id()
    async with (
        running_reconciler(broker.address, unique_site, book_of(scene), tmp_path / "rec.db") as rec,
        LLRPSimulator(scene) as sim,
    ):
        config = GatewayConfig.model_validate(
            gateway_dict(
                site=unique_site,
                gateway_id=gateway_id,
                state_dir=tmp_path / "gw",
                broker=broker.address,
                reader_port=sim.port,
                max_rows=3,
            )
        )
        broker.kill()  # the broker is gone for the whole scan
        async with open_publisher(config) as publisher:
            try:
                await _scan(config, publisher)
            except OutboxFullError:
                pass
            else:
                raise AssertionError("the scan should have hit the outbox bound")
            health = publisher.health()
            assert health.outbox_full
            assert health.outbox_depth == 3  # scan started + the first two counts: all kept
            # the third and fourth counts: the scan offered its four as one batch, the
            # bound took the first two, and each one refused is counted
            assert health.rejected == 2
            broker.start()
            assert await publisher.flush(20)
            assert not publisher.health().outbox_full  # the alarm clears once it drained
            epoch = publisher.outbox.epoch
        await rec.wait_until(lambda s: s.applied >= 3)

    assert_exactly_once(rec.counts(), {f"{gateway_id}:{epoch}:{seq}" for seq in (2, 3)})
    assert rec.discrepancies() == []
