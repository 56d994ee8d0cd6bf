"""The discrepancy state machine: what happens when a count arrives or a person decides.

For each count of a location the book is taken **as of the moment the count was observed**
(movements after it do not count), compared record by record, and:

* no exception (every record within tolerance): an open discrepancy of that location is
  resolved and its retained message cleared;
* exceptions and no open discrepancy: one is opened; while recounts remain
  (``max_recounts``) the gateway covering the location is asked to scan it again
  (``recount_requested``), else it waits for a person (``awaiting_approval``);
* exceptions on a recount: the recount is counted; again, or ``awaiting_approval``;
* an incomplete count changes nothing (a location not fully scanned is never flagged).

Approval turns each exception line into an adjustment (published for the WMS, written to the
audit log, and applied to the local book as a movement); rejection closes the discrepancy and
accepts its difference: the same figures are ``accepted``, not flagged, until the book, the
count or a movement changes them. A discrepancy awaiting approval whose location is counted
again with a *different* difference is ``superseded`` by a new discrepancy. Every end
(approved, rejected, resolved, superseded) is recorded as an ``edgecount.decision/1``
(:mod:`reconciler.decisions`). The engine returns the MQTT messages to send; the service
publishes them, and the outboxes of decisions and adjustments from the store.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from edgecount import contract
from edgecount.timefmt import parse_utc, utc
from reconciler import decisions, views
from reconciler import schema as t
from reconciler.decisions import Ended
from reconciler.model import Row, Status
from reconciler.rules import AcceptedFigures, TolerancePolicy, apply_accepted, compare_location
from reconciler.store import BookLedger, Store
from reconciler.transitions import (
    OPEN_STATES,
    Action,
    Count,
    Current,
    Figures,
    State,
    Step,
    TransitionError,
    after_count,
    after_decision,
)

log = logging.getLogger(__name__)


class DecisionError(ValueError):
    """An approval or rejection that cannot be applied (wrong state, unknown id)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for the service to publish."""

    topic: str
    payload: dict[str, Any] | None  # None: clear the retained message
    retain: bool


@dataclass(slots=True)
class Engine:
    """Applies counts and decisions to the store."""

    store: Store
    site: str
    policy: TolerancePolicy
    max_recounts: int = 2
    gateways: Mapping[str, str] = field(default_factory=dict)  # zone → gateway (config)
    actor: str = "reconciler"
    authorized: Mapping[str, frozenset[str]] | None = None  # gateway → zones; None: anyone
    unauthorized_total: int = 0  # counts and scans refused by :meth:`unauthorized`

    # -- authorisation ---------------------------------------------------------------------

    def unauthorized(self, payload: Mapping[str, Any]) -> str | None:
        """Why a count or scan must not be applied, or None when its gateway may report it.

        With ``authorized`` set (``authorized_gateways:`` in the configuration) only the
        listed gateways may report, and only for their zones: a second check behind the
        broker's ACL, so a too-wide ACL or a gateway writing another's id into its payload
        cannot change the book. The reason names gateway and zone, never payload contents.
        """
        if self.authorized is None:
            return None
        gateway, zone = payload["gateway"], payload["zone"]
        zones = self.authorized.get(gateway)
        if zones is None:
            reason = f"unauthorized: gateway {gateway!r} is not in authorized_gateways"
        elif zone not in zones:
            reason = f"unauthorized: gateway {gateway!r} may not report zone {zone!r}"
        else:
            return None
        self.unauthorized_total += 1
        return reason

    # -- counts ----------------------------------------------------------------------------

    def compare_count(self, payload: Mapping[str, Any]) -> list[Row]:
        """Compare one count with the book as it was when the count was observed.

        Differences a person accepted before (a rejected discrepancy with the same figures)
        come back as ``accepted``.
        """
        locations = [payload["location"]]
        return self._compare(
            payload,
            BookLedger.load(self.store, locations),
            self.store.accepted_variances(locations),
        )

    def _compare(
        self, payload: Mapping[str, Any], ledger: BookLedger, accepted: AcceptedFigures
    ) -> list[Row]:
        location = payload["location"]
        book = ledger.book(location, parse_utc(payload["observed_at"]))
        counted = {item["sku"]: int(item["qty"]) for item in payload["items"]}
        unknown = [sku for sku in counted if sku not in book]
        info = self.store.sku_info(unknown) if unknown else {}
        rows = compare_location(
            location, book, counted, bool(payload["complete"]), self.policy, sku_info=info
        )
        return apply_accepted(rows, accepted)

    def on_count(self, payload: Mapping[str, Any]) -> list[Outgoing]:
        """React to a new (not duplicate) count; returns the messages to publish."""
        return self.on_counts([payload])

    def on_counts(self, payloads: Sequence[Mapping[str, Any]]) -> list[Outgoing]:
        """React to new counts, in order; returns the messages to publish.

        The book, the movements and the open discrepancies of every location in the batch
        are read once; a count that matches its book at a location with nothing open writes
        nothing (the common case of a nightly scan), so ingest stays fast.
        """
        complete = [p for p in payloads if p["complete"]]
        out: list[Outgoing] = []
        # An incomplete count changes nothing where nothing is open (it never opens, resolves
        # or supersedes), so one query spares a transaction per incomplete count.
        flagged = self._open_locations({p["location"] for p in payloads})
        for payload in payloads:
            if not payload["complete"]:
                log.info("count of %s incomplete: nothing flagged", payload["location"])
                if payload["location"] in flagged:
                    out += self._step(payload, [])
        if not complete:
            return out
        locations = {p["location"] for p in complete}
        ledger = BookLedger.load(self.store, locations)
        accepted = self.store.accepted_variances(locations)
        for payload in complete:
            rows = self._compare(payload, ledger, accepted)
            exceptions = [row for row in rows if row.is_exception]
            if not exceptions and payload["location"] not in flagged:
                continue
            out += self._step(payload, exceptions)
            if exceptions:
                flagged.add(payload["location"])
            else:
                flagged.discard(payload["location"])
        return out

    def _open_locations(self, locations: set[str]) -> set[str]:
        query = sa.select(t.discrepancies.c.location).where(
            t.discrepancies.c.location.in_(sorted(locations)),
            t.discrepancies.c.state.in_(OPEN_STATES),
        )
        with self.store.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def _step(self, payload: Mapping[str, Any], exceptions: list[Row]) -> list[Outgoing]:
        """Apply one count to its location's open discrepancy (:func:`after_count`)."""
        now = datetime.now(UTC)
        lines = self._lines(exceptions)
        count = Count(payload["scan_id"], bool(payload["complete"]), _figures(lines))
        with self.store.engine.begin() as conn:
            row = conn.execute(
                sa.select(t.discrepancies).where(
                    t.discrepancies.c.location == payload["location"],
                    t.discrepancies.c.state.in_(OPEN_STATES),
                )
            ).first()
            current = (
                None
                if row is None
                else Current(State(row.state), row.recounts, row.scan_id, _figures(row.lines))
            )
            step = after_count(current, count, self.max_recounts)
            return self._write(conn, row, payload, lines, step=step, now=now)

    def _write(
        self,
        conn: sa.Connection,
        row: Any,
        payload: Mapping[str, Any],
        lines: list[dict[str, Any]],
        *,
        step: Step,
        now: datetime,
    ) -> list[Outgoing]:
        """Write what a step says; returns the messages to publish."""
        if step.action is Action.NONE:
            return []
        if step.action in (Action.RESOLVE, Action.SUPERSEDE):
            outcome = State.RESOLVED if step.action is Action.RESOLVE else State.SUPERSEDED
            assert step.reason is not None
            self._end_by_count(conn, row, payload, outcome=outcome, reason=step.reason, now=now)
        if step.action is Action.RESOLVE:
            topic = contract.discrepancy_topic(self.site, row.zone, row.location)
            return [Outgoing(topic, None, retain=True)]  # clears the retained message
        if step.action in (Action.OPEN, Action.SUPERSEDE):
            discrepancy_id = self._insert(conn, payload, lines, step=step, now=now)
        else:
            discrepancy_id = row.id
            self._update(conn, row, payload, lines, step=step, now=now)
        out = [self._discrepancy_message(conn, discrepancy_id)]
        if step.recount:
            out.append(self._request_recount(conn, discrepancy_id, payload, now))
        return out

    def _lines(self, rows: list[Row]) -> list[dict[str, Any]]:
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

    def _insert(
        self,
        conn: sa.Connection,
        payload: Mapping[str, Any],
        lines: list[dict[str, Any]],
        *,
        step: Step,
        now: datetime,
    ) -> int:
        """Open a discrepancy for a count's exception lines; returns its id."""
        assert step.state is not None
        new_id = conn.execute(
            t.discrepancies.insert().values(
                zone=payload["zone"],
                location=payload["location"],
                gateway=payload["gateway"],
                state=step.state.value,
                opened_at=now,
                updated_at=now,
                recounts=step.recounts,
                scan_id=payload["scan_id"],
                count_msg_id=payload["msg_id"],
                observed_at=parse_utc(payload["observed_at"]),
                lines=lines,
            )
        ).inserted_primary_key
        assert new_id is not None
        self.store.audit_in(
            conn,
            self.actor,
            "discrepancy.open",
            payload["location"],
            {"id": new_id[0], "lines": lines},
        )
        return int(new_id[0])

    def _update(
        self,
        conn: sa.Connection,
        row: Any,
        payload: Mapping[str, Any],
        lines: list[dict[str, Any]],
        *,
        step: Step,
        now: datetime,
    ) -> None:
        """A later count of an open discrepancy: its lines (complete) or its attempts."""
        assert step.state is not None
        values: dict[str, Any] = {
            "state": step.state.value,
            "recounts": step.recounts,
            "updated_at": now,
            "scan_id": payload["scan_id"],
        }
        if step.action is Action.ATTEMPT_FAILED:
            # The lines stay those of the last complete count: a person decides on them.
            action = "discrepancy.recount_incomplete"
            detail = {"id": row.id, "recounts": step.recounts, "scan_id": payload["scan_id"]}
        else:
            values |= {
                "count_msg_id": payload["msg_id"],
                "observed_at": parse_utc(payload["observed_at"]),
                "lines": lines,
            }
            action = f"discrepancy.{step.state.value}"
            detail = {"id": row.id, "recounts": step.recounts}
        conn.execute(
            t.discrepancies.update().where(t.discrepancies.c.id == row.id).values(**values)
        )
        self.store.audit_in(conn, self.actor, action, payload["location"], detail)

    def _end_by_count(
        self,
        conn: sa.Connection,
        current: Any,
        payload: Mapping[str, Any],
        *,
        outcome: State,
        reason: str,
        now: datetime,
    ) -> None:
        """Close a discrepancy because of a count (resolved, superseded) and record it."""
        conn.execute(
            t.discrepancies.update()
            .where(t.discrepancies.c.id == current.id)
            .values(state=outcome.value, updated_at=now, closed_at=now, scan_id=payload["scan_id"])
        )
        ended = Ended(
            current,
            outcome,
            self.actor,
            reason,
            now,
            scan_id=payload["scan_id"],
            count_msg_id=payload["msg_id"],
        )
        decisions.record(conn, self.site, ended)
        self.store.audit_in(
            conn,
            self.actor,
            f"discrepancy.{outcome.value}",
            payload["location"],
            {"id": current.id, "by_scan": payload["scan_id"]},
        )

    def _request_recount(
        self, conn: sa.Connection, discrepancy_id: int, payload: Mapping[str, Any], now: datetime
    ) -> Outgoing:
        gateway = self.gateways.get(payload["zone"], payload["gateway"])
        request = contract.scan_request_payload(
            reason="recount",
            requested_by=self.actor,
            locations=[payload["location"]],
            request_id=f"recount-{discrepancy_id}-{uuid.uuid4().hex[:8]}",
        )
        conn.execute(
            t.recounts.insert().values(
                request_id=request["request_id"],
                discrepancy_id=discrepancy_id,
                gateway=gateway,
                requested_at=now,
            )
        )
        return Outgoing(contract.cmd_scan_topic(self.site, gateway), request, retain=False)

    def _discrepancy_message(self, conn: sa.Connection, discrepancy_id: int) -> Outgoing:
        row = conn.execute(
            sa.select(t.discrepancies).where(t.discrepancies.c.id == discrepancy_id)
        ).one()
        payload = contract.build(
            contract.DISCREPANCY,
            {
                "discrepancy_id": str(row.id),
                "site": self.site,
                "zone": row.zone,
                "location": row.location,
                "state": row.state,
                "scan_id": row.scan_id,
                "count_msg_id": row.count_msg_id,
                "observed_at": contract.to_iso(utc(row.observed_at)),
                "detected_at": contract.to_iso(utc(row.opened_at)),
                "recounts": row.recounts,
                "lines": row.lines,
            },
        )
        return Outgoing(
            contract.discrepancy_topic(self.site, row.zone, row.location), payload, retain=True
        )

    # -- decisions -------------------------------------------------------------------------

    def decide(
        self, discrepancy_id: int, *, approve: bool, reason_code: str, approver: str, note: str = ""
    ) -> list[Outgoing]:
        """Approve (adjust the book) or reject a discrepancy awaiting approval."""
        now = datetime.now(UTC)
        with self.store.engine.begin() as conn:
            row = conn.execute(
                sa.select(t.discrepancies).where(t.discrepancies.c.id == discrepancy_id)
            ).first()
            if row is None:
                raise DecisionError(f"no discrepancy {discrepancy_id}")
            try:
                decision = after_decision(State(row.state), approve=approve).value
            except TransitionError as exc:
                raise DecisionError(f"discrepancy {discrepancy_id} {exc}") from None
            # Conditional update first: of two deciders racing (CLI and API, two instances)
            # exactly one changes the row; the other rolls back here.
            changed = conn.execute(
                t.discrepancies.update()
                .where(
                    t.discrepancies.c.id == discrepancy_id,
                    t.discrepancies.c.state == State.AWAITING_APPROVAL,
                )
                .values(state=decision, updated_at=now, closed_at=now, announced=False)
            ).rowcount
            if changed != 1:
                raise DecisionError(f"discrepancy {discrepancy_id} was decided meanwhile")
            conn.execute(
                t.approvals.insert().values(
                    discrepancy_id=discrepancy_id,
                    decision=decision,
                    reason_code=reason_code,
                    approver=approver,
                    at=now,
                    note=note,
                )
            )
            self.store.audit_in(
                conn,
                approver,
                f"discrepancy.{decision}",
                row.location,
                {"id": discrepancy_id, "reason_code": reason_code, "note": note},
            )
            made = (
                self._adjust(
                    conn, row, reason_code=reason_code, approver=approver, note=note, now=now
                )
                if approve
                else []
            )
            outcome = State.APPROVED if approve else State.REJECTED
            decisions.record(
                conn,
                self.site,
                Ended(row, outcome, approver, reason_code, now, note=note, adjustments=made),
            )
        # Adjustments are published from their table (see pending_adjustments), so one made
        # by the CLI while the service or the broker is down still reaches the WMS once.
        return [
            Outgoing(
                contract.discrepancy_topic(self.site, row.zone, row.location), None, retain=True
            )
        ]

    def _adjust(
        self,
        conn: sa.Connection,
        row: Any,
        *,
        reason_code: str,
        approver: str,
        note: str,
        now: datetime,
    ) -> list[dict[str, Any]]:
        info = self.store.sku_info(line["sku"] for line in row.lines)
        made: list[dict[str, Any]] = []
        for line in row.lines:
            adjustment_id = f"adj-{row.id}-{line['sku']}"
            unit_cost = info.get(line["sku"], (0.0, None))[0]
            payload = contract.build(
                contract.ADJUSTMENT,
                {
                    "adjustment_id": adjustment_id,
                    "site": self.site,
                    "zone": row.zone,
                    "location": row.location,
                    "sku": line["sku"],
                    "book_qty": line["book_qty"],
                    "counted_qty": line["counted_qty"],
                    "diff": line["diff"],
                    "diff_value": line["diff_value"],
                    "unit_cost": unit_cost,
                    "reason_code": reason_code,
                    "approved_by": approver,
                    "approved_at": contract.to_iso(now),
                    "discrepancy_id": str(row.id),
                    "scan_id": row.scan_id,
                    "count_msg_id": row.count_msg_id,
                    **({"note": note} if note else {}),
                },
            )
            conn.execute(
                t.adjustments.insert().values(
                    discrepancy_id=row.id,
                    payload=payload,
                    value=abs(line["diff_value"]),
                    created_at=now,
                )
            )
            conn.execute(
                t.movements.insert().values(
                    ts=now,
                    location=row.location,
                    sku=line["sku"],
                    qty_delta=line["diff"],
                    user=approver,
                    doc=adjustment_id,
                )
            )
            made.append(payload)
        return made

    def pending_adjustments(self) -> list[tuple[int, Outgoing]]:
        """Adjustments not yet acknowledged by the broker, oldest first."""
        topic = contract.adjustment_topic(self.site)
        return [
            (row_id, Outgoing(topic, payload, retain=False))
            for row_id, payload in decisions.unpublished(self.store.engine, t.adjustments)
        ]

    def pending_decisions(self) -> list[tuple[int, Outgoing]]:
        """Decisions (``edgecount.decision/1``) not yet acknowledged by the broker, oldest first."""
        topic = contract.decision_topic(self.site)
        return [
            (row_id, Outgoing(topic, payload, retain=False))
            for row_id, payload in decisions.unpublished(self.store.engine, t.decisions)
        ]

    def decision_published(self, decision_id: int) -> None:
        """The broker acknowledged a decision message."""
        decisions.mark_published(self.store.engine, t.decisions, decision_id, datetime.now(UTC))

    def recount_requests_for(self, gateway: str) -> list[Outgoing]:
        """The outstanding recount requests addressed to a gateway, to send again.

        Gateways connect with a clean session, so a request sent while one was offline is
        lost; the service calls this when the gateway's status turns ``online``. Each request
        keeps its ``request_id``, so a gateway that did get it merges the repeat.
        """
        latest = (
            sa.select(
                t.recounts.c.discrepancy_id,
                sa.func.max(t.recounts.c.requested_at).label("requested_at"),
            )
            .group_by(t.recounts.c.discrepancy_id)
            .subquery()
        )
        query = (
            sa.select(t.recounts.c.request_id, t.discrepancies.c.location)
            .join(
                latest,
                sa.and_(
                    latest.c.discrepancy_id == t.recounts.c.discrepancy_id,
                    latest.c.requested_at == t.recounts.c.requested_at,
                ),
            )
            .join(t.discrepancies, t.discrepancies.c.id == t.recounts.c.discrepancy_id)
            .where(
                t.recounts.c.gateway == gateway,
                t.discrepancies.c.state == State.RECOUNT_REQUESTED,
            )
        )
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        topic = contract.cmd_scan_topic(self.site, gateway)
        return [
            Outgoing(
                topic,
                contract.scan_request_payload(
                    reason="recount",
                    requested_by=self.actor,
                    locations=[location],
                    request_id=request_id,
                ),
                retain=False,
            )
            for request_id, location in rows
        ]

    def unannounced(self) -> list[tuple[int, Outgoing]]:
        """Decided discrepancies whose retained message has not been cleared yet."""
        query = sa.select(t.discrepancies).where(t.discrepancies.c.announced.is_(False))
        with self.store.engine.connect() as conn:
            return [
                (
                    r.id,
                    Outgoing(
                        contract.discrepancy_topic(self.site, r.zone, r.location), None, retain=True
                    ),
                )
                for r in conn.execute(query)
            ]

    def announced(self, discrepancy_id: int) -> None:
        """The broker acknowledged the message showing a discrepancy's decision."""
        with self.store.engine.begin() as conn:
            conn.execute(
                t.discrepancies.update()
                .where(t.discrepancies.c.id == discrepancy_id)
                .values(announced=True)
            )

    def adjustment_published(self, adjustment_id: int) -> None:
        """The broker acknowledged an adjustment."""
        decisions.mark_published(self.store.engine, t.adjustments, adjustment_id, datetime.now(UTC))

    def open_discrepancy_messages(self) -> list[Outgoing]:
        """The retained message of every open discrepancy (re-published on each connect)."""
        with self.store.engine.connect() as conn:
            ids = (
                conn.execute(
                    sa.select(t.discrepancies.c.id).where(t.discrepancies.c.state.in_(OPEN_STATES))
                )
                .scalars()
                .all()
            )
            return [self._discrepancy_message(conn, i) for i in ids]

    def list_discrepancies(self, *, open_only: bool = True) -> list[dict[str, Any]]:
        """Discrepancies with their lines, newest first (:func:`reconciler.views.discrepancies`)."""
        return views.discrepancies(self.store, open_only=open_only)

    def discrepancy(self, discrepancy_id: int) -> dict[str, Any] | None:
        """One discrepancy (:func:`reconciler.views.discrepancy`); None when unknown."""
        return views.discrepancy(self.store, discrepancy_id)


def _figures(lines: list[dict[str, Any]]) -> Figures:
    """What a discrepancy's lines claim: (SKU, book, counted) of each, order aside."""
    return frozenset((ln["sku"], ln["book_qty"], ln["counted_qty"]) for ln in lines)


__all__ = ["DecisionError", "Engine", "Outgoing", "Status"]
