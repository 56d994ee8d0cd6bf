"""End to end: LLRP simulator → gateway → Mosquitto → reconciler, with a deliberately wrong book.

The location whose book is wrong is recounted twice (the reconciler asks the gateway on its
command topic), then waits for approval; approving it publishes exactly one adjustment.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import paho.mqtt.publish as mqtt_publish

from edgecount import contract
from edgecount.mqtt import MqttSettings
from gateway.config import GatewayConfig
from gateway.daemon import serve
from gateway.runtime import open_publisher
from reconciler.engine import Engine
from reconciler.model import AbcClass, BookLine
from reconciler.rules import TolerancePolicy
from reconciler.service import ReconcileService
from reconciler.store import open_store
from simulators.llrp.server import LLRPSimulator
from simulators.shelf import shelf_scene, truth_by_antenna
from tests.conftest import BrokerAddress, RecorderFactory

LOCATIONS = {1: "R-01", 2: "R-02", 3: "R-03"}


async def test_wrong_book_is_recounted_twice_then_approved_into_one_adjustment(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    scene = shelf_scene(3, 30)
    truth = truth_by_antenna(scene)
    gateway_id = f"gw-{uuid.uuid4().hex[:6]}"
    root = f"edgecount/v1/{unique_site}"
    recorder = mqtt_recorder(
        broker,
        [
            f"{root}/scan/R",
            f"{root}/discrepancy/#",
            f"{root}/adjustment",
            f"{root}/cmd/+/scan",
            f"{root}/status/+",
        ],
    )
    # the book: the truth, except R-02's first SKU, booked 5 more than are there
    wrong_sku = sorted(truth[2])[0]
    book = [
        BookLine(LOCATIONS[a], sku, qty + (5 if (a, sku) == (2, wrong_sku) else 0), 3.0, AbcClass.A)
        for a, skus in truth.items()
        for sku, qty in skus.items()
    ]
    store = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
    store.replace_book(book, source="test", at=contract.parse_iso(contract.now_iso()))
    engine = Engine(store, unique_site, TolerancePolicy(), max_recounts=2)
    service = ReconcileService(
        engine, MqttSettings(host=broker.host, port=broker.port), client_id=f"rec-{gateway_id}"
    )
    async with LLRPSimulator(scene) as sim:
        config = GatewayConfig.model_validate(
            {
                "site": unique_site,
                "gateway_id": gateway_id,
                "state_dir": str(tmp_path / "gw"),
                "mqtt": {"host": broker.host, "port": broker.port},
                "readers": [
                    {
                        "type": "llrp",
                        "name": "r",
                        "host": "127.0.0.1",
                        "port": sim.port,
                        "antennas": LOCATIONS,
                    }
                ],
                "zones": {"R": {"readers": ["r"], "scan_seconds": 1.0}},
            }
        )
        rec_task = asyncio.create_task(service.run())
        await asyncio.wait_for(service.ready.wait(), 10)
        async with open_publisher(config, start=False) as publisher:
            gw_task = asyncio.create_task(serve(config, publisher))
            try:
                # the birth comes after the command subscription: then requests are heard
                await recorder.await_for(
                    1,
                    f"{root}/status/{gateway_id}",
                    timeout=10,
                    where=lambda m: m.payload is not None and m.payload["state"] == "online",
                )
                request = contract.scan_request_payload(
                    reason="cycle", requested_by="test", zone="R"
                )
                await asyncio.to_thread(
                    mqtt_publish.single,
                    contract.cmd_scan_topic(unique_site, gateway_id),
                    json.dumps(request),
                    qos=1,
                    hostname=broker.host,
                    port=broker.port,
                )
                waiting = await recorder.await_for(
                    1,
                    f"{root}/discrepancy/R/R-02",
                    timeout=60,
                    where=lambda m: (
                        m.payload is not None and m.payload["state"] == "awaiting_approval"
                    ),
                )
                assert waiting[0].payload is not None
                assert waiting[0].payload["recounts"] == 2
                assert [line["sku"] for line in waiting[0].payload["lines"]] == [wrong_sku]
                # the second recount's scan ends after its counts reached the reconciler
                recounts = await recorder.await_for(
                    2,
                    f"{root}/scan/R",
                    timeout=30,
                    where=lambda m: (
                        m.payload is not None
                        and m.payload["state"] == "completed"
                        and str(m.payload.get("request_id", "")).startswith("recount-")
                    ),
                )
                assert len(recounts) == 2
                # only the wrong location was ever flagged
                flagged = {m.topic for m in recorder.matching(f"{root}/discrepancy/#") if m.payload}
                assert flagged == {f"{root}/discrepancy/R/R-02"}

                (item,) = engine.list_discrepancies()
                engine.decide(
                    item["id"], approve=True, reason_code="BOOK_ERROR", approver="supervisor"
                )
                adjustments = await recorder.await_for(1, f"{root}/adjustment", timeout=10)
                assert adjustments[0].payload is not None
                assert adjustments[0].payload["diff"] == -5
                assert adjustments[0].payload["sku"] == wrong_sku
                cleared = await recorder.await_for(
                    1, f"{root}/discrepancy/R/R-02", where=lambda m: m.payload is None
                )
                assert cleared
                await asyncio.wait_for(
                    service.wait_until(lambda s: s.adjustments_published >= 1), 10
                )
                assert engine.pending_adjustments() == []
                assert len(recorder.matching(f"{root}/adjustment")) == 1
            finally:
                gw_task.cancel()
                await asyncio.gather(gw_task, return_exceptions=True)
        service.stopping.set()
        await asyncio.wait_for(rec_task, 10)
    store.close()
