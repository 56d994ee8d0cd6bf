"""The simulator as an LLRP 1.0.1 reader: requests, ROSpec semantics, reports, events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from drivers.llrp import codec as c
from simulators.llrp.server import LLRPSimulator
from simulators.llrp.stats import SimStats
from simulators.scene import Scene, scene_from_tags
from tests.simulators.llrp.llrp_client import RawClient, ok, rospec

E1, E2, E3 = (f"3034257bf7194e40000000{i:02x}" for i in (1, 2, 3))
SCENE = scene_from_tags(
    [(E1, 1, -50.0), (E2, 2, -55.0), (E3, 3, -60.0), (E1, 2, -75.0)],
    antennas=4,
    seed=3,
    rounds_per_second=200,
)
WAIT = 5.0


@contextlib.asynccontextmanager
async def running(scene: Scene = SCENE) -> AsyncIterator[tuple[LLRPSimulator, RawClient]]:
    """A simulator and a connected client (greeting consumed)."""
    async with LLRPSimulator(scene) as sim:
        client = await RawClient.connect(sim.port)
        try:
            async with asyncio.timeout(WAIT):
                greeting = await client.expect(c.ReaderEventNotification)
            assert greeting.data.connection_attempt == c.ConnectionAttemptStatus.SUCCESS
            assert greeting.data.timestamp_us > 1_600_000_000_000_000
            yield sim, client
        finally:
            await client.close()


async def add_and_enable(client: RawClient, spec: c.ROSpec) -> None:
    assert ok(await client.request(c.AddROSpec(client.next_id(), spec)))
    assert ok(await client.request(c.EnableROSpec(client.next_id(), spec.rospec_id)))


async def sync(client: RawClient) -> None:
    """Round-trip a request: everything the reader sent before it has then arrived."""
    assert ok(await client.request(c.GetROSpecs(client.next_id())))


def reports_in(frames: list[c.Frame]) -> list[c.TagTuple]:
    return [
        t
        for f in frames
        if f.msg_type == c.MessageType.RO_ACCESS_REPORT
        for t in c.decode_ro_access_report(f.data)
    ]


async def test_second_client_is_refused_and_the_first_is_told() -> None:
    async with running() as (sim, first):
        second = await RawClient.connect(sim.port)
        async with asyncio.timeout(WAIT):
            refusal = await second.expect(c.ReaderEventNotification)
            await second.closed.wait()
            notice = await first.expect(c.ReaderEventNotification)
        status = c.ConnectionAttemptStatus
        assert refusal.data.connection_attempt == status.FAILED_CLIENT_INITIATED_CONNECTION_EXISTS
        assert notice.data.connection_attempt == status.ANOTHER_CONNECTION_ATTEMPTED
        assert sim.stats.rejected_connections == 1
        assert ok(await first.request(c.GetROSpecs(first.next_id())))  # first still served
        await second.close()


async def test_capabilities() -> None:
    async with running() as (_, client):
        caps = await client.request(c.GetReaderCapabilities(client.next_id(), 0))
        assert isinstance(caps, c.GetReaderCapabilitiesResponse)
        assert caps.general is not None
        assert caps.general.max_antennas == 4
        assert caps.regulatory is not None
        assert caps.regulatory.uhf_band is not None
        power = caps.regulatory.uhf_band.power_table
        assert (power[0].power_cdbm, power[-1].power_cdbm, len(power)) == (1000, 3250, 91)
        assert caps.llrp is not None
        assert caps.c1g2 is not None
        only_general = await client.request(c.GetReaderCapabilities(client.next_id(), 1))
        assert isinstance(only_general, c.GetReaderCapabilitiesResponse)
        assert only_general.general is not None
        assert only_general.regulatory is None
        bad = await client.request(c.GetReaderCapabilities(client.next_id(), 9))
        assert isinstance(bad, c.GetReaderCapabilitiesResponse)
        assert bad.status.code == c.StatusCode.M_FIELD_ERROR


async def test_reader_config_set_get_and_factory_reset() -> None:
    async with running() as (_, client):
        config = c.ReaderConfig(
            keepalive=c.KeepaliveSpec(1, 30_000),
            event_spec=c.ReaderEventNotificationSpec((c.EventNotificationState(2, True),)),
            antenna_configurations=(c.AntennaConfiguration(2, None, c.RFTransmitter(1, 1, 41)),),
        )
        assert ok(await client.request(c.SetReaderConfig(client.next_id(), False, config)))
        got = await client.request(c.GetReaderConfig(client.next_id(), 0, 0, 0, 0))
        assert isinstance(got, c.GetReaderConfigResponse)
        assert got.config.keepalive == c.KeepaliveSpec(1, 30_000)
        assert got.config.event_spec is not None
        assert c.EventNotificationState(2, True) in got.config.event_spec.states
        tx = {a.antenna_id: a.rf_transmitter for a in got.config.antenna_configurations}
        assert tx[2] == c.RFTransmitter(1, 1, 41)
        assert tx[1] == c.RFTransmitter(1, 1, 91)
        assert got.config.identification is not None
        bad_power = c.ReaderConfig(
            antenna_configurations=(c.AntennaConfiguration(1, None, c.RFTransmitter(1, 1, 999)),)
        )
        refused = await client.request(c.SetReaderConfig(client.next_id(), False, bad_power))
        assert isinstance(refused, c.SetReaderConfigResponse)
        assert refused.status.code == c.StatusCode.M_PARAMETER_ERROR
        assert refused.status.parameter_error is not None
        assert refused.status.parameter_error.parameter_type == c.ParamType.RF_TRANSMITTER
        assert ok(await client.request(c.AddROSpec(client.next_id(), rospec(5))))
        assert ok(await client.request(c.SetReaderConfig(client.next_id(), True)))
        after = await client.request(c.GetReaderConfig(client.next_id(), 0, 8, 0, 0))
        assert isinstance(after, c.GetReaderConfigResponse)
        assert after.config.keepalive == c.KeepaliveSpec(0, 0)
        assert after.config.antenna_configurations == ()
        specs = await client.request(c.GetROSpecs(client.next_id()))
        assert isinstance(specs, c.GetROSpecsResponse)
        assert specs.rospecs == ()


async def test_rospec_lifecycle_flushes_before_the_stop_response() -> None:
    async with running() as (sim, client):
        spec = rospec(1)
        await add_and_enable(client, spec)
        again = await client.request(c.AddROSpec(client.next_id(), spec))
        assert not ok(again)
        listed = await client.request(c.GetROSpecs(client.next_id()))
        assert isinstance(listed, c.GetROSpecsResponse)
        assert [r.state for r in listed.rospecs] == [c.ROSpecState.INACTIVE]
        assert sim.stats.rospec_starts == 0  # Null start trigger: waits for START_ROSPEC
        assert ok(await client.request(c.StartROSpec(client.next_id(), 1)))
        async with asyncio.timeout(WAIT):
            await sim.wait_for(lambda s: s.reads >= 40)
        assert sim.stats.reports_sent == 0  # End_Of_ROSpec with N = 0: nothing yet
        stop_id = client.next_id()
        assert ok(await client.request(c.StopROSpec(stop_id, 1)))
        kinds = [f.msg_type for f in client.raw]
        response_at = next(i for i, f in enumerate(client.raw) if f.msg_id == stop_id)
        assert c.MessageType.RO_ACCESS_REPORT in kinds[:response_at]
        tags = reports_in(client.raw)
        assert {(epc, ant) for epc, ant, *_ in tags} == {(E1, 1), (E2, 2), (E3, 3), (E1, 2)}
        listed = await client.request(c.GetROSpecs(client.next_id()))
        assert isinstance(listed, c.GetROSpecsResponse)
        assert listed.rospecs[0].state == c.ROSpecState.INACTIVE
        assert ok(await client.request(c.DeleteROSpec(client.next_id(), 0)))
        empty = await client.request(c.GetROSpecs(client.next_id()))
        assert isinstance(empty, c.GetROSpecsResponse)
        assert empty.rospecs == ()


async def test_requests_that_a_reader_refuses() -> None:
    async with running() as (_, client):

        async def refused(msg: c.Message) -> c.LLRPStatus:
            response = await client.request(msg)
            status = getattr(response, "status", None)
            assert isinstance(status, c.LLRPStatus), (msg, response)
            assert not status.ok, (msg, response)
            return status

        await refused(c.StartROSpec(client.next_id(), 4))
        await refused(c.StartROSpec(client.next_id(), 0))
        await refused(c.DeleteROSpec(client.next_id(), 4))
        await refused(c.AddROSpec(client.next_id(), rospec(0)))
        await refused(c.AddROSpec(client.next_id(), rospec(2, antennas=(9,))))
        gpi = c.ROSpec(3, boundary=c.ROBoundarySpec(c.ROSpecStartTrigger(3)))
        await refused(c.AddROSpec(client.next_id(), gpi))
        active = c.ROSpec(4, state=c.ROSpecState.ACTIVE)
        await refused(c.AddROSpec(client.next_id(), active))
        assert ok(await client.request(c.AddROSpec(client.next_id(), rospec(5))))
        status = await refused(c.StartROSpec(client.next_id(), 5))  # still disabled
        assert status.field_error is not None
        await refused(c.StopROSpec(client.next_id(), 5))


async def test_immediate_start_honours_the_aispec_antennas() -> None:
    async with running() as (sim, client):
        spec = rospec(1, antennas=(2,), start=c.ROSpecStartTriggerType.IMMEDIATE, n=1)
        await add_and_enable(client, spec)
        async with asyncio.timeout(WAIT):
            await sim.wait_rospec_started()
            await sim.wait_tag_reports(20)
            await sync(client)
        tags = reports_in(client.raw)
        assert {(epc, ant) for epc, ant, *_ in tags} == {(E2, 2), (E1, 2)}
        strong = [rssi or 0 for epc, _, rssi, *_ in tags if epc == E2]
        weak = [rssi or 0 for epc, _, rssi, *_ in tags if epc == E1]
        assert min(strong) > max(weak)  # -55 +- 2 dB against -75 +- 2 dB


async def test_durations_and_events_in_order() -> None:
    async with running() as (sim, client):
        events = c.ReaderEventNotificationSpec(
            (c.EventNotificationState(2, True), c.EventNotificationState(6, True))
        )
        config = c.ReaderConfig(event_spec=events)
        assert ok(await client.request(c.SetReaderConfig(client.next_id(), False, config)))
        spec = rospec(
            7,
            start=c.ROSpecStartTriggerType.IMMEDIATE,
            stop=c.ROSpecStopTrigger(c.ROSpecStopTriggerType.DURATION, 300),
            aispec_stop=c.AISpecStopTrigger(c.AISpecStopTriggerType.DURATION, 100),
            trigger=c.ROReportTriggerType.UPON_N_TAGS_OR_END_OF_AISPEC,
        )
        await add_and_enable(client, spec)
        async with asyncio.timeout(WAIT):
            await sim.wait_rospec_stopped()
            await sync(client)
        notices = [m for m in client.drain_inbox() if isinstance(m, c.ReaderEventNotification)]
        rospec_events = [n.data.rospec_event for n in notices if n.data.rospec_event]
        assert [e.event_type for e in rospec_events] == [
            c.ROSpecEventType.START,
            c.ROSpecEventType.END,
        ]
        ai_events = [n.data.aispec_event for n in notices if n.data.aispec_event]
        assert 2 <= len(ai_events) <= 3  # 300 ms of 100 ms AISpecs
        assert sim.stats.reports_sent >= len(ai_events)
        listed = await client.request(c.GetROSpecs(client.next_id()))
        assert isinstance(listed, c.GetROSpecsResponse)
        assert listed.rospecs[0].state == c.ROSpecState.INACTIVE


async def test_tag_observation_trigger_loops_the_aispec() -> None:
    async with running() as (sim, client):
        observe = c.AISpecStopTrigger(
            c.AISpecStopTriggerType.TAG_OBSERVATION,
            tag_observation=c.TagObservationTrigger(0, 3, 0, 0, 1000),
        )
        spec = rospec(
            1,
            start=c.ROSpecStartTriggerType.IMMEDIATE,
            aispec_stop=observe,
            trigger=c.ROReportTriggerType.UPON_N_TAGS_OR_END_OF_AISPEC,
        )
        await add_and_enable(client, spec)
        async with asyncio.timeout(WAIT):
            await sim.wait_for(lambda s: s.reports_sent >= 5)
            await sync(client)
        reports = [m for m in client.drain_inbox() if isinstance(m, c.ROAccessReport)]
        assert len(reports) >= 5
        # Every round sees all 3 EPCs, so every AISpec execution is one round long.
        assert all(t.tag_seen_count == 1 for r in reports for t in r.tag_reports)
        assert all(len(r.tag_reports) == 4 for r in reports)


async def test_tag_observation_timeout_ends_the_aispec() -> None:
    async with running() as (sim, client):
        observe = c.AISpecStopTrigger(
            c.AISpecStopTriggerType.TAG_OBSERVATION,
            tag_observation=c.TagObservationTrigger(0, 100, 0, 0, 40),  # 100 EPCs never come
        )
        spec = rospec(
            1,
            start=c.ROSpecStartTriggerType.IMMEDIATE,
            aispec_stop=observe,
            trigger=c.ROReportTriggerType.UPON_N_TAGS_OR_END_OF_AISPEC,
        )
        await add_and_enable(client, spec)
        async with asyncio.timeout(WAIT):
            await sim.wait_for(lambda s: s.reports_sent >= 3)
            await sync(client)
        reports = [m for m in client.drain_inbox() if isinstance(m, c.ROAccessReport)]
        counts = [t.tag_seen_count or 0 for r in reports for t in r.tag_reports]
        assert max(counts) > 1  # each 40 ms AISpec spans several 5 ms rounds


async def test_upon_n_tags_sends_reports_of_n() -> None:
    async with running() as (sim, client):
        await add_and_enable(client, rospec(1, start=c.ROSpecStartTriggerType.IMMEDIATE, n=3))
        async with asyncio.timeout(WAIT):
            await sim.wait_for(lambda s: s.reports_sent >= 4)
            await sync(client)
        reports = [m for m in client.drain_inbox() if isinstance(m, c.ROAccessReport)]
        assert reports
        assert all(len(r.tag_reports) == 3 for r in reports)


async def test_trigger_none_buffers_until_get_report_and_accumulates() -> None:
    async with running() as (sim, client):
        spec = rospec(
            1, start=c.ROSpecStartTriggerType.IMMEDIATE, trigger=c.ROReportTriggerType.NONE
        )
        await add_and_enable(client, spec)
        async with asyncio.timeout(WAIT):
            await sim.wait_for(lambda s: s.reads >= 4 * 10)
        assert ok(await client.request(c.DisableROSpec(client.next_id(), 1)))
        assert sim.stats.reports_sent == 0
        request_id = client.next_id()
        client.send_bytes(c.GetReport(request_id).encode())
        async with asyncio.timeout(WAIT):
            report = await client.expect(c.ROAccessReport)
        assert report.msg_id == request_id
        by_key = {(t.epc.hex(), t.antenna_id): t for t in report.tag_reports}
        assert set(by_key) == {(E1, 1), (E2, 2), (E3, 3), (E1, 2)}
        rounds = sim.stats.reads // 4
        for tag in by_key.values():
            assert tag.tag_seen_count == rounds  # read_prob 1: one read per round
            assert tag.first_seen_utc is not None
            assert tag.last_seen_utc is not None
            assert tag.first_seen_utc < tag.last_seen_utc
        peak = by_key[(E1, 1)].peak_rssi
        assert peak is not None
        assert peak >= -50


async def test_content_selector_is_honoured() -> None:
    async with running() as (sim, client):
        selector = c.TagReportContentSelector(enable_antenna_id=True)
        spec = rospec(1, start=c.ROSpecStartTriggerType.IMMEDIATE, n=4, selector=selector)
        await add_and_enable(client, spec)
        async with asyncio.timeout(WAIT):
            await sim.wait_tag_reports(4)
            await sync(client)
        tags = reports_in(client.raw)
        assert tags
        assert all(t[1] is not None and t[2:] == (None, None, None, None) for t in tags)


async def test_delete_and_disable_flush_a_running_rospec() -> None:
    async with running() as (sim, client):
        for request in (c.DisableROSpec, c.DeleteROSpec):
            spec = rospec(3, start=c.ROSpecStartTriggerType.IMMEDIATE)
            if request is c.DisableROSpec:
                await add_and_enable(client, spec)
            else:
                assert ok(await client.request(c.EnableROSpec(client.next_id(), 3)))
            async with asyncio.timeout(WAIT):
                goal = sim.stats.reads + 8

                def enough(stats: SimStats, goal: int = goal) -> bool:
                    return stats.reads >= goal

                await sim.wait_for(enough)
            before = sim.stats.reports_sent
            assert ok(await client.request(request(client.next_id(), 0)))
            assert sim.stats.reports_sent == before + 1


async def test_keepalives_and_acks() -> None:
    async with running() as (sim, client):
        config = c.ReaderConfig(keepalive=c.KeepaliveSpec(1, 20))
        assert ok(await client.request(c.SetReaderConfig(client.next_id(), False, config)))
        async with asyncio.timeout(WAIT):
            keepalive = await client.expect(c.Keepalive)
            client.send_bytes(c.KeepaliveAck(keepalive.msg_id).encode())
            await sim.wait_for(lambda s: s.keepalive_acks >= 1)
        assert sim.stats.keepalives_sent >= 1


async def test_access_specs() -> None:
    async with running() as (_, client):
        spec = c.AccessSpec(7)
        assert ok(await client.request(c.AddAccessSpec(client.next_id(), spec)))
        assert not ok(await client.request(c.AddAccessSpec(client.next_id(), spec)))
        assert not ok(
            await client.request(c.AddAccessSpec(client.next_id(), c.AccessSpec(8, rospec_id=42)))
        )
        assert ok(await client.request(c.EnableAccessSpec(client.next_id(), 7)))
        listed = await client.request(c.GetAccessSpecs(client.next_id()))
        assert isinstance(listed, c.GetAccessSpecsResponse)
        assert [(a.access_spec_id, a.enabled) for a in listed.access_specs] == [(7, True)]
        assert not ok(await client.request(c.DisableAccessSpec(client.next_id(), 9)))
        assert ok(await client.request(c.DeleteAccessSpec(client.next_id(), 0)))
        empty = await client.request(c.GetAccessSpecs(client.next_id()))
        assert isinstance(empty, c.GetAccessSpecsResponse)
        assert empty.access_specs == ()


async def test_periodic_start_trigger_restarts_the_rospec() -> None:
    async with running() as (sim, client):
        spec = rospec(
            9,
            stop=c.ROSpecStopTrigger(c.ROSpecStopTriggerType.DURATION, 30),
            specs=(c.AISpec((1,), c.AISpecStopTrigger()),),
        )
        periodic = c.ROSpec(
            9,
            boundary=c.ROBoundarySpec(
                c.ROSpecStartTrigger(2, c.PeriodicTriggerValue(0, 100)), spec.boundary.stop
            ),
            specs=spec.specs,
            report_spec=spec.report_spec,
        )
        await add_and_enable(client, periodic)
        async with asyncio.timeout(WAIT):
            await sim.wait_rospec_stopped(2)
        assert sim.stats.rospec_starts >= 2


async def test_close_connection() -> None:
    async with running() as (sim, client):
        response = await client.request(c.CloseConnection(client.next_id()))
        assert isinstance(response, c.CloseConnectionResponse)
        assert response.status.ok
        async with asyncio.timeout(WAIT):
            await client.closed.wait()
            await sim.wait_disconnected()
        assert sim.stats.closes == 1
