"""Scan requests people make ("Scan now" in the console, ``POST /scan-requests``).

A zone's gateway is the one ``gateways:`` in the configuration names for it (as for recounts),
else the gateway of the zone's latest scan, else the one that reported a location of the zone
last (:func:`zone_routes`). :func:`request_scan` writes the ``edgecount.scan-request/1`` for
that gateway into the console's outbox and an audit entry, in one transaction; the running
service publishes it on ``cmd/{gateway}/scan`` (:mod:`reconciler.console.outbox`).

A gateway whose last status is ``offline`` or ``stopped`` is not asked: a scan request is not
retained, so it would never see it (:class:`GatewayAwayError`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from edgecount import contract
from reconciler import schema as t
from reconciler.console.outbox import enqueue
from reconciler.engine import Engine
from reconciler.messages import Outgoing
from reconciler.repository import audit

__all__ = [
    "AWAY_STATES",
    "REASON",
    "GatewayAwayError",
    "ScanRequestError",
    "ScanRequested",
    "latest_scans",
    "request_scan",
    "zone_routes",
]

REASON = "manual"
"""The ``reason`` of a scan request a person makes."""

AWAY_STATES = frozenset({"offline", "stopped"})
"""Gateway states in which a scan request would be lost."""


class ScanRequestError(ValueError):
    """The request names something unknown; ``field`` is where (``zone``, ``locations.2``)."""

    def __init__(self, field: tuple[str | int, ...], why: str) -> None:
        super().__init__(why)
        self.field = field
        self.why = why


class GatewayAwayError(RuntimeError):
    """The zone's gateway reported itself offline or stopped: it would not get the request."""


@dataclass(frozen=True, slots=True)
class ScanRequested:
    """A scan request written to the outbox."""

    request_id: str
    zone: str
    gateway: str
    topic: str
    locations: tuple[str, ...] | None
    requested_by: str


def latest_scans() -> sa.Subquery:
    """``scans`` rows with ``rank`` 1 for the newest scan of each zone."""
    s = t.scans.c
    rank = sa.func.row_number().over(
        partition_by=s.zone, order_by=(s.started_at.desc(), s.scan_id.desc())
    )
    return sa.select(t.scans, rank.label("rank")).subquery("ranked_scans")


def zone_routes(conn: sa.Connection, configured: Mapping[str, str]) -> dict[str, str]:
    """Every known zone and the gateway a scan request of it goes to.

    Args:
        conn: A connection.
        configured: Zone -> gateway from the configuration (``gateways:``); wins.

    Returns:
        Zone -> gateway, for the configured zones, the zones scanned and the zones reported.
    """
    covered = conn.execute(
        sa.select(t.coverage.c.zone, t.coverage.c.gateway)
        .group_by(t.coverage.c.zone, t.coverage.c.gateway)
        .order_by(sa.func.max(t.coverage.c.last_seen))
    ).all()
    routes: dict[str, str] = dict(covered)  # the newest wins
    ranked = latest_scans()
    scanned = conn.execute(sa.select(ranked.c.zone, ranked.c.gateway).where(ranked.c.rank == 1))
    routes.update(scanned.all())
    routes.update(configured)
    return routes


def _known_locations(conn: sa.Connection, zone: str) -> set[str]:
    """Locations reported in ``zone`` (coverage) and listed by its latest scan."""
    known = set(
        conn.execute(sa.select(t.coverage.c.location).where(t.coverage.c.zone == zone)).scalars()
    )
    ranked = latest_scans()
    listed = conn.execute(
        sa.select(ranked.c.locations).where(ranked.c.zone == zone, ranked.c.rank == 1)
    ).scalar()
    known.update(listed or ())
    return known


def _checked_locations(
    conn: sa.Connection, zone: str, locations: Sequence[str] | None
) -> tuple[str, ...] | None:
    if locations is None:
        return None
    wanted = tuple(dict.fromkeys(locations))  # each once, in the order given
    known = _known_locations(conn, zone)
    for index, location in enumerate(locations):
        if location not in known:
            raise ScanRequestError(
                ("locations", index), f"location {location!r} is not known in zone {zone!r}"
            )
    return wanted


def request_scan(
    engine: Engine,
    zone: str,
    locations: Sequence[str] | None = None,
    *,
    by: str,
    now: datetime,
) -> ScanRequested:
    """Ask the zone's gateway to scan it (or some of its locations), through the outbox.

    Args:
        engine: The engine (its store, site and configured routes).
        zone: The zone.
        locations: Only these locations of the zone (None: the whole zone).
        by: Who asks (``requested_by`` and the audit entry's actor).
        now: When.

    Returns:
        The request written.

    Raises:
        ScanRequestError: An unknown zone (no gateway known for it) or location.
        GatewayAwayError: The gateway's last status is offline or stopped.
    """
    with engine.store.engine.begin() as conn:
        gateway = zone_routes(conn, engine.gateways).get(zone)
        if gateway is None:
            raise ScanRequestError(
                ("zone",),
                f"no gateway is known for zone {zone!r}: no scan or count of it was received"
                " and `gateways:` does not name one",
            )
        state = conn.execute(
            sa.select(t.gateway_status.c.state).where(t.gateway_status.c.gateway == gateway)
        ).scalar()
        if state in AWAY_STATES:
            raise GatewayAwayError(
                f"gateway {gateway!r} of zone {zone!r} is {state}: it would not receive the"
                " request; ask again once it is online"
            )
        wanted = _checked_locations(conn, zone, locations)
        request_id = f"console-{uuid.uuid4().hex[:16]}"
        message = contract.scan_request_message(
            reason=REASON,
            requested_by=by,
            zone=zone,
            locations=wanted,
            request_id=request_id,
            at=now,
        )
        topic = contract.cmd_scan_topic(engine.site, gateway)
        enqueue(conn, [Outgoing(topic, message, retain=False)], by=by, now=now)
        detail: dict[str, object] = {"request_id": request_id, "gateway": gateway, "zone": zone}
        if wanted is not None:
            detail["locations"] = list(wanted)
        audit(conn, by, "scan.request", f"zone {zone}"[:256], detail)
    return ScanRequested(request_id, zone, gateway, topic, wanted, by)
