"""The detectors a gateway process has loaded, shared by every camera and every scan.

Loading a detector (an ONNX Runtime session) takes a while and much memory, so the process
loads each one once: :class:`DetectorCache` keeps one per (model, backend, conf, tile), the
cameras that agree on those share it. The runtime (:mod:`gateway.runtime`) creates the one
cache of a process with its cameras and hands it to every zone scan.

Cameras load their detector from worker threads, possibly at the same moment, so the cache is
thread-safe: two threads that want the same detector load it once (the second waits for the
first); different detectors load in parallel. A load that fails is not cached: the next scan
tries again (a model file fixed in the meantime then works).

The model stack is imported when the first detector loads, not with this module, so a gateway
without cameras never imports it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import CameraConfig
from models.artifacts import SHELF_INT8

if TYPE_CHECKING:
    from models.detector import Detector

DetectorKey = tuple[Path, str, float, bool]
"""What makes two cameras' detectors the same: model file, back-end, threshold, tiling."""

Loader = Callable[[CameraConfig], "Detector"]


def detector_key(config: CameraConfig) -> DetectorKey:
    """The key of the detector ``config`` asks for."""
    return (config.model or SHELF_INT8, config.backend, config.conf, config.tile)


def load_for(config: CameraConfig) -> Detector:
    """Load the detector a camera asks for, at the candidate floor of its threshold.

    Raises:
        models.detector.ModelError: The model is missing or cannot be loaded.
    """
    from gateway.vision.roi import candidate_floor
    from models.detector import load_detector

    return load_detector(
        config.model or SHELF_INT8,
        backend=config.backend,
        conf=candidate_floor(config.conf),
        tile=config.tile,
    )


class DetectorCache:
    """One loaded detector per :func:`detector_key`, shared by the cameras that agree.

    Args:
        load: Loads a camera's detector (:func:`load_for`; a test may count the loads).
    """

    def __init__(self, load: Loader = load_for) -> None:
        self._load = load
        self._lock = threading.Lock()
        """Guards the two dictionaries (held briefly, never while loading)."""
        self._detectors: dict[DetectorKey, Detector] = {}
        self._loading: dict[DetectorKey, threading.Lock] = {}
        """One lock per key, held while that detector loads."""

    def get(self, config: CameraConfig) -> Detector:
        """The detector for ``config``, loaded on first use; safe to call from any thread.

        Raises:
            Exception: Whatever loading raises (nothing is cached then).
        """
        key = detector_key(config)
        with self._lock:
            detector = self._detectors.get(key)
            if detector is not None:
                return detector
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                detector = self._detectors.get(key)
            if detector is not None:
                return detector  # another thread loaded it while this one waited
            detector = self._load(config)
            with self._lock:
                self._detectors[key] = detector
            return detector

    def __len__(self) -> int:
        """How many detectors are loaded."""
        with self._lock:
            return len(self._detectors)
