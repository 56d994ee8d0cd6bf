"""bench/vision.py's foreign part, tiny: every foreign set is rendered, counted and scored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecount.cli import main
from models.detections import Detections
from models.detector import Image
from models.evaluate import evaluate
from simulators.camera.foreign import RENDERERS, foreign_held_out
from simulators.camera.render import ShelfImage

ROOT = Path(__file__).resolve().parents[2]


def test_bench_scores_each_foreign_set_with_the_shared_scorer() -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "vision.py"),
            "--parts",
            "accuracy",
            "--sets",
            ",".join(RENDERERS),
            "--foreign-images",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout.splitlines()[-1])["accuracy"]
    assert set(figures) == set(RENDERERS)
    for name, by_model in figures.items():
        locations = sum(len(s.shelf.bins) for s in foreign_held_out(name, 2))
        for summary in by_model.values():
            assert summary["images"] == 2
            assert summary["locations"] == locations
            assert 0.0 <= summary["exact_rate"] <= 1.0
            assert 0 <= summary["exact_images"] <= 2
            assert summary["mae"] >= 0.0
        assert f"on {name}:" in run.stdout


def test_bench_names_an_unknown_set() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "vision.py"), "--sets", "own,marble"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 2
    assert "--sets: unknown marble" in run.stderr
    assert "Traceback" not in run.stderr


class Oracle:
    """A detector that finds exactly the labelled boxes of the images it was given."""

    name = "oracle"

    def __init__(self, shelves: list[ShelfImage], drop: int = 0) -> None:
        self.truth = {id(s.image): s.boxes for s in shelves}
        self.drop = drop

    def detect(self, image: Image) -> Detections:
        boxes = self.truth[id(image)][self.drop :]
        n = len(boxes)
        return Detections(boxes, np.ones(n, np.float32), np.zeros(n, np.int64))


def test_the_shared_scorer_on_a_foreign_set_perfect_then_one_item_missed() -> None:
    shelves = [s.shelf for s in foreign_held_out("wire", 3, seed=21)]
    perfect = evaluate(Oracle(shelves), iter(shelves)).summary()
    assert perfect["exact_rate"] == 1.0
    assert perfect["exact_images"] == 3
    assert perfect["mae"] == 0.0
    missed = evaluate(Oracle(shelves, drop=1), iter(shelves)).summary()
    owned = sum(bool(s.owners[0]) for s in shelves)  # the first box of each image is dropped
    assert missed["exact_images"] == 3 - owned
    assert missed["mae"] == pytest.approx(owned / perfect["locations"], abs=1e-4)


def test_models_eval_counts_a_foreign_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "eval", "--set", "wood", "--images", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["set"] == "wood"
    assert summary["seed"] == 5000
    assert summary["locations"] == sum(len(s.shelf.bins) for s in foreign_held_out("wood", 2))
