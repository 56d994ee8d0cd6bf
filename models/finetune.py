"""``edgecount models finetune``: fine-tune the shipped detector on a site's own shelves.

From a YOLO data set (DATA.yaml: ``path``, ``train`` and ``val`` image folders, labels beside
them, ``names``) to a model a camera can use::

    edgecount models finetune --data site.yaml --out site-model
    # site-model/detector.onnx       float ONNX: vision count --model, a camera's model:
    # site-model/detector.int8.onnx  INT8, calibrated on the site's own training images
    # site-model/MODEL_CARD.md       data, settings, figures on the val split, the command

It starts from ``models/weights/shelf-yolo11n.pt`` and reuses the training recipe's training,
export and INT8 quantisation (:mod:`models.recipe`). Every class of the data set counts as an
item (ultralytics' ``single_cls``): the detector stays one-class, as the counting expects.
The val split is scored like ``models eval``: exact-count rate and MAE per image (per
location where a ``truth/`` record of the simulator sits beside it), plus ultralytics' mAP50.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecount.exitcodes import ExitCode
from edgecount.progress import Progress
from edgecount.yamlcfg import ConfigError
from gateway.vision.roi import Roi, candidate_floor, count_rois
from models import TRAIN_EXTRA
from models.artifacts import EXPORT_SHAPE, MODELS_DIR, offline_ultralytics
from models.detector import DEFAULT_CONF, Detector, load_detector
from models.evaluate import EvalReport
from models.finetune_card import model_card
from models.recipe import TrainRecipe, export_onnx, quantize_int8, train
from models.site_data import SiteData, beside, label_path, load_site_data, read_labels

SHIPPED_WEIGHTS = MODELS_DIR / "weights" / "shelf-yolo11n.pt"

DEFAULT_EPOCHS = 40
"""Sized so that 80 labelled images fine-tune in ≤ 15 minutes on a 2-core CPU: with 80 training
and 40 validation images (960x544) the whole command took 9 min 58 s there (training 583 s,
about 14.5 s an epoch; export, INT8 calibration and scoring 12 s). The margin covers larger
camera frames and a busy machine."""

CALIBRATION_IMAGES = 32
"""Training images (at most) the INT8 model is calibrated on."""

FINETUNE_SETTINGS: dict[str, Any] = {
    "single_cls": True,
    "pretrained": True,
    "optimizer": "AdamW",
    "lr0": 0.0005,
    "warmup_epochs": 0.0,
}
"""ultralytics arguments on top of the recipe: every class is an item; the start weights are
loaded (the recipe's ``pretrained=False`` trains a fresh network); AdamW at a quarter of
the learning rate the recipe's automatic choice gives, and no warm-up. The weights are trained
already: ultralytics' warm-up lasts at least 100 batches with the biases' rate at 0.1, which
on a small data set is the whole run and wipes the shipped detector out."""


@dataclass(frozen=True, slots=True)
class Options:
    """The command's checked options."""

    data: Path
    out: Path
    epochs: int
    imgsz: tuple[int, int]
    batch: int
    device: str
    weights: Path

    def command(self) -> str:
        """The command line that reproduces the run."""
        return (
            f"edgecount models finetune --data {self.data} --epochs {self.epochs}"
            f" --imgsz {self.imgsz[0]},{self.imgsz[1]} --batch {self.batch}"
            f" --device {self.device} --weights {self.weights} --out {self.out}"
        )


def _imgsz(text: str) -> tuple[int, int]:
    height, sep, width = text.replace("x", ",").partition(",")
    try:
        size = (int(height), int(width)) if sep else (int(height), int(height))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use 288,480 or 480)") from None
    if min(size) < 32 or any(side % 32 for side in size):
        raise argparse.ArgumentTypeError(f"{text!r}: each side must be a multiple of 32")
    return size


def add_models_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``edgecount models finetune``."""
    parser.add_argument(
        "--data", type=Path, required=True, help="DATA.yaml of a YOLO data set (path, train, val)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for detector.onnx, INT8 and MODEL_CARD.md"
    )
    parser.add_argument(
        "--epochs", type=int, default=DEFAULT_EPOCHS, help=f"epochs (default {DEFAULT_EPOCHS})"
    )
    parser.add_argument(
        "--imgsz",
        type=_imgsz,
        default=EXPORT_SHAPE,
        metavar="H,W",
        help=f"network input, height,width in multiples of 32 (default "
        f"{EXPORT_SHAPE[0]},{EXPORT_SHAPE[1]}; trained at the longer side, letterboxed)",
    )
    parser.add_argument("--batch", type=int, default=16, help="images per batch (default 16)")
    parser.add_argument(
        "--device", default=None, help="cpu, or a CUDA device such as 0 (default: 0 if present)"
    )
    parser.add_argument(
        "--weights", type=Path, default=SHIPPED_WEIGHTS, help="weights to start from (.pt)"
    )


def _say(line: str) -> None:
    print(line, flush=True)


def _fail(message: str) -> int:
    print(f"edgecount models finetune: {message}", file=sys.stderr)
    return ExitCode.USAGE


def _default_device() -> str:
    import torch  # the train extra; imported only once a run is under way

    return "0" if torch.cuda.is_available() else "cpu"


def _setup_problem(args: argparse.Namespace) -> str | None:
    """What stops the run before the data set is read, if anything."""
    if args.epochs < 1 or args.batch < 1:
        return "--epochs and --batch must be at least 1"
    if not args.weights.is_file():
        return f"--weights {args.weights}: no such file"
    if importlib.util.find_spec("ultralytics") is None:
        return "ultralytics is not installed; install the training extra: " + TRAIN_EXTRA
    if args.device not in (None, "cpu") and _default_device() == "cpu":
        return f"--device {args.device}: no CUDA device here (use --device cpu)"
    return None


def run_models_finetune(args: argparse.Namespace) -> int:
    """Check the data set, fine-tune, export, quantise, score; write the model card."""
    try:
        data = load_site_data(args.data)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return _fail(f"{args.data}: {len(exc.issues)} problem(s) in the data set")
    problem = _setup_problem(args)
    if problem is not None:
        return _fail(problem)
    options = Options(
        data=args.data,
        out=args.out,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device or _default_device(),
        weights=args.weights,
    )
    try:
        summary = finetune(data, options)
    except OSError as exc:  # an unreadable image, a full disk: the file is named in exc
        return _fail(str(exc))
    print(json.dumps(summary, indent=2))
    return 0


def finetune(data: SiteData, options: Options) -> dict[str, Any]:
    """Fine-tune on ``data``; write the three files under ``options.out``; return the figures."""
    out, work = options.out, options.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    data_yaml = work / "data.yaml"
    data_yaml.write_text(data.ultralytics_yaml())
    counts = {split: len(images) for split, images in data.images.items()}
    _say(f"fine-tuning {options.weights.name} on {counts['train']} images"
         f" ({counts['val']} to validate) on {options.device}")  # fmt: skip
    recipe = replace(
        TrainRecipe(),
        model=str(options.weights),
        epochs=options.epochs,
        imgsz=max(options.imgsz),
        batch=options.batch,
    )
    started = time.monotonic()
    with Progress("finetune", total=options.epochs, unit="epochs") as progress:
        best = train(
            recipe, data_yaml, work / "run", say=_say, device=options.device,
            overrides=FINETUNE_SETTINGS, progress=progress,
        )  # fmt: skip
    trained = time.monotonic() - started
    onnx = export_onnx(best, out / "detector.onnx", imgsz=options.imgsz, run_dir=work)
    calibration = [_read(p) for p in data.images["train"][:CALIBRATION_IMAGES]]
    int8 = quantize_int8(onnx, out / "detector.int8.onnx", images=calibration, say=_say)
    figures = {
        "float": score(load_detector(onnx, conf=candidate_floor(DEFAULT_CONF)), data),
        "int8": score(load_detector(int8, conf=candidate_floor(DEFAULT_CONF)), data),
        "mAP50": ultralytics_map50(best, data_yaml, recipe, options.device, work),
    }
    summary: dict[str, Any] = {
        "command": options.command(),
        "images": counts,
        "names": data.names,
        "train_seconds": round(trained, 1),
        "total_seconds": round(time.monotonic() - started, 1),
        "recipe": _training_settings(recipe) | FINETUNE_SETTINGS | {"device": options.device},
        "start": str(options.weights),
        "weights": str(best),
        "figures": figures,
    }
    (out / "MODEL_CARD.md").write_text(model_card(summary))
    (out / "finetune.json").write_text(json.dumps(summary, indent=2) + "\n")
    _say(f"wrote {out / 'detector.onnx'}, {int8.name} and MODEL_CARD.md")
    return summary


RENDERED_DATA = ("train_images", "val_images", "varied_images", "varied_val")
"""Recipe settings of the rendered data set, which a fine-tune on a site's images does not use."""


def _training_settings(recipe: TrainRecipe) -> dict[str, Any]:
    """The recipe's settings that apply to a fine-tune (not those of the rendered data)."""
    return {k: v for k, v in recipe.as_dict().items() if k not in RENDERED_DATA}


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"{path}: not an image OpenCV can read")
    return image


def _truth_rois(image: Path, size: tuple[int, int]) -> list[tuple[Roi, int]] | None:
    """The simulator's per-location truth beside ``image`` (``truth/`` for ``images/``)."""
    record = beside(image, "truth", ".json")
    if record == image.with_suffix(".json") or not record.is_file():
        return None
    truth = json.loads(record.read_text())
    if (truth.get("height"), truth.get("width")) != size:
        return None
    return [
        (Roi(loc["name"], np.asarray(loc["polygon"], np.float32), loc.get("sku")), loc["count"])
        for loc in truth["locations"]
    ]


def score(detector: Detector, data: SiteData) -> dict[str, Any]:
    """Counting accuracy on the val split, as ``models eval`` reports it.

    Each image is one location (its label lines the truth) unless the simulator's truth
    record lies beside it; then each of its locations counts.
    """
    report = EvalReport()
    for index, path in enumerate(data.images["val"]):
        image = _read(path)
        started = time.perf_counter()
        detections = detector.detect(image)
        report.seconds += time.perf_counter() - started
        located = _truth_rois(path, (image.shape[0], image.shape[1]))
        if located is None:
            counts = count_rois(detections, [], conf=DEFAULT_CONF)
            truth = len(read_labels(label_path(path)))
            report.add(index, path.name, truth, next(iter(counts.values())).count)
        else:
            counts = count_rois(detections, [roi for roi, _ in located], conf=DEFAULT_CONF)
            for roi, truth in located:
                report.add(index, f"{path.name}:{roi.name}", truth, counts[roi.name].count)
        report.images += 1
    return report.summary()


def ultralytics_map50(
    weights: Path, data_yaml: Path, recipe: TrainRecipe, device: str, work: Path
) -> float:
    """mAP50 of ``weights`` on the val split by ultralytics' own validation."""
    with offline_ultralytics(work):
        from ultralytics import YOLO  # optional and heavy: imported here only

        metrics = YOLO(str(weights)).val(
            data=str(data_yaml), imgsz=recipe.imgsz, batch=recipe.batch, rect=recipe.rect,
            single_cls=True, device=device, plots=False, verbose=False,
            project=str(work), name="val", exist_ok=True,
        )  # fmt: skip
    return round(float(metrics.box.map50), 4)
