"""The varied renderer: domain-randomised training shelves, so the detector learns what an item is.

The first training renderer (:mod:`simulators.camera.render`) draws rectangles on pallet
racking; a detector trained only on it learns that look. This renderer varies everything a
camera in a real store or warehouse can show, so that what stays the same from image to image
is only the item:

* **products** (:mod:`.products`): boxes, gable-top cartons, cans, bottles with necks and
  shoulders, jars with lids, stand-up pouches, blister cards hanging on hooks, shrink-wrapped
  multipacks and trays, irregular items; each SKU with its own size, colours, gloss and label;
* **labels** (:mod:`.textures`): procedural text in six fonts, stripes, checks, dots,
  gradients, logos, grain, and crops of the photographs scikit-image ships in its package;
* **shelves** (:mod:`.scene`): wood, metal gondola, wire and pallet racking, 1-3 bays and 2-4
  levels in view, over walls, pegboard or photographs; items stacked in layers where they
  stack, sometimes a second row behind, sometimes two SKUs in one bin; price tags and shelf
  talkers; cables, poles, hanging signs and plastic strips in front;
* **camera** (:mod:`.optics`): position, zoom and perspective, barrel or pincushion lens
  distortion, lighting gradients, ceiling spots, vignetting and board shadows, motion blur in
  any direction or defocus, sensor noise and JPEG quality 30-95.

**Labelling rule.** One item is one box, whatever its shape: the bounds of its whole outline
(cap, neck, lid, gable, hook hole and film included) after the camera's perspective and lens,
as drawn in the frame. Something in front (a cable, a sign, a plastic strip) does not shrink
the box; occluders never hide more than a third of an item. An item of a second row behind
the first shows less than a quarter of itself and gets no box. An item cut by the frame edge
gets the box of its part inside the frame when at least half its width and half its height
are inside, and no box otherwise. The locations are the bins wholly inside the frame (the
polygon from the underside of the shelf above to the bottom of the bin's own board, so the
bottom-centre of every item standing in it lies inside); items of bins the frame cuts stand
outside every location.

:func:`render` returns the :class:`~simulators.camera.render.ShelfImage` the other renderers
give, so the data set writer and the scorer take it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulators.camera.dataset import Progress, write_splits
from simulators.camera.render import Bin, ShelfImage
from simulators.camera.varied.optics import View, light, shoot
from simulators.camera.varied.products import Polygon
from simulators.camera.varied.scene import Fill, build


@dataclass(frozen=True, slots=True)
class VariedSettings:
    """How much the varied renderer varies.

    Attributes:
        width: Frame width in pixels.
        height: Frame height in pixels.
        max_items: Most items in one bin.
        empty: Share of empty bins.
        half: Share of bins 20-70 % full (the rest 80-100 %).
        back_rows: Chance that a SKU has a second row behind the first.
        mixed: Chance that a bin holds two SKUs side by side.
        occlusion: Chance that an image has occluders.
        tilt: Largest corner shift of the perspective, as a fraction of the frame size.
        distortion: Largest barrel distortion coefficient (pincushion up to half of it).
        blur: Chance of motion blur or defocus.
        noise: Largest sensor noise standard deviation (grey levels).
        lighting: Range of the overall gain.
        jpeg: Range of the JPEG quality.
        location_prefix: Locations are named ``{prefix}{bay:02d}-L{level}`` (level 1 = floor).
    """

    width: int = 960
    height: int = 544
    max_items: int = 60
    empty: float = 0.08
    half: float = 0.3
    back_rows: float = 0.3
    mixed: float = 0.15
    occlusion: float = 0.5
    tilt: float = 0.05
    distortion: float = 0.12
    blur: float = 0.35
    noise: float = 8.0
    lighting: tuple[float, float] = (0.55, 1.35)
    jpeg: tuple[int, int] = (30, 95)
    location_prefix: str = "V"


def render(rng: np.random.Generator, settings: VariedSettings | None = None) -> ShelfImage:
    """One randomised shelf image with its boxes and per-location counts."""
    s = settings or VariedSettings()
    fill = Fill(s.max_items, s.empty, s.half, s.back_rows, s.mixed, s.occlusion)
    scene = build(rng, (s.width, s.height), fill, s.location_prefix)
    light(rng, scene.canvas, s.lighting)
    view = View.random(rng, scene.window, (s.width, s.height), s.tilt, s.distortion)
    image = shoot(rng, view.image(scene.canvas), blur=s.blur, noise=s.noise, jpeg=s.jpeg)
    bins = []
    for section in scene.sections:
        polygon = view.points(section.polygon())
        inside = (polygon >= 0).all() and (polygon[:, 0] <= s.width - 1).all()
        if inside and (polygon[:, 1] <= s.height - 1).all():
            bins.append(Bin(section.name, "VAR-0", 0, polygon))
    located = {b.location: b for b in bins}
    boxes, owners = [], []
    for item in scene.items:
        box = frame_box(view.points(_densify(item.outline)), s.width, s.height)
        if box is None:
            continue
        owner = item.section if item.section in located else ""
        boxes.append(box)
        owners.append(owner)
        if owner:
            located[owner].count += 1
    box_array = np.asarray(boxes, np.float32).reshape(-1, 4)
    return ShelfImage(image, box_array, owners, bins)


def frame_box(
    outline: Polygon, width: int, height: int
) -> tuple[float, float, float, float] | None:
    """The box of an item whose outline is at ``outline`` (frame pixels), by the labelling
    rule: its bounds, cut to the frame; None when less than half its width or half its height
    is inside."""
    x1, y1 = (float(v) for v in outline.min(axis=0))
    x2, y2 = (float(v) for v in outline.max(axis=0))
    cx1, cy1 = max(x1, 0.0), max(y1, 0.0)
    cx2, cy2 = min(x2, width - 1.0), min(y2, height - 1.0)
    if cx2 - cx1 < 0.5 * (x2 - x1) or cy2 - cy1 < 0.5 * (y2 - y1):
        return None
    return cx1, cy1, cx2, cy2


def _densify(outline: Polygon, per_edge: int = 4) -> Polygon:
    """Points along every edge too: a lens bends straight edges, so corners are not enough."""
    ends = np.roll(outline, -1, axis=0)
    steps = np.linspace(0, 1, per_edge, endpoint=False)[None, :, None]
    points = outline[:, None, :] + (ends - outline)[:, None, :] * steps
    return np.asarray(points.reshape(-1, 2), np.float32)


VARIED_SEED = 2000
"""Seed of the varied held-out set (training draws from its own stream of the recipe's seed)."""


def varied_shelves(
    count: int, seed: int = VARIED_SEED, settings: VariedSettings | None = None
) -> Iterator[ShelfImage]:
    """``count`` varied shelves, the same for the same seed."""
    rng = np.random.default_rng([seed, 7])
    for _ in range(count):
        yield render(rng, settings)


def write_varied(
    out: Path, *, train: int, val: int, seed: int = 0, progress: Progress | None = None
) -> Path:
    """Write a varied set in the layout of :mod:`simulators.camera.dataset`; returns data.yaml.

    ``train`` and ``val`` are independent streams of ``seed``.
    """
    splits = (
        ("train", varied_shelves(train, seed)),
        ("val", varied_shelves(val, seed + 1)),
    )
    return write_splits(out, splits, train + val, progress)
