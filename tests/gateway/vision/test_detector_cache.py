"""The process's detector cache: one load per model, from any number of threads at once.

Cameras load their detector from worker threads (``asyncio.to_thread``), and two cameras of
one zone often use the same model, so their first scan asks for it twice at the same moment.
The loader here stands in for ONNX Runtime: it counts its calls and blocks until the test lets
it finish, so the tests decide which thread is where.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from gateway.config import CameraConfig, GatewayConfig
from gateway.publisher import MemoryPublisher
from gateway.runtime import started_cameras
from gateway.scan import create_zone_scan
from gateway.vision.detectors import DetectorCache, DetectorKey, detector_key
from models.detections import Detections
from models.detector import Image

WAIT = 10.0
"""Seconds before a test gives up on an event that must happen (never reached when it passes)."""


class FakeDetector:
    """Stands for a loaded model; never asked to detect here."""

    def __init__(self, name: str) -> None:
        self.name = name

    def detect(self, image: Image) -> Detections:
        raise AssertionError("the cache tests never detect")


class GatedLoader:
    """Counts loads per model; each load waits for :attr:`release` before it returns."""

    def __init__(self) -> None:
        self.loads: Counter[DetectorKey] = Counter()
        self.entered: dict[Path, threading.Event] = {}
        self.release = threading.Event()
        self.fail_next = False
        self._lock = threading.Lock()

    def entered_for(self, model: str) -> threading.Event:
        with self._lock:
            return self.entered.setdefault(Path(model), threading.Event())

    def __call__(self, config: CameraConfig) -> FakeDetector:
        assert config.model is not None
        with self._lock:
            self.loads[detector_key(config)] += 1
            failing, self.fail_next = self.fail_next, False
        self.entered_for(str(config.model)).set()
        assert self.release.wait(WAIT), "the test never released the load"
        if failing:
            raise OSError(f"{config.model}: truncated model file")
        return FakeDetector(f"fake:{config.model}")


def camera(name: str, model: str) -> CameraConfig:
    rois = [{"location": f"{name}-L1", "polygon": [[0, 0], [1, 0], [1, 1]], "sku": "S"}]
    return CameraConfig.model_validate(
        {"name": name, "url": "file:///dev/null", "model": model, "rois": rois}
    )


def test_two_threads_that_want_one_model_load_it_once() -> None:
    loader = GatedLoader()
    cache = DetectorCache(loader)
    first, second = camera("cam-1", "shelf.onnx"), camera("cam-2", "shelf.onnx")
    with ThreadPoolExecutor(2) as pool:
        loading = pool.submit(cache.get, first)
        assert loader.entered_for("shelf.onnx").wait(WAIT)  # the first thread is loading
        loader.entered_for("shelf.onnx").clear()
        waiting = pool.submit(cache.get, second)
        # The second thread must wait for the first load, not start its own: give it the
        # chance to (a broken cache enters the loader at once) before releasing the first.
        assert not loader.entered_for("shelf.onnx").wait(0.2), "loaded a second time"
        loader.release.set()
        detectors = loading.result(WAIT), waiting.result(WAIT)
    assert detectors[0] is detectors[1]
    assert sum(loader.loads.values()) == 1
    assert len(cache) == 1
    assert cache.get(first) is detectors[0], "later gets take the loaded one"


def test_many_threads_at_once_load_each_model_once() -> None:
    loader = GatedLoader()
    loader.release.set()
    cache = DetectorCache(loader)
    cameras = [camera(f"cam-{n}", f"model-{n % 3}.onnx") for n in range(24)]
    start = threading.Barrier(len(cameras))

    def get(config: CameraConfig) -> object:
        start.wait(WAIT)
        return cache.get(config)

    with ThreadPoolExecutor(len(cameras)) as pool:
        found = list(pool.map(get, cameras))
    assert list(loader.loads.values()) == [1, 1, 1]
    by_model: dict[Path | None, set[int]] = {}
    for config, detector in zip(cameras, found, strict=True):
        by_model.setdefault(config.model, set()).add(id(detector))
    assert all(len(ids) == 1 for ids in by_model.values()), "one detector per model"


def test_different_models_load_in_parallel() -> None:
    cache = DetectorCache(ParallelLoader())
    with ThreadPoolExecutor(2) as pool:
        futures: list[Future[object]] = [
            pool.submit(cache.get, camera("cam-a", "a.onnx")),
            pool.submit(cache.get, camera("cam-b", "b.onnx")),
        ]
        for future in futures:
            future.result(WAIT)  # each load waits until the other has started
    assert len(cache) == 2


class ParallelLoader:
    """Each load returns only once both models are loading at the same time."""

    def __init__(self) -> None:
        self.both = threading.Barrier(2)

    def __call__(self, config: CameraConfig) -> FakeDetector:
        self.both.wait(WAIT)  # BrokenBarrierError if the loads were serialised
        return FakeDetector(str(config.model))


def test_a_failed_load_is_not_cached_and_the_next_get_loads_again() -> None:
    loader = GatedLoader()
    loader.release.set()
    loader.fail_next = True
    cache = DetectorCache(loader)
    config = camera("cam-1", "shelf.onnx")
    with pytest.raises(OSError, match="truncated"):
        cache.get(config)
    assert len(cache) == 0
    assert cache.get(config).name == "fake:shelf.onnx"
    assert loader.loads[detector_key(config)] == 2


async def test_the_runtime_creates_one_cache_that_its_scans_share(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    assert cv2.imwrite(str(frames / "shelf.png"), np.zeros((32, 32, 3), np.uint8))
    roi = {"polygon": [[0, 0], [9, 0], [9, 9]], "sku": "S"}
    config = GatewayConfig.model_validate(
        {
            "site": "s1",
            "gateway_id": "gw",
            "state_dir": str(tmp_path / "state"),
            "cameras": [
                {
                    "name": name,
                    "url": str(frames),
                    "kind": "folder",
                    "rois": [roi | {"location": name}],
                }
                for name in ("cam-a", "cam-b")
            ],
            "zones": {"A": {"cameras": ["cam-a"]}, "B": {"cameras": ["cam-b"]}},
        }
    )
    publisher = MemoryPublisher(site="s1", gateway_id="gw")
    async with started_cameras(config) as cameras:
        scans = [
            create_zone_scan(
                config, zone, {}, publisher, cameras=cameras.devices, detectors=cameras.detectors
            )
            for zone in ("A", "B")
        ]
        assert sorted(cameras.devices) == ["cam-a", "cam-b"]
    for scan in scans:
        assert scan.vision is not None
        assert scan.vision.detectors is cameras.detectors
