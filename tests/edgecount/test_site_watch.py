"""SiteWatcher reads the site's messages as the typed classes: on the shared broker."""

from __future__ import annotations

import uuid

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgecount import contract
from edgecount.site_watch import SiteWatcher
from tests.conftest import BrokerAddress, eventually

GW, ZONE, LOC = "gw-watch", "Z1", "Z1-01-01-1"
WHEN = "2024-05-01T02:00:00.000Z"


def _count(site: str, seq: int, *, complete: bool, vision_total: int) -> bytes:
    fusion = {
        "rfid": {"total": 3, "complete": True},
        "vision": {"total": vision_total, "complete": True, "confidence": 0.9},
        "disagreement": vision_total != 3,
        "tolerance": {"abs": 0, "pct": 0.1},
    }
    draft = contract.count_payload(
        gateway=GW,
        site=site,
        zone=ZONE,
        location=LOC,
        scan_id="s-1",
        items=[{"sku": "B", "qty": 2}, {"sku": "A", "qty": 1}],
        source="fused",
        complete=complete,
        observed_at=WHEN,
        fusion=fusion,
    )
    return contract.encode(contract.with_sequence(draft, seq))


def _scan(site: str, seq: int, state: str) -> bytes:
    draft = contract.scan_payload(
        gateway=GW,
        site=site,
        zone=ZONE,
        scan_id="s-1",
        state=state,
        started_at=WHEN,
        ended_at=None if state == "started" else WHEN,
        locations=[LOC],
        incomplete_locations=[LOC] if state == "incomplete" else [],
        request_id="recount-1",
    )
    return contract.encode(contract.with_sequence(draft, seq))


async def test_the_watcher_notes_counts_scans_status_and_invalid_payloads(
    broker: BrokerAddress, unique_site: str
) -> None:
    said: list[str] = []
    watcher = SiteWatcher(broker.host, broker.port, unique_site, GW, said.append)
    sender = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"watch-test-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    sender.connect(broker.host, broker.port)
    sender.loop_start()
    try:
        assert watcher.wait_subscribed(10.0)
        count_topic = contract.count_topic(unique_site, ZONE, LOC)
        status = contract.status_payload(gateway=GW, site=unique_site, state="online", at=WHEN)
        publish = [
            (contract.status_topic(unique_site, GW), contract.encode(status)),
            (count_topic, _count(unique_site, 1, complete=False, vision_total=3)),
            (count_topic, _count(unique_site, 2, complete=True, vision_total=2)),
            (contract.scan_topic(unique_site, ZONE), _scan(unique_site, 3, "started")),
            (contract.scan_topic(unique_site, ZONE), _scan(unique_site, 4, "incomplete")),
            (count_topic, b'{"schema": "edgecount.count/1"}'),
        ]
        for topic, raw in publish:
            sender.publish(topic, raw, qos=1).wait_for_publish(5.0)

        assert watcher.online.wait(10.0)
        await eventually(lambda: watcher.scanned(["recount-1"]), 10.0, "the scan")
        await eventually(lambda: len(watcher.invalid) == 1, 10.0, "the invalid payload")
        await eventually(lambda: len(watcher.all_counts) == 1, 10.0, "the counts")
    finally:
        sender.disconnect()
        sender.loop_stop()
        watcher.close()

    assert watcher.first_counts == {LOC: {"A": 1, "B": 2}}
    assert watcher.latest_counts == {LOC: {"A": 1, "B": 2}}
    assert watcher.all_counts == [(ZONE, LOC, {"A": 1, "B": 2})]  # the complete one only
    assert watcher.vision_totals == [(LOC, 3), (LOC, 2)]
    assert watcher.ended() == {"s-1": 1}  # the started scan is not an end
    (scan,) = watcher.scans
    assert scan.state is contract.ScanState.INCOMPLETE
    assert (scan.request_id, scan.locations, scan.incomplete) == ("recount-1", 1, 1)
    assert len(said) == 1
    assert "zone Z1 scanned (recount): 1 locations, 1 incomplete" in said[0]
    assert watcher.invalid[0].startswith(f"{count_topic}: ")
    assert watcher.retained == {count_topic, contract.status_topic(unique_site, GW)}
