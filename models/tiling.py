"""Tiled inference: detect in overlapping crops of a large or dense image, then merge.

A detector sees its input at a fixed size (480 x 480 for the shelf model), so a frame larger
than those it was trained on is shrunk further and items lose the pixels it needs. Tiling
runs the detector on overlapping crops of about the training frame's size and merges what
each crop found into one set of boxes:

1. **Tiles.** Along each axis the fewest tiles of the configured size whose neighbours overlap
   by at least ``overlap`` of a tile, evenly spaced. An image that fits in one tile is not
   tiled at all. Each tile owns a *core*: the tile minus half of each overlap with a
   neighbour. The cores partition the image.
2. **Whole boxes.** A box that does not touch an inner tile border (a border that is not also
   the image's border) is kept only by the tile whose core holds the box's centre. An item no
   wider (taller) than the overlap is seen whole by exactly that tile, so each such item is
   kept once.
3. **Cut boxes.** A box that touches an inner border is part of an item the crop cut. It is
   dropped when a kept whole box covers it (a neighbour saw the item whole). The remaining
   cut boxes belong to items larger than the overlap: pieces from two tiles that agree inside
   the region both tiles see (IoU of their parts there) are joined into their union box.
4. **Global NMS** over everything kept removes any duplicates left.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.detections import Detections
from models.postprocess import box_ioa, box_iou, nms_per_class

Image = npt.NDArray[np.uint8]
DetectFn = Callable[[Image], Detections]

PIECE_IOU = 0.5
"""Two pieces of a cut item agree when their parts inside the shared region overlap this much."""
COVERED = 0.6
"""A cut box is a duplicate when this share of it lies inside a kept whole box."""


TRAINING_FRAME = (960, 544)
"""``(width, height)`` of the frames the shelf detector learned from (the camera simulator's
default). Tiles of this size show items at the scale it knows; much smaller tiles enlarge
items beyond anything it saw and it then finds parts of items as items."""


@dataclass(frozen=True, slots=True)
class TileSettings:
    """How to tile an image.

    Attributes:
        width: Tile width in source pixels.
        height: Tile height in source pixels.
        overlap: Least overlap of neighbouring tiles, as a fraction of the tile size. Items
            up to this size are seen whole by some tile.
        edge: A box within this many source pixels of an inner tile border touches it.
    """

    width: int = TRAINING_FRAME[0]
    height: int = TRAINING_FRAME[1]
    overlap: float = 0.2
    edge: float = 2.0

    def __post_init__(self) -> None:
        if min(self.width, self.height) < 16:
            raise ValueError(f"tiles must be at least 16x16 pixels, got {self.width}x{self.height}")
        if not 0.0 <= self.overlap < 0.9:
            raise ValueError(f"tile overlap must be in [0, 0.9), got {self.overlap}")
        if self.edge < 0:
            raise ValueError(f"tile edge must not be negative, got {self.edge}")


@dataclass(frozen=True, slots=True)
class Tile:
    """One crop of the image and the part of the image it owns.

    Attributes:
        x0: Left column of the crop (inclusive).
        y0: Top row (inclusive).
        x1: Right column (exclusive).
        y1: Bottom row (exclusive).
        core: ``(x0, y0, x1, y1)`` the region whose box centres this tile keeps.
        inner: Which borders (left, top, right, bottom) lie inside the image.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    core: tuple[float, float, float, float]
    inner: tuple[bool, bool, bool, bool]


def _spans(length: int, tile: int, overlap: float) -> list[tuple[int, int, float, float]]:
    """Tiles along one axis: (start, end, core start, core end)."""
    if length <= tile:
        return [(0, length, -math.inf, math.inf)]
    step = tile - math.ceil(tile * overlap)
    count = max(2, math.ceil((length - tile) / max(step, 1)) + 1)
    starts = np.round(np.linspace(0, length - tile, count)).astype(int).tolist()
    ends = [start + tile for start in starts]
    bounds = [-math.inf] + [(starts[i + 1] + ends[i]) / 2 for i in range(count - 1)] + [math.inf]
    return [(starts[i], ends[i], bounds[i], bounds[i + 1]) for i in range(count)]


def plan_tiles(width: int, height: int, tile_size: tuple[int, int], overlap: float) -> list[Tile]:
    """The tiles of a ``width x height`` image, row by row (one tile when it fits in one).

    Args:
        width: Image width.
        height: Image height.
        tile_size: ``(width, height)`` of a tile in source pixels.
        overlap: Least overlap of neighbours as a fraction of the tile size.
    """
    columns = _spans(width, tile_size[0], overlap)
    rows = _spans(height, tile_size[1], overlap)
    return [
        Tile(
            x0,
            y0,
            x1,
            y1,
            (cx0, cy0, cx1, cy1),
            (x0 > 0, y0 > 0, x1 < width, y1 < height),
        )
        for y0, y1, cy0, cy1 in rows
        for x0, x1, cx0, cx1 in columns
    ]


def _touches_inner(
    boxes: npt.NDArray[np.float32], tile: Tile, edge: float
) -> npt.NDArray[np.bool_]:
    left, top, right, bottom = tile.inner
    return (
        (left & (boxes[:, 0] <= tile.x0 + edge))
        | (top & (boxes[:, 1] <= tile.y0 + edge))
        | (right & (boxes[:, 2] >= tile.x1 - edge))
        | (bottom & (boxes[:, 3] >= tile.y1 - edge))
    )


def _in_core(boxes: npt.NDArray[np.float32], tile: Tile) -> npt.NDArray[np.bool_]:
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    x0, y0, x1, y1 = tile.core
    return (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)


def _concat(parts: list[Detections]) -> Detections:
    if not parts:
        return Detections.empty()
    return Detections(
        np.concatenate([p.boxes for p in parts]).astype(np.float32).reshape(-1, 4),
        np.concatenate([p.scores for p in parts]).astype(np.float32),
        np.concatenate([p.classes for p in parts]).astype(np.int64),
    )


def tiled_detect(
    image: Image,
    detect: DetectFn,
    settings: TileSettings,
    *,
    iou: float,
    max_det: int,
) -> Detections:
    """Detect in overlapping tiles of ``image`` and merge (see the module docstring).

    Args:
        image: The whole image (``H x W x C``).
        detect: Detects in one crop; returns boxes in the crop's pixels.
        settings: Tile size and overlap.
        iou: IoU threshold of the final NMS.
        max_det: Most detections returned.
    """
    height, width = image.shape[:2]
    tiles = plan_tiles(width, height, (settings.width, settings.height), settings.overlap)
    if len(tiles) == 1:
        return detect(image)
    whole: list[Detections] = []
    cut: list[Detections] = []
    cut_tiles: list[Tile] = []
    for tile in tiles:
        found = detect(image[tile.y0 : tile.y1, tile.x0 : tile.x1])
        if not len(found):
            continue
        shift = np.array([tile.x0, tile.y0, tile.x0, tile.y0], dtype=np.float32)
        found = Detections((found.boxes + shift).astype(np.float32), found.scores, found.classes)
        touching = _touches_inner(found.boxes, tile, settings.edge)
        whole.append(found.select(~touching & _in_core(found.boxes, tile)))
        pieces = found.select(touching)
        cut.append(pieces)
        cut_tiles.extend([tile] * len(pieces))
    kept = _concat(whole)
    pieces = _concat(cut)
    merged = _merge_pieces(_uncovered(pieces, kept, cut_tiles))
    combined = _concat([kept, merged])
    keep = nms_per_class(combined.boxes, combined.scores, combined.classes, iou, max_det=max_det)
    return combined.select(keep)


def _uncovered(
    pieces: Detections, kept: Detections, tiles: list[Tile]
) -> tuple[Detections, list[Tile]]:
    """The cut boxes no kept whole box of the same class covers, with their tiles."""
    if not len(pieces) or not len(kept):
        return pieces, tiles
    inside = box_ioa(pieces.boxes, kept.boxes)
    same = pieces.classes[:, None] == kept.classes[None, :]
    free = ~((inside >= COVERED) & same).any(axis=1)
    return pieces.select(free), [tile for tile, f in zip(tiles, free.tolist(), strict=True) if f]


def _merge_pieces(found: tuple[Detections, list[Tile]]) -> Detections:
    """Join pieces of one item cut by tile borders into its union box (best score)."""
    pieces, tiles = found
    count = len(pieces)
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(count):
        for j in range(i + 1, count):
            if tiles[i] is tiles[j] or pieces.classes[i] != pieces.classes[j]:
                continue
            if _same_item(pieces.boxes[i], pieces.boxes[j], tiles[i], tiles[j]):
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(count):
        groups.setdefault(root(i), []).append(i)
    boxes, scores, classes = [], [], []
    for members in groups.values():
        group = pieces.boxes[members]
        boxes.append([*group[:, :2].min(axis=0), *group[:, 2:].max(axis=0)])
        scores.append(float(pieces.scores[members].max()))
        classes.append(int(pieces.classes[members[0]]))
    return Detections(
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        np.asarray(scores, dtype=np.float32),
        np.asarray(classes, dtype=np.int64),
    )


def _same_item(
    a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], tile_a: Tile, tile_b: Tile
) -> bool:
    """Whether two pieces from two tiles show the same item where both tiles see the image."""
    shared = np.array(
        [
            max(tile_a.x0, tile_b.x0),
            max(tile_a.y0, tile_b.y0),
            min(tile_a.x1, tile_b.x1),
            min(tile_a.y1, tile_b.y1),
        ],
        dtype=np.float64,
    )
    if shared[0] >= shared[2] or shared[1] >= shared[3]:
        return False
    lo, hi = shared[:2], shared[2:]
    part_a = np.concatenate([np.clip(a[:2], lo, hi), np.clip(a[2:], lo, hi)])
    part_b = np.concatenate([np.clip(b[:2], lo, hi), np.clip(b[2:], lo, hi)])
    return bool(box_iou(part_a, part_b)[0, 0] >= PIECE_IOU)
