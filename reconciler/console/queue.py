"""*Discrepancies*: the queue of discrepancies, largest value first, to approve or reject.

``GET /console/discrepancies`` shows the open discrepancies (``?state=`` any one state, closed
ones too), filtered by ``zone``, ``abc`` (the highest class of the lines) and ``min_value``,
:data:`PAGE_SIZE` a page (``?page=``); the figures come from
:mod:`reconciler.console.queue_query`. Counts of each open state head the page as links.

People who may decide (the ``decide`` scope: approvers and admins) get, on each discrepancy
awaiting approval, ``Approve`` and ``Reject`` buttons and a checkbox for "Approve selected";
``static/queue.js`` opens the decision form and sends it to the REST API
(``POST /discrepancies/{id}/approve|reject``, ``POST /discrepancies/approve``), which
enforces the role, the approval limit and that a discrepancy is decided once. The page only
marks what it knows will be refused (above the approver's limit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from reconciler.auth.identity import Identity
from reconciler.auth.limits import approval_limit
from reconciler.auth.roles import Scope
from reconciler.console.queue_query import (
    Filters,
    QueueRow,
    open_counts,
    open_zones,
    queue_page,
)
from reconciler.console.render import FRAGMENT_HEADER, ROOT, render_page
from reconciler.engine import Engine
from reconciler.model import AbcClass
from reconciler.transitions import CLOSED_STATES, OPEN_STATES, State

if TYPE_CHECKING:
    from reconciler.console.context import ConsoleContext

__all__ = ["PAGE_SIZE", "REASONS", "Queue", "add_routes", "money", "parse_filters"]

PAGE_SIZE = 100
REASONS = ("MISCOUNT", "DAMAGE", "THEFT", "BOOK_ERROR", "MISPLACED", "OTHER")
"""The reason codes the decision form offers."""
STATE_LABELS = {
    State.OPEN: "Open",
    State.RECOUNT_REQUESTED: "Recount requested",
    State.AWAITING_APPROVAL: "Awaiting approval",
    State.APPROVED: "Approved",
    State.REJECTED: "Rejected",
    State.RESOLVED: "Resolved",
    State.SUPERSEDED: "Superseded",
}
MAX_ZONE = 128


def money(value: float) -> str:
    """``1,600.00``: a value as the page shows it."""
    return f"{value:,.2f}"


def parse_filters(params: Mapping[str, str]) -> tuple[Filters, list[str]]:
    """The filters of the query parameters, and what is wrong with them (``field: why``).

    A parameter left empty takes its default; a wrong one is reported and takes its default.
    """
    errors: list[str] = []
    zone = params.get("zone", "").strip()
    if len(zone) > MAX_ZONE:
        errors.append(f"zone: at most {MAX_ZONE} characters")
        zone = ""
    abc_text = params.get("abc", "").strip().upper()
    abc = None
    if abc_text:
        try:
            abc = AbcClass(abc_text)
        except ValueError:
            errors.append(f"abc: {abc_text!r} is not a class; choose A, B or C")
    state_text = params.get("state", "").strip()
    state = None
    if state_text:
        try:
            state = State(state_text)
        except ValueError:
            known = ", ".join(s.value for s in State)
            errors.append(f"state: {state_text!r} is not a state; choose one of {known}")
    min_value = _number(params.get("min_value", ""), "min_value", errors)
    page = _number(params.get("page", ""), "page", errors, whole=True)
    filters = Filters(zone, abc, state, min_value or 0.0, int(page or 1))
    return filters, errors


def _number(text: str, name: str, errors: list[str], *, whole: bool = False) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    smallest = 1 if whole else 0
    if not math.isfinite(number) or number < smallest or (whole and not number.is_integer()):
        kind = "a whole number" if whole else "a number"
        errors.append(f"{name}: {text!r} is not {kind} of at least {smallest}")
        return None
    return number


@dataclass(slots=True)
class Queue:
    """What the page shows."""

    filters: Filters
    rows: list[QueueRow] = field(default_factory=list)
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    zones: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        """Pages in all (at least 1)."""
        return max(1, math.ceil(self.total / PAGE_SIZE))

    @property
    def first(self) -> int:
        """The position of the page's first row, from 1 (0 when the page is empty)."""
        return (self.filters.page - 1) * PAGE_SIZE + 1 if self.rows else 0

    @property
    def open_total(self) -> int:
        """Open discrepancies matching the filters other than the state."""
        return sum(self.counts.values())

    def link(self, **changes: object) -> str:
        """The page's address with ``changes`` to its filters (page 1 unless given)."""
        current = self.filters
        values = {
            "zone": current.zone,
            "abc": current.abc.value if current.abc else "",
            "state": current.state.value if current.state else "",
            "min_value": f"{current.min_value:g}" if current.min_value else "",
            "page": "",
        } | {key: "" if value is None else str(value) for key, value in changes.items()}
        if values["page"] == "1":
            values["page"] = ""
        shown = {key: value for key, value in values.items() if value}
        return f"{ROOT}/discrepancies" + (f"?{urlencode(shown)}" if shown else "")


def queue(engine: Engine, filters: Filters) -> Queue:
    """The figures of the page (blocking: run it in a worker thread)."""
    with engine.store.engine.connect() as conn:
        rows, total = queue_page(conn, filters, PAGE_SIZE)
        page = Queue(filters, rows, total, open_counts(conn, filters), open_zones(conn))
    if filters.zone and filters.zone not in page.zones:
        page.zones = sorted([*page.zones, filters.zone])
    return page


def location_path(row: QueueRow) -> str:
    """The location page of a discrepancy's location."""
    return f"{ROOT}/locations/{quote(row.zone, safe='')}/{quote(row.location, safe='')}"


def add_routes(app: FastAPI, context: ConsoleContext) -> None:
    """``GET /console/discrepancies``: the queue."""
    signed_in = Depends(context.auth.current_user())
    limits = context.config.approval_limits

    @app.get(f"{ROOT}/discrepancies", response_class=HTMLResponse, include_in_schema=False)
    async def queue_page_route(request: Request, identity: Identity = signed_in) -> HTMLResponse:
        filters, errors = parse_filters(request.query_params)
        page = Queue(filters)
        if not errors:
            page = await run_in_threadpool(queue, context.engine, filters)
            if page.total and filters.page > page.pages:  # past the end: the last page
                last = replace(filters, page=page.pages)
                page = await run_in_threadpool(queue, context.engine, last)
        may_decide = identity.may(Scope.DECIDE)
        return render_page(
            request,
            identity,
            "queue.html",
            title="Discrepancies",
            active="discrepancies",
            site=context.site,
            live="discrepancies",
            status_code=422 if errors else 200,
            page=page,
            errors=errors,
            may_decide=may_decide,
            limit=approval_limit(identity.role, limits) if may_decide else None,
            reasons=REASONS,
            labels={state.value: label for state, label in STATE_LABELS.items()},
            open_states=[s.value for s in OPEN_STATES],
            closed_states=[s.value for s in CLOSED_STATES],
            classes=[c.value for c in AbcClass],
            money=money,
            location_path=location_path,
            # the dialogs stay in the page once loaded; a live refresh does not send them again
            dialogs=request.headers.get(FRAGMENT_HEADER) != "1",
        )
