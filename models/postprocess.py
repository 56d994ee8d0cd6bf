"""Pre- and post-processing of a YOLO detector, in plain numpy (no PyTorch).

The pipeline of one image::

    letterbox -> input_tensor -> (network) -> decode_yolo -> nms_per_class -> unletterbox

``letterbox`` scales the image to fit the network input keeping its aspect ratio and pads
the rest with grey (114), centred. The YOLOv8/YOLO11 detection head, exported without NMS,
outputs ``(1, 4 + nc, N)``: per anchor the box centre, width and height in input pixels,
then one sigmoid score per class. ``decode_yolo`` keeps anchors whose best class score
reaches the threshold, ``nms`` removes overlapping duplicates and ``unletterbox`` maps boxes
back to the source image.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from models.detections import Detections

Image = npt.NDArray[np.uint8]
Boxes = npt.NDArray[np.float32]
Indices = npt.NDArray[np.int64]

PAD_VALUE = 114
"""Grey of the letterbox borders (what the network saw in training)."""


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    return int(size[0]), int(size[1])


def letterbox(
    image: Image, size: int | tuple[int, int]
) -> tuple[Image, float, tuple[float, float]]:
    """Fit ``image`` into the network input, keeping its aspect ratio.

    Args:
        image: ``H x W x 3`` uint8 (BGR, as OpenCV reads it).
        size: Input size, one side of a square or ``(height, width)``.

    Returns:
        The padded ``size`` image (same channel order), the scale applied to the source and
        the left and top padding in input pixels: ``input = source * scale + pad``.
    """
    out_h, out_w = _hw(size)
    src_h, src_w = image.shape[:2]
    if src_h == 0 or src_w == 0:
        raise ValueError("cannot letterbox an empty image")
    scale = min(out_h / src_h, out_w / src_w)
    new_w = min(out_w, max(1, round(src_w * scale)))
    new_h = min(out_h, max(1, round(src_h * scale)))
    left, top = (out_w - new_w) // 2, (out_h - new_h) // 2
    canvas = np.full((out_h, out_w, *image.shape[2:]), PAD_VALUE, dtype=np.uint8)
    if (new_w, new_h) == (src_w, src_h):
        resized = image
    else:
        resized = np.asarray(
            cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR), dtype=np.uint8
        )
    canvas[top : top + new_h, left : left + new_w] = resized.reshape(new_h, new_w, *image.shape[2:])
    return canvas, scale, (float(left), float(top))


def input_tensor(letterboxed: Image) -> npt.NDArray[np.float32]:
    """``1 x 3 x H x W`` float32 RGB in 0..1 from a letterboxed BGR image."""
    rgb = letterboxed[:, :, ::-1].transpose(2, 0, 1)
    return np.ascontiguousarray(rgb, dtype=np.float32)[None] / np.float32(255.0)


def unletterbox(
    boxes: npt.NDArray[np.floating],
    scale: float,
    pad: tuple[float, float],
    image_shape: tuple[int, ...],
) -> Boxes:
    """Map ``(N, 4)`` xyxy boxes from input pixels back to the source image, clipped to it.

    Args:
        boxes: Boxes in network-input pixels.
        scale: The scale :func:`letterbox` returned.
        pad: The ``(left, top)`` padding :func:`letterbox` returned.
        image_shape: The source image's shape (``H, W, ...``).
    """
    height, width = image_shape[:2]
    offset = np.array([pad[0], pad[1], pad[0], pad[1]], dtype=np.float64)
    mapped = (np.asarray(boxes, dtype=np.float64).reshape(-1, 4) - offset) / scale
    limit = np.array([width, height, width, height], dtype=np.float64)
    return np.clip(mapped, 0.0, limit).astype(np.float32)


def decode_yolo(
    output: npt.NDArray[np.floating], conf: float
) -> tuple[Boxes, npt.NDArray[np.float32], Indices]:
    """Boxes, scores and classes of the anchors whose best class score is at least ``conf``.

    Args:
        output: The head's output, ``(1, 4 + nc, N)`` or ``(4 + nc, N)``: ``cx, cy, w, h``
            in input pixels then ``nc`` class scores (already sigmoid).
        conf: Score threshold.

    Returns:
        ``(K, 4)`` xyxy boxes in input pixels, ``(K,)`` scores and ``(K,)`` class indices,
        in anchor order.
    """
    array = np.asarray(output)
    if array.ndim == 3:
        if array.shape[0] != 1:
            raise ValueError(f"expected one image in the batch, got {array.shape[0]}")
        array = array[0]
    if array.ndim != 2 or array.shape[0] < 5:
        raise ValueError(f"expected a (1, 4 + classes, anchors) output, got {output.shape}")
    class_scores = array[4:]
    classes = np.argmax(class_scores, axis=0)
    scores = np.take_along_axis(class_scores, classes[None], axis=0)[0]
    keep = np.flatnonzero(scores.astype(np.float64) >= conf)
    cx, cy, w, h = (array[i, keep].astype(np.float32) for i in range(4))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return (
        boxes.astype(np.float32).reshape(-1, 4),
        scores[keep].astype(np.float32),
        classes[keep].astype(np.int64),
    )


def box_iou(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """``(N, M)`` intersection over union of xyxy boxes (0 where the union is empty)."""
    a64 = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b64 = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    inter = _intersection(a64, b64)
    area_a = _area(a64)[:, None]
    area_b = _area(b64)[None, :]
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_ioa(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """``(N, M)`` share of each box of ``a`` that lies inside each box of ``b``."""
    a64 = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b64 = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    inter = _intersection(a64, b64)
    area_a = np.broadcast_to(_area(a64)[:, None], inter.shape)
    return np.divide(inter, area_a, out=np.zeros_like(inter), where=area_a > 0)


def _area(boxes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    width = np.clip(boxes[:, 2] - boxes[:, 0], 0, None)
    return np.asarray(width * np.clip(boxes[:, 3] - boxes[:, 1], 0, None), dtype=np.float64)


def _intersection(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(bottom_right - top_left, 0, None)
    return np.asarray(wh[..., 0] * wh[..., 1], dtype=np.float64)


def nms(
    boxes: npt.NDArray[np.floating],
    scores: npt.NDArray[np.floating],
    iou: float,
    *,
    max_det: int | None = None,
) -> Indices:
    """Greedy non-maximum suppression.

    The best-scoring box is kept and every box overlapping it by an IoU above ``iou`` is
    dropped; then the next best remaining box, and so on. Equal scores keep input order.

    Returns:
        Indices of the kept boxes, best score first (at most ``max_det``).
    """
    boxes64 = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    limit = len(order) if max_det is None else max_det
    areas = _area(boxes64)
    kept: list[int] = []
    while order.size and len(kept) < limit:
        best = int(order[0])
        kept.append(best)
        rest = order[1:]
        top_left = np.maximum(boxes64[best, :2], boxes64[rest, :2])
        bottom_right = np.minimum(boxes64[best, 2:], boxes64[rest, 2:])
        wh = np.clip(bottom_right - top_left, 0, None)
        inter = wh[:, 0] * wh[:, 1]
        union = areas[best] + areas[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= iou]
    return np.asarray(kept, dtype=np.int64)


def nms_per_class(
    boxes: npt.NDArray[np.floating],
    scores: npt.NDArray[np.floating],
    classes: npt.NDArray[np.integer],
    iou: float,
    *,
    max_det: int | None = None,
) -> Indices:
    """Class-aware :func:`nms`: boxes of different classes never suppress each other."""
    boxes64 = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes64):
        return np.zeros((0,), dtype=np.int64)
    # Move each class to its own region of the plane, far from every other class.
    span = float(np.abs(boxes64).max()) * 2 + 1
    shifted = boxes64 + np.asarray(classes, dtype=np.float64)[:, None] * span
    return nms(shifted, scores, iou, max_det=max_det)


def detections_from_output(
    output: npt.NDArray[np.floating],
    *,
    conf: float,
    iou: float,
    max_det: int,
    scale: float,
    pad: tuple[float, float],
    image_shape: tuple[int, ...],
) -> Detections:
    """Decode, suppress and map back one image's head output: the whole post-processing."""
    boxes, scores, classes = decode_yolo(output, conf)
    keep = nms_per_class(boxes, scores, classes, iou, max_det=max_det)
    return Detections(
        unletterbox(boxes[keep], scale, pad, image_shape), scores[keep], classes[keep]
    )
