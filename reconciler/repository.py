"""Every write of what the reconciler decides: discrepancies, recounts, approvals, adjustments.

The only module that writes ``discrepancies`` (and their lines), ``recounts``, ``approvals``,
``adjustments``, ``decisions`` (the outbox of ``edgecount.decision/1``),
``accepted_variances`` and the ``audit`` log. Each function takes a connection: the caller
owns the transaction, so a step of the state machine (:mod:`reconciler.transitions`) is
written whole or not at all. Reads are :mod:`reconciler.queries`'.

Outbox rows (adjustments, decisions, and the ``announced`` flag of a discrepancy decided
elsewhere) are written with the change that makes them, and marked published when the
broker acknowledges them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from edgecount.contract import AdjustmentMessage, CountMessage, DecisionLine
from edgecount.timefmt import parse_utc
from reconciler import schema as t
from reconciler.messages import Ended, decision_message
from reconciler.model import Discrepancy
from reconciler.transitions import Action, State, Step

__all__ = [
    "adjustment_published",
    "audit",
    "decide",
    "decision_published",
    "mark_announced",
    "record_adjustments",
    "record_decision",
    "request_recount",
    "write_step",
]


def audit(
    conn: sa.Connection, actor: str, action: str, subject: str, detail: Mapping[str, Any]
) -> None:
    """Write one audit log entry inside the caller's transaction.

    Args:
        conn: The caller's connection (its transaction holds the entry).
        actor: Who did it (a person, an importer, the reconciler's actor name).
        action: What, e.g. ``discrepancy.open`` or ``book.import``.
        subject: What it was done to (a location, a file).
        detail: JSON-able particulars.
    """
    conn.execute(
        t.audit.insert().values(
            at=datetime.now(UTC), actor=actor, action=action, subject=subject, detail=dict(detail)
        )
    )


# -- discrepancies after a count ----------------------------------------------------------


def _stored(lines: Sequence[DecisionLine]) -> list[dict[str, Any]]:
    """Exception lines as the ``lines`` column (and the audit log) hold them: their payloads."""
    return [line.to_payload() for line in lines]


def write_step(
    conn: sa.Connection,
    current: Discrepancy | None,
    count: CountMessage,
    lines: Sequence[DecisionLine],
    step: Step,
    *,
    site: str,
    actor: str,
    now: datetime,
) -> int | None:
    """Write what the state machine says a count does (:func:`~reconciler.transitions.after_count`).

    Args:
        conn: The caller's connection; ``current`` was read in its transaction.
        current: The discrepancy open at the count's location, None when there is none.
        count: The count.
        lines: The count's exception lines (:func:`reconciler.messages.exception_lines`).
        step: The step to write.
        site: The site (in the decision message of a discrepancy the count ends).
        actor: Who the audit log and the decisions name.
        now: When.

    Returns:
        The id of the discrepancy open at the location afterwards (opened or changed), or
        None when none is: nothing to write, or the count resolved it.
    """
    if step.action is Action.NONE:
        return None
    if step.action is Action.OPEN:
        return _open(conn, count, lines, step, actor=actor, now=now)
    assert current is not None  # every other action changes the open discrepancy
    if step.action in (Action.UPDATE, Action.ATTEMPT_FAILED):
        _update(conn, current, count, lines, step, actor=actor, now=now)
        return current.id
    assert step.reason is not None
    outcome = State.RESOLVED if step.action is Action.RESOLVE else State.SUPERSEDED
    _end(conn, current, count, outcome=outcome, reason=step.reason, site=site, actor=actor, now=now)
    if step.action is Action.RESOLVE:
        return None
    return _open(conn, count, lines, step, actor=actor, now=now)  # superseded by a new one


def _open(
    conn: sa.Connection,
    count: CountMessage,
    lines: Sequence[DecisionLine],
    step: Step,
    *,
    actor: str,
    now: datetime,
) -> int:
    """Open a discrepancy for a count's exception lines (OPEN, SUPERSEDE); returns its id."""
    assert step.state is not None
    new_id = conn.execute(
        t.discrepancies.insert().values(
            zone=count.zone,
            location=count.location,
            gateway=count.gateway,
            state=step.state.value,
            opened_at=now,
            updated_at=now,
            recounts=step.recounts,
            scan_id=count.scan_id,
            count_msg_id=count.msg_id,
            observed_at=parse_utc(count.observed_at),
            lines=_stored(lines),
        )
    ).inserted_primary_key
    assert new_id is not None
    discrepancy_id = int(new_id[0])
    detail = {"id": discrepancy_id, "lines": _stored(lines)}
    audit(conn, actor, "discrepancy.open", count.location, detail)
    return discrepancy_id


def _update(
    conn: sa.Connection,
    current: Discrepancy,
    count: CountMessage,
    lines: Sequence[DecisionLine],
    step: Step,
    *,
    actor: str,
    now: datetime,
) -> None:
    """A later count of an open discrepancy (UPDATE, ATTEMPT_FAILED): its lines or attempts."""
    assert step.state is not None
    values: dict[str, Any] = {
        "state": step.state.value,
        "recounts": step.recounts,
        "updated_at": now,
        "scan_id": count.scan_id,
    }
    if step.action is Action.ATTEMPT_FAILED:
        # The lines stay those of the last complete count: a person decides on them.
        action = "discrepancy.recount_incomplete"
        detail = {"id": current.id, "recounts": step.recounts, "scan_id": count.scan_id}
    else:
        values |= {
            "count_msg_id": count.msg_id,
            "observed_at": parse_utc(count.observed_at),
            "lines": _stored(lines),
        }
        action = f"discrepancy.{step.state.value}"
        detail = {"id": current.id, "recounts": step.recounts}
    conn.execute(
        t.discrepancies.update().where(t.discrepancies.c.id == current.id).values(**values)
    )
    audit(conn, actor, action, count.location, detail)


def _end(
    conn: sa.Connection,
    current: Discrepancy,
    count: CountMessage,
    *,
    outcome: State,
    reason: str,
    site: str,
    actor: str,
    now: datetime,
) -> None:
    """Close a discrepancy because of a count (resolved, superseded) and record the decision."""
    conn.execute(
        t.discrepancies.update()
        .where(t.discrepancies.c.id == current.id)
        .values(state=outcome.value, updated_at=now, closed_at=now, scan_id=count.scan_id)
    )
    ended = Ended(
        current,
        outcome,
        actor,
        reason,
        now,
        scan_id=count.scan_id,
        count_msg_id=count.msg_id,
    )
    record_decision(conn, site, ended)
    detail = {"id": current.id, "by_scan": count.scan_id}
    audit(conn, actor, f"discrepancy.{outcome.value}", count.location, detail)


def request_recount(
    conn: sa.Connection, *, request_id: str, discrepancy_id: int, gateway: str, now: datetime
) -> None:
    """Record a recount request sent to a gateway (sent again when it comes back online)."""
    conn.execute(
        t.recounts.insert().values(
            request_id=request_id,
            discrepancy_id=discrepancy_id,
            gateway=gateway,
            requested_at=now,
        )
    )


# -- decisions by people ------------------------------------------------------------------


def decide(
    conn: sa.Connection,
    current: Discrepancy,
    *,
    decision: State,
    reason_code: str,
    approver: str,
    note: str,
    now: datetime,
) -> bool:
    """Close a discrepancy awaiting approval as a person decided; False if it no longer waits.

    The update is conditional on the state: of two deciders racing (CLI and API, two
    instances) exactly one changes the row; the other gets False and should roll back. The
    discrepancy is left unannounced until its retained message is cleared.
    """
    changed = conn.execute(
        t.discrepancies.update()
        .where(
            t.discrepancies.c.id == current.id,
            t.discrepancies.c.state == State.AWAITING_APPROVAL,
        )
        .values(state=decision.value, updated_at=now, closed_at=now, announced=False)
    ).rowcount
    if changed != 1:
        return False
    conn.execute(
        t.approvals.insert().values(
            discrepancy_id=current.id,
            decision=decision.value,
            reason_code=reason_code,
            approver=approver,
            at=now,
            note=note,
        )
    )
    detail = {"id": current.id, "reason_code": reason_code, "note": note}
    audit(conn, approver, f"discrepancy.{decision.value}", current.location, detail)
    return True


def record_adjustments(
    conn: sa.Connection,
    current: Discrepancy,
    made: Sequence[AdjustmentMessage],
    *,
    approver: str,
    now: datetime,
) -> None:
    """Store the adjustments of an approval (to publish) and book each as a movement.

    The movement's document is the adjustment id, so the local book agrees with the WMS's
    once it applies the adjustment.
    """
    for adjustment in made:
        conn.execute(
            t.adjustments.insert().values(
                discrepancy_id=current.id,
                payload=adjustment.to_payload(),
                value=abs(adjustment.diff_value or 0.0),
                created_at=now,
            )
        )
        conn.execute(
            t.movements.insert().values(
                ts=now,
                location=current.location,
                sku=adjustment.sku,
                qty_delta=adjustment.diff,
                user=approver,
                doc=adjustment.adjustment_id,
            )
        )


# -- how discrepancies end (the decisions' outbox) ----------------------------------------


def record_decision(conn: sa.Connection, site: str, ended: Ended) -> int:
    """Write the decision row (and, for a rejection, the accepted variances); returns its id."""
    d = ended.discrepancy
    new_id = conn.execute(
        t.decisions.insert().values(
            discrepancy_id=d.id,
            zone=d.zone,
            location=d.location,
            outcome=ended.outcome.value,
            decided_by=ended.by,
            reason_code=ended.reason,
            note=ended.note,
            at=ended.at,
            payload={},
        )
    ).inserted_primary_key
    assert new_id is not None
    decision_id = int(new_id[0])
    payload = decision_message(site, decision_id, ended).to_payload()
    conn.execute(
        t.decisions.update().where(t.decisions.c.id == decision_id).values(payload=payload)
    )
    if ended.outcome is State.REJECTED:
        _accept_variances(conn, ended)
    return decision_id


def _accept_variances(conn: sa.Connection, ended: Ended) -> None:
    """A rejection accepts each line's figures until the book, the count or a movement changes."""
    d = ended.discrepancy
    conn.execute(
        t.accepted_variances.insert(),
        [
            {
                "location": d.location,
                "sku": line.sku,
                "book_qty": line.book_qty,
                "counted_qty": line.counted_qty,
                "discrepancy_id": d.id,
                "reason_code": ended.reason,
                "decided_by": ended.by,
                "decided_at": ended.at,
            }
            for line in d.lines
        ],
    )


def decision_published(conn: sa.Connection, decision_id: int, at: datetime) -> None:
    """The broker acknowledged a decision message."""
    conn.execute(
        t.decisions.update().where(t.decisions.c.id == decision_id).values(published_at=at)
    )


def adjustment_published(conn: sa.Connection, adjustment_id: int, at: datetime) -> None:
    """The broker acknowledged an adjustment."""
    conn.execute(
        t.adjustments.update().where(t.adjustments.c.id == adjustment_id).values(published_at=at)
    )


def mark_announced(conn: sa.Connection, discrepancy_id: int) -> None:
    """The broker acknowledged the message showing a discrepancy's decision."""
    conn.execute(
        t.discrepancies.update()
        .where(t.discrepancies.c.id == discrepancy_id)
        .values(announced=True)
    )
