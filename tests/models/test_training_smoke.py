"""The training recipe runs end to end in seconds: render, train one epoch, export to ONNX.

This runs the real `edgecount models train` (ultralytics on PyTorch, offline) on a handful of
tiny images, then checks the exported model loads in ONNX Runtime with the input size asked
for and the head shape the detector decodes, and that `edgecount models export` reproduces it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

pytestmark = pytest.mark.train

EDGECOUNT = [sys.executable, "-m", "edgecount"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EDGECOUNT, *args], capture_output=True, text=True, timeout=600, check=False
    )


def test_train_one_epoch_and_export(tmp_path: Path) -> None:
    out = tmp_path / "run"
    tiny = tmp_path / "tiny.onnx"
    done = _run(
        "models", "train", "--out", str(out), "--train-images", "4", "--val-images", "2",
        "--epochs", "1", "--imgsz", "160", "--batch", "2", "--onnx", str(tiny),
        "--shape", "96x160",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "data: 6/6 images" in done.stdout
    assert "epoch 1/1" in done.stdout  # the per-epoch progress line
    summary = json.loads((out / "recipe.json").read_text())
    assert summary["recipe"]["imgsz"] == 160
    assert summary["recipe"]["model"] == "yolo11n.yaml"
    assert Path(summary["weights"]).is_file()
    assert len(list((out / "data" / "labels" / "train").glob("*.txt"))) == 4

    session = ort.InferenceSession(str(tiny), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.shape == [1, 3, 96, 160]
    (output,) = session.run(None, {inp.name: np.zeros((1, 3, 96, 160), np.float32)})
    assert output.shape[:2] == (1, 5)  # cx, cy, w, h + one class score per anchor

    again = _run("models", "export", summary["weights"], "--out", str(tmp_path / "again.onnx"),
                 "--shape", "160")  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    square = ort.InferenceSession(str(tmp_path / "again.onnx"), providers=["CPUExecutionProvider"])
    assert square.get_inputs()[0].shape == [1, 3, 160, 160]

    quantised = _run("models", "quantize", str(tiny), "--images", "2")
    assert quantised.returncode == 0, quantised.stderr[-3000:]
    int8 = tmp_path / "tiny-int8.onnx"
    model = onnx.load(str(int8))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # The head's decoding stays in float: the output is not a dequantised 8-bit tensor.
    (output_name,) = [o.name for o in model.graph.output]
    producer = next(node for node in model.graph.node if output_name in node.output)
    assert producer.op_type == "Concat"
    session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    (scores,) = session.run(None, {inp.name: np.zeros((1, 3, 96, 160), np.float32)})
    assert scores.shape == output.shape


def test_train_without_images_is_a_usage_error(tmp_path: Path) -> None:
    done = _run("models", "train", "--out", str(tmp_path), "--train-images", "0")
    assert done.returncode == 2
    assert "--train-images must be at least 1" in done.stdout + done.stderr


def test_export_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    done = _run("models", "export", str(tmp_path / "nope.pt"))
    assert done.returncode == 2
    assert "nope.pt: no such file" in done.stderr
