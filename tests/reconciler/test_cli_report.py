"""``edgecount reconcile report`` and ``edgecount plan`` on a filled store (SQLite, PostgreSQL).

The commands run in process through their own argument parsers; the last tests run them as real
processes once ``edgecount.cli`` registers them. ``--publish`` goes to the real Mosquitto.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from edgecount import contract
from reconciler.cli_report import (
    add_plan_arguments,
    add_reconcile_report_arguments,
    run_plan,
    run_reconcile_report,
)
from reconciler.store import Store
from tests.conftest import BrokerAddress, RecorderFactory, free_port
from tests.reconciler.test_queries import (
    NOW,
    SCAN_S1,
    SCAN_S2,
    SKU_A,
    SKU_B,
    SKU_C,
    T0,
    ZONE_ROWS,
    fill,
    store,  # noqa: F401 - the fixture
)

HEADER = (
    "location,sku,book_qty,counted_qty,diff,diff_value,status"
    ",zone,abc,unit_cost,decision,decided_by,reason"
)
FACTS = {SKU_A: "A,2", SKU_B: "B,10", SKU_C: "C,1"}  # class and unit cost in the book
NOT_SCANNED_B01 = ("B-01", SKU_C, 20, None, 0, 0.0, "not_scanned")  # never reported: unknown


def write_config(
    path: Path, db: Store, site: str, *, broker: BrokerAddress | None = None, extra: str = ""
) -> Path:
    """A reconciler YAML pointing at the store's database (and a broker)."""
    url = db.engine.url.render_as_string(hide_password=False)
    mqtt = f"mqtt:\n  host: {broker.host}\n  port: {broker.port}\n" if broker else ""
    path.write_text(
        f"site: {site}\nstate_dir: {path.parent}\ndatabase: {url}\n{mqtt}{extra}",
        encoding="utf-8",
    )
    return path


def run(
    add: Callable[[argparse.ArgumentParser], None],
    handler: Callable[[argparse.Namespace], int],
    argv: Sequence[str],
) -> int:
    """Parse ``argv`` with the command's own arguments and run it (usage errors: SystemExit 2)."""
    parser = argparse.ArgumentParser()
    add(parser)
    return handler(parser.parse_args(list(argv)))


def report(*argv: str) -> int:
    return run(add_reconcile_report_arguments, run_reconcile_report, argv)


def plan(*argv: str) -> int:
    return run(add_plan_arguments, run_plan, argv)


def csv_lines(rows: Sequence[tuple[object, ...]]) -> list[str]:
    """Expected CSV lines of hand-computed rows, with zone, class, cost and decision.

    The only decided discrepancy of :func:`fill` is A-02's (approved by kim, ``MISCOUNT``):
    its exception rows carry that decision.
    """

    def number(value: object) -> str:
        return "" if value is None else f"{value:g}"

    def extra(loc: object, sku: object, status: object) -> str:
        zone = "unknown" if loc == "B-01" else "A"
        decided = loc == "A-02" and status in ("over", "short", "unexpected")
        decision = "approved,kim,MISCOUNT" if decided else ",,"
        return f"{zone},{FACTS[str(sku)]},{decision}"

    return [
        f"{loc},{sku},{number(book)},{number(counted)},{number(diff)},{value:.2f},{status},"
        + extra(loc, sku, status)
        for loc, sku, book, counted, diff, value, status in rows
    ]


@pytest.fixture
def config(store: Store, tmp_path: Path) -> Path:  # noqa: F811 - the fixture
    """The warehouse of test_queries, and a config file for it."""
    fill(store, "s")
    return write_config(tmp_path / "reconciler.yaml", store, "s")


# -- report ---------------------------------------------------------------------------------------


def test_scan_report_csv(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report("-c", str(config), "--scan", "s1", "--format", "csv") == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [HEADER, *csv_lines(SCAN_S1)]
    assert list(csv.reader(io.StringIO(out)))[5][3] == ""  # not scanned: no counted_qty


def test_scan_report_json_has_summary_and_trend(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report("-c", str(config), "--scan", "s1", "--format", "json") == 0
    document = json.loads(capsys.readouterr().out)
    summary = document["summary"]
    assert document["scope"] == "scan s1 (zone A, gateway gw-1, incomplete)"
    assert (summary["records_counted"], summary["records_within_tolerance"]) == (4, 2)
    assert summary["ira"] == 0.5
    assert summary["scan_seconds"] == 600
    # approved adjustments 2.00 + 20.00 over the book value counted 10*2 + 5*10 + 4*2 + 0
    assert summary["gross_adjustment_rate"] == pytest.approx(22 / 78)
    assert [(p["scan_id"], p["ira"]) for p in document["trend"]] == [("s1", 0.5)]
    assert len(document["rows"]) == len(SCAN_S1)


def test_zone_report_json(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report("-c", str(config), "--zone", "A", "--format", "json") == 0
    document = json.loads(capsys.readouterr().out)
    got = [
        (r["location"], r["sku"], r["book_qty"], r["counted_qty"], r["diff"], r["status"])
        for r in document["rows"]
    ]
    assert got == [(r[0], r[1], r[2], r[3], r[4], r[6]) for r in ZONE_ROWS]
    assert document["summary"]["ira"] == 0.5  # 2 of 4 counted records
    assert document["summary"]["scan_seconds"] is None
    assert [(p["scan_id"], p["ira"]) for p in document["trend"]] == [("s1", 0.5), ("s2", 1.0)]


def test_since_report_csv(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report("-c", str(config), "--since", T0.date().isoformat(), "--format", "csv") == 0
    # the latest count of and A-04 (incomplete) in the period; A-03 and B-01, in
    # the book but never counted in the period, as not_scanned (B-01: no gateway, zone unknown)
    expected = [*SCAN_S2, *SCAN_S1[2:], NOT_SCANNED_B01]
    assert capsys.readouterr().out.splitlines() == [HEADER, *csv_lines(expected)]
    later = (T0 + timedelta(hours=12)).isoformat()
    assert report("-c", str(config), "--since", later, "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["location"], r["status"]) for r in rows] == [
        ("A-01", "match"),
        ("A-01", "match"),
        ("A-02", "not_scanned"),  # its counts were before the period
        ("A-02", "not_scanned"),  # SKU_B booked there by the approved adjustment
        ("A-03", "not_scanned"),
        ("A-04", "not_scanned"),  # its incomplete count was before the period too
        ("B-01", "not_scanned"),
    ]


def test_since_report_json_has_coverage(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report("-c", str(config), "--since", T0.date().isoformat(), "--format", "json") == 0
    document = json.loads(capsys.readouterr().out)
    summary = document["summary"]
    # in the book: A-01..A-04 and B-01; covered by a complete count
    assert (summary["locations_counted"], summary["locations_in_book"]) == (2, 5)
    assert summary["location_coverage"] == pytest.approx(2 / 5)
    # counted: A-01 as of s2 (7 * 2 + 5 * 10 = 64) + A-02 as of its count (4 * 2 + 0 = 8);
    # not counted: A-03 6 * 10, A-04 3 * 1 (incomplete), B-01 20 * 1
    assert summary["book_value_counted"] == pytest.approx(72.0)
    assert summary["book_value"] == pytest.approx(72.0 + 60 + 3 + 20)
    assert summary["value_coverage"] == pytest.approx(72 / 155)
    decided = {(r["location"], r["sku"]): r["decision"] for r in document["rows"]}
    approved = {"outcome": "approved", "decided_by": "kim", "reason": "MISCOUNT"}
    assert decided == {
        **dict.fromkeys(decided),
        ("A-02", SKU_A): approved,
        ("A-02", SKU_B): approved,
    }
    zones = {r["location"]: r["zone"] for r in document["rows"]}
    assert (zones["A-03"], zones["B-01"]) == ("A", "unknown")


def test_unknown_zone_report_lists_locations_no_gateway_reported(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report("-c", str(config), "--zone", "unknown", "--format", "csv") == 0
    assert capsys.readouterr().out.splitlines() == [HEADER, *csv_lines([NOT_SCANNED_B01])]


def test_html_report_to_a_file(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert report("-c", str(config), "--zone", "A", "--format", "html", "-o", str(out)) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "Reconciliation report, site s" in page
    assert "Zone A" in page  # the heat map
    for sku in (SKU_A, SKU_B):
        assert sku in page
    assert page.rstrip().endswith("</html>")


def test_unknown_scan_or_zone_fails(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report("-c", str(config), "--scan", "nope", "--format", "csv") == 1
    assert "no scan 'nope'" in capsys.readouterr().err
    assert report("-c", str(config), "--zone", "Z", "--format", "csv") == 1
    assert "zone 'Z'" in capsys.readouterr().err


def test_usage_and_config_errors_exit_2(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ["-c", str(config), "--format", "csv"],  # no scope
        ["-c", str(config), "--scan", "s1", "--zone", "A", "--format", "csv"],
        ["-c", str(config), "--since", "yesterday", "--format", "csv"],
        ["-c", str(config), "--scan", "s1", "--format", "xml"],
    ):
        with pytest.raises(SystemExit) as exited:
            report(*argv)
        assert exited.value.code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: s\ntolerances: {D: {}}\n", encoding="utf-8")
    assert report("-c", str(bad), "--scan", "s1", "--format", "csv") == 2
    assert "tolerances.D" in capsys.readouterr().err
    assert plan("-c", str(bad)) == 2
    missing = tmp_path / "missing" / "r.csv"
    assert report("-c", str(config), "--scan", "s1", "--format", "csv", "-o", str(missing)) == 2
    with pytest.raises(SystemExit) as exited:
        plan("-c", str(config), "--capacity", "-1")
    assert exited.value.code == 2


# -- plan -----------------------------------------------------------------------------------------


def test_plan_prints_json_and_writes_it(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan.json"
    night = NOW.date().isoformat()
    assert plan("-c", str(config), "--date", night, "--json", "--out", str(out)) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text(encoding="utf-8"))
    entries = [e for zone in printed["zones"] for e in zone["entries"]]
    # A-01 and A-02 (class A, counted within 7 days) are not due; the rest were never counted
    assert sorted(e["location"] for e in entries) == ["A-03", "A-04", "A-05", "B-01"]
    assert {z["zone"] for z in printed["zones"]} == {"A", "unknown"}
    assert plan("-c", str(config), "--date", night, "--capacity", "2") == 0
    text = capsys.readouterr().out
    assert text.startswith(f"Cycle-count plan for {night}: 2 locations")
    assert "2 due locations could not fit" in text


# -- publish --------------------------------------------------------------------------------------


def test_publish_sends_one_scan_request_per_gateway_and_zone(
    store: Store,  # noqa: F811 - the fixture
    tmp_path: Path,
    broker: BrokerAddress,
    unique_site: str,
    mqtt_recorder: RecorderFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fill(store, unique_site)
    cfg = write_config(tmp_path / "r.yaml", store, unique_site, broker=broker)
    recorder = mqtt_recorder(broker, f"edgecount/v1/{unique_site}/cmd/+/scan")
    assert plan("-c", str(cfg), "--publish") == 0
    (message,) = recorder.wait_for(1)
    assert message.topic == f"edgecount/v1/{unique_site}/cmd/gw-1/scan"
    assert message.qos == 1
    assert not message.retain
    payload = message.payload
    assert payload is not None
    contract.validate(payload)
    assert (payload["zone"], payload["reason"], payload["requested_by"]) == (
        "A",
        "cycle",
        "planner",
    )
    assert sorted(payload["locations"]) == ["A-03", "A-04", "A-05"]
    err = capsys.readouterr().err
    assert "B-01" in err  # never reported by a gateway: nobody to ask
    assert "published 1 scan requests (3 locations)" in err
    # a configured gateway for the zone takes precedence (as for recounts)
    routed = write_config(
        tmp_path / "routed.yaml", store, unique_site, broker=broker, extra="gateways: {A: gw-9}\n"
    )
    assert plan("-c", str(routed), "--publish", "--json") == 0
    (again,) = recorder.wait_for(1, f"edgecount/v1/{unique_site}/cmd/gw-9/scan")
    assert again.payload is not None
    assert again.payload["request_id"] != payload["request_id"]
    json.loads(capsys.readouterr().out)  # --json output stays JSON: messages go to stderr


def test_publish_without_a_broker_fails(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = config.read_text(encoding="utf-8") + f"mqtt:\n  port: {free_port()}\n"
    cfg = tmp_path / "nobroker.yaml"
    cfg.write_text(text, encoding="utf-8")
    assert plan("-c", str(cfg), "--publish") == 1
    assert "cannot reach the broker" in capsys.readouterr().err


# -- as real processes -----------------------------------------------------------------------


def test_commands_as_processes(config: Path) -> None:
    def edgecount(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edgecount", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    done = edgecount("reconcile", "report", "-c", str(config), "--scan", "s1", "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [HEADER, *csv_lines(SCAN_S1)]
    since = T0.date().isoformat()
    done = edgecount("reconcile", "report", "-c", str(config), "--since", since, "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        HEADER,
        *csv_lines([*SCAN_S2, *SCAN_S1[2:], NOT_SCANNED_B01]),
    ]
    done = edgecount("reconcile", "report", "-c", str(config), "--scan", "x", "--format", "csv")
    assert done.returncode == 1
    done = edgecount("reconcile", "report", "-c", str(config), "--format", "csv")
    assert done.returncode == 2
    done = edgecount("plan", "-c", str(config), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"]["locations"] == 4
