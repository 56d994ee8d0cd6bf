"""Scan beside a running daemon: scan-request, the state_dir lock, client ids, exit codes.

The daemon, the scans and the requests are real processes against a real broker and the
LLRP simulator, as an operator would run them.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgecount import contract
from gateway.outbox import Outbox
from gateway.scan_request import ScanWatch
from simulators.shelf import shelf_scene, truth_by_antenna
from tests.conftest import BrokerAddress, MqttRecorder, RecorderFactory, free_port
from tests.gateway.conftest import EDGECOUNT, ENV
from tests.gateway.test_cli import LOCATIONS, write_config


def edgecount(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EDGECOUNT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=ENV,
    )


def states(recorder: MqttRecorder, topic: str) -> list[str]:
    return [m.payload["state"] for m in recorder.matching(topic) if m.payload is not None]


@pytest.fixture
def daemon(
    tmp_path: Path,
    simulator: Callable[..., int],
    broker: BrokerAddress,
    unique_site: str,
    mqtt_recorder: RecorderFactory,
) -> Iterator[tuple[Path, MqttRecorder]]:
    """A running ``edgecount gateway run`` (online); yields its config and a status recorder."""
    config = write_config(tmp_path, unique_site, broker, simulator())
    status = contract.status_topic(unique_site, "gw-cli")
    recorder = mqtt_recorder(broker, status)
    process = subprocess.Popen(
        [*EDGECOUNT, "gateway", "run", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        recorder.wait_for(1, status, where=lambda m: states(recorder, status)[-1:] == ["online"])
        yield config, recorder
        process.terminate()
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
    assert states(recorder, status) == ["online", "stopped"]  # never kicked off, never offline


def test_scan_request_waits_for_the_daemons_scan_without_taking_its_session_over(
    daemon: tuple[Path, MqttRecorder], unique_site: str
) -> None:
    config, recorder = daemon
    done = edgecount(
        "gateway", "scan-request", "-c", str(config), "--zone", "B", "--wait", "--json",
        "--timeout", "60",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["complete"] is True
    assert report["answered_request_id"] == report["request_id"]
    truth = truth_by_antenna(shelf_scene(3, 40))
    for antenna, location in LOCATIONS.items():
        row = next(loc for loc in report["locations"] if loc["location"] == location)
        assert {i["sku"]: i["qty"] for i in row["items"]} == dict(truth[antenna])
    assert [r["name"] for r in report["readers"]] == ["r1"]
    # Only the daemon speaks on the status topic, and it was online throughout.
    assert states(recorder, contract.status_topic(unique_site, "gw-cli")) == ["online"]

    table = edgecount(
        "gateway", "scan-request", "-c", str(config), "--zone", "B", "--locations", "B-02",
        "--wait", "--timeout", "60",
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("scan gw-cli.B.")
    assert "B-02" in table.stdout
    assert "B-01" not in table.stdout

    sent = edgecount("gateway", "scan-request", "-c", str(config), "--zone", "B", "--json")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["sent"] is True


def test_scan_and_a_second_daemon_are_refused_while_the_daemon_runs(
    daemon: tuple[Path, MqttRecorder],
) -> None:
    config, _ = daemon
    refused = edgecount("scan", "-c", str(config), "--zone", "B", "--no-progress")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "gateway daemon is running for this config" in lines[0]
    assert f"edgecount gateway scan-request -c {config} --zone B --wait" in lines[0]
    second = edgecount("gateway", "run", "-c", str(config), timeout=30)
    assert second.returncode == 2
    assert "one daemon per state_dir" in second.stderr
    assert "Traceback" not in second.stderr


def test_scan_exits_4_when_the_broker_is_unreachable_and_keeps_the_counts(
    tmp_path: Path, simulator: Callable[..., int], unique_site: str
) -> None:
    nowhere = BrokerAddress("127.0.0.1", free_port())
    config = write_config(tmp_path, unique_site, nowhere, simulator())
    done = edgecount("scan", "-c", str(config), "--zone", "B", "--json")
    assert done.returncode == 4, done.stderr
    assert json.loads(done.stdout)["delivered"] is False
    assert "stay in the outbox" in done.stderr
    outbox = Outbox(tmp_path / "state" / "outbox.sqlite3", gateway_id="gw-cli")
    try:
        assert outbox.depth == 3 + 2  # three counts, the scan's started and completed
    finally:
        outbox.close()


def test_scan_request_without_a_daemon_or_a_broker_exits_4(
    tmp_path: Path, broker: BrokerAddress, unique_site: str
) -> None:
    config = write_config(tmp_path, unique_site, broker, free_port())
    nobody = edgecount("gateway", "scan-request", "-c", str(config), "--zone", "B")
    assert nobody.returncode == 4
    assert "nobody is subscribed" in nobody.stderr
    unreachable = write_config(tmp_path, unique_site, BrokerAddress("127.0.0.1", free_port()), 1)
    down = edgecount("gateway", "scan-request", "-c", str(unreachable), "--zone", "B")
    assert down.returncode == 4
    assert "cannot connect to mqtt://127.0.0.1:" in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1
    unknown = edgecount("gateway", "scan-request", "-c", str(config), "--zone", "Q")
    assert unknown.returncode == 2
    assert "no zone 'Q'" in unknown.stderr


# -- which scan answers a request (pure logic) ------------------------------------------------


def scan_message(scan_id: str, state: str, request_id: str | None = None) -> bytes:
    payload = contract.scan_payload(
        gateway="gw",
        site="s1",
        zone="B",
        scan_id=scan_id,
        state=state,
        started_at="2026-01-01T02:00:00.000Z",
        ended_at=None if state == "started" else "2026-01-01T02:00:30.000Z",
        locations=["B-01", "B-02"],
        incomplete_locations=["B-02"] if state == "incomplete" else [],
        readers=[{"name": "r1", "ok": True, "reads": 7}],
        request_id=request_id,
    )
    return contract.encode(payload | {"seq": 1, "msg_id": "gw:1", "historical": False})


def count_message(scan_id: str, location: str, qty: int, *, complete: bool = True) -> bytes:
    payload = contract.count_payload(
        gateway="gw", site="s1", zone="B", location=location, scan_id=scan_id,
        items=[{"sku": "00614141123452", "qty": qty}], complete=complete,
    )  # fmt: skip
    return contract.encode(payload | {"seq": 2, "msg_id": "gw:2", "historical": False})


SCAN_TOPIC = contract.scan_topic("s1", "B")


def test_a_merged_request_follows_the_first_scan_that_starts_after_it() -> None:
    watch = ScanWatch("B", "mine")
    watch.on_message(SCAN_TOPIC, scan_message("old", "started"))  # retained, before the request
    watch.on_message(SCAN_TOPIC, b"")  # a cleared retained message is ignored
    watch.armed = True
    watch.on_message(SCAN_TOPIC, scan_message("old", "completed"))
    assert watch.scan_id is None
    assert not watch.done.is_set()
    watch.on_message(SCAN_TOPIC, scan_message("next", "started", request_id="someone-else"))
    for location, qty in (("B-01", 4), ("B-02", 1)):
        topic = contract.count_topic("s1", "B", location)
        watch.on_message(topic, count_message("next", location, qty, complete=qty > 1))
    watch.on_message(SCAN_TOPIC, scan_message("next", "incomplete", request_id="someone-else"))
    assert watch.done.is_set()
    report = watch.report()
    assert report["scan_id"] == "next"
    assert report["complete"] is False
    assert [row["total"] for row in report["locations"]] == [4, 1]
    assert report["readers"] == [{"name": "r1", "ok": True, "reads": 7, "error": None}]


def test_the_request_id_wins_and_locations_narrow_the_report() -> None:
    watch = ScanWatch("B", "mine", locations=["B-01"])
    watch.on_message(SCAN_TOPIC, scan_message("ours", "started", request_id="mine"))
    watch.armed = True
    watch.on_message(contract.count_topic("s1", "B", "B-01"), count_message("ours", "B-01", 3))
    watch.on_message(SCAN_TOPIC, scan_message("ours", "incomplete", request_id="mine"))
    report = watch.report()
    assert [row["location"] for row in report["locations"]] == ["B-01"]
    assert report["complete"] is True  # B-01 was fully scanned; B-02 is not asked about
