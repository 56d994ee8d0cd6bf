"""A camera carried along an aisle (a robot cart or a drone), panning across the racking.

The aisle is one long, clean panorama of racking between two bare end walls, rendered once with
exact truth (:func:`render_aisle`). A pass along it is a sequence of windows that move ``step``
pixels per frame (:func:`pan_views`); each window becomes a camera frame with its own lighting,
sensor noise, JPEG and a horizontal motion blur as long as the distance travelled during the
exposure (:func:`pan_frames`).

Coordinates: the aisle x of a pixel is its frame x plus the frame's pose, the panorama x of
the frame's left edge, which the cart reports. A real pose is not exact, so a view keeps what
the pose reports (``offset``) apart from where the camera truly looked (``x``, ``y``): the
vertical wobble of the mount (``jitter``) and odometry noise (``pose_noise``) are never reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from simulators.camera.render import (
    Bin,
    Boxes,
    Image,
    Product,
    RenderSettings,
    ShelfImage,
    finish,
    motion_blur,
    render_shelf,
)

BAY_WIDTH = 480
"""Panorama pixels per bay."""

EXPOSURE = 0.25
"""Share of the frame interval the shutter is open: motion blur is this share of the step."""

FRAME_SETTINGS = RenderSettings(blur=0.0, noise=4.0, lighting=(0.9, 1.1), jpeg_quality=85)
"""What the camera does to each frame by default: a fixed exposure, so lighting varies little."""

_WALL = (118, 122, 126)


@dataclass(frozen=True, slots=True)
class PanView:
    """Where the camera looked for one frame, without the image.

    Attributes:
        index: Frame number from the start of the pass.
        offset: The pose the cart reports: aisle x of the frame's left edge.
        x: Where the left edge truly was (panorama pixels); the camera does not know this.
        y: The true vertical shift of the window (mount wobble); not reported either.
        width: Frame width in pixels.
    """

    index: int
    offset: float
    x: int
    y: int
    width: int


@dataclass(frozen=True, slots=True)
class PanFrame:
    """One camera frame of a pass, with its reported pose and its true position.

    Attributes:
        image: The frame as the camera delivers it (BGR).
        offset: The reported pose: aisle x of the frame's left edge, in panorama pixels.
        index: Frame number from the start of the pass.
        x: True panorama x of the left edge (truth only).
        y: True vertical shift of the window (truth only).
    """

    image: Image
    offset: float
    index: int
    x: int
    y: int

    @property
    def width(self) -> int:
        """Frame width in pixels."""
        return int(self.image.shape[1])


def render_aisle(
    rng: np.random.Generator,
    bays: int = 8,
    settings: RenderSettings | None = None,
    catalogue: list[Product] | None = None,
    *,
    margin: int = BAY_WIDTH,
) -> ShelfImage:
    """Render one aisle of racking as a clean panorama, with truth in panorama coordinates.

    The racking is ``bays * BAY_WIDTH`` pixels wide with a plain end wall of ``margin`` pixels
    on each side, where the cart starts and stops. The default, half a default frame, keeps
    racking in every frame (a camera without a pose needs items in view to tell how it moves)
    while the first and last items are still seen in about half as many frames as the rest; a
    margin of a whole frame width evens that out.

    Args:
        rng: Random source for the scene.
        bays: Bays along the aisle.
        settings: Scene settings (height, levels, fill, occlusion, location prefix); width, bays
            and every camera effect are overridden, since each frame adds its own.
        catalogue: Products to stock; a fresh one when None.
        margin: End wall width on each side, in pixels.

    Returns:
        The panorama with every item's box and every bin in panorama coordinates.
    """
    base = settings or RenderSettings()
    scene = replace(
        base,
        width=bays * BAY_WIDTH,
        bays=bays,
        tilt=0.0,
        blur=0.0,
        noise=0.0,
        lighting=(1.0, 1.0),
        jpeg_quality=0,
    )
    shelf = render_shelf(rng, scene, catalogue)
    image = np.empty((scene.height, scene.width + 2 * margin, 3), dtype=np.uint8)
    image[:] = np.array(_WALL, dtype=np.uint8)
    image[:, margin : margin + scene.width] = shelf.image
    boxes = shelf.boxes + np.array([margin, 0, margin, 0], dtype=np.float32)
    shift = np.array([margin, 0], dtype=np.float32)
    bins = [Bin(b.location, b.sku, b.count, b.polygon + shift) for b in shelf.bins]
    return ShelfImage(image, boxes.astype(np.float32), list(shelf.owners), bins)


def pan_views(
    aisle: ShelfImage,
    *,
    width: int = 960,
    step: float = 24.0,
    rng: np.random.Generator,
    jitter: int = 2,
    pose_noise: float = 0.0,
    frames: int | None = None,
) -> list[PanView]:
    """The camera positions of one pass from the aisle's start to its end, without images.

    Args:
        aisle: The panorama from :func:`render_aisle`.
        width: Frame width in pixels.
        step: Pixels travelled per frame.
        rng: Random source for the unreported pose errors.
        jitter: Largest vertical wobble of the mount, in pixels (not reported).
        pose_noise: Standard deviation of the odometry error, in pixels (not reported).
        frames: Stop after this many frames (a pass cut short); None runs to the end.

    Returns:
        One view per frame; the last one ends exactly at the panorama's right edge.
    """
    offsets = _offsets(int(aisle.image.shape[1]), width, step)
    if frames is not None:
        offsets = offsets[:frames]
    return [
        _view(rng, index, offset, aisle, width=width, jitter=jitter, pose_noise=pose_noise)
        for index, offset in enumerate(offsets)
    ]


def pan_frames(
    aisle: ShelfImage,
    *,
    width: int = 960,
    step: float = 24.0,
    rng: np.random.Generator,
    settings: RenderSettings | None = None,
    jitter: int = 2,
    pose_noise: float = 0.0,
    frames: int | None = None,
) -> list[PanFrame]:
    """Render one pass along the aisle: a frame every ``step`` pixels from start to end.

    Args:
        aisle: The panorama from :func:`render_aisle`.
        width: Frame width in pixels.
        step: Pixels travelled per frame; the motion blur is ``EXPOSURE * step`` long.
        rng: Random source for pose errors, lighting and noise.
        settings: Camera effects per frame (lighting, blur, noise, JPEG); FRAME_SETTINGS if None.
        jitter: Largest vertical wobble of the mount, in pixels (not reported by the pose).
        pose_noise: Standard deviation of the odometry error, in pixels (not reported).
        frames: Stop after this many frames; None runs to the end.

    Returns:
        The frames in order, each with its reported pose and its true position.
    """
    views = pan_views(
        aisle,
        width=width,
        step=step,
        rng=rng,
        jitter=jitter,
        pose_noise=pose_noise,
        frames=frames,
    )
    camera = settings or FRAME_SETTINGS
    return [render_view(rng, aisle, view, step, camera) for view in views]


def pan_provider(
    aisle: ShelfImage,
    width: int = 960,
    step: float = 24.0,
    rng: np.random.Generator | None = None,
    settings: RenderSettings | None = None,
    *,
    jitter: int = 2,
    loop: bool = True,
) -> Callable[[int], tuple[Image, float]]:
    """A frame source for the camera simulator: frame index to (image, reported pose).

    Frames are rendered on demand; the pass loops back to the aisle's start after its end, or
    with ``loop=False`` the cart stays parked at the end (one pass: what one scan should see).

    Args:
        aisle: The panorama from :func:`render_aisle`.
        width: Frame width in pixels.
        step: Pixels travelled per frame.
        rng: Random source for pose errors, lighting and noise; a fresh one when None.
        settings: Camera effects per frame; FRAME_SETTINGS if None.
        jitter: Largest vertical wobble of the mount, in pixels (not reported by the pose).
        loop: Start over after the end of the aisle.

    Returns:
        A function of the frame index (any non-negative integer).
    """
    source = rng or np.random.default_rng()
    camera = settings or FRAME_SETTINGS
    offsets = _offsets(int(aisle.image.shape[1]), width, step)

    def frame(index: int) -> tuple[Image, float]:
        offset = offsets[index % len(offsets) if loop else min(index, len(offsets) - 1)]
        view = _view(source, index, offset, aisle, width=width, jitter=jitter, pose_noise=0.0)
        return render_view(source, aisle, view, step, camera).image, view.offset

    return frame


def render_view(
    rng: np.random.Generator,
    aisle: ShelfImage,
    view: PanView,
    step: float,
    settings: RenderSettings,
) -> PanFrame:
    """Cut one view out of the panorama and pass it through the camera.

    Args:
        rng: Random source for lighting and noise.
        aisle: The panorama.
        view: Where the camera truly looked.
        step: Pixels travelled per frame, for the motion blur.
        settings: Camera effects (see :func:`simulators.camera.render.finish`).

    Returns:
        The frame with the view's reported pose and true position.
    """
    crop = _crop(aisle.image, view.x, view.y, view.width)
    blur = round(EXPOSURE * step)
    if blur > 1:
        crop = np.clip(motion_blur(crop.astype(np.float32), blur), 0, 255).astype(np.uint8)
    image = finish(rng, crop, settings)
    return PanFrame(image, view.offset, view.index, view.x, view.y)


def frame_truth(aisle: ShelfImage, frame: PanFrame | PanView) -> tuple[Boxes, npt.NDArray[np.intp]]:
    """The truth boxes visible in one frame, in that frame's pixel coordinates.

    A box counts as visible when at least half of its area lies inside the frame; it is clipped
    to the frame, as a detector reports an item cut by the frame's edge.

    Args:
        aisle: The panorama with its truth.
        frame: A frame or a view, with its true position.

    Returns:
        The clipped boxes and their indices into ``aisle.boxes`` / ``aisle.owners``.
    """
    height = float(aisle.image.shape[0])
    moved = aisle.boxes.astype(np.float64) - np.array([frame.x, frame.y, frame.x, frame.y])
    limit = np.array([frame.width, height, frame.width, height], dtype=np.float64)
    clipped = np.clip(moved, 0.0, limit)
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = np.flatnonzero(inside >= 0.5 * area)
    return clipped[keep].astype(np.float32), keep.astype(np.intp)


def _offsets(total: int, width: int, step: float) -> list[float]:
    """Left edges from 0 to ``total - width``, ``step`` apart, always ending at the end."""
    if width > total:
        raise ValueError(f"frame width {width} is wider than the aisle ({total} px)")
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    end = float(total - width)
    count = math.floor(end / step + 1e-9) + 1
    offsets = [index * step for index in range(count)]
    if end - offsets[-1] > 1e-6:
        offsets.append(end)
    return offsets


def _view(
    rng: np.random.Generator,
    index: int,
    offset: float,
    aisle: ShelfImage,
    *,
    width: int,
    jitter: int,
    pose_noise: float,
) -> PanView:
    error = float(rng.normal(0.0, pose_noise)) if pose_noise > 0 else 0.0
    limit = int(aisle.image.shape[1]) - width
    x = int(np.clip(round(offset + error), 0, limit))
    y = int(rng.integers(-jitter, jitter + 1)) if jitter > 0 else 0
    return PanView(index, offset, x, y, width)


def _crop(panorama: Image, x: int, y: int, width: int) -> Image:
    """The window at (x, y) of the panorama's height; rows beyond an edge repeat that edge."""
    height = panorama.shape[0]
    rows = np.clip(np.arange(height) + y, 0, height - 1)
    crop: Image = np.ascontiguousarray(panorama[rows, x : x + width])
    return crop
