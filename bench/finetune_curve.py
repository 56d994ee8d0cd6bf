"""Fine-tuning curve: N labelled images of a new kind of shelf -> exact-count rate on unseen ones.

    .venv/bin/python bench/finetune_curve.py [--renderers wood,wire] [--sizes 20,40,80]
        [--epochs 40] [--val 20] [--held-out 100] [--weights models/weights/shelf-yolo11n.pt]
        [--work /tmp/edgecount-curve] [--json curve.json]

Each foreign renderer (:mod:`simulators.camera.foreign`) stands in for a site whose shelves
the detector never saw. For every size N it writes N training images of that renderer (an
independent pool of seed 6000) and ``--val`` images for the fine-tune's own val split, runs
``edgecount models finetune`` (the same function, default settings but ``--epochs``), and
scores the INT8 model it wrote on the renderer's held-out set (seed 5000, never used for
training or choosing anything) and on the training renderer's own held-out set (seed 1000),
which shows what the fine-tune forgot. The start model is scored the same way first, so
every row of the table is measured in one run on one machine.

Issue 13's goal: 80 labelled images -> >= 95 % exact on unseen shelves of that kind.
Time: about 10 minutes a fine-tune of 80 images at 40 epochs on a 2-core CPU; the whole
default curve (2 renderers x 3 sizes) about 45 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.vision.roi import candidate_floor
from models.artifacts import EXPORT_SHAPE
from models.detector import DEFAULT_CONF, load_detector
from models.evaluate import evaluate, held_out_set
from models.finetune import DEFAULT_EPOCHS, SHIPPED_WEIGHTS, Options, finetune
from models.site_data import load_site_data
from simulators.camera.foreign import RENDERERS, write_foreign

TRAIN_SEED = 6000
FIGURES = ("exact_rate", "mae", "mean_relative_error")
"""Seed of the fine-tuning pools (the held-out sets are 5000 and 1000)."""


def scores(model: Path, renderer: str, held_out: int, own: int) -> dict[str, dict[str, object]]:
    """INT8 counting figures of ``model`` on the renderer's and the own held-out sets."""
    detector = load_detector(model, conf=candidate_floor(DEFAULT_CONF))
    figures = {}
    for name, count in ((renderer, held_out), ("own", own)):
        if count:
            report = evaluate(detector, held_out_set(name, count), conf=DEFAULT_CONF)
            summary = report.summary()
            figures[name] = {key: summary[key] for key in FIGURES}
    return figures


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renderers", default="wood,wire", help="foreign renderers (wood,wire)")
    parser.add_argument("--sizes", default="20,40,80", help="training images per point")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="fine-tuning epochs")
    parser.add_argument("--val", type=int, default=20, help="images of the fine-tune's val split")
    parser.add_argument("--held-out", type=int, default=100, help="held-out images scored")
    parser.add_argument("--own", type=int, default=100, help="own held-out images scored")
    parser.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS, help="start weights")
    parser.add_argument(
        "--start-model", type=Path, default=None, help="INT8 ONNX of the start, the 0-image row"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgecount-curve"))
    parser.add_argument("--device", default="cpu", help="cpu, or a CUDA device such as 0")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here too")
    args = parser.parse_args()
    unknown = set(args.renderers.split(",")) - set(RENDERERS)
    if unknown:
        parser.error(f"--renderers: unknown {sorted(unknown)} (known: {sorted(RENDERERS)})")
    return args


def main() -> int:
    args = parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    rows: list[dict[str, object]] = []
    for renderer in args.renderers.split(","):
        if args.start_model is not None:
            figures = scores(args.start_model, renderer, args.held_out, args.own)
            rows.append({"renderer": renderer, "images": 0, "seconds": 0.0, **figures})
            print(json.dumps(rows[-1]), flush=True)
        for size in sizes:
            folder = args.work / f"{renderer}{size}"
            data_yaml = write_foreign(folder / "data", renderer, train=size, val=args.val,
                                      seed=TRAIN_SEED)  # fmt: skip
            options = Options(
                data=data_yaml, out=folder / "model", epochs=args.epochs, imgsz=EXPORT_SHAPE,
                batch=16, device=args.device, weights=args.weights,
            )  # fmt: skip
            started = time.monotonic()
            summary = finetune(load_site_data(data_yaml), options)
            seconds = round(time.monotonic() - started, 1)
            figures = scores(folder / "model" / "detector.int8.onnx", renderer, args.held_out,
                             args.own)  # fmt: skip
            rows.append({"renderer": renderer, "images": size, "seconds": seconds,
                         "train_seconds": summary["train_seconds"], **figures})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    print("\n| renderer | images | seconds | exact (held-out) | MAE | own exact |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        site = row[str(row["renderer"])]
        own = row.get("own", {})
        assert isinstance(site, dict)
        assert isinstance(own, dict)
        print(f"| {row['renderer']} | {row['images']} | {row['seconds']} "
              f"| {100 * float(site['exact_rate']):.1f} % | {float(site['mae']):.3f} "
              f"| {100 * float(own.get('exact_rate', 0)):.1f} % |")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
