"""Shelf cameras on the warehouse twin: its truth, rendered as the shipped detector expects.

The twin's aisle is wider and taller than one camera's view, so it is covered by fixed
cameras, each seeing ``bays x levels`` bins (default 2 x 3 at 960 x 544: the geometry the
detector was trained on). Views start at bay 1, 3, 5, ... and level 1, 4, 7, ...; a view that
would run past the aisle's end is moved back so it still shows a full rack (a 5-level aisle
gets levels 1-3 and 3-5). A bin seen by two views is counted by the first of them only (its
ROI is in that camera's config alone), as an installer would assign it. An aisle shorter
than a view (fewer levels than ``levels``) leaves the view's top rows empty, without ROIs.

Each SKU looks the same wherever it stands (:func:`twin_catalogue`, seeded by its GTIN), and
a location with two SKUs shows both side by side: the camera counts their total under the
planogram SKU, the one with more items. Occlusion and tilt belong to the scene; lighting,
blur, noise and JPEG are the camera's (:func:`simulators.camera.render.finish`), fresh per
frame when a :class:`~simulators.camera.server.CameraServer` serves the view.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from simulators.camera.dataset import truth_record
from simulators.camera.render import (
    Bin,
    BinContent,
    Image,
    Product,
    RenderSettings,
    ShelfImage,
    finish,
    make_catalogue,
    render_shelf,
)
from simulators.camera.server import CameraServer, encode_jpeg
from simulators.twin import Twin, TwinSpec

__all__ = [
    "BinContent",
    "CameraView",
    "ViewLayout",
    "camera_views",
    "render_bays",
    "serve_views",
    "twin_catalogue",
    "view_layouts",
]


@dataclass(frozen=True, slots=True)
class ViewLayout:
    """Which bins of one twin aisle a fixed camera sees, and which of them it counts.

    Attributes:
        name: Camera name, ``{zone}-{aisle:02d}-b{first bay:02d}-l{first level}``.
        zone: The twin zone.
        aisle: The aisle number.
        bays: Twin bays in view, left to right.
        levels: Twin levels in view, bottom row first.
        counted: The locations whose ROIs this camera carries.
    """

    name: str
    zone: str
    aisle: int
    bays: tuple[int, ...]
    levels: tuple[int, ...]
    counted: tuple[str, ...]

    def placement(self) -> dict[tuple[int, int], str]:
        """Twin location at each ``(bay, level)`` of the image (1-based, level 1 at the bottom)."""
        return {
            (x, y): f"{self.zone}-{self.aisle:02d}-{bay:02d}-{level}"
            for x, bay in enumerate(self.bays, start=1)
            for y, level in enumerate(self.levels, start=1)
        }


@dataclass(frozen=True, slots=True)
class CameraView:
    """One fixed camera on the twin: what it sees and the truth of what it counts.

    Attributes:
        layout: Where the camera looks.
        shelf: The rendered view through the camera (``shelf.image``) with the truth of every
            bin drawn, including those another camera counts.
        scene: The same view before the camera's lighting, blur, noise and JPEG.
        settings: The render settings (the camera effects a server applies per frame).
        jpeg: ``shelf.image`` as JPEG bytes, what one snapshot returns.
    """

    layout: ViewLayout
    shelf: ShelfImage
    scene: Image
    settings: RenderSettings
    jpeg: bytes

    @property
    def name(self) -> str:
        """The camera's name."""
        return self.layout.name

    @property
    def bins(self) -> list[Bin]:
        """The bins this camera counts (ROI polygon, planogram SKU, true total)."""
        counted = set(self.layout.counted)
        return [b for b in self.shelf.bins if b.location in counted]

    def truth(self) -> dict[str, int]:
        """Items per counted location (every SKU together)."""
        return {b.location: b.count for b in self.bins}

    def planogram(self) -> dict[str, str]:
        """Planogram GTIN per counted location."""
        return {b.location: b.sku for b in self.bins}

    def camera_config(self, url: str, **extra: Any) -> dict[str, Any]:
        """The gateway's ``cameras`` entry for this view: a snapshot camera with its ROIs.

        ROIs are the bins' polygons as rendered: a tilted view can put a corner of an edge
        bin a few pixels past the frame. They are not clipped: a box the detector clips at
        the image's bottom edge must still stand inside its bin's polygon.

        Args:
            url: The snapshot URL of a camera serving the view.
            extra: More keys of the entry (``frames``, ``fps``, ``stall_seconds``, ...).
        """
        rois = [
            {"location": b.location, "sku": b.sku, "polygon": b.polygon.round(2).tolist()}
            for b in self.bins
        ]
        return {"name": self.name, "url": url, "kind": "snapshot", "rois": rois} | extra

    def server(self, fps: float = 10.0, seed: int = 0) -> CameraServer:
        """A camera (not started) serving this view, fresh camera effects on every frame."""
        rng = np.random.default_rng(seed)

        def frame(_index: int) -> tuple[Image, float | None]:
            return finish(rng, self.scene, self.settings), None

        server = CameraServer(frame, fps)
        counted = replace(self.shelf, bins=self.bins)
        server.truth = truth_record(counted, "snapshot.jpg")
        return server


def twin_catalogue(gtins: Iterable[str], seed: int = 0) -> dict[str, Product]:
    """How each GTIN looks: the same product wherever it stands, for a given ``seed``.

    Sizes, colours and label patterns are drawn as in training
    (:func:`~simulators.camera.render.make_catalogue`), from a generator seeded by the GTIN.
    """
    return {
        gtin: replace(make_catalogue(np.random.default_rng([seed, int(gtin)]), 1)[0], sku=gtin)
        for gtin in gtins
    }


def render_bays(
    rng: np.random.Generator,
    placement: Mapping[tuple[int, int], str],
    counts: Mapping[str, Mapping[str, int]],
    catalogue: Mapping[str, Product],
    settings: RenderSettings | None = None,
) -> ShelfImage:
    """Render given contents: ``counts[location]`` items per GTIN at each placed location.

    Args:
        rng: Source of every random choice (packing, racking colours, occlusion, tilt, camera).
        placement: Location at ``(bay, level)`` of the image; bay 1 at the left, level 1 the
            bottom row, within ``settings.bays x settings.levels``. Bins not placed are empty.
        counts: GTIN -> quantity per location (a twin's ``truth_counts()``).
        catalogue: Product per GTIN (see :func:`twin_catalogue`).
        settings: Layout and effects (default :class:`RenderSettings` ()).

    Returns:
        The image and the truth of the placed bins: the total per location, under the
        GTIN with the most items (the first in GTIN order of equals).

    Raises:
        ValueError: A placement lies outside the rack, or a location's items cannot fit.
    """
    settings = settings or RenderSettings()
    outside = [key for key in placement if not (1 <= key[0] <= settings.bays)]
    outside += [key for key in placement if not (1 <= key[1] <= settings.levels)]
    if outside:
        raise ValueError(f"placements outside {settings.bays} x {settings.levels}: {outside}")
    contents = {
        key: BinContent(
            location,
            tuple(
                (catalogue[gtin], qty)
                for gtin, qty in sorted(counts[location].items(), key=lambda kv: (-kv[1], kv[0]))
            ),
        )
        for key, location in placement.items()
    }
    return render_shelf(rng, settings, contents=contents)


def view_layouts(
    spec: TwinSpec, zone: str, aisle: int, bays: int = 2, levels: int = 3
) -> list[ViewLayout]:
    """The fixed cameras covering one aisle (see the module docstring), lower levels first."""
    if not 1 <= aisle <= spec.aisles_per_zone:
        raise ValueError(f"aisle {aisle} is not in 1..{spec.aisles_per_zone}")
    layouts: list[ViewLayout] = []
    counted: set[str] = set()
    for level0 in _starts(spec.levels_per_bay, levels):
        for bay0 in _starts(spec.bays_per_aisle, bays):
            view_bays = tuple(range(bay0, min(bay0 + bays, spec.bays_per_aisle + 1)))
            view_levels = tuple(range(level0, min(level0 + levels, spec.levels_per_bay + 1)))
            names = [
                f"{zone}-{aisle:02d}-{bay:02d}-{level}"
                for level in view_levels
                for bay in view_bays
            ]
            mine = tuple(name for name in names if name not in counted)
            counted.update(mine)
            layouts.append(
                ViewLayout(
                    f"{zone}-{aisle:02d}-b{bay0:02d}-l{level0}",
                    zone,
                    aisle,
                    view_bays,
                    view_levels,
                    mine,
                )
            )
    return layouts


def camera_views(
    twin: Twin,
    zone: str,
    aisles: Sequence[int] | None = None,
    *,
    settings: RenderSettings | None = None,
    seed: int = 0,
) -> Iterator[CameraView]:
    """Render the fixed cameras of a zone's aisles (all by default), one view at a time.

    Args:
        twin: The twin whose truth is shown.
        zone: The zone (``Z1``, ...).
        aisles: Aisle numbers (default: every aisle of the zone).
        settings: Layout and effects; ``bays`` and ``levels`` are the view's size (default
            :class:`RenderSettings` (): 2 x 3 bins at 960 x 544, default occlusion and so on).
        seed: Seed of the product looks and of each view's rendering; a view's image does not
            depend on which other views are rendered.
    """
    if zone not in twin.zones:
        raise ValueError(f"zone {zone!r} is not one of {', '.join(twin.zones)}")
    settings = settings or RenderSettings()
    scene_settings = replace(settings, lighting=(1.0, 1.0), blur=0.0, noise=0.0, jpeg_quality=0)
    catalogue = twin_catalogue(twin.skus, seed)
    counts = twin.truth_counts()
    zone_index = int(zone[1:])
    for aisle in aisles or range(1, twin.spec.aisles_per_zone + 1):
        for layout in view_layouts(twin.spec, zone, aisle, settings.bays, settings.levels):
            rng = np.random.default_rng([seed, zone_index, aisle, layout.bays[0], layout.levels[0]])
            shelf = render_bays(rng, layout.placement(), counts, catalogue, scene_settings)
            scene = shelf.image
            shelf.image, jpeg = _through_camera(rng, scene, settings)
            yield CameraView(layout, shelf, scene, settings, jpeg)


@contextlib.contextmanager
def serve_views(
    views: Sequence[CameraView], *, fps: float = 10.0, seed: int = 0, **extra: Any
) -> Iterator[list[dict[str, Any]]]:
    """Serve each view from its own started :class:`CameraServer`, stopped on exit.

    Yields:
        The gateway's ``cameras`` entries, one per view, in order (snapshot URL, ROIs,
        planogram SKUs; ``extra`` keys added to each).
    """
    with contextlib.ExitStack() as stack:
        entries = []
        for index, view in enumerate(views):
            server = stack.enter_context(view.server(fps, seed + index))
            entries.append(view.camera_config(server.snapshot_url, **extra))
        yield entries


def _through_camera(
    rng: np.random.Generator, scene: Image, settings: RenderSettings
) -> tuple[Image, bytes]:
    """The camera's effects, JPEG'd once: the decoded image and its bytes."""
    raw = finish(rng, scene, replace(settings, jpeg_quality=0))
    jpeg = encode_jpeg(raw, settings.jpeg_quality or 95)
    decoded = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    return np.asarray(decoded, dtype=np.uint8), jpeg


def _starts(total: int, size: int) -> list[int]:
    """First index of each window of ``size`` covering ``1..total``, the last moved back."""
    return sorted({max(1, min(start, total - size + 1)) for start in range(1, total + 1, size)})
