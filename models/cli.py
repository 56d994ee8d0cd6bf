"""``edgecount models train`` and ``edgecount models export``: the detector's recipe as commands.

``train`` renders the data set with the camera simulator, trains YOLO11n from its YAML with
ultralytics (offline), and exports the best weights to ONNX; ``export`` converts weights on
their own. Both need the ``train`` extra (``pip install 'edgecount[train]'``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from edgecount.exitcodes import ExitCode
from models import TRAIN_EXTRA
from models.artifacts import EXPORT_SHAPE, Shape
from models.recipe import (
    TrainRecipe,
    export_onnx,
    make_data,
    quantize_int8,
    train,
)


def _say(line: str) -> None:
    print(line, flush=True)


def _need(package: str) -> bool:
    """Whether ``package`` (of the training extra) is installed; says how to get it if not."""
    if importlib.util.find_spec(package) is not None:
        return True
    print(
        f"edgecount models: {package} is not installed; install the training extra: {TRAIN_EXTRA}",
        file=sys.stderr,
    )
    return False


def add_models_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``edgecount models train``."""
    defaults = TrainRecipe()
    parser.add_argument(
        "--out", type=Path, default=Path("runs/shelf"), help="work folder (data set, runs)"
    )
    parser.add_argument(
        "--train-images", type=int, default=defaults.train_images, help="training images"
    )
    parser.add_argument(
        "--val-images", type=int, default=defaults.val_images, help="validation images"
    )
    parser.add_argument(
        "--varied-images",
        type=int,
        default=defaults.varied_images,
        help="domain-randomised training images added (simulators/camera/varied; 0: none)",
    )
    parser.add_argument(
        "--varied-val", type=int, default=defaults.varied_val, help="their validation images"
    )
    parser.add_argument(
        "--start",
        type=Path,
        default=None,
        help="weights (.pt) to continue from instead of a fresh network",
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="training epochs")
    parser.add_argument(
        "--hours", type=float, default=None, help="wall-clock cap (overrides --epochs)"
    )
    parser.add_argument("--imgsz", type=int, default=defaults.imgsz, help="network input size")
    parser.add_argument("--batch", type=int, default=defaults.batch, help="images per batch")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="data and training seed")
    parser.add_argument("--device", default="cpu", help="cpu, or a CUDA device such as 0")
    parser.add_argument(
        "--onnx",
        type=Path,
        default=None,
        help="ONNX file to write (default OUT/shelf.onnx); then: edgecount models quantize",
    )
    _shape_argument(parser)


def _shape(text: str) -> Shape:
    height, sep, width = text.lower().partition("x")
    try:
        return (int(height), int(width)) if sep else int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use 480 or 288x480)") from None


def _shape_argument(parser: argparse.ArgumentParser) -> None:
    default = f"{EXPORT_SHAPE[0]}x{EXPORT_SHAPE[1]}"
    parser.add_argument(
        "--shape",
        type=_shape,
        default=EXPORT_SHAPE,
        help=f"ONNX input, HEIGHTxWIDTH or one side of a square (default {default})",
    )


def run_models_train(args: argparse.Namespace) -> int:
    """Render data, train, export; print progress and a JSON summary."""
    if not _need("ultralytics"):
        return ExitCode.USAGE
    for name in ("train_images", "val_images", "epochs", "imgsz", "batch"):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            print(f"edgecount models train: {flag} must be at least 1", file=sys.stderr)
            return ExitCode.USAGE
    if min(args.varied_images, args.varied_val) < 0:
        print("edgecount models train: --varied-images and --varied-val must not be negative",
              file=sys.stderr)  # fmt: skip
        return ExitCode.USAGE
    if args.start is not None and (args.start.suffix != ".pt" or not args.start.is_file()):
        print(f"edgecount models train: --start {args.start}: not a .pt file", file=sys.stderr)
        return ExitCode.USAGE
    recipe = replace(
        TrainRecipe(model=str(args.start)) if args.start is not None else TrainRecipe(),
        train_images=args.train_images,
        val_images=args.val_images,
        varied_images=args.varied_images,
        varied_val=args.varied_val,
        epochs=args.epochs,
        hours=args.hours,
        imgsz=args.imgsz,
        batch=args.batch,
        seed=args.seed,
    )
    out: Path = args.out
    started = time.monotonic()
    images = recipe.train_images + recipe.val_images + recipe.varied_images + recipe.varied_val
    _say(f"rendering {images} shelf images into {out / 'data'}")
    data = make_data(out / "data", recipe, say=_say)
    _say(f"training {recipe.model} at {recipe.imgsz} px on {args.device}")
    best = train(recipe, data, out / "run", say=_say, device=args.device)
    onnx = export_onnx(best, args.onnx or out / "shelf.onnx", imgsz=args.shape, run_dir=out)
    summary = {
        "weights": str(best),
        "onnx": str(onnx),
        "seconds": round(time.monotonic() - started, 1),
        "recipe": recipe.as_dict(),
    }
    (out / "recipe.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


def add_models_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``edgecount models export``."""
    parser.add_argument("weights", type=Path, help="trained ultralytics weights (.pt)")
    parser.add_argument("--out", type=Path, default=None, help="ONNX file (default: next to it)")
    _shape_argument(parser)


def run_models_export(args: argparse.Namespace) -> int:
    """Export weights to ONNX."""
    if not _need("ultralytics"):
        return ExitCode.USAGE
    weights: Path = args.weights
    if not weights.is_file():
        print(f"edgecount models export: {weights}: no such file", file=sys.stderr)
        return ExitCode.USAGE
    out = args.out or weights.with_suffix(".onnx")
    _say(f"exporting {weights} to {out} with input {args.shape}")
    export_onnx(weights, out, imgsz=args.shape)
    _say(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return 0


def add_models_quantize_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``edgecount models quantize``."""
    parser.add_argument("onnx", type=Path, help="the exported float model (.onnx)")
    parser.add_argument(
        "--out", type=Path, default=None, help="INT8 model to write (default: NAME-int8.onnx)"
    )
    parser.add_argument(
        "--images", type=int, default=32, help="rendered shelves to calibrate on (default 32)"
    )


def run_models_quantize(args: argparse.Namespace) -> int:
    """Quantise an exported detector to INT8."""
    source: Path = args.onnx
    if not source.is_file():
        print(f"edgecount models quantize: {source}: no such file", file=sys.stderr)
        return ExitCode.USAGE
    if args.images < 1:
        print("edgecount models quantize: --images must be at least 1", file=sys.stderr)
        return ExitCode.USAGE
    if not _need("onnx"):
        return ExitCode.USAGE
    out = args.out or source.with_name(f"{source.stem}-int8.onnx")
    quantize_int8(source, out, calibration_images=args.images, say=_say)
    return 0
