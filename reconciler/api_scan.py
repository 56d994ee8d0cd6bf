"""``POST /scan-requests``: ask a zone's gateway to scan it now (the console's "Scan now").

The request is written to the console's outbox with the requester and an audit entry, and the
running service publishes the ``edgecount.scan-request/1`` on ``cmd/{gateway}/scan``
(:mod:`reconciler.console.scan_requests`); the answer is 202 with the request's id, which the
scan that answers it carries as ``request_id``.

Errors: 403 without the ``decide`` scope (approvers and admins), 409 the zone's gateway
reported itself offline or stopped, 422 an unknown zone (no gateway known for it) or a
location not known in the zone (``loc``: ``["body", "zone"]``, ``["body", "locations", i]``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from reconciler.api_types import Name, StrictBody
from reconciler.auth.identity import Identity
from reconciler.console.scan_requests import (
    GatewayAwayError,
    ScanRequested,
    ScanRequestError,
    request_scan,
)
from reconciler.engine import Engine

__all__ = ["ScanRequestIn", "ScanRequestOut", "add_scan_routes"]

MAX_LOCATIONS = 10_000


class ScanRequestIn(StrictBody):
    """A zone to scan now, or only some of its locations."""

    zone: Name
    locations: Annotated[list[Name] | None, Field(min_length=1, max_length=MAX_LOCATIONS)] = None


class ScanRequestOut(BaseModel):
    """The request as written; the service publishes it on ``topic``."""

    request_id: str
    zone: str
    gateway: str
    topic: str
    locations: list[str] | None
    requested_by: str


def _request(engine: Engine, body: ScanRequestIn, by: str) -> ScanRequestOut:
    try:
        made: ScanRequested = request_scan(
            engine, body.zone, body.locations, by=by, now=datetime.now(UTC)
        )
    except ScanRequestError as exc:
        error = {"type": "value_error", "loc": ("body", *exc.field), "msg": exc.why}
        raise RequestValidationError([error]) from None
    except GatewayAwayError as exc:
        raise HTTPException(409, str(exc)) from None
    return ScanRequestOut(
        request_id=made.request_id,
        zone=made.zone,
        gateway=made.gateway,
        topic=made.topic,
        locations=None if made.locations is None else list(made.locations),
        requested_by=made.requested_by,
    )


def add_scan_routes(
    app: FastAPI, engine: Engine, deciding: Callable[[Request], Awaitable[Identity]]
) -> None:
    """Add ``POST /scan-requests``.

    Args:
        app: The application.
        engine: The engine.
        deciding: The dependency that admits who may ask (the ``decide`` scope).
    """
    asking = Depends(deciding)  # a default, not Annotated: it is a local

    @app.post(
        "/scan-requests",
        status_code=202,
        responses={
            403: {"description": "not allowed (the decide scope)"},
            409: {"description": "the zone's gateway is offline or stopped"},
            422: {"description": "unknown zone or location"},
        },
    )
    async def scan_request(body: ScanRequestIn, by: Identity = asking) -> ScanRequestOut:
        """Ask the zone's gateway to scan it now; the service publishes the request."""
        return await run_in_threadpool(_request, engine, body, by.user)
