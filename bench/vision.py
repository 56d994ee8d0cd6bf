"""Vision benchmark: counting accuracy on held-out shelves, and ONNX Runtime vs PyTorch latency.

    .venv/bin/python bench/vision.py [--images 200] [--latency-images 40]

1. Accuracy: the shipped ONNX detector counts every location of ``--images`` rendered
   shelves the training never saw (seed 1000, each image with its own products); exact-count
   rate, MAE, RMSE and relative error per location (goal: exact >= 95 %, MAE <= 0.3 for
   locations of up to 60 items).
2. Latency: the same weights through ONNX Runtime (what gateways run) and through
   ultralytics on PyTorch, on the same images, in alternating blocks (3 rounds) so all see
   the same machine load; median milliseconds per image including pre- and post-processing, the
   ratio (goal: ONNX >= 2x faster) and images per second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.vision.evaluate import evaluate, held_out, rois_of
from gateway.vision.roi import candidate_floor, count_rois
from models.detector import DEFAULT_CONF, Detector, OnnxDetector, UltralyticsDetector
from models.recipe import SHELF_ONNX

SHELF_PT = SHELF_ONNX.with_suffix(".pt")


def accuracy(model: Path, images: int, conf: float) -> dict[str, object]:
    """Counting figures of the ONNX model on the held-out set."""
    detector = OnnxDetector(model, conf=candidate_floor(conf))
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done = n
        if n % 25 == 0:
            print(f"  accuracy: {n}/{images} images", file=sys.stderr, flush=True)

    return evaluate(detector, held_out(images), conf=conf, progress=progress).summary()


def latency(
    onnx: Path, weights: Path, images: int, conf: float, rounds: int = 3
) -> dict[str, object]:
    """Median ms per image for each back-end, on the same images, in alternating blocks.

    Each round runs every back-end over all the images in turn. Blocks rather than image by
    image: ONNX Runtime's worker threads spin for a while after each call, and would steal
    the CPU from whichever back-end ran next.
    """
    floor = candidate_floor(conf)
    backends: dict[str, Detector] = {
        "onnxruntime": OnnxDetector(onnx, conf=floor),
        "onnxruntime-1-thread": OnnxDetector(onnx, conf=floor, threads=1),
        "ultralytics": UltralyticsDetector(weights, conf=floor),
    }
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
        "speedup_onnx_over_pytorch": round(medians["ultralytics"] / medians["onnxruntime"], 2),
        "speedup_at_equal_threads": round(
            medians["ultralytics"] / medians["onnxruntime-1-thread"], 2
        ),
        "same_total_count": f"{agree}/{len(shelves)}",
    }


def torch_threads() -> int:
    """Threads ultralytics left PyTorch with (it sets CPU count - 1 on CPU)."""
    import torch  # the train extra: only this comparison needs it

    return int(torch.get_num_threads())


def main() -> int:
    """Run both parts and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="held-out images for accuracy")
    parser.add_argument("--latency-images", type=int, default=40, help="images for latency")
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds per back-end")
    parser.add_argument("--model", type=Path, default=SHELF_ONNX, help="ONNX model")
    parser.add_argument("--conf", type=float, default=DEFAULT_CONF, help="counting threshold")
    parser.add_argument("--weights", type=Path, default=SHELF_PT, help="the same model as .pt")
    args = parser.parse_args()
    started = time.monotonic()
    acc = accuracy(args.model, args.images, args.conf)
    print(
        f"accuracy: {acc['locations']} locations in {acc['images']} images:"
        f" exact {acc['exact_rate']:.1%} (goal >= 95 %), MAE {acc['mae']:.3f} (goal <= 0.3),"
        f" RMSE {acc['rmse']:.3f}, relative error {acc['mean_relative_error']:.2%},"
        f" max {acc['max_items_per_location']} items/location,"
        f" {acc['images_per_second']} images/s"
    )
    lat = latency(args.model, args.weights, args.latency_images, args.conf, args.rounds)
    ms = lat["median_ms"]
    assert isinstance(ms, dict)
    print(
        f"latency per image: onnxruntime {ms['onnxruntime']} ms (default threads),"
        f" {ms['onnxruntime-1-thread']} ms (1 thread); ultralytics/PyTorch {ms['ultralytics']} ms"
        f" ({lat['torch_threads']} thread(s), ultralytics' CPU default)"
        f" -> ONNX {lat['speedup_onnx_over_pytorch']}x faster (goal >= 2x),"
        f" {lat['speedup_at_equal_threads']}x at equal threads;"
        f" same total count on {lat['same_total_count']} images"
    )
    print(
        json.dumps({"accuracy": acc, "latency": lat, "seconds": round(time.monotonic() - started)})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
