"""RFID and vision at one location: which figure is published, and when they disagree.

RFID counts tagged units by GTIN, including units hidden behind others; a camera counts the
units it can see, tagged or not, under the location's planogram SKU. Where both cover a
location the gateway publishes one ``source: fused`` count carrying both figures:

- RFID complete: its items are published (exact SKUs, serials behind them).
- RFID incomplete (a reader dropped out) and vision complete: the camera's count is
  published, so the location still gets a complete figure.
- Neither complete: the RFID lower bound is published with ``complete: false``.

``disagreement`` is set when the totals differ by more than the zone's tolerance (both the
absolute and the percentage of the larger figure), and every item's confidence is then
halved: a consumer should recount rather than adjust on a disputed figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.config import FusionTolerance


@dataclass(slots=True)
class Figure:
    """One source's count at a location."""

    items: list[dict[str, Any]]
    complete: bool
    confidence: float | None = None

    @property
    def total(self) -> int:
        """Units over every SKU."""
        return sum(int(item["qty"]) for item in self.items)

    def as_json(self) -> dict[str, Any]:
        """The figure as carried in ``fusion``."""
        out: dict[str, Any] = {"total": self.total, "complete": self.complete}
        if self.confidence is not None:
            out["confidence"] = round(self.confidence, 4)
        return out


@dataclass(slots=True)
class Fused:
    """What is published for a location both sources cover."""

    items: list[dict[str, Any]]
    complete: bool
    fusion: dict[str, Any]

    @property
    def disagreement(self) -> bool:
        """Whether the figures disagree beyond the tolerance."""
        return bool(self.fusion["disagreement"])


def fuse(rfid: Figure, vision: Figure, tolerance: FusionTolerance) -> Fused:
    """Combine the two figures of one location (see the module docstring for the rules)."""
    disagreement = tolerance.disagree(rfid.total, vision.total)
    if rfid.complete or not vision.complete:
        chosen, complete = rfid, rfid.complete
    else:
        chosen, complete = vision, True
    items = [dict(item) for item in chosen.items]
    if disagreement:
        for item in items:
            item["confidence"] = round(float(item.get("confidence", 1.0)) / 2, 4)
    fusion = {
        "rfid": rfid.as_json(),
        "vision": vision.as_json(),
        "disagreement": disagreement,
        "tolerance": {"abs": tolerance.abs, "pct": tolerance.pct},
    }
    return Fused(items, complete, fusion)
