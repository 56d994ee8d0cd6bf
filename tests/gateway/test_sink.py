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

import pytest

from edgecount import contract
from gateway.config import GatewayConfig
from gateway.counts import CameraOutcome, LocationCount, ReaderOutcome, ScanResult
from gateway.publisher import Batch, MemoryPublisher, Outgoing
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


class CallsPublisher(MemoryPublisher):
    """Records how messages were handed over: ("one", schema) or ("many", count)."""

    def __init__(self) -> None:
        super().__init__(site=SITE, gateway_id=GW)
        self.calls: list[tuple[str, object]] = []

    async def publish(self, topic: str, message: Outgoing, *, retain: bool) -> contract.Message:
        self.calls.append(("one", type(message).__name__))
        return await super().publish(topic, message, retain=retain)

    async def publish_many(self, messages: Batch, *, retain: bool) -> list[contract.Message]:
        self.calls.append(("many", len(messages)))
        return await super().publish_many(messages, retain=retain)


def result_of(*locations: LocationCount) -> ScanResult:
    return ScanResult(
        scan_id="scan-1",
        zone=ZONE,
        started_at=STARTED,
        ended_at=ENDED,
        locations={count.location: count for count in locations},
        readers={"r1": ReaderOutcome("r1"), "r2": ReaderOutcome("r2")},
    )


async def test_the_counts_left_at_the_end_go_out_as_one_batch_before_the_scan() -> None:
    publisher = CallsPublisher()
    made = CountSink(CONFIG, ZONE, publisher)
    made.begin("scan-1", None)
    await made.publish_counts([LocationCount("A-2", skus={GTIN: 1})] * 2, STARTED)
    result = result_of(*(LocationCount(f"A-{n}", skus={GTIN: n}) for n in (1, 2, 3)))
    await made.publish_result(result)
    assert publisher.calls == [("many", 1), ("many", 2), ("one", "ScanDraft")]
    sent = [(type(s.message).__name__, s.seq) for s in publisher.messages]
    assert sent == [
        ("CountMessage", 1),
        ("CountMessage", 2),
        ("CountMessage", 3),
        ("ScanMessage", 4),
    ]
    counts = publisher.published(contract.CountMessage)
    assert [(c.location, c.total) for c in counts] == [("A-2", 1), ("A-1", 1), ("A-3", 3)]
    assert made.published == {"A-1", "A-2", "A-3"}
    assert result.published
    await made.publish_count(LocationCount("A-1", skus={GTIN: 9}), ENDED)
    assert len(publisher.messages) == 4, "a location goes out once per scan"


async def test_a_rejected_count_keeps_the_others_and_holds_back_the_scan_message() -> None:
    made, publisher = sink()
    broken = LocationCount("A-2", skus={GTIN: -1})  # a negative quantity breaks the contract
    result = result_of(LocationCount("A-1", skus={GTIN: 1}), broken, LocationCount("A-3"))
    with pytest.raises(contract.ContractError, match="minimum"):
        await made.publish_result(result)
    assert [c.location for c in publisher.published(contract.CountMessage)] == ["A-1", "A-3"]
    assert publisher.published(contract.ScanMessage) == []
    assert not result.published
