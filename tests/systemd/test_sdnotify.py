"""sd_notify: the protocol against a socket bound here, then the real daemon under a fake systemd.

The daemon test runs ``python -m edgecount gateway run`` as systemd would (``NOTIFY_SOCKET``,
``WATCHDOG_USEC``) against a real broker and an LLRP simulator: READY after start, watchdog
pings while healthy, no pings (and a 503 on ``/healthz``) once its only reader has been gone
for ``readers_down_seconds``, STOPPING on SIGTERM, exit 0. Its JSON debug log is checked too:
one object per line, and never the MQTT password.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edgecount.mqtt import MqttSettings
from edgecount.sdnotify import Notifier, watchdog_interval
from reconciler.engine import Engine
from reconciler.rules import TolerancePolicy
from reconciler.service import ReconcileService
from reconciler.store import open_store
from simulators.llrp.server import LLRPSimulator
from simulators.shelf import shelf_scene
from tests.conftest import BrokerAddress, free_port

REPO = Path(__file__).resolve().parents[2]
WATCHDOG_USEC = 400_000  # pings every 0.2 s
PASSWORD = "s3cret-" + uuid.uuid4().hex


@contextlib.contextmanager
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in the abstract namespace, and its ``NOTIFY_SOCKET`` name."""
    name = f"@edgecount-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name[1:].encode())
        sock.setblocking(False)
        yield sock, name


async def next_message(sock: socket.socket, timeout: float) -> dict[str, str]:  # noqa: ASYNC109
    """The next datagram as ``{KEY: value}``."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        raw = await loop.sock_recv(sock, 4096)
    return dict(line.split("=", 1) for line in raw.decode().splitlines())


async def message_with(sock: socket.socket, key: str, timeout: float) -> dict[str, str]:  # noqa: ASYNC109
    """The first datagram carrying ``key``, skipping others."""
    async with asyncio.timeout(timeout):
        while True:
            message = await next_message(sock, timeout)
            if key in message:
                return message


# -- the protocol ----------------------------------------------------------------------------


def test_messages_reach_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        assert notifier.ready("up and\nrunning")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up and running"
        assert notifier.stopping()
        assert sock.recv(4096) == b"STOPPING=1"


async def test_messages_reach_an_abstract_socket() -> None:
    with notify_socket() as (sock, name):
        notifier = Notifier({"NOTIFY_SOCKET": name})
        assert notifier.watchdog()
        assert await next_message(sock, 2.0) == {"WATCHDOG": "1"}


def test_without_systemd_nothing_is_sent_and_nothing_fails(tmp_path: Path) -> None:
    assert not Notifier({}).ready()
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "missing")})
    assert not gone.status("x")  # logged, never raised
    assert not gone.status("y")


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    mine = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(mine) == 0.5
    assert watchdog_interval({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}) is None


async def test_watchdog_is_fed_only_while_healthy() -> None:
    reasons: list[str] = []
    with notify_socket() as (sock, name):
        notifier = Notifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "100000"})
        feeder = asyncio.create_task(notifier.feed_watchdog(lambda: list(reasons)))
        try:
            assert await next_message(sock, 2.0) == {"WATCHDOG": "1"}
            reasons.append("broken")
            starving = await message_with(sock, "STATUS", 2.0)
            assert starving["STATUS"] == "unhealthy: broken"
            with pytest.raises(TimeoutError):  # ten intervals without a ping
                await next_message(sock, 0.5)
            reasons.clear()
            assert (await message_with(sock, "WATCHDOG", 2.0))["WATCHDOG"] == "1"
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)


# -- the daemon --------------------------------------------------------------------------------


def gateway_config(tmp_path: Path, broker: BrokerAddress, site: str, llrp_port: int) -> Path:
    password = tmp_path / "mqtt-password"
    password.write_text(PASSWORD + "\n")
    config = {
        "site": site,
        "gateway_id": "gw-notify",
        "state_dir": str(tmp_path / "state"),
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "username": "gw-notify",
            "password_file": str(password),
        },
        "readers": [
            {
                "type": "llrp",
                "name": "r1",
                "host": "127.0.0.1",
                "port": llrp_port,
                "antennas": {1: "A-1", 2: "A-2"},
                "connect_timeout_seconds": 1.0,
                "keepalive_seconds": 0.5,
            }
        ],
        "zones": {"A": {"readers": ["r1"], "scan_seconds": 1.0}},
        "metrics": {"host": "127.0.0.1", "port": free_port(), "readers_down_seconds": 1.0},
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def healthz(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_daemon_notifies_ready_feeds_the_watchdog_while_healthy_and_stops(
    tmp_path: Path, broker: BrokerAddress, unique_site: str
) -> None:
    log_path = tmp_path / "gateway.log"
    with notify_socket() as (sock, name), log_path.open("w") as log_file:
        sim = LLRPSimulator(shelf_scene(2, 5))
        await sim.start()
        config = gateway_config(tmp_path, broker, unique_site, sim.port)
        metrics_port = yaml.safe_load(config.read_text())["metrics"]["port"]
        env = {**os.environ, "NOTIFY_SOCKET": name, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        env.pop("WATCHDOG_PID", None)
        command = [sys.executable, "-m", "edgecount", "-vv", "--log-format", "json"]
        process = subprocess.Popen(  # noqa: ASYNC220 - waited for below, off the loop
            [*command, "gateway", "run", "-c", str(config)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log_file,
        )  # fmt: skip
        try:
            ready = await message_with(sock, "READY", 30.0)
            assert ready["STATUS"].startswith("ready: subscribed to commands, online")
            for _ in range(3):
                assert await message_with(sock, "WATCHDOG", 2.0) == {"WATCHDOG": "1"}
            assert await asyncio.to_thread(healthz, metrics_port) == (
                200,
                {"healthy": True, "reasons": []},
            )

            await sim.stop()  # the only reader goes away: unhealthy after 1 s
            starving = await message_with(sock, "STATUS", 10.0)
            assert starving["STATUS"].startswith("unhealthy: no reader connected for")
            with pytest.raises(TimeoutError):  # no ping for five intervals
                await message_with(sock, "WATCHDOG", 1.0)
            status, body = await asyncio.to_thread(healthz, metrics_port)
            assert status == 503
            assert body["healthy"] is False

            process.send_signal(signal.SIGTERM)
            assert "STOPPING" in await message_with(sock, "STOPPING", 10.0)
            assert await asyncio.to_thread(process.wait, 30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                await asyncio.to_thread(process.wait, 10)
            await sim.stop()
    lines = log_path.read_text().splitlines()
    assert lines, "no log output"
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"ts", "level", "logger", "msg"} <= set(entries[0])
    assert any(entry["level"] == "DEBUG" for entry in entries)
    assert PASSWORD not in log_path.read_text()


async def test_reconciler_is_ready_once_subscribed_and_says_stopping(
    tmp_path: Path, broker: BrokerAddress, unique_site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
    with notify_socket() as (sock, name):
        monkeypatch.setenv("NOTIFY_SOCKET", name)
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        client_id = f"rec-{unique_site}"
        service = ReconcileService(
            Engine(store, unique_site, TolerancePolicy()),
            MqttSettings(host=broker.host, port=broker.port, client_id=client_id),
            client_id=client_id,
        )
        task = asyncio.create_task(service.run())
        try:
            ready = await message_with(sock, "READY", 10.0)
            assert service.ready.is_set()
            assert ready["STATUS"].startswith("subscribed on")
            assert await message_with(sock, "WATCHDOG", 2.0) == {"WATCHDOG": "1"}
        finally:
            service.stopping.set()
            await asyncio.wait_for(task, 10)
            store.close()
        assert "STOPPING" in await message_with(sock, "STOPPING", 2.0)
