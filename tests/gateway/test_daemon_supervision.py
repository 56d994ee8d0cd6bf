"""Each supervised task of the gateway daemon, made to fail, against a real broker.

The daemon (``serve``) runs with the MQTT publisher on the shared Mosquitto and a reader that
nobody answers (it keeps retrying; no scan needs it here). Each test injects one fault through
a public seam and checks the logged trace, the restart (and its metric) or the exit status.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.request
import uuid
from pathlib import Path

import pytest

from edgecount.sdnotify import Notifier
from gateway.config import GatewayConfig
from gateway.daemon import Gateway, ScanRequest, serve
from gateway.publisher import Publisher
from gateway.runtime import open_publisher
from tests.conftest import BrokerAddress, eventually, free_port

EVERY_SECOND = "* * * * * *"


def reader(name: str, location: str) -> dict[str, object]:
    """A reader that nobody answers: it keeps retrying (no scan needs it here)."""
    return {
        "type": "llrp",
        "name": name,
        "host": "127.0.0.1",
        "port": free_port(),
        "antennas": {1: location},
        "connect_timeout_seconds": 0.5,
    }


def config_for(
    tmp_path: Path, broker: BrokerAddress, site: str, schedule: str | None = None
) -> GatewayConfig:
    zone_b: dict[str, object] = {"readers": ["r2"]} | ({"schedule": schedule} if schedule else {})
    return GatewayConfig.model_validate(
        {
            "site": site,
            "gateway_id": f"gw-{uuid.uuid4().hex[:6]}",
            "state_dir": str(tmp_path / "gw"),
            "mqtt": {"host": broker.host, "port": broker.port},
            "readers": [reader("r1", "A-1"), reader("r2", "B-1")],
            "zones": {"A": {"readers": ["r1"]}, "B": zone_b},
            "metrics": {"host": "127.0.0.1", "port": 0},
        }
    )


def traced(caplog: pytest.LogCaptureFixture, task: str) -> list[logging.LogRecord]:
    """The supervisor's records of ``task`` that carry a trace."""
    return [
        r
        for r in caplog.records
        if r.name == "edgecount.supervisor" and r.exc_info and f"task {task} " in r.getMessage()
    ]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def restarts(gateway: Gateway, task: str) -> int:
    health = {} if gateway.tasks is None else gateway.tasks.health()
    return health[task].restarts if task in health else 0


async def run_until_stopped(
    config: GatewayConfig, gateway: Gateway, daemon: asyncio.Task[int]
) -> int:
    gateway.stopping.set()
    return await asyncio.wait_for(daemon, 20)


async def test_a_crashing_scan_worker_is_logged_restarted_and_counted(
    tmp_path: Path, broker: BrokerAddress, unique_site: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(tmp_path, broker, unique_site)
    async with open_publisher(config, start=False) as publisher:
        gateway = Gateway(config, publisher)
        daemon = asyncio.create_task(serve(config, publisher, gateway))
        try:
            await eventually(lambda: gateway.metrics_port is not None, 15, "listening")
            # a zone the configuration does not have: the worker cannot build the scan
            gateway.request(ScanRequest("no-such-zone", "test", "test"))
            await eventually(lambda: restarts(gateway, "scan-worker") == 1, 10, "a restart")
            assert gateway.metrics_port is not None
            text = await asyncio.to_thread(scrape, gateway.metrics_port)
            assert 'edgecount_gateway_task_restarts_total{task="scan-worker"} 1.0' in text
        finally:
            assert await run_until_stopped(config, gateway, daemon) == 0
    records = traced(caplog, "scan-worker")
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], KeyError)


class FailingSchedule(Gateway):
    """A gateway whose scheduled requests fail (a bad callback, as a subclass may bring)."""

    def request(self, request: ScanRequest) -> bool:
        if request.requested_by == "schedule":
            raise RuntimeError("schedule broke")
        return super().request(request)


async def test_a_crashing_cron_is_restarted_and_unhealthy_while_it_waits(
    tmp_path: Path, broker: BrokerAddress, unique_site: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(tmp_path, broker, unique_site, EVERY_SECOND)
    async with open_publisher(config, start=False) as publisher:
        gateway = FailingSchedule(config, publisher)
        daemon = asyncio.create_task(serve(config, publisher, gateway))
        try:
            await eventually(lambda: restarts(gateway, "cron:B") >= 1, 10, "a restart")
            assert gateway.monitor is not None
            await eventually(
                lambda: any("task cron:B failed" in r for r in gateway.monitor.reasons())  # type: ignore[union-attr]
                , 10, "cron:B as a health reason",
            )  # fmt: skip
        finally:
            assert await run_until_stopped(config, gateway, daemon) == 0
    records = traced(caplog, "cron:B")
    assert records
    assert all(r.exc_info and "schedule broke" in str(r.exc_info[1]) for r in records)


async def test_a_closed_metrics_listener_is_restarted_on_a_new_port(
    tmp_path: Path, broker: BrokerAddress, unique_site: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(tmp_path, broker, unique_site)
    async with open_publisher(config, start=False) as publisher:
        gateway = Gateway(config, publisher)
        daemon = asyncio.create_task(serve(config, publisher, gateway))
        try:
            await eventually(lambda: gateway.metrics is not None, 15, "listening")
            first = gateway.metrics_port
            assert gateway.metrics is not None
            gateway.metrics.close()  # the listener goes away under the daemon
            await eventually(lambda: restarts(gateway, "metrics-http") == 1, 10, "a restart")
            await eventually(lambda: gateway.metrics_port != first, 10, "listening again")
            assert gateway.metrics_port is not None
            text = await asyncio.to_thread(scrape, gateway.metrics_port)
            assert 'edgecount_gateway_task_restarts_total{task="metrics-http"} 1.0' in text
        finally:
            assert await run_until_stopped(config, gateway, daemon) == 0
    assert len(traced(caplog, "metrics-http")) == 1


class BrokenWatchdog(Notifier):
    """systemd's notification socket, failing on ``WATCHDOG=1``."""

    def watchdog(self) -> bool:
        raise OSError("notify socket gone")


async def test_a_failing_watchdog_ends_the_daemon_with_status_1(
    tmp_path: Path, broker: BrokerAddress, unique_site: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(tmp_path, broker, unique_site)
    publisher: Publisher
    async with open_publisher(config, start=False) as publisher:
        gateway = Gateway(config, publisher)
        env = {"NOTIFY_SOCKET": f"@edgecount-test-{uuid.uuid4().hex}", "WATCHDOG_USEC": "200000"}
        gateway.notifier = BrokenWatchdog(env)
        status = await asyncio.wait_for(serve(config, publisher, gateway), 20)
    assert status == 1
    assert len(traced(caplog, "watchdog")) == 1
    assert "task watchdog failed: OSError: notify socket gone; exiting with status 1" in caplog.text
    assert gateway.tasks is not None
    assert gateway.tasks.health()["scan-worker"].state == "finished"  # cancelled, not failed
