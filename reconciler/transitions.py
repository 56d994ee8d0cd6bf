"""The discrepancy state machine as pure functions: no database, no clock, no MQTT.

:func:`after_count` says what a count of a location does to the discrepancy open there (if
any); :func:`after_decision` what a person's approval or rejection does. The engine
(:mod:`reconciler.engine`) loads the open discrepancy, calls these, and writes the result.

States::

    recount_requested ──(a recount: another scan)──► recount_requested, recounts + 1
            │                                        … until recounts = max_recounts:
            ▼                                        awaiting_approval
    awaiting_approval ──approve / reject──► approved / rejected
            │
            ├──(the same difference counted again)──► awaiting_approval (latest count)
            └──(a different difference)──► superseded, and a new discrepancy opens

    any open state ──(a complete count within tolerance)──► resolved
    recount_requested ──(an incomplete count of another scan)──► the attempt counts
                                                                (recounts + 1, asked again)

``open`` is the state of a discrepancy found with ``max_recounts`` 0 before anyone acts; a
discrepancy is opened straight into ``recount_requested`` (or ``awaiting_approval`` when no
recounts are allowed). An incomplete count never opens, resolves or supersedes anything.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edgecount.contract import CLOSED_STATES, OPEN_STATES, DiscrepancyState

State = DiscrepancyState
"""The state of a discrepancy: the contract's :class:`~edgecount.contract.DiscrepancyState`.

Its :data:`OPEN_STATES` (at most one open discrepancy per location) are those a discrepancy
message shows, its :data:`CLOSED_STATES` the ends (each one a decision:
:mod:`reconciler.decisions`); both are the contract's, imported here.
"""

__all__ = [
    "CLOSED_STATES",
    "OPEN_STATES",
    "RESOLVED_BY_COUNT",
    "RESOLVED_BY_RECOUNT",
    "SUPERSEDED_BY_COUNT",
    "Action",
    "Count",
    "Current",
    "Figures",
    "State",
    "Step",
    "TransitionError",
    "after_count",
    "after_decision",
]

RESOLVED_BY_RECOUNT = "RECOUNT_MATCH"
RESOLVED_BY_COUNT = "COUNT_MATCH"
SUPERSEDED_BY_COUNT = "NEW_COUNT"

Figures = frozenset[tuple[str, int, int]]
"""What a set of exception lines claims: (SKU, book quantity, counted quantity) of each."""


class Action(enum.StrEnum):
    """What the engine writes after a count."""

    NONE = "none"
    """Nothing changes."""
    OPEN = "open"
    """A new discrepancy opens with the count's exception lines."""
    UPDATE = "update"
    """The open discrepancy takes the count's lines (and the step's state and recounts)."""
    ATTEMPT_FAILED = "attempt_failed"
    """An incomplete recount: the attempt counts; the lines stay the last complete count's."""
    RESOLVE = "resolve"
    """The open discrepancy ends ``resolved``."""
    SUPERSEDE = "supersede"
    """The open discrepancy ends ``superseded``; a new one opens with the count's lines."""


@dataclass(frozen=True, slots=True)
class Current:
    """The open discrepancy of a location, as far as the rules care.

    Attributes:
        state: One of :data:`OPEN_STATES`.
        recounts: Recounts done so far.
        scan_id: The scan of the latest count compared with it.
        figures: Its lines' figures.
    """

    state: State
    recounts: int
    scan_id: str
    figures: Figures


@dataclass(frozen=True, slots=True)
class Count:
    """A count of the location.

    Attributes:
        scan_id: Its scan.
        complete: Whether the whole location was read.
        figures: The figures of its exception lines (empty: within tolerance everywhere).
    """

    scan_id: str
    complete: bool
    figures: Figures


@dataclass(frozen=True, slots=True)
class Step:
    """What to do, and the open discrepancy afterwards.

    Attributes:
        action: What to write.
        state: The state of the discrepancy open afterwards (the new one after OPEN or
            SUPERSEDE); for RESOLVE, ``resolved``; for NONE, the current state or None.
        recounts: Its recounts afterwards.
        recount: Whether to ask the gateway for a recount now.
        reason: For RESOLVE and SUPERSEDE: the reason code of the reconciler's decision.
    """

    action: Action
    state: State | None = None
    recounts: int = 0
    recount: bool = False
    reason: str | None = None


def _after_attempt(recounts: int, max_recounts: int) -> State:
    """The state after ``recounts`` attempts: ask again while attempts remain."""
    return State.RECOUNT_REQUESTED if recounts < max_recounts else State.AWAITING_APPROVAL


def _opened(max_recounts: int, action: Action, reason: str | None = None) -> Step:
    state = _after_attempt(0, max_recounts)
    return Step(action, state, 0, recount=state is State.RECOUNT_REQUESTED, reason=reason)


def _after_incomplete(current: Current | None, count: Count, max_recounts: int) -> Step:
    """An incomplete count: only a recount asked for can fail; nothing else changes."""
    if (
        current is None
        or current.state is not State.RECOUNT_REQUESTED
        or count.scan_id == current.scan_id
    ):
        return Step(Action.NONE, None if current is None else current.state)
    recounts = current.recounts + 1
    state = _after_attempt(recounts, max_recounts)
    return Step(Action.ATTEMPT_FAILED, state, recounts, recount=state is State.RECOUNT_REQUESTED)


def after_count(current: Current | None, count: Count, max_recounts: int) -> Step:
    """What a count does to a location's open discrepancy.

    Args:
        current: The open discrepancy of the location, None when there is none.
        count: The count.
        max_recounts: Recounts asked before a person decides (0: at once).

    Returns:
        The step to take.
    """
    if not count.complete:
        return _after_incomplete(current, count, max_recounts)
    if current is None:
        return _opened(max_recounts, Action.OPEN) if count.figures else Step(Action.NONE)
    if not count.figures:
        reason = (
            RESOLVED_BY_RECOUNT if current.state is State.RECOUNT_REQUESTED else RESOLVED_BY_COUNT
        )
        return Step(Action.RESOLVE, State.RESOLVED, current.recounts, reason=reason)
    another_scan = count.scan_id != current.scan_id
    if current.state is State.RECOUNT_REQUESTED and another_scan:
        recounts = current.recounts + 1
        state = _after_attempt(recounts, max_recounts)
        return Step(Action.UPDATE, state, recounts, recount=state is State.RECOUNT_REQUESTED)
    if (
        current.state is State.AWAITING_APPROVAL
        and another_scan
        and count.figures != current.figures
    ):
        return _opened(max_recounts, Action.SUPERSEDE, SUPERSEDED_BY_COUNT)
    return Step(Action.UPDATE, current.state, current.recounts)


class TransitionError(ValueError):
    """A decision that the discrepancy's state does not allow."""


def after_decision(state: State, *, approve: bool) -> State:
    """The state after a person approves or rejects.

    Raises:
        TransitionError: The discrepancy is not awaiting approval.
    """
    if state is not State.AWAITING_APPROVAL:
        raise TransitionError(f"is {state.value}, not awaiting_approval")
    return State.APPROVED if approve else State.REJECTED
