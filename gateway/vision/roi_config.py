"""Regions for ``vision count`` read from the gateway configuration as it is written.

A person checks a camera's ROIs on a snapshot with the very file the gateway runs on. Three
kinds of file are told apart by their top-level keys:

* a whole gateway configuration (``gateway_id``, ``zones`` or ``cameras`` at the top): the
  camera named by ``camera``, or the only one;
* a camera's ``rois:`` list as written in the configuration (entries with ``location``,
  ``polygon`` and ``sku``);
* anything :func:`gateway.vision.roi.load_rois` reads (entries with ``name``, a simulator
  truth record, JSON).

The first two are validated by the gateway's own models, so an error names the file, the line
and the key exactly as ``edgecount gateway validate`` would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator
from ruamel.yaml.comments import CommentedMap

from edgecount.settings import StrictModel
from edgecount.yamlcfg import ConfigError, read_yaml, validate_document
from gateway.config import CameraConfig, GatewayConfig, RoiConfig
from gateway.vision.roi import Roi, RoiError, load_rois

_GATEWAY_KEYS = frozenset({"gateway_id", "zones", "cameras"})


class CameraRois(StrictModel):
    """A file holding one camera's ``rois:`` list, as written in the gateway configuration."""

    rois: list[RoiConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_locations(self) -> CameraRois:
        names = [roi.location for roi in self.rois]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"repeated ROI locations: {', '.join(repeated)}")
        return self


def load_count_rois(path: Path, camera: str | None = None) -> list[Roi]:
    """Read the regions of a ``vision count``: a gateway config, a ``rois:`` list, or more.

    Args:
        path: The file (see the module docstring for the kinds it may be).
        camera: The camera whose ROIs to take from a gateway configuration; may be left out
            when the configuration has exactly one camera.

    Returns:
        The regions in the order written; each is named by its ``location``.

    Raises:
        RoiError: The file cannot be read, does not validate, has no such camera, or
            ``camera`` was given for a file that is not a gateway configuration. The message
            names the file, and the line and key where there is one.
    """
    path = Path(path)
    document = None if path.suffix.lower() == ".json" else _read(path)
    if isinstance(document, CommentedMap) and _GATEWAY_KEYS & set(document):
        return _from_gateway(path, document, camera)
    if camera is not None:
        raise RoiError(
            f"{path}: --camera {camera} needs a gateway configuration file (with 'cameras');"
            " this file is a list of regions"
        )
    if isinstance(document, CommentedMap) and _written_as_config(document.get("rois")):
        written = _validate(path, document, CameraRois)
        return [_roi(roi) for roi in written.rois]
    return load_rois(path)


def _read(path: Path) -> Any:
    try:
        return read_yaml(path)
    except ConfigError as exc:
        raise RoiError(str(exc)) from exc


def _written_as_config(entries: Any) -> bool:
    """Whether a ``rois`` list is in the gateway's form (``location``, not ``name``)."""
    return isinstance(entries, list) and any(
        isinstance(entry, dict) and "location" in entry for entry in entries
    )


def _validate(path: Path, document: CommentedMap, model: type[Any]) -> Any:
    try:
        return validate_document(document, path, model, context={"base_dir": path.parent})
    except ConfigError as exc:
        raise RoiError(str(exc)) from exc


def _from_gateway(path: Path, document: CommentedMap, camera: str | None) -> list[Roi]:
    config: GatewayConfig = _validate(path, document, GatewayConfig)
    where = f"{path}:{document.lc.key('cameras')[0] + 1}" if "cameras" in document else str(path)
    names = [entry.name for entry in config.cameras]
    if not names:
        raise RoiError(f"{where}: cameras: the configuration has no camera, so no ROIs")
    if camera is None and len(names) > 1:
        raise RoiError(
            f"{where}: cameras: {len(names)} cameras ({', '.join(names)}); name one with --camera"
        )
    chosen = camera if camera is not None else names[0]
    if chosen not in names:
        raise RoiError(f"{where}: cameras: no camera {chosen!r} (cameras: {', '.join(names)})")
    found: CameraConfig = config.camera(chosen)
    if found.moving:
        raise RoiError(
            f"{where}: cameras: camera {chosen!r} is moving: its ROIs are in aisle pixels, not"
            " the pixels of one snapshot"
        )
    return [_roi(roi) for roi in found.rois]


def _roi(written: RoiConfig) -> Roi:
    polygon = np.asarray(written.polygon, dtype=np.float32).reshape(-1, 2)
    return Roi(name=written.location, polygon=polygon, sku=written.sku)
