"""The discrepancy state machine, exhaustively: every state x every kind of count, and
random nights of counts (hypothesis) with the invariants a warehouse relies on."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.transitions import (
    CLOSED_STATES,
    OPEN_STATES,
    RESOLVED_BY_COUNT,
    RESOLVED_BY_RECOUNT,
    SUPERSEDED_BY_COUNT,
    Action,
    Count,
    Current,
    Figures,
    State,
    TransitionError,
    after_count,
    after_decision,
)

NONE: Figures = frozenset()
A: Figures = frozenset({("S1", 10, 6)})
B: Figures = frozenset({("S1", 10, 3)})
MAX = range(4)


def currents(max_recounts: int) -> list[Current | None]:
    """Every open discrepancy the rules can meet (scan "s1"), and none."""
    out: list[Current | None] = [None]
    for state, recounts, figures in itertools.product(OPEN_STATES, range(max_recounts + 1), (A, B)):
        out.append(Current(state, recounts, "s1", figures))
    return out


COUNTS = [
    Count(scan, complete, figures)
    for scan, complete, figures in itertools.product(("s1", "s2"), (True, False), (NONE, A, B))
    if complete or not figures  # an incomplete count never has exception figures
]


@pytest.mark.parametrize("max_recounts", MAX)
def test_every_state_and_count(max_recounts: int) -> None:
    for current, count in itertools.product(currents(max_recounts), COUNTS):
        step = after_count(current, count, max_recounts)
        where = f"{current} + {count} (max {max_recounts}) -> {step}"
        if step.recount:  # a recount is asked only into recount_requested
            assert step.state is State.RECOUNT_REQUESTED, where
        if current is None:
            opens = count.complete and bool(count.figures)
            assert step.action is (Action.OPEN if opens else Action.NONE), where
            if opens:
                assert (step.state, step.recounts) == (
                    State.RECOUNT_REQUESTED if max_recounts else State.AWAITING_APPROVAL,
                    0,
                ), where
                assert step.recount is (max_recounts > 0), where
            continue
        another = count.scan_id != current.scan_id
        if not count.complete:  # incomplete: only a recount asked for can fail
            fails = current.state is State.RECOUNT_REQUESTED and another
            assert step.action is (Action.ATTEMPT_FAILED if fails else Action.NONE), where
            if fails:
                assert step.recounts == current.recounts + 1, where
            continue
        if not count.figures:  # within tolerance: resolved, whatever the state
            reason = (
                RESOLVED_BY_RECOUNT
                if current.state is State.RECOUNT_REQUESTED
                else RESOLVED_BY_COUNT
            )
            assert (step.action, step.state, step.reason) == (
                Action.RESOLVE,
                State.RESOLVED,
                reason,
            ), where
            continue
        if current.state is State.AWAITING_APPROVAL:
            # a person decides on these figures: only a different difference replaces them
            changed = another and count.figures != current.figures
            assert step.action is (Action.SUPERSEDE if changed else Action.UPDATE), where
            if changed:
                assert (step.recounts, step.reason) == (0, SUPERSEDED_BY_COUNT), where
            else:
                assert (step.state, step.recount) == (State.AWAITING_APPROVAL, False), where
            continue
        assert step.action is Action.UPDATE, where
        if current.state is State.RECOUNT_REQUESTED and another:  # a recount came back
            assert step.recounts == current.recounts + 1, where
            done = step.recounts >= max_recounts
            assert step.state is (State.AWAITING_APPROVAL if done else State.RECOUNT_REQUESTED), (
                where
            )
            assert step.recount is not done, where
        else:  # the same scan again (or an `open` one): nothing new to ask
            assert (step.state, step.recounts, step.recount) == (
                current.state,
                current.recounts,
                False,
            ), where


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("approve", [True, False])
def test_only_a_discrepancy_awaiting_approval_can_be_decided(state: State, approve: bool) -> None:
    if state is State.AWAITING_APPROVAL:
        assert after_decision(state, approve=approve) is (
            State.APPROVED if approve else State.REJECTED
        )
        return
    with pytest.raises(TransitionError, match=f"is {state.value}, not awaiting_approval"):
        after_decision(state, approve=approve)


def test_states_are_open_or_closed() -> None:
    assert set(OPEN_STATES) | set(CLOSED_STATES) == set(State)
    assert not set(OPEN_STATES) & set(CLOSED_STATES)


# --------------------------------------------------------------------------- random nights


@dataclass
class Location:
    """What the engine would hold for one location, driven by the pure rules alone."""

    max_recounts: int
    current: Current | None = None
    requests: int = 0  # recount requests of the current discrepancy
    opened: int = 0
    log: list[str] = field(default_factory=list)

    def count(self, count: Count) -> None:
        step = after_count(self.current, count, self.max_recounts)
        self.log.append(f"{count} -> {step}")
        if step.action in (Action.OPEN, Action.SUPERSEDE):
            assert step.state is not None
            self.current = Current(step.state, step.recounts, count.scan_id, count.figures)
            self.requests, self.opened = 0, self.opened + 1
        elif step.action in (Action.UPDATE, Action.ATTEMPT_FAILED):
            assert self.current is not None
            assert step.state is not None
            figures = (
                self.current.figures if step.action is Action.ATTEMPT_FAILED else count.figures
            )
            self.current = Current(step.state, step.recounts, count.scan_id, figures)
        elif step.action is Action.RESOLVE:
            self.current = None
        self.requests += step.recount


counts = st.builds(
    Count,
    scan_id=st.sampled_from(["s1", "s2", "s3", "s4", "s5"]),
    complete=st.booleans(),
    figures=st.sampled_from([NONE, A, B]),
).filter(lambda c: c.complete or not c.figures)


@given(st.sampled_from(MAX), st.lists(counts, max_size=30))
def test_a_night_of_counts_keeps_the_invariants(max_recounts: int, night: list[Count]) -> None:
    place = Location(max_recounts)
    for count in night:
        place.count(count)
        current = place.current
        if current is None:
            continue
        assert current.state in (State.RECOUNT_REQUESTED, State.AWAITING_APPROVAL), place.log
        assert current.recounts <= max_recounts, place.log  # never more recounts than allowed
        assert place.requests <= max_recounts, place.log  # nor more requests
        if current.state is State.RECOUNT_REQUESTED:
            assert place.requests == current.recounts + 1, place.log  # exactly one out


@given(st.sampled_from(MAX), st.sampled_from([A, B]))
def test_a_difference_that_stays_reaches_a_person_after_max_recounts(
    max_recounts: int, figures: Figures
) -> None:
    place = Location(max_recounts)
    for scan in range(max_recounts + 1):
        assert place.current is None or place.current.state is State.RECOUNT_REQUESTED
        place.count(Count(f"s{scan}", True, figures))
    assert place.current is not None
    assert (place.current.state, place.current.recounts) == (
        State.AWAITING_APPROVAL,
        max_recounts,
    )
    assert place.requests == max_recounts
    assert place.opened == 1
