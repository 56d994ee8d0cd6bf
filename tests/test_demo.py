"""``edgecount demo``: the newcomer's first command runs a night and scores it against truth.

The tiny twin (20 locations: 10 under a fixed LLRP reader, 10 flown by a drone over two
levels) runs the whole pipeline: simulators in a child process, the gateway daemon, the
broker, the reconciler with recounts, approvals. The figures it reports are checked against
the twin the test generates itself from the same spec.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from edgecount.demo import SIZES
from simulators.twin import TwinSpec, generate
from tests.conftest import BrokerAddress


def demo(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "edgecount",
            "demo",
            "--json",
            "--size",
            "tiny",
            "--state-dir",
            str(state_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def check_against_the_twin(figures: dict[str, Any], seed: int) -> None:
    """The demo's figures are those of the twin it ran on, and the night found every error."""
    spec, _, _ = SIZES["tiny"]
    twin = generate(TwinSpec(**{**spec.__dict__, "seed": seed}))
    book = twin.book_counts()
    shelf = twin.truth_counts()
    records = {(loc, sku) for loc, per in book.items() for sku in per}
    records |= {(loc, sku) for loc, per in shelf.items() for sku, qty in per.items() if qty}
    errors = {(e.location, e.sku) for e in twin.errors}
    assert errors, "the tiny twin must have book errors to find"
    assert figures["locations"] == len(twin.locations) == 20
    assert figures["records"] == len(records)
    assert figures["true_discrepancies"] == len(errors)
    assert figures["ira_before"] == (len(records) - len(errors)) / len(records)
    assert figures["recall"] == 1.0, figures["missed"]
    assert figures["precision"] == 1.0, figures["false_flags"]
    assert figures["false_flag_rate"] == 0.0
    assert figures["ira_after"] == 1.0
    assert figures["found"] == figures["flagged"] == len(errors)
    assert figures["reconciliation"]["adjustments"] == len(errors)
    counting = figures["counting"]
    assert counting["latest_count_exact"] == 20
    assert (
        counting["true_items"]
        == counting["counted_items"]
        == sum(len(epcs) for epcs in twin.truth.values())
    )
    assert counting["by_device"]["fixed"]["counts"] >= 10
    assert counting["by_device"]["drone"]["counts"] >= 10
    assert figures["scans"]["nightly"] == 3  # Z1, and the drone aisle's two levels
    assert figures["invalid_payloads"] == []
    report = Path(figures["report_html"])
    assert report.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")


def test_demo_on_the_embedded_broker_matches_its_own_truth(tmp_path: Path) -> None:
    done = demo(tmp_path / "state")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    check_against_the_twin(figures, seed=1)
    look_at_the_night_in_the_console(figures)


def look_at_the_night_in_the_console(figures: dict[str, Any]) -> None:
    """The console the demo names serves its night to its demo user."""
    assert figures["console_url"] == "http://127.0.0.1:8484/"
    console = subprocess.Popen(
        [sys.executable, "-m", "edgecount", "reconcile", "console", "-c",
         figures["console_config"], "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert console.stdout is not None
        first = console.stdout.readline()
        url = first.split()[1].rstrip("/")
        assert url.startswith("http://127.0.0.1:"), first
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/console/").status_code == 401
            signed = client.post(
                "/signin",
                json={"username": figures["console_user"], "password": figures["console_password"]},
            )
            assert signed.status_code == 200, signed.text
            page = client.get("/console/")
            assert page.status_code == 200
            # the night's scans, recounts included
            assert page.text.count('class="badge completed"') >= figures["scans"]["nightly"]
    finally:
        console.terminate()
        console.wait(timeout=30)


def test_demo_on_an_external_broker(broker: BrokerAddress, tmp_path: Path) -> None:
    done = demo(
        tmp_path / "state", "--seed", "5", "--broker", f"mqtt://{broker.host}:{broker.port}"
    )
    assert done.returncode == 0, done.stderr
    check_against_the_twin(json.loads(done.stdout), seed=5)


def test_demo_refuses_a_state_dir_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    done = demo(tmp_path)
    assert done.returncode == 2
    assert "not made by the demo" in done.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
