"""Configuration pieces every edgecount service shares: names, TLS, the MQTT connection.

The gateway and the reconciler both build their YAML models from these, so a broker is
configured the same way everywhere (see docs/configuration.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from edgecount.mqtt import MqttSettings
from edgecount.yamlcfg import PATTERN_MESSAGES

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


def resolve_path(value: Path | None, info: ValidationInfo) -> Path | None:
    """Resolve a relative path against ``info.context["base_dir"]`` (the config's folder)."""
    if value is None or value.is_absolute():
        return value
    base = (info.context or {}).get("base_dir")
    return (Path(base) / value) if base else value


CREDENTIAL_PREFIX = "credential:"
_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


def credential_path(value: Any) -> Any:
    """Turn ``credential:NAME`` into ``$CREDENTIALS_DIRECTORY/NAME``; other values unchanged.

    systemd's ``LoadCredential=NAME:SOURCE`` copies SOURCE to a private directory that only the
    service can read, and names it in ``$CREDENTIALS_DIRECTORY``. To check a configuration
    outside the unit, point the variable at the sources' folder (``/etc/edgecount/credentials``).
    """
    if not isinstance(value, str) or not value.startswith(CREDENTIAL_PREFIX):
        return value
    name = value.removeprefix(CREDENTIAL_PREFIX)
    if not _CREDENTIAL_NAME.match(name) or name in (".", ".."):
        raise ValueError(f"{value!r}: a credential name is letters, digits, '.', '_' or '-'")
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ValueError(
            f"{value!r} needs $CREDENTIALS_DIRECTORY (set by the unit's LoadCredential=);"
            " outside systemd give a plain path, or set the variable"
        )
    return Path(directory) / name


class TlsConfig(StrictModel):
    """TLS for the MQTT connection. Paths are PEM files."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    _paths = field_validator("ca_file", "cert_file", "key_file")(resolve_path)

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

    _paths = field_validator("password_file")(resolve_path)
    _credential = field_validator("password_file", mode="before")(credential_path)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: Any) -> Any:
        # YAML reads `protocol: 5` as an integer; accept it, but not 4 or 3.1.
        return str(value) if isinstance(value, int | float) else value


def mqtt_settings(mqtt: MqttConfig, default_client_id: str) -> MqttSettings:
    """The broker connection settings of an ``mqtt:`` section."""
    return MqttSettings(
        host=mqtt.host,
        port=mqtt.port,
        protocol=mqtt.protocol,
        client_id=mqtt.client_id or default_client_id,
        username=mqtt.username,
        password_file=mqtt.password_file,
        ca_file=mqtt.tls.ca_file if mqtt.tls else None,
        cert_file=mqtt.tls.cert_file if mqtt.tls else None,
        key_file=mqtt.tls.key_file if mqtt.tls else None,
        keepalive=mqtt.keepalive,
    )
