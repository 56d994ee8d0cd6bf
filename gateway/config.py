"""The gateway configuration: typed, strict, with file and line in every error.

Every level forbids unknown keys, readers are chosen by their ``type`` field, and relative
paths are resolved against the directory of the configuration file.
"""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal

from croniter import croniter
from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edgecount.settings import MqttConfig, Segment, StrictModel, resolve_path
from edgecount.yamlcfg import load_model
from gateway.config_checks import camera_problems, raise_problems, reference_problems
from models import COUNT_CONF

# Session / search presets. Session 2 with a tag population hint suits a stocktake of many
# tags (each tag answers, then stays quiet so weaker tags get their turn); session 0 re-reads
# every tag every round, which suits a few tags and fast presence checks.
SESSION_PRESETS: dict[str, dict[str, int]] = {
    "dense": {"session": 2, "tag_population": 1024},
    "balanced": {"session": 1, "tag_population": 256},
    "fast": {"session": 0, "tag_population": 32},
}


class LlrpReaderConfig(StrictModel):
    """A fixed RFID reader speaking LLRP over TCP (Impinj, Zebra, ...)."""

    type: Literal["llrp"]
    name: Segment
    host: str
    port: int = Field(default=5084, ge=1, le=65535)
    antennas: dict[Annotated[int, Field(ge=1, le=64)], Segment] = Field(min_length=1)
    tx_power_dbm: float | None = Field(default=None, ge=0.0, le=40.0)
    preset: Literal["dense", "balanced", "fast"] = "dense"
    keepalive_seconds: float = Field(default=10.0, gt=0.0, le=600.0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0.0, le=120.0)
    report_every_n_tags: int = Field(default=200, ge=1, le=65535)
    queue_size: int = Field(default=1000, ge=1)
    overflow: Literal["block", "drop"] = "block"


class SerialReaderConfig(StrictModel):
    """A serial UHF module (M100 / JRD-4035 / YRM100 family) with one antenna.

    Opened by URL: ``/dev/ttyUSB0``, a pty path, or ``socket://HOST:PORT`` (a serial-to-TCP
    bridge). Its antenna covers one location; in a mobile zone (a module on a cart that moves
    past many bays) locations come from reference tags instead, and ``location`` may be left
    out when the reader serves only mobile zones.
    """

    type: Literal["serial"]
    name: Segment
    url: str = Field(min_length=1)
    location: Segment | None = None
    baudrate: int = Field(default=115200, ge=1200, le=921600)
    tx_power_dbm: float | None = Field(default=None, ge=-10.0, le=33.0)
    watchdog_seconds: float = Field(default=2.0, gt=0.0, le=60.0)
    command_timeout_seconds: float = Field(default=1.0, gt=0.0, le=30.0)
    queue_size: int = Field(default=1000, ge=1)

    @property
    def antennas(self) -> dict[int, str]:
        """Antenna 1 → the location (the same shape as an LLRP reader's mapping); none if unset."""
        return {} if self.location is None else {1: self.location}


ReaderConfig = Annotated[LlrpReaderConfig | SerialReaderConfig, Field(discriminator="type")]

Point = tuple[float, float]


class RoiConfig(StrictModel):
    """One storage location in a camera's view: a polygon and the SKU the planogram puts there."""

    location: Segment
    polygon: list[Point] = Field(min_length=3)
    sku: str = Field(min_length=1, max_length=64)


class CameraConfig(StrictModel):
    """A shelf camera: where its frames come from and which locations it sees.

    A fixed camera's ROIs are in image pixels. A moving camera (robot cart, drone) reports
    its position along the aisle with each frame; its ROIs are in aisle pixels (image x plus
    that position), and items are tracked across frames so each counts once.
    """

    name: Segment
    url: str = Field(min_length=1)
    kind: Literal["auto", "stream", "snapshot", "device", "file", "folder"] = "auto"
    rois: list[RoiConfig] = Field(min_length=1)
    moving: bool = False
    frames: int = Field(default=3, ge=1, le=100)
    """Fixed cameras: frames counted per scan; a location's count is their median."""
    model: Path | None = None
    """ONNX (or ultralytics .pt) detector; defaults to the shipped shelf detector."""
    backend: Literal["auto", "onnx", "openvino", "ultralytics"] = "auto"
    conf: float = Field(default=COUNT_CONF, gt=0.0, lt=1.0)
    tile: bool = False
    fps: float | None = Field(default=None, gt=0.0, le=120.0)
    stall_seconds: float = Field(default=10.0, gt=0.0, le=600.0)
    queue_size: int = Field(default=4, ge=1, le=1000)
    collect_dir: Path | None = None
    """Fixed cameras: keep frames counted with low confidence here (for a site's data set)."""
    collect_below: float = Field(default=0.8, gt=0.0, le=1.0)
    """A frame is kept when a location's count confidence on it is below this."""
    collect_max: int = Field(default=200, ge=1, le=10_000)
    """Most frames kept in ``collect_dir``; the oldest are removed beyond it."""
    publish_frames: bool = True
    """Fixed cameras: publish the annotated frame of each location's count (``frame/...``)."""

    _paths = field_validator("model", "collect_dir")(resolve_path)

    @model_validator(mode="after")
    def _unique_locations(self) -> CameraConfig:
        if self.fps is not None and 1.0 / self.fps >= self.stall_seconds:
            raise ValueError(
                f"camera {self.name!r}: fps {self.fps} is too slow for stall_seconds"
                f" {self.stall_seconds}: the watchdog would fire between frames"
            )
        names = [roi.location for roi in self.rois]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"camera {self.name!r} repeats ROI locations: {', '.join(repeated)}")
        return self

    @model_validator(mode="after")
    def _collect_dir(self, info: ValidationInfo) -> CameraConfig:
        """``collect_dir`` is for fixed cameras, and (checking files) must be a folder."""
        folder = self.collect_dir
        if folder is None:
            return self
        if self.moving:
            why = "a moving camera keeps no frames (its confidence is per track, not per frame)"
            raise_problems("CameraConfig", [(("collect_dir",), why)])
        if (info.context or {}).get("check_files") and folder.exists() and not folder.is_dir():
            raise_problems("CameraConfig", [(("collect_dir",), f"{folder} is not a folder")])
        return self

    @model_validator(mode="after")
    def _files(self, info: ValidationInfo) -> CameraConfig:
        """With ``check_files`` in the context: the source as the driver sees it, the model."""
        if (info.context or {}).get("check_files"):
            raise_problems("CameraConfig", camera_problems(self))
        return self


class FusionTolerance(StrictModel):
    """How far RFID and vision may differ at one location before the count is flagged."""

    abs: int = Field(default=1, ge=0)
    pct: float = Field(default=0.05, ge=0.0, le=1.0)

    def disagree(self, rfid: int, vision: int) -> bool:
        """True when the two figures differ by more than both the absolute and % tolerance."""
        return abs(rfid - vision) > max(self.abs, self.pct * max(rfid, vision))


_EPC96_HEX = re.compile(r"[0-9a-f]{24}")


class MobileConfig(StrictModel):
    """A mobile zone: the readers move past the bays, which carry location reference tags.

    With ``assign: reference`` (the default) each item tag goes to the bay whose reference
    tag it was read with most strongly (:class:`gateway.mobile.MobileAssigner`); with
    ``assign: pose`` to the bay whose ``extents`` held the reader when it read the tag most
    strongly, from the poses ``robot`` publishes (:class:`gateway.mobile.PoseAssigner`).
    Either way bays are published as the reader passes them.
    """

    references: dict[str, Segment] = Field(min_length=1)
    """Reference tag EPC (96 bits, 24 hex digits, any case) → the location it marks."""
    window_seconds: float = Field(default=0.5, gt=0.0, le=60.0)
    """A tag not heard for this long has been passed (``W``)."""
    assign: Literal["reference", "pose"] = "reference"
    """How item tags are placed: by the reference tags, or by the robot's reported pose."""
    robot: Segment | None = None
    """The robot whose poses (``edgecount/v1/{site}/pose/{robot}``) place the items."""
    extents: dict[Segment, tuple[float, float]] | None = None
    """Location → ``[x0, x1)``, metres along the aisle in the robot's pose frame."""
    margin_metres: float = Field(default=1.0, ge=0.0, le=10.0)
    """With poses: a bay closes once the reader is this far past its extent."""

    @field_validator("references")
    @classmethod
    def _epcs(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for epc, location in value.items():
            key = epc.strip().lower()
            if not _EPC96_HEX.fullmatch(key):
                raise ValueError(f"reference EPC {epc!r} is not 24 hexadecimal digits")
            if key in out:
                raise ValueError(f"reference EPC {epc!r} is listed twice")
            out[key] = location
        return out

    @field_validator("extents")
    @classmethod
    def _intervals(
        cls, value: dict[str, tuple[float, float]] | None
    ) -> dict[str, tuple[float, float]] | None:
        if value is None:
            return None
        for location, (x0, x1) in value.items():
            if not x0 < x1:
                raise ValueError(f"extent of {location!r} is [{x0}, {x1}]: x0 must be below x1")
        ordered = sorted(value.items(), key=lambda item: item[1][0])
        for (left, (_, end)), (right, (start, _)) in pairwise(ordered):
            if start < end:
                raise ValueError(f"extents of {left!r} and {right!r} overlap")
        return value

    @model_validator(mode="after")
    def _pose_keys(self) -> MobileConfig:
        if self.assign == "reference":
            if self.robot is not None or self.extents is not None:
                raise ValueError("robot and extents are used only with assign: pose")
            return self
        if self.robot is None or self.extents is None:
            raise ValueError("assign: pose needs robot and extents")
        locations = self.locations()
        missing = [location for location in locations if location not in self.extents]
        if missing:
            raise ValueError(f"extents miss referenced locations: {', '.join(missing)}")
        unknown = [location for location in self.extents if location not in locations]
        if unknown:
            raise ValueError(f"extents name locations no reference tag marks: {', '.join(unknown)}")
        return self

    def locations(self) -> list[str]:
        """The locations the reference tags mark, in configuration order, without repeats."""
        return list(dict.fromkeys(self.references.values()))


class ZoneConfig(StrictModel):
    """A zone: the readers and cameras scanned together, for how long, and when."""

    readers: list[Segment] = Field(default_factory=list)
    cameras: list[Segment] = Field(default_factory=list)
    fusion_tolerance: FusionTolerance = FusionTolerance()
    scan_seconds: float = Field(default=30.0, gt=0.0, le=3600.0)
    min_reads: int = Field(default=2, ge=1)
    schedule: str | None = None
    mobile: MobileConfig | None = None
    """Set for a mobile zone: locations come from reference tags, not from antennas."""

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        return value

    @model_validator(mode="after")
    def _devices(self) -> ZoneConfig:
        if not self.readers and not self.cameras:
            raise ValueError("a zone needs at least one reader or camera")
        if self.mobile is not None and not self.readers:
            raise ValueError("a mobile zone needs at least one reader")
        return self


class MetricsConfig(StrictModel):
    """The HTTP endpoint for Prometheus (``/metrics``) and health checks (``/healthz``).

    ``readers_down_seconds`` also sets when the daemon stops feeding the systemd watchdog:
    when every reader has been disconnected for that long (see docs/operations.md).
    """

    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    """TCP port; 0 picks a free one (logged, and useful in tests)."""
    readers_down_seconds: float = Field(default=300.0, gt=0.0, le=86400.0)
    """Unhealthy once no reader has been connected for this long (gateways with readers)."""


class OutboxConfig(StrictModel):
    """The outbox's bound and how its publisher drains it (see docs/outbox.md)."""

    max_rows: int = Field(default=100_000, ge=1, le=10_000_000)
    """Messages waiting for a broker acknowledgement, at most; then new ones are refused."""
    max_inflight: int = Field(default=20, ge=1, le=65_535)
    """Messages published and not yet acknowledged, at most (the in-flight window)."""
    reconnect_min_seconds: float = Field(default=0.5, gt=0.0, le=3600.0)
    """First delay before reconnecting to the broker; it doubles on every failure."""
    reconnect_max_seconds: float = Field(default=60.0, gt=0.0, le=3600.0)
    """Cap on the reconnect delay."""

    @model_validator(mode="after")
    def _delays(self) -> OutboxConfig:
        if self.reconnect_min_seconds > self.reconnect_max_seconds:
            raise ValueError("reconnect_min_seconds must not exceed reconnect_max_seconds")
        return self


class GatewayConfig(StrictModel):
    """The whole gateway configuration file."""

    site: Segment
    gateway_id: Segment
    state_dir: Path = Path("/var/lib/edgecount")
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()
    readers: list[ReaderConfig] = Field(default_factory=list)
    cameras: list[CameraConfig] = Field(default_factory=list)
    zones: dict[Segment, ZoneConfig] = Field(min_length=1)
    metrics: MetricsConfig | None = None
    """The metrics and health endpoint; none when left out."""

    _paths = field_validator("state_dir")(resolve_path)

    @field_validator("zones")
    @classmethod
    def _placed_readers(
        cls, zones: dict[str, ZoneConfig], info: ValidationInfo
    ) -> dict[str, ZoneConfig]:
        """A reader in a fixed (not mobile) zone needs a location for its antenna."""
        readers: list[ReaderConfig] = info.data.get("readers") or []
        unplaced = {reader.name for reader in readers if not reader.antennas}
        for zone_name, zone in zones.items():
            missing = [name for name in zone.readers if name in unplaced]
            if zone.mobile is None and missing:
                raise ValueError(
                    f"zone {zone_name!r} is not mobile, so its serial readers need a"
                    f" location: {', '.join(missing)}"
                )
        return zones

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        """Names unique and known, each location in one zone; every problem, each at its key."""
        raise_problems("GatewayConfig", reference_problems(self))
        return self

    def reader(self, name: str) -> ReaderConfig:
        """The reader called ``name``."""
        return next(reader for reader in self.readers if reader.name == name)

    def camera(self, name: str) -> CameraConfig:
        """The camera called ``name``."""
        return next(camera for camera in self.cameras if camera.name == name)

    def rfid_locations(self, zone: str) -> list[str]:
        """Every location the zone's readers cover, in configuration order, without repeats.

        For a mobile zone: the locations its reference tags mark.
        """
        mobile = self.zones[zone].mobile
        if mobile is not None:
            return mobile.locations()
        seen: dict[str, None] = {}
        for name in self.zones[zone].readers:
            for location in self.reader(name).antennas.values():
                seen.setdefault(location, None)
        return list(seen)

    def vision_locations(self, zone: str) -> list[str]:
        """Every location the zone's cameras see, in configuration order, without repeats."""
        seen: dict[str, None] = {}
        for name in self.zones[zone].cameras:
            for roi in self.camera(name).rois:
                seen.setdefault(roi.location, None)
        return list(seen)

    def zone_locations(self, zone: str) -> list[str]:
        """Every location of the zone (readers first, then cameras), without repeats."""
        return list(dict.fromkeys(self.rfid_locations(zone) + self.vision_locations(zone)))


def load_gateway_config(path: Path) -> GatewayConfig:
    """Load and validate a gateway configuration file, with everything that needs no hardware.

    Beyond the model: camera sources as the camera driver reads them (URL scheme, kind, a
    path that exists) and detector models loaded by ONNX Runtime. The daemon and ``scan``
    load through here too, so a bad file fails at start with the message ``gateway
    validate`` prints, never later with a traceback.

    Raises:
        edgecount.yamlcfg.ConfigError: Every problem, each with file, line and key.
    """
    context = {"base_dir": path.parent, "check_files": True}
    return load_model(path, GatewayConfig, context=context)
