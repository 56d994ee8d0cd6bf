"""Product shapes for the varied renderer: one silhouette polygon and one painted patch per item.

Every kind is drawn from its outline: a polygon in the item's own pixels (origin at the top
left of its bounding box). The polygon is the item's whole silhouette (cap, neck, lid, hook
hole and film included), so its bounds are the item's box: the labelling rule of
:mod:`simulators.camera.varied` follows from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from simulators.camera.varied.textures import Float, colour, texture

Polygon = npt.NDArray[np.float32]
"""(K, 2) x, y points."""

KINDS = (
    "box", "carton", "can", "bottle", "jar", "pouch", "blister", "multipack", "tray", "irregular",
)  # fmt: skip

STACKABLE = frozenset({"box", "carton", "can", "jar", "multipack", "tray"})
"""Kinds that stand in layers on top of each other."""

ASPECT = {
    "box": (0.6, 1.6), "carton": (1.4, 2.4), "can": (1.2, 1.9), "bottle": (2.2, 3.6),
    "jar": (1.0, 1.5), "pouch": (1.2, 1.8), "blister": (1.3, 1.9), "multipack": (0.5, 0.9),
    "tray": (0.35, 0.6), "irregular": (0.6, 1.4),
}  # fmt: skip
"""Height / width range of each kind."""


@dataclass(frozen=True, slots=True)
class Look:
    """How one SKU looks: its kind, size in scene pixels, colours and label."""

    sku: str
    kind: str
    width: int
    height: int
    body: tuple[float, float, float]
    accent: tuple[float, float, float]
    label: Float
    outline: bool
    gloss: float


def make_look(rng: np.random.Generator, sku: str, kind: str, width: int) -> Look:
    """A random look for ``sku`` of ``kind``, ``width`` pixels wide."""
    low, high = ASPECT[kind]
    height = max(12, int(width * rng.uniform(low, high)))
    return Look(
        sku=sku,
        kind=kind,
        width=width,
        height=height,
        body=tuple(float(c) for c in colour(rng)),  # type: ignore[arg-type]
        accent=tuple(float(c) for c in colour(rng, dark=bool(rng.random() < 0.5))),  # type: ignore[arg-type]
        label=texture(rng, 64, 64),
        outline=bool(rng.random() < 0.6),
        gloss=float(rng.uniform(0.0, 0.6)),
    )


def silhouette(kind: str, w: int, h: int, rng: np.random.Generator | None = None) -> Polygon:
    """The outline of an item of ``kind`` filling a ``w`` x ``h`` box."""
    if kind == "irregular":
        generator = rng if rng is not None else np.random.default_rng(w * 1000 + h)
        angles = np.sort(generator.uniform(0, 2 * math.pi, 11))
        radii = generator.uniform(0.7, 1.0, 11)
        points = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
        points -= points.min(axis=0)
        points /= np.maximum(points.max(axis=0), 1e-6)
        return (points * [w, h]).astype(np.float32)
    outline = _OUTLINES.get(kind)
    if outline is None:  # box, blister, tray: a rectangle (a tray's film stays inside)
        return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    return outline(float(w), float(h))


def _can(w: float, h: float, *, bumps: bool = False) -> Polygon:
    """A cylinder seen from the front: elliptic rims; a multipack shows its cans' tops."""
    e = max(1.0, 0.06 * h)
    top = _arc((w / 2, e), (w / 2, e), (math.pi, 2 * math.pi))
    bottom = _arc((w / 2, h - e), (w / 2, e), (0, math.pi))
    if bumps:
        n = max(2, round(w / (0.6 * h)) if h else 2)
        tops = [
            _arc(((i + 0.5) * w / n, e * 1.2), (w / (2 * n), e * 1.2), (math.pi, 2 * math.pi))
            for i in range(n)
        ]
        top = np.concatenate(tops)
    return _poly([top, bottom])


def _bottle(w: float, h: float) -> Polygon:
    cap, neck, shoulder = 0.3 * w, 0.16 * h, 0.32 * h
    lip = 0.07 * h
    left, right = (w - cap) / 2, (w + cap) / 2
    return _poly([
        [[left + 1, 0], [right - 1, 0], [right, lip], [right, neck]],
        _arc((right, shoulder), (w - right, shoulder - neck), (1.5 * math.pi, 2 * math.pi), 8),
        [[w, h - 2], [w - 2, h], [2, h], [0, h - 2]],
        _arc((left, shoulder), (left, shoulder - neck), (math.pi, 1.5 * math.pi), 8),
        [[left, lip]],
    ])  # fmt: skip


def _jar(w: float, h: float) -> Polygon:
    lid = 0.16 * h
    return _poly([
        [[0.06 * w, 0], [0.94 * w, 0], [0.94 * w, lid], [w, lid + 0.06 * h]],
        [[w, 0.95 * h], [0.95 * w, h], [0.05 * w, h], [0, 0.95 * h], [0, lid + 0.06 * h]],
        [[0.06 * w, lid]],
    ])  # fmt: skip


def _pouch(w: float, h: float) -> Polygon:
    notch = 0.1 * w
    return _poly([
        [[0.08 * w, 0], [0.5 * w - notch, 0], [0.5 * w, 0.04 * h], [0.5 * w + notch, 0]],
        [[0.92 * w, 0], [0.96 * w, 0.5 * h], [w, 0.92 * h], [0.9 * w, h], [0.1 * w, h]],
        [[0, 0.92 * h], [0.04 * w, 0.5 * h]],
    ])  # fmt: skip


def _carton(w: float, h: float) -> Polygon:
    gable = 0.14 * h
    return _poly([[[0, gable], [0.5 * w, 0], [w, gable], [w, h], [0, h]]])


_OUTLINES: dict[str, Callable[[float, float], Polygon]] = {
    "can": _can,
    "multipack": lambda w, h: _can(w, h, bumps=True),
    "bottle": _bottle,
    "jar": _jar,
    "pouch": _pouch,
    "carton": _carton,
}


def paint(rng: np.random.Generator, look: Look, w: int, h: int) -> tuple[Float, Polygon]:
    """The item's colours (``(h, w, 4)``: BGR and coverage 0..1) and its outline."""
    outline = silhouette(look.kind, w, h, rng)
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [np.round(outline).astype(np.int32)], 1.0, lineType=cv2.LINE_AA)
    body = np.empty((h, w, 3), np.float32)
    body[:] = np.asarray(look.body, np.float32)
    _label(look, body, w, h)
    _shade(rng, look, body, w, h)
    if look.outline:
        edge = (np.asarray(look.body) * 0.4).tolist()
        cv2.polylines(body, [np.round(outline).astype(np.int32)], True, edge, 1, cv2.LINE_AA)
    return np.concatenate([np.clip(body, 0, 255), mask[..., None]], axis=2), outline


def _label(look: Look, body: Float, w: int, h: int) -> None:
    kind = look.kind
    if kind in ("can", "jar", "bottle"):
        top = {"can": 0.2, "jar": 0.35, "bottle": 0.45}[kind]
        box = (0, int(top * h), w, int((0.85 if kind != "can" else 0.8) * h))
        if kind == "jar":
            body[: int(0.16 * h)] = np.asarray(look.accent)
        if kind == "bottle":
            body[: int(0.08 * h)] = np.asarray(look.accent)
    elif kind == "blister":
        body[:] = np.asarray(look.label.mean(axis=(0, 1)))
        box = (int(0.1 * w), int(0.18 * h), int(0.9 * w), int(0.45 * h))
        hole = (w // 2, max(2, int(0.07 * h)))
        cv2.ellipse(body, hole, (max(1, w // 8), max(1, h // 30)), 0, 0, 360, (25, 25, 25), -1)
        bubble = np.asarray(look.accent) * 0.7 + 70
        cv2.rectangle(body, (int(0.2 * w), int(0.52 * h)), (int(0.8 * w), int(0.92 * h)),
                      bubble.tolist(), -1)  # fmt: skip
    elif kind in ("multipack", "tray"):
        box = (0, int(0.35 * h), w, int(0.75 * h))
    elif kind == "pouch":
        box = (int(0.15 * w), int(0.25 * h), int(0.85 * w), int(0.75 * h))
    else:
        box = (int(0.1 * w), int(0.2 * h), int(0.9 * w), int(0.8 * h))
    x1, y1, x2, y2 = box
    if x2 - x1 >= 2 and y2 - y1 >= 2:
        body[y1:y2, x1:x2] = cv2.resize(look.label, (x2 - x1, y2 - y1))


def _shade(rng: np.random.Generator, look: Look, body: Float, w: int, h: int) -> None:
    """Cylinders shade across, flat faces down; glossy items get a highlight stripe."""
    if look.kind in ("can", "bottle", "jar", "multipack"):
        x = np.linspace(-1, 1, w, dtype=np.float32)
        shade = 0.55 + 0.5 * np.sqrt(np.clip(1 - x**2, 0, 1))
        body *= shade[None, :, None]
    else:
        body *= np.linspace(1.1, 0.8, h, dtype=np.float32)[:, None, None]
    body *= float(rng.uniform(0.9, 1.1))
    if look.gloss > 0.15:
        centre = int(w * rng.uniform(0.2, 0.4))
        half = max(1, w // 14)
        body[:, max(0, centre - half) : centre + half] += 120 * look.gloss


def _arc(
    centre: tuple[float, float], radii: tuple[float, float], span: tuple[float, float], n: int = 10
) -> Polygon:
    t = np.linspace(span[0], span[1], n)
    x = centre[0] + radii[0] * np.cos(t)
    return np.stack([x, centre[1] + radii[1] * np.sin(t)], axis=1).astype(np.float32)


def _poly(parts: list[object]) -> Polygon:
    return np.concatenate([np.asarray(p, np.float32).reshape(-1, 2) for p in parts])
