"""The serial reader driver against the module simulator: ``socket://``, a pty, hostile lines.

Truth comes from the scene (the tags listed on antenna 1) and from the simulator's own tally
of the notices it sent intact: on a clean or merely noisy line the driver must report exactly
those, no more and no fewer.
"""

from __future__ import annotations

import asyncio
import copy
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import serial

from drivers.base import HealthState, TagRead
from drivers.serial import codec as c
from drivers.serial.driver import ReaderError, SerialReader, SerialReaderSettings
from edgecount.backoff import Backoff
from simulators.scene import Scene, generate_scene
from simulators.serial.module import SerialFaults, SerialSimStats
from simulators.serial.server import SerialModuleSimulator

WAIT = 15.0


def scene() -> Scene:
    """12 tags on antenna 1 (plus strays from antenna 2), each read with probability 0.4."""
    return generate_scene(24, antennas=2, seed=11, read_prob=0.4, rounds_per_second=200)


def antenna_1(scene: Scene) -> set[bytes]:
    return {bytes.fromhex(t.epc) for t in scene.tags if t.antenna == 1}


def settings(url: str, **overrides: Any) -> SerialReaderSettings:
    values: dict[str, Any] = {
        "tx_power_dbm": 32.5,
        "watchdog_seconds": 0.4,
        "command_timeout_seconds": 0.3,
        "idle_gap_seconds": 0.05,
        "backoff": Backoff(0.05, 0.2, random.Random(1)),
    }
    return SerialReaderSettings("cart", url, **(values | overrides))


@asynccontextmanager
async def running(reader: SerialReader) -> AsyncIterator[SerialReader]:
    await reader.start()
    try:
        yield reader
    finally:
        await reader.stop()


def drain(reader: SerialReader) -> list[TagRead]:
    reads: list[TagRead] = []
    while not reader.queue.empty():
        reads += reader.queue.get_nowait()
    return reads


async def until(sim: SerialModuleSimulator, what: str, predicate: Any) -> SerialSimStats:
    try:
        async with asyncio.timeout(WAIT):
            return await sim.wait_for(predicate)
    except TimeoutError:
        raise AssertionError(f"simulator never reached: {what}; stats {sim.stats}") from None


async def scan(reader: SerialReader, sim: SerialModuleSimulator, rounds: int) -> list[TagRead]:
    """One scan window of at least ``rounds`` more poll rounds; the reads it queued."""
    start = sim.stats.rounds
    await reader.start_inventory()
    await until(sim, f"{rounds} rounds", lambda s: s.rounds >= start + rounds)
    await reader.stop_inventory()
    return drain(reader)


async def test_reads_over_socket_equal_the_scene_truth_for_antenna_1() -> None:
    truth = scene()
    async with (
        SerialModuleSimulator(truth) as sim,
        running(SerialReader(settings(sim.url))) as reader,
    ):
        assert reader.connected
        before = time.time()
        reads = await scan(reader, sim, 150)
        after = time.time()
        health = copy.deepcopy(reader.health())
        stats = sim.stats.copy()
    counts = Counter(r.epc for r in reads)
    assert counts == stats.reads_by_epc  # every notice sent, once, nothing else
    assert set(counts) == antenna_1(truth)
    assert min(counts.values()) < stats.rounds  # read_prob < 1 shows
    assert all(r.reader == "cart" and r.antenna == 1 and r.count == 1 for r in reads)
    assert all(before <= r.t <= after for r in reads)
    mean = {bytes.fromhex(t.epc): t.rssi for t in truth.tags if t.antenna == 1}
    assert all(abs(r.rssi - mean[r.epc]) < 12 for r in reads)
    assert health.reads == len(reads)
    assert (health.connects, health.disconnects, reader.failures) == (1, 0, 0)
    assert health.extra["power_dbm"] == 32.5
    assert health.extra["rejected_frames"] == health.extra["skipped_bytes"] == 0
    assert reader.module_info["hardware"] == "edgecount-sim M100-compatible"
    assert stats.commands[c.Command.SET_POWER] == 1
    assert stats.polls_stopped == 1


async def test_reads_over_a_pty() -> None:
    truth = scene()
    async with (
        SerialModuleSimulator(truth, pty=True) as sim,
        running(SerialReader(settings(sim.url))) as reader,
    ):
        assert sim.url.startswith("/dev/pts/")
        reads = await scan(reader, sim, 100)
        stats = sim.stats.copy()
        assert reader.health().state == HealthState.CONNECTED
    counts = Counter(r.epc for r in reads)
    assert counts == stats.reads_by_epc
    assert set(counts) == antenna_1(truth)


async def test_hostile_line_byte_by_byte_with_noise_cuts_and_bad_checksums() -> None:
    faults = SerialFaults(
        chunk_max=1, garbage_prob=0.3, garbage_max=6, bad_checksum_prob=0.05, truncate_prob=0.03
    )
    truth = scene()
    async with (
        SerialModuleSimulator(truth, faults=faults, seed=3) as sim,
        running(SerialReader(settings(sim.url))) as reader,
    ):
        assert reader.connected
        reads = await scan(reader, sim, 150)
        health = copy.deepcopy(reader.health())
        stats = sim.stats.copy()
    counts = Counter(r.epc for r in reads)
    assert counts == stats.reads_by_epc  # exactly the notices that went out intact
    assert set(counts) == antenna_1(truth)
    assert stats.corrupted_frames > 0
    assert stats.truncated_frames > 0
    assert stats.garbage_bytes > 0
    extra = health.extra
    assert extra["rejected_bad_checksum"] >= stats.corrupted_frames
    assert extra["rejected_frames"] >= stats.corrupted_frames + stats.truncated_frames
    assert extra["skipped_bytes"] + extra["rejected_frames"] >= stats.garbage_bytes
    assert reader.failures == 0


async def test_port_going_away_mid_inventory_reconnects_and_polls_again() -> None:
    truth = scene()
    async with (
        SerialModuleSimulator(truth) as sim,
        running(SerialReader(settings(sim.url))) as reader,
    ):
        await reader.start_inventory()
        await until(sim, "30 rounds", lambda s: s.rounds >= 30)
        sim.faults.disconnect_after_frames = 1  # the next frame sent is the last
        assert await reader.wait_connected(WAIT, count=2)
        sim.faults.disconnect_after_frames = None
        health = copy.deepcopy(reader.health())
        assert (health.connects, health.disconnects, reader.failures) == (2, 1, 1)
        assert reader.failed.is_set()
        assert health.state == HealthState.CONNECTED
        drain(reader)
        await until(sim, "polling again", lambda s: s.polls_started == 2)
        reads = await scan(reader, sim, 100)
        assert reader.failures == 1
    assert sim.stats.drops == 1
    assert {r.epc for r in reads} == antenna_1(truth)


async def test_pty_unplugged_mid_inventory_reconnects_through_its_link(tmp_path: Path) -> None:
    link = tmp_path / "ttyUHF0"
    truth = scene()
    async with (
        SerialModuleSimulator(truth, pty=True, pty_link=link) as sim,
        running(SerialReader(settings(str(link)))) as reader,
    ):
        first = sim.pty_path
        await reader.start_inventory()
        await until(sim, "30 rounds", lambda s: s.rounds >= 30)
        assert sim.drop_connection()
        assert await reader.wait_connected(WAIT, count=2)
        assert sim.pty_path != first
        assert reader.failures >= 1
        assert reader.health().disconnects == 1
        drain(reader)
        reads = await scan(reader, sim, 100)
    assert {r.epc for r in reads} == antenna_1(truth)


async def test_silent_module_trips_the_watchdog_then_reconnects() -> None:
    async with (
        SerialModuleSimulator(scene()) as sim,
        running(SerialReader(settings(sim.url))) as reader,
    ):
        await reader.start_inventory()
        await until(sim, "20 rounds", lambda s: s.rounds >= 20)
        sim.faults.silent = True  # hung: no byte out, commands ignored
        assert await reader.wait_for(lambda h: h.state == HealthState.RECONNECTING, WAIT)
        assert reader.failures >= 1
        assert "watchdog" in (reader.health().last_error or "")
        sim.faults.silent = False
        assert await reader.wait_connected(WAIT, count=2)
        await until(sim, "polling again", lambda s: s.polls_started >= 2)
        await reader.stop_inventory()


async def test_a_finished_poll_count_is_renewed_while_the_scan_runs() -> None:
    async with (
        SerialModuleSimulator(scene()) as sim,
        running(SerialReader(settings(sim.url, poll_count=10))) as reader,
    ):
        await reader.start_inventory()
        await until(sim, "three polls", lambda s: s.polls_finished >= 2 and s.polls_started >= 3)
        await reader.stop_inventory()
        health = copy.deepcopy(reader.health())
    assert health.extra["repolls"] >= 2
    assert reader.failures == 0
    assert health.connects == 1


async def test_reads_from_a_module_left_polling_do_not_leak_into_the_queue() -> None:
    async with SerialModuleSimulator(scene(), pty=True) as sim:
        other = serial.serial_for_url(sim.url, timeout=0.1)  # a host that went away
        other.write(c.MultiPoll().encode())
        await until(sim, "orphan poll", lambda s: s.rounds >= 20)
        other.close()
        async with running(SerialReader(settings(sim.url))) as reader:
            assert reader.connected
            assert sim.stats.polls_stopped == 1
            assert reader.queue.empty()
            assert reader.health().reads == 0


async def test_unreachable_port_counts_failures_and_commands_raise() -> None:
    reader = SerialReader(settings("socket://127.0.0.1:9", watchdog_seconds=5.0))
    async with running(reader):
        assert not reader.connected
        assert reader.failures >= 1
        assert reader.health().state == HealthState.RECONNECTING
        with pytest.raises(ReaderError):
            await reader.start_inventory()
        with pytest.raises(ReaderError):
            await reader.stop_inventory()
    assert reader.health().state == HealthState.STOPPED


async def test_full_queue_drops_and_counts() -> None:
    async with (
        SerialModuleSimulator(scene()) as sim,
        running(SerialReader(settings(sim.url, queue_size=2))) as reader,
    ):
        await reader.start_inventory()
        await until(sim, "50 rounds", lambda s: s.rounds >= 50)
        await reader.stop_inventory()
        health = copy.deepcopy(reader.health())
        kept = drain(reader)
        assert health.dropped > 0
        assert health.reads == len(kept)
        assert health.reads + health.dropped == sim.stats.notices_sent


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="poll_count"):
        SerialReaderSettings("cart", "loop://", poll_count=0)
    with pytest.raises(ValueError, match="positive"):
        SerialReaderSettings("cart", "loop://", watchdog_seconds=0)


async def test_tag_crc_catches_damage_the_frame_checksum_misses() -> None:
    faults = SerialFaults(blind_error_prob=0.1)
    truth = scene()
    async with (
        SerialModuleSimulator(truth, faults=faults, seed=5) as sim,
        running(SerialReader(settings(sim.url))) as reader,
    ):
        reads = await scan(reader, sim, 100)
        health = copy.deepcopy(reader.health())
        stats = sim.stats.copy()
    assert stats.blind_errors > 0
    assert health.extra["epc_crc_errors"] == stats.blind_errors
    assert health.extra["rejected_frames"] == 0  # the frame checksum saw nothing
    assert Counter(r.epc for r in reads) == stats.reads_by_epc


async def test_without_the_tag_crc_check_damaged_epcs_get_through() -> None:
    faults = SerialFaults(blind_error_prob=0.1)
    truth = scene()
    async with (
        SerialModuleSimulator(truth, faults=faults, seed=5) as sim,
        running(SerialReader(settings(sim.url, verify_epc_crc=False))) as reader,
    ):
        reads = await scan(reader, sim, 100)
        stats = sim.stats.copy()
    assert stats.blind_errors > 0
    assert len(reads) == stats.notices_sent + stats.blind_errors
    assert {r.epc for r in reads} - antenna_1(truth)  # EPCs that are on no tag


async def test_module_refusing_the_power_fails_the_connect() -> None:
    truth = scene()  # power table 10..32.5 dBm
    async with SerialModuleSimulator(truth) as sim:
        reader = SerialReader(settings(sim.url, tx_power_dbm=40.0))
        async with running(reader):
            assert not reader.connected
            assert reader.failures >= 1
            assert "0xb6 failed with error 0x17" in (reader.health().last_error or "")
            assert reader.health().extra["module_errors"] >= 1


async def test_missing_module_information_is_tolerated() -> None:
    async with SerialModuleSimulator(scene()) as sim:
        del sim.module.info[c.InfoKind.MANUFACTURER]  # a clone without that line
        async with running(SerialReader(settings(sim.url))) as reader:
            assert reader.connected
            assert set(reader.module_info) == {"hardware", "software"}
            assert reader.failures == 0


async def test_idle_module_is_probed_and_a_hung_one_is_noticed() -> None:
    async with (
        SerialModuleSimulator(scene()) as sim,
        running(SerialReader(settings(sim.url))) as reader,
    ):
        await until(sim, "an idle probe", lambda s: s.commands[c.Command.GET_POWER] >= 2)
        assert reader.failures == 0
        assert sim.stats.polls_started == 0
        sim.faults.silent = True
        assert await reader.wait_for(lambda h: h.state == HealthState.RECONNECTING, WAIT)
        assert reader.failures == 1
        assert "watchdog" in (reader.health().last_error or "")
