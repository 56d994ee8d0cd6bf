"""Write rendered shelves as a data set: YOLO images + labels for training, JSON truth for counting.

Layout (what ultralytics reads, plus the counting truth next to it)::

    OUT/data.yaml                 # path, train/val image folders, one class: item
    OUT/images/{train,val}/NNNNNN.jpg
    OUT/labels/{train,val}/NNNNNN.txt   # class cx cy w h, normalised
    OUT/truth/{train,val}/NNNNNN.json   # locations: polygon, sku, count; boxes
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from simulators.camera.render import RenderSettings, ShelfImage, make_catalogue, render_shelf

CLASS_NAMES = ("item",)

Progress = Callable[[int, int], None]
"""Called with (images written, images in total)."""


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """How many images of which kind to write."""

    train: int = 400
    val: int = 80
    seed: int = 0
    settings: RenderSettings = field(default_factory=RenderSettings)
    """Every image gets its own product catalogue, so no two images share a look."""


def yolo_labels(shelf: ShelfImage) -> str:
    """The YOLO label file of one image: ``0 cx cy w h`` per item, normalised to 0..1."""
    h, w = shelf.image.shape[:2]
    lines = []
    for x1, y1, x2, y2 in shelf.boxes.tolist():
        cx, cy = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h
        lines.append(f"0 {cx:.6f} {cy:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def truth_record(shelf: ShelfImage, image_name: str) -> dict[str, Any]:
    """The counting truth of one image as JSON-ready data."""
    return {
        "image": image_name,
        "width": int(shelf.image.shape[1]),
        "height": int(shelf.image.shape[0]),
        "locations": [
            {
                "name": b.location,
                "sku": b.sku,
                "count": b.count,
                "polygon": [[round(float(x), 2), round(float(y), 2)] for x, y in b.polygon],
            }
            for b in shelf.bins
        ],
        "boxes": [[round(v, 2) for v in box] for box in shelf.boxes.tolist()],
        "owners": shelf.owners,
    }


def write_dataset(out: Path, spec: DatasetSpec, progress: Progress | None = None) -> Path:
    """Render and write the data set; returns the path of ``data.yaml``."""
    rng = np.random.default_rng(spec.seed)

    def shelves(count: int) -> Iterator[ShelfImage]:
        for _ in range(count):
            yield render_shelf(rng, spec.settings, make_catalogue(rng))

    splits = (("train", shelves(spec.train)), ("val", shelves(spec.val)))
    return write_splits(out, splits, spec.train + spec.val, progress)


def write_splits(
    out: Path,
    splits: Iterable[tuple[str, Iterable[ShelfImage]]],
    total: int,
    progress: Progress | None = None,
) -> Path:
    """Write rendered shelves in the YOLO layout (images, labels, truth per split) and
    ``data.yaml``; returns its path. Each split's shelves are taken in order, one at a time."""
    done = 0
    for split, shelves in splits:
        for folder in ("images", "labels", "truth"):
            (out / folder / split).mkdir(parents=True, exist_ok=True)
        for index, shelf in enumerate(shelves):
            stem = f"{index:06d}"
            image = out / "images" / split / f"{stem}.jpg"
            if not cv2.imwrite(str(image), shelf.image):
                raise OSError(f"could not write {image}")
            (out / "labels" / split / f"{stem}.txt").write_text(yolo_labels(shelf))
            record = truth_record(shelf, f"images/{split}/{stem}.jpg")
            (out / "truth" / split / f"{stem}.json").write_text(json.dumps(record))
            done += 1
            if progress is not None:
                progress(done, total)
    data = out / "data.yaml"
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASS_NAMES))
    data.write_text(
        f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
    )
    return data


def read_truth(path: Path) -> dict[str, Any]:
    """One truth record written by :func:`write_dataset`."""
    record: dict[str, Any] = json.loads(path.read_text())
    return record
