"""The real driver on captured reader reports: simulator replays them over TCP → TagReads.

sllurp runs the session (connect, configure, ROSpec, keepalive); the reports it streams are
real captures from ``../shared/realdata/llrp/``, decoded by our codec in the driver.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from drivers.base import TagRead
from drivers.llrp.driver import LlrpReader, LlrpSettings
from simulators.llrp.server import LLRPSimulator
from simulators.shelf import shelf_scene
from tests.drivers.llrp.realdata import LTK_SESSION, SLLURP_STREAM, reports

LONG_EPC = bytes.fromhex("1fb41f712ac9c37ab79d618173188324001a")


async def reads_through_driver(
    replay: Sequence[bytes], expected: int
) -> tuple[list[TagRead], LlrpReader]:
    """Connect a real driver to a simulator replaying ``replay``; collect ``expected`` reads."""
    async with LLRPSimulator(shelf_scene(tags_per_location=1), replay=replay) as sim:
        reader = LlrpReader(
            LlrpSettings(name="dock", host="127.0.0.1", port=sim.port, antennas=(1, 2))
        )
        await reader.start()
        try:
            assert await reader.wait_connected(10)
            await reader.start_inventory()
            reads: list[TagRead] = []
            while len(reads) < expected:
                reads += await reader.queue.get()
            await reader.stop_inventory()
            assert reader.connected
        finally:
            await reader.stop()
    return reads, reader


async def test_captured_impinj_stream_with_a_144_bit_epc() -> None:
    reads, reader = await reads_through_driver(reports(SLLURP_STREAM), 45)
    assert len(reads) == 45
    assert Counter(r.epc.hex() for r in reads) == {
        "3005fb63ac1f3841ec880467": 22,
        "300833b2ddd906c000000000": 22,
        LONG_EPC.hex(): 1,
    }
    (long_read,) = [r for r in reads if r.epc == LONG_EPC]
    assert (long_read.reader, long_read.antenna, long_read.rssi, long_read.count) == (
        "dock",
        1,
        -17,
        1,
    )
    health = reader.health()
    assert health.extra["llrp_malformed"] == 0
    assert health.reads == 45
    assert reader.failures == 0


async def test_captured_impinj_session_reports_with_tag_seen_counts() -> None:
    replay = reports(LTK_SESSION)
    reads, reader = await reads_through_driver(replay, 130)
    assert len(reads) == 130
    first = reads[0]
    assert (first.epc.hex(), first.antenna, first.rssi, first.count) == (
        "300833b2ddd9cafebabe801e",
        2,
        -47,
        740,
    )
    assert first.t == 1173287024.216755  # LastSeenTimestampUTC, reader clock
    assert sum(r.count for r in reads) > 130
    assert reader.health().extra["llrp_malformed"] == 0


async def test_a_malformed_report_is_counted_and_the_connection_goes_on() -> None:
    good = reports(SLLURP_STREAM)[:3]
    broken = bytearray(good[0])
    assert broken[27] == 0x81  # the AntennaID TV inside the TagReportData
    broken[27] = 0xFD  # a TV type no parameter has
    reads, reader = await reads_through_driver([good[0], bytes(broken), good[1], good[2]], 3)
    assert [r.epc for r in reads] == [
        bytes.fromhex(tag)
        for tag in (
            "3005fb63ac1f3841ec880467",
            "300833b2ddd906c000000000",
            "3005fb63ac1f3841ec880467",
        )
    ]
    health = reader.health()
    assert health.extra["llrp_malformed"] == 1
    assert reader.failures == 0
