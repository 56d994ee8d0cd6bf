"""The messages the reconciler sends, built from its records: pure, no database, no clock.

The engine (:mod:`reconciler.engine`) decides what to send; this module shapes it: the
retained ``edgecount.discrepancy/1`` of a location (or its clearing), a recount request to a
gateway, the ``edgecount.adjustment/1`` of each line of an approved discrepancy, and the
``edgecount.decision/1`` that records how a discrepancy ended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edgecount import contract
from reconciler.model import Discrepancy, Row
from reconciler.transitions import State

ADJUSTMENT_PREFIX = "adj-"
"""Start of every adjustment id (``adj-{discrepancy}-{sku}``), the document of its movement."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for the service to publish."""

    topic: str
    payload: dict[str, Any] | None  # None: clear the retained message
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
        adjustments: For approvals: the adjustment payloads made of the lines.
    """

    discrepancy: Discrepancy
    outcome: State
    by: str
    reason: str
    at: datetime
    note: str = ""
    scan_id: str | None = None
    count_msg_id: str | None = None
    adjustments: Sequence[Mapping[str, Any]] = ()


def exception_lines(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """A discrepancy's lines: the exception rows of a count, as stored and published."""
    return [
        {
            "sku": r.sku,
            "book_qty": r.book_qty,
            "counted_qty": r.counted_qty or 0,
            "diff": r.diff,
            "diff_value": round(r.diff_value, 2),
            "status": r.status.value,
        }
        for r in rows
    ]


def discrepancy_message(site: str, d: Discrepancy) -> Outgoing:
    """The retained ``edgecount.discrepancy/1`` showing an open discrepancy."""
    payload = contract.build(
        contract.DISCREPANCY,
        {
            "discrepancy_id": str(d.id),
            "site": site,
            "zone": d.zone,
            "location": d.location,
            "state": d.state.value,
            "scan_id": d.scan_id,
            "count_msg_id": d.count_msg_id,
            "observed_at": contract.to_iso(d.observed_at),
            "detected_at": contract.to_iso(d.opened_at),
            "recounts": d.recounts,
            "lines": d.lines,
        },
    )
    return Outgoing(contract.discrepancy_topic(site, d.zone, d.location), payload, retain=True)


def cleared(site: str, zone: str, location: str) -> Outgoing:
    """The empty retained message that clears a location's discrepancy on the broker."""
    return Outgoing(contract.discrepancy_topic(site, zone, location), None, retain=True)


def recount_request(
    site: str, gateway: str, location: str, *, request_id: str, requested_by: str
) -> Outgoing:
    """The scan request asking a gateway to count a location again."""
    request = contract.scan_request_payload(
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
) -> list[dict[str, Any]]:
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
    return [
        contract.build(
            contract.ADJUSTMENT,
            {
                "adjustment_id": f"{ADJUSTMENT_PREFIX}{d.id}-{line['sku']}",
                "site": site,
                "zone": d.zone,
                "location": d.location,
                "sku": line["sku"],
                "book_qty": line["book_qty"],
                "counted_qty": line["counted_qty"],
                "diff": line["diff"],
                "diff_value": line["diff_value"],
                "unit_cost": unit_costs.get(line["sku"], 0.0),
                "reason_code": reason_code,
                "approved_by": approver,
                "approved_at": contract.to_iso(at),
                "discrepancy_id": str(d.id),
                "scan_id": d.scan_id,
                "count_msg_id": d.count_msg_id,
                **({"note": note} if note else {}),
            },
        )
        for line in d.lines
    ]


def decision_payload(site: str, decision_id: int, ended: Ended) -> dict[str, Any]:
    """The ``edgecount.decision/1`` of one end of a discrepancy."""
    d = ended.discrepancy
    fields: dict[str, Any] = {
        "decision_id": str(decision_id),
        "discrepancy_id": str(d.id),
        "site": site,
        "zone": d.zone,
        "location": d.location,
        "outcome": ended.outcome.value,
        "by": ended.by,
        "reason": ended.reason,
        "at": contract.to_iso(ended.at),
        "scan_id": ended.scan_id or d.scan_id,
        "count_msg_id": ended.count_msg_id or d.count_msg_id,
        "recounts": d.recounts,
        "lines": d.lines,
    }
    if ended.note:
        fields["note"] = ended.note
    if ended.outcome is State.APPROVED:
        fields["adjustments"] = [
            {k: a[k] for k in ("adjustment_id", "sku", "diff", "diff_value")}
            for a in ended.adjustments
        ]
    return contract.build(contract.DECISION, fields)
