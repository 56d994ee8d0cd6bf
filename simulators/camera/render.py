"""Synthetic shelf images with exact ground truth: what the camera simulator shows.

A shelf is pallet racking seen from the aisle: ``bays`` columns between uprights and
``levels`` rows between beams. Every bin (one bay at one level) is one storage location that
holds one planogram SKU, packed densely in stacks that stand on the beam. Each image varies the
racking colours, products (sizes, colours, label patterns), fill (empty, half-empty, full),
price labels on the beams (look-alike distractors), partial occlusion, lighting, blur, noise
and a perspective tilt, and returns the exact box of every item and the count per location. A
caller can fix what each bin holds instead (``contents``: one or more SKUs per bin, the
warehouse twin's truth in :mod:`simulators.camera.twin_render`).

Locations are polygons in image coordinates (quadrilaterals once tilted). A bin's polygon is
what a person would draw around it: from the underside of the beam above down to the bottom
of its own beam, so the bottom-centre of every item standing on that beam lies inside it with
a beam's height to spare: the rule the counter uses to assign a box.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Boxes = npt.NDArray[np.float32]
"""(N, 4) float32: x1, y1, x2, y2 in pixels."""

PATTERNS = ("plain", "stripes", "dots", "bars", "checker", "band", "text")

_UPRIGHT = 14
_BEAM = 12
_TOP = 8
_HEADROOM = 6
_SKU_GAP = 12
"""Pixels between the stacks of two SKUs in one bin."""
_MIN_ITEM = (22, 20)
"""Smallest item (width, height) the random fill draws: 26 x 24 pixels at scale 0.85."""


@dataclass(frozen=True, slots=True)
class Product:
    """How one SKU looks on the shelf: size in pixels at scale 1, colours and label."""

    sku: str
    width: int
    height: int
    body: tuple[int, int, int]
    label: tuple[int, int, int]
    pattern: str


@dataclass(frozen=True, slots=True)
class RenderSettings:
    """What varies from image to image, and by how much.

    Attributes:
        width: Image width in pixels.
        height: Image height in pixels.
        bays: Bins across (columns between uprights).
        levels: Bins up (rows between beams).
        max_items: Most items in one bin.
        empty: Share of bins left empty.
        half: Share of bins filled to 20-70 % of their capacity (the rest are 80-100 % full).
        occlusion: Chance that an image has occluders (hanging signs, cables) over items.
        tilt: Largest corner shift of the perspective warp, as a fraction of the image size.
        blur: Chance of a defocus or motion blur.
        noise: Largest standard deviation of the sensor noise (grey levels).
        lighting: Range of the overall brightness gain.
        jpeg_quality: JPEG quality the frame goes through (0 skips the compression).
        location_prefix: Locations are named ``{prefix}{bay:02d}-L{level}`` (level 1 = floor).
    """

    width: int = 960
    height: int = 544
    bays: int = 2
    levels: int = 3
    max_items: int = 60
    empty: float = 0.1
    half: float = 0.3
    occlusion: float = 0.4
    tilt: float = 0.035
    blur: float = 0.3
    noise: float = 6.0
    lighting: tuple[float, float] = (0.65, 1.3)
    jpeg_quality: int = 85
    location_prefix: str = "B"

    def clean(self) -> RenderSettings:
        """The same layout with no tilt, blur, noise, occlusion or lighting change."""
        return replace(self, occlusion=0.0, tilt=0.0, blur=0.0, noise=0.0, lighting=(1.0, 1.0))


@dataclass(frozen=True, slots=True)
class BinContent:
    """What one bin holds when the caller decides instead of the renderer.

    Attributes:
        location: The bin's location name in the rendered truth.
        stock: ``(product, count)`` per SKU, drawn left to right; the first with the most
            items is the planogram SKU.
    """

    location: str
    stock: tuple[tuple[Product, int], ...]

    @property
    def sku(self) -> str:
        """The planogram SKU: the one with the most items (the first of equals)."""
        return max(self.stock, key=lambda entry: entry[1])[0].sku if self.stock else ""

    @property
    def count(self) -> int:
        """Items over every SKU."""
        return sum(count for _, count in self.stock)


Contents = Mapping[tuple[int, int], BinContent]
"""Given bins by ``(bay, level)``: bay 1 at the left, level 1 the bottom row of the image."""


@dataclass(slots=True)
class Bin:
    """One storage location in the image: its polygon and what it truly holds."""

    location: str
    sku: str
    count: int
    polygon: npt.NDArray[np.float32]
    """(4, 2) corners in image pixels, clockwise from top-left."""


@dataclass(slots=True)
class ShelfImage:
    """A rendered image and its ground truth."""

    image: Image
    boxes: Boxes
    owners: list[str]
    """The location of each box, in the same order."""
    bins: list[Bin] = field(default_factory=list)

    def truth(self) -> dict[str, int]:
        """Items per location."""
        return {b.location: b.count for b in self.bins}

    def planogram(self) -> dict[str, str]:
        """Planogram SKU per location."""
        return {b.location: b.sku for b in self.bins}


def make_catalogue(rng: np.random.Generator, size: int = 48) -> list[Product]:
    """``size`` products with varied sizes, colours and label patterns."""
    products = []
    for index in range(size):
        width = int(rng.integers(26, 72))
        aspect = float(rng.uniform(0.7, 1.9))
        height = int(np.clip(width * aspect, 24, 86))
        products.append(
            Product(
                sku=f"VIS-{index + 1:04d}",
                width=width,
                height=height,
                body=_colour(rng),
                label=_colour(rng),
                pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
            )
        )
    return products


def render_shelf(
    rng: np.random.Generator,
    settings: RenderSettings | None = None,
    catalogue: list[Product] | None = None,
    *,
    contents: Contents | None = None,
) -> ShelfImage:
    """Render one shelf image with its truth.

    Args:
        rng: Source of every random choice.
        settings: Layout and camera effects.
        catalogue: Products the random fill picks from.
        contents: Bins to draw with exactly these items instead of a random fill; bins not
            in it are drawn empty and left out of the truth (``catalogue`` is then unused).
    """
    settings = settings or RenderSettings()
    catalogue = catalogue or ([] if contents is not None else make_catalogue(rng))
    canvas, boxes, owners, bins = _draw_racking(rng, settings, catalogue, contents)
    boxes_arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if rng.random() < settings.occlusion:
        _occlude(rng, canvas, boxes_arr)
    if settings.tilt > 0:
        canvas, boxes_arr, bins = _tilt(rng, canvas, boxes_arr, bins, settings.tilt)
    canvas = finish(rng, canvas, settings)
    return ShelfImage(canvas, boxes_arr, owners, bins)


def finish(rng: np.random.Generator, image: Image, settings: RenderSettings) -> Image:
    """Lighting, blur, sensor noise and JPEG: what a real camera does to the scene."""
    out = image.astype(np.float32)
    low, high = settings.lighting
    if high > low or low != 1.0:
        gain = float(rng.uniform(low, high))
        h, w = image.shape[:2]
        angle = float(rng.uniform(0, 2 * math.pi))
        xs = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
        ys = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
        ramp = 1.0 + float(rng.uniform(0, 0.25)) * (math.cos(angle) * xs + math.sin(angle) * ys)
        out *= (gain * ramp)[..., None]
        out += float(rng.uniform(-12, 12))
    if rng.random() < settings.blur:
        if rng.random() < 0.5:
            k = int(rng.choice([3, 5]))
            out = np.asarray(cv2.GaussianBlur(out, (k, k), 0), dtype=np.float32)
        else:
            out = motion_blur(out, int(rng.integers(3, 10)))
    if settings.noise > 0:
        sigma = float(rng.uniform(0, settings.noise))
        out += rng.normal(0.0, sigma, out.shape).astype(np.float32)
    result: Image = np.clip(out, 0, 255).astype(np.uint8)
    if settings.jpeg_quality:
        ok, data = cv2.imencode(".jpg", result, [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality])
        if ok:
            result = np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR), dtype=np.uint8)
    return result


def motion_blur(image: npt.NDArray[np.float32], length: int) -> npt.NDArray[np.float32]:
    """Horizontal motion blur of ``length`` pixels (a camera panning along the aisle)."""
    kernel = np.zeros((1, max(length, 1)), dtype=np.float32)
    kernel[:] = 1.0 / kernel.size
    return np.asarray(cv2.filter2D(image, -1, kernel), dtype=np.float32)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    hsv = np.array(
        [[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(70, 256)]]], dtype=np.uint8
    )
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _draw_racking(
    rng: np.random.Generator,
    s: RenderSettings,
    catalogue: list[Product],
    contents: Contents | None = None,
) -> tuple[Image, list[tuple[float, float, float, float]], list[str], list[Bin]]:
    canvas = np.empty((s.height, s.width, 3), dtype=np.uint8)
    canvas[:] = np.array(_colour(rng), dtype=np.uint8) // 3 + 40
    upright = tuple(int(c) for c in _colour(rng))
    beam = tuple(int(c) for c in _colour(rng))
    back = int(rng.integers(25, 90))
    bay_w = (s.width - _UPRIGHT * (s.bays + 1)) / s.bays
    level_h = (s.height - _TOP - _BEAM * s.levels) / s.levels
    boxes: list[tuple[float, float, float, float]] = []
    owners: list[str] = []
    bins: list[Bin] = []
    for level in range(s.levels):
        top = _TOP + level * (level_h + _BEAM)
        floor = top + level_h
        for bay in range(s.bays):
            left = _UPRIGHT + bay * (bay_w + _UPRIGHT)
            x0, y0, x1, y1 = int(left), int(top), int(left + bay_w), int(floor)
            canvas[y0:y1, x0:x1] = back + rng.integers(0, 20, 3)
            location = f"{s.location_prefix}{bay + 1:02d}-L{s.levels - level}"
            if contents is None:
                product = catalogue[int(rng.integers(len(catalogue)))]
                placed, sku = _pack(rng, canvas, (x0, y0, x1, y1), product, s), product.sku
            elif (given := contents.get((bay + 1, s.levels - level))) is not None:
                placed, location, sku = _pack_given(rng, canvas, (x0, y0, x1, y1), given)
            else:
                continue
            boxes.extend(placed)
            owners.extend([location] * len(placed))
            polygon = np.array(
                [[x0, y0], [x1, y0], [x1, y1 + _BEAM], [x0, y1 + _BEAM]], dtype=np.float32
            )
            bins.append(Bin(location, sku, len(placed), polygon))
        y_beam = int(floor)
        cv2.rectangle(canvas, (0, y_beam), (s.width, y_beam + _BEAM), beam, -1)
        _price_labels(rng, canvas, y_beam, s)
    for bay in range(s.bays + 1):
        x = int(bay * (bay_w + _UPRIGHT))
        cv2.rectangle(canvas, (x, 0), (x + _UPRIGHT - 1, s.height), upright, -1)
        for y in range(6, s.height, 18):
            cv2.rectangle(canvas, (x + 5, y), (x + 8, y + 6), (20, 20, 20), -1)
    return canvas, boxes, owners, bins


def _pack(
    rng: np.random.Generator,
    canvas: Image,
    area: tuple[int, int, int, int],
    product: Product,
    s: RenderSettings,
) -> list[tuple[float, float, float, float]]:
    """Stack items of one product on the bin's floor; returns their boxes."""
    x0, y0, x1, y1 = area
    scale = float(rng.uniform(0.85, 1.15))
    w = max(12, int(product.width * scale))
    h = max(14, min(int(product.height * scale), y1 - y0 - _HEADROOM))
    gap = int(rng.integers(0, 4))
    cols = max(1, (x1 - x0 - 4) // (w + gap))
    rows = max(1, (y1 - y0 - _HEADROOM) // (h + gap))
    capacity = min(cols * rows, s.max_items)
    roll = rng.random()
    if roll < s.empty:
        count = 0
    elif roll < s.empty + s.half:
        count = round(capacity * rng.uniform(0.2, 0.7))
    else:
        count = round(capacity * rng.uniform(0.8, 1.0))
    heights = _stacks(rng, cols, rows, count)
    slack = (x1 - x0 - 4) - cols * (w + gap)
    start = x0 + 2 + int(rng.integers(0, slack + 1)) if slack > 0 else x0 + 2
    boxes = []
    for col, stack in enumerate(heights):
        for row in range(stack):
            jitter = int(rng.integers(-1, 2)) if gap >= 2 else 0
            bx = start + col * (w + gap) + jitter
            by = y1 - (row + 1) * (h + gap) + gap
            _draw_item(rng, canvas, (bx, by, w, h), product)
            boxes.append((float(bx), float(by), float(bx + w), float(by + h)))
    return boxes


def _pack_given(
    rng: np.random.Generator, canvas: Image, area: tuple[int, int, int, int], given: BinContent
) -> tuple[list[tuple[float, float, float, float]], str, str]:
    """Stack exactly the given items, each SKU's full stacks side by side from the left.

    Products are drawn at a random scale of 0.85-1.15; while the stacks are too wide for the
    bin, the SKU taking the most width shrinks by 5 %, never below the smallest size
    :func:`make_catalogue` and :func:`_pack` draw (:data:`_MIN_ITEM`). Returns the boxes, the
    location and the planogram SKU.
    """
    x0, y0, x1, y1 = area
    room_w, room_h = x1 - x0 - 4, y1 - y0 - _HEADROOM
    gap = int(rng.integers(0, 4))
    scales = [float(rng.uniform(0.85, 1.15))] * len(given.stock)
    while True:
        sizes = [
            (int(p.width * k), min(int(p.height * k), room_h))
            for (p, _), k in zip(given.stock, scales, strict=True)
        ]
        rows = [max(1, room_h // (h + gap)) for _, h in sizes]
        cols = [-(-n // r) for (_, n), r in zip(given.stock, rows, strict=True)]
        widths = [c * (w + gap) + _SKU_GAP for c, (w, _) in zip(cols, sizes, strict=True)]
        if sum(widths) - _SKU_GAP <= room_w:
            break
        shrinkable = [i for i, (w, h) in enumerate(sizes) if w > _MIN_ITEM[0] and h > _MIN_ITEM[1]]
        if not shrinkable:
            raise ValueError(f"{given.location}: {given.count} items do not fit one bin")
        widest = max(shrinkable, key=lambda i: widths[i])
        scales[widest] *= 0.95
    x = x0 + 2 + int(rng.integers(0, room_w - sum(widths) + _SKU_GAP + 1))
    boxes: list[tuple[float, float, float, float]] = []
    for (product, n), (w, h), r, c in zip(given.stock, sizes, rows, cols, strict=True):
        for col in range(c):
            for row in range(min(r, n - col * r)):
                bx, by = x + col * (w + gap), y1 - (row + 1) * (h + gap) + gap
                _draw_item(rng, canvas, (bx, by, w, h), product)
                boxes.append((float(bx), float(by), float(bx + w), float(by + h)))
        x += c * (w + gap) + _SKU_GAP
    return boxes, given.location, given.sku


def _stacks(rng: np.random.Generator, cols: int, rows: int, count: int) -> list[int]:
    """Stack heights per column for ``count`` items: full stacks from one side, or scattered."""
    heights = [0] * cols
    if count >= cols * rows:
        return [rows] * cols
    if rng.random() < 0.5:
        order = range(cols) if rng.random() < 0.5 else range(cols - 1, -1, -1)
        left = count
        for col in order:
            heights[col] = min(rows, left)
            left -= heights[col]
        return heights
    for _ in range(count):
        open_cols = [c for c in range(cols) if heights[c] < rows]
        heights[open_cols[int(rng.integers(len(open_cols)))]] += 1
    return heights


def _draw_item(
    rng: np.random.Generator, canvas: Image, box: tuple[int, int, int, int], product: Product
) -> None:
    x, y, w, h = box
    body = np.array(product.body, dtype=np.float32)
    shade = np.linspace(1.12, 0.78, h, dtype=np.float32)[:, None, None]
    tone = float(rng.uniform(0.92, 1.08))
    patch = np.clip(body[None, None, :] * shade * tone, 0, 255)
    region = canvas[y : y + h, x : x + w]
    region[:] = patch[: region.shape[0]].astype(np.uint8)
    edge = tuple(int(c * 0.45) for c in product.body)
    cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), edge, 1)
    lx0, ly0 = x + w // 6, y + h // 3
    lx1, ly1 = x + w - w // 6, y + h - h // 4
    label = product.label
    if product.pattern == "band":
        # Inset like a label: a band across the whole face would look like the gap between
        # two stacked items, which no camera (or person) could tell apart.
        cv2.rectangle(canvas, (lx0, ly0), (lx1, ly0 + max(3, h // 6)), label, -1)
        return
    if product.pattern != "plain":
        cv2.rectangle(canvas, (lx0, ly0), (lx1, ly1), label, -1)
    ink = tuple(255 - c for c in label)
    if product.pattern == "stripes":
        for yy in range(ly0 + 2, ly1, 4):
            cv2.line(canvas, (lx0, yy), (lx1, yy), ink, 1)
    elif product.pattern == "dots":
        cv2.circle(canvas, ((lx0 + lx1) // 2, (ly0 + ly1) // 2), max(2, (lx1 - lx0) // 4), ink, -1)
    elif product.pattern == "bars":
        for xx in range(lx0 + 1, lx1 - 1, 3):
            cv2.line(canvas, (xx, ly0 + 1), (xx, ly1 - 2), ink, 1)
    elif product.pattern == "checker":
        step = max(3, (lx1 - lx0) // 3)
        for yy in range(ly0, ly1, step):
            for xx in range(lx0 + ((yy - ly0) // step % 2) * step, lx1, 2 * step):
                cv2.rectangle(canvas, (xx, yy), (min(xx + step, lx1), min(yy + step, ly1)), ink, -1)
    elif product.pattern == "text":
        cv2.putText(canvas, "AB", (lx0, ly1 - 1), cv2.FONT_HERSHEY_PLAIN, 0.6, ink, 1)


def _price_labels(rng: np.random.Generator, canvas: Image, y_beam: int, s: RenderSettings) -> None:
    """White price tickets on the beam: item-sized rectangles that are not items."""
    x = int(rng.integers(10, 60))
    while x < s.width - 40:
        w = int(rng.integers(26, 44))
        cv2.rectangle(canvas, (x, y_beam + 1), (x + w, y_beam + _BEAM - 2), (235, 235, 235), -1)
        cv2.line(canvas, (x + 3, y_beam + 5), (x + w - 3, y_beam + 5), (30, 30, 30), 1)
        x += w + int(rng.integers(60, 200))


def _occlude(rng: np.random.Generator, canvas: Image, boxes: Boxes) -> None:
    """Hanging signs and cables that hide part of some items (never most of one)."""
    h, w = canvas.shape[:2]
    for _ in range(int(rng.integers(1, 4))):
        colour = _colour(rng)
        if rng.random() < 0.5 and len(boxes):
            # A tag hanging from above over the top of one stack: it hides at most the upper
            # third of that stack's top item (never a whole item above or beside it).
            x1, y1, x2, y2 = _stack_top(boxes, int(rng.integers(len(boxes))))
            cover = (y2 - y1) * float(rng.uniform(0.15, 0.35))
            inset = (x2 - x1) * float(rng.uniform(0.1, 0.3))
            cv2.rectangle(
                canvas, (int(x1 + inset), 0), (int(x2 - inset), int(y1 + cover)), colour, -1
            )
        else:
            # A thin cable or pipe running down the rack.
            x = int(rng.integers(0, w))
            thickness = int(rng.integers(2, 6))
            drift = int(rng.integers(-40, 41))
            cv2.line(canvas, (x, 0), (x + drift, h), colour, thickness)


def _stack_top(boxes: Boxes, index: int) -> tuple[float, float, float, float]:
    """The highest box of the stack ``boxes[index]`` stands in (same column, overlapping x)."""
    top = boxes[index]
    while True:
        x1, y1, x2, _y2 = top
        above = boxes[
            (boxes[:, 0] < x2 - 1) & (boxes[:, 2] > x1 + 1) & (np.abs(boxes[:, 3] - y1) <= 5)
        ]
        if not len(above):
            return float(top[0]), float(top[1]), float(top[2]), float(top[3])
        top = above[0]


def _tilt(
    rng: np.random.Generator, image: Image, boxes: Boxes, bins: list[Bin], amount: float
) -> tuple[Image, Boxes, list[Bin]]:
    """A random perspective warp; boxes become the bounds of their warped corners."""
    h, w = image.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    shift = rng.uniform(-amount, amount, (4, 2)).astype(np.float32) * np.array([w, h], np.float32)
    matrix = cv2.getPerspectiveTransform(src, src + shift)
    warped = np.asarray(
        cv2.warpPerspective(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE), dtype=np.uint8
    )
    new_boxes = boxes.copy()
    if len(boxes):
        corners = np.stack(
            [boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [2, 3]], boxes[:, [0, 3]]], axis=1
        ).reshape(-1, 1, 2)
        moved = cv2.perspectiveTransform(corners, matrix).reshape(-1, 4, 2)
        new_boxes = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
        new_boxes = np.clip(new_boxes, 0, [w - 1, h - 1, w - 1, h - 1]).astype(np.float32)
    for b in bins:
        moved_polygon = cv2.perspectiveTransform(b.polygon.reshape(-1, 1, 2), matrix)
        b.polygon = np.asarray(moved_polygon, dtype=np.float32).reshape(4, 2)
    return warped, new_boxes, bins
