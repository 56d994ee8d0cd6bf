"""Cycle-count planning: due logic, risk order, explanations, capacity, a month of nights."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import date, timedelta
from itertools import pairwise

import pytest
from pydantic import ValidationError

from reconciler.model import AbcClass
from reconciler.plan import Frequencies, Plan, PlanInput, make_plan, risk_score

NIGHT = date(2026, 11, 5)
A, B, C = AbcClass.A, AbcClass.B, AbcClass.C


def loc(name: str, abc: AbcClass = C, days: int | None = None, **kw: object) -> PlanInput:
    """A location last counted ``days`` before NIGHT (never when None)."""
    last = None if days is None else NIGHT - timedelta(days=days)
    return PlanInput(name, name.split("-", maxsplit=1)[0], abc, last_counted=last, **kw)  # type: ignore[arg-type]


def planned(plan: Plan) -> list[str]:
    return [e.location for e in plan.entries]


# --- frequencies and due logic ---------------------------------------------------------------


def test_frequencies_default_to_the_abc_rhythm_and_are_strict() -> None:
    f = Frequencies()
    assert (f.interval(A), f.interval(B), f.interval(C)) == (7, 14, 30)
    assert Frequencies.model_validate({"A": 5}).interval(A) == 5
    with pytest.raises(ValidationError):
        Frequencies.model_validate({"a": 5})  # a typo is an error, not ignored
    with pytest.raises(ValidationError):
        Frequencies(A=0)


@pytest.mark.parametrize(
    ("abc", "days", "due", "overdue"),
    [
        (A, None, True, 0),
        (A, 6, False, 0),
        (A, 7, True, 0),
        (A, 9, True, 2),
        (B, 13, False, 0),
        (B, 14, True, 0),
        (C, 29, False, 0),
        (C, 30, True, 0),
        (C, 0, False, 0),
        (C, -3, False, 0),  # a count dated after the plan date is treated as today's
    ],
)
def test_due_at_the_boundaries(abc: AbcClass, days: int | None, due: bool, overdue: int) -> None:
    plan = make_plan([loc("Z-01", abc, days)], NIGHT, pull_forward_risk=0.0)
    (entry,) = plan.entries
    assert (entry.due, entry.overdue_days, entry.pulled_forward) == (due, overdue, not due)


def test_only_due_locations_by_default() -> None:
    plan = make_plan([loc("Z-01", A, 7), loc("Z-02", A, 6), loc("Z-03", C)], NIGHT)
    assert sorted(planned(plan)) == ["Z-01", "Z-03"]
    assert plan.deferred == []


def test_custom_frequencies() -> None:
    plan = make_plan([loc("Z-01", A, 3)], NIGHT, Frequencies(A=3))
    assert planned(plan) == ["Z-01"]


# --- risk ------------------------------------------------------------------------------------


def test_past_exceptions_come_before_an_identical_clean_location() -> None:
    clean = loc("Z-01", B, 20, value=500.0, movements_since_count=3)
    risky = replace(clean, location="Z-02", past_exceptions=1)
    plan = make_plan([clean, risky], NIGHT)
    assert planned(plan) == ["Z-02", "Z-01"]
    assert plan.entries[0].risk > plan.entries[1].risk


@pytest.mark.parametrize(
    "change",
    [
        {"movements_since_count": 40},
        {"value": 9_000.0},
        {"last_counted": NIGHT - timedelta(days=25)},
        {"past_exceptions": 3},
    ],
)
def test_each_risk_factor_raises_the_rank(change: dict[str, object]) -> None:
    base = [loc(f"Z-{i:02d}", B, 16, value=100.0, movements_since_count=2) for i in range(5)]
    base[3] = replace(base[3], **change)  # type: ignore[arg-type]
    assert planned(make_plan(base, NIGHT))[0] == "Z-03"


def test_risk_formula() -> None:
    assert risk_score(0, 0, 7, 0.0, 0.0) == 0.0
    assert risk_score(0, None, 7, 0.0, 0.0) == pytest.approx(0.25)  # never counted: fully stale
    assert risk_score(0, 7, 7, 0.0, 0.0) == pytest.approx(0.125)  # just due: half stale
    assert risk_score(1, 0, 7, 0.0, 0.0) == pytest.approx(0.175)
    assert risk_score(50, 1000, 7, 1.0, 1.0) == pytest.approx(1.0)


def test_scan_order_groups_zones_riskiest_zone_first() -> None:
    inputs = [
        loc("A-01", C),
        loc("B-01", C, past_exceptions=2),
        loc("A-02", C, past_exceptions=1),
        loc("B-02", C),
    ]
    plan = make_plan(inputs, NIGHT)
    assert list(plan.zones) == ["B", "A"]
    assert planned(plan) == ["B-01", "B-02", "A-02", "A-01"]


# --- explanations and output -----------------------------------------------------------------


def test_reasons_explain_the_choice() -> None:
    item = loc("A-01-03", A, 9, value=12_400.0, movements_since_count=42, past_exceptions=3)
    (entry,) = make_plan([item], NIGHT).entries
    assert entry.reasons == [
        "class A, last counted 9 days ago (every 7 days)",
        "overdue by 2 days",
        "3 exceptions in 90 days",
        "42 movements since last count",
        "book value 12,400",
    ]
    (never,) = make_plan([loc("C-01", C, None, past_exceptions=1)], NIGHT).entries
    assert never.reasons == ["class C, never counted (every 30 days)", "1 exception in 90 days"]


def test_json_and_explain() -> None:
    inputs = [loc(f"A-{i:02d}", C, value=100.0 * i) for i in range(5)]
    plan = make_plan(inputs, NIGHT, capacity=3)
    doc = json.loads(plan.to_json())
    assert doc["date"] == "2026-11-05"
    assert doc["totals"] == {
        "locations": 3, "due": 3, "pulled_forward": 0, "deferred": 2, "zones": 1, "A": 0,
        "B": 0, "C": 3,
    }  # fmt: skip
    assert [e["location"] for e in doc["zones"][0]["entries"]] == ["A-04", "A-03", "A-02"]
    assert [e["location"] for e in doc["deferred"]] == ["A-01", "A-00"]
    assert doc["deferred"][0]["abc"] == "C"
    text = plan.explain()
    assert (
        "Cycle-count plan for 2026-11-05: 3 locations in 1 zone (3 due, 0 pulled forward)" in text
    )
    assert "2 due locations could not fit" in text
    assert "Deferred (due, no capacity left):" in text
    lines = text.splitlines()
    assert lines[3].split() == [
        "#",
        "zone",
        "location",
        "class",
        "due",
        "overdue",
        "risk",
        "reasons",
    ]
    assert lines[4].split()[:6] == ["1", "A", "A-04", "C", "yes", "0.45"]
    assert lines[4].endswith("class C, never counted (every 30 days); book value 400")


# --- capacity --------------------------------------------------------------------------------


def test_capacity_defers_the_least_risky_due_locations() -> None:
    inputs = [loc(f"C-{i:03d}", C, past_exceptions=i % 3, value=float(i)) for i in range(100)]
    plan = make_plan(inputs, NIGHT, capacity=20)
    assert len(plan.entries) == 20
    assert len(plan.deferred) == 80
    assert {e.location for e in plan.entries} | {e.location for e in plan.deferred} == {
        i.location for i in inputs
    }
    assert min(e.risk for e in plan.entries) >= max(e.risk for e in plan.deferred)
    assert all(e.reasons[-1] == "deferred: capacity of 20 locations reached" for e in plan.deferred)


def test_pull_forward_fills_only_the_capacity_left() -> None:
    inputs = [loc("Z-01", A, 7), loc("Z-02", A, 3, past_exceptions=4), loc("Z-03", A, 1)]
    plan = make_plan(inputs, NIGHT, capacity=2, pull_forward_risk=0.2)
    assert planned(plan) == ["Z-01", "Z-02"]
    assert [e.pulled_forward for e in plan.entries] == [False, True]
    assert plan.entries[1].reasons[-1].startswith("pulled forward: risk ")
    assert planned(make_plan(inputs, NIGHT, capacity=1, pull_forward_risk=0.0)) == ["Z-01"]


def test_zero_capacity_defers_everything_and_bad_input_is_refused() -> None:
    plan = make_plan([loc("Z-01", A)], NIGHT, capacity=0)
    assert (plan.entries, [e.location for e in plan.deferred]) == ([], ["Z-01"])
    with pytest.raises(ValueError, match="capacity"):
        make_plan([], NIGHT, capacity=-1)
    with pytest.raises(ValueError, match="twice"):
        make_plan([loc("Z-01"), loc("Z-01")], NIGHT)
    with pytest.raises(ValueError, match="value"):
        loc("Z-01", value=-1.0)


# --- a month of nights -----------------------------------------------------------------------


def simulate(
    inputs: list[PlanInput], capacity: int, nights: int, pull_forward_risk: float | None = None
) -> tuple[dict[str, list[int]], list[Plan]]:
    """Plan and "scan" night after night; returns location -> nights counted, and the plans."""
    rnd = random.Random(7)
    start = date(2026, 11, 1)
    state = {i.location: i for i in inputs}
    counted: dict[str, list[int]] = {name: [] for name in state}
    plans = []
    for n in range(nights):
        plan = make_plan(
            list(state.values()),
            start + timedelta(days=n),
            capacity=capacity,
            pull_forward_risk=pull_forward_risk,
        )
        plans.append(plan)
        for entry in plan.entries:
            counted[entry.location].append(n)
            found = rnd.random() < 0.1
            item = state[entry.location]
            state[entry.location] = replace(
                item,
                last_counted=plan.date,
                movements_since_count=0,
                past_exceptions=item.past_exceptions + found,
            )
        for name, item in state.items():
            moves = rnd.randint(0, {A: 6, B: 3, C: 1}[item.abc])
            state[name] = replace(item, movements_since_count=item.movements_since_count + moves)
    return counted, plans


def warehouse() -> list[PlanInput]:
    """10 A, 20 B and 80 C locations, never counted; all due on the first night."""
    rnd = random.Random(1)
    classes = [A] * 10 + [B] * 20 + [C] * 80
    rnd.shuffle(classes)
    value = {A: 20_000.0, B: 5_000.0, C: 800.0}
    return [
        PlanInput(
            f"{'XYZ'[i % 3]}-{i:03d}",
            "XYZ"[i % 3],
            abc,
            value=value[abc] * (0.5 + rnd.random() / 2),
        )
        for i, abc in enumerate(classes)
    ]


@pytest.mark.parametrize("pull_forward_risk", [None, 0.45])
def test_thirty_nights_keep_every_class_rhythm(pull_forward_risk: float | None) -> None:
    inputs = warehouse()
    nights = 30
    counted, plans = simulate(
        inputs, capacity=18, nights=nights, pull_forward_risk=pull_forward_risk
    )
    intervals = Frequencies()
    for item in inputs:
        every = intervals.interval(item.abc)
        days = counted[item.location]
        assert days, item
        # Every window of `every` consecutive nights holds a count of the location.
        gaps = [days[0] + 1] + [b - a for a, b in pairwise(days)]
        gaps.append(nights - days[-1])
        assert max(gaps) <= every, (item.location, item.abc, days)
    # The first night's burst is spread: capacity is used, the rest rolls over.
    assert len(plans[0].entries) == 18
    assert len(plans[0].deferred) == len(inputs) - 18
    assert all(len(p.entries) <= 18 for p in plans)
    # A locations (valuable) go first when everything is due.
    assert sum(e.abc is A for e in plans[0].entries) == 10


def test_the_plan_says_what_did_not_fit_when_capacity_is_short() -> None:
    inputs = warehouse()
    counted, plans = simulate(inputs, capacity=4, nights=30)
    assert all(p.deferred for p in plans)  # never enough room
    for plan in plans:
        due = {e.location for e in plan.entries if e.due} | {e.location for e in plan.deferred}
        assert len(due) == len(plan.entries) + len(plan.deferred)
        assert "could not fit" in plan.explain()
    assert sum(len(days) for days in counted.values()) == 4 * 30
