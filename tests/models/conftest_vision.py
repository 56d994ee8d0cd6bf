"""A throw-away YOLO11n detector for the vision tests (built once per test session).

The network is ultralytics' YOLO11n with one class and random weights. Random weights alone
give a degenerate network (activations shrink to nothing layer by layer, every anchor gets
the same score), so the batch-norm statistics are calibrated on a few rendered shelves and
the class bias is set so that a fair share of anchors scores around 0.3. The boxes mean
nothing, but they are many, varied and deterministic: enough to compare two back-ends that
run the same weights. The ``.pt`` is exported to ONNX with the project's recipe.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from models.artifacts import EXPORT_SHAPE, offline_ultralytics
from models.postprocess import input_tensor, letterbox
from models.recipe import export_onnx
from simulators.camera.render import render_shelf

IMGSZ = EXPORT_SHAPE
CLASS_BIAS = -1.0


@dataclass(frozen=True)
class ThrowawayModel:
    """The same random weights as ultralytics checkpoint and as exported ONNX."""

    pt: Path
    onnx: Path


_BUILT: dict[str, ThrowawayModel] = {}


def build_throwaway_model(folder: Path) -> ThrowawayModel:
    """Build the model into ``folder`` (seeded: the same weights every time)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    batch = np.concatenate(
        [input_tensor(letterbox(render_shelf(rng).image, IMGSZ)[0]) for _ in range(4)]
    )
    pt = folder / "throwaway.pt"
    with offline_ultralytics(folder):
        import torch
        from ultralytics import YOLO
        from ultralytics.nn.tasks import DetectionModel

        torch.manual_seed(0)
        wrapper = YOLO("yolo11n.yaml")
        config = dict(wrapper.model.yaml) | {"nc": 1}
        net = DetectionModel(config, nc=1, verbose=False)
        net.names = {0: "item"}
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # a plain average over the calibration batch
        net.train()
        with torch.no_grad():
            net(torch.from_numpy(batch))
            for branch in net.model[-1].cv3:
                branch[-1].bias.fill_(CLASS_BIAS)
        net.eval()
        wrapper.model = net
        wrapper.save(str(pt))
    with warnings.catch_warnings():  # torch's notices about its legacy ONNX exporter
        warnings.simplefilter("ignore", DeprecationWarning)
        onnx = export_onnx(pt, folder / "throwaway.onnx", imgsz=IMGSZ, run_dir=folder)
    return ThrowawayModel(pt, onnx)


def shared_throwaway_model(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayModel:
    """The throw-away detector, built on first use and shared by every vision test module.

    Each test module wraps this in its own session fixture (a fixture imported into two
    modules would be two fixtures); the cache makes them share one build.
    """
    if "model" not in _BUILT:
        _BUILT["model"] = build_throwaway_model(tmp_path_factory.mktemp("throwaway-model"))
    return _BUILT["model"]
