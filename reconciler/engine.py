"""What happens when a count arrives or a person decides: the reconciler's orchestration.

For each count of a location the book is taken **as of the moment the count was observed**
(movements after it do not count) and compared record by record (:mod:`reconciler.rules`);
the state machine (:mod:`reconciler.transitions`) says what that does to the location's open
discrepancy: none opened, resolved (its retained message cleared), a recount asked of the
gateway covering the location, a wait for a person, or superseded by a new one. An incomplete
count never flags anything. Approval turns each exception line into an adjustment (published
for the WMS and applied to the local book as a movement); rejection accepts the difference
until the book, the count or a movement changes it. Every end is recorded as an
``edgecount.decision/1`` (:mod:`reconciler.decisions`). What automation cannot settle (an
incomplete last recount, RFID and vision disagreeing) opens a count task for a person in the
same step (:mod:`reconciler.count_tasks`); the person's count comes back as a count.

The engine only orchestrates: compare, ask the state machine, write the step in one
transaction (:mod:`reconciler.repository`), and return the messages to send
(:mod:`reconciler.messages`); it reads through :mod:`reconciler.queries` and the store. The
service publishes those messages, and the store's outboxes of decisions and adjustments.
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
from edgecount.contract import CountMessage
from edgecount.timefmt import parse_utc
from reconciler import count_tasks, messages, repository
from reconciler.locks import lock_location
from reconciler.messages import Outgoing
from reconciler.model import Discrepancy, Row, Status
from reconciler.queries import discrepancies as read
from reconciler.queries import outbox
from reconciler.rules import AcceptedFigures, TolerancePolicy, apply_accepted, compare_location
from reconciler.site_reads import SiteReads
from reconciler.store import BookLedger, Store
from reconciler.store_book import accepted_variances, sku_info
from reconciler.transitions import (
    Action,
    Count,
    Current,
    Figures,
    TransitionError,
    after_count,
    after_decision,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Assessed:
    """A new count that changes something at its location (:meth:`Engine.assess`)."""

    count: CountMessage
    exceptions: list[Row]


class DecisionError(ValueError):
    """An approval or rejection that cannot be applied (wrong state, unknown id)."""


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

    def unauthorized(self, gateway: str, zone: str) -> str | None:
        """Why a count or scan of ``gateway`` for ``zone`` must not be applied, or None.

        With ``authorized`` set (``authorized_gateways:`` in the configuration) only the
        listed gateways may report, and only for their zones: a second check behind the
        broker's ACL, so a too-wide ACL or a gateway writing another's id into its message
        cannot change the book. The reason names gateway and zone, never message contents.
        """
        if self.authorized is None:
            return None
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

    def compare_count(self, count: CountMessage) -> list[Row]:
        """Compare one count with the book as it was when the count was observed.

        Differences a person accepted before (a rejected discrepancy with the same figures)
        come back as ``accepted``.
        """
        locations = [count.location]
        with self.store.engine.connect() as conn:
            ledger = BookLedger.read(conn, locations)
            return self._compare(conn, count, ledger, accepted_variances(conn, locations))

    def _compare(
        self,
        conn: sa.Connection,
        count: CountMessage,
        ledger: BookLedger,
        accepted: AcceptedFigures,
    ) -> list[Row]:
        book = ledger.book(count.location, parse_utc(count.observed_at))
        counted = count.quantities
        unknown = [sku for sku in counted if sku not in book]
        info = sku_info(conn, unknown) if unknown else {}
        rows = compare_location(
            count.location, book, counted, count.complete, self.policy, sku_info=info
        )
        return apply_accepted(rows, accepted)

    def on_count(self, count: CountMessage) -> list[Outgoing]:
        """React to a new (not duplicate) count; returns the messages to publish."""
        return self.on_counts([count])

    def on_counts(self, counts: Sequence[CountMessage]) -> list[Outgoing]:
        """React to new counts, in order; returns the messages to publish
        (:meth:`assess`, then :meth:`react`)."""
        with self.store.engine.connect() as conn:
            steps = self.assess(conn, counts)
        return self.react(steps)

    def assess(
        self,
        conn: sa.Connection,
        counts: Sequence[CountMessage],
        reads: SiteReads | None = None,
    ) -> list[Assessed]:
        """Which of new counts change something, and with which exceptions (reads only).

        The book, the movements and the open discrepancies of every location in the batch
        are read once (``reads``, else read here in ``conn``); a count that matches its book
        at a location with nothing open needs nothing (the common case of a nightly scan),
        so ingest stays fast.
        """
        if not counts:
            return []
        if reads is None:
            reads = SiteReads.read(conn, {count.location for count in counts})
        steps: list[Assessed] = []
        # An incomplete count changes nothing where nothing is open (it never opens, resolves
        # or supersedes), so one query spares a transaction per incomplete count.
        flagged = set(reads.flagged)
        for count in counts:
            if not count.complete:
                log.info("count of %s incomplete: nothing flagged", count.location)
                if count.location in flagged or count_tasks.disputed(count):
                    steps.append(Assessed(count, []))
        for count in counts:
            if not count.complete:
                continue
            rows = self._compare(conn, count, reads.ledger, reads.accepted)
            exceptions = [row for row in rows if row.is_exception]
            if not (exceptions or count.location in flagged or count_tasks.disputed(count)):
                continue
            steps.append(Assessed(count, exceptions))
            if exceptions:
                flagged.add(count.location)
            else:
                flagged.discard(count.location)
        return steps

    def react(self, steps: Sequence[Assessed]) -> list[Outgoing]:
        """Apply the assessed counts in order, each in its own transaction (:meth:`_step`)."""
        out: list[Outgoing] = []
        for step in steps:
            out += self._step(step.count, step.exceptions)
        return out

    def _step(self, count: CountMessage, exceptions: list[Row]) -> list[Outgoing]:
        """Apply one count to its location's open discrepancy (:func:`after_count`), and open
        the count task it calls for (:func:`reconciler.count_tasks.after_count`)."""
        now = datetime.now(UTC)
        lines = messages.exception_lines(exceptions)
        seen = Count(count.scan_id, count.complete, _figures(lines))
        with self.store.engine.begin() as conn:
            # another instance reacting to a count of this location waits, then sees our step
            lock_location(conn, "location", count.location)
            current = read.open_at(conn, count.location)
            step = after_count(_current(current), seen, self.max_recounts)
            shown = repository.write_step(
                conn, current, count, lines, step, site=self.site, actor=self.actor, now=now
            )
            unchanged = None if current is None or step.action is not Action.NONE else current.id
            count_tasks.after_count(
                conn, count, step, shown or unchanged, actor=self.actor, now=now
            )
            if step.action is Action.NONE:
                return []
            if shown is None:  # resolved: clear its retained message
                assert current is not None
                return [messages.cleared(self.site, current.zone, current.location)]
            written = read.by_id(conn, shown)
            assert written is not None
            out = [messages.discrepancy_message(self.site, written)]
            if step.recount:
                out.append(self._request_recount(conn, shown, count, now))
            return out

    def _request_recount(
        self, conn: sa.Connection, discrepancy_id: int, count: CountMessage, now: datetime
    ) -> Outgoing:
        # the gateway configured for the zone, else the one that sent this count (for a
        # person's count, the one that counted the location before)
        gateway = self.gateways.get(count.zone, count.gateway)
        if gateway == count_tasks.MANUAL_GATEWAY:
            gateway = count_tasks.recount_gateway(conn, count.location) or gateway
        request_id = f"recount-{discrepancy_id}-{uuid.uuid4().hex[:8]}"
        repository.request_recount(
            conn, request_id=request_id, discrepancy_id=discrepancy_id, gateway=gateway, now=now
        )
        return self._recount(gateway, count.location, request_id)

    def _recount(self, gateway: str, location: str, request_id: str) -> Outgoing:
        return messages.recount_request(
            self.site, gateway, location, request_id=request_id, requested_by=self.actor
        )

    # -- decisions -------------------------------------------------------------------------

    def decide(
        self, discrepancy_id: int, *, approve: bool, reason_code: str, approver: str, note: str = ""
    ) -> list[Outgoing]:
        """Approve (adjust the book) or reject a discrepancy awaiting approval.

        Raises:
            DecisionError: No such discrepancy, it does not await approval, or another
                decider changed it meanwhile.
        """
        now = datetime.now(UTC)
        with self.store.engine.begin() as conn:
            current = read.by_id(conn, discrepancy_id)
            if current is None:
                raise DecisionError(f"no discrepancy {discrepancy_id}")
            try:
                decision = after_decision(current.state, approve=approve)
            except TransitionError as exc:
                raise DecisionError(f"discrepancy {discrepancy_id} {exc}") from None
            if not repository.decide(
                conn, current, decision=decision, reason_code=reason_code,
                approver=approver, note=note, now=now,
            ):  # fmt: skip
                raise DecisionError(f"discrepancy {discrepancy_id} was decided meanwhile")
            made: tuple[contract.AdjustmentMessage, ...] = ()
            if approve:
                made = messages.adjustments(
                    self.site, current, unit_costs=self._unit_costs(current),
                    reason_code=reason_code, approver=approver, note=note, at=now,
                )  # fmt: skip
                repository.record_adjustments(conn, current, made, approver=approver, now=now)
            ended = messages.Ended(
                current, decision, approver, reason_code, now, note=note, adjustments=made
            )
            repository.record_decision(conn, self.site, ended)
        # Adjustments are published from their table (see pending_adjustments), so one made
        # by the CLI while the service or the broker is down still reaches the WMS once.
        return [messages.cleared(self.site, current.zone, current.location)]

    def _unit_costs(self, d: Discrepancy) -> dict[str, float]:
        info = self.store.sku_info(line.sku for line in d.lines)
        return {sku: cost for sku, (cost, _) in info.items()}

    # -- the store's outboxes --------------------------------------------------------------

    def pending_adjustments(self) -> list[tuple[int, Outgoing]]:
        """Adjustments not yet acknowledged by the broker, oldest first."""
        topic = contract.adjustment_topic(self.site)
        return [
            (i, Outgoing(topic, adjustment, retain=False))
            for i, adjustment in outbox.pending_adjustments(self.store)
        ]

    def adjustment_published(self, adjustment_id: int) -> None:
        """The broker acknowledged an adjustment."""
        with self.store.engine.begin() as conn:
            repository.adjustment_published(conn, adjustment_id, datetime.now(UTC))

    def pending_decisions(self) -> list[tuple[int, Outgoing]]:
        """Decisions (``edgecount.decision/1``) not yet acknowledged by the broker, oldest first."""
        topic = contract.decision_topic(self.site)
        return [
            (i, Outgoing(topic, decision, retain=False))
            for i, decision in outbox.pending_decisions(self.store)
        ]

    def decision_published(self, decision_id: int) -> None:
        """The broker acknowledged a decision message."""
        with self.store.engine.begin() as conn:
            repository.decision_published(conn, decision_id, datetime.now(UTC))

    def unannounced(self) -> list[tuple[int, Outgoing]]:
        """Decided discrepancies whose retained message has not been cleared yet."""
        return [
            (d.id, messages.cleared(self.site, d.zone, d.location))
            for d in read.unannounced(self.store)
        ]

    def announced(self, discrepancy_id: int) -> None:
        """The broker acknowledged the message showing a discrepancy's decision."""
        with self.store.engine.begin() as conn:
            repository.mark_announced(conn, discrepancy_id)

    def recount_requests_for(self, gateway: str) -> list[Outgoing]:
        """The outstanding recount requests addressed to a gateway, to send again.

        Gateways connect with a clean session, so a request sent while one was offline is
        lost; the service calls this when the gateway's status turns ``online``. Each request
        keeps its ``request_id``, so a gateway that did get it merges the repeat.
        """
        return [
            self._recount(gateway, location, request_id)
            for request_id, location in read.recount_requests(self.store, gateway)
        ]

    def open_discrepancy_messages(self) -> list[Outgoing]:
        """The retained message of every open discrepancy (re-published on each connect)."""
        return [
            messages.discrepancy_message(self.site, d) for d in read.open_discrepancies(self.store)
        ]

    # -- views -----------------------------------------------------------------------------

    def list_discrepancies(self, *, open_only: bool = True) -> list[dict[str, Any]]:
        """Discrepancies with their lines, newest first (:func:`~read.discrepancy_views`)."""
        return read.discrepancy_views(self.store, open_only=open_only)

    def discrepancy(self, discrepancy_id: int) -> dict[str, Any] | None:
        """One discrepancy (:func:`~read.discrepancy_view`); None when unknown."""
        return read.discrepancy_view(self.store, discrepancy_id)


def _current(d: Discrepancy | None) -> Current | None:
    """What the state machine needs of an open discrepancy."""
    return None if d is None else Current(d.state, d.recounts, d.scan_id, _figures(d.lines))


def _figures(lines: Sequence[contract.DecisionLine]) -> Figures:
    """What a discrepancy's lines claim: (SKU, book, counted) of each, order aside."""
    return frozenset((line.sku, line.book_qty, line.counted_qty) for line in lines)


__all__ = ["Assessed", "DecisionError", "Engine", "Outgoing", "Status"]
