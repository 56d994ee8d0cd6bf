"""Foreign renderer ``wood``: bottles, cans and cartons on wooden shelving, in perspective.

A wooden shelf unit seen from the aisle: side panels and shelf boards with wood grain in front
of a painted wall. Each section of each board (a location) holds one product, a single row of
bottles (body, rounded shoulders, neck, cap, a paper label), cans (elliptic rims, a metallic
sheen) or gable-top cartons (stacked two high where they fit). The camera looks at it off
axis (a perspective warp stronger than the training renderer's), the light falls off across
the frame, and the picture may be out of focus. Silhouettes are filled polygons built from the
shape's outline; shading is per column across each item.

Locations are ``W{section}-{shelf}`` (shelf 1 the lowest): the polygon from the underside of
the board above down to the bottom of the item's own board, warped with the image.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from simulators.camera.foreign.scene import Canvas, Float, ForeignShelf, Mask, Span, jpeg, quad
from simulators.camera.render import Bin

WIDTH, HEIGHT = 960, 544
KINDS = ("bottle", "can", "carton")


def render(rng: np.random.Generator) -> ForeignShelf:
    """One wooden shelf image with its truth (see the module docstring)."""
    sections = int(rng.integers(2, 4))
    shelves = int(rng.choice([2, 3, 3, 4]))
    canvas = Canvas.blank(HEIGHT, WIDTH)
    _wall(rng, canvas.image)
    panel = int(rng.integers(16, 28))
    board = int(rng.integers(16, 24))
    top = int(rng.integers(10, 30))
    pitch = (HEIGHT - top - board) / shelves
    inner = (WIDTH - panel * (sections + 1)) / sections
    bins = []
    wood = _wood_colour(rng)
    for s in range(sections + 1):
        x = round(s * (inner + panel))
        _grain(rng, canvas.image, (x, 0, panel, HEIGHT), wood, vertical=True)
    for level in range(shelves):
        floor = round(top + (shelves - level) * pitch)
        ceiling = round(top + (shelves - level - 1) * pitch) + (board if level < shelves - 1 else 0)
        _grain(rng, canvas.image, (0, floor, WIDTH, board), wood, vertical=False)
        for s in range(sections):
            x1 = round(panel + s * (inner + panel))
            name = f"W{s + 1}-{level + 1}"
            _fill_section(rng, canvas, name, Span(x1, x1 + int(inner), ceiling, floor))
            bins.append(
                Bin(
                    name,
                    f"{name}-{rng.integers(1_000_000):06d}",
                    0,
                    quad(x1, ceiling, x1 + inner, floor + board),
                )
            )
    return _camera(rng, canvas, bins)


def _wall(rng: np.random.Generator, image: Float) -> None:
    top = rng.uniform(120, 230, 3)
    bottom = top * rng.uniform(0.6, 0.95)
    t = np.linspace(0, 1, image.shape[0], dtype=np.float32)[:, None, None]
    image[:] = top * (1 - t) + bottom * t


def _wood_colour(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    tone = rng.uniform(0.5, 1.1)
    return np.array([60, 110, 165]) * tone + rng.uniform(-15, 15, 3)


def _grain(
    rng: np.random.Generator,
    image: Float,
    board: tuple[int, int, int, int],
    colour: npt.NDArray[np.float64],
    *,
    vertical: bool,
) -> None:
    """Fill a board (``x, y, w, h``) with wood grain: wavy stripes along its length."""
    x, y, w, h = board
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    along, across = (ys, xs) if vertical else (xs, ys)
    wave = np.sin(along / rng.uniform(30, 90) + rng.uniform(0, 6)) * rng.uniform(1, 4)
    stripes = 0.88 + 0.12 * np.sin((across + wave) * rng.uniform(0.6, 1.4))
    edge = 1.0 - 0.25 * (np.abs(across - across.max() / 2) / max(float(across.max()), 1.0))
    patch = colour[None, None, :] * (stripes * edge)[..., None]
    image[y : y + h, x : x + w] = patch[: image.shape[0] - y, : image.shape[1] - x]


def _fill_section(rng: np.random.Generator, canvas: Canvas, name: str, span: Span) -> None:
    """One product in a single row along the board (cartons stacked where two fit)."""
    x1, x2, ceiling, floor = span
    if rng.random() < 0.1:
        return
    kind = KINDS[int(rng.integers(len(KINDS)))]
    clearance = floor - ceiling - 8
    w, h = _size(rng, kind, clearance)
    gap = int(rng.integers(1, 7))
    capacity = max((x2 - x1 - 6) // (w + gap), 0)
    count = round(capacity * rng.uniform(0.3, 1.0)) if rng.random() < 0.4 else capacity
    layers = 2 if kind == "carton" and 2 * h + 4 <= clearance and rng.random() < 0.5 else 1
    mask, colours = _item(rng, kind, w, h)
    x = x1 + int(rng.integers(3, 3 + max(x2 - x1 - 6 - count * (w + gap), 0) + 1))
    for _ in range(count):
        for layer in range(layers):
            jitter = rng.uniform(0.92, 1.06, 3).astype(np.float32)
            canvas.paint(x, floor - (layer + 1) * h, mask, colours * jitter, name)
        x += w + gap


def _size(rng: np.random.Generator, kind: str, clearance: int) -> tuple[int, int]:
    if kind == "bottle":
        h = int(min(rng.uniform(0.55, 0.95) * clearance, 150))
        return max(int(h * rng.uniform(0.22, 0.36)), 14), h
    if kind == "can":
        w = int(rng.uniform(26, 50))
        return w, int(min(w * rng.uniform(1.1, 1.9), clearance * 0.9))
    w = int(rng.uniform(28, 60))
    return w, int(min(w * rng.uniform(1.2, 2.4), clearance * 0.9))


def _item(rng: np.random.Generator, kind: str, w: int, h: int) -> tuple[Mask, Float]:
    """The silhouette and colours of one product, its outline filled as a polygon."""
    outline = {"bottle": _bottle, "can": _can, "carton": _carton}[kind](rng, w, h)
    mask8 = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask8, [np.round(outline).astype(np.int32)], 1)
    body = rng.uniform(30, 235, 3).astype(np.float32)
    xs = (np.arange(w, dtype=np.float32) + 0.5) / w
    if kind == "carton":
        shade = 0.8 + 0.25 * (xs < rng.uniform(0.5, 0.8))
    else:  # a cylinder: darker at the sides, a highlight off centre
        shade = 0.45 + 0.55 * np.sin(np.pi * xs) ** 0.7
        shade += 0.5 * np.exp(-(((xs - rng.uniform(0.25, 0.4)) / 0.06) ** 2))
    colours = np.broadcast_to(body, (h, w, 3)) * shade[None, :, None]
    colours = np.array(colours, np.float32)
    _label(rng, colours, kind, h)
    return mask8.astype(bool), colours


def _label(rng: np.random.Generator, colours: Float, kind: str, h: int) -> None:
    """A paper label band with lines of 'text' across the body."""
    low, high = {"bottle": (0.55, 0.85), "can": (0.3, 0.75), "carton": (0.35, 0.8)}[kind]
    y1, y2 = int(h * low), int(h * high)
    paper = rng.uniform(40, 255, 3).astype(np.float32)
    w = colours.shape[1]
    profile = colours[y1:y2].mean(axis=2, keepdims=True) / max(float(colours.mean()), 1.0)
    colours[y1:y2] = paper * np.clip(profile, 0.4, 1.3)
    ink = rng.uniform(0, 90, 3).astype(np.float32)
    for row in range(y1 + 3, y2 - 2, int(rng.integers(4, 8))):
        length = int(w * rng.uniform(0.3, 0.8))
        start = int(rng.integers(1, max(w - length, 2)))
        colours[row, start : start + length] = ink


def _bottle(rng: np.random.Generator, w: int, h: int) -> npt.NDArray[np.float64]:
    """Outline of a bottle: body, shoulders curving in to the neck, a wider cap."""
    neck = w * rng.uniform(0.3, 0.45)
    shoulder = h * rng.uniform(0.35, 0.5)
    neck_base = h * rng.uniform(0.14, 0.24)
    cap = h * rng.uniform(0.05, 0.09)
    cx = (w - 1) / 2
    inset = cx - neck / 2
    left = [(0.0, h - 1.0), (0.0, shoulder)]
    # a round shoulder: tangent to the body, then to the neck
    left += [
        (
            inset * (1 - math.cos(t * math.pi / 2)),
            shoulder - (shoulder - neck_base) * math.sin(t * math.pi / 2),
        )
        for t in np.linspace(0, 1, 9)[1:]
    ]
    left += [(inset, cap), (inset - 1.5, cap), (inset - 1.5, 0.0)]
    right = [(w - 1 - x, y) for x, y in reversed(left)]
    return np.array(left + right, np.float64)


def _can(rng: np.random.Generator, w: int, h: int) -> npt.NDArray[np.float64]:
    """Outline of a can: straight sides between the top and bottom elliptic rims."""
    rim = min(w * rng.uniform(0.12, 0.2), h / 6)
    cx = rx = (w - 1) / 2
    top = [
        (cx + rx * math.cos(t), rim + rim * math.sin(t)) for t in np.linspace(np.pi, 2 * np.pi, 12)
    ]
    bottom = [
        (cx + rx * math.cos(t), h - 1 - rim + rim * math.sin(t)) for t in np.linspace(0, np.pi, 12)
    ]
    return np.array(top + bottom, np.float64)


def _carton(rng: np.random.Generator, w: int, h: int) -> npt.NDArray[np.float64]:
    """Outline of a gable-top carton: a box, a roof and the sealed fin on top."""
    fin = h * rng.uniform(0.03, 0.06)
    eaves = h * rng.uniform(0.14, 0.24)
    cx = (w - 1) / 2
    return np.array(
        [
            (0, h - 1),
            (0, eaves),
            (cx - w * 0.2, fin),
            (cx - w * 0.2, 0),
            (cx + w * 0.2, 0),
            (cx + w * 0.2, fin),
            (w - 1, eaves),
            (w - 1, h - 1),
        ],
        np.float64,
    )


def _camera(rng: np.random.Generator, canvas: Canvas, bins: list[Bin]) -> ForeignShelf:
    """Perspective, light falloff, defocus, noise and JPEG; boxes follow the warp."""
    corners = np.array([[0, 0], [WIDTH, 0], [WIDTH, HEIGHT], [0, HEIGHT]], np.float32)
    inward = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * [WIDTH, HEIGHT] * 0.045
    shift = inward + rng.uniform(-0.045, 0.045, (4, 2)) * [WIDTH, HEIGHT]
    warp = _homography(corners, (corners + shift).astype(np.float32))
    image = cv2.warpPerspective(
        canvas.image, warp, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REPLICATE
    )
    ids = cv2.warpPerspective(
        canvas.ids.astype(np.float32), warp, (WIDTH, HEIGHT), flags=cv2.INTER_NEAREST
    ).astype(np.int32)
    keep = []
    for k in range(len(canvas.boxes)):
        rows, cols = np.nonzero(ids == k + 1)
        if rows.size:
            canvas.boxes[k] = (
                float(cols.min()),
                float(rows.min()),
                float(cols.max() + 1),
                float(rows.max() + 1),
            )
            keep.append(k)
    for b in bins:
        b.polygon = _apply(warp, b.polygon)
    image = _light(rng, np.asarray(image, np.float32))
    if rng.random() < 0.6:
        sigma = float(rng.uniform(0.6, 2.0))
        image = np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), np.float32)
    image += rng.normal(0, rng.uniform(1, 5), image.shape).astype(np.float32)
    final = jpeg(np.clip(image, 0, 255).astype(np.uint8), int(rng.integers(70, 95)))
    canvas.ids = ids
    return canvas.finish(final, bins)


def _homography(
    src: npt.NDArray[np.float32], dst: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """The 3 x 3 projective map taking the four ``src`` points to ``dst`` (direct solve)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src.tolist(), dst.tolist(), strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows, np.float64), np.array(rhs, np.float64))
    return np.append(h, 1.0).reshape(3, 3)


def _apply(
    warp: npt.NDArray[np.float64], points: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    ones = np.ones((len(points), 1))
    mapped = np.hstack([points, ones]) @ warp.T
    return (mapped[:, :2] / mapped[:, 2:]).astype(np.float32)


def _light(rng: np.random.Generator, image: Float) -> Float:
    """A light source off to one side: brightness falls off with the distance to it."""
    lx, ly = rng.uniform(-0.3, 1.3) * WIDTH, rng.uniform(-0.5, 0.5) * HEIGHT
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    distance = np.hypot(xs - lx, ys - ly) / math.hypot(WIDTH, HEIGHT)
    gain = rng.uniform(0.9, 1.35) * (1 - rng.uniform(0.3, 0.6) * distance)
    return np.asarray(image * gain[..., None], np.float32)
