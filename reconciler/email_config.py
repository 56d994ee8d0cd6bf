"""The ``email:`` section of the reconciler's configuration: the night's report by SMTP.

``edgecount report send`` (:mod:`reconciler.cli_mail`) reads it; the reconciler service ignores
it. docs/configuration.md lists every key, docs/operations.md ("Reports by email") tells how
the timer uses them.
"""

from __future__ import annotations

import string
import zoneinfo
from datetime import time
from email.headerregistry import Address, HeaderRegistry
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from edgecount.settings import StrictModel, credential_path, resolve_path

__all__ = ["SUBJECT_FIELDS", "EmailConfig", "SmtpRetry", "parse_address"]

SUBJECT_FIELDS: dict[str, Any] = {
    "site": "site",
    "period": "night of 2026-01-01",
    "scope": "since 2026-01-01T12:00:00+00:00",
    "ira": 0.5,
    "exceptions": 1,
    "records": 2,
    "coverage": 0.5,
}
"""The fields a ``subject`` template may use, with sample values (to check a template)."""

DEFAULT_SUBJECT = "{site}: inventory report, {period}: IRA {ira:.1%}, {exceptions} exceptions"

DEFAULT_PORTS = {"starttls": 587, "implicit": 465, "none": 25}


def parse_address(text: str) -> Address:
    """An e-mail address, ``user@example.com`` or ``Name <user@example.com>``.

    Raises:
        ValueError: Not one address with a user and a domain.
    """
    if any(ch in text for ch in "\r\n"):
        raise ValueError(f"{text!r}: an address is one line")
    header = HeaderRegistry()("to", text)
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    defects: tuple[object, ...] = getattr(header, "defects", ())
    if len(addresses) != 1 or defects or not addresses[0].username or not addresses[0].domain:
        raise ValueError(f"{text!r} is not one e-mail address (user@example.com)")
    address: Address = addresses[0]
    return address


class SmtpRetry(StrictModel):
    """How long an unreachable server, or one that answers 4xx, is tried again."""

    initial_seconds: float = Field(default=30.0, gt=0, le=3600)
    """The first wait (each next one doubles, with jitter, up to ``max_seconds``)."""
    max_seconds: float = Field(default=600.0, gt=0, le=86400)
    total_seconds: float = Field(default=3600.0, ge=0, le=86400)
    """No attempt starts later than this after the first one; 0: one attempt only."""

    @model_validator(mode="after")
    def _ordered(self) -> SmtpRetry:
        if self.initial_seconds > self.max_seconds:
            raise ValueError("initial_seconds must not exceed max_seconds")
        return self


class EmailConfig(StrictModel):
    """SMTP server, sender, recipients and timing of the night's report by e-mail."""

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    """Default 587 (``starttls``), 465 (``implicit``), 25 (``none``)."""
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    """``starttls``: plain connection upgraded with STARTTLS (required, never skipped);
    ``implicit``: TLS from the first byte (SMTPS); ``none``: no TLS (a relay on this host)."""
    ca_file: Path | None = None
    """PEM CA bundle the server's certificate must chain to; default the system's store."""
    username: str | None = Field(default=None, min_length=1)
    password_file: Path | None = None
    """The password (one line); ``credential:NAME`` reads ``$CREDENTIALS_DIRECTORY/NAME``."""
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1, max_length=100)
    subject: str = Field(default=DEFAULT_SUBJECT, min_length=1, max_length=400)
    timezone: str = "UTC"
    """IANA zone of ``night_start`` (e.g. ``Europe/Berlin``)."""
    night_start: time = time(12, 0)
    """A night runs from this time of day to the same time the next day."""
    settle_seconds: float = Field(default=900.0, ge=0, le=86400)
    """Send once no scan of the night is running and the last one ended this long ago."""
    settle_timeout_seconds: float = Field(default=7200.0, ge=0, le=86400)
    """Wait for the scans to settle at most this long, then send all the same (logged)."""
    poll_seconds: float = Field(default=30.0, gt=0, le=3600)
    """How often the store is looked at while waiting for the scans to settle."""
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    """Each SMTP connection and command, at most."""
    retry: SmtpRetry = SmtpRetry()

    _paths = field_validator("ca_file", "password_file")(resolve_path)
    _credential = field_validator("password_file", mode="before")(credential_path)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        parse_address(value)
        return value

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for text in value:
            key = parse_address(text).addr_spec.lower()
            if key in seen:
                raise ValueError(f"{text!r} is listed twice")
            seen.add(key)
        return value

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n"):
            raise ValueError("the subject is one line")
        fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
        unknown = sorted({n for n in fields if n.split(".")[0].split("[")[0] not in SUBJECT_FIELDS})
        if unknown:
            raise ValueError(
                f"unknown field {{{unknown[0]}}}; the subject may use "
                + ", ".join(f"{{{name}}}" for name in SUBJECT_FIELDS)
            )
        try:
            value.format(**SUBJECT_FIELDS)
        except (ValueError, IndexError, KeyError, AttributeError, TypeError) as exc:
            raise ValueError(f"not a valid template: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _login_needs_tls(self) -> EmailConfig:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together")
        if self.username is not None and self.tls == "none":
            raise ValueError(
                "a login needs tls: starttls or implicit (the password would go in clear)"
            )
        return self

    @property
    def smtp_port(self) -> int:
        """The port, or the default of the ``tls`` mode."""
        return self.port if self.port is not None else DEFAULT_PORTS[self.tls]

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """``timezone`` as a tzinfo."""
        return zoneinfo.ZoneInfo(self.timezone)
