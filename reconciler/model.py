"""Plain data shared by the reconciler's rules, reports and planning (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from edgecount.contract import AbcClass, DecisionLine, LineStatus
from reconciler.transitions import State

__all__ = [
    "COUNTED",
    "EXCEPTIONS",
    "AbcClass",
    "BookLine",
    "Discrepancy",
    "Movement",
    "Row",
    "Status",
    "Summary",
]

Status = LineStatus
"""Outcome of comparing one (location, SKU) record with the book: the contract's
:class:`~edgecount.contract.LineStatus` (each value is explained there)."""

EXCEPTIONS = frozenset({Status.OVER, Status.SHORT, Status.UNEXPECTED})
"""Statuses that open a discrepancy."""

COUNTED = frozenset({Status.MATCH, Status.OVER, Status.SHORT, Status.UNEXPECTED, Status.ACCEPTED})
"""Statuses of records that were really counted (the denominator of accuracy)."""


@dataclass(frozen=True, slots=True)
class BookLine:
    """What the book says about one SKU at one location (``qty`` in whole units)."""

    location: str
    sku: str
    qty: int
    unit_cost: float
    abc: AbcClass


@dataclass(frozen=True, slots=True)
class Movement:
    """A stock movement from the WMS log: ``qty_delta`` units added at ``ts``.

    ``movement_id`` is the WMS's own id of the movement (None when the feed has none): a
    movement whose id was imported before is not applied again.
    """

    ts: datetime
    location: str
    sku: str
    qty_delta: int
    user: str
    doc: str
    movement_id: str | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """One compared record, as in the discrepancy report CSV."""

    location: str
    sku: str
    book_qty: int
    counted_qty: int | None
    diff: int
    diff_value: float
    status: Status
    unit_cost: float = 0.0
    abc: AbcClass | None = None

    @property
    def is_exception(self) -> bool:
        """Outside tolerance: opens a discrepancy."""
        return self.status in EXCEPTIONS


@dataclass(frozen=True, slots=True)
class Summary:
    """Figures of one reconciliation (a scan, a zone, or a period).

    Rates are fractions 0-1. ``ira`` is inventory record accuracy: records within tolerance
    divided by records counted (never netting positive against negative variances).

    Coverage is over the report's scope: a location is *in the book* when one of its rows
    has a book quantity above 0, and *counted* when a complete count covered it (its rows
    are counted records, not ``not_scanned`` or ``incomplete``). ``book_value`` is Σ book
    quantity x unit cost over every row, of which ``book_value_counted`` was counted.
    """

    records_counted: int
    records_within_tolerance: int
    exact_matches: int
    exceptions: int
    ira: float
    exact_match_rate: float
    exception_rate: float
    net_variance: float
    absolute_variance: float
    net_variance_value: float
    absolute_variance_value: float
    book_value_counted: float
    gross_adjustment_rate: float
    scan_seconds: float | None
    top_exception_skus: list[tuple[str, float]] = field(default_factory=list)
    """Up to five (SKU, absolute variance value) of exception records, largest first."""
    locations_in_book: int = 0
    """Locations in scope whose book holds stock."""
    locations_counted: int = 0
    """Of those, the locations a complete count covered."""
    location_coverage: float = 0.0
    """``locations_counted / locations_in_book`` (0 when the book holds nothing)."""
    book_value: float = 0.0
    """Book value of every record in scope, counted or not."""
    value_coverage: float = 0.0
    """``book_value_counted / book_value`` (0 when the book value is 0)."""


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One row of ``discrepancies``: what the reconciler found at a location, and its state.

    Times are aware UTC. ``lines`` are the exception lines of the latest complete count
    compared with it, as stored (the ``lines`` column holds their payloads) and published in
    ``edgecount.discrepancy/1`` and ``edgecount.decision/1``; an exception line always has a
    counted quantity, so they are the contract's :class:`~edgecount.contract.DecisionLine`.
    """

    id: int
    zone: str
    location: str
    gateway: str
    state: State
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    recounts: int
    scan_id: str
    count_msg_id: str
    observed_at: datetime
    lines: tuple[DecisionLine, ...]
    announced: bool
