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
from typing import TYPE_CHECKING, Any

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
from reconciler.engine import Engine

if TYPE_CHECKING:
    from reconciler.console.context import ConsoleContext

__all__ = ["Device", "GatewayLine", "LastScan", "ZoneLine", "add_routes", "gateway_lines"]


@dataclass(frozen=True, slots=True)
class Device:
    """A reader or camera as the scan reported it."""

    kind: str
    name: str
    ok: bool
    figure: str
    error: str | None


@dataclass(frozen=True, slots=True)
class LastScan:
    """A zone's latest scan."""

    scan_id: str
    gateway: str
    state: str
    started_at: datetime
    ended_at: datetime | None
    done: int
    planned: int
    incomplete: int
    devices: tuple[Device, ...]

    def ok_of(self, kind: str) -> tuple[int, int]:
        """(devices ok, devices) of a kind (``reader``, ``camera``)."""
        mine = [d for d in self.devices if d.kind == kind]
        return sum(1 for d in mine if d.ok), len(mine)

    @property
    def healthy(self) -> bool:
        """Every reader and camera reported ok."""
        return all(d.ok for d in self.devices)


@dataclass(frozen=True, slots=True)
class ZoneLine:
    """A zone of a gateway: whether the configuration routes it there, its last scan."""

    zone: str
    configured: bool
    scan: LastScan | None


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


def _devices(kind: str, reports: list[dict[str, Any]] | None, unit: str) -> list[Device]:
    return [
        Device(
            kind,
            str(r.get("name", "?")),
            bool(r.get("ok")),
            f"{r[unit]:,} {unit}" if isinstance(r.get(unit), int) else "",
            r.get("error"),
        )
        for r in reports or []
    ]


def _last_scans(conn: sa.Connection) -> dict[str, LastScan]:
    ranked = latest_scans()
    rows = conn.execute(sa.select(ranked).where(ranked.c.rank == 1)).all()
    ids = [r.scan_id for r in rows]
    done: dict[str, int] = {}
    if ids:
        done = dict(
            conn.execute(
                sa.select(t.counts.c.scan_id, sa.func.count(sa.distinct(t.counts.c.location)))
                .where(t.counts.c.scan_id.in_(ids))
                .group_by(t.counts.c.scan_id)
            ).all()
        )
    return {
        r.zone: LastScan(
            scan_id=r.scan_id,
            gateway=r.gateway,
            state=r.state,
            started_at=utc(r.started_at),
            ended_at=None if r.ended_at is None else utc(r.ended_at),
            done=int(done.get(r.scan_id, 0)),
            planned=len(r.locations),
            incomplete=len(r.incomplete_locations),
            devices=tuple(
                _devices("reader", r.readers, "reads") + _devices("camera", r.cameras, "frames")
            ),
        )
        for r in rows
    }


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
