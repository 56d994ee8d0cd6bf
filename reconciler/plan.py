"""Cycle-count planning: which locations to scan on a night, riskiest first.

ABC cycle counting (docs/domain.md): a location is counted every ``interval`` days of its class
(A weekly, B every two weeks, C monthly by default). Within that rhythm, risk-driven planning
(DeHoratius & Raman 2008) puts locations with past variances, many movements, high value and a
long time since their last count first.

Selection for one night (:func:`make_plan`):

1. Every **due** location (never counted, or ``date - last_counted >= interval``) is wanted.
   With a ``capacity`` the riskiest due locations fill it and the rest are **deferred**: the
   plan lists them and they roll to later nights, where their age raises their risk. This
   spreads a burst (the very first plan, where everything is due) over several nights.
2. Optionally (``pull_forward_risk``), locations not yet due whose risk reaches that threshold
   fill the capacity that is left, riskiest first. Off by default: scanning more than the
   rhythm asks costs robot and reader time.

Risk score, in 0-1 (:func:`risk_score`)::

    risk = 0.35 * E + 0.25 * T + 0.20 * M + 0.20 * V

* ``E = 1 - 0.5 ** past_exceptions``: 0 for a clean history, 0.5 after one exception, 0.75
  after two; saturates, so a chronic location cannot drown every other signal.
* ``T = min(days_since_count / interval, 2) / 2``: staleness relative to the class interval
  (0.5 when just due, 1 at twice the interval or when never counted).
* ``M``, ``V``: percentile rank of ``movements_since_count`` and of ``value`` among the night's
  inputs (share of locations with a strictly smaller figure), so neither the currency nor the
  warehouse's activity level needs a scale.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reconciler.model import AbcClass

__all__ = [
    "RISK_WEIGHTS",
    "Frequencies",
    "Plan",
    "PlanEntry",
    "PlanInput",
    "make_plan",
    "risk_score",
]

RISK_WEIGHTS = {"exceptions": 0.35, "age": 0.25, "movements": 0.20, "value": 0.20}
"""Weights of the risk components; they sum to 1."""

_AGE_CAP = 2.0
_CLASS_ORDER = {AbcClass.A: 0, AbcClass.B: 1, AbcClass.C: 2}


class Frequencies(BaseModel):
    """Days between counts per ABC class (docs/domain.md: A weekly, B fortnightly, C monthly)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    A: int = Field(default=7, ge=1, description="Days between counts of class A locations.")
    B: int = Field(default=14, ge=1, description="Days between counts of class B locations.")
    C: int = Field(default=30, ge=1, description="Days between counts of class C locations.")

    def interval(self, abc: AbcClass) -> int:
        """Days between counts for a class.

        Args:
            abc: The class.

        Returns:
            The interval in days.
        """
        return {AbcClass.A: self.A, AbcClass.B: self.B, AbcClass.C: self.C}[abc]


@dataclass(frozen=True, slots=True)
class PlanInput:
    """What the planner knows about one location.

    Attributes:
        location: Storage location, e.g. ``A-01-03``.
        zone: Its zone (scans run per zone).
        abc: The location's class: the highest class of the SKUs it holds.
        value: Book value at the location.
        last_counted: Date of the last good count, ``None`` if never counted.
        movements_since_count: Stock movements at the location since that count.
        past_exceptions: Discrepancies at the location within the exception window (90 days).
    """

    location: str
    zone: str
    abc: AbcClass
    value: float = 0.0
    last_counted: date | None = None
    movements_since_count: int = 0
    past_exceptions: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.value) or self.value < 0:
            raise ValueError(f"{self.location}: value must be a finite number >= 0")
        if self.movements_since_count < 0 or self.past_exceptions < 0:
            raise ValueError(f"{self.location}: counts of movements/exceptions must be >= 0")


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """One location in a plan (or deferred from it), with why.

    Attributes:
        location: Storage location.
        zone: Its zone.
        abc: Its class.
        due: Due tonight by its class interval.
        overdue_days: Days past the due date (0 when due today, not due, or never counted).
        risk: Risk score 0-1 (see the module docs).
        reasons: Human-readable explanations, most important first.
        days_since_count: Days since the last count, ``None`` if never counted.
        interval_days: Days between counts for its class.
        pulled_forward: Not due, but taken because its risk is high and capacity was left.
    """

    location: str
    zone: str
    abc: AbcClass
    due: bool
    overdue_days: int
    risk: float
    reasons: list[str]
    days_since_count: int | None = None
    interval_days: int = 0
    pulled_forward: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict (``abc`` as its letter, ``risk`` rounded to 4 places)."""
        out = asdict(self)
        out["abc"] = self.abc.value
        out["risk"] = round(self.risk, 4)
        return out


@dataclass(frozen=True, slots=True)
class Plan:
    """The locations to scan on one night, grouped by zone in scan order.

    Attributes:
        date: The night planned.
        capacity: Most locations per night, ``None`` for no limit.
        entries: Locations to scan, in scan order: zones by their riskiest entry, then due
            before pulled forward, riskiest first.
        deferred: Due locations that did not fit the capacity, riskiest first; they roll to a
            later night.
    """

    date: date
    capacity: int | None
    entries: list[PlanEntry]
    deferred: list[PlanEntry] = field(default_factory=list)

    @property
    def zones(self) -> dict[str, list[PlanEntry]]:
        """Zone -> its entries, zones in scan order."""
        grouped: dict[str, list[PlanEntry]] = {}
        for entry in self.entries:
            grouped.setdefault(entry.zone, []).append(entry)
        return grouped

    @property
    def totals(self) -> dict[str, int]:
        """Counts: locations, due, pulled_forward, deferred, zones, and per class A, B, C."""
        out = {
            "locations": len(self.entries),
            "due": sum(e.due for e in self.entries),
            "pulled_forward": sum(e.pulled_forward for e in self.entries),
            "deferred": len(self.deferred),
            "zones": len(self.zones),
        }
        for abc in AbcClass:
            out[abc.value] = sum(e.abc is abc for e in self.entries)
        return out

    def to_json(self) -> str:
        """The plan as JSON: date, capacity, totals, zones with their entries, deferred.

        Returns:
            ``{"date", "capacity", "totals", "zones": [{"zone", "entries": [...]}],
            "deferred": [...]}`` as text.
        """
        document = {
            "date": self.date.isoformat(),
            "capacity": self.capacity,
            "totals": self.totals,
            "zones": [
                {"zone": zone, "entries": [e.to_dict() for e in entries]}
                for zone, entries in self.zones.items()
            ],
            "deferred": [e.to_dict() for e in self.deferred],
        }
        return json.dumps(document, ensure_ascii=False, indent=2)

    def explain(self) -> str:
        """A plain-text account of the plan: a headline, then a table per zone and deferrals.

        Returns:
            Text lines for a terminal or an e-mail.
        """
        t = self.totals
        limit = "no capacity limit" if self.capacity is None else f"capacity {self.capacity}"
        lines = [
            f"Cycle-count plan for {self.date.isoformat()}: {_plural(t['locations'], 'location')}"
            f" in {_plural(t['zones'], 'zone')} ({t['due']} due, {t['pulled_forward']} pulled"
            f" forward), {limit}."
        ]
        if self.deferred:
            lines.append(
                f"{_plural(len(self.deferred), 'due location')} could not fit"
                " and roll to a later night."
            )
        lines += ["", *_text_table(self.entries, numbered=True)]
        if self.deferred:
            lines += ["", "Deferred (due, no capacity left):", *_text_table(self.deferred)]
        return "\n".join(lines) + "\n"


def _text_table(entries: Sequence[PlanEntry], *, numbered: bool = False) -> list[str]:
    if not entries:
        return ["(none)"]
    head = ("#", "zone", "location", "class", "due", "overdue", "risk", "reasons")
    rows = [
        (
            str(i) if numbered else "-",
            e.zone,
            e.location,
            e.abc.value,
            "yes" if e.due else "no",
            f"{e.overdue_days} d" if e.overdue_days else "",
            f"{e.risk:.2f}",
            "; ".join(e.reasons),
        )
        for i, e in enumerate(entries, start=1)
    ]
    widths = [max(len(r[c]) for r in (head, *rows)) for c in range(len(head) - 1)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in (head, *rows)
    ]


def _percentile_ranks(values: Sequence[float]) -> list[float]:
    """Share of the other values strictly smaller than each value (0 for the smallest)."""
    if len(values) < 2:
        return [0.0] * len(values)
    ordered = sorted(values)
    return [bisect_left(ordered, v) / (len(values) - 1) for v in values]


def risk_score(
    past_exceptions: int,
    days_since_count: int | None,
    interval_days: int,
    movement_rank: float,
    value_rank: float,
) -> float:
    """The risk score of one location (formula in the module docs).

    Args:
        past_exceptions: Discrepancies within the exception window.
        days_since_count: Days since the last count, ``None`` if never counted.
        interval_days: Days between counts for the location's class.
        movement_rank: Percentile rank 0-1 of its movements since the last count.
        value_rank: Percentile rank 0-1 of its book value.

    Returns:
        The score, 0 (no reason to look) to 1.
    """
    exceptions = 1.0 - 0.5**past_exceptions
    if days_since_count is None:
        age = 1.0
    else:
        age = min(max(days_since_count, 0) / interval_days, _AGE_CAP) / _AGE_CAP
    w = RISK_WEIGHTS
    return (
        w["exceptions"] * exceptions
        + w["age"] * age
        + w["movements"] * movement_rank
        + w["value"] * value_rank
    )


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _reasons(item: PlanInput, days: int | None, interval: int, window: int) -> list[str]:
    every = f"every {_plural(interval, 'day')}"
    if days is None:
        reasons = [f"class {item.abc.value}, never counted ({every})"]
    elif days == 0:
        reasons = [f"class {item.abc.value}, last counted today ({every})"]
    else:
        reasons = [f"class {item.abc.value}, last counted {_plural(days, 'day')} ago ({every})"]
    if days is not None and days > interval:
        reasons.append(f"overdue by {_plural(days - interval, 'day')}")
    if item.past_exceptions:
        reasons.append(f"{_plural(item.past_exceptions, 'exception')} in {window} days")
    if item.movements_since_count:
        reasons.append(f"{_plural(item.movements_since_count, 'movement')} since last count")
    if item.value > 0:
        reasons.append(f"book value {item.value:,.0f}")
    return reasons


def _assess(
    inputs: Sequence[PlanInput], night: date, frequencies: Frequencies, window: int
) -> list[PlanEntry]:
    """An entry per input, due or not, in no particular order."""
    movement_ranks = _percentile_ranks([float(i.movements_since_count) for i in inputs])
    value_ranks = _percentile_ranks([i.value for i in inputs])
    entries = []
    for item, m_rank, v_rank in zip(inputs, movement_ranks, value_ranks, strict=True):
        interval = frequencies.interval(item.abc)
        days = None if item.last_counted is None else max((night - item.last_counted).days, 0)
        due = days is None or days >= interval
        entries.append(
            PlanEntry(
                location=item.location,
                zone=item.zone,
                abc=item.abc,
                due=due,
                overdue_days=0 if days is None else max(days - interval, 0),
                risk=risk_score(item.past_exceptions, days, interval, m_rank, v_rank),
                reasons=_reasons(item, days, interval, window),
                days_since_count=days,
                interval_days=interval,
            )
        )
    return entries


def _priority(entry: PlanEntry) -> tuple[float, int, int, str]:
    """Sort key: riskiest first; then most overdue, higher class, name (for stable plans)."""
    return (-entry.risk, -entry.overdue_days, _CLASS_ORDER[entry.abc], entry.location)


def _scan_order(entries: Sequence[PlanEntry]) -> list[PlanEntry]:
    """Group by zone, zones by their riskiest entry; due before pulled forward; riskiest first."""
    by_zone: dict[str, list[PlanEntry]] = {}
    for entry in entries:
        by_zone.setdefault(entry.zone, []).append(entry)
    for group in by_zone.values():
        group.sort(key=lambda e: (e.pulled_forward, *_priority(e)))
    zones = sorted(by_zone.items(), key=lambda kv: (-max(e.risk for e in kv[1]), kv[0]))
    return [entry for _, group in zones for entry in group]


def make_plan(
    inputs: Sequence[PlanInput],
    date: date,
    frequencies: Frequencies | None = None,
    *,
    capacity: int | None = None,
    pull_forward_risk: float | None = None,
    exception_window_days: int = 90,
) -> Plan:
    """Decide which locations to scan on one night.

    Args:
        inputs: One per location (locations must be unique).
        date: The night planned.
        frequencies: Days between counts per class; the defaults when ``None``.
        capacity: Most locations per night; ``None`` for no limit.
        pull_forward_risk: When set, locations not yet due with at least this risk fill the
            capacity left after the due ones (all of them when there is no capacity limit).
        exception_window_days: The window ``past_exceptions`` was counted over (wording only).

    Returns:
        The plan, with the due locations that did not fit in ``deferred``.

    Raises:
        ValueError: On a negative capacity or a location given twice.
    """
    if capacity is not None and capacity < 0:
        raise ValueError("capacity must be >= 0")
    seen: set[str] = set()
    for item in inputs:
        if item.location in seen:
            raise ValueError(f"location {item.location!r} is given twice")
        seen.add(item.location)
    assessed = _assess(inputs, date, frequencies or Frequencies(), exception_window_days)
    due = sorted((e for e in assessed if e.due), key=_priority)
    room = len(due) if capacity is None else capacity
    chosen, deferred = due[:room], due[room:]
    if pull_forward_risk is not None:
        left = None if capacity is None else max(capacity - len(chosen), 0)
        extra = sorted(
            (e for e in assessed if not e.due and e.risk >= pull_forward_risk), key=_priority
        )[:left]
        chosen += [
            replace(
                e,
                pulled_forward=True,
                reasons=[
                    *e.reasons,
                    f"pulled forward: risk {e.risk:.2f} >= {pull_forward_risk:.2f}",
                ],
            )
            for e in extra
        ]
    deferred = [
        replace(e, reasons=[*e.reasons, f"deferred: capacity of {capacity} locations reached"])
        for e in deferred
    ]
    return Plan(date=date, capacity=capacity, entries=_scan_order(chosen), deferred=deferred)
