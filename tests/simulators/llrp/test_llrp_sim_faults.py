"""Simulator robustness and fault injection: malformed input, drops, silence, garbage, replay."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from drivers.llrp import codec as c
from simulators.llrp.inventory import RateCap, TagField
from simulators.llrp.replay import ReplayError, load_replay, make_replay
from simulators.llrp.server import FaultPlan, LLRPSimulator, start_readers
from simulators.scene import generate_scene, scene_from_tags
from tests.simulators.llrp.llrp_client import RawClient, ok, rospec
from tests.simulators.llrp.test_llrp_sim_protocol import SCENE, WAIT, add_and_enable, running, sync


async def test_unsupported_messages_get_error_message_and_the_link_survives() -> None:
    async with running() as (sim, client):
        impinj = c.CustomMessage(client.next_id(), 25882, 21, b"\x00\x00\x00\x00")
        error = await client.request(impinj)
        assert isinstance(error, c.ErrorMessage)
        assert error.status.code == c.StatusCode.M_UNSUPPORTED_MESSAGE
        v2 = bytearray(c.GetROSpecs(client.next_id()).encode())
        v2[0] = (2 << 2) | (v2[0] & 3)
        v2_id = struct.unpack_from(">I", v2, 6)[0]
        future = asyncio.ensure_future(client.request(c.GetROSpecs(v2_id)))
        await asyncio.sleep(0)  # registers the future before the bytes go out
        client.send_bytes(bytes(v2))
        async with asyncio.timeout(WAIT):
            await sim.wait_for(lambda s: s.unsupported_messages >= 2)
        assert sim.stats.error_messages_sent >= 2
        await sync(client)
        future.cancel()


async def test_malformed_body_gets_an_error_response_of_the_right_type() -> None:
    async with running() as (sim, client):
        good = c.AddROSpec(client.next_id(), rospec(1)).encode()
        msg_id = client.next_id()
        cut = good[:40]
        broken = bytearray(cut)
        struct.pack_into(">II", broken, 2, len(cut), msg_id)
        client.send_bytes(bytes(broken))
        async with asyncio.timeout(WAIT):
            await sim.wait_for(lambda s: s.decode_errors == 1)
        await sync(client)
        responses = [f for f in client.raw if f.msg_id == msg_id]
        assert len(responses) == 1
        response = c.decode_message(responses[0])
        assert isinstance(response, c.AddROSpecResponse)
        assert response.status.code in (c.StatusCode.M_PARAMETER_ERROR, c.StatusCode.M_FIELD_ERROR)
        assert ok(await client.request(c.AddROSpec(client.next_id(), rospec(1))))


async def test_absurd_length_closes_the_connection_and_the_server_keeps_serving() -> None:
    async with running() as (sim, client):
        client.send_bytes(struct.pack(">HII", (1 << 10) | 20, 0xFFFFFF00, 99) + b"\x00" * 20)
        async with asyncio.timeout(WAIT):
            error = await client.expect(c.ErrorMessage)
            await client.closed.wait()
            await sim.wait_disconnected()
        assert error.msg_id == 99
        assert sim.stats.framing_errors == 1
        again = await RawClient.connect(sim.port)
        async with asyncio.timeout(WAIT):
            greeting = await again.expect(c.ReaderEventNotification)
        assert greeting.data.connection_attempt == c.ConnectionAttemptStatus.SUCCESS
        await again.close()


async def test_a_truncated_frame_at_eof_is_counted() -> None:
    async with running() as (sim, client):
        client.send_bytes(c.GetROSpecs(client.next_id()).encode()[:7])
        await client.writer.drain()
        client.writer.write_eof()
        async with asyncio.timeout(WAIT):
            stats = await sim.wait_for(lambda s: not s.connected)
        assert stats.framing_errors == 1
        assert stats.messages_in == 0


async def test_drop_connection_and_reconnect_keeps_the_reader_state() -> None:
    async with running() as (sim, client):
        await add_and_enable(client, rospec(4, start=c.ROSpecStartTriggerType.IMMEDIATE, n=1))
        async with asyncio.timeout(WAIT):
            await sim.wait_tag_reports(4)
        sim.drop_connection()
        async with asyncio.timeout(WAIT):
            await client.closed.wait()
            await sim.wait_for(lambda s: s.reports_discarded > 0)  # still inventorying
        assert sim.stats.drops == 1
        again = await RawClient.connect(sim.port)
        try:
            async with asyncio.timeout(WAIT):
                await sim.wait_connected(2)
            listed = await again.request(c.GetROSpecs(again.next_id()))
            assert isinstance(listed, c.GetROSpecsResponse)
            assert [(r.rospec_id, r.state) for r in listed.rospecs] == [(4, c.ROSpecState.ACTIVE)]
        finally:
            await again.close()


async def test_scheduled_drop_from_the_fault_plan() -> None:
    async with LLRPSimulator(SCENE, faults=FaultPlan(drop_after=0.05)) as sim:
        first = await RawClient.connect(sim.port)
        async with asyncio.timeout(WAIT):
            await first.closed.wait()
        second = await RawClient.connect(sim.port)
        async with asyncio.timeout(WAIT):
            await second.expect(c.ReaderEventNotification)
        assert ok(await second.request(c.GetROSpecs(second.next_id())))
        assert sim.stats.drops == 1  # drop_times defaults to one
        await first.close()
        await second.close()


async def test_go_silent_keeps_tcp_open_but_sends_nothing() -> None:
    async with running() as (sim, client):
        config = c.ReaderConfig(keepalive=c.KeepaliveSpec(1, 10))
        assert ok(await client.request(c.SetReaderConfig(client.next_id(), False, config)))
        sim.go_silent()
        sent = sim.stats.messages_out
        unanswered = asyncio.ensure_future(client.request(c.GetROSpecs(client.next_id())))
        async with asyncio.timeout(WAIT):
            await sim.wait_for(lambda s: s.suppressed_messages >= 4 and s.messages_in >= 2)
        assert sim.stats.messages_out == sent
        assert not client.closed.is_set()
        assert not unanswered.done()
        sim.resume()
        await sync(client)  # answered again after resume
        assert not unanswered.done()  # what was swallowed stays swallowed
        unanswered.cancel()


async def test_send_garbage_breaks_the_clients_framing() -> None:
    async with running() as (sim, client):
        sim.send_garbage(32)
        async with asyncio.timeout(WAIT):
            await client.closed.wait()
        assert client.framing_error is not None
        assert sim.stats.garbage_bytes_sent == 32


async def test_several_readers_are_independent() -> None:
    sims = await start_readers(SCENE, 2)
    try:
        assert len({sim.port for sim in sims}) == 2
        one = await RawClient.connect(sims[0].port)
        two = await RawClient.connect(sims[1].port)
        assert ok(await one.request(c.AddROSpec(one.next_id(), rospec(1))))
        listed = await two.request(c.GetROSpecs(two.next_id()))
        assert isinstance(listed, c.GetROSpecsResponse)
        assert listed.rospecs == ()
        assert sims[0].stats.connections == sims[1].stats.connections == 1
        await one.close()
        await two.close()
    finally:
        await asyncio.gather(*(sim.stop() for sim in sims))


async def test_replay_streams_the_recorded_reports() -> None:
    data = make_replay(generate_scene(50, seed=2), reports=30, tags_per_report=20)
    frames = c.FrameBuffer().feed(data)
    async with LLRPSimulator(SCENE, replay=[f.data for f in frames]) as sim:
        client = await RawClient.connect(sim.port)
        await add_and_enable(client, rospec(1, start=c.ROSpecStartTriggerType.IMMEDIATE))
        async with asyncio.timeout(WAIT):
            await sim.wait_for(lambda s: s.replay_messages_sent == 30)
        await sync(client)
        got = [f.data for f in client.raw if f.msg_type == c.MessageType.RO_ACCESS_REPORT]
        assert b"".join(got) == data
        assert sim.stats.reads == 0
        await client.close()


def test_replay_files(tmp_path: Path) -> None:
    path = tmp_path / "replay.bin"
    data = make_replay(generate_scene(20, seed=1), reports=5, tags_per_report=10)
    path.write_bytes(c.Keepalive(1).encode() + data)
    reports = load_replay(path)
    assert len(reports) == 5
    assert sum(len(c.decode_ro_access_report(r)) for r in reports) == 50
    path.write_bytes(data[:-3])
    with pytest.raises(ReplayError, match="partial"):
        load_replay(path)


def test_lower_power_reads_less_and_weaker() -> None:
    scene = generate_scene(200, antennas=1, seed=4, read_prob=0.9, stray_fraction=0)
    full = TagField(scene, seed=1)
    low = TagField(scene, seed=1)
    full_reads = [r for _ in range(50) for r in full.read_round(1, 0.0)]
    low_reads = [r for _ in range(50) for r in low.read_round(1, 10.0)]
    assert len(low_reads) < 0.8 * len(full_reads)
    mean = sum(r for _, r in full_reads) / len(full_reads)
    low_mean = sum(r for _, r in low_reads) / len(low_reads)
    assert 8 < mean - low_mean < 12


def test_rate_cap_drops_what_exceeds_the_budget() -> None:
    cap = RateCap(100)
    reads = [(bytes(12), -50)] * 80
    assert len(cap.admit(reads, 0.0)) == 80
    assert len(cap.admit(reads, 0.1)) == 30  # 20 left + 10 earned
    assert cap.dropped == 50
    assert RateCap(None).admit(reads, 0.0) is reads


async def test_max_reads_per_second_caps_the_simulation() -> None:
    tags = [(f"3034257bf7194e40000000{i:02x}", 1, -50.0) for i in range(1, 21)]
    scene = scene_from_tags(tags, antennas=1, rounds_per_second=200, max_reads_per_second=100)
    async with LLRPSimulator(scene) as sim:
        client = await RawClient.connect(sim.port)
        await add_and_enable(client, rospec(1, start=c.ROSpecStartTriggerType.IMMEDIATE, n=1))
        async with asyncio.timeout(WAIT):
            stats = await sim.wait_for(lambda s: s.reads_capped >= 100)
        assert stats.reads < stats.reads_capped
        await client.close()
