"""The Map and location pages in chromium, against a real reconciler, broker and PostgreSQL.

The module's reconciler has its own book, a zone per test so that tests do not see each
other's counts: C (states and legend), B (the zone filter), D (a location's page), E (roles
and the phone). Every location of the book holds 10 of SKU_A (class A) and 4 of SKU_B.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.publish as mqtt_publish
import pytest
from playwright.sync_api import Page, expect

from edgecount import contract
from tests.conftest import BrokerAddress
from tests.console.conftest import (
    SKU_A,
    SKU_B,
    Console,
    OpenPage,
    start_console,
    stop_console,
)

BOOK = {
    location: [(SKU_A, 10, 5.0, "A"), (SKU_B, 4, 2.5, "B")]
    for location in (
        *(f"A-01-0{n}" for n in range(1, 4)),
        *(f"B-0{a}-0{n}" for a in (1, 2) for n in (1, 2)),
        *(f"C-01-0{n}" for n in range(1, 4)),
        *(f"C-02-0{n}" for n in range(1, 3)),
        "D-01-01",
        "E-01-01",
    )
}
PHONE_WIDTH = 390


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, broker: BrokerAddress, pg_url: str
) -> Iterator[Console]:
    """This module's reconciler (its own book; replaces the shared one of conftest.py)."""
    running = start_console(tmp_path_factory.mktemp("map"), broker, pg_url, book=BOOK)
    try:
        yield running
    finally:
        stop_console(running)


def publish_count(
    console: Console,
    location: str,
    items: dict[str, int],
    *,
    source: str,
    scan_id: str,
    at: datetime,
) -> None:
    """A count of any source by the camera gateway ``gw-cam`` (fused: both figures agree)."""
    total = sum(items.values())
    figure = {"total": total, "complete": True}
    fusion = None
    if source == "fused":
        fusion = {
            "rfid": figure,
            "vision": figure,
            "disagreement": False,
            "tolerance": {"abs": 0, "pct": 0.1},
        }
    zone = location[0]
    draft = contract.count_payload(
        gateway="gw-cam", site=console.site, zone=zone, location=location, scan_id=scan_id,
        items=[{"sku": sku, "qty": qty} for sku, qty in items.items()], source=source,
        observed_at=at, fusion=fusion,
    )  # fmt: skip
    console.seq["gw-cam"] = console.seq.get("gw-cam", 0) + 1
    payload = contract.with_sequence(draft, console.seq["gw-cam"])
    mqtt_publish.single(
        f"{console.root}/count/{zone}/{location}",
        json.dumps(payload),
        qos=1,
        retain=True,
        hostname=console.broker.host,
        port=console.broker.port,
    )


def cell(page: Page, location: str, state: str) -> Any:
    """The map's square of a location, by its accessible name."""
    return page.get_by_role("link", name=f"{location}: {state}", exact=True)


def test_states_and_legend(console: Console, open_page: OpenPage) -> None:
    zone_c = ["C-01-01", "C-01-02", "C-01-03", "C-02-01", "C-02-02"]
    console.scan("C", "c-1", "completed", zone_c)  # the scan tells the zone of them all
    console.count("C-01-01", {SKU_A: 10, SKU_B: 4}, scan_id="c-1")
    console.count("C-01-02", {SKU_A: 7, SKU_B: 4}, scan_id="c-1")
    console.count("C-01-03", {SKU_A: 3}, scan_id="c-1", complete=False)
    page = open_page("vic", "/console/map?zone=C").page
    expect(page.get_by_role("heading", name="Map", level=1)).to_be_visible()
    expect(cell(page, "C-01-01", "match")).to_have_class(re.compile(r"\bcell match\b"))
    expect(cell(page, "C-01-02", "awaiting approval")).to_have_class(
        re.compile(r"\bawaiting_approval\b")
    )
    expect(cell(page, "C-01-03", "incomplete")).to_have_class(re.compile(r"\bincomplete\b"))
    for location in ("C-02-01", "C-02-02"):
        expect(cell(page, location, "not scanned")).to_have_class(re.compile(r"\bnot_scanned\b"))
    legend = page.get_by_role("list", name="Legend")
    for label, n in (
        ("match", 1),
        ("exception", 0),
        ("awaiting approval", 1),
        ("accepted", 0),
        ("incomplete", 1),
        ("not scanned", 2),
    ):
        expect(legend.get_by_role("link", name=f"{label} {n}", exact=True)).to_be_visible()
    # aisles C-01 and C-02, and no location of another zone
    expect(page.locator(".aisle-name")).to_have_text(["C-01", "C-02"])
    expect(page.locator("a.cell")).to_have_count(5)
    # the legend filters by state, within the zone
    legend.get_by_role("link", name="not scanned 2").click()
    expect(page).to_have_url(re.compile(r"zone=C&state=not_scanned"))
    expect(page.locator("a.cell")).to_have_count(2)
    expect(page.get_by_label("State")).to_have_value("not_scanned")


def test_the_zone_filter_survives_a_reload(console: Console, open_page: OpenPage) -> None:
    console.scan("B", "b-1", "completed", ["B-01-01", "B-01-02", "B-02-01", "B-02-02"])
    console.count("B-01-01", {SKU_A: 10, SKU_B: 4}, scan_id="b-1")
    page = open_page("vic").page
    page.get_by_role("link", name="Map", exact=True).click()
    expect(page.get_by_role("heading", name="Map", level=1)).to_be_visible()
    expect(cell(page, "A-01-01", "not scanned")).to_be_visible()
    page.get_by_label("Zone").select_option("B")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"[?&]zone=B\b"))
    page.wait_for_load_state()  # a reload would cut the styles and scripts still loading
    page.reload()
    expect(page.get_by_label("Zone")).to_have_value("B")
    expect(cell(page, "B-01-01", "match")).to_be_visible()
    expect(page.locator("a.cell")).to_have_count(4)
    expect(cell(page, "A-01-01", "not scanned")).to_have_count(0)
    expect(page.get_by_role("heading", name=re.compile(r"^Zone B"))).to_be_visible()


def _discrepancy_of(console: Console, location: str) -> int:
    with closing(console.client("ada")) as client:
        found = client.get("/discrepancies")
        assert found.status_code == 200, found.text
    (item,) = [d for d in found.json() if d["location"] == location]
    return int(item["id"])


def test_a_location_s_page(console: Console, open_page: OpenPage) -> None:
    now = datetime.now(UTC)
    console.count("D-01-01", {SKU_A: 10, SKU_B: 4}, scan_id="d-1", at=now - timedelta(minutes=50))
    publish_count(
        console, "D-01-01", {SKU_A: 7, SKU_B: 4}, source="vision", scan_id="d-2",
        at=now - timedelta(minutes=40),
    )  # fmt: skip
    page = open_page("vic", "/console/map?zone=D").page
    expect(cell(page, "D-01-01", "awaiting approval")).to_be_visible()

    with closing(console.client("ada")) as client:
        decided = client.post(
            f"/discrepancies/{_discrepancy_of(console, 'D-01-01')}/approve",
            json={"reason_code": "MISCOUNT", "note": "three on the floor"},
        )
        assert decided.status_code == 200, decided.text
        moved = client.post(
            "/movements",
            json={
                "movements": [
                    {
                        "movement_id": "mv-d-1",
                        "ts": datetime.now(UTC).isoformat(),
                        "location": "D-01-01",
                        "sku": SKU_B,
                        "qty_delta": 2,
                        "user": "wms",
                        "doc": "GR-42",
                    }
                ]
            },
        )
        assert moved.status_code == 200, moved.text
    # the map follows live, then its square opens the location's page
    cell(page, "D-01-01", "accepted").click()
    expect(page).to_have_url(re.compile(r"/console/locations/D/D-01-01$"))
    expect(page.get_by_role("heading", name="Location D-01-01", level=1)).to_be_visible()

    counts = page.get_by_role("table", name="Counts")
    rows = counts.get_by_role("row")
    expect(rows).to_have_count(3)  # the header and two counts, newest first
    expect(rows.nth(1)).to_contain_text("vision")
    expect(rows.nth(1)).to_contain_text("outside tolerance")
    expect(rows.nth(2)).to_contain_text("rfid")
    expect(rows.nth(2)).to_contain_text("within tolerance")
    expect(page.locator("svg rect.bar.vision")).to_have_count(1)
    expect(page.locator("svg rect.bar.rfid")).to_have_count(1)

    book = page.get_by_role("table", name="Book")
    # SKU_A: 10 adjusted by -3 (the approval); SKU_B: 4 + 2 received
    quantity = 1  # the column
    expect(book.get_by_role("row", name=SKU_A).get_by_role("cell").nth(quantity)).to_have_text("7")
    expect(book.get_by_role("row", name=SKU_B).get_by_role("cell").nth(quantity)).to_have_text("6")
    movements = page.get_by_role("table", name="Movements")
    expect(movements.get_by_role("row")).to_have_count(2)
    expect(movements).to_contain_text("GR-42")
    expect(movements).to_contain_text("+2")

    decisions = page.get_by_role("table", name="Discrepancies")
    expect(decisions).to_contain_text("approved by ada")
    expect(decisions).to_contain_text("MISCOUNT")
    expect(decisions).to_contain_text("three on the floor")
    expect(decisions).to_contain_text(f"{SKU_A}: book 10, counted 7 (-3)")


def test_the_count_request_form_is_for_approvers(console: Console, open_page: OpenPage) -> None:
    path = "/console/locations/E/E-01-01"
    console.count("E-01-01", {SKU_A: 10, SKU_B: 4}, scan_id="e-1")
    viewer = open_page("vic", path).page
    expect(viewer.get_by_role("heading", name="Location E-01-01")).to_be_visible()
    expect(viewer.get_by_role("form", name="Request a count")).to_have_count(0)
    approver = open_page("ann", path).page
    form = approver.get_by_role("form", name="Request a count")
    expect(form).to_have_attribute("data-api", "/tasks")
    expect(form.get_by_label("Note")).to_be_editable()
    expect(form.get_by_role("button", name="Request a count")).to_be_enabled()
    expect(form.locator("input[name=zone]")).to_have_value("E")
    expect(form.locator("input[name=location]")).to_have_value("E-01-01")


def test_a_book_location_no_gateway_reported_is_in_the_unknown_zone(
    console: Console, open_page: OpenPage
) -> None:
    page = open_page("vic", "/console/map?zone=unknown").page
    expect(cell(page, "A-01-02", "not scanned")).to_have_attribute(
        "href", "/console/locations/unknown/A-01-02"
    )
    cell(page, "A-01-02", "not scanned").click()
    expect(page.get_by_role("heading", name="Location A-01-02")).to_be_visible()
    expect(page.get_by_text("No count of this location yet.")).to_be_visible()


def test_unknown_locations_and_bad_filters(console: Console) -> None:
    # (chromium logs any 404 document as a console error: these are checked over HTTP)
    with closing(console.client("vic")) as client:
        html = {"Accept": "text/html"}
        unknown = client.get("/console/locations/A/NOWHERE", headers=html)
        assert unknown.status_code == 404
        assert "no location &#39;NOWHERE&#39; in zone &#39;A&#39;" in unknown.text
        assert "<h1" in unknown.text  # the console's error page, not JSON
        assert client.get("/console/locations/Q/C-01-01", headers=html).status_code == 404
        for query, field in (("state=bogus", "state"), ("days=0", "days"), ("days=x", "days")):
            answer = client.get(f"/console/map?{query}")
            assert answer.status_code == 422, query
            assert answer.json()["detail"].startswith(f"{field}:"), answer.text


def test_the_map_fits_a_phone(console: Console, open_page: OpenPage) -> None:
    page = open_page("vic", "/console/map", phone=True).page
    expect(cell(page, "E-01-01", "match").or_(cell(page, "E-01-01", "not scanned"))).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
    page.goto("/console/locations/E/E-01-01")
    expect(page.get_by_role("heading", name="Location E-01-01")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH


def test_a_folded_zone_stays_folded(console: Console, open_page: OpenPage) -> None:
    # A-01-0x were never reported by a gateway: they lie in the zone "unknown"
    page = open_page("vic", "/console/map").page
    expect(cell(page, "A-01-01", "not scanned")).to_be_visible()
    page.get_by_role("heading", name=re.compile(r"^Zone unknown\b")).click()
    expect(cell(page, "A-01-01", "not scanned")).to_be_hidden()
    page.wait_for_load_state()
    page.reload()
    expect(page.get_by_role("heading", name=re.compile(r"^Zone unknown\b"))).to_be_visible()
    expect(cell(page, "A-01-01", "not scanned")).to_be_hidden()
