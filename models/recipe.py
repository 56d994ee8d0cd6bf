"""The reproducible recipe of the shelf detector: data, training and export.

Everything is made here, nothing is downloaded: the data set comes from the camera simulator,
the network is ultralytics' YOLO11 nano built from its YAML (random initial weights), and
ultralytics runs offline with its settings kept inside the run folder. Training is seeded and
deterministic on one machine; a GPU changes the numerics but not the recipe.

ultralytics (and so PyTorch) is imported only inside the functions that need it. This module
is the training side: the inference path (:mod:`models.detector`, the gateway) never imports it,
and finds the weights in :mod:`models.artifacts` (contracts in pyproject.toml).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.progress import Progress
from models.artifacts import EXPORT_SHAPE, Shape, offline_ultralytics
from simulators.camera.dataset import DatasetSpec, write_dataset
from simulators.camera.varied import write_varied

Say = Callable[[str], None]

CONTINUE_SETTINGS: dict[str, Any] = {
    "pretrained": True,
    "optimizer": "AdamW",
    "lr0": 0.001,
    "warmup_epochs": 0.0,
}
"""ultralytics arguments when the recipe continues from weights (``model`` a .pt): load them,
AdamW at half the rate the automatic choice gives a fresh network, and no warm-up (its bias
rate of 0.1 over the first 100 batches undoes what the weights had learned)."""


@dataclass(frozen=True, slots=True)
class TrainRecipe:
    """Every setting that decides the trained weights.

    Attributes:
        train_images: Rendered training images (960x544 shelves, a fresh catalogue each).
        val_images: Rendered validation images (mAP during training).
        varied_images: Training images of the domain-randomised renderer
            (:mod:`simulators.camera.varied`), added to ``train_images``.
        varied_val: Its validation images, added to ``val_images``.
        seed: Seed of the data and of training.
        imgsz: Network input size (longest side). 480 keeps the smallest items ~11 px.
        epochs: Epochs, unless ``hours`` caps the run first.
        hours: Wall-clock cap; ultralytics then spreads its schedule over the time.
        batch: Images per batch.
        model: The ultralytics model YAML (built from scratch, never a .pt download), or
            weights (.pt) of an earlier run to continue from.
        rect: Train on 480x288 letterboxed batches instead of squares (40 % less work; no mosaic).
        augment: Augmentation overrides passed to ultralytics.
    """

    train_images: int = 800
    val_images: int = 100
    varied_images: int = 800
    varied_val: int = 50
    seed: int = 0
    imgsz: int = 480
    epochs: int = 40
    hours: float | None = None
    batch: int = 16
    model: str = "yolo11n.yaml"
    rect: bool = True
    augment: dict[str, float] = field(
        default_factory=lambda: {
            "mosaic": 0.0,
            "scale": 0.15,
            "translate": 0.05,
            "fliplr": 0.5,
            "hsv_h": 0.02,
            "hsv_s": 0.5,
            "hsv_v": 0.3,
        }
    )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings (for the model card)."""
        return asdict(self)


def make_data(out: Path, recipe: TrainRecipe, say: Say = print) -> Path:
    """Render the training and validation images; returns ``data.yaml``.

    With ``varied_images`` the own shelves go to ``out/own`` and the varied ones to
    ``out/varied``, and ``out/data.yaml`` trains and validates on both.
    """
    total = recipe.train_images + recipe.val_images + recipe.varied_images + recipe.varied_val
    step = max(1, total // 10)
    written = 0

    def progress(done: int, _total: int) -> None:
        if (written + done) % step == 0 or written + done == total:
            say(f"data: {written + done}/{total} images")

    spec = DatasetSpec(train=recipe.train_images, val=recipe.val_images, seed=recipe.seed)
    if not recipe.varied_images and not recipe.varied_val:
        return write_dataset(out, spec, progress)
    write_dataset(out / "own", spec, progress)
    written = recipe.train_images + recipe.val_images
    write_varied(out / "varied", train=recipe.varied_images, val=recipe.varied_val,
                 seed=recipe.seed, progress=progress)  # fmt: skip
    data = out / "data.yaml"
    data.write_text(
        f"path: {out.resolve()}\n"
        "train: [own/images/train, varied/images/train]\n"
        "val: [own/images/val, varied/images/val]\n"
        "names:\n  0: item\n"
    )
    return data


def train(
    recipe: TrainRecipe,
    data_yaml: Path,
    run_dir: Path,
    *,
    say: Say = print,
    device: str = "cpu",
    overrides: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Train the detector; returns the path of the best weights (``.pt``).

    ``recipe.model`` is a model YAML (training from scratch) or a ``.pt`` file to start from
    (fine-tuning). ``overrides`` are further ultralytics training arguments (they win).
    Progress: ultralytics prints a bar per epoch, ``say`` gets one line per epoch with
    the validation figures, and ``progress`` (if given) is updated per epoch.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with offline_ultralytics(run_dir):
        from ultralytics import YOLO  # optional and heavy: imported here only

        model = YOLO(recipe.model)
        started = time.monotonic()

        def on_epoch(trainer: Any) -> None:
            metrics = trainer.metrics or {}
            done = trainer.epoch + 1
            map50 = metrics.get("metrics/mAP50(B)", 0.0)
            # ultralytics calls back once more after the last epoch, validating the best weights.
            what = f"epoch {done}/{trainer.epochs}" if done <= trainer.epochs else "best weights"
            say(
                f"{what}  mAP50 {map50:.3f}"
                f"  recall {metrics.get('metrics/recall(B)', 0.0):.3f}"
                f"  {time.monotonic() - started:.0f} s"
            )
            if progress is not None and done <= trainer.epochs:
                progress.update(done, f"mAP50 {map50:.3f}")

        model.add_callback("on_fit_epoch_end", on_epoch)
        arguments: dict[str, Any] = {
            "data": str(data_yaml),
            "epochs": recipe.epochs,
            "imgsz": recipe.imgsz,
            "batch": recipe.batch,
            "rect": recipe.rect,
            "seed": recipe.seed,
            "deterministic": True,
            "device": device,
            "workers": 0,
            "plots": False,
            "amp": False,
            "pretrained": False,
            **(CONTINUE_SETTINGS if recipe.model.endswith(".pt") else {}),
            "project": str(run_dir),
            "name": "train",
            "exist_ok": True,
            "verbose": False,
            **recipe.augment,
            **({"time": recipe.hours} if recipe.hours else {}),
            **(overrides or {}),
        }
        model.train(**arguments)
    best = run_dir / "train" / "weights" / "best.pt"
    if not best.exists():
        raise FileNotFoundError(f"training ended without {best}")
    return best


def export_onnx(
    weights: Path, out: Path, *, imgsz: Shape = EXPORT_SHAPE, run_dir: Path | None = None
) -> Path:
    """Export ``weights`` (.pt) to ONNX at ``out``: fixed 1x3xHxW input, opset 17, simplified.

    ultralytics' settings go to ``run_dir`` (a temporary folder when not given).
    """
    with contextlib.ExitStack() as stack:
        if run_dir is None:
            run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="export-")))
        return _export(weights, out, imgsz, run_dir)


def _export(weights: Path, out: Path, imgsz: Shape, run_dir: Path) -> Path:
    with offline_ultralytics(run_dir), warnings.catch_warnings():
        # The tracer notes that the head's shape check becomes a constant: intended, as the
        # exported input size is fixed.
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean")
        from ultralytics import YOLO  # optional and heavy: imported here only

        exported = Path(
            YOLO(str(weights)).export(
                format="onnx",
                imgsz=list(imgsz) if isinstance(imgsz, tuple) else imgsz,
                opset=17,
                simplify=True,
                dynamic=False,
                verbose=False,
            )
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    if exported.resolve() != out.resolve():
        exported.replace(out)
    return out


HEAD_PREFIX = "/model.23/"
"""ONNX node names of the YOLO11n detection head (layer 23 of its YAML)."""


def quantize_int8(
    source: Path,
    out: Path,
    *,
    calibration_images: int = 32,
    seed: int = 777,
    say: Say = print,
    images: Sequence[np.ndarray] | None = None,
) -> Path:
    """Quantise an exported detector to INT8 (QDQ, per-channel weights), calibrated on shelves.

    ``images`` (BGR frames, a site's own shelves) calibrate instead of rendered shelves.

    The head's decoding (DFL, box arithmetic, the concatenation of pixel boxes with 0..1
    scores) stays in float: one 8-bit scale cannot hold both ranges, and quantising it
    destroys the scores. Its convolutions are quantised like the rest of the network.
    Calibration images are rendered from their own seed (not training, tuning or held-out).
    """
    import onnx  # the train extra: only building a model needs it
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from models.postprocess import input_tensor, letterbox
    from simulators.camera.render import make_catalogue, render_shelf

    model = onnx.load(str(source))
    (graph_input,) = model.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    size = (int(dims[2].dim_value), int(dims[3].dim_value))
    if images is None:
        rng = np.random.default_rng(seed)
        say(f"quantising {source.name}: calibrating on {calibration_images} rendered shelves")
        images = [
            render_shelf(rng, None, make_catalogue(rng)).image for _ in range(calibration_images)
        ]
    else:
        say(f"quantising {source.name}: calibrating on {len(images)} images")
    batches = [{graph_input.name: input_tensor(letterbox(image, size)[0])} for image in images]

    class Shelves(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            return next(self._batches, None)

    exclude = [
        node.name
        for node in model.graph.node
        if node.name.startswith(HEAD_PREFIX) and not node.name.startswith(HEAD_PREFIX + "cv")
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quantise-") as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        quantize_static(
            str(prepared),
            str(out),
            Shelves(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
        )
    say(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return out
