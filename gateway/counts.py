"""What a zone scan finds: the count of each location, how each device did, the result.

These are plain data shared by the parts of a scan (:mod:`gateway.scan`): the tally
strategies (:mod:`gateway.tally`, :mod:`gateway.mobile_scan`) make :class:`LocationCount` s,
the camera part (:mod:`gateway.vision.scan`) adds or fuses its own, and the sink
(:mod:`gateway.sink`) publishes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from edgecount import contract
from gateway.aggregate import LocationTally
from gateway.epc import UNKNOWN_SKU


@dataclass(slots=True)
class ReaderOutcome:
    """How one reader did during a scan."""

    name: str
    ok: bool = True
    reads: int = 0
    error: str | None = None

    def report(self) -> contract.ReaderReport:
        """The entry of the scan message's ``readers`` list."""
        return contract.ReaderReport(
            name=self.name, ok=self.ok, reads=self.reads, error=self.error or None
        )


@dataclass(slots=True)
class CameraOutcome:
    """How one camera did during a scan (reported in the scan message)."""

    name: str
    ok: bool = True
    frames: int = 0
    error: str | None = None

    def report(self) -> contract.CameraReport:
        """The entry of the scan message's ``cameras`` list."""
        return contract.CameraReport(
            name=self.name, ok=self.ok, frames=self.frames, error=self.error or None
        )


@dataclass(slots=True)
class LocationCount(LocationTally):
    """The count of one location in one scan: its tally, and whether it was fully scanned.

    ``items`` is set for camera counts (``source`` vision or fused): what is published then;
    ``fusion`` goes with ``source`` fused.
    """

    complete: bool = True
    source: contract.CountSource = contract.CountSource.RFID
    items: tuple[contract.CountItem, ...] | None = None
    fusion: contract.Fusion | None = None

    def count_items(self) -> tuple[contract.CountItem, ...]:
        """The ``items`` of the count message: ``items``, or the tally's SKUs."""
        if self.items is not None:
            return self.items
        return tuple(
            contract.CountItem(
                sku=sku,
                qty=qty,
                epcs=tuple(sorted(self.unknown_epcs)) if sku == UNKNOWN_SKU else None,
            )
            for sku, qty in self.skus.items()
        )


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
