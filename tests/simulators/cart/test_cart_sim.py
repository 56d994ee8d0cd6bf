"""The cart simulator: an aisle of bays with SGLN-96 reference tags, read on the move.

The end-to-end test drives a cart past 6 bays 0.8 m wide at 2 m/s through the serial module
simulator, reads it with the real serial driver over ``socket://`` and gives the reads to the
gateway's :class:`~gateway.mobile.MobileAssigner`: every item must land in its true bay. Items
sit at least 15 cm inside their bay (the boundary margin the assigner documents).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers.base import TagRead
from drivers.serial.driver import SerialReader, SerialReaderSettings
from edgecount.backoff import Backoff
from edgecount.sgln import decode_sgln96
from edgecount.sgln import encode_sgln96 as gateway_encode
from edgecount.yamlcfg import ConfigError
from gateway.mobile import MobileAssigner, assign_by_pose
from simulators.cart import (
    AisleLayout,
    CartPath,
    CartProvider,
    CartSim,
    CartSpec,
    RfModel,
    aisle_contents,
    cart_scene,
    encode_sgln96,
    load_cart_spec,
)
from simulators.serial.server import SerialModuleSimulator
from simulators.twin import TwinSpec, generate

BAYS = [f"A-01-{n:02d}-1" for n in range(1, 7)]
WIDTH = 0.8
SPEED = 2.0
RATE = 100.0  # inventory rounds per second


def layout(seed: int) -> AisleLayout:
    return AisleLayout.synthetic(BAYS, items_per_bay=5, bay_width=WIDTH, margin=0.15, seed=seed)


def test_reference_tags_decode_to_their_bays_with_the_gateway_decoder() -> None:
    aisle = layout(0)
    refs = aisle.references()
    assert sorted(refs.values()) == BAYS
    for epc_hex, bay in refs.items():
        decoded = decode_sgln96(bytes.fromhex(epc_hex))
        assert decoded.company_prefix == "0614141"
        assert int(decoded.location_reference) == BAYS.index(bay) + 1
    rng = random.Random(3)
    for _ in range(200):
        length = rng.randint(6, 12)
        digits = "".join(rng.choice("0123456789") for _ in range(12))
        fields = (digits[:length], digits[length:], rng.randrange(1 << 41), rng.randint(0, 7))
        assert encode_sgln96(*fields) == gateway_encode(*fields)
    with pytest.raises(ValueError, match="12 digits"):
        encode_sgln96("0614141", "1")


def test_layout_positions_items_inside_their_bays() -> None:
    aisle = layout(1)
    extents = aisle.extents()
    assert len(aisle.truth()) == 5 * len(BAYS)
    for tag in aisle.tags:
        start, end = extents[tag.bay]
        if tag.reference:
            assert tag.x == pytest.approx((start + end) / 2)
        else:
            assert start + 0.15 <= tag.x <= end - 0.15
    twin_like = {"Z-01-01-1": ["3034257bf7194e4000000001"], "Z-01-02-1": []}
    built = AisleLayout.build(twin_like, bay_width=1.0, seed=2)
    assert built.truth() == {bytes.fromhex("3034257bf7194e4000000001"): "Z-01-01-1"}
    with pytest.raises(ValueError, match="margin"):
        AisleLayout.build(twin_like, bay_width=0.2, margin=0.1)


def test_path_pose_with_a_stop_and_rf_model() -> None:
    path = CartPath(0.0, 4.0, 2.0, stop_at=1.0, stop_seconds=3.0)
    assert path.duration == pytest.approx(5.0)
    poses = [path.pose_at(t) for t in (-1.0, 0.25, 0.5, 2.0, 3.5, 4.0, 5.0, 9.0)]
    assert poses == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0, 2.0, 4.0, 4.0])
    assert CartPath(3.0, 1.0, 1.0).pose_at(1.5) == pytest.approx(1.5)  # backwards
    with pytest.raises(ValueError, match="stop_at"):
        CartPath(0.0, 1.0, 1.0, stop_at=2.0)
    rf = RfModel()
    assert rf.mean_rssi(1.0) == pytest.approx(-40.0)
    assert rf.read_prob(rf.distance(5.0, 0.0)) == 0.0
    sim = CartSim(layout(2), CartPath(-1.0, 6.0, 1.0))
    tag = sim.layout.tags[0]
    at_tag = tag.x + 1.0  # seconds until the cart is abreast of the tag
    assert sim.rssi_at(tag, at_tag) == pytest.approx(-40.0 - 20.0 * math.log10(0.4))
    assert sim.rssi_at(tag, at_tag) > sim.rssi_at(tag, at_tag + 0.5)
    assert sim.read_prob_at(tag, at_tag) == pytest.approx(0.75)


def test_the_model_alone_puts_every_item_in_its_bay() -> None:
    """Virtual time, no sockets: several seeds through the assigner."""
    for seed in range(5):
        aisle = layout(seed)
        sim = CartSim(aisle, CartPath.across(aisle, speed=SPEED))
        rng = random.Random(seed)
        assigner = MobileAssigner(aisle.references(), bays=BAYS)
        poses: list[tuple[float, float]] = []
        for n in range(int(sim.path.duration * RATE) + 1):
            t = n / RATE
            poses.append((t, sim.pose_at(t)))
            reads = sim.read_round(t, rng)
            assigner.add(TagRead("cart", 1, epc, rssi, t) for epc, rssi in reads)
        assert assigner.placements() == aisle.truth(), seed
        by_pose = assign_by_pose(assigner.item_reads(), poses, aisle.extents())
        assert by_pose == aisle.truth(), seed


def test_a_twin_aisle_scanned_by_the_cart_model() -> None:
    """Items of one aisle and level of a generated twin, read in virtual time."""
    spec = TwinSpec(zones=1, aisles_per_zone=2, bays_per_aisle=5, levels_per_bay=2, qty_max=4)
    twin = generate(spec)
    contents = aisle_contents(twin.truth, "Z1", "02", "2")
    assert list(contents) == [f"Z1-02-{b:02d}-2" for b in range(1, 6)]
    aisle = AisleLayout.build(contents, bay_width=1.0, seed=4)
    truth = aisle.truth()
    assert {epc.hex() for epc in truth} == {e for epcs in contents.values() for e in epcs}
    sim = CartSim(aisle, CartPath.across(aisle, speed=SPEED))
    rng = random.Random(4)
    assigner = MobileAssigner(aisle.references(), bays=list(contents))
    for n in range(int(sim.path.duration * RATE) + 1):
        reads = sim.read_round(n / RATE, rng)
        assigner.add(TagRead("cart", 1, epc, rssi, n / RATE) for epc, rssi in reads)
    assert assigner.placements() == truth
    counts = assigner.finish()
    assert {bay: count.skus for bay, count in counts.items()} == {
        bay: dict(sorted(twin.truth_counts()[bay].items())) for bay in contents
    }


async def test_a_cart_read_through_the_serial_simulator_and_driver() -> None:
    aisle = layout(7)
    sim = CartSim(aisle, CartPath.across(aisle, speed=SPEED))
    provider = CartProvider(sim, seed=7, clock=time.time)  # the driver stamps reads with it
    reads: list[TagRead] = []
    async with SerialModuleSimulator(cart_scene(rounds_per_second=RATE), source=provider) as srv:
        settings = SerialReaderSettings(
            "cart",
            srv.url,
            tx_power_dbm=32.5,
            command_timeout_seconds=0.5,
            backoff=Backoff(0.05, 0.2, random.Random(1)),
        )
        reader = SerialReader(settings)
        await reader.start()
        try:
            await reader.start_inventory()
            async with asyncio.timeout(15):
                await srv.wait_for(lambda _: provider.done())
            await reader.stop_inventory()
        finally:
            await reader.stop()
        while not reader.queue.empty():
            reads += reader.queue.get_nowait()
        sent = srv.stats.copy()
    assert len(reads) == sent.notices_sent > 1000
    reads.sort(key=lambda read: read.t)
    assigner = MobileAssigner(aisle.references(), bays=BAYS)
    assigner.add(reads)
    assert assigner.placements() == aisle.truth()
    counts = assigner.finish()
    assert all(counts[bay].complete and counts[bay].total == 5 for bay in BAYS)
    by_pose = assign_by_pose(assigner.item_reads(), provider.poses, aisle.extents())
    assert by_pose == aisle.truth()


def test_cart_spec_file_builds_the_run(tmp_path: Path) -> None:
    spec_file = tmp_path / "cart.json"
    spec_file.write_text(
        json.dumps({"bays": BAYS[:3], "speed": 1.0, "stop_at": 1.0, "stop_seconds": 2.0}),
        encoding="utf-8",
    )
    spec = load_cart_spec(spec_file)
    sim = spec.sim()
    assert sim.layout.bays == tuple(BAYS[:3])
    assert sim.path.x0 == -1.6
    assert sim.path.x1 == pytest.approx(4.0)
    assert sim.path.duration == pytest.approx(5.6 + 2.0)
    assert spec.scene().reader.rounds_per_second == 20.0
    twin_like = CartSpec(contents={"Z-1": ["3034257bf7194e4000000001"]}).layout()
    assert list(twin_like.truth().values()) == ["Z-1"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"bays": BAYS, "speed": -1}), encoding="utf-8")
    with pytest.raises(ConfigError, match="speed"):
        load_cart_spec(bad)
    with pytest.raises(ValueError, match="bays"):
        CartSpec().sim()


def test_sim_serial_cli_serves_a_cart(tmp_path: Path) -> None:
    spec_file = tmp_path / "cart.json"
    spec = {"bays": BAYS[:2], "speed": 2.0, "rounds_per_second": 200, "seed": 3}
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    command = [sys.executable, "-m", "edgecount", "sim", "serial", "--cart", str(spec_file)]
    proc = subprocess.Popen(
        [*command, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on 127.0.0.1:"), line
        url = "socket://127.0.0.1:" + line.rsplit(":", 1)[1]
        epcs = asyncio.run(read_until_references(url, load_cart_spec(spec_file)))
        assert set(load_cart_spec(spec_file).layout().references()) <= {e.hex() for e in epcs}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    bad = subprocess.run(
        [*command[:-1], str(tmp_path / "missing.json")],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert "invalid cart spec" in bad.stderr


async def read_until_references(url: str, spec: CartSpec) -> set[bytes]:
    """Scan until both reference tags were heard (the cart passes them in about 2.4 s)."""
    wanted = {bytes.fromhex(epc) for epc in spec.layout().references()}
    settings = SerialReaderSettings("cart", url, backoff=Backoff(0.05, 0.2, random.Random(1)))
    reader = SerialReader(settings)
    seen: set[bytes] = set()
    await reader.start()
    try:
        await reader.start_inventory()
        async with asyncio.timeout(15):
            while not wanted <= seen:
                seen |= {read.epc for read in await reader.queue.get()}
        await reader.stop_inventory()
    finally:
        await reader.stop()
    return seen
