"""``edgecount models finetune``: DATA.yaml is checked first, then a seconds-long fine-tune.

The checks need no training: a hand-made data set with one mistake of each kind must be
refused with every mistake named (file and line) and no traceback. The smoke test fine-tunes
the shipped weights for one epoch on a handful of rendered shelves at a small input size,
and checks the three files it promises and that ``vision count`` loads the model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edgecount.yamlcfg import ConfigError
from models.site_data import label_path, load_site_data

EDGECOUNT = [sys.executable, "-m", "edgecount"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EDGECOUNT, *args], capture_output=True, text=True, timeout=600, check=False
    )


def _image(path: Path, labels: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((32, 48, 3), 128, np.uint8))
    if labels is not None:
        label = label_path(path)
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(labels)


def _good_set(root: Path) -> Path:
    _image(root / "site" / "images" / "train" / "a.jpg", "0 0.5 0.5 0.2 0.3\n1 0.2 0.2 0.1 0.1\n")
    _image(root / "site" / "images" / "train" / "b.png", "")  # an empty shelf: no items
    _image(root / "site" / "images" / "val" / "c.jpg", "1 0.5 0.5 0.5 0.5\n")
    data = root / "data.yaml"
    data.write_text("path: site\ntrain: images/train\nval: images/val\nnames: [can, box]\n")
    return data


def test_a_good_data_set_is_read(tmp_path: Path) -> None:
    data = load_site_data(_good_set(tmp_path))
    assert data.names == {0: "can", 1: "box"}
    assert [p.name for p in data.images["train"]] == ["a.jpg", "b.png"]
    assert [p.name for p in data.images["val"]] == ["c.jpg"]
    assert f"val: {(tmp_path / 'site' / 'images' / 'val').resolve()}" in data.ultralytics_yaml()


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    data = _good_set(tmp_path)
    train = tmp_path / "site" / "images" / "train"
    _image(train / "nolabel.jpg", None)
    _image(train / "range.jpg", "0 0.5 0.5 0.2 0.3\n0 1.4 0.5 0.2 0.3\n")
    _image(train / "cls.jpg", "\n\n7 0.5 0.5 0.2 0.3\n")
    _image(train / "short.jpg", "0 0.5 0.5\n")
    data.write_text("path: site\ntrain: images/train\nval: images/missing\nnames: [can, box]\n")

    with pytest.raises(ConfigError) as caught:
        load_site_data(data)
    issues = [str(issue) for issue in caught.value.issues]
    labels = tmp_path / "site" / "labels" / "train"
    assert len(issues) == 5, issues
    assert f"{data}:3: val: no folder" in issues[0]
    assert any(i.startswith(f"{train / 'nolabel.jpg'}: image without a label") for i in issues)
    assert any(i.startswith(f"{labels / 'range.txt'}:2: box out of range") for i in issues)
    assert any(i.startswith(f"{labels / 'cls.txt'}:3: class id 7 not in names") for i in issues)
    assert any(i.startswith(f"{labels / 'short.txt'}:1: need 5 fields") for i in issues)


def test_missing_keys_and_folders(tmp_path: Path) -> None:
    data = tmp_path / "data.yaml"
    data.write_text("path: nowhere\ntrain: 3\nnames: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_site_data(data)
    text = "\n".join(str(issue) for issue in caught.value.issues)
    assert f"{data}:1: path: no folder" in text
    assert f"{data}:3: names: must be a list" in text
    assert f"{data}:2: train: must be one image folder" in text
    assert f"{data}: val: missing" in text


def test_the_command_reports_a_bad_data_set_without_traceback(tmp_path: Path) -> None:
    data = _good_set(tmp_path)
    _image(tmp_path / "site" / "images" / "val" / "bad.jpg", "2 0.5 0.5 0.1 0.1\n")
    done = _run("models", "finetune", "--data", str(data), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "bad.txt:1: class id 2 not in names (0, 1)" in done.stderr
    assert "1 problem(s) in the data set" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_imgsz_must_be_multiples_of_32(tmp_path: Path) -> None:
    done = _run("models", "finetune", "--data", str(_good_set(tmp_path)), "--out",
                str(tmp_path / "out"), "--imgsz", "100,160")  # fmt: skip
    assert done.returncode == 2
    assert "multiple of 32" in done.stderr


def test_missing_start_weights_is_a_usage_error(tmp_path: Path) -> None:
    done = _run("models", "finetune", "--data", str(_good_set(tmp_path)), "--out",
                str(tmp_path / "out"), "--weights", str(tmp_path / "none.pt"))  # fmt: skip
    assert done.returncode == 2
    assert f"--weights {tmp_path / 'none.pt'}: no such file" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.train
def test_finetune_one_epoch_writes_a_usable_model(tmp_path: Path) -> None:
    from simulators.camera.dataset import DatasetSpec, write_dataset

    data = write_dataset(tmp_path / "data", DatasetSpec(train=6, val=2, seed=11))
    out = tmp_path / "model"
    done = _run("models", "finetune", "--data", str(data), "--epochs", "1", "--imgsz", "96,160",
                "--batch", "4", "--device", "cpu", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "epoch 1/1" in done.stdout
    assert "epoch 2/1" not in done.stdout  # the closing validation is the best weights'
    assert "best weights  mAP50" in done.stdout
    assert "finetune 100% 1/1 epochs" in done.stderr  # edgecount.progress, one line per epoch

    session = ort.InferenceSession(str(out / "detector.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 96, 160]
    int8 = ort.InferenceSession(str(out / "detector.int8.onnx"), providers=["CPUExecutionProvider"])
    assert int8.get_inputs()[0].shape == [1, 3, 96, 160]

    summary = json.loads((out / "finetune.json").read_text())
    assert summary["images"] == {"train": 6, "val": 2}
    # the recipe block holds the training settings, not those of a rendered data set it never used
    assert summary["recipe"]["epochs"] == 1
    assert not {"train_images", "varied_images"} & set(summary["recipe"])
    for kind in ("float", "int8"):
        assert summary["figures"][kind]["locations"] == 12  # 2 images x 6 truth locations
        assert 0.0 <= summary["figures"][kind]["exact_rate"] <= 1.0
    assert 0.0 <= summary["figures"]["mAP50"] <= 1.0
    card = (out / "MODEL_CARD.md").read_text()
    assert f"| locations counted exactly | {summary['figures']['int8']['exact_rate']:.1%}" in card
    assert "mAP50 (ultralytics' validation of the fine-tuned weights): " in card
    assert "--epochs 1 --imgsz 96,160 --batch 4 --device cpu" in card

    image = next((tmp_path / "data" / "images" / "val").iterdir())
    counted = _run("vision", "count", "--model", str(out / "detector.onnx"), "--image",
                   str(image), "--json")  # fmt: skip
    assert counted.returncode == 0, counted.stderr[-3000:]
    result = json.loads(counted.stdout)
    assert set(result["counts"]) == {"image"}
    assert result["total"] == result["counts"]["image"]
