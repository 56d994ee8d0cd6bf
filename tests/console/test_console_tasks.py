"""Count tasks in chromium: a counter counts blind on a phone, approvers hand tasks out, the
engine opens tasks by itself, and what the REST API refuses."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.publish as mqtt_publish
import pytest
from playwright.sync_api import Locator, Page, expect

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
from tests.pgdb import fresh_database

WAIT_SECONDS = 30.0
FUSED_SEQ = itertools.count(1)
FUSION = {
    "rfid": {"total": 14, "complete": True},
    "vision": {"total": 19, "complete": True, "confidence": 0.9},
    "disagreement": True,
    "tolerance": {"abs": 1, "pct": 0.05},
}
# Chromium on Linux has no BarcodeDetector and this machine no camera: a stand-in for both,
# loaded before the page's own script. The "camera" is a canvas's stream; the "detector"
# reads SKU_B (as an EAN-13) from any frame.
FAKE_SCANNER = """
window.BarcodeDetector = class {
  static async getSupportedFormats() { return ["ean_13"]; }
  async detect() { return [{ rawValue: "4012345000030", format: "ean_13" }]; }
};
const getUserMedia = async () => {
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 48;
  canvas.getContext("2d").fillRect(0, 0, 64, 48);
  return canvas.captureStream(5);
};
if (navigator.mediaDevices) navigator.mediaDevices.getUserMedia = getUserMedia;
else Object.defineProperty(navigator, "mediaDevices", { value: { getUserMedia } });
"""


_CLIENTS: dict[tuple[str, str], httpx.Client] = {}


@pytest.fixture(scope="module", autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    for client in _CLIENTS.values():
        client.close()
    _CLIENTS.clear()


def client(console: Console, user: str) -> httpx.Client:
    """A signed-in client of ``user`` (one per console and user: signing in is slow)."""
    key = (console.url, user)
    if key not in _CLIENTS:
        _CLIENTS[key] = console.client(user)
    return _CLIENTS[key]


def wait_until(check: Callable[[], Any], what: str) -> Any:
    """Ask ``check`` until it answers something true (the service ingests in the background)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)  # polling a condition, not synchronising on a guess
    raise AssertionError(f"waited {WAIT_SECONDS} s for {what}")


def open_discrepancy(console: Console, location: str) -> dict[str, Any]:
    """The discrepancy open at ``location`` once the service has ingested the count."""
    ada = client(console, "ada")

    def found() -> dict[str, Any] | None:
        items = ada.get("/discrepancies").json()
        return next((d for d in items if d["location"] == location), None)

    return wait_until(found, f"a discrepancy at {location}")  # type: ignore[no-any-return]


def discrepancy(console: Console, ident: int) -> dict[str, Any]:
    answer = client(console, "ada").get(f"/discrepancies/{ident}")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def tasks_at(console: Console, location: str) -> list[dict[str, Any]]:
    answer = client(console, "ada").get("/tasks", params={"location": location})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def create_task(console: Console, location: str, **fields: Any) -> dict[str, Any]:
    body = {"location": location, "zone": location[0], **fields}
    answer = client(console, "ann").post("/tasks", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def publish_fused(console: Console, location: str, items: dict[str, int], scan_id: str) -> None:
    """A fused count whose RFID and vision figures disagree, from gateway ``gw-9``."""
    zone = location[0]
    draft = contract.count_payload(
        gateway="gw-9",
        site=console.site,
        zone=zone,
        location=location,
        scan_id=scan_id,
        items=[{"sku": sku, "qty": qty} for sku, qty in items.items()],
        source="fused",
        fusion=FUSION,
        observed_at=datetime.now(UTC),
    )
    payload = contract.with_sequence(draft, next(FUSED_SEQ))
    mqtt_publish.single(
        f"{console.root}/count/{zone}/{location}",
        json.dumps(payload),
        qos=1,
        retain=True,
        hostname=console.broker.host,
        port=console.broker.port,
    )


def card(page: Page, location: str) -> Locator:
    """The task card of ``location`` on the counter's list."""
    return page.locator("article.task-card").filter(
        has=page.get_by_role("heading", name=re.compile(rf"^{location}\b"))
    )


def enter(task: Locator, lines: list[tuple[str, int]]) -> None:
    """Type the lines of a count into a task card (adding lines as needed)."""
    for index, (sku, qty) in enumerate(lines):
        if index:
            task.get_by_role("button", name="Add another SKU").click()
        task.get_by_label("SKU").nth(index).fill(sku)
        task.get_by_label("Quantity").nth(index).fill(str(qty))


# -- the blind count -------------------------------------------------------------------------------


def test_a_counter_counts_blind_on_a_phone_and_the_discrepancy_resolves(
    console: Console, open_page: OpenPage
) -> None:
    console.count("A-03", {SKU_A: 7, SKU_B: 4}, scan_id="t1")
    flagged = open_discrepancy(console, "A-03")
    assert flagged["state"] == "awaiting_approval"

    approver = open_page("ann", "/console/tasks").page
    new = approver.locator("form.new-task")
    new.get_by_label("Location").fill("A-03")
    new.get_by_label("Zone").fill("A")
    new.get_by_label("Assign to").select_option("cole")
    new.get_by_role("button", name="Create task").click()
    expect(approver.locator("#live-status")).to_have_text("Done: task created.")
    expect(
        approver.locator("table[aria-label='Open count tasks'] tr").filter(has_text="A-03")
    ).to_have_count(1)
    (task,) = tasks_at(console, "A-03")
    assert (task["assigned_to"], task["discrepancy_id"], task["reason"]) == (
        "cole",
        flagged["id"],
        "requested",
    )

    page = open_page("cole", "/console/tasks", phone=True).page
    mine = card(page, "A-03")
    expect(mine).to_be_visible()
    expect(mine).to_contain_text("Asked for")
    expect(mine).to_contain_text("by ann")
    # blind: no figure of the book on the counter's page (the card's time line aside)
    shown = mine.evaluate(
        "el => { const c = el.cloneNode(true); c.querySelector('.task-meta').remove();"
        " return c.innerText; }"
    )
    assert not re.search(r"\b(10|4)\b", shown), shown
    assert "book_qty" not in page.content()
    # fits a phone: nothing wider than the screen, a thumb-sized submit button
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    submit = mine.get_by_role("button", name="Submit count")
    box = submit.bounding_box()
    assert box is not None
    assert box["height"] >= 44
    scanning = page.evaluate(
        "'BarcodeDetector' in window"
        " && !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)"
    )
    scan = mine.get_by_role("button", name="Scan barcode")
    if scanning:
        expect(scan).to_be_visible()
    else:
        expect(scan).to_be_hidden()

    enter(mine, [(SKU_A, 10), (SKU_B, 4)])
    submit.click()
    expect(page.locator("#live-status")).to_have_text("Count of A-03 sent.")
    expect(mine).to_have_count(0)
    closed = page.locator("table[aria-label='Closed count tasks'] tr").filter(has_text="A-03")
    expect(closed).to_contain_text("done")
    expect(closed).to_contain_text("cole")

    assert discrepancy(console, flagged["id"])["state"] == "resolved"
    (done,) = tasks_at(console, "A-03")
    assert (done["state"], done["count_msg_id"]) == ("done", f"console:{task['id']}")


def test_a_wrong_count_keeps_the_discrepancy_and_a_second_submit_conflicts(
    console: Console, open_page: OpenPage
) -> None:
    console.count("A-04", {SKU_A: 7, SKU_B: 4}, scan_id="t2")
    flagged = open_discrepancy(console, "A-04")
    task = create_task(console, "A-04", assigned_to="cole")
    page = open_page("cole", "/console/tasks").page
    mine = card(page, "A-04")
    enter(mine, [(SKU_A, 7), (SKU_B, 4)])
    mine.get_by_role("button", name="Submit count").click()
    expect(mine).to_have_count(0)
    after = discrepancy(console, flagged["id"])
    assert after["state"] == "awaiting_approval"
    assert (after["count_msg_id"], after["scan_id"]) == (
        f"console:{task['id']}",
        f"manual-{task['id']}",
    )
    body = {"items": [{"sku": SKU_A, "qty": 10}]}
    again = client(console, "cole").post(f"/tasks/{task['id']}/count", json=body)
    assert again.status_code == 409
    assert "is done" in again.json()["detail"]
    assert discrepancy(console, flagged["id"])["count_msg_id"] == f"console:{task['id']}"


def test_a_counter_sees_only_their_and_unassigned_tasks_and_counts_no_other(
    console: Console, open_page: OpenPage
) -> None:
    theirs = create_task(console, "A-05", assigned_to="ann")
    page = open_page("cole", "/console/tasks").page
    expect(page.get_by_role("heading", name="Count tasks")).to_be_visible()
    expect(card(page, "A-05")).to_have_count(0)
    body = {"items": [{"sku": SKU_A, "qty": 1}]}
    refused = client(console, "cole").post(f"/tasks/{theirs['id']}/count", json=body)
    assert refused.status_code == 403
    assert refused.json()["detail"] == f"count task {theirs['id']} is assigned to ann, not cole"
    assert tasks_at(console, "A-05")[0]["state"] == "open"
    # given back to anybody, it appears on the counter's page by itself (live)
    client(console, "ann").post(f"/tasks/{theirs['id']}/cancel", json={"note": "wrong aisle"})
    unassigned = create_task(console, "A-05", note="top shelf")
    mine = card(page, "A-05")
    expect(mine).to_contain_text("for anybody")
    expect(mine).to_contain_text("top shelf")
    # what is typed survives a live reload of the page
    mine.get_by_label("SKU").fill(SKU_A)
    mine.get_by_label("Quantity").fill("3")
    page.get_by_role("heading", name="Count tasks").click()  # the field loses focus
    create_task(console, "B-02")
    expect(card(page, "B-02")).to_be_visible()
    expect(card(page, "A-05").get_by_label("SKU")).to_have_value(SKU_A)
    expect(card(page, "A-05").get_by_label("Quantity")).to_have_value("3")
    assert unassigned["assigned_to"] is None


def test_a_bad_line_is_named_and_nothing_is_counted(console: Console, open_page: OpenPage) -> None:
    task = create_task(console, "A-02", assigned_to="cole")
    # refused in the page: no request goes out (an HTTP error would fail the test)
    page = open_page("cole", "/console/tasks", phone=True).page
    mine = card(page, "A-02")
    submit = mine.get_by_role("button", name="Submit count")
    submit.click()
    expect(mine.get_by_role("alert")).to_contain_text("Enter at least one SKU")
    enter(mine, [(SKU_A, 10), ("4012345000031", 4)])  # a wrong check digit
    submit.click()
    expect(mine.get_by_role("alert")).to_contain_text(
        "Line 2, SKU: GTIN 4012345000031 has check digit 1, expected 0"
    )
    mine.get_by_label("Quantity").nth(0).fill("-2")
    submit.click()
    expect(mine.get_by_role("alert")).to_contain_text("Line 1: the quantity must be a whole number")
    assert tasks_at(console, "A-02")[0]["state"] == "open"
    assert task["state"] == "open"


def test_a_scanned_barcode_fills_the_sku(console: Console, open_page: OpenPage) -> None:
    create_task(console, "A-06", assigned_to="cole")
    watched = open_page("cole", "/console/tasks", phone=True)
    page = watched.page
    page.add_init_script(FAKE_SCANNER)
    page.reload()
    mine = card(page, "A-06")
    mine.get_by_role("button", name="Scan barcode").click()
    expect(mine.get_by_label("SKU")).to_have_value("4012345000030")
    expect(page.get_by_role("dialog", name="Scan barcode")).to_have_count(0)
    expect(mine.get_by_label("Quantity")).to_be_focused()
    mine.get_by_label("Quantity").fill("4")
    mine.get_by_role("button", name="Add another SKU").click()
    mine.get_by_label("SKU").nth(1).fill(SKU_A)
    mine.get_by_label("Quantity").nth(1).fill("10")
    mine.get_by_role("button", name="Submit count").click()
    expect(mine).to_have_count(0)
    (done,) = tasks_at(console, "A-06")
    assert done["state"] == "done"


# -- approvers -------------------------------------------------------------------------------------


def test_an_approver_assigns_and_cancels(console: Console, open_page: OpenPage) -> None:
    task = create_task(console, "B-01")
    page = open_page("ann", "/console/tasks").page
    row = page.locator(f"tr[data-task-row='{task['id']}']").filter(has_text="B-01")
    row.get_by_label(re.compile("Assignee of task")).select_option("cole")
    row.get_by_role("button", name="Assign").click()
    expect(page.locator("#live-status")).to_have_text("Done: assigned.")
    assert tasks_at(console, "B-01")[0]["assigned_to"] == "cole"
    page.locator(f"tr[data-task-row='{task['id']}']").get_by_role(
        "button", name="Cancel task"
    ).click()
    open_rows = page.locator("table[aria-label='Open count tasks'] tr").filter(has_text="B-01")
    expect(open_rows).to_have_count(0)
    assert tasks_at(console, "B-01")[0]["state"] == "cancelled"


def test_a_viewer_may_not_open_the_page(console: Console) -> None:
    answer = client(console, "vic").get("/console/tasks", headers={"Accept": "text/html"})
    assert answer.status_code == 403
    assert "counter" in answer.text


# -- tasks the engine opens ------------------------------------------------------------------------


def test_a_fused_disagreement_opens_a_task_live(console: Console, open_page: OpenPage) -> None:
    page = open_page("cole", "/console/tasks", phone=True).page
    expect(page.locator("#live-status")).to_have_text("Live")
    publish_fused(console, "A-01", {SKU_A: 10, SKU_B: 4}, scan_id="fused-1")  # matches the book
    mine = card(page, "A-01")
    expect(mine).to_contain_text("RFID and camera disagree")
    expect(mine).to_contain_text("by reconciler")
    (task,) = tasks_at(console, "A-01")
    assert (task["reason"], task["assigned_to"], task["discrepancy_id"]) == (
        "disagreement",
        None,
        None,
    )


@pytest.fixture(scope="module")
def recounting(
    tmp_path_factory: pytest.TempPathFactory, broker: BrokerAddress
) -> Iterator[Console]:
    """A second reconciler that asks one recount before a person decides (own database)."""
    tmp: Path = tmp_path_factory.mktemp("recounting")
    with fresh_database("edgecount_console") as url:
        running = start_console(tmp, broker, url, max_recounts=1)
        try:
            yield running
        finally:
            stop_console(running)


def test_an_incomplete_last_recount_opens_a_task(recounting: Console) -> None:
    recounting.count("A-01", {SKU_A: 7, SKU_B: 4}, scan_id="n1")
    flagged = open_discrepancy(recounting, "A-01")
    assert flagged["state"] == "recount_requested"
    assert tasks_at(recounting, "A-01") == []
    recounting.count("A-01", {SKU_A: 2}, scan_id="n1-recount", complete=False)
    (task,) = wait_until(lambda: tasks_at(recounting, "A-01"), "a task at A-01")
    assert (task["reason"], task["discrepancy_id"], task["created_by"], task["state"]) == (
        "incomplete",
        flagged["id"],
        "reconciler",
        "open",
    )
    assert discrepancy(recounting, flagged["id"])["state"] == "awaiting_approval"
