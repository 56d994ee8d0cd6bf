"""The gateway configuration: typed, strict, with file and line in every error.

Every level forbids unknown keys, readers are chosen by their ``type`` field, and relative
paths are resolved against the directory of the configuration file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edgecount.yamlcfg import PATTERN_MESSAGES, load_model

# Topic segments: no MQTT wildcards or separators, nothing invisible.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
Segment = Annotated[str, Field(pattern=_SEGMENT.pattern)]
PATTERN_MESSAGES[_SEGMENT.pattern] = (
    "use 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
    " (names become MQTT topic levels: no '/', '+', '#' or spaces)"
)


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are not coerced loosely."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve(value: Path | None, info: ValidationInfo) -> Path | None:
    if value is None or value.is_absolute():
        return value
    base = (info.context or {}).get("base_dir")
    return (Path(base) / value) if base else value


class TlsConfig(StrictModel):
    """TLS for the MQTT connection. Paths are PEM files."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    _paths = field_validator("ca_file", "cert_file", "key_file")(_resolve)

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttConfig(StrictModel):
    """Where and how to publish."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    username: str | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None
    keepalive: int = Field(default=30, ge=5, le=3600)

    _paths = field_validator("password_file")(_resolve)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: Any) -> Any:
        # YAML reads `protocol: 5` as an integer; accept it, but not 4 or 3.1.
        return str(value) if isinstance(value, int | float) else value


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

    _paths = field_validator("state_dir")(_resolve)

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
