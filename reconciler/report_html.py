"""The HTML report: one self-contained page for offline sites.

Inline CSS and inline SVG only: no JavaScript, no fonts, no images, nothing fetched. The page
is also well-formed XML (void elements are self-closed, only numeric or XML entities), so tools
and tests can parse it with :mod:`xml.etree`.

Sections: a header (title, scope, time); the summary as a table (coverage included); a heat
map per zone (one cell per location, coloured by variance, a mark and a ``<title>`` tooltip in
each cell so colour is never the only cue); the accuracy trend over past scans (SVG line
chart); the exception rows with their decisions; the accepted differences.
Every text that comes from data goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.model import COUNTED, EXCEPTIONS, Row, Status, Summary
from reconciler.report_trend import trend_section

if TYPE_CHECKING:
    from reconciler.report_data import Decision, ReportData

__all__ = ["render_html", "report_sections"]

SVG_NS = "http://www.w3.org/2000/svg"
MINUS = "\u2212"
DASH = "\u2014"

# Heat map geometry (SVG user units = CSS px).
_CELL_H = 36
_GAP = 4
_WRAP = 12
_MAX_ROW = 40
_CHAR_W = 7
_SEPARATORS = re.compile(r"[-./_ ]")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;
 margin:0 auto;max-width:1180px;padding:16px 24px;line-height:1.4}
header{border-bottom:2px solid #333;margin-bottom:12px}
h1{font-size:1.5em;margin:0 0 4px}
h2{font-size:1.2em;margin:24px 0 8px}
h3{font-size:1em;margin:16px 0 4px}
.meta{color:#444;margin:0 0 8px}
table{border-collapse:collapse;margin:4px 0 12px}
caption{text-align:left;font-weight:600;padding:2px 0}
th,td{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top}
thead th{background:#eee}
tbody th{font-weight:normal;background:#f7f7f7}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.summary-grid{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.st{font-weight:600}
.st-over,.st-short,.st-unexpected{color:#a01e12}
.st-match{color:#1d6b36}
.st-not_scanned,.st-incomplete{color:#555}
.st-accepted{color:#1f5fa8}
figure{margin:8px 0 16px}
figcaption{font-weight:600;margin-bottom:4px}
svg text{font-family:system-ui,sans-serif;font-size:11px;fill:#1b1b1b}
svg .cell rect{stroke:#fff;stroke-width:1}
.hm-ok rect{fill:#1a9850}
.hm-ok text{fill:#fff}
.hm-var1 rect{fill:#fee08b}
.hm-var2 rect{fill:#f39c12}
.hm-var3 rect{fill:#c62828}
.hm-var3 text{fill:#fff}
.hm-grey rect{fill:#b0b0b0}
.hm-acc rect{fill:#91bfdb}
.hm-empty rect{fill:#f2f2f2;stroke:#999;stroke-dasharray:3 2}
svg .rowlabel{font-weight:600}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;padding:0;margin:4px 0;list-style:none}
.legend li{display:flex;align-items:center;gap:6px}
.swatch{display:inline-block;width:14px;height:14px;border:1px solid #777}
.sw-hm-ok{background:#1a9850}.sw-hm-var1{background:#fee08b}.sw-hm-var2{background:#f39c12}
.sw-hm-var3{background:#c62828}.sw-hm-grey{background:#b0b0b0}.sw-hm-empty{background:#f2f2f2}
.sw-hm-acc{background:#91bfdb}
.axis{stroke:#333;stroke-width:1}
.grid{stroke:#ddd;stroke-width:1}
.target{stroke:#1a9850;stroke-width:1;stroke-dasharray:6 4}
.trend-line{fill:none;stroke:#1f5fa8;stroke-width:2}
.trend-pt circle{fill:#1f5fa8;stroke:#fff;stroke-width:1.5}
details{margin:4px 0 12px}
@media print{details{display:none}body{max-width:none}}
"""


def esc(value: object) -> str:
    """Escape any value for HTML/XML text or attribute context."""
    return html.escape(str(value), quote=True)


def fmt_qty(value: float) -> str:
    """A quantity for display: thousands separators, at most 3 decimals, a real minus sign."""
    if not math.isfinite(value):
        return DASH
    text = f"{abs(value):,.0f}" if value == int(value) else f"{abs(value):,.3f}".rstrip("0")
    return (MINUS + text) if value < 0 else text


def fmt_signed(value: float) -> str:
    """A quantity with an explicit sign (``+3``, minus sign for negatives); zero has none."""
    text = fmt_qty(value)
    return ("+" + text) if value > 0 else text


def fmt_money(value: float, *, signed: bool = False) -> str:
    """A value with two decimals and thousands separators."""
    if not math.isfinite(value):
        return DASH
    text = f"{abs(value):,.2f}"
    if value < 0 and text.strip("0.,"):
        return MINUS + text
    return ("+" + text) if signed and value > 0 else text


def fmt_pct(value: float | None, digits: int = 1) -> str:
    """A 0-1 rate as a percentage (``0.985`` -> ``98.5 %``)."""
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value * 100:.{digits}f} %"


def fmt_duration(seconds: float | None) -> str:
    """A duration as ``1 h 02 min``, ``4 min 12 s`` or ``38 s``."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _table(
    caption: str, head: Sequence[str], body: Iterable[Sequence[str]], num: frozenset[int]
) -> str:
    """A table; ``body`` cells are already escaped HTML; columns in ``num`` align right."""
    cls = [' class="num"' if i in num else "" for i in range(len(head))]
    ths = "".join(f'<th scope="col"{cls[i]}>{esc(h)}</th>' for i, h in enumerate(head))
    trs = "".join(
        "<tr>" + "".join(f"<td{cls[i]}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>\n"
        for row in body
    )
    return (
        f"<table><caption>{esc(caption)}</caption><thead><tr>{ths}</tr></thead>"
        f"<tbody>\n{trs}</tbody></table>\n"
    )


def _status(status: Status) -> str:
    return f'<span class="st st-{status.value}">{esc(status.value.replace("_", " "))}</span>'


# --- summary ---------------------------------------------------------------------------------


def _summary_section(summary: Summary, rows: Sequence[Row]) -> str:
    statuses = Counter(row.status for row in rows)
    lines = [
        ("Records counted", f"{summary.records_counted:,}"),
        (
            "Inventory record accuracy (IRA)",
            f"{fmt_pct(summary.ira, 2)} ({summary.records_within_tolerance:,} within tolerance)",
        ),
        ("Exact-match rate", f"{fmt_pct(summary.exact_match_rate)} ({summary.exact_matches:,})"),
        ("Exception rate", f"{fmt_pct(summary.exception_rate)} ({summary.exceptions:,})"),
        ("Net variance (units)", fmt_signed(summary.net_variance)),
        ("Absolute variance (units)", fmt_qty(summary.absolute_variance)),
        ("Net variance value", fmt_money(summary.net_variance_value, signed=True)),
        ("Absolute variance value", fmt_money(summary.absolute_variance_value)),
        (
            "Locations counted",
            f"{summary.locations_counted:,} of {summary.locations_in_book:,} in the book"
            f" ({fmt_pct(summary.location_coverage)})",
        ),
        (
            "Book value counted",
            f"{fmt_money(summary.book_value_counted)} of {fmt_money(summary.book_value)}"
            f" ({fmt_pct(summary.value_coverage)})",
        ),
        ("Gross adjustment rate", fmt_pct(summary.gross_adjustment_rate, 2)),
        ("Scan duration", fmt_duration(summary.scan_seconds)),
        (
            "Not scanned / incomplete records",
            f"{statuses[Status.NOT_SCANNED]:,} / {statuses[Status.INCOMPLETE]:,}",
        ),
        ("Accepted records (rejected before)", f"{statuses[Status.ACCEPTED]:,}"),
    ]
    body = "".join(
        f'<tr><th scope="row">{esc(name)}</th><td class="num">{esc(value)}</td></tr>\n'
        for name, value in lines
    )
    figures = (
        '<table><caption>Figures</caption><thead><tr><th scope="col">Measure</th>'
        f'<th scope="col" class="num">Value</th></tr></thead><tbody>\n{body}</tbody></table>\n'
    )
    if summary.top_exception_skus:
        top = _table(
            "Top exception SKUs by value",
            ("#", "SKU", "Absolute variance value"),
            (
                (str(i), esc(sku), esc(fmt_money(value)))
                for i, (sku, value) in enumerate(summary.top_exception_skus[:5], start=1)
            ),
            frozenset({0, 2}),
        )
    else:
        top = "<p>No exceptions.</p>\n"
    return (
        '<section id="summary"><h2>Summary</h2><div class="summary-grid">'
        f"<div>{figures}</div><div>{top}</div></div></section>\n"
    )


# --- heat map --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cell:
    location: str
    label: str
    statuses: Counter[Status]
    net_variance: float
    exception_value: float


def _cells(rows: Sequence[Row]) -> dict[str, _Cell]:
    by_location: dict[str, list[Row]] = {}
    for row in rows:
        by_location.setdefault(row.location, []).append(row)
    cells = {}
    for location, group in by_location.items():
        counted = [row for row in group if row.status in COUNTED]
        cells[location] = _Cell(
            location=location,
            label=location,
            statuses=Counter(row.status for row in group),
            net_variance=sum(row.diff for row in counted),
            exception_value=sum(abs(row.diff_value) for row in group if row.is_exception),
        )
    return cells


def _cell_class(cell: _Cell, max_value: float) -> str:
    """Colour class: exceptions scale amber -> red by value; grey = not (fully) scanned;
    blue = differences a person accepted before."""
    if not cell.statuses:
        return "hm-empty"
    if any(cell.statuses[status] for status in EXCEPTIONS):
        share = cell.exception_value / max_value if max_value > 0 else 0.0
        return "hm-var1" if share < 1 / 3 else "hm-var2" if share < 2 / 3 else "hm-var3"
    if cell.statuses[Status.NOT_SCANNED] or cell.statuses[Status.INCOMPLETE]:
        return "hm-grey"
    if cell.statuses[Status.ACCEPTED]:
        return "hm-acc"
    return "hm-ok"


_MARKS = {
    "hm-ok": "\u2713",
    "hm-var1": "!",
    "hm-var2": "!!",
    "hm-var3": "!!!",
    "hm-grey": "?",
    "hm-acc": "\u2248",
    "hm-empty": "\u00b7",
}


def _tooltip(cell: _Cell) -> str:
    if not cell.statuses:
        return f"{cell.location}: no records"
    counts = ", ".join(
        f"{cell.statuses[s]} {s.value.replace('_', ' ')}" for s in Status if cell.statuses[s]
    )
    return (
        f"{cell.location}: {counts}; variance {fmt_signed(cell.net_variance)} units, "
        f"exception value {fmt_money(cell.exception_value)}"
    )


def _prefix(location: str) -> str:
    """Everything before the last separator (``A-01-03`` -> ``A-01``), or ``""``."""
    cut = max((m.start() for m in _SEPARATORS.finditer(location)), default=-1)
    return location[:cut] if cut > 0 else ""


def grid_rows(locations: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Lay locations out as rows of a grid, in display order.

    Locations named ``<prefix><sep><suffix>`` (``A-01-03``: prefix ``A-01``) are grouped into
    one row per prefix, in order of first appearance, when that makes real rows of at most 40
    cells. Otherwise they wrap, 12 to a row, unlabelled.

    Args:
        locations: Location names in display order.

    Returns:
        ``(row label, locations of the row)`` pairs.
    """
    prefixes = [_prefix(loc) for loc in locations]
    grouped: dict[str, list[str]] = {}
    for loc, prefix in zip(locations, prefixes, strict=True):
        grouped.setdefault(prefix, []).append(loc)
    structured = (
        all(prefixes)
        and len(grouped) < len(locations)
        and max((len(row) for row in grouped.values()), default=0) <= _MAX_ROW
    )
    if structured:
        return list(grouped.items())
    return [("", list(locations[i : i + _WRAP])) for i in range(0, len(locations), _WRAP)]


def _heatmap_svg(zone: str, layout: list[tuple[str, list[str]]], cells: dict[str, _Cell]) -> str:
    max_value = max((c.exception_value for c in cells.values()), default=0.0)
    labels = {
        loc: (loc[len(prefix) + 1 :] if prefix else loc) for prefix, row in layout for loc in row
    }
    cell_w = max(40, _CHAR_W * max((len(t) for t in labels.values()), default=1) + 10)
    label_w = (_CHAR_W * max(len(prefix) for prefix, _ in layout) + 12) if layout[0][0] else 0
    columns = max(len(row) for _, row in layout)
    width = label_w + columns * (cell_w + _GAP)
    height = len(layout) * (_CELL_H + _GAP)
    parts = [
        f'<svg xmlns="{SVG_NS}" class="heatmap" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{esc(f"Heat map of zone {zone}")}">'
    ]
    for r, (prefix, row) in enumerate(layout):
        y = r * (_CELL_H + _GAP)
        if prefix:
            parts.append(
                f'<text class="rowlabel" x="0" y="{y + _CELL_H / 2 + 4}">{esc(prefix)}</text>'
            )
        for c, loc in enumerate(row):
            cell = cells.get(loc) or _Cell(loc, loc, Counter(), 0.0, 0.0)
            css = _cell_class(cell, max_value)
            x = label_w + c * (cell_w + _GAP)
            parts.append(
                f'<g class="cell {css}" data-location="{esc(loc)}">'
                f"<title>{esc(_tooltip(cell))}</title>"
                f'<rect x="{x}" y="{y}" width="{cell_w}" height="{_CELL_H}" rx="3"/>'
                f'<text x="{x + 5}" y="{y + 14}">{esc(labels[loc])}</text>'
                f'<text x="{x + 5}" y="{y + 29}">{esc(_MARKS[css])}</text></g>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _legend(max_value: float) -> str:
    third = max_value / 3
    items = [
        ("hm-ok", "all records match"),
        ("hm-var1", f"exceptions, value under {fmt_money(third)}"),
        ("hm-var2", f"exceptions, value {fmt_money(third)}\u2013{fmt_money(2 * third)}"),
        ("hm-var3", f"exceptions, value {fmt_money(2 * third)} or more"),
        ("hm-grey", "not scanned or incomplete"),
        ("hm-acc", "differences accepted before, no exception"),
        ("hm-empty", "no records"),
    ]
    lis = "".join(
        f'<li><span class="swatch sw-{css}"></span>{esc(_MARKS[css])} {esc(text)}</li>'
        for css, text in items
    )
    return f'<ul class="legend">{lis}</ul>\n'


def _heatmap_section(zones: dict[str, list[str]], rows: Sequence[Row]) -> str:
    cells = _cells(rows)
    zoned = dict(zones)
    known = {loc for locs in zones.values() for loc in locs}
    orphans = [loc for loc in cells if loc not in known]
    if orphans:
        zoned["(no zone)"] = orphans
    max_value = max((c.exception_value for c in cells.values()), default=0.0)
    parts = ['<section id="heatmap"><h2>Heat map</h2>\n', _legend(max_value)]
    for zone, locations in zoned.items():
        if not locations:
            continue
        layout = grid_rows(list(dict.fromkeys(locations)))  # a location once per zone
        svg = _heatmap_svg(zone, layout, cells)
        parts.append(f"<figure><figcaption>Zone {esc(zone)}</figcaption>{svg}</figure>\n")
    if len(parts) == 2:
        parts.append("<p>No locations.</p>\n")
    parts.append("</section>\n")
    return "".join(parts)


# --- exceptions and page ---------------------------------------------------------------------


def _decision_cells(decision: Decision | None) -> tuple[str, str, str]:
    if decision is None:
        return DASH, DASH, DASH
    return esc(decision.outcome), esc(decision.decided_by), esc(decision.reason)


def _exceptions_section(rows: Sequence[Row], decisions: dict[tuple[str, str], Decision]) -> str:
    exceptions = sorted(
        (row for row in rows if row.is_exception),
        key=lambda row: (-abs(row.diff_value), row.location, row.sku),
    )
    if not exceptions:
        return '<section id="exceptions"><h2>Exceptions</h2><p>None.</p></section>\n'
    table = _table(
        f"{len(exceptions):,} exception records, largest value first",
        ("Location", "SKU", "Book", "Counted", "Difference", "Value", "Status", "Decision", "By",
         "Reason"),
        (
            (
                esc(row.location),
                esc(row.sku),
                esc(fmt_qty(row.book_qty)),
                DASH if row.counted_qty is None else esc(fmt_qty(row.counted_qty)),
                esc(fmt_signed(row.diff)),
                esc(fmt_money(row.diff_value, signed=True)),
                _status(row.status),
                *_decision_cells(decisions.get((row.location, row.sku))),
            )
            for row in exceptions
        ),
        frozenset({2, 3, 4, 5}),
    )  # fmt: skip
    return f'<section id="exceptions"><h2>Exceptions</h2>{table}</section>\n'


def _accepted_section(rows: Sequence[Row], decisions: dict[tuple[str, str], Decision]) -> str:
    accepted = [row for row in rows if row.status is Status.ACCEPTED]
    if not accepted:
        return ""
    table = _table(
        f"{len(accepted):,} records a person accepted before (not exceptions)",
        ("Location", "SKU", "Book", "Counted", "Difference", "Value", "Decision", "By", "Reason"),
        (
            (
                esc(row.location),
                esc(row.sku),
                esc(fmt_qty(row.book_qty)),
                DASH if row.counted_qty is None else esc(fmt_qty(row.counted_qty)),
                esc(fmt_signed(row.diff)),
                esc(fmt_money(row.diff_value, signed=True)),
                *_decision_cells(decisions.get((row.location, row.sku))),
            )
            for row in accepted
        ),
        frozenset({2, 3, 4, 5}),
    )
    return f'<section id="accepted"><h2>Accepted differences</h2>{table}</section>\n'


def report_sections(data: ReportData) -> str:
    """The report's sections without the page around them (the console embeds them).

    Summary, heat map, trend, exceptions and accepted differences: classes only, no
    ``style`` attribute and no script, so a page under a strict Content-Security-Policy can
    show them with its own stylesheet.

    Args:
        data: The report.

    Returns:
        HTML ``<section>`` elements (well-formed XML).
    """
    return (
        f"{_summary_section(data.summary, data.rows)}"
        f"{_heatmap_section(data.zones, data.rows)}"
        f"{trend_section(data.trend)}"
        f"{_exceptions_section(data.rows, data.decisions)}"
        f"{_accepted_section(data.rows, data.decisions)}"
    )


def render_html(data: ReportData) -> str:
    """Render the report as one self-contained HTML page.

    Args:
        data: The report.

    Returns:
        The page: HTML5 that is also well-formed XML, with inline CSS and SVG only.
    """
    when = data.generated_at.isoformat(sep=" ", timespec="minutes")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"/>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>'
        f"<title>{esc(data.title)}</title><style>{_CSS}</style></head>\n<body>\n"
        f"<header><h1>{esc(data.title)}</h1>"
        f'<p class="meta">Scope: <strong>{esc(data.scope)}</strong> {DASH} generated '
        f'<time datetime="{esc(data.generated_at.isoformat())}">{esc(when)}</time></p></header>\n'
        f"<main>\n{report_sections(data)}</main>\n</body>\n</html>\n"
    )
