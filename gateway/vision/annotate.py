"""Draw what the counter saw: region polygons, detected boxes and the count of each region.

Each region gets its own colour; a counted box takes the colour of its region (white when no
region holds it) and a dot marks its bottom-centre, the point that decided its region. Near
misses (candidates scored just below the threshold) are drawn thin and grey, so an operator
sees why a count has a low confidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from gateway.vision.roi import WHOLE_IMAGE, Roi, RoiCount
from models.detections import Detections

Image = npt.NDArray[np.uint8]
Colour = tuple[int, int, int]

UNASSIGNED: Colour = (255, 255, 255)
NEAR_MISS: Colour = (150, 150, 150)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def palette(index: int) -> Colour:
    """A distinct, bright BGR colour for region ``index`` (golden-angle hues)."""
    hue = int(index * 137.508) % 180
    hsv = np.array([[[hue, 220, 255]]], dtype=np.uint8)
    b, g, r = np.asarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR), dtype=np.uint8)[0, 0]
    return int(b), int(g), int(r)


def annotate(
    image: Image,
    detections: Detections,
    rois: Sequence[Roi],
    counts: Mapping[str, RoiCount],
    *,
    conf: float,
) -> Image:
    """A copy of ``image`` with regions, boxes and per-region counts drawn on it.

    Args:
        image: The BGR image the detections were made in.
        detections: Every detection (candidates below ``conf`` are drawn as near misses).
        rois: The regions (empty: the whole image was counted).
        counts: :func:`~gateway.vision.roi.count_rois` 's result for these detections.
        conf: The counting threshold.
    """
    canvas = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 600))
    colour_of = np.full((len(detections), 3), UNASSIGNED, dtype=np.int64)
    names = [roi.name for roi in rois] or [WHOLE_IMAGE]
    for index, name in enumerate(names):
        if name in counts:
            colour_of[list(counts[name].indices)] = palette(index)
    for index, roi in enumerate(rois):
        points = np.round(roi.polygon).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [points], isClosed=True, color=palette(index), thickness=thickness)
    for i, (box, score) in enumerate(zip(detections.boxes, detections.scores, strict=True)):
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        if score < conf:
            cv2.rectangle(canvas, (x1, y1), (x2, y2), NEAR_MISS, 1)
            continue
        colour = tuple(int(c) for c in colour_of[i])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        cv2.circle(canvas, ((x1 + x2) // 2, y2), thickness + 1, colour, -1)
    for index, name in enumerate(names):
        if name not in counts:
            continue
        anchor = _label_anchor(rois[index].polygon if rois else None)
        count = counts[name]
        _label(canvas, f"{name}: {count.count} ({count.confidence:.2f})", anchor, palette(index))
    return canvas


def _label_anchor(polygon: npt.NDArray[np.float32] | None) -> tuple[int, int]:
    if polygon is None:
        return 4, 4
    top_left = polygon.min(axis=0)
    return max(0, round(float(top_left[0])) + 4), max(0, round(float(top_left[1])) + 4)


def _label(canvas: Image, text: str, anchor: tuple[int, int], colour: Colour) -> None:
    """Text on a dark box whose top-left corner is ``anchor``."""
    scale = max(0.4, max(canvas.shape[:2]) / 1600)
    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, 1)
    x, y = anchor
    cv2.rectangle(canvas, (x, y), (x + width + 4, y + height + baseline + 4), (0, 0, 0), -1)
    cv2.putText(canvas, text, (x + 2, y + height + 2), _FONT, scale, colour, 1, cv2.LINE_AA)


def check_writable(path: Path) -> None:
    """Fail early when :func:`write_annotated` could not write ``path``.

    Raises:
        OSError: The folder does not exist or OpenCV has no writer for the suffix.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OSError(f"cannot write {path}: no folder {path.parent}")
    if not cv2.haveImageWriter(str(path)):
        raise OSError(
            f"cannot write {path}: no image writer for {path.suffix!r} (use .png or .jpg)"
        )


def write_annotated(path: Path, image: Image) -> None:
    """Write the annotated image (the format follows the suffix: .png, .jpg).

    Raises:
        OSError: The file could not be written.
    """
    check_writable(path)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")
