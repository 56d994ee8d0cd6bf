"""A pose-placed mobile scan end to end: real Mosquitto, the serial module simulator on a cart,
the real serial driver, the cart's pose published with paho, and the gateway's MQTT publisher.

The cart drives past 4 bays 0.8 m wide at 2 m/s (100 inventory rounds a second) and reports
its pose 10 times a second; besides the random items, every bay holds one item 12 cm inside
each of its edges. The gateway's ``MobileTally`` (``assign: pose``) must put every item in
its bay, publish each bay as the cart passes it, and shrug off malformed poses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from drivers.serial.driver import SerialReader, SerialReaderSettings
from edgecount import contract
from edgecount.backoff import Backoff
from edgecount.mqtt import MqttSettings
from edgecount.pose import pose_payload, pose_topic
from edgecount.timefmt import to_iso
from gateway.config import GatewayConfig
from gateway.mobile_scan import MobileTally
from gateway.mqtt_publisher import MqttPublisher
from gateway.outbox import Outbox
from gateway.scan import create_zone_scan
from simulators.cart import AisleLayout, CartPath, CartProvider, CartSim, CartTag, cart_scene
from simulators.pose import PosePublisher
from simulators.serial.server import SerialModuleSimulator
from simulators.twin import sgtin96
from tests.conftest import BrokerAddress, RecorderFactory

BAYS = [f"A-01-{n:02d}-1" for n in range(1, 5)]
WIDTH = 0.8
EDGE = 0.12  # m: the boundary items sit this far inside their bay
SPEED = 2.0
RATE = 100.0


def aisle(seed: int) -> AisleLayout:
    """Random items at least EDGE inside their bays, plus one at each bay edge."""
    layout = AisleLayout.synthetic(BAYS, items_per_bay=4, bay_width=WIDTH, margin=EDGE, seed=seed)
    boundary = [
        CartTag(bytes.fromhex(sgtin96(200 + i, side + 1)), x, bay)
        for i, (bay, (x0, x1)) in enumerate(layout.extents().items())
        for side, x in enumerate((x0 + EDGE, x1 - EDGE))
    ]
    return dataclasses.replace(layout, tags=layout.tags + tuple(boundary))


def gateway_config(
    site: str, gateway: str, url: str, layout: AisleLayout, seconds: float
) -> GatewayConfig:
    extents = {bay: list(extent) for bay, extent in layout.extents().items()}
    mobile = {
        "references": layout.references(),
        "assign": "pose",
        "robot": "cart-1",
        "extents": extents,
    }
    return GatewayConfig.model_validate(
        {
            "site": site,
            "gateway_id": gateway,
            "readers": [{"type": "serial", "name": "cart", "url": url}],
            "zones": {"A": {"readers": ["cart"], "scan_seconds": seconds, "mobile": mobile}},
        }
    )


def expected(layout: AisleLayout, bay: str) -> dict[str, int]:
    """GTIN-14 → qty of the bay's true contents (every synthetic item is one unit)."""
    from gateway.epc import EpcDecoder

    decoder = EpcDecoder()
    out: dict[str, int] = {}
    for epc, where in layout.truth().items():
        if where == bay:
            sku = decoder.decode(epc).sku
            out[sku] = out.get(sku, 0) + 1
    return dict(sorted(out.items()))


def reader(url: str) -> SerialReader:
    settings = SerialReaderSettings(
        "cart", url, command_timeout_seconds=0.5, backoff=Backoff(0.05, 0.2, random.Random(1))
    )
    return SerialReader(settings)


async def test_a_cart_scan_placed_by_its_published_pose(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    layout = aisle(3)
    sim = CartSim(layout, CartPath(-2.0, layout.length + 1.8, SPEED))
    provider = CartProvider(sim, seed=3, clock=time.time)
    recorder = mqtt_recorder(broker, contract.site_root(unique_site) + "count/#")
    settings = MqttSettings(host=broker.host, port=broker.port, reconnect_min_delay=0.05)
    gateway = f"gw-{uuid.uuid4().hex[:8]}"  # its own MQTT client id on a shared broker
    outbox = Outbox(tmp_path / "outbox.sqlite3", gateway_id=gateway)
    publisher = MqttPublisher(settings, outbox, site=unique_site)
    await publisher.start()
    assert await publisher.wait_connected(5.0)
    poses = PosePublisher(
        provider, host=broker.host, port=broker.port, site=unique_site, robot="cart-1"
    )
    async with SerialModuleSimulator(cart_scene(rounds_per_second=RATE), source=provider) as srv:
        cart = reader(srv.url)
        await cart.start()
        await poses.start()
        try:
            config = gateway_config(unique_site, gateway, srv.url, layout, sim.path.duration + 0.5)
            zone_scan = create_zone_scan(config, "A", {"cart": cart}, publisher)
            tally = zone_scan.tally
            assert isinstance(tally, MobileTally)
            running = asyncio.create_task(zone_scan.run(), name="pose-scan")
            await srv.wait_for(lambda _: provider.pose() > WIDTH)  # driving through bay 1
            poses.inject(b"{broken")
            other = pose_payload(robot="cart-2", x=100.0)  # valid, but not this topic's robot
            poses.inject(contract.encode(other))
            result = await running
        finally:
            await poses.stop()
            await cart.stop()
    try:
        assert tally.poses_rejected == 2
        assert tally.poses >= 10 * sim.path.duration * 0.8
        assert result.complete, {bay: c.complete for bay, c in result.locations.items()}
        for bay in BAYS:
            assert result.locations[bay].skus == expected(layout, bay), bay
        received = await recorder.await_for(len(BAYS))
        by_bay: dict[str, dict[str, Any]] = {}
        for message in received:
            assert message.payload is not None
            by_bay[message.payload["location"]] = message.payload
        assert sorted(by_bay) == BAYS
        for bay, payload in by_bay.items():
            assert payload["complete"] is True
            assert payload["total"] == sum(expected(layout, bay).values()) == 6
        ended = to_iso(result.ended_at)
        passed = [bay for bay, payload in by_bay.items() if payload["observed_at"] < ended]
        assert len(passed) >= len(BAYS) - 1, "published as the cart passed, not at the end"
        assert poses.published >= 10 * sim.path.duration * 0.8
    finally:
        await publisher.stop()


def test_sim_serial_cli_publishes_the_cart_pose(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    spec_file = tmp_path / "cart.json"
    spec_file.write_text(json.dumps({"bays": BAYS[:2], "speed": 2.0}), encoding="utf-8")
    topic = pose_topic(unique_site, "cart-9")
    recorder = mqtt_recorder(broker, topic)
    base = [sys.executable, "-m", "edgecount", "sim", "serial", "--cart", str(spec_file)]
    pose = ["--pose-broker", f"mqtt://{broker.host}:{broker.port}", "--robot", "cart-9"]
    proc = subprocess.Popen(
        [*base, "--port", "0", *pose, "--site", unique_site, "--pose-rate", "20"],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("listening on 127.0.0.1:")
        assert proc.stdout.readline().strip() == f"pose {topic}"
        received = recorder.wait_for(5, topic)
        assert all(m.payload is not None and m.payload["x"] == -1.6 for m in received)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    for extra, words in (
        ([], "needs --site"),
        (["--site", "s", "--pose-broker", "http://x"], "mqtt://HOST"),
    ):
        bad = subprocess.run(
            [*base, *pose, *extra], check=False, capture_output=True, text=True, timeout=30
        )
        assert bad.returncode == 2
        assert words in bad.stderr
