"""The LLRP simulator with a round source: a moving scene answers the rounds, not its tags."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from drivers.llrp import codec as c
from simulators.cart import AisleLayout, CartPath, CartProvider, CartSim
from simulators.llrp.inventory import RoundSource, TagField
from simulators.llrp.server import LLRPSimulator
from simulators.llrp.threaded import SimulatorThread
from simulators.scene import scene_from_tags
from simulators.serial.module import RoundSource as SerialRoundSource
from tests.simulators.llrp.llrp_client import RawClient, ok, rospec

SCENE_EPC = "3034257bf7194e4000000099"  # on the scene; never reported while a source answers
EPC_1, EPC_2 = (bytes.fromhex(f"3034257bf7194e40000000{i:02x}") for i in (1, 2))
RATE = 50.0  # rounds per second
SCENE = scene_from_tags(
    [(SCENE_EPC, 1, -40.0), (SCENE_EPC, 2, -40.0)], antennas=2, seed=5, rounds_per_second=RATE
)
WAIT = 5.0


class Recorder:
    """A round source: EPC_1 on antenna 1, EPC_2 on antenna 2; notes every round it runs."""

    def __init__(self) -> None:
        self.rounds: list[tuple[float, int, float]] = []
        """(monotonic time, antenna, power below max) of every round."""

    def read_round(self, antenna: int, power_below_max_db: float = 0.0) -> list[tuple[bytes, int]]:
        self.rounds.append((time.monotonic(), antenna, power_below_max_db))
        return [(EPC_1, -45)] if antenna == 1 else [(EPC_2, -65)]


@asynccontextmanager
async def inventorying(sim: LLRPSimulator) -> AsyncIterator[RawClient]:
    """A client whose ROSpec (all antennas, a report per TagReportData) runs on ``sim``."""
    client = await RawClient.connect(sim.port)
    try:
        spec = rospec(1, start=c.ROSpecStartTriggerType.IMMEDIATE, n=1)
        assert ok(await client.request(c.AddROSpec(client.next_id(), spec)))
        assert ok(await client.request(c.EnableROSpec(client.next_id(), 1)))
        yield client
    finally:
        await client.close()


def reported(client: RawClient) -> list[c.TagTuple]:
    return [
        tag
        for frame in client.raw
        if frame.msg_type == c.MessageType.RO_ACCESS_REPORT
        for tag in c.decode_ro_access_report(frame.data)
    ]


def test_the_protocol_is_shared_by_both_simulators() -> None:
    assert SerialRoundSource is RoundSource
    source: RoundSource = TagField(SCENE)
    assert source.read_round(1)


async def test_rounds_are_answered_by_the_source_at_the_scene_pace() -> None:
    source = Recorder()
    async with LLRPSimulator(SCENE, source=source) as sim, inventorying(sim) as client:
        async with asyncio.timeout(WAIT):
            await sim.wait_tag_reports(40)
            assert ok(await client.request(c.GetROSpecs(client.next_id())))  # reports arrived
    tags = reported(client)
    assert len(tags) >= 40
    assert {(epc, antenna, rssi) for epc, antenna, rssi, *_ in tags} == {
        (EPC_1.hex(), 1, -45),
        (EPC_2.hex(), 2, -65),
    }
    assert all(count == 1 for *_, count in tags)
    assert {antenna for _, antenna, _ in source.rounds} == {1, 2}
    assert {power for *_, power in source.rounds} == {0.0}  # the default: the highest power
    starts = [at for at, antenna, _ in source.rounds if antenna == 1]
    gap = statistics.median(b - a for a, b in itertools.pairwise(starts))
    assert 0.5 / RATE < gap < 2.0 / RATE, gap


async def test_a_cart_starts_with_the_first_round_and_moves_on_the_llrp_reader() -> None:
    layout = AisleLayout.synthetic(["B-1", "B-2"], items_per_bay=2, seed=3)
    provider = CartProvider(CartSim(layout, CartPath.across(layout, speed=4.0)), seed=3)
    async with LLRPSimulator(SCENE, source=provider) as sim:
        client = await RawClient.connect(sim.port)
        try:
            async with asyncio.timeout(WAIT):
                await client.expect(c.ReaderEventNotification)
            assert provider.started_at is None, "connecting does not start the cart"
        finally:
            await client.close()
        async with inventorying(sim) as client, asyncio.timeout(WAIT):
            await sim.wait_for(lambda _: provider.done())
            assert ok(await client.request(c.GetROSpecs(client.next_id())))
    xs = [x for _, x in provider.poses]
    assert xs[0] < provider.sim.path.x0 + 0.1, "the first round found the cart at its start"
    assert xs == sorted(xs)
    assert xs[-1] > layout.length
    heard = {epc for epc, antenna, *_ in reported(client) if antenna == 1}
    assert heard == {tag.epc.hex() for tag in layout.tags}
    assert not any(antenna == 2 for _, antenna, *_ in reported(client))  # the cart's is 1


def test_the_threaded_simulator_takes_a_source() -> None:
    source = Recorder()
    with SimulatorThread(SCENE, source=source) as thread:
        assert thread.call(lambda sim: sim.reader.field) is source
