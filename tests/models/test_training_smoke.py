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
        "--varied-images", "3", "--varied-val", "1",
        "--epochs", "1", "--imgsz", "160", "--batch", "2", "--onnx", str(tiny),
        "--shape", "96x160",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "data: 10/10 images" in done.stdout
    assert "epoch 1/1" in done.stdout  # the per-epoch progress line
    # ... and no redrawn progress bars or colour codes of ultralytics' in a redirected log
    assert "\r" not in done.stdout + done.stderr
    assert "\x1b[" not in done.stdout + done.stderr
    summary = json.loads((out / "recipe.json").read_text())
    assert summary["recipe"]["imgsz"] == 160
    assert summary["recipe"]["model"] == "yolo11n.yaml"
    assert summary["recipe"]["varied_images"] == 3
    assert Path(summary["weights"]).is_file()
    data = out / "data"
    assert len(list((data / "own" / "labels" / "train").glob("*.txt"))) == 4
    assert len(list((data / "varied" / "labels" / "train").glob("*.txt"))) == 3
    assert "varied/images/train" in (data / "data.yaml").read_text()

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


def test_training_continues_from_weights(tmp_path: Path) -> None:
    """--start loads an earlier run's weights (the recipe records them) instead of a fresh net."""
    first = tmp_path / "first"
    args = ("--train-images", "2", "--val-images", "1", "--varied-images", "0",
            "--varied-val", "0", "--epochs", "1", "--imgsz", "160", "--batch", "2")  # fmt: skip
    assert _run("models", "train", "--out", str(first), *args).returncode == 0
    weights = json.loads((first / "recipe.json").read_text())["weights"]
    second = tmp_path / "second"
    done = _run("models", "train", "--out", str(second), "--start", weights, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    recipe = json.loads((second / "recipe.json").read_text())["recipe"]
    assert recipe["model"] == weights
    # Without varied images the data set keeps the single-renderer layout.
    assert (second / "data" / "labels" / "train").is_dir()
    bad = _run("models", "train", "--out", str(tmp_path / "bad"), "--start", str(tmp_path / "x.pt"))
    assert bad.returncode == 2
    assert "x.pt: not a .pt file" in bad.stderr


def test_train_without_images_is_a_usage_error(tmp_path: Path) -> None:
    done = _run("models", "train", "--out", str(tmp_path), "--train-images", "0")
    assert done.returncode == 2
    assert "--train-images must be at least 1" in done.stdout + done.stderr


def test_export_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    done = _run("models", "export", str(tmp_path / "nope.pt"))
    assert done.returncode == 2
    assert "nope.pt: no such file" in done.stderr
