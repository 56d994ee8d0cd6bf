"""The accuracy trend of the HTML report: an inline SVG line chart of IRA over past scans.

The x axis is time when every scan's ``at`` parses as ISO-8601 (points spaced by real time),
otherwise scan order. The y axis is IRA in percent, from a round lower bound up to 100 %, with
the best-in-class line at 99.5 % (docs/domain.md). Each point carries a ``<title>`` tooltip;
points are labelled with their IRA (all of them up to 24 scans, then the first, the last, the
lowest and the highest). A folded table with the same figures follows, for screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from itertools import pairwise
from typing import Any

from edgecount import timefmt

__all__ = ["BEST_IN_CLASS_IRA", "trend_section"]

BEST_IN_CLASS_IRA = 0.995
"""Best-in-class inventory record accuracy (docs/domain.md, "Metrics")."""

_SVG_NS = "http://www.w3.org/2000/svg"
_W, _H = 760, 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 24, 20, 48
_LABEL_ALL = 24
_X_TICKS = 6


@dataclass(frozen=True, slots=True)
class _Point:
    scan_id: str
    at: str
    ira: float
    exceptions: int
    x: float  # position in data units (seconds since the first scan, or index)


def _points(trend: Sequence[Mapping[str, Any]]) -> list[_Point]:
    usable = [t for t in trend if isinstance(t.get("ira"), int | float) and math.isfinite(t["ira"])]
    try:
        times = [timefmt.parse(str(t["at"])) for t in usable]
        xs = [(when - times[0]).total_seconds() for when in times]
    except (KeyError, ValueError, TypeError):  # missing, unparsable, or naive mixed with aware
        xs = []
    if len(xs) < 2 or xs[-1] <= xs[0] or any(b < a for a, b in pairwise(xs)):
        xs = [float(i) for i in range(len(usable))]
    return [
        _Point(str(t.get("scan_id", "")), str(t.get("at", "")), float(t["ira"]),
               int(t.get("exceptions", 0)), x)
        for t, x in zip(usable, xs, strict=True)
    ]  # fmt: skip


def _y_range(points: Sequence[_Point]) -> tuple[float, float, float]:
    """(low %, high %, tick step %): from a round bound under the lowest point up to 100."""
    lowest = min(p.ira for p in points) * 100
    low = max(0.0, min(95.0, math.floor(lowest / 5) * 5))
    high = max(100.0, math.ceil(max(p.ira for p in points) * 100))
    step = 1.0 if high - low <= 5 else 5.0 if high - low <= 30 else 20.0
    return low, high, step


def _labelled(points: Sequence[_Point]) -> set[int]:
    if len(points) <= _LABEL_ALL:
        return set(range(len(points)))
    order = sorted(range(len(points)), key=lambda i: points[i].ira)
    return {0, len(points) - 1, order[0], order[-1]}


def _axes(low: float, high: float, step: float, py: Any) -> list[str]:
    x0, x1, y1 = _LEFT, _W - _RIGHT, _H - _BOTTOM
    out = [
        f'<line class="axis" x1="{x0}" y1="{_TOP}" x2="{x0}" y2="{y1}"/>',
        f'<line class="axis" x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}"/>',
        f'<text x="4" y="{_TOP - 6}">IRA %</text>',
    ]
    tick = low
    while tick <= high + 1e-9:
        y = py(tick)
        out.append(f'<line class="grid" x1="{x0 + 1}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
        tick += step
    target = BEST_IN_CLASS_IRA * 100
    if low < target < high:
        y = py(target)
        out.append(f'<line class="target" x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}"/>')
        out.append(f'<line class="target" x1="{x0}" y1="{_H - 10}" x2="{x0 + 30}" y2="{_H - 10}"/>')
        out.append(f'<text x="{x0 + 36}" y="{_H - 6}">best in class, {target:g} % IRA</text>')
    return out


def _svg(points: Sequence[_Point]) -> str:
    low, high, step = _y_range(points)
    span = points[-1].x - points[0].x

    def px(x: float) -> float:
        inner = _W - _LEFT - _RIGHT - 40
        return _LEFT + 20 + (inner * (x - points[0].x) / span if span else inner / 2)

    def py(pct: float) -> float:
        return _TOP + (_H - _TOP - _BOTTOM) * (high - pct) / (high - low)

    out = [
        f'<svg xmlns="{_SVG_NS}" class="trend" role="img" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" aria-label="Inventory record accuracy over past scans">',
        *_axes(low, high, step, py),
    ]
    coords = [(px(p.x), py(p.ira * 100)) for p in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    out.append(f'<polyline class="trend-line" points="{line}"/>')
    ticks = {round(i * (len(points) - 1) / (_X_TICKS - 1)) for i in range(_X_TICKS)}
    labelled = _labelled(points)
    for i, (p, (x, y)) in enumerate(zip(points, coords, strict=True)):
        tip = f"{p.scan_id} at {p.at}: IRA {p.ira * 100:.2f} %, {p.exceptions} exceptions"
        label = (
            f'<text x="{x:.1f}" y="{y - 8:.1f}" text-anchor="middle">{p.ira * 100:.1f}</text>'
            if i in labelled
            else ""
        )
        out.append(
            f'<g class="trend-pt"><title>{escape(tip)}</title>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4"/>{label}</g>'
        )
        if i in ticks:
            out.append(
                f'<text x="{x:.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle">'
                f"{escape(p.at[:10])}</text>"
            )
    out.append("</svg>")
    return "".join(out)


def _table(points: Sequence[_Point]) -> str:
    body = "".join(
        f"<tr><td>{escape(p.scan_id)}</td><td>{escape(p.at)}</td>"
        f'<td class="num">{p.ira * 100:.2f} %</td><td class="num">{p.exceptions:,}</td></tr>\n'
        for p in points
    )
    return (
        "<details><summary>Trend as a table</summary><table><thead><tr>"
        '<th scope="col">Scan</th><th scope="col">At</th><th scope="col" class="num">IRA</th>'
        f'<th scope="col" class="num">Exceptions</th></tr></thead><tbody>\n{body}'
        "</tbody></table></details>\n"
    )


def trend_section(trend: Sequence[Mapping[str, Any]]) -> str:
    """Render the accuracy-trend section of the report.

    Args:
        trend: Past scans in time order: ``{"scan_id", "at", "ira" (0-1), "exceptions"}``.
            Items without a finite ``ira`` are left out.

    Returns:
        An HTML ``<section>`` with the chart and a folded table, or a short note when there
        is no usable scan.
    """
    points = _points(trend)
    if not points:
        return '<section id="trend"><h2>Accuracy trend</h2><p>No past scans.</p></section>\n'
    return (
        '<section id="trend"><h2>Accuracy trend</h2>'
        f"<figure><figcaption>IRA per scan ({len(points)} scans)</figcaption>{_svg(points)}"
        f"</figure>\n{_table(points)}</section>\n"
    )
