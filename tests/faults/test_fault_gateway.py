"""Gateway and reader faults, with the gateway as a real process where it must die.

* The gateway process is killed with SIGKILL while its counts wait for PUBACKs (the broker is
  paused so none comes); restarted, it replays them from its outbox with ``historical: true``
  and the reconciler applies every count once.
* A reader dropped mid-scan: its locations are published ``complete: false`` and the
  reconciler flags nothing short (nor anything else).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
from pathlib import Path

import paho.mqtt.publish as mqtt_publish

from edgecount import contract
from gateway.config import GatewayConfig
from gateway.readers import build_readers
from gateway.runtime import OUTBOX_FILE, open_publisher
from gateway.scan import create_zone_scan
from simulators.llrp.server import LLRPSimulator
from simulators.shelf import shelf_scene
from tests.conftest import MosquittoFactory, Received, RecorderFactory, eventually
from tests.faults.fault_harness import (
    LOCATIONS,
    ZONE,
    assert_exactly_once,
    book_of,
    gateway_dict,
    gateway_process,
    new_gateway_id,
    outbox_rows,
    running_reconciler,
    write_config,
)


async def test_gateway_killed_mid_publish_replays_its_outbox_after_restart(
    mosquitto_factory: MosquittoFactory,
    mqtt_recorder: RecorderFactory,
    unique_site: str,
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory()
    scene = shelf_scene(len(LOCATIONS), 12)
    gateway_id = new_gateway_id()
    state_dir = tmp_path / "gw"
    outbox = state_dir / OUTBOX_FILE
    log = tmp_path / "gateway.log"
    status = contract.status_topic(unique_site, gateway_id)
    statuses = mqtt_recorder(broker.address, status)

    def is_online(message: Received) -> bool:
        return message.payload is not None and message.payload["state"] == "online"

    async with (
        running_reconciler(broker.address, unique_site, book_of(scene), tmp_path / "rec.db") as rec,
        LLRPSimulator(scene) as sim,
    ):
        config = write_config(
            tmp_path / "gateway.yaml",
            gateway_dict(
                site=unique_site,
                gateway_id=gateway_id,
                state_dir=state_dir,
                broker=broker.address,
                reader_port=sim.port,
                max_inflight=2,
            ),
        )
        async with gateway_process(config, log) as first:
            await statuses.await_for(1, where=is_online, timeout=20)
            request = contract.scan_request_payload(reason="cycle", requested_by="test", zone=ZONE)
            await asyncio.to_thread(
                mqtt_publish.single,
                contract.cmd_scan_topic(unique_site, gateway_id),
                json.dumps(request),
                qos=1,
                hostname=broker.host,
                port=broker.port,
            )
            await rec.wait_until(lambda s: s.applied >= 1)  # the scan started
            await eventually(lambda: not outbox_rows(outbox), what="'started' acknowledged")
            broker.pause()  # from here on no PUBACK reaches the gateway
            await eventually(
                lambda: len(outbox_rows(outbox)) == len(LOCATIONS) + 1,
                timeout=15,
                what="the scan's counts and its end in the outbox",
            )
            first.kill()  # SIGKILL, mid-publish: two counts in flight, the rest queued
            assert await first.wait() == -signal.SIGKILL
        waiting = outbox_rows(outbox)
        assert [row["schema"] for row in waiting] == [contract.COUNT] * 4 + [contract.SCAN]
        published = {row["msg_id"] for row in waiting if row["schema"] == contract.COUNT}
        # the broker reads what the dead gateway had sent (and forwards it: the reconciler
        # may get those counts twice); the replay after the restart is historical
        broker.resume()
        async with gateway_process(config, log):
            await eventually(lambda: not outbox_rows(outbox), timeout=20, what="outbox replayed")
            await rec.wait_until(lambda s: s.applied >= 2 + len(LOCATIONS))
            assert len(statuses.matching(where=is_online)) == 2

    # delivered twice at most: the in-flight window (2) the broker forwarded after the kill
    # (2 in every run so far), yet applied once
    assert rec.stats.duplicates <= 2
    assert_exactly_once(rec.counts(), published)
    assert all(count.complete for count in rec.counts())
    assert rec.discrepancies() == []
    recorder = mqtt_recorder(broker.address, f"edgecount/v1/{unique_site}/count/#")
    retained = await recorder.await_for(len(LOCATIONS), timeout=5)
    assert {m.payload["msg_id"] for m in retained if m.payload} == published
    assert all(m.payload is not None and m.payload["historical"] for m in retained)


async def test_reader_dropped_mid_scan_incomplete_locations_and_nothing_flagged_short(
    mosquitto_factory: MosquittoFactory, unique_site: str, tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    scene = shelf_scene(len(LOCATIONS), 30)
    # every location is booked 5 more than is there: a complete count would be short
    book = [dataclasses.replace(line, qty=line.qty + 5) for line in book_of(scene)]
    async with (
        running_reconciler(broker.address, unique_site, book, tmp_path / "rec.db") as rec,
        LLRPSimulator(scene) as sim,
    ):
        config = GatewayConfig.model_validate(
            gateway_dict(
                site=unique_site,
                gateway_id=new_gateway_id(),
                state_dir=tmp_path / "gw",
                broker=broker.address,
                reader_port=sim.port,
            )
        )
        async with open_publisher(config) as publisher:
            readers = build_readers(config)
            await asyncio.gather(*(reader.start() for reader in readers.values()))

            async def drop_when_running() -> None:
                await sim.wait_rospec_started()
                sim.drop_connection()

            dropper = asyncio.create_task(drop_when_running())
            try:
                result = await create_zone_scan(config, ZONE, readers, publisher).run()
            finally:
                await asyncio.gather(*(reader.stop() for reader in readers.values()))
            await dropper
            assert await publisher.flush(10)
        await rec.wait_until(lambda s: s.applied >= 2 + len(LOCATIONS))

    assert sim.stats.drops == 1
    assert not result.complete
    stored = rec.counts()
    assert sorted(count.location for count in stored) == sorted(LOCATIONS.values())
    assert not any(count.complete for count in stored)
    # the reads before the drop are a lower bound, below the book: nothing is flagged short
    assert sum(count.total for count in stored) < sum(line.qty for line in book)
    assert rec.discrepancies() == []
