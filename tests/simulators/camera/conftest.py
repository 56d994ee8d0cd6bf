"""Shared checks of the camera renderers' truth."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from gateway.vision.roi import Roi, count_rois
from models.detections import Detections
from simulators.camera.render import ShelfImage

CountTruth = Callable[[ShelfImage], dict[str, int]]


def _count_truth_boxes(shelf: ShelfImage) -> dict[str, int]:
    """What the gateway's counting rule makes of the truth boxes fed as perfect detections."""
    perfect = Detections(
        shelf.boxes,
        np.ones(len(shelf.boxes), np.float32),
        np.zeros(len(shelf.boxes), np.int64),
    )
    rois = [Roi(b.location, b.polygon, b.sku) for b in shelf.bins]
    return {name: c.count for name, c in count_rois(perfect, rois, conf=0.5).items()}


@pytest.fixture
def count_truth_boxes() -> CountTruth:
    """:func:`_count_truth_boxes`: each location's count of the truth boxes."""
    return _count_truth_boxes
