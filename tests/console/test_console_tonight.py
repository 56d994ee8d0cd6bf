"""The console in chromium: signing in, the Tonight page live, anonymous and CSRF-less refusals."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from tests.console.conftest import SKU_A, SKU_B, Console, OpenPage


def test_anonymous_pages_and_api_are_refused(console: Console) -> None:
    for path in ("/console/", "/console/events", "/discrepancies", "/book?location=A-01"):
        answer = httpx.get(console.url + path, headers={"Accept": "application/json"})
        assert answer.status_code == 401, (path, answer.text)
    page = httpx.get(console.url + "/console/", headers={"Accept": "text/html"})
    assert page.status_code == 401
    assert "/signin?next=" in page.text  # a browser is sent to sign in


def test_a_post_without_the_csrf_token_is_refused(console: Console) -> None:
    client = console.client("ada")
    try:
        del client.headers["X-CSRF-Token"]
        answer = client.post("/discrepancies/1/approve", json={"reason_code": "MISCOUNT"})
        assert answer.status_code == 403
        assert "CSRF" in answer.json()["detail"]
    finally:
        client.close()


def test_sign_in_then_every_navigation_link_answers(console: Console, open_page: OpenPage) -> None:
    watched = open_page("vic")
    page = watched.page
    expect(page.get_by_role("heading", name="Tonight")).to_be_visible()
    expect(page.get_by_role("link", name="Tonight")).to_have_attribute("aria-current", "page")
    for name in ("Tonight",):
        page.get_by_role("link", name=name).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(name)


def test_a_scan_s_progress_arrives_live(console: Console, open_page: OpenPage) -> None:
    watched = open_page("vic")
    page = watched.page
    expect(page.get_by_role("status")).to_have_text("Live")
    locations = ["A-01", "A-02", "A-03", "A-04"]
    console.status("gw-1", "online")
    console.scan("A", "night-1", "started", locations)
    row = (
        page.get_by_role("row")
        .filter(has_text="night-1")
        .or_(page.locator("tr[data-scan='night-1']"))
    )
    expect(row).to_contain_text("0 / 4")
    console.count("A-01", {SKU_A: 10, SKU_B: 4}, scan_id="night-1")
    expect(row).to_contain_text("1 / 4")
    console.count("A-02", {SKU_A: 10, SKU_B: 4}, scan_id="night-1")
    expect(row).to_contain_text("2 / 4")
    expect(page.get_by_text(re.compile("gw-1"))).not_to_have_count(0)
    # nothing reloaded the page: the same document got the updates
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
