"""The gateway daemon's /metrics and /healthz, scraped over HTTP around a real scan.

LLRP simulator → the daemon (``serve``) with the MQTT publisher → a real broker.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from gateway.config import GatewayConfig
from gateway.daemon import Gateway, ScanRequest, serve
from gateway.publisher import MemoryPublisher
from gateway.runtime import open_publisher
from simulators.llrp.server import LLRPSimulator
from simulators.shelf import shelf_scene
from tests.conftest import BrokerAddress, eventually, free_port
from tests.edgecount.exposition import Samples, parse, value


def get(port: int, path: str, method: str = "GET") -> tuple[int, str, str]:
    """Status, content type and body of one request."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


async def scrape(port: int) -> Samples:
    status, kind, body = await asyncio.to_thread(get, port, "/metrics")
    assert status == 200
    assert kind == "text/plain; version=0.0.4; charset=utf-8"
    return parse(body)


async def test_metrics_grow_with_a_scan_and_health_is_ok(
    tmp_path: Path, broker: BrokerAddress, unique_site: str
) -> None:
    gateway_id = f"gw-{uuid.uuid4().hex[:6]}"
    async with LLRPSimulator(shelf_scene(2, 10)) as sim:
        config = GatewayConfig.model_validate(
            {
                "site": unique_site,
                "gateway_id": gateway_id,
                "state_dir": str(tmp_path / "gw"),
                "mqtt": {"host": broker.host, "port": broker.port},
                "readers": [
                    {
                        "type": "llrp",
                        "name": "r1",
                        "host": "127.0.0.1",
                        "port": sim.port,
                        "antennas": {1: "A-1", 2: "A-2"},
                    }
                ],
                "zones": {"A": {"readers": ["r1"], "scan_seconds": 1.0}},
                "metrics": {"host": "127.0.0.1", "port": 0},
            }
        )
        async with open_publisher(config, start=False) as publisher:
            gateway = Gateway(config, publisher)
            daemon = asyncio.create_task(serve(config, publisher, gateway))
            try:
                await eventually(lambda: gateway.metrics_port is not None, 15, "listening")
                port = gateway.metrics_port
                assert port is not None
                before = await scrape(port)
                assert value(before, "edgecount_reader_connected", reader="r1") == 1
                assert value(before, "edgecount_reader_reads_total", reader="r1") == 0
                assert value(before, "edgecount_scans_total") == 0
                assert value(before, "edgecount_gateway_healthy") == 1
                assert value(before, "edgecount_mqtt_connected") == 1
                info = {"gateway": gateway_id, "site": unique_site}
                assert any(
                    name == "edgecount_gateway_info" and set(info.items()) <= labels
                    for name, labels in before
                )

                gateway.request(ScanRequest("A", "test", "test"))
                await eventually(lambda: gateway.scans_run == 1, 20, "one scan")
                assert await publisher.flush(10)
                after = await scrape(port)
                assert value(after, "edgecount_reader_reads_total", reader="r1") > 0
                assert value(after, "edgecount_reader_dropped_total", reader="r1") == 0
                assert value(after, "edgecount_reader_queue_depth", reader="r1") >= 0
                # overflow: block is the default, so the waits are exported (KeyError if not)
                assert value(after, "edgecount_reader_handover_waits_total", reader="r1") >= 0
                assert value(after, "edgecount_scans_total") == 1
                assert value(after, "edgecount_scans_failed_total") == 0
                assert value(after, "edgecount_mqtt_acked_total") > value(
                    before, "edgecount_mqtt_acked_total"
                )
                assert value(after, "edgecount_outbox_depth") == 0
                assert value(after, "edgecount_outbox_full") == 0
                assert value(after, "edgecount_publish_ack_latency_seconds", stat="max") >= 0

                status, kind, body = await asyncio.to_thread(get, port, "/healthz")
                assert (status, kind) == (200, "application/json")
                assert json.loads(body) == {"healthy": True, "reasons": []}
                assert (await asyncio.to_thread(get, port, "/healthz", "HEAD"))[0] == 200
                assert (await asyncio.to_thread(get, port, "/nothing"))[0] == 404
                assert (await asyncio.to_thread(get, port, "/metrics", "POST"))[0] == 405
            finally:
                gateway.stopping.set()
                assert await asyncio.wait_for(daemon, 20) == 0


async def test_a_taken_metrics_port_fails_the_daemon(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = GatewayConfig.model_validate(
            {
                "site": "s",
                "gateway_id": "gw",
                "state_dir": str(tmp_path / "gw"),
                "readers": [
                    {
                        "type": "llrp",
                        "name": "r1",
                        "host": "127.0.0.1",
                        "port": free_port(),  # nobody there: the reader keeps retrying
                        "antennas": {1: "A-1"},
                        "connect_timeout_seconds": 0.5,
                    }
                ],
                "zones": {"A": {"readers": ["r1"]}},
                "metrics": {"host": "127.0.0.1", "port": taken.getsockname()[1]},
            }
        )
        publisher = MemoryPublisher(site="s", gateway_id="gw")
        with pytest.raises(OSError, match="address already in use"):
            await asyncio.wait_for(serve(config, publisher), 20)
