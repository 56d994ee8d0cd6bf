"""The detector's artifacts: where its weight files live, its input shape, loading them offline.

This is what the inference path needs of the model files (kept in ``models/weights/``):
:mod:`models.detector` and the gateway import it without importing the training recipe
(:mod:`models.recipe`), which renders its data with the camera simulator.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
SHELF_ONNX = MODELS_DIR / "weights" / "shelf-yolo11n.onnx"
"""The committed detector in float: the same weights as ``shelf-yolo11n.pt``."""
SHELF_INT8 = MODELS_DIR / "weights" / "shelf-yolo11n-int8.onnx"
"""The committed detector quantised to INT8: what gateways use by default (same accuracy,
about 1.4x faster on CPU; docs/benchmarks.md)."""

EXPORT_SHAPE = (288, 480)
"""Input (height, width) of the exported detector: a 16:9 camera frame letterboxed to 480 px
wide fills it without the 40 % of padding a 480 x 480 square would add (and compute on)."""

Shape = int | tuple[int, int]
"""An input size: one side of a square, or (height, width)."""


@contextmanager
def offline_ultralytics(run_dir: Path) -> Iterator[None]:
    """Run ultralytics without network access and with its settings file under ``run_dir``.

    Its own progress bars are off unless ``YOLO_VERBOSE`` is set: our commands print a line per
    epoch, and ultralytics' carriage returns and colour codes fill a redirected log (a systemd
    journal, a CI log) with redrawn bars."""
    keys = ("YOLO_OFFLINE", "YOLO_CONFIG_DIR", "YOLO_VERBOSE")
    saved = {key: os.environ.get(key) for key in keys}
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(run_dir / "ultralytics-config")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
