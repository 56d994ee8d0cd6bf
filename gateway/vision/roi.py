"""Regions of interest (storage locations in a camera's view) and counting items per region.

**Assignment.** An item belongs to the region that holds the bottom-centre of its box: the
point where it stands on the shelf. Items stacked in a bin all stand above that bin's beam,
so a tall item reaching into the bin above, or a box wider than its bin, is still counted
once, in its own bin. Regions are tested in order and the first that holds the point wins
where polygons overlap. The test is the even-odd crossing rule with half-open edges, so a
point on an edge shared by two adjacent polygons belongs to exactly one of them.

**Confidence.** A count is exact when every keep-or-drop decision behind it is right. The
decisions in doubt are those on candidates whose score lies near the threshold ``conf``; a
candidate far above it is surely an item, one far below it surely not. Each candidate in the
region with score ``s`` is given the chance of a right decision

    p(s) = 0.5 + 0.5 * min(1, |s - conf| / margin)

(a coin toss at the threshold, certain at ``margin`` or more away), and the confidence of
the count is the product of these chances over the region's candidates: the probability
that the count is exact if decisions err independently. It is 1.0 when every candidate is at
least ``margin`` from the threshold, falls with each ambiguous candidate (two at the
threshold give 0.25), and stays in 0..1. Candidates below ``conf`` are only visible when the
detector ran with a lower threshold: run it at :func:`candidate_floor` (``conf - margin``)
and count at ``conf``. Greedy NMS keeps a box only against higher-scoring ones, so lowering
the detector's threshold adds candidates without changing which boxes reach ``conf``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from models.detections import Detections

DEFAULT_MARGIN = 0.1
"""Half-width of the score band around the threshold whose candidates are in doubt."""
WHOLE_IMAGE = "image"
"""The name of the one count made when no regions are given."""
_FORBIDDEN = frozenset("/+#\0")


class RoiError(ValueError):
    """A regions file is unreadable or invalid; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class Roi:
    """One region of interest: a storage location as seen by a camera.

    Attributes:
        name: The location's name (an MQTT topic level: no ``/``, ``+`` or ``#``).
        polygon: ``(K, 2)`` float32 corners in image pixels, ``K >= 3``.
        sku: The SKU the planogram puts there, if known.
    """

    name: str
    polygon: npt.NDArray[np.float32]
    sku: str | None = None


@dataclass(frozen=True, slots=True)
class RoiCount:
    """Items counted in one region.

    Attributes:
        name: The region's name (``"image"`` for the whole image).
        sku: The region's planogram SKU, if known.
        count: Detections with score at least ``conf`` whose bottom-centre lies in the region.
        confidence: Probability that ``count`` is exact (see the module docstring), 0..1.
        indices: Indices of the counted detections in the detections given.
        ambiguous: Candidates in the region scored within ``margin`` of ``conf``.
    """

    name: str
    sku: str | None
    count: int
    confidence: float
    indices: tuple[int, ...]
    ambiguous: int = 0


def candidate_floor(conf: float, margin: float = DEFAULT_MARGIN) -> float:
    """The detector threshold that shows every candidate :func:`count_rois` weighs."""
    return max(conf - margin, 0.001)


def points_in_polygon(
    points: npt.NDArray[np.floating], polygon: npt.NDArray[np.floating]
) -> npt.NDArray[np.bool_]:
    """``(N,)`` whether each of ``(N, 2)`` points lies inside ``polygon`` (even-odd rule)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    corners = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x, y = pts[:, :1], pts[:, 1:]
    x1, y1 = corners[None, :, 0], corners[None, :, 1]
    nxt = np.roll(corners, -1, axis=0)
    x2, y2 = nxt[None, :, 0], nxt[None, :, 1]
    spans = (y1 > y) != (y2 > y)
    dy = np.where(y2 == y1, 1.0, y2 - y1)
    crossing_x = x1 + (y - y1) * (x2 - x1) / dy
    crossings = spans & (x < crossing_x)
    return np.asarray(crossings.sum(axis=1) % 2 == 1, dtype=np.bool_)


def assign(points: npt.NDArray[np.floating], rois: Sequence[Roi]) -> npt.NDArray[np.int64]:
    """``(N,)`` index of the first region holding each point, -1 where none does."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    owner = np.full(len(pts), -1, dtype=np.int64)
    for index, roi in enumerate(rois):
        free = owner < 0
        if not free.any():
            break
        inside = points_in_polygon(pts[free], roi.polygon)
        owner[np.flatnonzero(free)[inside]] = index
    return owner


def _confidence(scores: npt.NDArray[np.float32], conf: float, margin: float) -> tuple[float, int]:
    if margin <= 0 or not len(scores):
        return 1.0, 0
    distance = np.abs(scores.astype(np.float64) - conf) / margin
    chances = 0.5 + 0.5 * np.minimum(distance, 1.0)
    return float(np.prod(chances)), int(np.count_nonzero(distance < 1.0))


def count_rois(
    detections: Detections,
    rois: Sequence[Roi],
    *,
    conf: float,
    margin: float = DEFAULT_MARGIN,
) -> dict[str, RoiCount]:
    """Count items per region by the bottom-centre rule (see the module docstring).

    Args:
        detections: Detections in the image, ideally down to :func:`candidate_floor`.
        rois: The regions, in priority order; empty for one count of the whole image.
        conf: Least score of a counted item.
        margin: Half-width of the doubtful score band around ``conf`` (0: never in doubt).

    Returns:
        One :class:`RoiCount` per region, keyed by name in the regions' order (``"image"``
        alone when ``rois`` is empty).
    """
    if not 0.0 <= conf <= 1.0 or margin < 0:
        raise ValueError(f"need 0 <= conf <= 1 and margin >= 0, got {conf} and {margin}")
    if rois:
        owner = assign(detections.bottom_centres(), rois)
        named = [(roi.name, roi.sku) for roi in rois]
    else:
        owner = np.zeros(len(detections), dtype=np.int64)
        named = [(WHOLE_IMAGE, None)]
    scores = detections.scores.astype(np.float64)
    candidate = scores >= conf - margin
    counted = scores >= conf
    result: dict[str, RoiCount] = {}
    for index, (name, sku) in enumerate(named):
        mine = owner == index
        confidence, ambiguous = _confidence(detections.scores[mine & candidate], conf, margin)
        result[name] = RoiCount(
            name=name,
            sku=sku,
            count=int(np.count_nonzero(mine & counted)),
            confidence=confidence,
            indices=tuple(int(i) for i in np.flatnonzero(mine & counted)),
            ambiguous=ambiguous,
        )
    return result


# -- loading ----------------------------------------------------------------------------------


def load_rois(path: Path) -> list[Roi]:
    """Read regions from a YAML or JSON file.

    Accepted shapes: ``{"rois": [{"name", "polygon", "sku"?}, ...]}``, the bare list, or a
    truth record of the camera simulator's data set (its ``locations``).

    Raises:
        RoiError: The file cannot be read or parsed, or an entry is invalid; the message
            names the file and the entry.
    """
    path = Path(path)
    document = _parse(path)
    allowed = {"name", "polygon", "sku"}
    if isinstance(document, dict) and "locations" in document:
        entries, where, allowed = document["locations"], "locations", allowed | {"count"}
    elif isinstance(document, dict):
        unknown = sorted(set(document) - {"rois"})
        if unknown or "rois" not in document:
            raise RoiError(
                f"{path}: expected a 'rois' list, a bare list or a truth record with"
                f" 'locations'; found keys {sorted(document)}"
            )
        entries, where = document["rois"], "rois"
    else:
        entries, where = document, ""
    if not isinstance(entries, list) or not entries:
        raise RoiError(f"{path}: {where or 'the document'} must be a non-empty list of regions")
    rois = [_roi(path, f"{where}[{i}]", entry, allowed) for i, entry in enumerate(entries)]
    seen: dict[str, int] = {}
    for index, roi in enumerate(rois):
        if roi.name in seen:
            raise RoiError(
                f"{path}: {where}[{index}] ({roi.name!r}): name already used by"
                f" {where}[{seen[roi.name]}]"
            )
        seen[roi.name] = index
    return rois


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RoiError(f"{path}: cannot read: {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RoiError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise RoiError(f"{path}: invalid YAML: {exc}") from exc


def _roi(path: Path, where: str, entry: Any, allowed: set[str]) -> Roi:
    if not isinstance(entry, dict):
        raise RoiError(f"{path}: {where}: expected a mapping with name and polygon")
    name = entry.get("name")
    label = f"{where} ({name!r})" if isinstance(name, str) else where
    unknown = sorted(str(key) for key in set(entry) - allowed)
    if unknown:
        raise RoiError(f"{path}: {label}: unknown keys {unknown} (allowed: {sorted(allowed)})")
    if not isinstance(name, str) or not name.strip():
        raise RoiError(f"{path}: {label}: 'name' must be a non-empty string")
    if _FORBIDDEN & set(name):
        raise RoiError(
            f"{path}: {label}: name {name!r} cannot be an MQTT topic level (no '/', '+', '#')"
        )
    sku = entry.get("sku")
    if sku is not None and not isinstance(sku, str):
        raise RoiError(f"{path}: {label}: 'sku' must be a string")
    return Roi(name, _polygon(path, label, entry.get("polygon")), sku)


def _polygon(path: Path, label: str, value: Any) -> npt.NDArray[np.float32]:
    if not isinstance(value, list) or len(value) < 3:
        raise RoiError(f"{path}: {label}: 'polygon' must be a list of at least 3 [x, y] points")
    for index, point in enumerate(value):
        if (
            not isinstance(point, list | tuple)
            or len(point) != 2
            or not all(_number(v) for v in point)
        ):
            raise RoiError(
                f"{path}: {label}: polygon point {index} must be two finite numbers, got {point!r}"
            )
    polygon = np.asarray(value, dtype=np.float32).reshape(-1, 2)
    x, y = polygon[:, 0].astype(np.float64), polygon[:, 1].astype(np.float64)
    if abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) < 1e-6:
        raise RoiError(f"{path}: {label}: polygon has no area")
    return polygon


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
