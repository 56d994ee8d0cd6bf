"""The serial module simulator's side of the protocol, driven by a raw host (no driver)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from drivers.serial import codec as c
from simulators.scene import Scene, generate_scene, scene_from_tags
from simulators.serial.module import SerialFaults, SimModule
from simulators.serial.server import SerialModuleSimulator
from tests.simulators.serial.serial_client import WAIT, RawHost

EPC_A = "3034257bf7194e4000000001"
EPC_B = "3034257bf7194e4000000002"
EPC_C = "3034257bf7194e4000000003"


def certain_scene() -> Scene:
    """Two tags on antenna 1, one on antenna 2; every round reads every tag at its RSSI."""
    scene = scene_from_tags(
        [(EPC_A, 1, -50.0), (EPC_B, 1, -60.0), (EPC_C, 2, -55.0)],
        antennas=2,
        rounds_per_second=200,
    )
    return scene.model_copy(update={"rssi_sd": 0.0})


def notices(frames: list[c.Frame]) -> list[c.TagNotice]:
    return [f for f in frames if isinstance(f, c.TagNotice)]


async def test_module_information_and_power() -> None:
    scene = certain_scene()
    async with SerialModuleSimulator(scene) as sim, await RawHost.connect(sim.port) as host:
        for kind in c.InfoKind:
            info = await host.ask(c.GetModuleInfo(kind), c.ModuleInfo)
            assert isinstance(info, c.ModuleInfo)
            assert info.kind == kind
            assert info.text
        power = await host.ask(c.GetPower(), c.PowerResponse)
        assert power == c.PowerResponse(round(scene.reader.max_power_dbm * 100))
        assert await host.ask(c.SetPower(2000), c.Ack) == c.Ack(0xB6, 0)
        assert await host.ask(c.GetPower(), c.PowerResponse) == c.PowerResponse(2000)
        refused = await host.ask(c.SetPower(5000), c.ErrorResponse)
        assert refused == c.ErrorResponse(c.ErrorCode.COMMAND_ERROR)
        assert await host.ask(c.GetPower(), c.PowerResponse) == c.PowerResponse(2000)
        unknown = await host.ask(c.RawFrame(0x00, 0x0D), c.ErrorResponse)
        assert unknown == c.ErrorResponse(c.ErrorCode.COMMAND_ERROR)
        assert sim.stats.commands[c.Command.SET_POWER] == 2
        assert sim.stats.commands[0x0D] == 1


async def test_single_poll_reports_the_tags_of_its_antenna_or_error_15() -> None:
    scene = certain_scene()
    async with SerialModuleSimulator(scene) as sim, await RawHost.connect(sim.port) as host:
        host.send(c.SinglePoll())
        frames = await host.until(lambda fs: len(notices(fs)) == 2)
        assert {n.epc.hex() for n in notices(frames)} == {EPC_A, EPC_B}
        assert all(n.crc_ok for n in notices(frames))
        assert {n.epc.hex(): n.rssi for n in notices(frames)} == {EPC_A: -50, EPC_B: -60}
    empty = scene_from_tags([(EPC_C, 2, -55.0)], antennas=2)
    async with SerialModuleSimulator(empty) as sim, await RawHost.connect(sim.port) as host:
        answer = await host.ask(c.SinglePoll(), c.ErrorResponse)
        assert answer == c.ErrorResponse(c.ErrorCode.INVENTORY_FAIL)
        assert sim.stats.empty_rounds == 1


async def test_antenna_option_picks_the_modules_view() -> None:
    async with (
        SerialModuleSimulator(certain_scene(), antenna=2) as sim,
        await RawHost.connect(sim.port) as host,
    ):
        host.send(c.SinglePoll())
        frames = await host.until(lambda fs: len(notices(fs)) == 1)
        assert notices(frames)[0].epc.hex() == EPC_C
    with pytest.raises(ValueError, match="antenna 3"):
        SimModule(certain_scene(), antenna=3)


async def test_multi_poll_runs_its_count_and_stop_acknowledges() -> None:
    async with (
        SerialModuleSimulator(certain_scene()) as sim,
        await RawHost.connect(sim.port) as host,
    ):
        host.send(c.MultiPoll(5))
        async with asyncio.timeout(WAIT):
            stats = await sim.wait_for(lambda s: s.polls_finished == 1)
        assert stats.rounds == 5
        frames = await host.until(lambda fs: len(notices(fs)) == 10)
        assert Counter(n.epc.hex() for n in notices(frames)) == {EPC_A: 5, EPC_B: 5}
        host.send(c.MultiPoll(c.MAX_POLL_COUNT))
        async with asyncio.timeout(WAIT):
            await sim.wait_for(lambda s: s.rounds >= 20)
        assert await host.ask(c.StopMultiPoll(), c.Ack) == c.Ack(0x28, 0)
        rounds = sim.stats.rounds
        seen = len(host.frames)
        # Nothing follows the acknowledgement: a get-power answer is the next frame.
        assert await host.ask(c.GetPower(), c.PowerResponse)
        assert len(host.frames) == seen + 1
        assert sim.stats.rounds == rounds
        assert sim.stats.polls_stopped == 1
        assert sim.stats.notices_sent == 2 * rounds
        assert sim.stats.reads_by_epc == Counter(
            {bytes.fromhex(EPC_A): rounds, bytes.fromhex(EPC_B): rounds}
        )


async def test_read_probability_and_rssi_follow_the_scene() -> None:
    scene = generate_scene(10, antennas=1, seed=5, read_prob=0.5, rounds_per_second=500)
    async with SerialModuleSimulator(scene) as sim, await RawHost.connect(sim.port) as host:
        host.send(c.MultiPoll(400))
        async with asyncio.timeout(WAIT):
            await sim.wait_for(lambda s: s.polls_finished == 1)
        frames = await host.until(lambda fs: len(notices(fs)) == sim.stats.notices_sent)
    counts = Counter(n.epc.hex() for n in notices(frames))
    assert set(counts) == scene.epcs
    assert all(150 < n < 250 for n in counts.values()), counts  # 400 rounds at 0.5
    mean = {t.epc: t.rssi for t in scene.tags}
    for notice in notices(frames):
        assert abs(notice.rssi - mean[notice.epc.hex()]) < 12  # 6 sd of 2 dB


async def test_garbage_in_from_the_host_is_counted_and_ignored() -> None:
    async with (
        SerialModuleSimulator(certain_scene()) as sim,
        await RawHost.connect(sim.port) as host,
    ):
        bad = bytearray(c.GetPower().encode())
        bad[-2] ^= 1
        host.send(b"\x00\x01" + bytes(bad) + b"\xbb\x09")
        assert await host.ask(c.GetPower(), c.PowerResponse)
        assert sim.stats.bad_frames_in == 2
        assert sim.stats.frames_in == 1


async def test_fault_plan_drops_the_connection_after_n_frames_once() -> None:
    faults = SerialFaults(disconnect_after_frames=4)
    async with SerialModuleSimulator(certain_scene(), faults=faults) as sim:
        async with await RawHost.connect(sim.port) as host:
            host.send(c.MultiPoll(100))
            with pytest.raises(ConnectionError):
                await host.until(lambda fs: False)
            assert len(host.frames) <= 4
        assert sim.stats.drops == 1
        async with await RawHost.connect(sim.port) as again:
            again.send(c.MultiPoll(10))
            frames = await again.until(lambda fs: len(notices(fs)) == 20)
            assert len(frames) == 20
        assert sim.stats.drops == 1
        assert sim.stats.connections == 2


async def test_silent_module_answers_nothing_until_it_recovers() -> None:
    async with (
        SerialModuleSimulator(certain_scene()) as sim,
        await RawHost.connect(sim.port) as host,
    ):
        sim.faults.silent = True
        host.send(c.GetPower())
        async with asyncio.timeout(WAIT):
            await sim.wait_for(lambda s: s.frames_in == 1)
        sim.faults.silent = False
        answer = await host.ask(c.GetModuleInfo(0), c.ModuleInfo)
        assert isinstance(answer, c.ModuleInfo)
        assert not any(isinstance(f, c.PowerResponse) for f in host.frames)
