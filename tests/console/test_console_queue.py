"""The Discrepancies page in chromium: the queue live, decisions, bulk approval, limits,
decisions made elsewhere, keyboard shortcuts, filters in the address.

Each test counts locations of its own zone (the location's first letter) and opens the queue
filtered by that zone, so the tests share one reconciler without seeing each other's rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.conftest import BrokerAddress
from tests.console.conftest import (
    DEFAULT_BOOK,
    SKU_A,
    SKU_B,
    Console,
    OpenPage,
    start_console,
    stop_console,
)

PLAIN = [(SKU_A, 10, 5.0, "A"), (SKU_B, 4, 2.5, "B")]  # SKU_A 3 short: 15.00
DEAR = [(SKU_A, 50, 40.0, "A")]  # 40 short: 1,600.00, above ann's limit of 1,000
BOOK = (
    DEFAULT_BOOK
    | {f"{zone}-0{n}": PLAIN for zone in "DGKPV" for n in range(1, 5)}
    | {"E-01": [(SKU_B, 8, 2.5, "B")], "E-02": PLAIN, "G-05": DEAR, "G-06": PLAIN}
)
WAIT = 20_000  # ms: a count goes over MQTT to the reconciler, then the page's live refresh


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, broker: BrokerAddress, pg_url: str
) -> Iterator[Console]:
    """This module's reconciler: the shared book plus a few locations per test's zone."""
    running = start_console(tmp_path_factory.mktemp("queue"), broker, pg_url, book=BOOK)
    try:
        yield running
    finally:
        stop_console(running)


def queue_of(open_page: OpenPage, user: str, zone: str, **options: Any) -> Page:
    """``user``'s queue filtered to ``zone``."""
    return open_page(user, f"/console/discrepancies?zone={zone}", **options).page


def row(page: Page, location: str) -> Locator:
    """The queue's row of ``location``."""
    link = page.get_by_role("link", name=location, exact=True)
    return page.get_by_role("row").filter(has=link)


def discrepancy(console: Console, ident: str) -> dict[str, Any]:
    """``GET /discrepancies/{id}`` as ada."""
    with closing(console.client("ada")) as client:
        answer = client.get(f"/discrepancies/{ident}")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found


def decide(page: Page, title: str, reason: str, note: str = "") -> Locator:
    """Fill the open decision form titled ``title`` and confirm; returns the dialog."""
    dialog = page.get_by_role("dialog", name=title)
    expect(dialog).to_be_visible()
    dialog.get_by_label("Reason").select_option(reason)
    if note:
        dialog.get_by_label("Note").fill(note)
    dialog.get_by_role("button", name="Confirm").click()
    return dialog


def test_a_new_discrepancy_arrives_live_and_approving_it_records_ann(
    console: Console, open_page: OpenPage
) -> None:
    page = queue_of(open_page, "ann", "D")
    expect(page.get_by_text("No discrepancy matches these filters.")).to_be_visible()
    console.count("D-01", {SKU_A: 7, SKU_B: 4}, scan_id="q1")
    line = row(page, "D-01")
    expect(line).to_be_visible(timeout=WAIT)
    expect(line).to_contain_text("Awaiting approval")
    expect(line).to_contain_text(f"{SKU_A}: 10 → 7")
    expect(line).to_contain_text("15.00")
    expect(page.get_by_role("link", name=re.compile(r"^Awaiting approval \(1\)$"))).to_be_visible()
    ident = line.get_attribute("data-id")
    assert ident is not None
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    line.get_by_role("button", name="Approve").click()
    dialog = decide(page, "Approve D-01", "MISCOUNT", "shelf behind")
    expect(dialog).to_be_hidden()
    expect(line).to_have_count(0)
    expect(page.locator("#queue-outcome")).to_have_text("D-01 approved (MISCOUNT).")
    found = discrepancy(console, ident)
    assert found["state"] == "approved"
    assert found["decision"]["by"] == "ann"
    assert (found["decision"]["reason"], found["decision"]["note"]) == ("MISCOUNT", "shelf behind")
    with closing(console.client("ada")) as client:
        decided = client.get("/decisions", params={"limit": 500}).json()["items"]
    mine = [d["payload"] for d in decided if d["payload"]["discrepancy_id"] == ident]
    assert [(d["outcome"], d["by"]) for d in mine] == [("approved", "ann")]


def test_reject_with_a_reason(console: Console, open_page: OpenPage) -> None:
    console.count("D-02", {SKU_A: 10, SKU_B: 1}, scan_id="q2")
    page = queue_of(open_page, "ann", "D")
    line = row(page, "D-02")
    expect(line).to_be_visible(timeout=WAIT)
    ident = line.get_attribute("data-id")
    assert ident is not None
    line.get_by_role("button", name="Reject").click()
    decide(page, "Reject D-02", "DAMAGE")
    expect(line).to_have_count(0)
    found = discrepancy(console, ident)
    assert (found["state"], found["decision"]["by"], found["decision"]["reason"]) == (
        "rejected",
        "ann",
        "DAMAGE",
    )
    # a closed state can be shown, with how it ended
    page.get_by_role("link", name="Rejected", exact=True).click()
    expect(row(page, "D-02")).to_contain_text("rejected by ann (DAMAGE)")
    assert "state=rejected" in page.url


def test_bulk_approve_reports_each_outcome(console: Console, open_page: OpenPage) -> None:
    for n in range(1, 5):
        console.count(f"G-0{n}", {SKU_A: 8, SKU_B: 4}, scan_id="q3")
    console.count("G-05", {SKU_A: 10}, scan_id="q3")
    page = queue_of(open_page, "ann", "G")
    for n in range(1, 6):
        expect(row(page, f"G-0{n}")).to_be_visible(timeout=WAIT)
    ids = {f"G-0{n}": row(page, f"G-0{n}").get_attribute("data-id") for n in range(1, 6)}
    expect(row(page, "G-05")).to_contain_text("above your limit of 1,000.00")
    approve_selected = page.get_by_role("button", name="Approve selected")
    expect(approve_selected).to_be_disabled()
    for n in range(1, 6):
        page.get_by_role("checkbox", name=f"Select G-0{n}").check()
    expect(page.get_by_text("5 selected")).to_be_visible()
    page.get_by_role("heading", name="Discrepancies").click()  # a focused box holds refreshes
    console.count("G-06", {SKU_A: 9, SKU_B: 4}, scan_id="q3")  # a live refresh...
    expect(row(page, "G-06")).to_be_visible(timeout=WAIT)
    for n in range(1, 6):  # ... keeps the selection
        expect(page.get_by_role("checkbox", name=f"Select G-0{n}")).to_be_checked()
    expect(page.get_by_role("checkbox", name="Select G-06")).not_to_be_checked()
    expect(page.get_by_text("5 selected")).to_be_visible()
    approve_selected.click()
    dialog = page.get_by_role("dialog", name="Approve 5 selected")
    expect(dialog).to_be_visible()
    with closing(console.client("ada")) as client:  # meanwhile, someone else decides G-04
        taken = client.post(f"/discrepancies/{ids['G-04']}/approve", json={"reason_code": "THEFT"})
        assert taken.status_code == 200
    expect(row(page, "G-04")).to_have_count(0, timeout=WAIT)  # the live refresh under the form
    decide(page, "Approve 5 selected", "BOOK_ERROR")
    outcome = page.locator("#queue-outcome")
    expect(outcome).to_have_text("3 approved, 1 already decided, 1 above your limit.")
    expect(outcome).to_have_attribute("role", "alert")
    for n in range(1, 4):
        expect(row(page, f"G-0{n}")).to_have_count(0)
    expect(row(page, "G-05")).to_be_visible()
    expect(row(page, "G-06")).to_be_visible()
    for n in range(1, 4):
        found = discrepancy(console, str(ids[f"G-0{n}"]))
        assert (found["decision"]["by"], found["decision"]["reason"]) == ("ann", "BOOK_ERROR")
    assert discrepancy(console, str(ids["G-04"]))["decision"]["by"] == "ada"
    assert discrepancy(console, str(ids["G-05"]))["state"] == "awaiting_approval"


def test_above_the_limit_the_server_refuses_ann_and_ada_approves(
    console: Console, open_page: OpenPage
) -> None:
    console.count("B-01", {SKU_A: 10}, scan_id="q4")
    page = queue_of(open_page, "ann", "B", allowed={403})
    line = row(page, "B-01")
    expect(line).to_be_visible(timeout=WAIT)
    expect(line).to_contain_text("1,600.00")
    expect(line).to_contain_text("above your limit of 1,000.00")
    approve = line.get_by_role("button", name="Approve")
    expect(approve).to_have_accessible_description("above your limit of 1,000.00")
    approve.click()
    dialog = decide(page, "Approve B-01", "THEFT")
    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text("above the approval limit of 1000.00 of ann (approver)")
    expect(dialog.get_by_role("button", name="Confirm")).to_be_disabled()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    ident = line.get_attribute("data-id")
    assert discrepancy(console, str(ident))["state"] == "awaiting_approval"

    admin = queue_of(open_page, "ada", "B")
    line = row(admin, "B-01")
    expect(line).not_to_contain_text("above your limit")
    line.get_by_role("button", name="Approve").click()
    decide(admin, "Approve B-01", "THEFT")
    expect(line).to_have_count(0)
    found = discrepancy(console, str(ident))
    assert (found["state"], found["decision"]["by"]) == ("approved", "ada")


def test_a_decision_made_elsewhere_meanwhile_is_shown_and_not_applied_twice(
    console: Console, open_page: OpenPage
) -> None:
    console.count("K-01", {SKU_A: 6, SKU_B: 4}, scan_id="q5")
    page = queue_of(open_page, "ann", "K", allowed={409})
    line = row(page, "K-01")
    expect(line).to_be_visible(timeout=WAIT)
    ident = line.get_attribute("data-id")
    line.get_by_role("button", name="Approve").click()
    dialog = page.get_by_role("dialog", name="Approve K-01")
    dialog.get_by_label("Reason").select_option("MISCOUNT")
    with closing(console.client("ada")) as client:
        taken = client.post(f"/discrepancies/{ident}/approve", json={"reason_code": "BOOK_ERROR"})
        assert taken.status_code == 200, taken.text
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog.get_by_role("alert")).to_have_text(
        "Already decided: approved by ada (BOOK_ERROR). Nothing was applied again."
    )
    expect(line).to_have_count(0)  # the queue reloaded its fragment
    with closing(console.client("ada")) as client:
        made = client.get("/adjustments", params={"limit": 500}).json()["items"]
    assert [
        a["payload"]["approved_by"] for a in made if a["payload"]["discrepancy_id"] == ident
    ] == ["ada"]


def test_keyboard_moves_checks_and_approves_the_current_row(
    console: Console, open_page: OpenPage
) -> None:
    console.count("P-01", {SKU_A: 2, SKU_B: 4}, scan_id="q6")  # 40.00: first
    console.count("P-02", {SKU_A: 9, SKU_B: 4}, scan_id="q6")  # 5.00: second
    page = queue_of(open_page, "ann", "P")
    first, second = row(page, "P-01"), row(page, "P-02")
    expect(second).to_be_visible(timeout=WAIT)
    expect(first).to_be_visible(timeout=WAIT)
    page.get_by_label("Minimum value").focus()
    page.keyboard.press("j")  # typing: not a shortcut
    expect(page.locator("tr[aria-current]")).to_have_count(0)
    page.get_by_role("heading", name="Discrepancies").click()
    page.keyboard.press("j")
    expect(first).to_have_attribute("aria-current", "true")
    page.keyboard.press("j")
    expect(second).to_have_attribute("aria-current", "true")
    expect(first).not_to_have_attribute("aria-current", "true")
    page.keyboard.press("x")
    expect(page.get_by_role("checkbox", name="Select P-02")).to_be_checked()
    page.keyboard.press("x")
    expect(page.get_by_role("checkbox", name="Select P-02")).not_to_be_checked()
    page.keyboard.press("?")
    shortcuts = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(shortcuts).to_be_visible()
    page.keyboard.press("Escape")
    expect(shortcuts).to_be_hidden()
    page.keyboard.press("a")
    dialog = page.get_by_role("dialog", name="Approve P-02")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.keyboard.press("k")
    expect(first).to_have_attribute("aria-current", "true")
    page.keyboard.press("j")
    page.keyboard.press("a")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Reason").select_option("MISPLACED")
    dialog.get_by_role("button", name="Confirm").click()
    expect(second).to_have_count(0)
    expect(first).to_be_visible()
    assert discrepancy(console, str(first.get_attribute("data-id")))["state"] == "awaiting_approval"


def test_filters_are_in_the_address_and_survive_a_reload(
    console: Console, open_page: OpenPage
) -> None:
    console.count("E-01", {SKU_B: 2}, scan_id="q7")  # class B, 15.00
    console.count("E-02", {SKU_A: 9, SKU_B: 4}, scan_id="q7")  # class A, 5.00
    page = queue_of(open_page, "vic", "E")
    expect(row(page, "E-01")).to_be_visible(timeout=WAIT)
    expect(row(page, "E-02")).to_be_visible(timeout=WAIT)
    assert page.locator("tbody tr").nth(0).get_attribute("data-location") == "E-01"  # largest
    page.get_by_label("ABC class").select_option("A")
    page.get_by_label("State", exact=True).select_option("awaiting_approval")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"zone=E&abc=A&state=awaiting_approval"))
    expect(row(page, "E-01")).to_have_count(0)
    expect(row(page, "E-02").locator(".abc")).to_have_text("A")
    page.reload()
    expect(page.get_by_label("ABC class")).to_have_value("A")
    expect(page.get_by_label("Zone")).to_have_value("E")
    expect(row(page, "E-01")).to_have_count(0)
    expect(row(page, "E-02")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile(r"^Awaiting approval"))).to_have_attribute(
        "aria-current", "page"
    )
    page.get_by_label("ABC class").select_option("")
    page.get_by_label("Minimum value").fill("10")
    page.get_by_role("button", name="Filter").click()
    expect(row(page, "E-01")).to_be_visible()
    expect(row(page, "E-02")).to_have_count(0)
    expect(page.locator("#queue-count")).to_contain_text("1 of 1 discrepancies")


def test_a_viewer_sees_the_queue_without_buttons_on_a_phone(
    console: Console, open_page: OpenPage
) -> None:
    console.count("V-01", {SKU_A: 4, SKU_B: 4}, scan_id="q8")
    page = queue_of(open_page, "vic", "V", phone=True)
    line = row(page, "V-01")
    expect(line).to_be_visible(timeout=WAIT)
    expect(line.get_by_role("button")).to_have_count(0)
    expect(line.get_by_role("checkbox")).to_have_count(0)
    expect(page.get_by_role("button", name="Approve selected")).to_have_count(0)
    link = line.get_by_role("link", name="V-01")
    expect(link).to_have_attribute("href", "/console/locations/V/V-01")
    page.keyboard.press("j")
    page.keyboard.press("a")
    expect(page.locator("#queue-outcome")).to_contain_text("only approvers and admins decide")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px phone"


def test_an_approver_on_a_phone_approves(console: Console, open_page: OpenPage) -> None:
    console.count("V-02", {SKU_A: 9, SKU_B: 4}, scan_id="q9")
    page = queue_of(open_page, "ann", "V", phone=True)
    line = row(page, "V-02")
    expect(line).to_be_visible(timeout=WAIT)
    line.get_by_role("button", name="Approve").click()
    dialog = page.get_by_role("dialog", name="Approve V-02")
    box = dialog.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 390
    decide(page, "Approve V-02", "OTHER", "found on the floor")
    expect(line).to_have_count(0)


def test_bad_filters_are_a_clear_422(console: Console, open_page: OpenPage) -> None:
    page = open_page("vic", "/console/discrepancies?state=closed", allowed={422}).page
    expect(page.get_by_role("alert")).to_contain_text("state: 'closed' is not a state")
    answer = page.goto("/console/discrepancies?abc=D&min_value=-3")
    assert answer is not None
    assert answer.status == 422
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("abc: 'D' is not a class; choose A, B or C")
    expect(alert).to_contain_text("min_value: '-3' is not a number of at least 0")
    expect(page.get_by_role("link", name="Discrepancies")).to_have_attribute("aria-current", "page")
