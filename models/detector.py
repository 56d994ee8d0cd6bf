"""Detectors: an image in, :class:`~models.detections.Detections` out.

Two back-ends run the same weights:

* :class:`OnnxDetector` -- onnxruntime on the CPU with the exported model. This is what a
  gateway runs: no PyTorch, fast start, small footprint.
* :class:`OpenVinoDetector` -- the same exported ``.onnx`` on Intel's OpenVINO runtime, an
  optional back-end (``pip install 'edgecount[openvino]'``): on this project's 2-core x86
  machine it ran the float model about 1.5x faster than onnxruntime ran the INT8 one at the
  same counting accuracy (docs/benchmarks.md).
* :class:`UltralyticsDetector` -- the training framework on a ``.pt`` checkpoint, for
  checking an export or trying weights before exporting them. Needs the ``train`` extra.

All letterbox the image to the same square input themselves (``models.postprocess``), so
given the same weights they see the same pixels and return the same boxes. Either can tile a
large image (``models.tiling``).
"""

from __future__ import annotations

import ast
import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from models import COUNT_CONF, TRAIN_EXTRA
from models.artifacts import EXPORT_SHAPE, SHELF_INT8, Shape, offline_ultralytics
from models.detections import Detections
from models.postprocess import detections_from_output, input_tensor, letterbox, unletterbox
from models.tiling import TileSettings, tiled_detect

Image = npt.NDArray[np.uint8]
Backend = Literal["onnx", "openvino", "ultralytics", "auto"]

DEFAULT_CONF = COUNT_CONF
DEFAULT_IOU = 0.3
"""Items on a shelf stand side by side and never overlap, while a duplicate box shifted by
half an item overlaps its twin at IoU 1/3: NMS at 0.3 removes such duplicates (a common error
on rows of identical items) and keeps every real neighbour."""
DEFAULT_MAX_DET = 1000
DEFAULT_IMGSZ: Shape = EXPORT_SHAPE
"""Input size of the ultralytics back-end: the size the ONNX model is exported at."""


class ModelError(Exception):
    """A model cannot be used: missing, unreadable, or its back-end is not installed."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """The model file does not exist."""


class BackendUnavailableError(ModelError, ImportError):
    """The back-end's package is not installed."""


@runtime_checkable
class Detector(Protocol):
    """Finds items in an image.

    Attributes:
        name: Back-end and model file, for logs and reports (``onnx:shelf-yolo11n.onnx``).
    """

    name: str

    def detect(self, image: Image) -> Detections:
        """Detections in a BGR ``H x W x 3`` uint8 image, in its pixel coordinates."""
        ...


def _check_image(image: Image) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected a BGR H x W x 3 uint8 image, got {image.dtype} array of shape {image.shape}"
        )


def _check_thresholds(conf: float, iou: float, max_det: int) -> None:
    if not 0.0 <= conf <= 1.0:
        raise ValueError(f"conf must be in 0..1, got {conf}")
    if not 0.0 <= iou <= 1.0:
        raise ValueError(f"iou must be in 0..1, got {iou}")
    if max_det < 1:
        raise ValueError(f"max_det must be at least 1, got {max_det}")


def _existing(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"no model at {path}")
    return path


class _LetterboxDetector:
    """What the back-ends share: checks, thresholds, tiling around one-crop detection, decoding."""

    name: str
    input_size: tuple[int, int]
    """``(height, width)`` of the network input."""
    iou: float
    max_det: int
    tile: TileSettings | None

    def detect(self, image: Image) -> Detections:
        """Detections in a BGR ``H x W x 3`` uint8 image, in its pixel coordinates."""
        _check_image(image)
        if self.tile is None:
            return self._detect_one(image)
        return tiled_detect(
            image,
            self._detect_one,
            self.tile,
            iou=self.iou,
            max_det=self.max_det,
        )

    def _detect_one(self, image: Image) -> Detections:
        raise NotImplementedError

    def _settle(
        self, path: Path, conf: float, iou: float, max_det: int, tile: TileSettings | None
    ) -> None:
        """Check and keep what every back-end takes (the weights and the thresholds)."""
        _check_thresholds(conf, iou, max_det)
        self.path = _existing(path)
        self.conf, self.iou, self.max_det, self.tile = conf, iou, max_det, tile

    def _decoded(
        self, output: npt.NDArray[np.float32], scale: float, pad: tuple[float, float], image: Image
    ) -> Detections:
        """The network's raw output as detections in ``image``'s pixels (thresholds, NMS)."""
        return detections_from_output(
            output,
            conf=self.conf,
            iou=self.iou,
            max_det=self.max_det,
            scale=scale,
            pad=pad,
            image_shape=image.shape,
        )


class OnnxDetector(_LetterboxDetector):
    """The exported detector on onnxruntime (CPU).

    Args:
        path: The ``.onnx`` file (fixed ``1 x 3 x H x W`` input, ``(1, 4 + nc, N)`` output).
        conf: Least score of a detection.
        iou: IoU above which NMS drops the weaker of two boxes of one class.
        max_det: Most detections per image.
        tile: Tile images larger than a tile (``None``: never).
        threads: onnxruntime intra-op threads (``None``: its default, one per core).

    Raises:
        ModelNotFoundError: ``path`` does not exist.
        ModelError: The file is not a loadable detector.
    """

    def __init__(
        self,
        path: Path,
        *,
        conf: float = DEFAULT_CONF,
        iou: float = DEFAULT_IOU,
        max_det: int = DEFAULT_MAX_DET,
        tile: TileSettings | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        self._settle(path, conf, iou, max_det, tile)
        self.name = f"onnx:{self.path.name}"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own unrelated exception types
            raise ModelError(f"{self.path}: not a loadable ONNX model: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self.input_size = _fixed_input_size(self.path, self._session.get_inputs()[0].shape)
        self.names = _metadata_names(self._session.get_modelmeta().custom_metadata_map)

    def _detect_one(self, image: Image) -> Detections:
        boxed, scale, pad = letterbox(image, self.input_size)
        (output, *_rest) = self._session.run(None, {self._input: input_tensor(boxed)})
        return self._decoded(np.asarray(output, dtype=np.float32), scale, pad, image)


class OpenVinoDetector(_LetterboxDetector):
    """The exported detector on OpenVINO (CPU): the same ``.onnx`` file as
    :class:`OnnxDetector`, the same pre- and post-processing, another runtime.

    One compiled model and one inference request per detector; calls from several threads
    (cameras sharing the detector) take turns, as each call already uses every core.

    Args:
        path: The ``.onnx`` file (fixed ``1 x 3 x H x W`` input).
        conf: Least score of a detection.
        iou: NMS IoU threshold.
        max_det: Most detections per image.
        tile: Tile images larger than a tile (``None``: never).
        threads: OpenVINO inference threads (``None``: its default, one per core).

    Raises:
        ModelNotFoundError: ``path`` does not exist.
        BackendUnavailableError: the ``openvino`` package is not installed.
        ModelError: The file is not a loadable detector.
    """

    def __init__(
        self,
        path: Path,
        *,
        conf: float = DEFAULT_CONF,
        iou: float = DEFAULT_IOU,
        max_det: int = DEFAULT_MAX_DET,
        tile: TileSettings | None = None,
        threads: int | None = None,
    ) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise BackendUnavailableError(
                "the openvino back-end needs the openvino package:"
                " pip install 'edgecount[openvino]'"
            ) from exc
        self._settle(path, conf, iou, max_det, tile)
        self.name = f"openvino:{self.path.name}"
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            core = ov.Core()
            model = core.read_model(str(self.path))
            compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError and its own types
            raise ModelError(f"{self.path}: not a loadable ONNX model: {exc}") from exc
        shape = model.inputs[0].partial_shape
        dims: list[Any] = list(shape.to_shape()) if shape.is_static else [None] * 4
        self.input_size = _fixed_input_size(self.path, [int(d) for d in dims if d is not None])
        self.names = _openvino_names(model)
        self._output = compiled.output(0)
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()  # one inference request: one call at a time

    def _detect_one(self, image: Image) -> Detections:
        boxed, scale, pad = letterbox(image, self.input_size)
        tensor = input_tensor(boxed)
        with self._lock:
            results = self._request.infer({0: tensor})
            # a copy: the request reuses its buffers on the next call
            output = np.array(results[self._output], dtype=np.float32)
        return self._decoded(output, scale, pad, image)


def _openvino_names(model: Any) -> dict[int, str]:
    """Class names from the ONNX metadata as OpenVINO keeps it (``framework`` run-time info)."""
    try:
        text = model.get_rt_info(["framework", "names"]).astype(str)
    except (RuntimeError, KeyError, IndexError):
        return {}
    return _metadata_names({"names": str(text)})


def _fixed_input_size(path: Path, shape: list[Any]) -> tuple[int, int]:
    """``(height, width)`` of a ``1 x 3 x H x W`` input with fixed sizes."""
    if len(shape) != 4 or not all(isinstance(dim, int) for dim in shape[2:]):
        raise ModelError(
            f"{path}: expected a fixed 1x3xHxW input, got {shape} (export with dynamic=False)"
        )
    return int(shape[2]), int(shape[3])


def _metadata_names(metadata: dict[str, str]) -> dict[int, str]:
    """Class names from ultralytics' ONNX metadata (``"{0: 'item'}"``), if present."""
    try:
        names = ast.literal_eval(metadata.get("names", "{}"))
    except (ValueError, SyntaxError):
        return {}
    if not isinstance(names, dict):
        return {}
    return {int(key): str(value) for key, value in names.items()}


@contextlib.contextmanager
def _ultralytics_quietly(run_dir: Path) -> Iterator[None]:
    """Offline ultralytics that logs only errors and prints to stderr, never to stdout."""
    saved = os.environ.get("YOLO_VERBOSE")
    os.environ["YOLO_VERBOSE"] = "false"
    try:
        with offline_ultralytics(run_dir), contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is None:
            os.environ.pop("YOLO_VERBOSE", None)
        else:
            os.environ["YOLO_VERBOSE"] = saved


class UltralyticsDetector(_LetterboxDetector):
    """A ``.pt`` checkpoint run by ultralytics on the CPU (needs the ``train`` extra).

    The image is letterboxed here to ``imgsz`` exactly as :class:`OnnxDetector` does,
    and ultralytics predicts on that square, so both back-ends agree on the same weights.

    Args:
        path: The ``.pt`` weights.
        conf: Least score of a detection.
        iou: NMS IoU threshold.
        imgsz: Input size, a square side or (height, width): the ONNX model's input.
        max_det: Most detections per image.
        tile: Tile images larger than a tile (``None``: never).

    Raises:
        ModelNotFoundError: ``path`` does not exist.
        BackendUnavailableError: ultralytics is not installed.
    """

    def __init__(
        self,
        path: Path,
        *,
        conf: float = DEFAULT_CONF,
        iou: float = DEFAULT_IOU,
        imgsz: Shape = DEFAULT_IMGSZ,
        max_det: int = DEFAULT_MAX_DET,
        tile: TileSettings | None = None,
    ) -> None:
        self._settle(path, conf, iou, max_det, tile)
        self.input_size = imgsz if isinstance(imgsz, tuple) else (imgsz, imgsz)
        self.name = f"ultralytics:{self.path.name}"
        self._settings = tempfile.TemporaryDirectory(prefix="edgecount-ultralytics-")
        with _ultralytics_quietly(Path(self._settings.name)):
            try:
                from ultralytics import YOLO
            except ImportError as exc:
                raise BackendUnavailableError(
                    f"the ultralytics back-end needs ultralytics: {TRAIN_EXTRA}"
                ) from exc
            try:
                self._model = YOLO(str(self.path))
            except Exception as exc:  # torch and ultralytics raise many unrelated types
                raise ModelError(f"{self.path}: not a loadable ultralytics model: {exc}") from exc
        self.names = {int(k): str(v) for k, v in dict(self._model.names).items()}

    def _detect_one(self, image: Image) -> Detections:
        boxed, scale, pad = letterbox(image, self.input_size)
        with _ultralytics_quietly(Path(self._settings.name)):
            (result, *_rest) = self._model.predict(
                boxed,
                imgsz=list(self.input_size),
                conf=self.conf,
                iou=self.iou,
                max_det=self.max_det,
                device="cpu",
                verbose=False,
            )
        found = result.boxes
        boxes = np.asarray(found.xyxy.numpy(), dtype=np.float32).reshape(-1, 4)
        return Detections(
            unletterbox(boxes, scale, pad, image.shape),
            np.asarray(found.conf.numpy(), dtype=np.float32).reshape(-1),
            np.asarray(found.cls.numpy(), dtype=np.int64).reshape(-1),
        )

    def close(self) -> None:
        """Remove the temporary ultralytics settings folder."""
        self._settings.cleanup()


def load_detector(
    path: Path | None = None,
    backend: Backend = "auto",
    *,
    conf: float = DEFAULT_CONF,
    iou: float = DEFAULT_IOU,
    max_det: int = DEFAULT_MAX_DET,
    tile: TileSettings | bool | None = None,
    threads: int | None = None,
    imgsz: Shape = DEFAULT_IMGSZ,
) -> Detector:
    """Load a detector.

    Args:
        path: ``.onnx`` or ``.pt`` weights; ``None`` for the committed shelf model.
        backend: ``onnx``, ``openvino`` (the ``.onnx`` on OpenVINO), ``ultralytics``, or
            ``auto`` (by the file's suffix: ``.onnx`` → onnx, ``.pt`` → ultralytics).
        conf: Least score of a detection.
        iou: NMS IoU threshold.
        max_det: Most detections per image.
        tile: Tile settings; ``True`` for the default tiles (the training frame's size),
            ``False`` or ``None`` for none.
        threads: onnxruntime or OpenVINO threads (not for ultralytics).
        imgsz: Input size of the ultralytics back-end (ONNX reads it from the model).

    Raises:
        ModelNotFoundError: The file does not exist.
        BackendUnavailableError: ultralytics or openvino is needed but not installed.
        ModelError: The file cannot be loaded by the chosen back-end.
        ValueError: Unknown back-end, or ``auto`` with a suffix that names none.
    """
    path = Path(path) if path is not None else SHELF_INT8
    settings = TileSettings() if tile is True else (tile or None)
    if backend == "auto":
        by_suffix = {".onnx": "onnx", ".pt": "ultralytics"}
        if path.suffix.lower() not in by_suffix:
            raise ValueError(
                f"{path}: cannot tell the back-end from the suffix {path.suffix!r};"
                " use .onnx or .pt, or name the back-end"
            )
        backend = "onnx" if by_suffix[path.suffix.lower()] == "onnx" else "ultralytics"
    _existing(path)
    if backend == "onnx":
        return OnnxDetector(
            path, conf=conf, iou=iou, max_det=max_det, tile=settings, threads=threads
        )
    if backend == "openvino":
        return OpenVinoDetector(
            path, conf=conf, iou=iou, max_det=max_det, tile=settings, threads=threads
        )
    if backend == "ultralytics":
        return UltralyticsDetector(
            path, conf=conf, iou=iou, imgsz=imgsz, max_det=max_det, tile=settings
        )
    raise ValueError(f"unknown back-end {backend!r}; use onnx, openvino, ultralytics or auto")
