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
from reconciler import decisions
from reconciler import schema as t
from reconciler.decisions import Ended, Outcome
from reconciler.model import Movement, Row, Status
from reconciler.rules import AcceptedFigures, TolerancePolicy, apply_accepted, compare_location
from reconciler.store import BookLedger, Store

log = logging.getLogger(__name__)

OPEN_STATES = ("open", "recount_requested", "awaiting_approval")


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
        book = ledger.book(location, _ts(payload["observed_at"]))
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
        for payload in payloads:
            if not payload["complete"]:
                log.info("count of %s incomplete: nothing flagged", payload["location"])
                out += self._recount_failed(payload)
        if not complete:
            return out
        locations = {p["location"] for p in complete}
        ledger = BookLedger.load(self.store, locations)
        accepted = self.store.accepted_variances(locations)
        flagged = self._open_locations(locations)
        for payload in complete:
            rows = self._compare(payload, ledger, accepted)
            exceptions = [row for row in rows if row.is_exception]
            if not exceptions and payload["location"] not in flagged:
                continue
            out += self._apply(payload, exceptions)
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

    def _apply(self, payload: Mapping[str, Any], exceptions: list[Row]) -> list[Outgoing]:
        now = datetime.now(UTC)
        with self.store.engine.begin() as conn:
            current = conn.execute(
                sa.select(t.discrepancies).where(
                    t.discrepancies.c.location == payload["location"],
                    t.discrepancies.c.state.in_(OPEN_STATES),
                )
            ).first()
            if not exceptions:
                return self._resolve(conn, current, payload, now)
            if current is None:
                return self._open(conn, payload, exceptions, now)
            if (
                current.state == "awaiting_approval"
                and payload["scan_id"] != current.scan_id
                and _figures(self._lines(exceptions)) != _figures(current.lines)
            ):
                return self._supersede(conn, current, payload, exceptions, now)
            return self._again(conn, current, payload, exceptions, now)

    def _supersede(
        self,
        conn: sa.Connection,
        current: Any,
        payload: Mapping[str, Any],
        rows: list[Row],
        now: datetime,
    ) -> list[Outgoing]:
        """A new count differs otherwise than the one awaiting a person: start over.

        The old discrepancy ends as ``superseded`` (a person cannot approve figures that are
        no longer what the shelf shows); a new one opens for the new difference, with its
        own recounts. Its retained message replaces the old one on the same topic.
        """
        self._end_by_count(
            conn,
            current,
            payload,
            outcome=Outcome.SUPERSEDED,
            reason=decisions.SUPERSEDED_BY_COUNT,
            now=now,
        )
        return self._open(conn, payload, rows, now)

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

    def _open(
        self, conn: sa.Connection, payload: Mapping[str, Any], rows: list[Row], now: datetime
    ) -> list[Outgoing]:
        state = "recount_requested" if self.max_recounts > 0 else "awaiting_approval"
        new_id = conn.execute(
            t.discrepancies.insert().values(
                zone=payload["zone"],
                location=payload["location"],
                gateway=payload["gateway"],
                state=state,
                opened_at=now,
                updated_at=now,
                recounts=0,
                scan_id=payload["scan_id"],
                count_msg_id=payload["msg_id"],
                observed_at=_ts(payload["observed_at"]),
                lines=self._lines(rows),
            )
        ).inserted_primary_key
        assert new_id is not None
        self.store.audit_in(
            conn,
            self.actor,
            "discrepancy.open",
            payload["location"],
            {"id": new_id[0], "lines": self._lines(rows)},
        )
        out = [self._discrepancy_message(conn, new_id[0])]
        if state == "recount_requested":
            out.append(self._request_recount(conn, new_id[0], payload, now))
        return out

    def _again(
        self,
        conn: sa.Connection,
        current: Any,
        payload: Mapping[str, Any],
        rows: list[Row],
        now: datetime,
    ) -> list[Outgoing]:
        recounts = current.recounts
        state = current.state
        if state == "recount_requested" and payload["scan_id"] != current.scan_id:
            recounts += 1
            state = "recount_requested" if recounts < self.max_recounts else "awaiting_approval"
        conn.execute(
            t.discrepancies.update()
            .where(t.discrepancies.c.id == current.id)
            .values(
                state=state,
                recounts=recounts,
                updated_at=now,
                scan_id=payload["scan_id"],
                count_msg_id=payload["msg_id"],
                observed_at=_ts(payload["observed_at"]),
                lines=self._lines(rows),
            )
        )
        self.store.audit_in(
            conn,
            self.actor,
            f"discrepancy.{state}",
            payload["location"],
            {"id": current.id, "recounts": recounts},
        )
        out = [self._discrepancy_message(conn, current.id)]
        if state == "recount_requested" and recounts != current.recounts:
            out.append(self._request_recount(conn, current.id, payload, now))
        return out

    def _recount_failed(self, payload: Mapping[str, Any]) -> list[Outgoing]:
        """An incomplete count where a recount was asked for: the attempt counts, ask again.

        Without this a recount that came back incomplete (a reader failed, a robot stopped
        early) would leave its discrepancy waiting for a count that is never requested. After
        ``max_recounts`` attempts it waits for a person, who sees the last complete count.
        """
        now = datetime.now(UTC)
        with self.store.engine.begin() as conn:
            current = conn.execute(
                sa.select(t.discrepancies).where(
                    t.discrepancies.c.location == payload["location"],
                    t.discrepancies.c.state == "recount_requested",
                    t.discrepancies.c.scan_id != payload["scan_id"],
                )
            ).first()
            if current is None:
                return []
            recounts = current.recounts + 1
            state = "recount_requested" if recounts < self.max_recounts else "awaiting_approval"
            conn.execute(
                t.discrepancies.update()
                .where(t.discrepancies.c.id == current.id)
                .values(state=state, recounts=recounts, updated_at=now, scan_id=payload["scan_id"])
            )
            self.store.audit_in(
                conn,
                self.actor,
                "discrepancy.recount_incomplete",
                payload["location"],
                {"id": current.id, "recounts": recounts, "scan_id": payload["scan_id"]},
            )
            out = [self._discrepancy_message(conn, current.id)]
            if state == "recount_requested":
                out.append(self._request_recount(conn, current.id, payload, now))
            return out

    def _resolve(
        self, conn: sa.Connection, current: Any, payload: Mapping[str, Any], now: datetime
    ) -> list[Outgoing]:
        if current is None:
            return []
        reason = (
            decisions.RESOLVED_BY_RECOUNT
            if current.state == "recount_requested"
            else decisions.RESOLVED_BY_COUNT
        )
        self._end_by_count(conn, current, payload, outcome=Outcome.RESOLVED, reason=reason, now=now)
        topic = contract.discrepancy_topic(self.site, current.zone, current.location)
        return [Outgoing(topic, None, retain=True)]

    def _end_by_count(
        self,
        conn: sa.Connection,
        current: Any,
        payload: Mapping[str, Any],
        *,
        outcome: Outcome,
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
            if row.state != "awaiting_approval":
                raise DecisionError(
                    f"discrepancy {discrepancy_id} is {row.state}, not awaiting_approval"
                )
            decision = "approved" if approve else "rejected"
            # Conditional update first: of two deciders racing (CLI and API, two instances)
            # exactly one changes the row; the other rolls back here.
            changed = conn.execute(
                t.discrepancies.update()
                .where(
                    t.discrepancies.c.id == discrepancy_id,
                    t.discrepancies.c.state == "awaiting_approval",
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
            outcome = Outcome.APPROVED if approve else Outcome.REJECTED
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
                t.discrepancies.c.state == "recount_requested",
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
        """Discrepancies with their lines, newest first (for the CLI and the API)."""
        query = sa.select(t.discrepancies).order_by(t.discrepancies.c.id.desc())
        if open_only:
            query = query.where(t.discrepancies.c.state.in_(OPEN_STATES))
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [self._describe(row) for row in rows]

    def discrepancy(self, discrepancy_id: int) -> dict[str, Any] | None:
        """One discrepancy shaped like an item of :meth:`list_discrepancies` (None: unknown)."""
        query = sa.select(t.discrepancies).where(t.discrepancies.c.id == discrepancy_id)
        with self.store.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else self._describe(row)

    def _describe(self, row: sa.RowMapping) -> dict[str, Any]:
        """A discrepancy row as JSON-able data, with the movements since the last good count."""
        item = dict(row)
        for key in ("opened_at", "updated_at", "closed_at", "observed_at"):
            if item[key] is not None:
                item[key] = contract.to_iso(utc(item[key]))
        item["decision"] = (
            None
            if row["state"] in OPEN_STATES
            else decisions.last_decision(self.store.engine, row["id"])
        )
        item["movements"] = [
            {
                "ts": contract.to_iso(m.ts),
                "sku": m.sku,
                "qty_delta": m.qty_delta,
                "user": m.user,
                "doc": m.doc,
            }
            for m in self.movements_since_good_count(row["location"])
        ]
        return item

    def movements_since_good_count(self, location: str, sku: str | None = None) -> list[Movement]:
        """Movements of a location (and SKU) since its last count without exceptions."""
        with self.store.engine.connect() as conn:
            last_good = conn.execute(
                sa.select(sa.func.max(t.discrepancies.c.closed_at)).where(
                    t.discrepancies.c.location == location,
                    t.discrepancies.c.state.in_(("resolved", "approved")),
                )
            ).scalar()
        after = utc(last_good) if last_good is not None else None
        return self.store.movements(location, after=after, sku=sku)


def _figures(lines: list[dict[str, Any]]) -> frozenset[tuple[str, int, int]]:
    """What a discrepancy's lines claim: (SKU, book, counted) of each, order aside."""
    return frozenset((ln["sku"], ln["book_qty"], ln["counted_qty"]) for ln in lines)


def _ts(text: str) -> datetime:
    return parse_utc(text)


__all__ = ["DecisionError", "Engine", "Outgoing", "Status"]
