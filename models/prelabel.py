"""``edgecount models prelabel``: draft YOLO labels from the current detector, for a person to fix.

A site's frames (``edgecount models collect``) are labelled by the shipped ONNX detector on
ONNX Runtime (no ultralytics needed), and written in the usual YOLO data set layout that CVAT,
Label Studio and ``edgecount models finetune`` read::

    OUT/data.yaml                   path, train, val, names
    OUT/classes.txt                 one class name a line (Label Studio's YOLO import)
    OUT/images/{train,val}/NAME     the images, copied
    OUT/labels/{train,val}/STEM.txt one line per item: ``class cx cy w h``, normalised 0..1

Every fifth image (by sorted name) goes to ``val`` unless ``--val-every`` says otherwise, so
the split is the same each time it is run. Labels a person has corrected are never overwritten
unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecount.argtypes import bounded
from edgecount.exitcodes import ExitCode
from edgecount.progress import Progress
from models.artifacts import SHELF_ONNX
from models.detections import Detections
from models.detector import DEFAULT_CONF, DEFAULT_IOU, Detector, ModelError, load_detector

PROG = "edgecount models prelabel"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
"""Image files prelabel reads (by suffix, any case)."""
DEFAULT_NAMES = {0: "item"}


class PrelabelError(ValueError):
    """The images folder or the output folder cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class PrelabelSummary:
    """What a prelabel run wrote.

    Attributes:
        images: Images labelled (train and val).
        val: Of those, the images put in the ``val`` split.
        boxes: Boxes written in all label files.
        unreadable: Files with an image suffix that OpenCV could not read (skipped).
        data_yaml: The data set file written.
    """

    images: int
    val: int
    boxes: int
    unreadable: tuple[Path, ...]
    data_yaml: Path


def yolo_lines(detections: Detections, width: int, height: int) -> list[str]:
    """One ``class cx cy w h`` line per box, normalised to the image and clipped to it."""
    lines = []
    limits = np.array([width, height, width, height], dtype=np.float64)
    for box, cls in zip(detections.boxes.astype(np.float64), detections.classes, strict=True):
        x1, y1, x2, y2 = np.clip(box, 0.0, limits) / limits
        if x2 <= x1 or y2 <= y1:
            continue
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        lines.append(f"{int(cls)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def find_images(folder: Path) -> list[Path]:
    """The images directly in ``folder``, sorted by name.

    Raises:
        PrelabelError: No such folder, no image in it, or two images share a stem (their
            label files would collide).
    """
    if not folder.is_dir():
        raise PrelabelError(f"{folder}: no such folder")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise PrelabelError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    stems: dict[str, Path] = {}
    for image in images:
        if image.stem in stems:
            raise PrelabelError(
                f"{image} and {stems[image.stem]} share the name {image.stem!r}: their labels"
                " would be one file; rename one"
            )
        stems[image.stem] = image
    return images


def data_yaml_text(out: Path, names: dict[int, str]) -> str:
    """The ``data.yaml`` of the data set in ``out`` (YOLO layout)."""
    lines = [
        f"path: {out.resolve()}",
        "train: images/train",
        "val: images/val",
        "names:",
        *(f"  {index}: {name}" for index, name in sorted(names.items())),
    ]
    return "\n".join(lines) + "\n"


def _check_out(out: Path, images: Sequence[Path], overwrite: bool) -> None:
    if overwrite:
        return
    for split in ("train", "val"):
        for image in images:
            label = out / "labels" / split / f"{image.stem}.txt"
            if label.exists():
                raise PrelabelError(
                    f"{label} exists (perhaps corrected by hand); use --overwrite to replace"
                    " the labels, or another --out"
                )


def prelabel(
    images_dir: Path,
    out: Path,
    detector: Detector,
    *,
    names: dict[int, str] | None = None,
    val_every: int = 5,
    overwrite: bool = False,
) -> PrelabelSummary:
    """Label every image of ``images_dir`` with ``detector`` into a YOLO data set at ``out``.

    Args:
        images_dir: The folder of images (not searched recursively).
        out: The data set folder (created).
        detector: The detector; its threshold decides which boxes are written.
        names: Class names by index; ``{0: "item"}`` when None.
        val_every: Every n-th image (by sorted name, from the n-th) goes to ``val``; 0: none.
        overwrite: Replace label files already there.

    Raises:
        PrelabelError: See :func:`find_images`, or labels already there without
            ``overwrite``, or ``val_every`` negative.
        OSError: Writing to ``out`` failed.
    """
    if val_every < 0:
        raise PrelabelError(f"--val-every must be 0 or more, got {val_every}")
    images = find_images(images_dir)
    _check_out(out, images, overwrite)
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    unreadable: list[Path] = []
    labelled = val = boxes = 0
    with Progress("prelabel", total=len(images), unit="images") as progress:
        for index, path in enumerate(images, start=1):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            progress.update(index)
            if image is None:
                unreadable.append(path)
                continue
            split = "val" if val_every and index % val_every == 0 else "train"
            height, width = image.shape[:2]
            lines = yolo_lines(detector.detect(np.asarray(image, np.uint8)), width, height)
            shutil.copyfile(path, out / "images" / split / path.name)
            label = out / "labels" / split / f"{path.stem}.txt"
            label.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            labelled, val, boxes = labelled + 1, val + (split == "val"), boxes + len(lines)
    names = dict(names or DEFAULT_NAMES)
    data_yaml = out / "data.yaml"
    data_yaml.write_text(data_yaml_text(out, names), encoding="utf-8")
    classes = "".join(f"{name}\n" for _index, name in sorted(names.items()))
    (out / "classes.txt").write_text(classes, encoding="utf-8")
    return PrelabelSummary(labelled, val, boxes, tuple(unreadable), data_yaml)


_fraction = bounded(float, 0.0, 1.0, "a number", inclusive=False)


def add_models_prelabel_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``edgecount models prelabel``."""
    parser.add_argument(
        "--images", type=Path, required=True, metavar="DIR", help="folder of images to label"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="YOLO data set folder to write"
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=SHELF_ONNX,
        help=f"ONNX detector (default: the shipped {SHELF_ONNX.name})",
    )
    parser.add_argument(
        "--conf",
        type=_fraction,
        default=DEFAULT_CONF,
        help="least score of a box written (default: %(default)s); lower it to see more"
        " candidates to delete, raise it for fewer to check",
    )
    parser.add_argument(
        "--tile",
        action="store_true",
        help="detect in overlapping tiles (frames larger than the detector's training frames)",
    )
    parser.add_argument(
        "--val-every",
        type=int,
        default=5,
        metavar="N",
        help="every N-th image goes to the val split; 0 for none (default: %(default)s)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace label files already in --out"
    )


def run_models_prelabel(args: argparse.Namespace) -> int:
    """Label the images; exit 0 when done, 2 for a bad folder or model, 1 when writing fails."""
    try:
        detector = load_detector(
            args.model, backend="onnx", conf=args.conf, iou=DEFAULT_IOU, tile=args.tile
        )
    except (ModelError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    names = getattr(detector, "names", None) or DEFAULT_NAMES
    try:
        summary = prelabel(
            args.images,
            args.out,
            detector,
            names=names,
            val_every=args.val_every,
            overwrite=args.overwrite,
        )
    except PrelabelError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except OSError as exc:
        print(f"{PROG}: cannot write {args.out}: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    for path in summary.unreadable:
        print(f"{PROG}: skipped {path}: not a readable image", file=sys.stderr)
    print(
        f"labelled {summary.images} images ({summary.images - summary.val} train,"
        f" {summary.val} val), {summary.boxes} boxes; data set: {summary.data_yaml}"
    )
    return ExitCode.OK
