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

import dataclasses
from dataclasses import dataclass

from edgecount import contract
from gateway.config import FusionTolerance


@dataclass(slots=True)
class Figure:
    """One source's count at a location."""

    items: tuple[contract.CountItem, ...]
    complete: bool
    confidence: float | None = None

    @property
    def total(self) -> int:
        """Units over every SKU."""
        return sum(item.qty for item in self.items)

    @property
    def quantities(self) -> dict[str, int]:
        """SKU -> units."""
        return {item.sku: item.qty for item in self.items}

    def as_fusion(self) -> contract.FusionFigure:
        """The figure as carried in ``fusion``."""
        confidence = None if self.confidence is None else round(self.confidence, 4)
        return contract.FusionFigure(
            total=self.total, complete=self.complete, confidence=confidence
        )


@dataclass(slots=True)
class Fused:
    """What is published for a location both sources cover."""

    items: tuple[contract.CountItem, ...]
    complete: bool
    fusion: contract.Fusion

    @property
    def disagreement(self) -> bool:
        """Whether the figures disagree beyond the tolerance."""
        return self.fusion.disagreement


def fuse(rfid: Figure, vision: Figure, tolerance: FusionTolerance) -> Fused:
    """Combine the two figures of one location (see the module docstring for the rules)."""
    disagreement = tolerance.disagree(rfid.total, vision.total)
    if rfid.complete or not vision.complete:
        chosen, complete = rfid, rfid.complete
    else:
        chosen, complete = vision, True
    items = chosen.items
    if disagreement:
        items = tuple(_halved(item) for item in items)
    fusion = contract.Fusion(
        rfid=rfid.as_fusion(),
        vision=vision.as_fusion(),
        disagreement=disagreement,
        tolerance=contract.FusionTolerance(abs=tolerance.abs, pct=tolerance.pct),
    )
    return Fused(items, complete, fusion)


def _halved(item: contract.CountItem) -> contract.CountItem:
    """The item with its confidence (1 when it has none) halved: a disputed figure."""
    confidence = 1.0 if item.confidence is None else float(item.confidence)
    return dataclasses.replace(item, confidence=round(confidence / 2, 4))
