"""Vision benchmark: counting accuracy on held-out shelves, and ONNX Runtime vs PyTorch latency.

    .venv/bin/python bench/vision.py [--images 200] [--foreign-images 100] [--sets own,wood,wire]
                                     [--parts accuracy,latency] [--latency-images 40]

1. Accuracy: the shipped ONNX detectors (INT8, what gateways run, and float) count every
   location of each chosen set's held-out shelves; exact-count rate, MAE, RMSE and relative
   error per location, scored by :func:`models.evaluate.evaluate` for every set alike.
   ``own``: ``--images`` shelves of the training renderer the training never saw (seed 1000,
   each image with its own products; goal: exact >= 95 %, MAE <= 0.3 for locations of up to
   60 items). ``wood``, ``wire``: ``--foreign-images`` shelves of each foreign renderer
   (:mod:`simulators.camera.foreign`, seed 5000), which shares no drawing code with the
   training renderer: shelves the detector has never seen the like of (issue 13's goal:
   exact >= 90 %).
2. Latency: the trained weights through ONNX Runtime (INT8 and float, default threads and
   one thread), through OpenVINO (the same two .onnx files; the optional back-end) and
   through ultralytics on PyTorch, on the same images, in alternating blocks (3 rounds) so
   all see the same machine load; median milliseconds per image including pre- and
   post-processing, and the ratios (goals: ONNX >= 2x faster than PyTorch; OpenVINO kept
   only if >= 1.3x faster than ONNX Runtime at the same counting accuracy, which part 1
   measures for every back-end).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.vision.roi import candidate_floor, count_rois
from models.artifacts import SHELF_INT8, SHELF_ONNX
from models.detector import (
    DEFAULT_CONF,
    Backend,
    Detector,
    UltralyticsDetector,
    load_detector,
)
from models.evaluate import SETS, evaluate, held_out, held_out_set, rois_of

SHELF_PT = SHELF_ONNX.with_suffix(".pt")
PARTS = ("accuracy", "latency")


Models = dict[str, tuple[Path, Backend]]
"""Label -> (the .onnx file, the back-end that runs it)."""


def accuracy(
    model: Path, backend: Backend, name: str, images: int, conf: float
) -> dict[str, object]:
    """Counting figures of the ONNX model (on ``backend``) on the held-out set ``name``."""
    detector = load_detector(model, backend=backend, conf=candidate_floor(conf))

    def progress(n: int) -> None:
        if n % 25 == 0 or n == images:
            print(f"  accuracy {name}: {n}/{images} images", file=sys.stderr, flush=True)

    return evaluate(detector, held_out_set(name, images), conf=conf, progress=progress).summary()


def latency(
    models: Models, weights: Path, images: int, conf: float, rounds: int = 3
) -> dict[str, object]:
    """Median ms per image for each back-end, on the same images, in alternating blocks.

    Each round runs every back-end over all the images in turn. Blocks rather than image by
    image: ONNX Runtime's worker threads keep polling for a moment after each call, and would
    slow whichever back-end ran next.
    """
    floor = candidate_floor(conf)
    backends: dict[str, Detector] = {}
    for label, (path, backend) in models.items():
        backends[label] = load_detector(path, backend=backend, conf=floor)
        backends[f"{label}-1-thread"] = load_detector(path, backend=backend, conf=floor, threads=1)
    backends["ultralytics"] = UltralyticsDetector(weights, conf=floor)
    shelves = list(held_out(images, seed=2000))
    for detector in backends.values():  # warm-up: first calls allocate
        for shelf in shelves[:3]:
            detector.detect(shelf.image)
    times: dict[str, list[float]] = {name: [] for name in backends}
    totals: dict[str, list[int]] = {name: [] for name in backends}
    for _ in range(rounds):
        for name, detector in backends.items():
            totals[name].clear()
            for shelf in shelves:
                started = time.perf_counter()
                found = detector.detect(shelf.image)
                times[name].append(time.perf_counter() - started)
                counts = count_rois(found, rois_of(shelf), conf=conf).values()
                totals[name].append(sum(c.count for c in counts))
    agree = sum(len(set(per_image)) == 1 for per_image in zip(*totals.values(), strict=True))
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    return {
        "images": len(shelves),
        "torch_threads": torch_threads(),
        "median_ms": {name: round(ms, 1) for name, ms in medians.items()},
        "images_per_second": {name: round(1000 / ms, 1) for name, ms in medians.items()},
        "speedup_over_pytorch": {
            name: round(medians["ultralytics"] / ms, 2)
            for name, ms in medians.items()
            if name != "ultralytics"
        },
        "speedup_over_onnx_int8": {
            name: round(medians["onnx-int8"] / ms, 2)
            for name, ms in medians.items()
            if name.startswith("openvino")
        },
        "same_total_count": f"{agree}/{len(shelves)}",
    }


def torch_threads() -> int:
    """Threads ultralytics left PyTorch with (it sets CPU count - 1 on CPU)."""
    import torch  # the train extra: only this comparison needs it

    return int(torch.get_num_threads())


def names(text: str, allowed: tuple[str, ...], option: str) -> list[str]:
    """A comma-separated choice, checked: ``own,wood`` -> ``["own", "wood"]``."""
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in allowed]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"{option}: unknown {', '.join(unknown) or 'empty list'};"
            f" choose from {', '.join(allowed)}"
        )
    return chosen


def parse_args() -> argparse.Namespace:
    """The command line (every option has its help)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="own held-out images for accuracy")
    parser.add_argument(
        "--foreign-images", type=int, default=100, help="held-out images of each foreign set"
    )
    parser.add_argument(
        "--sets",
        type=lambda text: names(text, SETS, "--sets"),
        default=list(SETS),
        help=f"held-out sets to count, comma-separated (default: {','.join(SETS)})",
    )
    parser.add_argument(
        "--parts",
        type=lambda text: names(text, PARTS, "--parts"),
        default=list(PARTS),
        help="what to measure, comma-separated (default: accuracy,latency)",
    )
    parser.add_argument("--latency-images", type=int, default=40, help="images for latency")
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds per back-end")
    parser.add_argument("--model", type=Path, default=SHELF_INT8, help="INT8 ONNX model")
    parser.add_argument("--float-model", type=Path, default=SHELF_ONNX, help="float ONNX model")
    parser.add_argument("--conf", type=float, default=DEFAULT_CONF, help="counting threshold")
    parser.add_argument("--weights", type=Path, default=SHELF_PT, help="the same model as .pt")
    args = parser.parse_args()
    if min(args.images, args.foreign_images, args.latency_images, args.rounds) < 1:
        parser.error("--images, --foreign-images, --latency-images and --rounds must be >= 1")
    return args


def report_accuracy(
    models: Models, sets: list[str], args: argparse.Namespace
) -> dict[str, dict[str, object]]:
    """Count every chosen set with every model, print one line each; figures by set, model."""
    figures: dict[str, dict[str, object]] = {}
    for name in sets:
        images = args.images if name == "own" else args.foreign_images
        goal = "95" if name == "own" else "90"
        figures[name] = {}
        for label, (path, backend) in models.items():
            acc = accuracy(path, backend, name, images, args.conf)
            figures[name][label] = acc
            print(
                f"accuracy {label} on {name}: {acc['locations']} locations in {acc['images']}"
                f" images ({acc['exact_images']} counted exactly throughout):"
                f" exact {acc['exact_rate']:.1%} (goal >= {goal} %), MAE"
                f" {acc['mae']:.3f} (goal <= 0.3), RMSE {acc['rmse']:.3f},"
                f" relative error {acc['mean_relative_error']:.2%},"
                f" max {acc['max_items_per_location']} items/location",
                flush=True,
            )
    return figures


def report_latency(models: Models, args: argparse.Namespace) -> dict[str, object]:
    """Measure and print the latency part."""
    lat = latency(models, args.weights, args.latency_images, args.conf, args.rounds)
    ms, speedup = lat["median_ms"], lat["speedup_over_pytorch"]
    assert isinstance(ms, dict)
    assert isinstance(speedup, dict)
    over_onnx = lat["speedup_over_onnx_int8"]
    assert isinstance(over_onnx, dict)
    print(
        f"latency per image (ultralytics/PyTorch {ms['ultralytics']} ms with"
        f" {lat['torch_threads']} thread(s), its CPU default; same total count on"
        f" {lat['same_total_count']} images):"
    )
    for name, value in ms.items():
        if name != "ultralytics":
            versus = f", {over_onnx[name]}x onnx-int8" if name in over_onnx else ""
            print(f"  {name:<26} {value:>6} ms  {speedup[name]:>5}x faster than PyTorch{versus}")
    return lat


def main() -> int:
    """Run the chosen parts and print the figures (a JSON object last)."""
    args = parse_args()
    started = time.monotonic()
    models: Models = {
        "onnx-int8": (args.model, "onnx"),
        "onnx-float": (args.float_model, "onnx"),
        "openvino-int8": (args.model, "openvino"),
        "openvino-float": (args.float_model, "openvino"),
    }
    for path, _backend in models.values():
        if not path.is_file():
            print(f"bench/vision.py: no model at {path}", file=sys.stderr)
            return 2
    result: dict[str, object] = {}
    if "accuracy" in args.parts:
        result["accuracy"] = report_accuracy(models, args.sets, args)
    if "latency" in args.parts:
        result["latency"] = report_latency(models, args)
    result["seconds"] = round(time.monotonic() - started)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
