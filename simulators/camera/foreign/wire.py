"""Foreign renderer ``wire``: jars, pouches and boxes on metal or wire shelving, seen plainly.

Gondola shelving in a shop or a stock room: perforated posts, a pegboard or dark back panel,
and shelves that are either solid metal with a shiny front lip or wire with a front rail and
stubs. Each bay of each shelf (a location) holds one product in a row: glass jars with ridged
lids, stand-up pouches with crimped tops and a window, or cereal-style boxes drawn with their
top and side faces (stacked two high where they fit). Price tags sit on the shelf edge, a pole
or a hanging sign may stand in front of the items (never hiding more than half of one), the
frame edge cuts items of the neighbouring bays, and the picture goes through a cheap camera:
colour cast, vignette, sensor noise and heavy JPEG compression. Silhouettes are computed as
implicit shapes on a pixel grid (superellipses, half-planes, a saw-tooth edge), not drawn with
OpenCV primitives.

Locations are ``R{bay}-{shelf}`` (shelf 1 the lowest): from the underside of the shelf above
down to the bottom of the item's own shelf edge. Items of the bays cut by the frame edge stand
outside every location and are labelled by the edge rule of :mod:`simulators.camera.foreign`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from simulators.camera.foreign.scene import Canvas, Float, ForeignShelf, Mask, Span, jpeg, quad
from simulators.camera.render import Bin

WIDTH, HEIGHT = 960, 544
KINDS = ("jar", "pouch", "box")
_MAX_HIDDEN = 0.5
"""An occluder may hide at most this share of any item's pixels."""


def render(rng: np.random.Generator) -> ForeignShelf:
    """One metal or wire shelf image with its truth (see the module docstring)."""
    canvas = Canvas.blank(HEIGHT, WIDTH)
    _back_panel(rng, canvas.image)
    wire = bool(rng.random() < 0.5)
    edge = int(rng.integers(14, 22)) if not wire else int(rng.integers(10, 15))
    post = int(rng.integers(14, 24))
    left = 0 if rng.random() < 0.35 else int(rng.integers(30, 120))
    right = 0 if rng.random() < 0.35 else int(rng.integers(30, 120))
    bays = int(rng.integers(2, 4))
    shelves = int(rng.choice([3, 3, 4]))
    inner = (WIDTH - left - right - post * (bays + 1)) / bays
    top = int(rng.integers(6, 24))
    pitch = (HEIGHT - top - edge) / shelves
    bins: list[Bin] = []
    metal = rng.uniform(110, 200)
    for level in range(shelves):
        floor = int(top + (shelves - level) * pitch)
        ceiling = int(top + (shelves - level - 1) * pitch) + (edge if level < shelves - 1 else 0)
        spans = [(-1, 0, left), (bays, WIDTH - right, WIDTH)] if left or right else []
        for bay in range(bays):
            x1 = int(left + post + bay * (inner + post))
            spans.append((bay, x1, int(x1 + inner)))
        for bay, x1, x2 in spans:
            if x2 <= x1:
                continue
            name = f"R{bay + 1}-{level + 1}" if 0 <= bay < bays else ""
            _stock(rng, canvas, name, Span(x1, x2, ceiling, floor), cut=(bay == -1, bay == bays))
            if name:
                sku = f"{name}-{int(rng.integers(1_000_000)):06d}"
                bins.append(Bin(name, sku, 0, quad(x1, ceiling, x1 + inner, floor + edge)))
        _shelf_edge(rng, canvas, floor, edge, metal=metal, wire=wire)
    for bay in range(bays + 1):
        _post(canvas, int(left + bay * (inner + post)), post, metal)
    _occlude(rng, canvas)
    return canvas.finish(_cheap_camera(rng, canvas.image), bins)


def _grid(h: int, w: int) -> tuple[Float, Float]:
    """Pixel-centre coordinates of an ``h`` x ``w`` patch, scaled to -1..1."""
    ys = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
    xs = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    rows, cols = np.meshgrid(ys, xs, indexing="ij")
    return rows.astype(np.float32), cols.astype(np.float32)


def _back_panel(rng: np.random.Generator, image: Float) -> None:
    """A pegboard (a lattice of holes) or a plain dark panel."""
    base = rng.uniform(30, 120) * rng.uniform(0.8, 1.2, 3)
    image[:] = base
    if rng.random() < 0.5:
        step = int(rng.integers(18, 30))
        ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
        holes = ((ys % step - step / 2) ** 2 + (xs % step - step / 2) ** 2) < 5
        image[holes] = base * 0.35


def _shelf_edge(
    rng: np.random.Generator, canvas: Canvas, floor: int, edge: int, *, metal: float, wire: bool
) -> None:
    """The shelf's front: a shiny lip (metal) or a rail with stubs (wire), then price tags."""
    rows = np.arange(edge, dtype=np.float32)[:, None] / edge
    band: npt.NDArray[np.float64]
    if wire:
        band = np.where(rows < 0.35, metal * 1.1, 0.0) + np.zeros((1, WIDTH))
        stubs = (np.arange(WIDTH) % 12 < 3)[None, :] & (rows >= 0.35)
        band = np.where(stubs, metal * 0.8, band)
        mask = band > 0
    else:
        band = metal * (0.7 + 0.5 * np.exp(-(((rows - 0.3) / 0.15) ** 2))) + np.zeros((1, WIDTH))
        mask = np.ones((edge, WIDTH), bool)
    colours = np.repeat(band[..., None], 3, axis=2).astype(np.float32)
    canvas.paint(0, floor, mask, colours, None)
    for _ in range(int(rng.integers(1, 7))):
        _price_tag(rng, canvas, int(rng.integers(0, WIDTH - 40)), floor + 1, edge - 2)


def _price_tag(rng: np.random.Generator, canvas: Canvas, x: int, y: int, h: int) -> None:
    """A paper tag with a price in blocky digits (bars, no font)."""
    w = int(rng.integers(26, 44))
    paper = np.array([235, 240, 245] if rng.random() < 0.6 else [60, 225, 245], np.float32)
    colours = np.broadcast_to(paper, (h, w, 3)).copy()
    for d in range(int(rng.integers(2, 5))):
        x0 = 3 + d * 7
        if x0 + 5 < w:
            colours[2 : h - 2, x0 : x0 + 5][rng.random((max(h - 4, 0), 5)) < 0.55] = 20
    canvas.paint(x, y, np.ones((h, w), bool), colours, None)


def _post(canvas: Canvas, x: int, w: int, metal: float) -> None:
    """A perforated upright: a folded steel profile with a column of slots."""
    ys, xs = np.mgrid[0:HEIGHT, 0:w]
    shade = metal * (0.75 + 0.35 * np.cos((xs / max(w - 1, 1) - 0.35) * math.pi))
    slots = (np.abs(xs - w / 2) < 2) & (ys % 24 < 10)
    colours = np.repeat(np.where(slots, 25.0, shade)[..., None], 3, axis=2).astype(np.float32)
    canvas.paint(x, 0, np.ones((HEIGHT, w), bool), colours, None)


def _stock(
    rng: np.random.Generator,
    canvas: Canvas,
    name: str,
    span: Span,
    *,
    cut: tuple[bool, bool],
) -> None:
    """One product in a row on the shelf; a bay at the frame edge runs off the frame."""
    x1, x2, ceiling, floor = span
    if rng.random() < 0.1:
        return
    kind = KINDS[int(rng.integers(len(KINDS)))]
    clearance = floor - ceiling - 6
    h = int(min(clearance * rng.uniform(0.4, 0.85), 140))
    aspect = {"jar": (0.5, 0.85), "pouch": (0.45, 0.75), "box": (0.35, 0.7)}[kind]
    w = max(int(h * rng.uniform(*aspect)), 16)
    if kind == "box" and rng.random() < 0.4:
        h = min(h, clearance // 2 - 2)
    mask, colours = {"jar": _jar, "pouch": _pouch, "box": _box}[kind](rng, h, w)
    gap = int(rng.integers(0, 6))
    layers = 2 if kind == "box" and 2 * h + 2 <= clearance else 1
    if cut[0]:  # running off the left edge: the last item is cut by the frame
        x = x2 - 3 - ((x2 - 3) // (w + gap) + 1) * (w + gap) + gap
        count = (x2 - 3 - x) // (w + gap)
    else:
        capacity = max((x2 - x1 - 6) // (w + gap), 0)
        count = capacity if rng.random() < 0.6 else int(capacity * rng.uniform(0.2, 1.0))
        x = (
            x1 + 3
            if cut[1]
            else x1 + 3 + int(rng.integers(0, max(x2 - x1 - 6 - count * (w + gap), 0) + 1))
        )
        if cut[1]:
            count += 1
    for _ in range(count):
        for layer in range(layers):
            tint = rng.uniform(0.93, 1.07, 3).astype(np.float32)
            canvas.paint(x, floor - (layer + 1) * h, mask, colours * tint, name)
        x += w + gap


def _jar(rng: np.random.Generator, h: int, w: int) -> tuple[Mask, Float]:
    """A glass jar: a superellipse body, a narrower ridged lid, contents seen through the glass."""
    ys, xs = _grid(h, w)
    lid = rng.uniform(0.12, 0.2) * 2 - 1
    body_y = (ys - (lid + 1) / 2) / ((1 - lid) / 2)
    body = np.abs(xs) ** 4 + np.abs(body_y) ** 4 <= 1
    cap = (ys < lid) & (np.abs(xs) < rng.uniform(0.7, 0.85))
    contents = rng.uniform(20, 220, 3).astype(np.float32)
    colours = contents * (0.6 + 0.4 * np.cos(xs * 1.3))[..., None]
    colours = colours + 120 * np.exp(-(((xs + 0.45) / 0.1) ** 2))[..., None]  # glass glint
    band = (body_y > -0.2) & (body_y < 0.45)
    colours[band] = rng.uniform(120, 255, 3)
    lid_colour = rng.uniform(40, 220, 3).astype(np.float32)
    ridges = 0.8 + 0.2 * (np.floor((ys + 1) * h / 3) % 2)
    colours = np.where(cap[..., None], lid_colour * ridges[..., None], colours)
    return body | cap, colours.astype(np.float32)


def _pouch(rng: np.random.Generator, h: int, w: int) -> tuple[Mask, Float]:
    """A stand-up pouch: narrower at the top, a crimped saw-tooth seal, a clear window."""
    ys, xs = _grid(h, w)
    taper = rng.uniform(0.7, 0.9)
    half = taper + (1 - taper) * (ys + 1) / 2
    teeth = 2 * np.abs((xs * rng.uniform(4, 8)) % 1 - 0.5)
    shape = (np.abs(xs) <= half) & (ys >= -1 + 0.06 * teeth)
    film = rng.uniform(20, 240, 3).astype(np.float32)
    gloss = 0.75 + 0.4 * np.clip(1 - np.abs(xs + ys - 0.2), 0, 1)
    colours = film * gloss[..., None]
    window = ((xs / 0.45) ** 2 + ((ys - 0.3) / 0.3) ** 2) < 1
    colours[window] = rng.uniform(60, 200, 3)
    colours[(ys > -0.92) & (ys < -0.82)] *= 0.6  # the zip
    return shape, colours.astype(np.float32)


def _box(rng: np.random.Generator, h: int, w: int) -> tuple[Mask, Float]:
    """A box seen a little from above and the side: front, top and side faces."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = max(int(min(w, h) * rng.uniform(0.08, 0.18)), 2)
    front = (ys >= depth) & (xs < w - depth)
    top = (ys < depth) & (xs >= depth - ys) & (xs < w - ys)
    side = (xs >= w - depth) & (ys >= w - xs) & (ys < h - (xs - (w - depth)))
    ink = rng.uniform(20, 240, 3).astype(np.float32)
    colours = np.broadcast_to(ink, (h, w, 3)).astype(np.float32).copy()
    colours[top] *= 1.25
    colours[side] *= 0.6
    cx, cy = (w - depth) / 2, h * rng.uniform(0.35, 0.6)
    logo = ((xs - cx) ** 2 + (ys - cy) ** 2) < (w * rng.uniform(0.15, 0.3)) ** 2
    colours[logo & front] = rng.uniform(0, 255, 3)
    stripe = front & (np.abs(ys - h * 0.85) < h * 0.04)
    colours[stripe] = rng.uniform(0, 255, 3)
    return front | top | side, colours


def _occlude(rng: np.random.Generator, canvas: Canvas) -> None:
    """Maybe a pole or a hanging sign in front, never hiding over half of any item."""
    if rng.random() < 0.5 or not canvas.boxes:
        return
    areas = np.bincount(canvas.ids.ravel(), minlength=len(canvas.boxes) + 1)
    for _ in range(8):
        if rng.random() < 0.5:
            w, h = int(rng.integers(8, 16)), HEIGHT
            x, y = int(rng.integers(0, WIDTH - w)), 0
        else:
            w, h = int(rng.integers(60, 160)), int(rng.integers(30, 70))
            x, y = int(rng.integers(0, WIDTH - w)), int(rng.integers(0, HEIGHT - h))
        under = canvas.ids[y : y + h, x : x + w]
        hidden = np.bincount(under.ravel(), minlength=areas.size)
        if np.all(hidden[1:] <= _MAX_HIDDEN * areas[1:]):
            colour = rng.uniform(20, 250, 3).astype(np.float32)
            shade = 0.7 + 0.3 * np.sin(np.linspace(0, math.pi, w, dtype=np.float32))
            canvas.paint(
                x,
                y,
                np.ones((h, w), bool),
                np.asarray(colour * shade[None, :, None] * np.ones((h, 1, 1)), np.float32),
                None,
            )
            return


def _cheap_camera(rng: np.random.Generator, image: Float) -> npt.NDArray[np.uint8]:
    """Colour cast, vignette, sensor noise and heavy JPEG."""
    cast = rng.uniform(0.8, 1.2, 3).astype(np.float32)
    ys, xs = _grid(HEIGHT, WIDTH)
    vignette = 1 - rng.uniform(0.1, 0.4) * (xs**2 + ys**2) / 2
    out = image * cast * (vignette * rng.uniform(0.75, 1.25))[..., None]
    out += rng.normal(0, rng.uniform(2, 8), out.shape).astype(np.float32)
    return jpeg(np.clip(out, 0, 255).astype(np.uint8), int(rng.integers(25, 60)))
