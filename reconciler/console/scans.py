"""A scan as the console shows it: its progress and the health of its devices.

A scan's progress is the locations counted in it (distinct locations of its counts) out of
the locations its latest ``edgecount.scan/1`` lists; its readers and cameras are those of that
message (``scans.readers`` / ``scans.cameras``). *Tonight* shows tonight's scans, *Gateways*
each zone's latest, both through :func:`scan_progress`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from edgecount.timefmt import utc
from reconciler import schema as t

__all__ = ["Device", "ScanProgress", "scan_progress"]


@dataclass(frozen=True, slots=True)
class Device:
    """A reader or camera as the scan reported it."""

    kind: str
    name: str
    ok: bool
    figure: str
    error: str | None


@dataclass(frozen=True, slots=True)
class ScanProgress:
    """A scan: state, times, locations counted out of those listed, its devices."""

    scan_id: str
    zone: str
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

    @property
    def device_errors(self) -> tuple[str, ...]:
        """``name: error`` of each device not ok."""
        return tuple(f"{d.name}: {d.error or 'not ok'}" for d in self.devices if not d.ok)


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


def scan_progress(conn: sa.Connection, rows: Sequence[Any]) -> list[ScanProgress]:
    """The progress of ``rows`` of the ``scans`` table, in their order (one counts query)."""
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
    return [
        ScanProgress(
            scan_id=r.scan_id,
            zone=r.zone,
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
    ]
