"""``edgecount demo``: the newcomer's first command works and checks itself against truth."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import BrokerAddress


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "edgecount",
            "demo",
            "--json",
            "--tags",
            "40",
            "--seconds",
            "1",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def check(report: dict[str, object]) -> None:
    assert report["complete"] is True
    demo_part = report["demo"]
    assert isinstance(demo_part, dict)
    assert demo_part["locations"] == 4
    assert demo_part["counts_on_broker"] == 4
    assert demo_part["locations_matching_truth"] == 4
    assert demo_part["true_items"] == 160
    assert demo_part["counted_items"] == 160
    assert demo_part["invalid_payloads"] == []
    reconciliation = report["reconciliation"]
    assert isinstance(reconciliation, dict)
    assert reconciliation["errors_found"] == 2
    assert reconciliation["false_flags"] == 0
    assert reconciliation["exceptions"] == 2
    assert reconciliation["records_counted"] == 16
    assert reconciliation["awaiting_approval"] == 2


def test_demo_on_the_embedded_broker() -> None:
    done = demo()
    assert done.returncode == 0, done.stderr
    check(json.loads(done.stdout))


def test_demo_on_an_external_broker(broker: BrokerAddress) -> None:
    done = demo("--broker", f"mqtt://{broker.host}:{broker.port}")
    assert done.returncode == 0, done.stderr
    check(json.loads(done.stdout))
