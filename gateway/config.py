"""The gateway configuration: typed, strict, with file and line in every error.

Every level forbids unknown keys, readers are chosen by their ``type`` field, and relative
paths are resolved against the directory of the configuration file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from croniter import croniter
from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from edgecount.settings import MqttConfig, Segment, StrictModel, resolve_path
from edgecount.yamlcfg import load_model

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


ReaderConfig = LlrpReaderConfig


class ZoneConfig(StrictModel):
    """A zone: the readers scanned together, for how long, and when."""

    readers: list[Segment] = Field(min_length=1)
    scan_seconds: float = Field(default=30.0, gt=0.0, le=3600.0)
    min_reads: int = Field(default=2, ge=1)
    schedule: str | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        return value


class GatewayConfig(StrictModel):
    """The whole gateway configuration file."""

    site: Segment
    gateway_id: Segment
    state_dir: Path = Path("/var/lib/edgecount")
    mqtt: MqttConfig = MqttConfig()
    readers: list[ReaderConfig] = Field(min_length=1)
    zones: dict[Segment, ZoneConfig] = Field(min_length=1)

    _paths = field_validator("state_dir")(resolve_path)

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        names = [reader.name for reader in self.readers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"reader names must be unique; repeated: {', '.join(duplicates)}")
        for zone_name, zone in self.zones.items():
            unknown = [name for name in zone.readers if name not in names]
            if unknown:
                raise ValueError(
                    f"zone {zone_name!r} names unknown readers: {', '.join(unknown)}"
                    f" (known: {', '.join(names)})"
                )
        return self

    def reader(self, name: str) -> ReaderConfig:
        """The reader called ``name``."""
        return next(reader for reader in self.readers if reader.name == name)

    def zone_locations(self, zone: str) -> list[str]:
        """Every location the zone's readers cover, in configuration order, without repeats."""
        seen: dict[str, None] = {}
        for name in self.zones[zone].readers:
            for location in self.reader(name).antennas.values():
                seen.setdefault(location, None)
        return list(seen)


def load_gateway_config(path: Path) -> GatewayConfig:
    """Load and validate a gateway configuration file.

    Raises:
        edgecount.yamlcfg.ConfigError: Every problem, each with file, line and key.
    """
    return load_model(path, GatewayConfig, context={"base_dir": path.parent})
