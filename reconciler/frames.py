"""Camera frames: the latest annotated frame of each location, as the console shows it.

A gateway publishes the frame a fixed camera's vision count came from on
``frame/{zone}/{location}`` (``edgecount.frame/1``, QoS 0, retained). Frames are best effort and
decide nothing: the reconciler keeps only the newest of each (zone, location), by the time the
camera took it, so a retained frame that arrives late never hides a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from edgecount.contract import FrameMessage
from edgecount.timefmt import parse_utc, utc
from reconciler import schema as t

__all__ = ["StoredFrame", "latest_frame", "record_frame"]


@dataclass(frozen=True, slots=True)
class StoredFrame:
    """A location's latest frame."""

    zone: str
    location: str
    gateway: str
    scan_id: str
    observed_at: datetime
    content_type: str
    width: int
    height: int
    jpeg: bytes | None
    """The image; None when read without it (:func:`latest_frame` ``with_jpeg=False``)."""


def record_frame(db: Engine, frame: FrameMessage, received_at: datetime) -> bool:
    """Keep ``frame`` unless a frame of its location taken later is stored; True if kept."""
    observed = parse_utc(frame.observed_at)
    values = {
        "gateway": frame.gateway,
        "scan_id": frame.scan_id,
        "observed_at": observed,
        "content_type": frame.content_type.value,
        "width": frame.width,
        "height": frame.height,
        "jpeg": frame.jpeg,
        "received_at": received_at,
    }
    where = (t.frames.c.zone == frame.zone, t.frames.c.location == frame.location)
    with db.begin() as conn:
        known = conn.execute(sa.select(t.frames.c.observed_at).where(*where)).scalar()
        if known is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        t.frames.insert().values(zone=frame.zone, location=frame.location, **values)
                    )
            except IntegrityError:  # another instance stored one meanwhile: compare again
                known = conn.execute(sa.select(t.frames.c.observed_at).where(*where)).scalar()
            else:
                return True
        if known is not None and utc(known) > observed:
            return False
        conn.execute(t.frames.update().where(*where).values(values))
        return True


def latest_frame(
    db: Engine, zone: str, location: str, *, with_jpeg: bool = True
) -> StoredFrame | None:
    """The stored frame of (zone, location), or None; ``with_jpeg=False`` leaves the image."""
    columns = [c for c in t.frames.c if with_jpeg or c.name != "jpeg"]
    query = sa.select(*columns).where(t.frames.c.zone == zone, t.frames.c.location == location)
    with db.connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        return None
    return StoredFrame(
        zone=row["zone"],
        location=row["location"],
        gateway=row["gateway"],
        scan_id=row["scan_id"],
        observed_at=utc(row["observed_at"]),
        content_type=row["content_type"],
        width=row["width"],
        height=row["height"],
        jpeg=bytes(row["jpeg"]) if with_jpeg else None,
    )
