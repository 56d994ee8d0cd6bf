"""The command line as an operator runs it: simulator, scan and daemon as real processes."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.publish as mqtt_publish
from ruamel.yaml import YAML

from edgecount import contract
from simulators.shelf import shelf_scene, truth_by_antenna
from tests.conftest import BrokerAddress, RecorderFactory
from tests.gateway.conftest import EDGECOUNT, ENV

LOCATIONS = {1: "B-01", 2: "B-02", 3: "B-03"}


def write_config(tmp_path: Path, site: str, broker: BrokerAddress, port: int) -> Path:
    path = tmp_path / "gateway.yaml"
    config = {
        "site": site,
        "gateway_id": "gw-cli",
        "state_dir": "state",
        "mqtt": {"host": broker.host, "port": broker.port},
        "readers": [
            {
                "type": "llrp",
                "name": "r1",
                "host": "127.0.0.1",
                "port": port,
                "antennas": LOCATIONS,
                "keepalive_seconds": 2,
            }
        ],
        "zones": {"B": {"readers": ["r1"], "scan_seconds": 1.5}},
    }
    with path.open("w") as out:
        YAML().dump(config, out)
    return path


def scan(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EDGECOUNT, "scan", "-c", str(config), "--zone", "B", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=ENV,
    )


def test_scan_prints_counts_equal_to_truth_and_exits_0(
    tmp_path: Path,
    simulator: Callable[..., int],
    broker: BrokerAddress,
    unique_site: str,
    mqtt_recorder: RecorderFactory,
) -> None:
    port = simulator()
    recorder = mqtt_recorder(broker, f"edgecount/v1/{unique_site}/count/B/+")
    done = scan(write_config(tmp_path, unique_site, broker, port))
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr  # stderr is a pipe: plain progress lines, no bar frames
    assert "scan B 100%" in done.stderr
    report = json.loads(done.stdout)
    assert report["complete"] is True
    assert report["delivered"] is True
    truth = truth_by_antenna(shelf_scene(3, 40))
    for antenna, location in LOCATIONS.items():
        row = next(loc for loc in report["locations"] if loc["location"] == location)
        assert {i["sku"]: i["qty"] for i in row["items"]} == dict(truth[antenna])
    assert len(recorder.wait_for(3, timeout=10)) == 3


def test_scan_of_a_reader_that_drops_exits_3(
    tmp_path: Path,
    simulator: Callable[..., int],
    broker: BrokerAddress,
    unique_site: str,
) -> None:
    port = simulator("--drop-after", "0.7")
    done = scan(write_config(tmp_path, unique_site, broker, port))
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert report["complete"] is False
    assert all(loc["complete"] is False for loc in report["locations"])


def test_validate_rejects_what_run_would_reject(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: s\ngateway_id: g\nreaders: []\nzones: {}\n")
    done = subprocess.run(
        [*EDGECOUNT, "gateway", "run", "-c", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert f"{bad}:4: zones:" in done.stderr  # readers may be empty (a camera-only gateway)


def test_daemon_scans_on_request_rejects_garbage_and_stops_cleanly(
    tmp_path: Path,
    simulator: Callable[..., int],
    broker: BrokerAddress,
    unique_site: str,
    mqtt_recorder: RecorderFactory,
) -> None:
    port = simulator()
    root = f"edgecount/v1/{unique_site}"
    recorder = mqtt_recorder(broker, [f"{root}/status/+", f"{root}/count/B/+", f"{root}/scan/B"])
    daemon = subprocess.Popen(
        [
            *EDGECOUNT,
            "-v",
            "gateway",
            "run",
            "-c",
            str(write_config(tmp_path, unique_site, broker, port)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:

        def state_is(state: str) -> bool:
            found = recorder.matching(f"{root}/status/gw-cli")
            return (
                bool(found)
                and found[-1].payload is not None
                and (found[-1].payload["state"] == state)
            )

        recorder.wait_for(
            1, f"{root}/status/gw-cli", where=lambda m: state_is("online"), timeout=15
        )
        cmd = contract.cmd_scan_topic(unique_site, "gw-cli")
        mqtt_publish.single(cmd, b"{not json", qos=1, hostname=broker.host, port=broker.port)
        request = contract.scan_request_payload(reason="recount", requested_by="test", zone="B")
        mqtt_publish.single(cmd, json.dumps(request), qos=1, hostname=broker.host, port=broker.port)
        done = recorder.wait_for(
            1,
            f"{root}/scan/B",
            where=lambda m: m.payload is not None and m.payload["state"] == "completed",
            timeout=30,
        )
        assert done[0].payload is not None
        assert done[0].payload["request_id"] == request["request_id"]
        counts = recorder.wait_for(3, f"{root}/count/B/+", timeout=10)
        assert {m.payload["location"] for m in counts if m.payload} == set(LOCATIONS.values())
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        recorder.wait_for(
            1, f"{root}/status/gw-cli", where=lambda m: state_is("stopped"), timeout=10
        )
    finally:
        if daemon.poll() is None:
            daemon.kill()
        _, log = daemon.communicate(timeout=10)
    assert "rejected command" in log
