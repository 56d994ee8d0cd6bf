"""Twin vision benchmark: the shipped detector counting one full aisle of the warehouse twin.

    .venv/bin/python bench/twin_vision.py [--zone Z1] [--aisle 1 ...] [--seed 0] [--frames 3]
                                          [--clean] [--model PATH] [--json]

The default twin (:class:`simulators.twin.TwinSpec` ()) has aisles of 20 bays x 5 levels =
100 locations. They are rendered as fixed camera views (2 bays x 3 levels each, 960 x 544,
default occlusion, tilt, blur, noise and lighting; see :mod:`simulators.camera.twin_render`)
and counted as a gateway's fixed camera counts them: each view's ``cameras`` entry is
validated as :class:`gateway.config.CameraConfig`, its ROIs go through
:func:`gateway.vision.scan.rois_of`, the detector runs at the candidate floor, every frame is
counted by :func:`gateway.vision.roi.count_rois` at the counting threshold, and a location's
figure is the median over ``--frames`` frames (fresh lighting, blur and noise per frame).
Each figure is compared with the twin's truth: total items per location, every SKU together.

Printed: exact-count share, share within +-1, MAE and RMSE over the aisle's locations, the
same for one-SKU and two-SKU locations and by size, the worst miscounts, and how dense the
bins are compared with the held-out training-like images (items per bin, median item width).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.config import CameraConfig
from gateway.vision.roi import candidate_floor, count_rois
from gateway.vision.scan import rois_of
from models.artifacts import SHELF_INT8
from models.detector import DEFAULT_CONF, OnnxDetector
from models.evaluate import held_out
from simulators.camera.render import RenderSettings, ShelfImage, finish
from simulators.camera.twin_render import camera_views
from simulators.twin import TwinSpec, generate

SIZES = ((1, 12), (13, 24), (25, 48))


def figures(errors: list[int]) -> dict[str, Any]:
    """Exact share, share within +-1, MAE and RMSE of count errors."""
    n = max(len(errors), 1)
    return {
        "locations": len(errors),
        "exact_rate": round(sum(e == 0 for e in errors) / n, 4),
        "within_1_rate": round(sum(abs(e) <= 1 for e in errors) / n, 4),
        "mae": round(sum(abs(e) for e in errors) / n, 4),
        "rmse": round(math.sqrt(sum(e * e for e in errors) / n), 4),
    }


def density(shelves: list[ShelfImage]) -> dict[str, float]:
    """Items per bin (mean, max) and the median item width in pixels."""
    counts = [b.count for shelf in shelves for b in shelf.bins]
    widths = np.concatenate([shelf.boxes[:, 2] - shelf.boxes[:, 0] for shelf in shelves])
    return {
        "mean_items_per_bin": round(statistics.fmean(counts), 2),
        "max_items_per_bin": max(counts),
        "median_item_width_px": round(float(np.median(widths)), 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Render the aisle, count every view, compare with the twin."""
    twin = generate(TwinSpec(seed=args.twin_seed))
    settings = RenderSettings().clean() if args.clean else RenderSettings()
    detector = OnnxDetector(args.model, conf=candidate_floor(args.conf))
    skus = {loc: len(per) for loc, per in twin.truth_counts().items()}
    rows: list[dict[str, Any]] = []
    shelves: list[ShelfImage] = []
    started = time.perf_counter()
    for view in camera_views(twin, args.zone, args.aisle, settings=settings, seed=args.seed):
        shelves.append(view.shelf)
        entry = view.camera_config("http://127.0.0.1/snapshot.jpg", frames=args.frames)
        config = CameraConfig.model_validate(entry | {"conf": args.conf})
        rois = rois_of(config)
        rng = np.random.default_rng([args.seed, len(shelves)])
        per_location: dict[str, list[int]] = {roi.name: [] for roi in rois}
        for index in range(config.frames):
            image = view.shelf.image if index == 0 else finish(rng, view.scene, settings)
            counted = count_rois(detector.detect(image), rois, conf=config.conf)
            for name, count in counted.items():
                per_location[name].append(count.count)
        for location, truth in view.truth().items():
            counted_qty = round(statistics.median(per_location[location]))
            rows.append(
                {
                    "camera": view.name,
                    "location": location,
                    "skus": skus[location],
                    "truth": truth,
                    "counted": counted_qty,
                }
            )
    seconds = time.perf_counter() - started
    errors = [r["counted"] - r["truth"] for r in rows]
    by_skus = {
        f"{n}_sku": figures([r["counted"] - r["truth"] for r in rows if r["skus"] == n])
        for n in (1, 2)
    }
    by_size = {
        f"{low}-{high}_items": figures(
            [r["counted"] - r["truth"] for r in rows if low <= r["truth"] <= high]
        )
        for low, high in SIZES
    }
    worst = sorted(rows, key=lambda r: -abs(r["counted"] - r["truth"]))[:8]
    return {
        "zone": args.zone,
        "aisles": args.aisle,
        "views": len(shelves),
        "frames_per_view": args.frames,
        "settings": "clean" if args.clean else "default",
        "model": str(args.model),
        "conf": args.conf,
        "overall": figures(errors),
        "by_skus": by_skus,
        "by_size": by_size,
        "worst": [r for r in worst if r["counted"] != r["truth"]],
        "density": {
            "twin": density(shelves),
            "held_out": density(list(held_out(40, settings=settings))),
        },
        "seconds": round(seconds, 1),
    }


def main() -> int:
    """Run and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zone", default="Z1", help="twin zone")
    parser.add_argument("--aisle", type=int, nargs="+", default=[1], help="aisle numbers")
    parser.add_argument("--twin-seed", type=int, default=0, help="TwinSpec seed")
    parser.add_argument("--seed", type=int, default=0, help="rendering seed")
    parser.add_argument("--frames", type=int, default=3, help="frames counted per view (median)")
    parser.add_argument("--clean", action="store_true", help="no occlusion, tilt, blur, noise")
    parser.add_argument("--model", type=Path, default=SHELF_INT8, help="ONNX detector")
    parser.add_argument("--conf", type=float, default=DEFAULT_CONF, help="counting threshold")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return 0
    o = result["overall"]
    print(
        f"twin {result['zone']} aisle {','.join(map(str, result['aisles']))}:"
        f" {o['locations']} locations in"
        f" {result['views']} views ({result['settings']} settings, median of"
        f" {result['frames_per_view']} frames): exact {o['exact_rate']:.1%},"
        f" within +-1 {o['within_1_rate']:.1%}, MAE {o['mae']:.3f}, RMSE {o['rmse']:.3f}"
        f" ({result['seconds']} s)"
    )
    for label, group in (result["by_skus"] | result["by_size"]).items():
        print(
            f"  {label:<14} {group['locations']:>3} locations: exact {group['exact_rate']:.1%},"
            f" MAE {group['mae']:.3f}"
        )
    for name, d in result["density"].items():
        print(
            f"  density {name:<9} mean {d['mean_items_per_bin']} items/bin,"
            f" max {d['max_items_per_bin']}, median item width {d['median_item_width_px']} px"
        )
    for miss in result["worst"]:
        print(f"  {miss['location']} ({miss['skus']} SKU): {miss['counted']} for {miss['truth']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
