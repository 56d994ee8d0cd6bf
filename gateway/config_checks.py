"""Checks of a gateway configuration beyond single values: references, sources, model files.

Each check returns every problem it finds as ``(loc, message)``, ``loc`` being the key path
relative to the model that runs it; :func:`raise_problems` turns them into one pydantic
``ValidationError``, so :func:`edgecount.yamlcfg.load_model` reports each with the file, the
line and the key, all at once, like any other validation error.

Checks that touch files (camera sources that are paths, model files loaded by ONNX Runtime)
run only when the validation context says ``check_files`` (as
:func:`gateway.config.load_gateway_config` does): models built in code skip them.

The checks read the configuration through the small protocols below (what each check looks
at), which :mod:`gateway.config`'s models satisfy; so the models' module imports the checks
and not the other way round.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]


class _Reader(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def antennas(self) -> Mapping[int, str]: ...


class _Roi(Protocol):
    @property
    def location(self) -> str: ...


class CameraShape(Protocol):
    """What the camera checks read of a camera's configuration."""

    @property
    def name(self) -> str:
        """The camera's name."""
        ...

    @property
    def url(self) -> str:
        """Its source."""
        ...

    @property
    def kind(self) -> str:
        """The kind of source."""
        ...

    @property
    def model(self) -> Path | None:
        """The detector (None: the shipped one)."""
        ...

    @property
    def backend(self) -> str:
        """The detector back-end."""
        ...

    @property
    def rois(self) -> Sequence[_Roi]:
        """Its regions of interest."""
        ...


class _Mobile(Protocol):
    @property
    def references(self) -> Mapping[str, str]: ...


class _Zone(Protocol):
    @property
    def readers(self) -> Sequence[str]: ...
    @property
    def cameras(self) -> Sequence[str]: ...
    @property
    def mobile(self) -> _Mobile | None: ...


class ConfigShape(Protocol):
    """What the reference checks read of a gateway configuration."""

    @property
    def readers(self) -> Sequence[_Reader]:
        """The readers."""
        ...

    @property
    def cameras(self) -> Sequence[CameraShape]:
        """The cameras."""
        ...

    @property
    def zones(self) -> Mapping[str, _Zone]:
        """The zones by name."""
        ...

    def reader(self, name: str) -> _Reader:
        """The reader called ``name``."""
        ...

    def camera(self, name: str) -> CameraShape:
        """The camera called ``name``."""
        ...


def raise_problems(title: str, problems: Sequence[Problem]) -> None:
    """Raise one ``ValidationError`` holding every problem; return when there is none."""
    if not problems:
        return
    details: list[InitErrorDetails] = [
        {
            "type": PydanticCustomError("gateway_config", "{why}", {"why": why}),
            "loc": loc,
            "input": None,
        }
        for loc, why in problems
    ]
    raise ValidationError.from_exception_data(title, details)


# -- references between entries --------------------------------------------------------------


def reference_problems(config: ConfigShape) -> list[Problem]:
    """Repeated reader or camera names, unknown names in zones, a location in two zones."""
    problems: list[Problem] = []
    for kind, names in (
        ("readers", [reader.name for reader in config.readers]),
        ("cameras", [camera.name for camera in config.cameras]),
    ):
        for index, name in enumerate(names):
            if name in names[:index]:
                problems.append(
                    (
                        (kind, index, "name"),
                        f"{name!r} is already the name of {kind}[{names.index(name)}]",
                    )
                )
    readers = {reader.name for reader in config.readers}
    cameras = {camera.name for camera in config.cameras}
    for zone_name, zone in config.zones.items():
        for kind, wanted, known in (
            ("readers", zone.readers, readers),
            ("cameras", zone.cameras, cameras),
        ):
            for index, name in enumerate(wanted):
                if name not in known:
                    listed = ", ".join(sorted(known)) or "none"
                    problems.append(
                        (
                            ("zones", zone_name, kind, index),
                            f"unknown {kind[:-1]} {name!r} (known: {listed})",
                        )
                    )
    if not problems:  # locations are only known once every name resolves
        problems += _shared_locations(config)
    return problems


def _zone_sources(config: ConfigShape, name: str, zone: _Zone) -> Iterable[tuple[Loc, str]]:
    """Each location of a zone with the key that puts it there."""
    if zone.mobile is not None:
        for location in zone.mobile.references.values():
            yield ("zones", name, "mobile", "references"), location
    else:
        for index, reader in enumerate(zone.readers):
            for location in config.reader(reader).antennas.values():
                yield ("zones", name, "readers", index), location
    for index, camera in enumerate(zone.cameras):
        for roi in config.camera(camera).rois:
            yield ("zones", name, "cameras", index), roi.location


def _shared_locations(config: ConfigShape) -> list[Problem]:
    """A location counted by two zones would have two retained counts that contradict."""
    owner: dict[str, str] = {}
    problems: dict[tuple[Loc, str], str] = {}
    for name, zone in config.zones.items():
        for loc, location in _zone_sources(config, name, zone):
            first = owner.setdefault(location, name)
            if first != name:
                problems.setdefault(
                    (loc, location),
                    f"location {location!r} is already in zone {first!r}; a location belongs to"
                    " one zone",
                )
    return [(loc, why) for (loc, _location), why in problems.items()]


# -- cameras ----------------------------------------------------------------------------------


def camera_problems(camera: CameraShape) -> list[Problem]:
    """The camera's source (URL scheme and kind, path present) and its model (loadable)."""
    problems: list[Problem] = []
    source = _source_problem(camera.url, camera.kind)
    if source is not None:
        problems.append((("url",), source))
    model = _model_problem(camera.model, camera.backend)
    if model is not None:
        problems.append((("model",), model))  # no `model:` key: the camera's line
    return problems


def _source_problem(url: str, kind: str) -> str | None:
    """Why the camera driver would refuse ``url`` (checked without opening anything)."""
    from drivers.camera.sources import make_source  # OpenCV: only for configs with cameras

    try:
        make_source(url, kind)
    except ValueError as exc:
        return str(exc)
    return None


def _model_problem(path: Path | None, backend: str) -> str | None:
    """Why the detector at ``path`` (None: the shipped one) would not load."""
    from models.artifacts import SHELF_INT8

    model = path or SHELF_INT8
    try:
        stat = model.stat()
    except OSError as exc:
        return f"no model file at {model} ({exc.strerror})"
    return _load_problem(model, backend, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _load_problem(path: Path, backend: str, _mtime_ns: int, _size: int) -> str | None:
    """Load the model once per file version, as the daemon would (ONNX Runtime session)."""
    from models.detector import ModelError, OnnxDetector

    chosen = backend
    if backend == "auto":
        chosen = {".onnx": "onnx", ".pt": "ultralytics"}.get(path.suffix.lower(), "")
        if not chosen:
            return (
                f"{path}: cannot tell the back-end from the suffix {path.suffix!r};"
                " use .onnx or .pt, or set backend"
            )
    if chosen != "onnx":
        return None  # ultralytics weights: present is all that can be checked without torch
    try:
        OnnxDetector(path)
    except (ModelError, ValueError) as exc:
        return str(exc)
    return None
