"""The varied shelf scene: shelving of four kinds, sections of products, tags and occluders.

The scene canvas is the frame plus a margin on every side (:data:`MARGIN`), so the camera's
view (:mod:`.optics`) never looks past the painted scene, and the sections at the sides can be
cut by the frame: those are the partial items at the frame's edge. Sections that lie wholly in
the frame are the storage locations; the rest hold items outside every location.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from simulators.camera.varied.products import KINDS, STACKABLE, Polygon, make_look, paint
from simulators.camera.varied.textures import Float, background, colour, texture

SHELVES = ("wood", "metal", "wire", "racking")

MARGIN = (0.08, 0.07)
"""Scene margin around the frame window, as a fraction of the frame's width and height."""


@dataclass(slots=True)
class Placed:
    """One item in the scene: its outline in scene pixels and its section's name."""

    outline: Polygon
    section: str
    """The location name, or "" for a section that is not wholly in the frame."""
    ceiling: float
    """The underside of the shelf above the item's section."""
    kind: str
    """Its product kind (:data:`~.products.KINDS`)."""


@dataclass(slots=True)
class Section:
    """The space of one bin: between two uprights, from the shelf above to its own."""

    name: str
    x1: float
    x2: float
    ceiling: float
    floor: float
    board: float
    """Thickness of the shelf board below ``floor``."""

    def polygon(self, points_per_side: int = 6) -> Polygon:
        """The bin as a person would draw it: ceiling to the bottom of its own board, with
        points along each side so that a lens's bending can be followed."""
        corners = [
            (self.x1, self.ceiling), (self.x2, self.ceiling),
            (self.x2, self.floor + self.board), (self.x1, self.floor + self.board),
        ]  # fmt: skip
        steps = np.linspace(0, 1, points_per_side, endpoint=False)
        points = [
            (ax + (bx - ax) * t, ay + (by - ay) * t)
            for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1], strict=True)
            for t in steps
        ]
        return np.asarray(points, np.float32)


@dataclass(slots=True)
class Scene:
    """A painted scene and what is in it."""

    canvas: Float
    window: tuple[float, float]
    """Top-left of the frame in scene pixels."""
    shelf: str
    """The shelving (:data:`SHELVES`)."""
    sections: list[Section] = field(default_factory=list)
    items: list[Placed] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Fill:
    """How full bins are and what they hold."""

    max_items: int
    empty: float
    half: float
    back_rows: float
    mixed: float
    occlusion: float


def build(rng: np.random.Generator, size: tuple[int, int], fill: Fill, prefix: str) -> Scene:
    """Paint one random scene for a frame of ``size`` (width, height)."""
    w, h = size
    mx, my = int(w * MARGIN[0]), int(h * MARGIN[1])
    sw, sh = w + 2 * mx, h + 2 * my
    canvas = background(rng, sh, sw)
    kind = SHELVES[int(rng.integers(len(SHELVES)))]
    scene = Scene(canvas, (float(mx), float(my)), kind)
    bays = int(rng.integers(1, 4))
    levels = int(rng.integers(2, 5))
    upright = int(rng.integers(8, 22))
    board = int(rng.integers(8, 18))
    bay_w = w / (bays + float(rng.uniform(0.0, 0.7))) - upright
    first = mx + float(rng.uniform(-0.6, 0.3)) * (bay_w + upright)
    while first > upright:
        first -= bay_w + upright
    # Mostly the whole unit is in the frame; now and then the frame cuts its top or bottom.
    top = my + float(rng.uniform(-0.06, 0.05)) * h
    bottom = my + h - float(rng.uniform(-0.06, 0.08)) * h
    level_h = (bottom - top) / levels - board
    style = _Style.random(rng, kind)
    _back_panels(rng, scene.canvas, style)
    x, visible = first, 0
    while x < sw:
        x1, x2 = x + upright, x + upright + bay_w
        inside = x1 >= mx and x2 <= mx + w
        visible += inside
        for level in range(levels):
            ceiling = top + level * (level_h + board)
            floor = ceiling + level_h
            name = f"{prefix}{visible:02d}-L{levels - level}" if inside else ""
            section = Section(name, x1, x2, ceiling, floor, board)
            if inside:
                scene.sections.append(section)
            _fill_section(rng, scene, section, fill, style)
        x = x2
    for level in range(levels):
        floor = top + level * (level_h + board) + level_h
        style.board(rng, scene.canvas, floor, board)
        _price_tags(rng, scene.canvas, floor, board)
    x = first
    while x < sw:
        style.upright(rng, scene.canvas, x, upright)
        x += upright + bay_w
    if rng.random() < fill.occlusion:
        _occlude(rng, scene)
    return scene


@dataclass(frozen=True, slots=True)
class _Style:
    kind: str
    board_colour: npt.NDArray[np.float32]
    upright_colour: npt.NDArray[np.float32]

    @classmethod
    def random(cls, rng: np.random.Generator, kind: str) -> _Style:
        if kind == "wood":
            board = np.array([60, 110, 160], np.float32) * float(rng.uniform(0.6, 1.2))
            return cls(kind, board, board * 0.8)
        if kind == "metal":
            grey = float(rng.uniform(120, 230))
            return cls(kind, np.full(3, grey, np.float32), np.full(3, grey * 0.8, np.float32))
        if kind == "wire":
            grey = float(rng.uniform(90, 220))
            return cls(kind, np.full(3, grey, np.float32), np.full(3, grey * 0.7, np.float32))
        return cls(kind, np.array([20, 120, 230], np.float32) * float(rng.uniform(0.7, 1.1)),
                   colour(rng))  # fmt: skip

    def board(self, rng: np.random.Generator, canvas: Float, floor: float, thickness: int) -> None:
        y1, y2 = int(floor), int(floor) + thickness
        region = canvas[max(y1, 0) : max(y2, 0)]
        if self.kind == "wire":
            # A wire shelf: a front bar and a grid you can see the back panel through.
            region *= 0.6
            for y in range(y1, y2, 3):
                cv2.line(canvas, (0, y), (canvas.shape[1], y), self.board_colour.tolist(), 1)
            for x in range(0, canvas.shape[1], 9):
                cv2.line(canvas, (x, y1), (x, y2), self.board_colour.tolist(), 1)
            bar = self.board_colour.tolist()
            cv2.rectangle(canvas, (0, y1), (canvas.shape[1], y1 + 2), bar, -1)
            return
        region[:] = self.board_colour
        if self.kind == "wood":
            for y in range(y1, y2):
                wave = np.sin(np.arange(canvas.shape[1]) / float(rng.uniform(8, 40)) + y)
                canvas[y, :] *= (0.9 + 0.1 * wave)[:, None].astype(np.float32)
        elif self.kind == "metal":
            rail = (self.board_colour * 0.85).tolist()
            cv2.rectangle(canvas, (0, y1 + 2), (canvas.shape[1], y2 - 2), rail, -1)
        else:  # racking: a step beam
            cv2.line(canvas, (0, y1 + 1), (canvas.shape[1], y1 + 1), (240, 240, 240), 1)
        if y2 < canvas.shape[0]:  # the board's shadow on what is below
            shadow = canvas[y2 : min(y2 + thickness, canvas.shape[0])]
            shadow *= np.linspace(0.6, 1.0, len(shadow), dtype=np.float32)[:, None, None]

    def upright(self, rng: np.random.Generator, canvas: Float, x: float, width: int) -> None:
        x1, x2 = int(x), int(x) + width
        canvas[:, max(x1, 0) : max(x2, 0)] = self.upright_colour
        if self.kind in ("racking", "metal"):
            for y in range(4, canvas.shape[0], int(rng.integers(14, 26))):
                cv2.rectangle(canvas, (x1 + width // 3, y), (x2 - width // 3, y + 5),
                              (25, 25, 25), -1)  # fmt: skip
        elif self.kind == "wood":
            canvas[:, max(x1, 0) : max(x1 + 2, 0)] *= 0.7


def _back_panels(rng: np.random.Generator, canvas: Float, style: _Style) -> None:
    if style.kind in ("wood", "metal") and rng.random() < 0.7:
        canvas *= float(rng.uniform(0.35, 0.8))
        if style.kind == "wood":
            canvas += style.board_colour * 0.3


def _fill_section(
    rng: np.random.Generator, scene: Scene, section: Section, fill: Fill, style: _Style
) -> None:
    """Products in one bin: one SKU (or two side by side), stacked in layers where they stack."""
    roll = rng.random()
    if roll < fill.empty:
        return
    room_w = section.x2 - section.x1 - 4
    room_h = section.floor - section.ceiling - 4
    if room_w < 20 or room_h < 16:
        return
    skus = 2 if rng.random() < fill.mixed else 1
    kinds = [KINDS[int(rng.integers(len(KINDS)))] for _ in range(skus)]
    if style.kind != "wire" and "blister" in kinds and skus == 1 and rng.random() < 0.5:
        kinds = ["box"]
    share = room_w / skus
    x = section.x1 + 2
    full = roll >= fill.empty + fill.half
    for index, kind in enumerate(kinds):
        width = int(np.clip(rng.uniform(0.06, 0.3) * room_w, 16, min(90, share - 2)))
        look = make_look(rng, f"VAR-{index}", kind, width)
        w, h = look.width, look.height
        if h > room_h - 2:
            w, h = max(8, int(w * (room_h - 2) / h)), int(room_h - 2)
        gap = int(rng.integers(0, 6))
        cols = max(1, int(share - 2) // (w + gap))
        layers = max(1, int(room_h - 2) // (h + gap)) if kind in STACKABLE else 1
        capacity = min(cols * layers, fill.max_items // skus)
        count = round(capacity * (rng.uniform(0.8, 1.0) if full else rng.uniform(0.2, 0.7)))
        stacks = _stacks(rng, cols, layers, count)
        patch, outline = paint(rng, look, w, h)
        start = x + int(rng.integers(0, max(1, int(share - cols * (w + gap)))))
        hanging = kind == "blister"
        if rng.random() < fill.back_rows and not hanging:
            _back_row(rng, scene.canvas, patch, stacks, start=start, floor=section.floor, gap=gap)
        for col, stack in enumerate(stacks):
            for layer in range(stack):
                bx = start + col * (w + gap) + (int(rng.integers(-1, 2)) if gap > 2 else 0)
                if hanging:
                    by = section.ceiling + 6
                    cv2.line(scene.canvas, (int(bx + w / 2), int(section.ceiling)),
                             (int(bx + w / 2), int(by + 4)), (200, 200, 200), 2)  # fmt: skip
                else:
                    by = section.floor - (layer + 1) * (h + gap) + gap
                    _contact_shadow(scene.canvas, bx, by + h, w)
                tone = float(rng.uniform(0.9, 1.1))
                _paste(scene.canvas, patch, int(bx), int(by), tone)
                offset = np.array([int(bx), int(by)], np.float32)
                scene.items.append(Placed(outline + offset, section.name, section.ceiling, kind))
        x += share


def _stacks(rng: np.random.Generator, cols: int, layers: int, count: int) -> list[int]:
    """How many items stand in each column: packed from one side, or spread at random."""
    heights = [0] * cols
    if count >= cols * layers:
        return [layers] * cols
    if rng.random() < 0.5:
        order = list(range(cols))
        if rng.random() < 0.5:
            order.reverse()
        for col in order:
            heights[col] = min(layers, count)
            count -= heights[col]
        return heights
    for _ in range(count):
        open_cols = [c for c in range(cols) if heights[c] < layers]
        heights[open_cols[int(rng.integers(len(open_cols)))]] += 1
    return heights


def _back_row(
    rng: np.random.Generator, canvas: Float, patch: Float, stacks: list[int], *,
    start: float, floor: float, gap: int,
) -> None:  # fmt: skip
    """A second row behind the front one: only a sliver above each front stack shows, less
    than a quarter of an item, so it is not labelled (the labelling rule)."""
    h, w = patch.shape[:2]
    rise = int(h * rng.uniform(0.05, 0.2))
    shift = int(w * rng.uniform(-0.3, 0.3))
    for col, stack in enumerate(stacks):
        if stack == 0:
            continue
        bx = int(start + col * (w + gap) + shift)
        by = int(floor - stack * (h + gap) + gap - rise)
        _paste(canvas, patch, bx, by, 0.55)


def _paste(canvas: Float, patch: Float, x: int, y: int, tone: float) -> None:
    h, w = patch.shape[:2]
    ch, cw = canvas.shape[:2]
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, cw), min(y + h, ch)
    if x2 <= x1 or y2 <= y1:
        return
    part = patch[y1 - y : y2 - y, x1 - x : x2 - x]
    alpha = part[..., 3:4]
    region = canvas[y1:y2, x1:x2]
    region[:] = region * (1 - alpha) + part[..., :3] * tone * alpha


def _contact_shadow(canvas: Float, x: float, y: float, w: int) -> None:
    y1, y2 = int(y) - 3, int(y) + 1
    x1, x2 = int(x) - 2, int(x + w) + 3
    if y2 > 0 and x2 > 0:
        canvas[max(y1, 0) : y2, max(x1, 0) : x2] *= 0.7


def _price_tags(rng: np.random.Generator, canvas: Float, floor: float, board: int) -> None:
    """Price tags and shelf talkers on the board's front: item-like shapes that are not items."""
    x = int(rng.integers(0, 80))
    y1 = int(floor) + 1
    while x < canvas.shape[1]:
        tw = int(rng.integers(20, 50))
        paper = (235.0, 235.0, 235.0) if rng.random() < 0.7 else (60.0, 220.0, 250.0)
        y2 = y1 + board - 2
        if rng.random() < 0.2:  # a talker hanging below the board
            y2 = min(y1 + board + int(rng.integers(10, 30)), canvas.shape[0])
            x2 = min(x + tw, canvas.shape[1])
            if y2 > y1 and x2 > x:
                canvas[y1:y2, x:x2] = texture(rng, y2 - y1, x2 - x)
        else:
            tag = np.empty((max(1, y2 - y1), tw, 3), np.uint8)
            tag[:] = paper
            cv2.putText(tag, f"{int(rng.integers(1, 99))}.99", (2, tag.shape[0] - 1),
                        cv2.FONT_HERSHEY_PLAIN, 0.6, (20, 20, 20), 1)  # fmt: skip
            region = canvas[y1 : y1 + tag.shape[0], x : x + tw]
            region[:] = tag[: region.shape[0], : region.shape[1]]
        x += tw + int(rng.integers(30, 180))


def _occlude(rng: np.random.Generator, scene: Scene) -> None:
    """Cables, poles, hanging signs and plastic strips in front: each hides less than a third
    of any item it crosses (an item hidden more than that would be a guess, not a label)."""
    canvas = scene.canvas
    h, w = canvas.shape[:2]
    for _ in range(int(rng.integers(1, 4))):
        roll = rng.random()
        tint = colour(rng).tolist()
        if roll < 0.35:  # a cable or a thin pole, top to bottom
            x = int(rng.integers(0, w))
            cv2.line(canvas, (x, 0), (x + int(rng.integers(-60, 61)), h), tint,
                     int(rng.integers(2, 7)), cv2.LINE_AA)  # fmt: skip
        elif roll < 0.7 and (tops := _stack_tops(scene.items)):  # a sign over one stack
            item = tops[int(rng.integers(len(tops)))]
            x1, y1 = item.outline.min(axis=0)
            x2, y2 = item.outline.max(axis=0)
            cover = int(y1 + (y2 - y1) * float(rng.uniform(0.1, 0.3)))
            inset = (x2 - x1) * float(rng.uniform(0.1, 0.3))
            top, left = max(0, int(item.ceiling)), max(0, int(x1 + inset))
            right = min(w, int(x2 - inset))
            if cover > top and right > left:
                canvas[top:cover, left:right] = texture(rng, cover - top, right - left)
        else:  # a translucent plastic strip
            x = int(rng.integers(0, w))
            band = canvas[:, max(x, 0) : x + int(rng.integers(15, 45))]
            band[:] = band * 0.75 + 255 * 0.25


def _stack_tops(items: list[Placed]) -> list[Placed]:
    """The items with nothing standing on them (a sign over one covers no item above)."""
    boxes = np.array([[*p.outline.min(axis=0), *p.outline.max(axis=0)] for p in items])
    if not len(boxes):
        return []
    tops = []
    for index, (x1, y1, x2, _y2) in enumerate(boxes):
        above = (boxes[:, 3] <= y1 + 2) & (boxes[:, 3] >= y1 - 40)
        above &= (boxes[:, 0] < x2) & (boxes[:, 2] > x1)
        above[index] = False
        if not above.any():
            tops.append(items[index])
    return tops
