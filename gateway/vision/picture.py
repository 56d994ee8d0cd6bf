"""The annotated frame of a location's vision count, as a JPEG small enough to publish.

A fixed camera counts a location on several frames and publishes the median; the frame whose
count is that median is the one the count came from. :func:`pick` finds it,
:func:`location_picture` draws the location's region and the detections on it
(:mod:`gateway.vision.annotate`), scales it down to at most :data:`MAX_WIDTH` pixels wide and
encodes it as a JPEG of quality :data:`QUALITY` (lower, down to :data:`LEAST_QUALITY`, when
that is still over the contract's ``MAX_FRAME_BYTES``).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from edgecount import contract
from gateway.vision.annotate import Image, annotate
from gateway.vision.roi import Roi, RoiCount
from models.detections import Detections

__all__ = ["LEAST_QUALITY", "MAX_WIDTH", "QUALITY", "Picture", "location_picture", "pick"]

MAX_WIDTH: Final = 960
QUALITY: Final = 75
LEAST_QUALITY: Final = 30


@dataclass(frozen=True, slots=True)
class Picture:
    """An annotated JPEG of one location, and when its frame was taken (UNIX seconds)."""

    jpeg: bytes
    width: int
    height: int
    taken: float


def pick(counts: Sequence[int]) -> int:
    """The index of the first count equal to the median (rounded), else the nearest to it."""
    median = round(statistics.median(counts))
    return min(range(len(counts)), key=lambda i: (abs(counts[i] - median), i))


def location_picture(
    image: Image,
    detections: Detections,
    roi: Roi,
    count: RoiCount,
    *,
    conf: float,
    taken: float,
) -> Picture | None:
    """The location's annotated frame as a JPEG; None if it cannot be made small enough.

    Blocking (drawing, resizing, encoding): run it in a worker thread.
    """
    canvas = annotate(image, detections, [roi], {roi.name: count}, conf=conf)
    height, width = canvas.shape[:2]
    if width > MAX_WIDTH:
        height = max(1, round(height * MAX_WIDTH / width))
        width = MAX_WIDTH
        small = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
        canvas = np.asarray(small, dtype=np.uint8)
    quality = QUALITY
    while quality >= LEAST_QUALITY:
        ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(encoded) <= contract.MAX_FRAME_BYTES:
            return Picture(encoded.tobytes(), width, height, taken)
        quality -= 15
    return None
