"""``edgecount vision count``: count items per location in one shelf image.

The detector runs at :func:`~gateway.vision.roi.candidate_floor` so near misses are seen;
items are counted at ``--conf`` and the near misses only lower each count's confidence.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from edgecount.argtypes import bounded
from edgecount.exitcodes import ExitCode
from gateway.vision.annotate import annotate, check_writable, write_annotated
from gateway.vision.roi import (
    DEFAULT_MARGIN,
    WHOLE_IMAGE,
    Roi,
    RoiCount,
    RoiError,
    assign,
    candidate_floor,
    count_rois,
)
from gateway.vision.roi_config import load_count_rois
from models.artifacts import SHELF_INT8
from models.detections import Detections
from models.detector import DEFAULT_CONF, DEFAULT_IOU, ModelError, load_detector
from models.tiling import TRAINING_FRAME, TileSettings

PROG = "edgecount vision count"


def _tile_size(text: str) -> tuple[int, int]:
    """``W`` or ``WxH`` in pixels."""
    try:
        parts = [int(part) for part in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected W or WxH in pixels, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 16:
        raise argparse.ArgumentTypeError(f"expected W or WxH of at least 16 pixels, got {text!r}")
    return parts[0], parts[1]


_fraction = bounded(float, 0.0, 1.0, "a number")


def add_vision_count_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``edgecount vision count``."""
    parser.add_argument("--image", type=Path, required=True, help="the shelf image")
    parser.add_argument(
        "--rois",
        type=Path,
        metavar="FILE",
        help="regions: a gateway configuration (its camera's ROIs, see --camera), a camera's"
        " 'rois:' list as written there (location, polygon, sku), a list of name/polygon"
        " regions or a simulator truth record (YAML/JSON); default: the whole image",
    )
    parser.add_argument(
        "--camera",
        metavar="NAME",
        help="with --rois FILE a gateway configuration: the camera whose ROIs to count"
        " (default: its only camera)",
    )
    parser.add_argument(
        "--model", type=Path, default=SHELF_INT8, help=f"weights (.onnx or .pt; {SHELF_INT8.name})"
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "onnx", "openvino", "ultralytics"),
        default="auto",
        help="inference back-end; auto: by the model's suffix (default: %(default)s); openvino"
        " runs the .onnx on OpenVINO (pip install 'edgecount[openvino]')",
    )
    parser.add_argument(
        "--conf",
        type=_fraction,
        default=DEFAULT_CONF,
        help="least score of a counted item (default: %(default)s)",
    )
    parser.add_argument(
        "--iou",
        type=_fraction,
        default=DEFAULT_IOU,
        help="NMS IoU threshold (default: %(default)s)",
    )
    parser.add_argument(
        "--margin",
        type=_fraction,
        default=DEFAULT_MARGIN,
        help="scores within this of --conf are in doubt and lower a count's confidence"
        " (default: %(default)s)",
    )
    parser.add_argument(
        "--tile",
        action="store_true",
        help="detect in overlapping tiles when the image is larger than one (for frames larger"
        " than the detector's training frames)",
    )
    parser.add_argument(
        "--tile-size",
        type=_tile_size,
        metavar="WxH",
        help=f"tile size in image pixels (default: {TRAINING_FRAME[0]}x{TRAINING_FRAME[1]},"
        " the frames the shelf detector was trained on); implies --tile",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--annotate", type=Path, metavar="OUT.png", help="write a drawn image")


def run_vision_count(args: argparse.Namespace) -> int:
    """Count the image.

    Exit 0 when counted; 2 for an unreadable image, a bad regions file, a missing or
    unloadable model, or an annotation path that cannot be written; 1 when writing the
    annotated image fails after counting.
    """
    image = _read_image(args.image)
    if image is None:
        return _fail(f"cannot read an image from {args.image}")
    if args.annotate is not None:
        try:
            check_writable(args.annotate)
        except OSError as exc:
            return _fail(str(exc))
    try:
        rois = _regions(args.rois, args.camera)
    except RoiError as exc:
        return _fail(str(exc))
    tile = None
    if args.tile or args.tile_size:
        width, height = args.tile_size or TRAINING_FRAME
        tile = TileSettings(width=width, height=height)
    try:
        detector = load_detector(
            args.model,
            backend=args.backend,
            conf=candidate_floor(args.conf, args.margin),
            iou=args.iou,
            tile=tile,
        )
    except (ModelError, ValueError) as exc:
        hint = "" if Path(args.model).exists() else " (train one with `edgecount models train`)"
        return _fail(f"{exc}{hint}")
    detections = detector.detect(image)
    counts = count_rois(detections, rois, conf=args.conf, margin=args.margin)
    report = count_report(detections, rois, counts, conf=args.conf)
    if args.annotate is not None:
        try:
            write_annotated(
                args.annotate, annotate(image, detections, rois, counts, conf=args.conf)
            )
        except OSError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return ExitCode.FAILED
    if args.json:
        print(json.dumps(report))
    else:
        print_counts(report, counts, sys.stdout)
    return ExitCode.OK


def _regions(path: Path | None, camera: str | None) -> list[Roi]:
    if path is None and camera is not None:
        raise RoiError("--camera needs --rois FILE (a gateway configuration)")
    return [] if path is None else load_count_rois(path, camera)


def _read_image(path: Path) -> np.ndarray[Any, np.dtype[np.uint8]] | None:
    if not Path(path).is_file():
        return None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else np.asarray(image, dtype=np.uint8)


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return ExitCode.USAGE


def count_report(
    detections: Detections, rois: list[Roi], counts: dict[str, RoiCount], *, conf: float
) -> dict[str, Any]:
    """The ``--json`` object: total, counts, detections (with their region) and confidence.

    ``total`` is every item detected in the image; ``unassigned`` those outside every region
    (so ``total = sum(counts) + unassigned``).
    """
    items = np.flatnonzero(detections.scores >= conf)
    if rois:
        owner = assign(detections.bottom_centres()[items], rois)
        where: list[str | None] = [rois[o].name if o >= 0 else None for o in owner.tolist()]
    else:
        where = [WHOLE_IMAGE] * len(items)
    return {
        "total": len(items),
        "counts": {name: c.count for name, c in counts.items()},
        "confidence": {name: round(c.confidence, 4) for name, c in counts.items()},
        "unassigned": sum(1 for name in where if name is None),
        "detections": [
            {
                "box": [round(float(v), 1) for v in detections.boxes[i]],
                "score": round(float(detections.scores[i]), 4),
                "roi": name,
            }
            for i, name in zip(items.tolist(), where, strict=True)
        ],
    }


def print_counts(report: dict[str, Any], counts: dict[str, RoiCount], out: TextIO) -> None:
    """The table printed without ``--json``."""
    width = max(8, *(len(name) for name in counts))
    out.write(f"{'LOCATION':<{width}}  {'SKU':<12} {'COUNT':>6} {'CONFIDENCE':>10}  IN DOUBT\n")
    for name, count in counts.items():
        out.write(
            f"{name:<{width}}  {count.sku or '-':<12} {count.count:>6}"
            f" {count.confidence:>10.2f}  {count.ambiguous}\n"
        )
    out.write(f"{report['total']} items detected")
    if report["unassigned"]:
        out.write(f", {report['unassigned']} outside every location")
    out.write("\n")
