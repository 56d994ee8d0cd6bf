"""What a zone scan finds: the count of each location, how each device did, the result.

These are plain data shared by the parts of a scan (:mod:`gateway.scan`): the tally
strategies (:mod:`gateway.tally`, :mod:`gateway.mobile_scan`) make :class:`LocationCount` s,
the camera part (:mod:`gateway.vision.scan`) adds or fuses its own, and the sink
(:mod:`gateway.sink`) publishes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.aggregate import LocationTally
from gateway.epc import UNKNOWN_SKU


@dataclass(slots=True)
class ReaderOutcome:
    """How one reader did during a scan."""

    name: str
    ok: bool = True
    reads: int = 0
    error: str | None = None


@dataclass(slots=True)
class CameraOutcome:
    """How one camera did during a scan (reported in the scan message)."""

    name: str
    ok: bool = True
    frames: int = 0
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        """The entry of the scan message's ``cameras`` list."""
        out: dict[str, object] = {"name": self.name, "ok": self.ok, "frames": self.frames}
        if self.error:
            out["error"] = self.error
        return out


@dataclass(slots=True)
class LocationCount(LocationTally):
    """The count of one location in one scan: its tally, and whether it was fully scanned.

    ``items`` is set for camera counts (``source`` vision or fused): what is published then.
    """

    complete: bool = True
    source: str = "rfid"
    items: list[dict[str, Any]] | None = None
    fusion: dict[str, Any] | None = None

    def payload_items(self) -> list[dict[str, Any]]:
        """The ``items`` of the count message."""
        if self.items is not None:
            return self.items
        rows: list[dict[str, Any]] = []
        for sku, qty in self.skus.items():
            item: dict[str, Any] = {"sku": sku, "qty": qty}
            if sku == UNKNOWN_SKU:
                item["epcs"] = sorted(self.unknown_epcs)
            rows.append(item)
        return rows


@dataclass(slots=True)
class ScanResult:
    """Everything one zone scan found.

    ``window_closed`` is when the scan window ended (the readers were told to stop then);
    ``ended_at`` comes after the stop, the last reads and the cameras' last frames.
    """

    scan_id: str
    zone: str
    started_at: datetime
    ended_at: datetime
    locations: dict[str, LocationCount]
    readers: dict[str, ReaderOutcome]
    cameras: dict[str, CameraOutcome] = field(default_factory=dict)
    published: bool = False
    window_closed: datetime | None = None

    @property
    def complete(self) -> bool:
        """True when every location was fully scanned."""
        return all(count.complete for count in self.locations.values())
