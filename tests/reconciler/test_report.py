"""Reports: the discrepancy CSV, the JSON document, the self-contained HTML page."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from reconciler.model import AbcClass, Row, Status, Summary
from reconciler.report import (
    CSV_HEADER,
    Decision,
    ReportData,
    format_number,
    render_csv,
    render_html,
    render_json,
)
from reconciler.report_html import grid_rows

SVG = "{http://www.w3.org/2000/svg}"
EVIL = '<script>alert("x")</script>&'


def _row(
    location: str, sku: str, book: int, counted: int | None, status: Status, cost: float = 2.5
) -> Row:
    diff = 0 if counted is None else counted - book
    return Row(location, sku, book, counted, diff, diff * cost, status, cost, AbcClass.A)


def sample_rows() -> list[Row]:
    """One row per status, spread over zone A, plus a clean and an untouched location."""
    return [
        _row("A-01-01", "04012345000017", 12, 12, Status.MATCH),
        _row("A-01-02", "04012345000024", 10, 13, Status.OVER, cost=100.0),
        _row("A-01-02", "04012345000031", 5, 5, Status.MATCH),
        _row("A-01-03", "04012345000048", 8, 7, Status.SHORT),
        _row("A-02-01", "04012345000055", 0, 2, Status.UNEXPECTED),
        _row("A-02-02", "04012345000062", 4, None, Status.NOT_SCANNED),
        _row("A-02-03", "04012345000079", 6, None, Status.INCOMPLETE),
        _row("A-02-04", "04012345000086", 9, 7, Status.ACCEPTED),
    ]


APPROVED = Decision("approved", "kim", "MISCOUNT")
REJECTED = Decision("rejected", "lee", "KNOWN, DAMAGED")  # a comma: quoted in the CSV


def sample_decisions() -> dict[tuple[str, str], Decision]:
    return {("A-01-02", "04012345000024"): APPROVED, ("A-02-04", "04012345000086"): REJECTED}


def sample_summary() -> Summary:
    return Summary(
        records_counted=5,
        records_within_tolerance=2,
        exact_matches=2,
        exceptions=3,
        ira=0.4,
        exact_match_rate=0.4,
        exception_rate=0.6,
        net_variance=4.5,
        absolute_variance=5.5,
        net_variance_value=303.75,
        absolute_variance_value=306.25,
        book_value_counted=1137.5,
        gross_adjustment_rate=0.269,
        scan_seconds=252.0,
        top_exception_skus=[("04012345000024", 300.0), ("04012345000055", 5.0)],
        locations_in_book=6,
        locations_counted=4,
        location_coverage=4 / 6,
        book_value=1500.0,
        value_coverage=1137.5 / 1500,
    )


def sample_trend(n: int = 5) -> list[dict[str, object]]:
    return [
        {
            "scan_id": f"gw-01.A.202611{d + 1:02d}",
            "at": f"2026-11-{d + 1:02d}T02:00:00+00:00",
            "ira": 0.97 + 0.005 * d,
            "exceptions": 9 - d,
        }
        for d in range(n)
    ]


def sample_data(**changes: object) -> ReportData:
    data = ReportData(
        title="Nightly count",
        generated_at=datetime(2026, 11, 5, 6, 30, tzinfo=UTC),
        scope="scan gw-01.A.20261105",
        rows=sample_rows(),
        summary=sample_summary(),
        zones={"A": [f"A-01-0{i}" for i in range(1, 5)] + [f"A-02-0{i}" for i in range(1, 5)]},
        trend=sample_trend(),
        decisions=sample_decisions(),
    )
    return replace(data, **changes)  # type: ignore[arg-type]


def parse_page(page: str) -> ET.Element:
    """Parse the page as XML: the DOCTYPE is the only non-XML part."""
    assert page.startswith("<!DOCTYPE html>\n")
    return ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))


def heat_cells(root: ET.Element) -> dict[str, str]:
    """location -> colour class of every heat-map cell (fails on a duplicate)."""
    cells: dict[str, str] = {}
    for g in root.iter(f"{SVG}g"):
        classes = g.get("class", "").split()
        if "cell" in classes:
            location = g.get("data-location", "")
            assert location not in cells
            cells[location] = next(c for c in classes if c.startswith("hm-"))
    return cells


# --- CSV -------------------------------------------------------------------------------------


def test_csv_header_and_one_line_per_status() -> None:
    text = render_csv(sample_data())
    lines = text.splitlines()
    assert lines[0] == (
        "location,sku,book_qty,counted_qty,diff,diff_value,status"  # design.md's, first
        ",zone,abc,unit_cost,decision,decided_by,reason"
    )
    assert lines[1:] == [
        "A-01-01,04012345000017,12,12,0,0.00,match,A,A,2.5,,,",
        "A-01-02,04012345000024,10,13,3,300.00,over,A,A,100,approved,kim,MISCOUNT",
        "A-01-02,04012345000031,5,5,0,0.00,match,A,A,2.5,,,",
        "A-01-03,04012345000048,8,7,-1,-2.50,short,A,A,2.5,,,",
        "A-02-01,04012345000055,0,2,2,5.00,unexpected,A,A,2.5,,,",
        "A-02-02,04012345000062,4,,0,0.00,not_scanned,A,A,2.5,,,",
        "A-02-03,04012345000079,6,,0,0.00,incomplete,A,A,2.5,,,",
        'A-02-04,04012345000086,9,7,-2,-5.00,accepted,A,A,2.5,rejected,lee,"KNOWN, DAMAGED"',
    ]
    parsed = list(csv.reader(io.StringIO(text)))
    assert {line[6] for line in parsed[1:]} == {s.value for s in Status}  # every status
    assert all(len(line) == len(CSV_HEADER) for line in parsed)


def test_csv_leaves_unknown_zone_and_class_empty() -> None:
    row = replace(_row("X-1", "S", 1, 1, Status.MATCH), abc=None)
    (_, line) = list(csv.reader(io.StringIO(render_csv(sample_data(rows=[row], zones={})))))
    assert line[7:] == ["", "", "2.5", "", "", ""]


def test_csv_quotes_awkward_fields_and_reads_back() -> None:
    rows = [_row('B-1,"x"', "sku\nwith newline", 1, 1, Status.MATCH)]
    parsed = list(csv.reader(io.StringIO(render_csv(sample_data(rows=rows)))))
    assert parsed[0] == list(CSV_HEADER)
    assert parsed[1][:2] == ['B-1,"x"', "sku\nwith newline"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12.0, "12"),
        (-0.0, "0"),
        (2.5, "2.5"),
        (-3.0, "-3"),
        (0.1, "0.1"),
        (1e16, "10000000000000000"),
    ],
)
def test_numbers_without_needless_decimals(value: float, text: str) -> None:
    assert format_number(value) == text


def test_csv_of_no_rows_is_the_header() -> None:
    assert render_csv(sample_data(rows=[])) == ",".join(CSV_HEADER) + "\n"


# --- JSON ------------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    data = sample_data()
    doc = json.loads(render_json(data))
    assert set(doc) == {"title", "generated_at", "scope", "summary", "rows", "trend"}
    assert datetime.fromisoformat(doc["generated_at"]) == data.generated_at
    assert (doc["title"], doc["scope"], doc["trend"]) == (data.title, data.scope, data.trend)
    summary = doc["summary"]
    assert summary["top_exception_skus"] == [
        {"sku": "04012345000024", "value": 300.0},
        {"sku": "04012345000055", "value": 5.0},
    ]
    summary["top_exception_skus"] = [(t["sku"], t["value"]) for t in summary["top_exception_skus"]]
    assert Summary(**summary) == data.summary
    assert [(r.pop("zone"), r.pop("decision")) for r in doc["rows"]] == [
        ("A", None),
        ("A", {"outcome": "approved", "decided_by": "kim", "reason": "MISCOUNT"}),
        *[("A", None)] * 5,
        ("A", {"outcome": "rejected", "decided_by": "lee", "reason": "KNOWN, DAMAGED"}),
    ]
    rows = [
        Row(**{**r, "status": Status(r["status"]), "abc": r["abc"] and AbcClass(r["abc"])})
        for r in doc["rows"]
    ]
    assert rows == data.rows


def test_json_is_strict_when_figures_are_undefined() -> None:
    summary = replace(sample_summary(), ira=float("nan"), scan_seconds=None)
    doc = json.loads(render_json(sample_data(summary=summary)))  # allow_nan=False inside
    assert doc["summary"]["ira"] is None
    assert doc["summary"]["scan_seconds"] is None


# --- HTML ------------------------------------------------------------------------------------


def test_html_is_well_formed_and_self_contained() -> None:
    page = render_html(sample_data())
    root = parse_page(page)
    assert root.tag == "html"
    assert root.find("head/style") is not None
    assert "<script" not in page.lower()
    assert not re.search(r"""(?:src|href)\s*=|url\(|@import""", page)
    header = "".join(root.find("body/header").itertext())  # type: ignore[union-attr]
    assert "scan gw-01.A.20261105" in header
    assert "2026-11-05 06:30" in header


def test_html_summary_table_has_the_figures() -> None:
    root = parse_page(render_html(sample_data()))
    section = root.find(".//section[@id='summary']")
    assert section is not None
    figures = {
        "".join(tr.find("th").itertext()): "".join(tr.find("td").itertext())  # type: ignore[union-attr]
        for tr in section.iter("tr")
        if tr.find("th") is not None and tr.find("td") is not None
    }
    assert figures["Inventory record accuracy (IRA)"].startswith("40.00 %")
    assert figures["Exception rate"] == "60.0 % (3)"
    assert figures["Net variance value"] == "+303.75"
    assert figures["Gross adjustment rate"] == "26.90 %"
    assert figures["Scan duration"] == "4 min 12 s"
    assert figures["Not scanned / incomplete records"] == "1 / 1"
    assert figures["Accepted records (rejected before)"] == "1"
    assert figures["Locations counted"] == "4 of 6 in the book (66.7 %)"
    assert figures["Book value counted"] == "1,137.50 of 1,500.00 (75.8 %)"
    text = "".join(section.itertext())
    assert "04012345000024" in text
    assert "300.00" in text


def test_heat_map_has_one_cell_per_location_with_its_colour() -> None:
    root = parse_page(render_html(sample_data()))
    assert heat_cells(root) == {
        "A-01-01": "hm-ok",
        "A-01-02": "hm-var3",  # the largest exception value
        "A-01-03": "hm-var1",  # short by 1.25 of 300
        "A-01-04": "hm-empty",  # listed in the zone, nothing booked or counted
        "A-02-01": "hm-var1",
        "A-02-02": "hm-grey",
        "A-02-03": "hm-grey",
        "A-02-04": "hm-acc",  # accepted before: its own colour, not an exception
    }
    legend = root.find(".//ul[@class='legend']")
    assert legend is not None
    assert "accepted before" in "".join(legend.itertext())


def test_heat_map_cells_carry_status_text_not_only_colour() -> None:
    root = parse_page(render_html(sample_data()))
    tips = {
        g.get("data-location"): g.findtext(f"{SVG}title")
        for g in root.iter(f"{SVG}g")
        if "cell" in g.get("class", "")
    }
    assert tips["A-01-02"] == (
        "A-01-02: 1 match, 1 over; variance +3 units, exception value 300.00"
    )
    assert tips["A-02-02"] is not None
    assert "not scanned" in tips["A-02-02"]
    marks = [
        [t.text for t in g.iter(f"{SVG}text")]
        for g in root.iter(f"{SVG}g")
        if g.get("data-location") == "A-02-03"
    ]
    assert marks == [["03", "?"]]  # bay label and the "not (fully) scanned" mark


def test_locations_outside_the_zone_list_still_show() -> None:
    root = parse_page(render_html(sample_data(zones={"A": ["A-01-01"]})))
    assert set(heat_cells(root)) == {r.location for r in sample_rows()}
    assert "(no zone)" in "".join(root.itertext())


def test_grid_groups_by_location_structure_or_wraps() -> None:
    assert grid_rows(["A-01-01", "A-01-02", "A-02-01"]) == [
        ("A-01", ["A-01-01", "A-01-02"]),
        ("A-02", ["A-02-01"]),
    ]
    flat = [f"LOC{i}" for i in range(30)]  # no structure: wrapped, 12 to a row
    assert [len(row) for _, row in grid_rows(flat)] == [12, 12, 6]
    unique = ["A-1", "B-1", "C-1"]  # a prefix per location is no grouping
    assert grid_rows(unique) == [("", unique)]


def test_html_escapes_hostile_names() -> None:
    rows = [_row(EVIL, EVIL, 1, 3, Status.OVER)]
    summary = replace(sample_summary(), top_exception_skus=[(EVIL, 5.0)])
    trend = [{"scan_id": EVIL, "at": EVIL, "ira": 0.9, "exceptions": 1}]
    page = render_html(
        sample_data(
            title=EVIL, scope=EVIL, rows=rows, summary=summary, zones={EVIL: [EVIL]}, trend=trend
        )
    )
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    root = parse_page(page)  # still well-formed
    assert heat_cells(root) == {EVIL: "hm-var3"}
    assert root.findtext("head/title") == EVIL


def test_trend_draws_one_point_per_scan() -> None:
    for n in (1, 5, 40):
        root = parse_page(render_html(sample_data(trend=sample_trend(n))))
        points = [g for g in root.iter(f"{SVG}g") if g.get("class") == "trend-pt"]
        assert len(points) == n
        assert all(g.find(f"{SVG}circle") is not None for g in points)
        assert all("IRA" in (g.findtext(f"{SVG}title") or "") for g in points)
        polyline = next(root.iter(f"{SVG}polyline"))
        assert len(polyline.get("points", "").split()) == n


def test_trend_points_are_labelled_and_rise_with_accuracy() -> None:
    root = parse_page(render_html(sample_data()))
    points = [g for g in root.iter(f"{SVG}g") if g.get("class") == "trend-pt"]
    labels = [g.findtext(f"{SVG}text") for g in points]
    assert labels == ["97.0", "97.5", "98.0", "98.5", "99.0"]
    ys = [float(g.find(f"{SVG}circle").get("cy", "")) for g in points]  # type: ignore[union-attr]
    assert ys == sorted(ys, reverse=True)  # higher IRA is drawn higher (smaller y)


def test_trend_without_scans_and_with_unparsable_times() -> None:
    assert "No past scans." in render_html(sample_data(trend=[]))
    odd = [{"scan_id": "s1", "at": "yesterday", "ira": 0.9, "exceptions": 0}] * 3
    root = parse_page(render_html(sample_data(trend=odd)))  # falls back to scan order
    assert sum(1 for g in root.iter(f"{SVG}g") if g.get("class") == "trend-pt") == 3


def test_exception_table_lists_only_exceptions_largest_first() -> None:
    root = parse_page(render_html(sample_data()))
    section = root.find(".//section[@id='exceptions']")
    assert section is not None
    assert [th.text for th in section.iter("th")][:2] == ["Location", "SKU"]
    body = section.find(".//tbody")
    assert body is not None
    first_cells = [tr.find("td").text for tr in body.iter("tr")]  # type: ignore[union-attr]
    assert first_cells == ["A-01-02", "A-02-01", "A-01-03"]
    cells = [["".join(td.itertext()) for td in tr.findall("td")] for tr in body.iter("tr")]
    assert [c[6:] for c in cells] == [
        ["over", "approved", "kim", "MISCOUNT"],
        ["unexpected", "\u2014", "\u2014", "\u2014"],  # no decision yet
        ["short", "\u2014", "\u2014", "\u2014"],
    ]


def test_accepted_rows_have_their_own_table_with_the_rejection() -> None:
    root = parse_page(render_html(sample_data()))
    section = root.find(".//section[@id='accepted']")
    assert section is not None
    body = section.find(".//tbody")
    assert body is not None
    (tr,) = list(body.iter("tr"))
    cells = ["".join(td.itertext()) for td in tr.findall("td")]
    assert cells[0] == "A-02-04"
    assert cells[-3:] == ["rejected", "lee", "KNOWN, DAMAGED"]
    page = render_html(sample_data(rows=sample_rows()[:1]))
    assert 'id="accepted"' not in page
