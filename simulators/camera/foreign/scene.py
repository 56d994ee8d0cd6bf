"""What both foreign renderers paint into: a float canvas and an item-id map.

Painting an item records the pixels it covers in ``ids`` (item number + 1; 0 is no item), so
its label is the bounding box of exactly what was drawn, and a test can check that. An
occluder painted later clears the ids it covers but leaves the item's box as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from simulators.camera.render import Bin, ShelfImage

Mask = npt.NDArray[np.bool_]
Float = npt.NDArray[np.float32]


class Span(NamedTuple):
    """The space of one location: between two uprights, from the shelf above to its own."""

    x1: int
    x2: int
    ceiling: int
    """Row of the underside of the shelf above (or the top of the unit)."""
    floor: int
    """Row of the shelf's top surface, where items stand."""


@dataclass(slots=True)
class ForeignShelf:
    """A foreign shelf image with its truth and the visible pixels of every item.

    Attributes:
        shelf: Image, boxes, owners and locations, as the training renderer gives them.
        ids: ``(H, W)`` int32: ``k + 1`` where box ``k``'s item is visible, 0 elsewhere.
    """

    shelf: ShelfImage
    ids: npt.NDArray[np.int32]


@dataclass(slots=True)
class Canvas:
    """A scene being painted: colours in float 0..255, and which item each pixel shows."""

    image: Float
    ids: npt.NDArray[np.int32]
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)

    @classmethod
    def blank(cls, height: int, width: int) -> Canvas:
        """An empty black canvas."""
        return cls(np.zeros((height, width, 3), np.float32), np.zeros((height, width), np.int32))

    def paint(self, x0: int, y0: int, mask: Mask, colours: Float, owner: str | None) -> bool:
        """Paint ``colours`` where ``mask`` holds, its top-left corner at ``(x0, y0)``.

        Args:
            x0: Column of the mask's left edge (may lie outside the canvas).
            y0: Row of the mask's top edge.
            mask: ``(h, w)`` the silhouette.
            colours: ``(h, w, 3)`` its colours.
            owner: The item's location ("" for an item outside every location), or None for
                scenery (an occluder, a tag): it clears the ids it covers.

        Returns:
            True when an item was painted and labelled (clipped items keep a label only when
            at least half their width lies in the canvas).
        """
        height, width = self.ids.shape
        h, w = mask.shape
        cx1, cy1 = max(x0, 0), max(y0, 0)
        cx2, cy2 = min(x0 + w, width), min(y0 + h, height)
        if cx2 <= cx1 or cy2 <= cy1:
            return False
        local = mask[cy1 - y0 : cy2 - y0, cx1 - x0 : cx2 - x0]
        target = self.image[cy1:cy2, cx1:cx2]
        target[local] = colours[cy1 - y0 : cy2 - y0, cx1 - x0 : cx2 - x0][local]
        if owner is None:
            self.ids[cy1:cy2, cx1:cx2][local] = 0
            return False
        rows, cols = np.nonzero(local)
        if rows.size == 0 or (cols.max() - cols.min() + 1) * 2 < int(mask.any(axis=0).sum()):
            return False
        self.ids[cy1:cy2, cx1:cx2][local] = len(self.boxes) + 1
        self.boxes.append(
            (
                float(cx1 + cols.min()),
                float(cy1 + rows.min()),
                float(cx1 + cols.max() + 1),
                float(cy1 + rows.max() + 1),
            )
        )
        self.owners.append(owner)
        return True

    def finish(self, image: npt.NDArray[np.uint8], bins: list[Bin]) -> ForeignShelf:
        """The truth: counts per location are the boxes each owns."""
        for b in bins:
            b.count = self.owners.count(b.location)
        boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        return ForeignShelf(ShelfImage(image, boxes, list(self.owners), bins), self.ids)


def quad(x1: float, y1: float, x2: float, y2: float) -> npt.NDArray[np.float32]:
    """A location's polygon: corners clockwise from top-left."""
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)


def jpeg(image: npt.NDArray[np.uint8], quality: int) -> npt.NDArray[np.uint8]:
    """The image after a round trip through JPEG at ``quality``."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return image
    return np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR), dtype=np.uint8)
