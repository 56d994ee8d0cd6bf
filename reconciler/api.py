"""The reconciler's REST API: discrepancies, approvals, book snapshots, movement logs, metrics.

:func:`create_app` builds a FastAPI application around an :class:`~reconciler.engine.Engine`;
:func:`serve_api` runs it with uvicorn inside the service's event loop. Every engine or store
call blocks on the database, so it runs in a worker thread and the loop (MQTT included) never
waits for it. Approving only records the decision in the store: the running service publishes
the adjustment from there (``ReconcileService._poll_store``), exactly as after ``edgecount
reconcile approve``.

``GET /metrics`` answers in Prometheus' text format: discrepancies by state and adjustments not
yet acknowledged (from the database), plus the running service's ingest counters when the
service hosts the API (:func:`metrics_registry`).

``POST /book``, ``POST /book/preview`` and ``POST /movements`` live in
:mod:`reconciler.api_upload`, ``POST /scan-requests`` in :mod:`reconciler.api_scan`.

Every endpoint but the open ones (``api.anonymous``: ``/health`` and ``/metrics`` by default,
and the sign-in page) needs a session or an API token with the endpoint's scope
(:mod:`reconciler.auth`): 401 without, 403 with too little. The approver of a decision is the
signed-in user or the token's user; an approver may decide discrepancies up to
``api.approval_limits.approver`` in value, an admin any.

``POST /discrepancies/approve`` approves many at once (``{"ids": [...], "reason_code": ...,
"note": ...}``, at most :data:`BULK_LIMIT`), each in its own transaction through the same
path as one approval, and answers 200 with each one's result (``approved``, ``conflict``,
``forbidden``, ``not_found``).

Errors are JSON ``{"detail": ...}``: 401 not signed in, 403 not allowed (scope, role, approval
limit, CSRF token), 404 unknown discrepancy, 409 decision on a discrepancy
not awaiting approval or a refused book import, 422 invalid request (``detail`` lists each
error's ``type``, ``loc`` and ``msg``), 503 database unavailable, 500 anything else (logged
by the server, never sent to the client).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic import StringConstraints as Text
from sqlalchemy.exc import OperationalError

from edgecount import contract
from edgecount.metrics import CONTENT_TYPE, Family, counter, gauge, render, scrape_registry
from reconciler import decisions
from reconciler import schema as t
from reconciler.api_scan import add_scan_routes
from reconciler.api_server import ApiServer, serve_api
from reconciler.api_tasks import add_task_routes
from reconciler.api_types import StrictBody
from reconciler.api_upload import add_upload_routes
from reconciler.auth.dependencies import Auth
from reconciler.auth.identity import Identity
from reconciler.auth.limits import approval_limit, discrepancy_value
from reconciler.auth.pages import add_signin_routes
from reconciler.auth.roles import Scope
from reconciler.config import ApiConfig
from reconciler.console import add_console_routes
from reconciler.engine import DecisionError, Engine
from reconciler.store import BookLedger
from reconciler.transitions import CLOSED_STATES, OPEN_STATES

log = logging.getLogger(__name__)


# -- requests ------------------------------------------------------------------------------------


class DecisionIn(StrictBody):
    """An approval or a rejection of a discrepancy awaiting approval.

    Who decides is the signed-in user (or the token's): a body naming an ``approver`` is
    refused, so nobody can record a decision in someone else's name.
    """

    reason_code: Annotated[str, Text(strip_whitespace=True, min_length=1, max_length=64)] = Field(
        examples=["MISCOUNT", "THEFT", "DAMAGE", "BOOK_ERROR"]
    )
    note: Annotated[str, Text(max_length=1024)] = ""

    @model_validator(mode="before")
    @classmethod
    def _no_approver(cls, data: Any) -> Any:
        if isinstance(data, dict) and "approver" in data:
            raise ValueError(
                "approver is not taken from the body: the decision is recorded under the"
                " signed-in user (or the API token's user)"
            )
        return data


BULK_LIMIT = 500
"""The most discrepancies one ``POST /discrepancies/approve`` decides."""


class BulkDecisionIn(DecisionIn):
    """An approval of several discrepancies with one reason (each decided on its own)."""

    ids: Annotated[list[int], Field(min_length=1, max_length=BULK_LIMIT)]

    @field_validator("ids")
    @classmethod
    def _once_each(cls, ids: list[int]) -> list[int]:
        if len(set(ids)) != len(ids):
            raise ValueError("each id at most once")
        return ids


# -- responses -----------------------------------------------------------------------------------


class LoopOut(BaseModel):
    """A supervised loop of the running service (see docs/operations.md)."""

    healthy: bool
    errors_total: int
    failing_seconds: float | None
    last_error: str | None
    waiting: int | None = None


class HealthOut(BaseModel):
    """The API answers and the database is reachable; the service's loops, when it runs."""

    status: Literal["ok", "degraded"]
    database: str
    open_discrepancies: int
    publisher: LoopOut | None = None
    ingest: LoopOut | None = None


ServiceHealth = Callable[[], Mapping[str, Mapping[str, Any]]]
"""The running service's loops by name (``publisher``, ``ingest``), for ``/health``."""


class LineOut(BaseModel):
    """One exception line of a discrepancy."""

    sku: str
    book_qty: int
    counted_qty: int
    diff: int
    diff_value: float
    status: str


class MovementOut(BaseModel):
    """A movement at the location since its last good count (a likely cause)."""

    ts: str
    sku: str
    qty_delta: int
    user: str
    doc: str


class DecisionSummaryOut(BaseModel):
    """How a closed discrepancy ended (see ``edgecount.decision/1``)."""

    outcome: str
    by: str
    reason: str
    note: str
    at: str


class DiscrepancyOut(BaseModel):
    """A discrepancy, its lines, and the movements since the last good count.

    Times are UTC ISO-8601 with milliseconds and a ``Z``, as in the MQTT payloads.
    """

    id: int
    zone: str
    location: str
    gateway: str
    state: str
    opened_at: str
    updated_at: str
    closed_at: str | None
    recounts: int
    scan_id: str
    count_msg_id: str
    observed_at: str
    lines: list[LineOut]
    movements: list[MovementOut]
    decision: DecisionSummaryOut | None = None


class BulkItemOut(BaseModel):
    """What became of one discrepancy of a bulk approval; ``detail`` says why not."""

    id: int
    result: Literal["approved", "conflict", "forbidden", "not_found"]
    detail: str = ""


class BulkOut(BaseModel):
    """What became of each discrepancy of a bulk approval, in the order asked."""

    results: list[BulkItemOut]


class CursorItemOut(BaseModel):
    """One message of a cursor page: its cursor, the payload as published, whether acked."""

    cursor: int
    published: bool
    payload: dict[str, Any]


class CursorPageOut(BaseModel):
    """A page of decisions or adjustments, oldest first.

    Pass ``next_after`` as ``after`` to read on; ``more`` says whether another page waits.
    """

    items: list[CursorItemOut]
    next_after: int
    more: bool


class BookLineOut(BaseModel):
    """One SKU of a location's book as it stands now (snapshot plus movements since)."""

    sku: str
    qty: int
    unit_cost: float
    abc: str


class BookOut(BaseModel):
    """A location's current book."""

    location: str
    snapshot_at: str | None
    as_of: str
    lines: list[BookLineOut]


# -- blocking helpers (run in worker threads) ---------------------------------------------------


def _discrepancy(engine: Engine, discrepancy_id: int) -> DiscrepancyOut | None:
    """One discrepancy, shaped like an item of ``Engine.list_discrepancies``."""
    item = engine.discrepancy(discrepancy_id)
    return None if item is None else DiscrepancyOut.model_validate(item)


def _health(engine: Engine) -> HealthOut:
    query = (
        sa.select(sa.func.count())
        .select_from(t.discrepancies)
        .where(t.discrepancies.c.state.in_(OPEN_STATES))
    )
    with engine.store.engine.connect() as conn:
        open_count = conn.execute(query).scalar_one()
    return HealthOut(
        status="ok", database=engine.store.engine.dialect.name, open_discrepancies=open_count
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Decision:
    approve: bool
    body: DecisionIn
    by: Identity
    limit: float | None


def _decide(
    engine: Engine, lock: threading.Lock, discrepancy_id: int, decision: _Decision
) -> DiscrepancyOut:
    # Engine.decide checks the state and then writes in one transaction, but without a row
    # lock: two requests at once could both approve. The lock serialises this process's
    # decisions (the CLI in another process is not covered).
    with lock:
        current = _discrepancy(engine, discrepancy_id)
        if current is None:
            raise HTTPException(404, f"no discrepancy {discrepancy_id}")
        value = discrepancy_value(line.model_dump() for line in current.lines)
        if decision.limit is not None and value > decision.limit:
            raise HTTPException(
                403,
                f"discrepancy {discrepancy_id} is worth {value:.2f}, above the approval limit"
                f" of {decision.limit:.2f} of {decision.by.user} ({decision.by.role.label});"
                " an admin must decide it",
            )
        try:
            engine.decide(
                discrepancy_id,
                approve=decision.approve,
                reason_code=decision.body.reason_code,
                approver=decision.by.user,
                note=decision.body.note,
            )
        except DecisionError as exc:
            raise HTTPException(409, str(exc)) from None
    found = _discrepancy(engine, discrepancy_id)
    assert found is not None  # discrepancies are never deleted
    return found


_BULK_RESULTS: dict[int, Literal["conflict", "forbidden", "not_found"]] = {
    409: "conflict",
    403: "forbidden",
    404: "not_found",
}


def _decide_each(
    engine: Engine, lock: threading.Lock, ids: list[int], decision: _Decision
) -> BulkOut:
    """:func:`_decide` for each id in turn, each in its own transaction; a refusal of one
    (its HTTP status) is its result, and the others go on."""
    results = []
    for discrepancy_id in ids:
        try:
            _decide(engine, lock, discrepancy_id, decision)
        except HTTPException as exc:
            result = _BULK_RESULTS[exc.status_code]
            results.append(BulkItemOut(id=discrepancy_id, result=result, detail=str(exc.detail)))
        else:
            results.append(BulkItemOut(id=discrepancy_id, result="approved"))
    return BulkOut(results=results)


# -- metrics -------------------------------------------------------------------------------------

DISCREPANCY_STATES = tuple(state.value for state in (*OPEN_STATES, *CLOSED_STATES))
"""States always exported (0 when none), so dashboards see every series from the start."""


def metrics_registry(
    engine: Engine,
    counters: Callable[[], Mapping[str, float]] | None = None,
    gauges: Callable[[], Mapping[str, float]] | None = None,
    *,
    families: Callable[[], Iterable[Family]] | None = None,
) -> CollectorRegistry:
    """The reconciler's metrics: database figures, and the service's own when given.

    Args:
        engine: Its store answers discrepancies by state and adjustments pending.
        counters: Totals since start, by short name (``received`` →
            ``edgecount_reconciler_received_total``), read at each scrape.
        gauges: Current values by short name (``inbox_depth`` →
            ``edgecount_reconciler_inbox_depth``), read at each scrape.
        families: More families of the service, whole (the supervised tasks' restarts).

    Returns:
        A registry of its own whose scrape queries the database (render it from a worker
        thread). When the database does not answer, the last figures it gave are exported
        again and ``edgecount_reconciler_database_up`` is 0.
    """
    last: list[tuple[dict[str, int], int]] = []  # the database's last answer

    def collect() -> Iterator[Family]:
        try:
            last[:] = [_database_figures(engine)]
        except OperationalError as exc:
            log.warning("metrics: database unavailable: %s", exc)
            up = 0
        else:
            up = 1
        by_state = gauge("edgecount_reconciler_discrepancies", "Discrepancies by state.", ["state"])
        pending = gauge(
            "edgecount_reconciler_adjustments_pending",
            "Approved adjustments the broker has not acknowledged yet.",
        )
        for states, waiting in last:
            for state, number in states.items():
                by_state.add_metric([state], number)
            pending.add_metric([], waiting)
        database_up = gauge(
            "edgecount_reconciler_database_up", "1 when the last scrape's database query answered."
        )
        database_up.add_metric([], up)
        yield from (by_state, pending, database_up)
        yield from _service_families(counters, gauges)
        if families is not None:
            yield from families()

    return scrape_registry(collect)


def service_registry(
    counters: Callable[[], Mapping[str, float]],
    gauges: Callable[[], Mapping[str, float]],
    *,
    families: Callable[[], Iterable[Family]],
) -> CollectorRegistry:
    """The service's own figures without the database's (a centre's ``/metrics``)."""

    def collect() -> Iterator[Family]:
        yield from _service_families(counters, gauges)
        yield from families()

    return scrape_registry(collect)


def _database_figures(engine: Engine) -> tuple[dict[str, int], int]:
    """Discrepancies by state (every state, 0 when none) and adjustments pending."""
    states = dict.fromkeys(DISCREPANCY_STATES, 0)
    counted = sa.select(t.discrepancies.c.state, sa.func.count()).group_by(t.discrepancies.c.state)
    waiting = (
        sa.select(sa.func.count())
        .select_from(t.adjustments)
        .where(t.adjustments.c.published_at.is_(None))
    )
    with engine.store.engine.connect() as conn:
        states.update({row[0]: row[1] for row in conn.execute(counted)})
        return states, conn.execute(waiting).scalar_one()


def _service_families(
    counters: Callable[[], Mapping[str, float]] | None,
    gauges: Callable[[], Mapping[str, float]] | None,
) -> Iterator[Family]:
    for name, value in (counters() if counters else {}).items():
        family: Family = counter(
            f"edgecount_reconciler_{name}_total",
            f"Service figure {name!r} (see docs/operations.md).",
        )
        family.add_metric([], value)
        yield family
    for name, value in (gauges() if gauges else {}).items():
        family = gauge(
            f"edgecount_reconciler_{name}", f"Service figure {name!r} (see docs/operations.md)."
        )
        family.add_metric([], value)
        yield family


# -- the application -----------------------------------------------------------------------------


def create_app(
    engine: Engine,
    *,
    auth: Auth | None = None,
    metrics: CollectorRegistry | None = None,
    service_health: ServiceHealth | None = None,
) -> FastAPI:
    """Build the REST API around an engine.

    Args:
        engine: The engine (and its store) every request works on; it is shared with the
            running service, and the caller closes its store.
        auth: Who may do what (users, sessions, limits of the ``api:`` section); the
            defaults of :class:`~reconciler.config.ApiConfig` on the engine's database when
            None.
        metrics: What ``/metrics`` renders; the database figures alone when None.
        service_health: The running service's loops; ``/health`` answers 503 while one
            fails (the database alone is checked when None).

    Returns:
        The FastAPI application; serve it with :func:`serve_api`.
    """
    auth = auth or Auth(engine.store.engine, ApiConfig())
    app = FastAPI(
        title="edgecount reconciler",
        version="1",
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN
        redoc_url=None,
        openapi_url=None,  # served below, behind the sign-in like every other endpoint
        dependencies=[Depends(auth.gate)],
    )
    _add_error_handlers(app)
    add_signin_routes(app, auth)
    reading = [Depends(auth.require(Scope.READ))]
    _add_health_route(app, engine, service_health, reading)
    _add_discrepancy_routes(app, engine, auth)
    add_upload_routes(app, engine, auth.require(Scope.BOOK))
    add_scan_routes(app, engine, auth.require(Scope.DECIDE))
    _add_wms_routes(app, engine, reading)
    add_task_routes(app, engine, auth)
    add_console_routes(app, engine, auth)
    registry = metrics or metrics_registry(engine)

    @app.get("/openapi.json", include_in_schema=False, dependencies=reading)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/metrics", response_class=Response, dependencies=reading)
    async def prometheus() -> Response:
        """Prometheus text exposition (discrepancies by state, ingest counters, ...)."""
        text = await run_in_threadpool(render, registry)
        return Response(text, media_type=CONTENT_TYPE)

    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Without the offending input: it may be the whole body, or NaN (not valid JSON).
        errors = [{k: e[k] for k in ("type", "loc", "msg")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(OperationalError)
    async def database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return JSONResponse({"detail": "database unavailable"}, status_code=503)

    @app.exception_handler(Exception)
    async def internal(_request: Request, _exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this answer: uvicorn logs its traceback.
        return JSONResponse({"detail": "internal error"}, status_code=500)


def _add_health_route(
    app: FastAPI, engine: Engine, service_health: ServiceHealth | None, reading: list[Any]
) -> None:
    @app.get(
        "/health",
        dependencies=reading,
        response_model=HealthOut,
        response_model_exclude_unset=True,
        responses={503: {"description": "the database or a service loop is failing"}},
    )
    async def health() -> HealthOut | JSONResponse:
        """Liveness, database reachability, the service's loops (503 when one fails)."""
        loops = {k: dict(v) for k, v in (service_health() if service_health else {}).items()}
        try:
            answer = await run_in_threadpool(_health, engine)
        except OperationalError:
            if not loops:
                raise  # the handler answers 503 "database unavailable"
            log.warning("health: database unavailable")
            return JSONResponse({"detail": "database unavailable"} | loops, status_code=503)
        answer = answer.model_copy(update={k: LoopOut(**v) for k, v in loops.items()})
        if all(loop["healthy"] for loop in loops.values()):
            return answer
        degraded = answer.model_copy(update={"status": "degraded"})
        return JSONResponse(degraded.model_dump(), status_code=503)


def _add_discrepancy_routes(app: FastAPI, engine: Engine, auth: Auth) -> None:
    decisions = threading.Lock()
    reading = [Depends(auth.require(Scope.READ))]
    deciding = Depends(auth.require(Scope.DECIDE))  # a default, not Annotated: it is a local
    limits = auth.config.approval_limits

    def decision(approve: bool, body: DecisionIn, by: Identity) -> _Decision:
        return _Decision(approve, body, by, approval_limit(by.role, limits))

    @app.get("/discrepancies", dependencies=reading)
    async def list_discrepancies(
        include_closed: Annotated[bool, Query(alias="all")] = False,
    ) -> list[DiscrepancyOut]:
        """Open discrepancies (``?all=true``: decided and resolved ones too), newest first."""
        items = await run_in_threadpool(engine.list_discrepancies, open_only=not include_closed)
        return [DiscrepancyOut.model_validate(item) for item in items]

    @app.get(
        "/discrepancies/{discrepancy_id}",
        responses={404: {"description": "unknown id"}},
        dependencies=reading,
    )
    async def get_discrepancy(discrepancy_id: int) -> DiscrepancyOut:
        """One discrepancy with its lines and the movements since the last good count."""
        found = await run_in_threadpool(_discrepancy, engine, discrepancy_id)
        if found is None:
            raise HTTPException(404, f"no discrepancy {discrepancy_id}")
        return found

    conflict: dict[int | str, dict[str, Any]] = {
        403: {"description": "not allowed to decide, or above the approval limit"},
        404: {"description": "unknown id"},
        409: {"description": "not awaiting approval"},
    }

    @app.post(
        "/discrepancies/approve",
        responses={403: {"description": "not allowed to decide"}, 422: {"description": "bad ids"}},
    )
    async def approve_many(body: BulkDecisionIn, by: Identity = deciding) -> BulkOut:
        """Approve up to 500 discrepancies as the signed-in user, each on its own exactly as
        ``POST /discrepancies/{id}/approve``: its ``result`` is ``approved``, ``conflict``
        (not awaiting approval: decided meanwhile), ``forbidden`` (above the approval limit)
        or ``not_found``."""
        single = DecisionIn(reason_code=body.reason_code, note=body.note)
        chosen = decision(True, single, by)
        return await run_in_threadpool(_decide_each, engine, decisions, body.ids, chosen)

    @app.post("/discrepancies/{discrepancy_id}/approve", responses=conflict)
    async def approve(
        discrepancy_id: int, body: DecisionIn, by: Identity = deciding
    ) -> DiscrepancyOut:
        """Approve as the signed-in user: each line becomes an adjustment, which the service
        publishes."""
        chosen = decision(True, body, by)
        return await run_in_threadpool(_decide, engine, decisions, discrepancy_id, chosen)

    @app.post("/discrepancies/{discrepancy_id}/reject", responses=conflict)
    async def reject(
        discrepancy_id: int, body: DecisionIn, by: Identity = deciding
    ) -> DiscrepancyOut:
        """Reject as the signed-in user: the discrepancy is closed, the book stays as it is."""
        chosen = decision(False, body, by)
        return await run_in_threadpool(_decide, engine, decisions, discrepancy_id, chosen)


def _page(engine: Engine, table: sa.Table, after: int, limit: int) -> CursorPageOut:
    found = decisions.page(engine.store.engine, table, after, limit)
    return CursorPageOut(
        items=[CursorItemOut(cursor=c, published=p, payload=d) for c, d, p in found.items],
        next_after=found.next_after,
        more=found.more,
    )


def _book(engine: Engine, location: str) -> BookOut:
    now = datetime.now(UTC)
    ledger = BookLedger.load(engine.store, [location], now)
    lines = ledger.book(location, now)
    return BookOut(
        location=location,
        snapshot_at=None if ledger.snapshot_at is None else contract.to_iso(ledger.snapshot_at),
        as_of=contract.to_iso(now),
        lines=[
            BookLineOut(sku=sku, qty=ln.qty, unit_cost=ln.unit_cost, abc=ln.abc.value)
            for sku, ln in sorted(lines.items())
        ],
    )


After = Annotated[int, Query(ge=0, description="cursor: the last one already read")]
Limit = Annotated[int, Query(ge=1, le=decisions.PAGE_LIMIT)]


def _add_wms_routes(app: FastAPI, engine: Engine, reading: list[Any]) -> None:
    @app.get("/decisions", dependencies=reading)
    async def list_decisions(after: After = 0, limit: Limit = 100) -> CursorPageOut:
        """Every end of a discrepancy (``edgecount.decision/1``) after a cursor, oldest first."""
        return await run_in_threadpool(_page, engine, t.decisions, after, limit)

    @app.get("/adjustments", dependencies=reading)
    async def list_adjustments(after: After = 0, limit: Limit = 100) -> CursorPageOut:
        """Approved adjustments (``edgecount.adjustment/1``) after a cursor, oldest first."""
        return await run_in_threadpool(_page, engine, t.adjustments, after, limit)

    @app.get("/book", dependencies=reading)
    async def book(location: Annotated[str, Query(min_length=1, max_length=128)]) -> BookOut:
        """A location's book now: the snapshot plus the movements booked since."""
        return await run_in_threadpool(_book, engine, location)


__all__ = [
    "BULK_LIMIT",
    "ApiServer",
    "BookOut",
    "BulkDecisionIn",
    "BulkOut",
    "CursorPageOut",
    "DecisionIn",
    "DiscrepancyOut",
    "HealthOut",
    "LineOut",
    "MovementOut",
    "create_app",
    "metrics_registry",
    "serve_api",
]
