"""The messages the reconciler sends, built from its records: pure, no database, no clock.

The engine (:mod:`reconciler.engine`) decides what to send; this module shapes it, as the
contract's classes: the retained :class:`~edgecount.contract.DiscrepancyMessage` of a location
(or its clearing), a :class:`~edgecount.contract.ScanRequestMessage` asking a gateway for a
recount, the :class:`~edgecount.contract.AdjustmentMessage` of each line of an approved
discrepancy, and the :class:`~edgecount.contract.DecisionMessage` that records how a
discrepancy ended. Each is validated when it is made, so a message the contract would refuse
fails the step that makes it (rolled back), never the publisher; the publisher encodes it
(:func:`~edgecount.contract.encode`) only as it goes on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from edgecount import contract
from reconciler.model import Discrepancy, Row
from reconciler.transitions import State

__all__ = [
    "ADJUSTMENT_PREFIX",
    "Ended",
    "Outgoing",
    "adjustments",
    "cleared",
    "decision_message",
    "discrepancy_message",
    "exception_lines",
    "recount_request",
]

ADJUSTMENT_PREFIX = "adj-"
"""Start of every adjustment id (``adj-{discrepancy}-{sku}``), the document of its movement."""

M = TypeVar("M", bound=contract.Record)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for the service to publish (it encodes ``message`` at the wire).

    Attributes:
        topic: Where it goes.
        message: The message; None clears the retained message of ``topic``.
        retain: Whether the broker keeps it for new subscribers.
    """

    topic: str
    message: contract.Message | None
    retain: bool


@dataclass(frozen=True, slots=True)
class Ended:
    """One end of a discrepancy, to record (:func:`reconciler.repository.record_decision`).

    Attributes:
        discrepancy: The discrepancy as it was before the end.
        outcome: How it ended (one of :data:`reconciler.transitions.CLOSED_STATES`).
        by: Who decided (a person, or the reconciler's actor name).
        reason: Reason code.
        at: When.
        note: Free text from the person.
        scan_id: The scan of the count the message refers to (default: the discrepancy's).
        count_msg_id: That count's msg_id (default: the discrepancy's).
        adjustments: For approvals: the adjustments made of the lines.
    """

    discrepancy: Discrepancy
    outcome: State
    by: str
    reason: str
    at: datetime
    note: str = ""
    scan_id: str | None = None
    count_msg_id: str | None = None
    adjustments: Sequence[contract.AdjustmentMessage] = ()


def _valid(message: M) -> M:
    """``message``, once the contract accepts its payload.

    Raises:
        ContractError: It would be refused on the wire.
    """
    contract.validate(message.to_payload())
    return message


def exception_lines(rows: Sequence[Row]) -> tuple[contract.DecisionLine, ...]:
    """A discrepancy's lines: the exception rows of a count, as stored and published."""
    return tuple(
        contract.DecisionLine(
            sku=r.sku,
            book_qty=r.book_qty,
            counted_qty=r.counted_qty or 0,
            diff=r.diff,
            diff_value=round(r.diff_value, 2),
            status=r.status,
        )
        for r in rows
    )


def _shown(line: contract.DecisionLine) -> contract.DiscrepancyLine:
    """An exception line as a discrepancy message carries it."""
    return contract.DiscrepancyLine(
        sku=line.sku,
        book_qty=line.book_qty,
        counted_qty=line.counted_qty,
        diff=line.diff,
        diff_value=line.diff_value,
        status=line.status,
    )


def discrepancy_message(site: str, d: Discrepancy) -> Outgoing:
    """The retained ``edgecount.discrepancy/1`` showing an open discrepancy."""
    message = contract.DiscrepancyMessage(
        discrepancy_id=str(d.id),
        site=site,
        zone=d.zone,
        location=d.location,
        state=d.state,
        scan_id=d.scan_id,
        count_msg_id=d.count_msg_id,
        observed_at=contract.to_iso(d.observed_at),
        detected_at=contract.to_iso(d.opened_at),
        recounts=d.recounts,
        lines=tuple(_shown(line) for line in d.lines),
    )
    topic = contract.discrepancy_topic(site, d.zone, d.location)
    return Outgoing(topic, _valid(message), retain=True)


def cleared(site: str, zone: str, location: str) -> Outgoing:
    """The empty retained message that clears a location's discrepancy on the broker."""
    return Outgoing(contract.discrepancy_topic(site, zone, location), None, retain=True)


def recount_request(
    site: str, gateway: str, location: str, *, request_id: str, requested_by: str
) -> Outgoing:
    """The scan request asking a gateway to count a location again."""
    request = contract.scan_request_message(
        reason="recount",
        requested_by=requested_by,
        locations=[location],
        request_id=request_id,
    )
    return Outgoing(contract.cmd_scan_topic(site, gateway), request, retain=False)


def adjustments(
    site: str,
    d: Discrepancy,
    *,
    unit_costs: Mapping[str, float],
    reason_code: str,
    approver: str,
    note: str,
    at: datetime,
) -> tuple[contract.AdjustmentMessage, ...]:
    """The ``edgecount.adjustment/1`` of each line of an approved discrepancy.

    Args:
        site: The site.
        d: The discrepancy approved.
        unit_costs: Unit cost by SKU (0 for a SKU without one).
        reason_code: Why the book was wrong.
        approver: Who approved.
        note: Free text from the approver (left out when empty).
        at: When it was approved.
    """
    return tuple(
        _valid(
            contract.AdjustmentMessage(
                adjustment_id=f"{ADJUSTMENT_PREFIX}{d.id}-{line.sku}",
                site=site,
                zone=d.zone,
                location=d.location,
                sku=line.sku,
                book_qty=line.book_qty,
                counted_qty=line.counted_qty,
                diff=line.diff,
                diff_value=line.diff_value,
                unit_cost=unit_costs.get(line.sku, 0.0),
                reason_code=reason_code,
                approved_by=approver,
                approved_at=contract.to_iso(at),
                discrepancy_id=str(d.id),
                scan_id=d.scan_id,
                count_msg_id=d.count_msg_id,
                note=note or None,
            )
        )
        for line in d.lines
    )


def decision_message(site: str, decision_id: int, ended: Ended) -> contract.DecisionMessage:
    """The ``edgecount.decision/1`` of one end of a discrepancy."""
    d = ended.discrepancy
    made = None
    if ended.outcome is State.APPROVED:
        made = tuple(
            contract.DecisionAdjustment(
                adjustment_id=a.adjustment_id, sku=a.sku, diff=a.diff, diff_value=a.diff_value
            )
            for a in ended.adjustments
        )
    message = contract.DecisionMessage(
        decision_id=str(decision_id),
        discrepancy_id=str(d.id),
        site=site,
        zone=d.zone,
        location=d.location,
        outcome=ended.outcome,
        by=ended.by,
        reason=ended.reason,
        at=contract.to_iso(ended.at),
        scan_id=ended.scan_id or d.scan_id,
        count_msg_id=ended.count_msg_id or d.count_msg_id,
        recounts=d.recounts,
        lines=tuple(d.lines),
        note=ended.note or None,
        adjustments=made,
    )
    return _valid(message)
