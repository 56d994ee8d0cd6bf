"""The reconciler as an operator runs it: book import, serve, list, approve — real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.publish as mqtt_publish

from edgecount import contract
from tests.conftest import BrokerAddress, RecorderFactory

EDGECOUNT = [sys.executable, "-m", "edgecount"]
SKU = "80614141123458"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EDGECOUNT, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_book_import_serve_list_approve(
    tmp_path: Path, broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory
) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text(
        f"site: {unique_site}\nstate_dir: state\nmax_recounts: 0\n"
        f"mqtt: {{host: {broker.host}, port: {broker.port}}}\n"
    )
    book = tmp_path / "book.csv"
    book.write_text(f"location,sku,qty,unit_cost,abc\nB-01,{SKU},12,3.5,A\nB-02,{SKU},4,3.5,A\n")
    as_of = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    imported = run("book", "import", "-c", str(config), str(book), "--as-of", as_of)
    assert imported.returncode == 0, imported.stderr
    assert "2 records" in imported.stdout

    broken = tmp_path / "broken.csv"
    broken.write_text("location,sku,qty,unit_cost,abc\nB-01,x,many,1,A\n")
    refused = run("book", "import", "-c", str(config), str(broken))
    assert refused.returncode == 1
    assert f"{broken}:2: qty: not a number" in refused.stderr

    root = f"edgecount/v1/{unique_site}"
    recorder = mqtt_recorder(broker, [f"{root}/discrepancy/#", f"{root}/adjustment"])
    # a retained count waits on the broker: the service reads it when it subscribes
    draft = contract.count_payload(
        gateway="gw-9",
        site=unique_site,
        zone="B",
        location="B-01",
        scan_id="s1",
        items=[{"sku": SKU, "qty": 9}],
        observed_at=datetime.now(UTC),
    )
    mqtt_publish.single(
        f"{root}/count/B/B-01",
        json.dumps(contract.with_sequence(draft, 1)),
        qos=1,
        retain=True,
        hostname=broker.host,
        port=broker.port,
    )
    service = subprocess.Popen(
        [*EDGECOUNT, "reconcile", "serve", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        flagged = recorder.wait_for(1, f"{root}/discrepancy/B/B-01", timeout=20)
        assert flagged[0].payload is not None
        assert flagged[0].payload["state"] == "awaiting_approval"

        listed = run("reconcile", "list", "-c", str(config), "--json")
        assert listed.returncode == 0, listed.stderr
        (item,) = json.loads(listed.stdout)
        assert item["lines"][0]["diff"] == -3

        approved = run(
            "reconcile",
            "approve",
            "-c",
            str(config),
            str(item["id"]),
            "--reason",
            "MISCOUNT",
            "--by",
            "kim",
        )
        assert approved.returncode == 0, approved.stderr
        again = run(
            "reconcile",
            "approve",
            "-c",
            str(config),
            str(item["id"]),
            "--reason",
            "MISCOUNT",
            "--by",
            "kim",
        )
        assert again.returncode == 1
        assert "not awaiting_approval" in again.stderr

        adjustment = recorder.wait_for(1, f"{root}/adjustment", timeout=20)
        assert adjustment[0].payload is not None
        assert (adjustment[0].payload["diff"], adjustment[0].payload["approved_by"]) == (-3, "kim")
        recorder.wait_for(
            1, f"{root}/discrepancy/B/B-01", where=lambda m: m.payload is None, timeout=20
        )
        service.send_signal(signal.SIGTERM)
        assert service.wait(20) == 0
    finally:
        if service.poll() is None:
            service.kill()
        service.communicate(timeout=10)
        mqtt_publish.single(
            f"{root}/count/B/B-01", b"", qos=1, retain=True, hostname=broker.host, port=broker.port
        )
