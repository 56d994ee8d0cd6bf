"""Interoperability: real LLRP clients (sllurp 3, pyllrp) against the simulator over TCP."""

from __future__ import annotations

import statistics
import threading
from collections import defaultdict
from typing import Any

from pyllrp import pyllrp as L  # noqa: N812 - reads like the LLRP spec
from pyllrp.LLRPConnector import LLRPConnector
from sllurp.llrp import LLRPReaderClient, LLRPReaderConfig

from simulators.llrp.threaded import SimulatorThread
from simulators.scene import Scene, generate_scene

WAIT = 10.0


def scene() -> Scene:
    return generate_scene(
        60,
        antennas=4,
        seed=21,
        read_prob=1.0,
        stray_fraction=0.5,
        stray_read_prob=1.0,
        rounds_per_second=50,
    )


def sllurp_config(**extra: Any) -> LLRPReaderConfig:
    selector = {
        "EnableAntennaID": True,
        "EnablePeakRSSI": True,
        "EnableFirstSeenTimestamp": True,
        "EnableLastSeenTimestamp": True,
        "EnableTagSeenCount": True,
    }
    return LLRPReaderConfig(
        {
            "antennas": [1, 2, 3, 4],
            "report_every_n_tags": 20,
            "tag_content_selector": selector,
            **extra,
        }
    )


def test_sllurp_inventories_the_scene_and_disconnects_cleanly() -> None:
    the_scene = scene()
    reads: list[dict[str, Any]] = []
    seen_all = threading.Event()

    def on_tags(_reader: Any, tags: list[dict[str, Any]]) -> None:
        reads.extend(tags)
        if {bytes(t["EPC"]).decode() for t in reads} >= the_scene.epcs:
            seen_all.set()

    with SimulatorThread(the_scene) as sim:
        client = LLRPReaderClient("127.0.0.1", sim.port, sllurp_config(keepalive_interval=50))
        client.add_tag_report_callback(on_tags)
        client.connect()
        try:
            assert seen_all.wait(WAIT), "sllurp did not see every EPC"
            sim.wait_for(lambda s: s.keepalive_acks >= 1, timeout=WAIT)
        finally:
            client.disconnect(timeout=WAIT)
        stats = sim.wait_for(lambda s: not s.connected and s.rospec_stops >= 1, timeout=WAIT)
    assert not client.is_alive()
    assert stats.decode_errors == stats.unsupported_messages == 0
    assert stats.rospecs_added == 1

    sightings = {(t.epc, t.antenna): t for t in the_scene.tags}
    peak: dict[str, dict[int, int]] = defaultdict(dict)
    for tag in reads:
        epc, antenna, rssi = bytes(tag["EPC"]).decode(), tag["AntennaID"], tag["PeakRSSI"]
        assert (epc, antenna) in sightings  # right antenna
        mean = sightings[(epc, antenna)].rssi
        assert abs(rssi - mean) <= 5 * the_scene.rssi_sd + 1  # plausible RSSI
        assert tag["LastSeenTimestampUTC"] >= tag["FirstSeenTimestampUTC"] > 1_600_000_000_000_000
        assert tag["TagSeenCount"] >= 1
        peak[epc][antenna] = max(rssi, peak[epc].get(antenna, -128))
    home = the_scene.best_antenna()
    strongest = {
        epc: max(by_antenna, key=by_antenna.__getitem__) for epc, by_antenna in peak.items()
    }
    assert strongest == home
    assert len({(e, a) for e, by_a in peak.items() for a in by_a}) == len(sightings)


def test_sllurp_notices_a_dropped_connection() -> None:
    gone = threading.Event()
    with SimulatorThread(scene()) as sim:
        client = LLRPReaderClient("127.0.0.1", sim.port, sllurp_config())
        client.add_disconnected_callback(lambda _reader: gone.set())
        client.connect()
        try:
            sim.wait_for(lambda s: s.tag_reports_sent > 0, timeout=WAIT)
            sim.call(lambda s: s.drop_connection())
            assert gone.wait(WAIT)
        finally:
            client.join(WAIT)
            if client.is_alive():
                client.hard_disconnect()
        assert sim.stats.drops == 1
    assert not client.is_alive()


def test_pyllrp_drives_an_inventory() -> None:
    the_scene = scene()
    streamed: list[dict[str, Any]] = []
    enough = threading.Event()

    def on_report(_conn: Any, message: Any) -> None:
        streamed.extend(message.getTagData())
        if len(streamed) >= 200:
            enough.set()

    with SimulatorThread(the_scene) as sim:
        conn = LLRPConnector()
        greeting = conn.connect("127.0.0.1", sim.port)
        assert greeting.getFirstParameterByClass(L.ConnectionAttemptEvent_Parameter).Status == 0
        assert conn.transact(L.SET_READER_CONFIG_Message(ResetToFactoryDefault=True)).success()
        add = L.GetBasicAddRospecMessage(MessageID=10, ROSpecID=123, antennas=[1, 2])
        add.getFirstParameterByClass(L.ROReportSpec_Parameter).N = 1  # report every tag
        add.getFirstParameterByClass(L.TagReportContentSelector_Parameter).EnablePeakRSSI = True
        assert conn.transact(add).success()
        conn.addHandler(L.RO_ACCESS_REPORT_Message, on_report)
        assert conn.transact(L.ENABLE_ROSPEC_Message(MessageID=11, ROSpecID=123)).success()
        conn.startListener()
        try:
            assert enough.wait(WAIT)
        finally:
            conn.stopListener()
        assert conn.transact(L.DISABLE_ROSPEC_Message(MessageID=12, ROSpecID=123)).success()
        assert conn.transact(L.DELETE_ROSPEC_Message(MessageID=13, ROSpecID=0)).success()
        response = conn.disconnect()
        assert response.success()
        sim.wait_for(lambda s: s.closes == 1 and not s.connected, timeout=WAIT)

    home = the_scene.best_antenna()
    assert {t["AntennaID"] for t in streamed} == {1, 2}
    for tag in streamed:
        epc = f"{tag['EPC']:024x}"
        assert epc in the_scene.epcs
        assert (epc, tag["AntennaID"]) in {(t.epc, t.antenna) for t in the_scene.tags}
        assert tag["Timestamp"] > 1_600_000_000_000_000
    strong = [t["PeakRSSI"] for t in streamed if home.get(f"{t['EPC']:024x}") == t["AntennaID"]]
    assert -70 < statistics.mean(strong) < -40
