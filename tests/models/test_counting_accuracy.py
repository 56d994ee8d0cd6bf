"""The shipped detector counts held-out shelves accurately (a small, fixed slice of the benchmark).

bench/vision.py measures 200 held-out images against the goal (exact >= 95 %, MAE <= 0.3);
this keeps a fixed 16-image slice of the same set inside `make test`, for the INT8 model
gateways run and the float model it was quantised from, so a change to the renderer, the
post-processing, the quantisation or the counting rule that costs accuracy fails here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.vision.roi import candidate_floor
from models.artifacts import SHELF_INT8, SHELF_ONNX
from models.detections import Detections
from models.detector import DEFAULT_CONF, OnnxDetector
from models.evaluate import evaluate, held_out
from simulators.camera.render import ShelfImage

IMAGES = 16
EXACT = 0.9
MAE = 0.3


@pytest.mark.parametrize("model", [SHELF_INT8, SHELF_ONNX], ids=["int8", "float"])
def test_held_out_counts_are_accurate(model: Path) -> None:
    detector = OnnxDetector(model, conf=candidate_floor(DEFAULT_CONF))
    report = evaluate(detector, held_out(IMAGES), conf=DEFAULT_CONF)
    summary = report.summary()
    assert summary["locations"] == IMAGES * 6
    assert summary["max_items_per_location"] >= 50  # dense bins are in the slice
    assert summary["exact_rate"] >= EXACT, summary
    assert summary["mae"] <= MAE, summary


class TruthDetector:
    """Detections equal to the rendered truth boxes."""

    name = "truth"

    def __init__(self, shelf: ShelfImage) -> None:
        n = len(shelf.boxes)
        self.found = Detections(shelf.boxes, np.ones(n, np.float32), np.zeros(n, np.int64))

    def detect(self, _image: np.ndarray) -> Detections:
        return self.found


def test_the_counting_rule_is_exact_on_truth_boxes() -> None:
    # What the detector is measured against: truth boxes through the same counting give the truth.
    for shelf in held_out(4):
        report = evaluate(TruthDetector(shelf), iter([shelf]), conf=DEFAULT_CONF)
        assert report.exact == report.locations == len(shelf.bins)
