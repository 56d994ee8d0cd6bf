"""The sink builds counts and scans as the contract's classes: the bytes the dict builders made.

Until the gateway built its messages as typed classes, the sink handed dicts to
``contract.count_payload`` / ``contract.scan_payload`` and the outbox added the sequence
fields with ``contract.with_sequence``. The expected bytes here are made that old way, by
hand, for a representative RFID count (SKUs and non-SGTIN tags), a fused count whose figures
disagree, and a finished scan with a failed reader and a camera.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from edgecount import contract
from gateway.config import GatewayConfig
from gateway.counts import CameraOutcome, LocationCount, ReaderOutcome, ScanResult
from gateway.publisher import MemoryPublisher
from gateway.sink import CountSink
from gateway.vision.fusion import Figure, fuse

SITE, GW, ZONE = "dc-east", "gw-1", "A"
CONFIG = GatewayConfig.model_validate(
    {
        "site": SITE,
        "gateway_id": GW,
        "readers": [
            {"type": "llrp", "name": "r1", "host": "h", "antennas": {1: "A-1", 2: "A-2"}},
            {"type": "llrp", "name": "r2", "host": "h", "antennas": {1: "A-3"}},
        ],
        "zones": {ZONE: {"readers": ["r1", "r2"]}},
    }
)
STARTED = datetime(2026, 5, 1, 2, 0, 0, 123000, tzinfo=UTC)
ENDED = datetime(2026, 5, 1, 2, 0, 30, 456000, tzinfo=UTC)
GTIN, OTHER = "00614141123452", "80614141123458"
EPCS = ["e280689400004010", "300833b2ddd9014000000001", "e280689400004002"]


def old_bytes(payload: dict[str, Any], seq: int) -> bytes:
    """What the outbox stored for a dict draft: sequenced, validated, compact JSON."""
    return contract.encode(contract.with_sequence(payload, seq))


def sink() -> tuple[CountSink, MemoryPublisher]:
    publisher = MemoryPublisher(site=SITE, gateway_id=GW)
    made = CountSink(CONFIG, ZONE, publisher)
    made.begin("scan-1", "req-7")
    return made, publisher


async def test_an_rfid_count_is_the_same_bytes_as_from_the_dict_builder() -> None:
    count = LocationCount(
        "A-1", skus={OTHER: 2, GTIN: 41, contract.UNKNOWN_SKU: 3}, unknown_epcs=list(EPCS)
    )
    made, publisher = sink()
    await made.publish_count(count, ENDED)
    old = contract.count_payload(
        gateway=GW,
        site=SITE,
        zone=ZONE,
        location="A-1",
        scan_id="scan-1",
        observed_at="2026-05-01T02:00:30.456Z",
        items=[
            {"sku": OTHER, "qty": 2},
            {"sku": GTIN, "qty": 41},
            {"sku": contract.UNKNOWN_SKU, "qty": 3, "epcs": sorted(EPCS)},
        ],
    )
    (sent,) = publisher.published(contract.CountMessage)
    assert contract.encode_message(sent) == old_bytes(old, 1)
    assert [item.sku for item in sent.items] == [GTIN, OTHER, contract.UNKNOWN_SKU]


async def test_a_fused_count_is_the_same_bytes_as_from_the_dict_builder() -> None:
    rfid = LocationCount("A-2", skus={GTIN: 10})
    vision = Figure(
        (contract.CountItem(sku=GTIN, qty=16, confidence=0.81234),),
        complete=True,
        confidence=0.81234,
    )
    fused = fuse(
        Figure(rfid.count_items(), complete=True), vision, CONFIG.zones[ZONE].fusion_tolerance
    )
    assert fused.disagreement
    rfid.items, rfid.fusion, rfid.source = fused.items, fused.fusion, contract.CountSource.FUSED
    made, publisher = sink()
    await made.publish_count(rfid, ENDED)
    old = contract.count_payload(
        gateway=GW,
        site=SITE,
        zone=ZONE,
        location="A-2",
        scan_id="scan-1",
        observed_at="2026-05-01T02:00:30.456Z",
        source="fused",
        items=[{"sku": GTIN, "qty": 10, "confidence": 0.5}],
        fusion={
            "rfid": {"total": 10, "complete": True},
            "vision": {"total": 16, "complete": True, "confidence": 0.8123},
            "disagreement": True,
            "tolerance": {"abs": 1, "pct": 0.05},
        },
    )
    (sent,) = publisher.published(contract.CountMessage)
    assert contract.encode_message(sent) == old_bytes(old, 1)


async def test_a_scan_is_the_same_bytes_as_from_the_dict_builder() -> None:
    readers = {
        "r1": ReaderOutcome("r1", reads=1234),
        "r2": ReaderOutcome("r2", ok=False, reads=7, error="connection lost"),
    }
    result = ScanResult(
        scan_id="scan-1",
        zone=ZONE,
        started_at=STARTED,
        ended_at=ENDED,
        locations={"A-3": LocationCount("A-3", complete=False)},
        readers=readers,
        cameras={"cam": CameraOutcome("cam", frames=3)},
    )
    made, publisher = sink()
    await made.publish_started(STARTED, readers)
    await made.publish_result(result)
    common: dict[str, Any] = {
        "gateway": GW,
        "site": SITE,
        "zone": ZONE,
        "scan_id": "scan-1",
        "started_at": "2026-05-01T02:00:00.123Z",
        "locations": ["A-1", "A-2", "A-3"],
        "request_id": "req-7",
    }
    report = [
        {"name": "r1", "ok": True, "reads": 1234},
        {"name": "r2", "ok": False, "reads": 7, "error": "connection lost"},
    ]
    started = contract.scan_payload(state="started", readers=report, **common)
    ended = contract.scan_payload(
        state="incomplete",
        ended_at="2026-05-01T02:00:30.456Z",
        incomplete_locations=["A-3"],
        readers=report,
        cameras=[{"name": "cam", "ok": True, "frames": 3}],
        **common,
    )
    first, last = publisher.published(contract.ScanMessage)
    assert contract.encode_message(first) == old_bytes(started, 1)
    assert contract.encode_message(last) == old_bytes(ended, 3)
    assert last.state is contract.ScanState.INCOMPLETE
    assert result.published
