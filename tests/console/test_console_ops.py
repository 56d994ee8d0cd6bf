"""The console's Reports, Book and Gateways pages in chromium, against a real reconciler.

Each test uses locations, scans and gateways of its own (the ``console`` fixture is shared by
the module): Reports zone A's A-05/A-06 and B-01 with gateway gw-1, Book B-02, Gateways zone A
with gw-7 and zone C with gw-6.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from playwright.sync_api import FilePayload, Page, expect

from tests.conftest import RecorderFactory
from tests.console.conftest import SKU_A, SKU_B, Console, OpenPage

CSV_HEADER = "location,sku,book_qty,counted_qty,diff,diff_value,status"


def downloaded(page: Page, link: str) -> tuple[str, str]:
    """Click a download link; (the file name suggested, the file's text)."""
    with page.expect_download() as info:
        page.get_by_role("link", name=link).click()
    download = info.value
    path = download.path()
    return download.suggested_filename, Path(path).read_text(encoding="utf-8")


def book_qty(console: Console, location: str, sku: str) -> int | None:
    """A record's book now, through ``GET /book?location=``."""
    client = console.client("vic")
    try:
        answer = client.get("/book", params={"location": location})
    finally:
        client.close()
    assert answer.status_code == 200, answer.text
    lines = {line["sku"]: line["qty"] for line in answer.json()["lines"]}
    return lines.get(sku)


# -- Reports ------------------------------------------------------------------------------------


def test_reports_show_tonight_s_figures_and_download_csv_and_json(
    console: Console, open_page: OpenPage
) -> None:
    page = open_page("vic").page
    console.scan("A", "rep-1", "completed", ["A-05", "A-06"])
    console.count("A-05", {SKU_A: 10, SKU_B: 4}, scan_id="rep-1")
    console.count("A-06", {SKU_A: 8, SKU_B: 4}, scan_id="rep-1")
    expect(page.locator("tr[data-scan='rep-1']")).to_contain_text("2 / 2")  # ingested

    page.get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Reports")
    exceptions = page.locator("section#exceptions")
    expect(exceptions.get_by_role("row").filter(has_text="A-06")).to_contain_text("short")
    expect(page.get_by_role("img", name="Heat map of zone A")).to_be_visible()

    page.get_by_label("Scan", exact=True).select_option("rep-1")
    page.get_by_role("button", name="Show report").click()
    expect(page).to_have_url(re.compile(r"scan=rep-1"))
    figures = page.get_by_label("Figures")
    expect(figures.locator("[data-figure='Records counted'] .figure")).to_have_text("4")
    expect(figures.locator("[data-figure='Exceptions'] .figure")).to_have_text("1")
    expect(figures.locator("[data-figure='IRA'] .figure")).to_have_text("75.00 %")
    expect(figures.locator("[data-figure='Exception value'] .figure")).to_have_text("10.00")

    name, text = downloaded(page, "Download CSV")
    assert re.fullmatch(r"edgecount-report-.+-\d{4}-\d{2}-\d{2}\.csv", name), name
    assert text.splitlines()[0].startswith(CSV_HEADER + ",")
    rows = {row["location"] + "/" + row["sku"]: row for row in csv.DictReader(io.StringIO(text))}
    assert set(rows) == {f"A-05/{SKU_A}", f"A-05/{SKU_B}", f"A-06/{SKU_A}", f"A-06/{SKU_B}"}
    short = rows[f"A-06/{SKU_A}"]
    assert (short["book_qty"], short["counted_qty"], short["diff"]) == ("10", "8", "-2")
    assert (short["diff_value"], short["status"]) == ("-10.00", "short")

    name, text = downloaded(page, "Download JSON")
    assert name.endswith(".json")
    document = json.loads(text)
    assert document["scope"].startswith("scan rep-1")
    assert document["summary"]["records_counted"] == 4
    assert {(r["location"], r["status"]) for r in document["rows"] if r["sku"] == SKU_A} == {
        ("A-05", "match"),
        ("A-06", "short"),
    }


def test_reports_on_a_phone_keep_to_the_screen(console: Console, open_page: OpenPage) -> None:
    page = open_page("vic", "/console/reports", phone=True).page
    expect(page.get_by_role("heading", level=1)).to_have_text("Reports")
    expect(page.get_by_role("link", name="Download CSV")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


# -- Book ---------------------------------------------------------------------------------------


def choose(page: Page, name: str, text: str) -> None:
    payload: FilePayload = {"name": name, "mimeType": "text/csv", "buffer": text.encode()}
    page.get_by_label("Book file (CSV)").set_input_files(files=[payload])


def test_a_bad_book_file_lists_its_bad_lines_and_changes_nothing(
    console: Console, open_page: OpenPage
) -> None:
    page = open_page("ann", "/console/book").page
    choose(
        page,
        "bad.csv",
        f"location,sku,qty,unit_cost,abc\nB-02,{SKU_B},9,2.5,C\nB-02,{SKU_A},lots,1.0,C\n"
        f"B-03,{SKU_A},1,1.0,Q\n",
    )
    page.get_by_role("button", name="Preview import").click()
    bad = page.get_by_role("table", name="Bad lines")
    expect(bad.get_by_role("row")).to_have_count(3)  # the header and two bad lines
    expect(bad.get_by_role("row").nth(1).get_by_role("cell")).to_have_text(
        ["3", "qty", re.compile(".+")]
    )
    expect(bad.get_by_role("row").nth(2).get_by_role("cell")).to_have_text(
        ["4", "abc", re.compile("A, B or C")]
    )
    expect(page.get_by_role("alert")).to_contain_text("2 bad lines: nothing would be imported")
    expect(page.get_by_role("button", name="Apply import")).to_have_count(0)
    assert book_qty(console, "B-02", SKU_B) == 8


def test_a_good_book_file_is_previewed_then_applied(console: Console, open_page: OpenPage) -> None:
    page = open_page("ann", "/console/book").page
    choose(page, "b02.csv", f"location,sku,qty,unit_cost,abc\nB-02,{SKU_B},11,2.5,C\n")
    page.get_by_label("Only the locations in the file").check()
    page.get_by_role("button", name="Preview import").click()
    changes = page.get_by_role("table", name="Changes")
    expect(changes.get_by_role("row").nth(1).get_by_role("cell")).to_have_text(
        ["changed", "B-02", SKU_B, "8", "11", "2.5", "2.5", "C → C"]
    )
    expect(page.locator("[data-preview-summary]")).to_contain_text("1 changed")
    assert book_qty(console, "B-02", SKU_B) == 8  # a preview applies nothing

    page.get_by_role("button", name="Apply import").click()
    expect(page.locator("[data-book-result]")).to_contain_text("Imported 1 record from b02.csv")
    expect(page.locator("[data-snapshot]")).to_contain_text("b02.csv")
    assert book_qty(console, "B-02", SKU_B) == 11
    assert book_qty(console, "B-01", SKU_A) == 50  # kept: only B-02 was replaced

    page.get_by_label("Location or SKU").fill("B-02")
    page.get_by_role("button", name="Search").click()
    found = page.get_by_role("table", name="Records found")
    expect(found.get_by_role("row").nth(1)).to_contain_text("11")


def test_a_viewer_sees_the_book_but_no_import_form(console: Console, open_page: OpenPage) -> None:
    page = open_page("vic", "/console/book").page
    expect(page.get_by_role("heading", level=1)).to_have_text("Book")
    expect(page.get_by_role("table", name="Book by class")).to_be_visible()
    expect(page.get_by_role("heading", name="Import")).to_have_count(0)
    expect(page.get_by_label("Book file (CSV)")).to_have_count(0)
    client = console.client("vic")
    try:
        answer = client.post(
            "/book/preview", content=b"location,sku\n", headers={"Content-Type": "text/csv"}
        )
    finally:
        client.close()
    assert answer.status_code == 403


# -- Gateways -----------------------------------------------------------------------------------


def test_gateways_show_status_and_scan_now_publishes_a_scan_request(
    console: Console, open_page: OpenPage, mqtt_recorder: RecorderFactory
) -> None:
    recorder = mqtt_recorder(console.broker, f"{console.root}/cmd/#")
    console.status("gw-7")
    console.scan("A", "gw7-night", "completed", ["A-03", "A-04"], gateway="gw-7")
    console.count("A-03", {SKU_A: 10, SKU_B: 4}, scan_id="gw7-night", gateway="gw-7")
    page = open_page("ann", "/console/gateways").page
    gateway = page.locator("section[data-gateway='gw-7']")
    expect(gateway.locator("[data-state]")).to_have_text("online")
    row = gateway.locator("tr[data-zone='A']")
    expect(row).to_contain_text("gw7-night")
    expect(row).to_contain_text("1 / 2")
    expect(row.get_by_text("1/1 ok")).to_be_visible()  # the readers of that scan

    row.get_by_role("button", name="Scan now").click()
    (sent,) = recorder.wait_for(1, f"{console.root}/cmd/gw-7/scan", timeout=20)
    assert sent.payload is not None
    assert sent.payload["schema"] == "edgecount.scan-request/1"
    assert (sent.payload["zone"], sent.payload["requested_by"]) == ("A", "ann")
    expect(page.locator("#live-status")).to_have_text("Scan request for zone A sent to gw-7.")

    console.status("gw-7", "offline")
    expect(gateway.locator("[data-state]")).to_have_text("offline")
    expect(
        gateway.locator("tr[data-zone='A']").get_by_role("button", name="Scan now")
    ).to_be_disabled()
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1


def test_a_viewer_gets_no_scan_now_and_the_api_refuses(
    console: Console, open_page: OpenPage
) -> None:
    console.status("gw-6")
    console.scan("C", "gw6-night", "started", ["C-01"], gateway="gw-6")
    page = open_page("vic", "/console/gateways", phone=True).page
    row = page.locator("section[data-gateway='gw-6'] tr[data-zone='C']")
    expect(row).to_contain_text("gw6-night")
    expect(page.get_by_role("button", name="Scan now")).to_have_count(0)
    viewer, approver = console.client("vic"), console.client("ann")
    try:
        answer = viewer.post("/scan-requests", json={"zone": "C"})
        unknown = approver.post("/scan-requests", json={"zone": "no-such-zone"})
    finally:
        viewer.close()
        approver.close()
    assert answer.status_code == 403
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "zone"]
