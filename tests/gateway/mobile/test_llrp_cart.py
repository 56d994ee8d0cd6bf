"""An LLRP reader on a robot cart: a mobile zone scanned end to end over real LLRP.

The LLRP simulator carries a :class:`~simulators.cart.CartProvider` past 6 bays 0.8 m wide at
2.5 m/s, 125 inventory rounds per second (50 rounds a metre, where the model alone put every
item of 300 seeded aisles in its bay). The gateway's LLRP driver (sllurp over TCP) reads it in
a mobile zone (:class:`~gateway.mobile_scan.MobileTally`) that publishes to the in-memory
publisher: every item must land in its bay, among them one 15 cm from each inner bay edge, and
every bay must be published complete.

The driver asks for a report every tag (``report_every_n_tags: 1``): a reader accumulates the
reads of a tag into one TagReportData until it reports, so a large N would hand the assigner
one read per tag instead of the RSSI rise and fall it locates tags by.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from drivers.llrp.driver import LlrpReader
from edgecount import contract
from edgecount.cli import main
from gateway.config import GatewayConfig
from gateway.epc import EpcDecoder
from gateway.mobile_scan import MobileTally
from gateway.publisher import MemoryPublisher
from gateway.readers import build_readers
from gateway.scan import create_zone_scan
from simulators.cart import AisleLayout, CartPath, CartProvider, CartSim, CartTag, cart_scene
from simulators.llrp.server import LLRPSimulator
from simulators.twin import sgtin96

BAYS = [f"A-01-{n:02d}-1" for n in range(1, 7)]
WIDTH = 0.8
EDGE = 0.15  # m: the boundary items sit this far inside their bay
SPEED = 2.5  # m/s: the pass takes (6 * 0.8 + 2 * 1.6) / 2.5 = 3.2 s
RATE = 125.0  # inventory rounds per second
SCAN_SECONDS = 4.5  # the zone's window: the pass and time to spare
WAIT = 20.0
SIM = [sys.executable, "-m", "edgecount", "sim", "llrp"]


def layout(seed: int) -> AisleLayout:
    """4 items spread over each bay, and one ``EDGE`` inside every inner bay edge."""
    base = AisleLayout.synthetic(BAYS, items_per_bay=4, bay_width=WIDTH, margin=EDGE, seed=seed)
    edges: list[CartTag] = []
    for index, bay in enumerate(BAYS):
        left = index * WIDTH
        if index > 0:
            edges.append(CartTag(epc(index, 901), left + EDGE, bay))
        if index < len(BAYS) - 1:
            edges.append(CartTag(epc(index, 902), left + WIDTH - EDGE, bay))
    return AisleLayout(base.bays, base.bay_width, base.tags + tuple(edges))


def epc(bay_index: int, serial: int) -> bytes:
    """An item of the bay's SKU (the synthetic layout's item reference ``100 + index``)."""
    return bytes.fromhex(sgtin96(100 + bay_index, bay_index * 1000 + serial))


def gateway_config(port: int, aisle: AisleLayout) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "site": "dc1",
            "gateway_id": "gw-cart",
            "readers": [
                {
                    "type": "llrp",
                    "name": "cart",
                    "host": "127.0.0.1",
                    "port": port,
                    "antennas": {1: "cart"},  # not a location: the zone is mobile
                    "keepalive_seconds": 1.0,
                    "report_every_n_tags": 1,
                }
            ],
            "zones": {
                "A": {
                    "readers": ["cart"],
                    "scan_seconds": SCAN_SECONDS,
                    "mobile": {"references": aisle.references(), "window_seconds": 0.2},
                }
            },
        }
    )


def expected_skus(aisle: AisleLayout) -> dict[str, dict[str, int]]:
    decoder = EpcDecoder()
    per_bay: dict[str, Counter[str]] = {bay: Counter() for bay in aisle.bays}
    for item, bay in aisle.truth().items():
        per_bay[bay][decoder.decode(item).sku] += 1
    return {bay: dict(sorted(skus.items())) for bay, skus in per_bay.items()}


def published_counts(publisher: MemoryPublisher) -> list[contract.CountMessage]:
    return publisher.published(contract.CountMessage)


async def test_a_mobile_zone_scans_an_llrp_reader_on_a_cart() -> None:
    aisle = layout(11)
    assert len(aisle.truth()) == 4 * len(BAYS) + 2 * (len(BAYS) - 1)
    provider = CartProvider(CartSim(aisle, CartPath.across(aisle, speed=SPEED)), seed=11)
    publisher = MemoryPublisher(site="dc1", gateway_id="gw-cart")
    async with LLRPSimulator(cart_scene(rounds_per_second=RATE), source=provider) as sim:
        config = gateway_config(sim.port, aisle)
        reader = build_readers(config)["cart"]
        assert isinstance(reader, LlrpReader)
        await reader.start()
        try:
            assert await reader.wait_connected(10)
            assert provider.started_at is None, "the cart waits for the first inventory round"
            zone_scan = create_zone_scan(config, "A", {"cart": reader}, publisher)
            tally = zone_scan.tally
            assert isinstance(tally, MobileTally)
            async with asyncio.timeout(SCAN_SECONDS + WAIT):
                result = await zone_scan.run()
        finally:
            await reader.stop()
        sent = sim.stats.copy()
    assert provider.done(), "the cart passed the whole aisle within the window"
    assert reader.health().dropped == 0
    assert sent.tag_reports_sent > 1000
    assert tally.assigner.placements() == aisle.truth(), "every item in its bay"
    assert not tally.assigner.late
    expected = expected_skus(aisle)
    assert result.complete
    assert result.published
    assert {bay: result.locations[bay].skus for bay in BAYS} == expected
    counts = published_counts(publisher)
    assert sorted(count.location for count in counts) == BAYS, "each bay once"
    for count in counts:
        assert count.complete is True, count.location
        assert count.scan_id == result.scan_id
        assert count.quantities == expected[count.location]
    last = publisher.messages[-1].message
    assert isinstance(last, contract.ScanMessage)
    assert last.state is contract.ScanState.COMPLETED


def test_sim_llrp_cli_serves_a_cart(tmp_path: Path) -> None:
    spec_file = tmp_path / "cart.json"
    spec = {"bays": BAYS[:2], "speed": 4.0, "rounds_per_second": 100, "seed": 3}
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    proc = subprocess.Popen(
        [*SIM, "--cart", str(spec_file), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        heard = asyncio.run(read_until_references(port, AisleLayout.synthetic(BAYS[:2])))
        assert heard
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)


async def read_until_references(port: int, aisle: AisleLayout) -> set[bytes]:
    """Inventory with the gateway's driver until every reference tag was heard."""
    config = gateway_config(port, aisle)
    reader = build_readers(config)["cart"]
    assert isinstance(reader, LlrpReader)
    wanted = {bytes.fromhex(ref) for ref in aisle.references()}
    seen: set[bytes] = set()
    await reader.start()
    try:
        assert await reader.wait_connected(10)
        await reader.start_inventory()
        async with asyncio.timeout(WAIT):
            while not wanted <= seen:
                seen |= {read.epc for read in await reader.queue.get()}
        await reader.stop_inventory()
    finally:
        await reader.stop()
    return seen & wanted


def test_sim_llrp_cli_refuses_what_does_not_go_with_a_cart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = tmp_path / "cart.json"
    spec_file.write_text(json.dumps({"bays": BAYS[:2]}), encoding="utf-8")
    (tmp_path / "no-bays.json").write_text("{}", encoding="utf-8")
    (tmp_path / "backwards.json").write_text(json.dumps({"bays": BAYS, "speed": -1}), "utf-8")
    scene_file = tmp_path / "scene.json"
    scene_file.write_text(cart_scene().model_dump_json(), encoding="utf-8")
    cart = ("--cart", str(spec_file))
    usage = {
        (*cart, "--scene", str(scene_file)): "not allowed with argument",
        (): "one of the arguments --scene --cart is required",
    }
    for args, why in usage.items():
        with pytest.raises(SystemExit) as raised:
            main(["sim", "llrp", *args])
        assert raised.value.code == 2
        assert why in capsys.readouterr().err, args
    refused = {
        (*cart, "--readers", "2"): "--cart serves one reader",
        (*cart, "--replay", str(spec_file)): "--replay streams recorded reports",
        (*cart, "--write-replay", str(tmp_path / "out.llrp")): "needs --scene",
        ("--cart", str(tmp_path / "missing.json")): "invalid cart spec",
        ("--cart", str(tmp_path / "no-bays.json")): "needs bays or contents",
        ("--cart", str(tmp_path / "backwards.json")): "backwards.json:1: speed",
    }
    for args, why in refused.items():
        assert main(["sim", "llrp", *args, "--port", "0"]) == 2, args
        assert why in capsys.readouterr().err, args
    assert not (tmp_path / "out.llrp").exists()
