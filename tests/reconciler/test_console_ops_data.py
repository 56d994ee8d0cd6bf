"""The console's Reports, Book and Gateways data on a real store, and their REST endpoints.

``POST /scan-requests`` (the "Scan now" button) and ``POST /book/preview`` (the book import's
dry run) through the API with tokens; the pages' figures from their own functions.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from edgecount import contract
from reconciler import schema as t
from reconciler.api import create_app
from reconciler.auth.roles import Role
from reconciler.book_import import diff_book
from reconciler.book_preview import Change, changed_lines
from reconciler.console.book import SEARCH_LIMIT, book_page
from reconciler.console.gateways import gateway_lines
from reconciler.console.reports import ReportScope, ScopeError, cards, make_report
from reconciler.console.scan_requests import zone_routes
from reconciler.engine import Engine
from reconciler.model import AbcClass, BookLine
from reconciler.report_html import report_sections
from reconciler.rules import TolerancePolicy
from reconciler.store import Store, open_store
from tests.reconciler.apiclient import api_client, bearer

SITE = "s"
SKU_A, SKU_B = "80614141123458", "80614141123465"
NOW = datetime.now(UTC)
SNAPSHOT = NOW - timedelta(hours=3)
BOOK = [
    BookLine("A-01", SKU_A, 10, 2.0, AbcClass.A),
    BookLine("A-01", SKU_B, 5, 10.0, AbcClass.B),
    BookLine("A-02", SKU_A, 4, 2.0, AbcClass.A),
    BookLine("Z_9", SKU_B, 1, 10.0, AbcClass.C),
]
HEADER = "location,sku,qty,unit_cost,abc\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store with :data:`BOOK`."""
    opened = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
    opened.replace_book(BOOK, source="wms.csv", at=SNAPSHOT)
    yield opened
    opened.close()


def engine_of(store: Store, gateways: dict[str, str] | None = None) -> Engine:
    return Engine(store, SITE, TolerancePolicy(), max_recounts=0, gateways=gateways or {})


def scan(
    store: Store,
    zone: str,
    scan_id: str,
    *,
    gateway: str = "gw-7",
    locations: tuple[str, ...] = ("A-01", "A-02"),
    cameras: list[dict[str, Any]] | None = None,
    started: datetime | None = None,
    seq: int = 1,
) -> None:
    draft = contract.scan_payload(
        gateway=gateway,
        site=SITE,
        zone=zone,
        scan_id=scan_id,
        state="completed",
        started_at=started or NOW - timedelta(minutes=30),
        ended_at=NOW - timedelta(minutes=1),
        locations=locations,
        readers=[{"name": "dock-1", "ok": True, "reads": 120}],
        cameras=cameras or [],
    )
    message = contract.ScanMessage.from_payload(contract.with_sequence(draft, seq))
    assert store.record_scan(message, NOW)


def count(engine: Engine, location: str, items: dict[str, int], scan_id: str, seq: int) -> None:
    draft = contract.count_payload(
        gateway="gw-7",
        site=SITE,
        zone=location[0],
        location=location,
        scan_id=scan_id,
        items=[{"sku": sku, "qty": qty} for sku, qty in items.items()],
        observed_at=NOW - timedelta(minutes=10),
    )
    message = contract.CountMessage.from_payload(contract.with_sequence(draft, seq))
    engine.on_counts(engine.store.record_counts([message], NOW))


def status(store: Store, gateway: str, state: str) -> None:
    payload = contract.status_payload(gateway=gateway, site=SITE, state=state, version="1.2")
    store.record_status(contract.StatusMessage.from_payload(payload), NOW)


def outbox(store: Store) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(t.console_outbox).order_by(t.console_outbox.c.id)))


def audits(store: Store, action: str) -> list[Any]:
    with store.engine.connect() as conn:
        query = sa.select(t.audit).where(t.audit.c.action == action)
        return list(conn.execute(query))


# -- scan requests ------------------------------------------------------------------------------


def test_scan_now_writes_a_scan_request_for_the_zone_s_gateway(store: Store) -> None:
    scan(store, "A", "night-1")
    client = api_client(engine_of(store), "ann", Role.APPROVER)
    answer = client.post("/scan-requests", json={"zone": "A"})
    assert answer.status_code == 202, answer.text
    made = answer.json()
    assert made["gateway"] == "gw-7"
    assert made["topic"] == f"edgecount/v1/{SITE}/cmd/gw-7/scan"
    assert made["requested_by"] == "ann"
    (row,) = outbox(store)
    assert row.topic == made["topic"]
    assert row.created_by == "ann"
    assert row.published_at is None
    contract.validate(row.payload)
    assert row.payload["schema"] == "edgecount.scan-request/1"
    assert row.payload["request_id"] == made["request_id"]
    assert (row.payload["zone"], row.payload["requested_by"]) == ("A", "ann")
    assert row.payload["reason"] == "manual"
    (entry,) = audits(store, "scan.request")
    assert entry.actor == "ann"
    assert entry.detail["request_id"] == made["request_id"]


def test_the_configured_gateway_wins_and_locations_go_along(store: Store) -> None:
    scan(store, "A", "night-1", gateway="gw-7")
    engine = engine_of(store, {"A": "gw-9"})
    client = api_client(engine, "ada", Role.ADMIN)
    answer = client.post("/scan-requests", json={"zone": "A", "locations": ["A-02", "A-02"]})
    assert answer.status_code == 202, answer.text
    assert answer.json()["gateway"] == "gw-9"
    (row,) = outbox(store)
    assert row.payload["locations"] == ["A-02"]  # once


def test_an_unknown_zone_or_location_is_a_422_and_nothing_is_written(store: Store) -> None:
    scan(store, "A", "night-1")
    client = api_client(engine_of(store), "ann", Role.APPROVER)
    answer = client.post("/scan-requests", json={"zone": "Q"})
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "zone"]
    assert "no gateway is known for zone 'Q'" in error["msg"]
    answer = client.post("/scan-requests", json={"zone": "A", "locations": ["A-01", "B-01"]})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "locations", 1]
    answer = client.post("/scan-requests", json={"zone": "A", "extra": 1})
    assert answer.status_code == 422
    assert outbox(store) == []
    assert audits(store, "scan.request") == []


def test_a_gateway_offline_gets_no_request(store: Store) -> None:
    scan(store, "A", "night-1")
    status(store, "gw-7", "offline")
    client = api_client(engine_of(store), "ann", Role.APPROVER)
    answer = client.post("/scan-requests", json={"zone": "A"})
    assert answer.status_code == 409
    assert "offline" in answer.json()["detail"]
    assert outbox(store) == []


@pytest.mark.parametrize("role", [Role.VIEWER, Role.COUNTER])
def test_below_approver_may_not_ask_for_a_scan(store: Store, role: Role) -> None:
    scan(store, "A", "night-1")
    client = TestClient(create_app(engine_of(store)), headers=bearer(store, "vic", role))
    assert client.post("/scan-requests", json={"zone": "A"}).status_code == 403
    assert outbox(store) == []


def test_zone_routes_prefer_config_then_the_latest_scan_then_coverage(store: Store) -> None:
    scan(store, "A", "old", gateway="gw-1", started=NOW - timedelta(days=2))
    scan(store, "A", "new", gateway="gw-2", seq=2)
    scan(store, "C", "c-1", gateway="gw-3", locations=("C-01",))
    with store.engine.connect() as conn:
        assert zone_routes(conn, {}) == {"A": "gw-2", "C": "gw-3"}
        assert zone_routes(conn, {"C": "gw-8", "D": "gw-8"}) == {
            "A": "gw-2",
            "C": "gw-8",
            "D": "gw-8",
        }


# -- gateways page -------------------------------------------------------------------------------


def test_gateway_lines_show_status_zones_last_scan_and_devices(store: Store) -> None:
    engine = engine_of(store, {"D": "gw-8"})
    scan(store, "A", "old", started=NOW - timedelta(days=1))
    scan(
        store,
        "A",
        "night-2",
        seq=2,
        cameras=[{"name": "cam-1", "ok": False, "frames": 0, "error": "no frames"}],
    )
    count(engine, "A-01", {SKU_A: 10, SKU_B: 5}, "night-2", 1)
    status(store, "gw-7", "online")
    status(store, "gw-5", "stopped")
    lines = {g.gateway: g for g in gateway_lines(engine)}
    assert sorted(lines) == ["gw-5", "gw-7", "gw-8"]
    gw7 = lines["gw-7"]
    assert (gw7.state, gw7.version, gw7.away) == ("online", "1.2", False)
    (zone,) = gw7.zones
    assert zone.zone == "A"
    assert zone.scan is not None
    assert (zone.scan.scan_id, zone.scan.done, zone.scan.planned) == ("night-2", 1, 2)
    assert zone.scan.ok_of("reader") == (1, 1)
    assert zone.scan.ok_of("camera") == (0, 1)
    assert not zone.scan.healthy
    assert gw7.devices_not_ok == 1
    assert lines["gw-5"].away
    assert lines["gw-5"].zones == []
    (configured,) = lines["gw-8"].zones
    assert (configured.zone, configured.configured, configured.scan) == ("D", True, None)
    assert lines["gw-8"].state is None


# -- book preview and page ----------------------------------------------------------------------


def test_a_bad_file_previews_every_bad_line_and_applies_nothing(store: Store) -> None:
    client = api_client(engine_of(store), "ann", Role.APPROVER)
    body = HEADER + f"A-01,{SKU_A},12,2.0,A\nA-02,{SKU_A},many,2.0,A\nA-03,{SKU_A},1,2.0,X\n"
    answer = client.post(
        "/book/preview?source=wms.csv", content=body, headers={"Content-Type": "text/csv"}
    )
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["would_apply"] is False
    assert [(p["line"], p["column"]) for p in preview["problems"]] == [(3, "qty"), (4, "abc")]
    assert store.book_lines("A-01") == [b for b in BOOK if b.location == "A-01"]


def test_a_good_file_previews_each_change_and_applies_nothing(store: Store) -> None:
    client = api_client(engine_of(store), "ann", Role.APPROVER)
    body = HEADER + (
        f"A-01,{SKU_A},12,2.0,A\nA-01,{SKU_B},5,10.0,B\nA-03,{SKU_A},7,2.0,A\nZ_9,{SKU_B},1,10.0,C\n"
    )
    answer = client.post("/book/preview", content=body, headers={"Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["would_apply"] is True
    assert (preview["records"], preview["locations"], preview["unchanged"]) == (4, 3, 2)
    assert [(x["change"], x["location"], x["old_qty"], x["new_qty"]) for x in preview["lines"]] == [
        ("changed", "A-01", 10, 12),
        ("removed", "A-02", 4, None),
        ("added", "A-03", None, 7),
    ]
    assert preview["added"]["records"] == preview["changed"]["records"] == 1
    assert preview["net_value"] == pytest.approx(4.0 - 8.0 + 14.0)
    assert store.book_lines("A-01") == [b for b in BOOK if b.location == "A-01"]


def test_a_preview_says_when_the_import_would_be_refused(store: Store) -> None:
    client = api_client(engine_of(store), "ann", Role.APPROVER)
    body = HEADER + f"A-09,{SKU_A},1,2.0,A\n"
    answer = client.post("/book/preview", content=body, headers={"Content-Type": "text/csv"})
    preview = answer.json()
    assert preview["would_apply"] is False
    assert "more than half" in preview["refused"]
    confirmed = client.post(
        "/book/preview?confirm=true", content=body, headers={"Content-Type": "text/csv"}
    )
    assert confirmed.json()["would_apply"] is True
    assert confirmed.json()["removed"]["records"] == 4


def test_a_preview_takes_csv_only_and_needs_the_book_scope(store: Store) -> None:
    client = api_client(engine_of(store), "ann", Role.APPROVER)
    assert client.post("/book/preview", json={"lines": []}).status_code == 415
    viewer = TestClient(create_app(engine_of(store)), headers=bearer(store, "vic", Role.VIEWER))
    body = HEADER + f"A-01,{SKU_A},12,2.0,A\n"
    answer = viewer.post("/book/preview", content=body, headers={"Content-Type": "text/csv"})
    assert answer.status_code == 403


def test_changed_lines_agree_with_the_importer_s_counts() -> None:
    new = [
        BookLine("A-01", SKU_A, 11, 2.0, AbcClass.A),
        BookLine("A-01", SKU_B, 5, 10.0, AbcClass.B),
        BookLine("A-09", SKU_A, 1, 2.0, AbcClass.A),
    ]
    for only in (False, True):
        changes = changed_lines(BOOK, new, locations_only=only)
        diff = diff_book(BOOK, new, locations_only=only)
        kinds = [c.change for c in changes]
        assert kinds.count(Change.ADDED) == diff.added.records
        assert kinds.count(Change.CHANGED) == diff.changed.records
        assert kinds.count(Change.REMOVED) == diff.removed.records
    assert [c.location for c in changed_lines(BOOK, new, locations_only=True)] == ["A-01", "A-09"]


def test_the_book_page_sums_by_zone_and_class_and_searches(store: Store) -> None:
    engine = engine_of(store)
    scan(store, "A", "night-1")
    page = book_page(engine, "", NOW)
    assert page.snapshot is not None
    assert (page.snapshot.source, page.snapshot.rows) == ("wms.csv", 4)
    zones = {g.name: (g.locations, g.records, g.units, g.value) for g in page.zones}
    assert zones == {"A": (2, 3, 19, 78.0), "unknown": (1, 1, 1, 10.0)}
    classes = {g.name: g.records for g in page.classes}
    assert classes == {"A": 2, "B": 1, "C": 1}
    assert page.total.records == 4
    found = book_page(engine, "z_", NOW)  # "_" is a character, not a wildcard
    assert [(h.location, h.sku) for h in found.hits] == [("Z_9", SKU_B)]
    assert [h.location for h in book_page(engine, "A-_", NOW).hits] == []
    by_sku = book_page(engine, SKU_B[1:], NOW)  # a GTIN-13 finds its GTIN-14
    assert [h.location for h in by_sku.hits] == ["A-01", "Z_9"]
    assert not by_sku.more


def test_a_search_shows_the_book_now_and_is_bounded(store: Store) -> None:
    many = [BookLine(f"M-{n:04d}", SKU_A, 1, 1.0, AbcClass.C) for n in range(SEARCH_LIMIT + 5)]
    store.replace_book(BOOK + many, source="wms.csv", at=SNAPSHOT)
    found = book_page(engine_of(store), "M-", NOW)
    assert len(found.hits) == SEARCH_LIMIT
    assert found.more


# -- reports -----------------------------------------------------------------------------------


def test_report_scope_takes_a_scan_before_a_zone_before_a_time() -> None:
    assert ReportScope.parse("s1", "A", "2026-01-01", NOW) == ReportScope(scan="s1")
    assert ReportScope.parse(" ", "A", "", NOW) == ReportScope(zone="A")
    default = ReportScope.parse("", "", "", NOW).since
    assert default is not None
    assert timedelta(hours=18) <= NOW - default < timedelta(hours=18, minutes=1)
    assert (default.second, default.microsecond) == (0, 0)
    since = ReportScope.parse("", "", "2026-01-02T03:04", NOW)
    assert since.since == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert since.query() == "since=2026-01-02T03%3A04%3A00"
    assert ReportScope(zone="A/B").query() == "zone=A%2FB"
    with pytest.raises(ScopeError, match="since"):
        ReportScope.parse("", "", "yesterday", NOW)


def test_the_report_s_sections_carry_no_inline_style_or_script(store: Store) -> None:
    engine = engine_of(store)
    scan(store, "A", "night-1")
    count(engine, "A-01", {SKU_A: 7, SKU_B: 5}, "night-1", 1)
    count(engine, "A-02", {SKU_A: 4}, "night-1", 2)
    data = make_report(engine, ReportScope(since=NOW - timedelta(hours=18)), NOW)
    html = report_sections(data)
    assert "style=" not in html
    assert "<style" not in html
    assert "<script" not in html
    assert 'class="heatmap"' in html
    assert 'id="exceptions"' in html
    figures = {c.label: c.figure for c in cards(data)}
    assert figures["Records counted"] == "3"
    assert figures["Exceptions"] == "1"
    assert figures["Exception value"] == "6.00"


def test_the_pages_and_downloads_answer(store: Store) -> None:
    engine = engine_of(store)
    scan(store, "A", "night-1")
    count(engine, "A-01", {SKU_A: 7, SKU_B: 5}, "night-1", 1)
    client = api_client(engine, "vic", Role.VIEWER)
    for path in ("/console/reports", "/console/book?q=A-0", "/console/gateways"):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text)
        assert "style=" not in answer.text
        fragment = client.get(path, headers={"X-Console-Fragment": "1"})
        assert fragment.status_code == 200, (path, fragment.text)
        assert "<nav" not in fragment.text
        assert "<h1>" in fragment.text
    assert "Scan now" not in client.get("/console/gateways").text
    assert "data-book-import" not in client.get("/console/book").text
    downloaded = client.get("/console/reports/report.csv?scan=night-1")
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = downloaded.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert NOW.strftime("%Y-%m-%d") in disposition
    rows = list(csv.reader(io.StringIO(downloaded.text)))
    assert rows[0][:7] == [
        "location",
        "sku",
        "book_qty",
        "counted_qty",
        "diff",
        "diff_value",
        "status",
    ]
    assert rows[1][:7] == ["A-01", SKU_A, "10", "7", "-3", "-6.00", "short"]
    document = json.loads(client.get("/console/reports/report.json?scan=night-1").text)
    assert document["summary"]["exceptions"] == 1
    assert client.get("/console/reports?scan=nope").status_code == 404
    bad = client.get("/console/reports?since=never")
    assert bad.status_code == 422
    assert "since: not a date" in bad.text
    assert client.get("/console/reports/report.csv?since=never").status_code == 422
    approver = api_client(engine, "ann", Role.APPROVER)
    assert "Scan now" in approver.get("/console/gateways").text
    assert "data-book-import" in approver.get("/console/book").text
