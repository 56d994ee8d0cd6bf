"""The daemon's request handling and schedule, with an in-memory publisher (pure logic)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from edgecount import contract
from gateway.config import GatewayConfig
from gateway.daemon import Gateway, ScanRequest
from gateway.publisher import MemoryPublisher

CONFIG = GatewayConfig.model_validate(
    {
        "site": "s1",
        "gateway_id": "gw",
        "readers": [
            {"type": "llrp", "name": "r1", "host": "h", "antennas": {1: "A-1", 2: "A-2"}},
            {"type": "llrp", "name": "r2", "host": "h", "antennas": {1: "B-1"}},
        ],
        "zones": {"A": {"readers": ["r1"]}, "B": {"readers": ["r2"], "schedule": "* * * * * *"}},
    }
)


def gateway() -> Gateway:
    return Gateway(CONFIG, MemoryPublisher(site="s1", gateway_id="gw"))


def command(**fields: object) -> bytes:
    payload = contract.scan_request_payload(reason="recount", requested_by="test", **fields)  # type: ignore[arg-type]
    return json.dumps(payload).encode()


def queued(gw: Gateway) -> list[ScanRequest]:
    found = []
    while not gw.requests.empty():
        found.append(gw.requests.get_nowait())
    return found


def test_requests_by_zone_and_by_location_merge_per_zone() -> None:
    gw = gateway()
    gw.on_command("t", command(zone="A"))
    gw.on_command("t", command(locations=["A-2", "B-1"]))
    requests = queued(gw)
    assert [r.zone for r in requests] == ["A", "B"]
    assert requests[0].reason == "recount"
    assert requests[0].request_id is not None
    assert gw.rejected_commands == 0


def test_bad_commands_are_rejected_and_counted() -> None:
    gw = gateway()
    gw.on_command("t", b"{not json")
    gw.on_command("t", command(zone="Z"))
    gw.on_command("t", command(locations=["nowhere"]))
    past = datetime.now(UTC) - timedelta(minutes=5)
    gw.on_command("t", command(zone="A", expires_at=past))
    status = contract.status_payload(gateway="gw", site="s1", state="online")
    gw.on_command("t", json.dumps(status).encode())
    assert gw.rejected_commands == 5
    assert queued(gw) == []


async def test_schedule_queues_scans_of_its_zone() -> None:
    gw = gateway()
    task = asyncio.create_task(gw.scheduler("B", "* * * * * *"))  # every second
    try:
        request = await asyncio.wait_for(gw.requests.get(), 3)
    finally:
        gw.stopping.set()
        await asyncio.wait_for(task, 3)
    assert request.zone == "B"
    assert request.requested_by == "schedule"
