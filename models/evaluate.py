"""Counting accuracy of a detector on a held-out set of simulated shelves.

The held-out set is rendered from its own seed (default 1000; training uses 0), so its
product looks, fills, occlusions and tilts were never seen in training. Each location's
count (boxes whose bottom-centre lies in its polygon) is compared with the truth:

- exact-count rate: share of locations counted exactly;
- MAE / RMSE: mean absolute / root-mean-square count error per location;
- relative error: mean of |counted - truth| / truth over locations that hold items.

``edgecount models eval`` prints these; ``bench/vision.py`` records them. This is the training
side (it renders shelves with the simulator), so it lives here and not in the gateway, whose
inference path imports no simulator; it counts with the gateway's own ROI rule.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.exitcodes import ExitCode
from gateway.vision.roi import Roi, candidate_floor, count_rois
from models.artifacts import SHELF_INT8
from models.detector import DEFAULT_CONF, DEFAULT_IOU, Detector, load_detector
from simulators.camera.foreign import HELD_OUT_SEED as FOREIGN_SEED
from simulators.camera.foreign import RENDERERS, foreign_held_out
from simulators.camera.render import RenderSettings, ShelfImage, make_catalogue, render_shelf
from simulators.camera.varied import VARIED_SEED, varied_shelves

HELD_OUT_SEED = 1000
SETS = ("own", "varied", *RENDERERS)
"""Held-out sets: the first training renderer's own, the domain-randomised training renderer's
(:mod:`simulators.camera.varied`), then each foreign renderer (:mod:`simulators.camera.foreign`,
which shares no drawing code with either)."""


@dataclass(slots=True)
class EvalReport:
    """Counting accuracy over a set of images."""

    images: int = 0
    locations: int = 0
    exact: int = 0
    exact_images: int = 0
    """Images with every location counted exactly."""
    abs_error: int = 0
    sq_error: int = 0
    rel_errors: list[float] = field(default_factory=list)
    max_truth: int = 0
    seconds: float = 0.0
    worst: list[dict[str, Any]] = field(default_factory=list)

    def add(self, image: int, location: str, truth: int, counted: int) -> None:
        """Record one location's count."""
        error = counted - truth
        self.locations += 1
        self.exact += error == 0
        self.abs_error += abs(error)
        self.sq_error += error * error
        self.max_truth = max(self.max_truth, truth)
        if truth:
            self.rel_errors.append(abs(error) / truth)
        if error:
            self.worst.append(
                {"image": image, "location": location, "truth": truth, "counted": counted}
            )

    def summary(self) -> dict[str, Any]:
        """The figures, JSON-ready."""
        n = max(self.locations, 1)
        return {
            "images": self.images,
            "locations": self.locations,
            "exact_rate": round(self.exact / n, 4),
            "exact_images": self.exact_images,
            "mae": round(self.abs_error / n, 4),
            "rmse": round(math.sqrt(self.sq_error / n), 4),
            "mean_relative_error": round(float(np.mean(self.rel_errors)), 4)
            if self.rel_errors
            else 0.0,
            "max_items_per_location": self.max_truth,
            "images_per_second": round(self.images / self.seconds, 2) if self.seconds else None,
            "miscounts": sorted(
                self.worst, key=lambda w: -abs(int(w["counted"]) - int(w["truth"]))
            )[:10],
        }


def held_out(
    count: int, seed: int = HELD_OUT_SEED, settings: RenderSettings | None = None
) -> Iterator[ShelfImage]:
    """``count`` rendered shelves that training never saw (each with its own products)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield render_shelf(rng, settings or RenderSettings(), make_catalogue(rng))


DEFAULT_SEEDS = {"own": HELD_OUT_SEED, "varied": VARIED_SEED}
"""Each held-out set's seed (the foreign sets: their module's)."""


def held_out_set(name: str, count: int, seed: int | None = None) -> Iterator[ShelfImage]:
    """``count`` shelves of the held-out set ``name`` (one of :data:`SETS`).

    Args:
        name: ``own`` (the first training renderer), ``varied`` (the domain-randomised
            training renderer) or a foreign renderer's name.
        count: Images to render.
        seed: The set's seed; None for its default (own 1000, varied 2000, foreign 5000).
    """
    seed = DEFAULT_SEEDS.get(name, FOREIGN_SEED) if seed is None else seed
    if name == "own":
        return held_out(count, seed)
    if name == "varied":
        return varied_shelves(count, seed)
    scenes = foreign_held_out(name, count, seed)
    return (scene.shelf for scene in scenes)


def rois_of(shelf: ShelfImage) -> list[Roi]:
    """The shelf's locations as counting ROIs (polygon and planogram SKU)."""
    return [Roi(b.location, b.polygon, b.sku) for b in shelf.bins]


def evaluate(
    detector: Detector,
    shelves: Iterator[ShelfImage],
    *,
    conf: float = DEFAULT_CONF,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Count every shelf's locations with ``detector`` and compare with the truth.

    Items count at ``conf``; run the detector at :func:`candidate_floor` of it (or lower).
    """
    report = EvalReport()
    for index, shelf in enumerate(shelves):
        if not shelf.bins:  # no location wholly in the frame: nothing to count
            continue
        started = time.perf_counter()
        detections = detector.detect(shelf.image)
        report.seconds += time.perf_counter() - started
        counts = count_rois(detections, rois_of(shelf), conf=conf)
        for b in shelf.bins:
            report.add(index, b.location, b.count, counts[b.location].count)
        report.exact_images += all(counts[b.location].count == b.count for b in shelf.bins)
        report.images += 1
        if progress is not None:
            progress(report.images)
    return report


def add_models_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``edgecount models eval``."""
    parser.add_argument("--model", type=Path, default=SHELF_INT8, help="ONNX or .pt weights")
    parser.add_argument(
        "--backend",
        choices=("auto", "onnx", "openvino", "ultralytics"),
        default="auto",
        help="inference",
    )
    parser.add_argument(
        "--conf", type=float, default=DEFAULT_CONF, help="least score of a counted item"
    )
    parser.add_argument("--iou", type=float, default=DEFAULT_IOU, help="NMS IoU threshold")
    parser.add_argument("--tile", action="store_true", help="tiled inference")
    parser.add_argument("--images", type=int, default=100, help="held-out images to render")
    parser.add_argument(
        "--set",
        choices=SETS,
        default="own",
        help="held-out set: own (the first training renderer, default), varied (the"
        " domain-randomised one) or a foreign renderer",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"held-out set seed (default {HELD_OUT_SEED} own, {VARIED_SEED} varied,"
        f" {FOREIGN_SEED} foreign)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run_models_eval(args: argparse.Namespace) -> int:
    """Render the held-out set, count it, print the figures."""
    if args.images < 1:
        print("edgecount models eval: --images must be at least 1", file=sys.stderr)
        return ExitCode.USAGE
    try:
        detector = load_detector(
            args.model,
            backend=args.backend,
            conf=candidate_floor(args.conf),
            iou=args.iou,
            tile=args.tile,
        )
    except (FileNotFoundError, ImportError, ValueError) as exc:
        print(f"edgecount models eval: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    step = max(1, args.images // 10)

    def progress(done: int) -> None:
        if not args.json and (done % step == 0 or done == args.images):
            print(f"  {done}/{args.images} images", flush=True)

    shelves = held_out_set(args.set, args.images, args.seed)
    report = evaluate(detector, shelves, conf=args.conf, progress=progress)
    default_seed = DEFAULT_SEEDS.get(args.set, FOREIGN_SEED)
    summary = report.summary() | {
        "model": str(args.model),
        "set": args.set,
        "seed": default_seed if args.seed is None else args.seed,
        "conf": args.conf,
        "iou": args.iou,
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"{summary['locations']} locations in {summary['images']} images:"
        f" exact {summary['exact_rate']:.1%}, MAE {summary['mae']:.3f},"
        f" RMSE {summary['rmse']:.3f}, relative error {summary['mean_relative_error']:.2%},"
        f" {summary['images_per_second']} images/s"
    )
    for miss in summary["miscounts"]:
        print(f"  image {miss['image']} {miss['location']}: {miss['counted']} for {miss['truth']}")
    return 0
