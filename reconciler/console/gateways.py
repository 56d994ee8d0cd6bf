"""*Gateways*: each gateway's status, its zones, their last scan and device health, "Scan now".

A gateway's status is its latest ``edgecount.status/1`` (``gateway_status``: online, offline or
stopped, since when, its version). Its zones are those a scan request goes to it for
(:func:`reconciler.console.scan_requests.zone_routes`: ``gateways:`` in the configuration,
else the gateway that scanned or reported the zone last). Each zone shows its latest scan:
state, times, locations counted of those planned, incomplete ones, and the readers and
cameras that scan reported. Approvers and admins get a "Scan now" button per zone, which
sends ``POST /scan-requests`` (:mod:`reconciler.api_scan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.auth.identity import Identity
from reconciler.auth.roles import Scope
from reconciler.console.render import ROOT, render_page
from reconciler.console.scan_requests import AWAY_STATES, latest_scans, zone_routes
from reconciler.console.scans import ScanProgress, scan_progress
from reconciler.engine import Engine

if TYPE_CHECKING:
    from reconciler.console.context import ConsoleContext

__all__ = ["GatewayLine", "ZoneLine", "add_routes", "gateway_lines"]


@dataclass(frozen=True, slots=True)
class ZoneLine:
    """A zone of a gateway: whether the configuration routes it there, its last scan."""

    zone: str
    configured: bool
    scan: ScanProgress | None


@dataclass(slots=True)
class GatewayLine:
    """A gateway, its latest status (None: none received) and its zones."""

    gateway: str
    state: str | None = None
    since: datetime | None = None
    version: str = ""
    received_at: datetime | None = None
    zones: list[ZoneLine] = field(default_factory=list)

    @property
    def away(self) -> bool:
        """Offline or stopped: a scan request would not reach it."""
        return self.state in AWAY_STATES

    @property
    def devices_not_ok(self) -> int:
        """Readers and cameras not ok in the last scans of its zones."""
        return sum(1 for z in self.zones if z.scan for d in z.scan.devices if not d.ok)


def _last_scans(conn: sa.Connection) -> dict[str, ScanProgress]:
    ranked = latest_scans()
    rows = conn.execute(sa.select(ranked).where(ranked.c.rank == 1)).all()
    return {scan.zone: scan for scan in scan_progress(conn, rows)}


def gateway_lines(engine: Engine) -> list[GatewayLine]:
    """Every gateway known (a status, or a zone routed to it), by name (blocking)."""
    with engine.store.engine.connect() as conn:
        routes = zone_routes(conn, engine.gateways)
        scans = _last_scans(conn)
        statuses = conn.execute(sa.select(t.gateway_status)).all()
    lines = {gw: GatewayLine(gw) for gw in routes.values()}
    for s in statuses:
        line = lines.setdefault(s.gateway, GatewayLine(s.gateway))
        line.state, line.version = s.state, s.version
        line.since, line.received_at = utc(s.at), utc(s.received_at)
    for zone, gateway in sorted(routes.items()):
        lines[gateway].zones.append(ZoneLine(zone, zone in engine.gateways, scans.get(zone)))
    return [lines[gw] for gw in sorted(lines)]


def add_routes(app: FastAPI, context: ConsoleContext) -> None:
    """``GET /console/gateways``: the Gateways page."""
    signed_in = Depends(context.auth.current_user())

    @app.get(f"{ROOT}/gateways", response_class=HTMLResponse, include_in_schema=False)
    async def gateways_page(request: Request, identity: Identity = signed_in) -> HTMLResponse:
        data = await run_in_threadpool(gateway_lines, context.engine)
        return render_page(
            request,
            identity,
            "gateways.html",
            title="Gateways",
            active="gateways",
            site=context.site,
            live="gateways messages",
            gateways=data,
            can_scan=identity.may(Scope.DECIDE),
        )
