"""The ``epcis:`` and ``locations:`` sections of the reconciler's configuration (docs/epcis.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from edgecount.gtin import check_digit
from edgecount.settings import StrictModel, credential_path, resolve_path
from edgecount.sgln import decode_sgln96

__all__ = ["CaptureRetry", "EpcisConfig", "LocationsConfig", "sgln_uri"]

Location = Annotated[str, Field(min_length=1, max_length=128)]

_SGLN_URN = re.compile(r"^urn:epc:id:sgln:(\d{6,12})\.(\d{0,6})\.([!-~]{1,20})$")
_GLN = re.compile(r"^\d{13}$")
_DIGITAL_LINK = re.compile(r"^https://id\.gs1\.org/414/(\d{13})(/254/[!-~]{1,20})?$")
_EPC96_HEX = re.compile(r"^[0-9a-f]{24}$")
_HTTP_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")


def sgln_uri(value: str) -> str:
    """A location's GS1 identifier as EPCIS writes it, its digits checked.

    Accepts the pure-identity URN ``urn:epc:id:sgln:CompanyPrefix.LocationRef.Extension``
    (prefix + reference = 12 digits), a 13-digit GLN (written as the GS1 Digital Link
    ``https://id.gs1.org/414/{gln}``) or that Digital Link itself (``/254/{extension}`` allowed).

    Raises:
        ValueError: None of those, or a GLN whose check digit is wrong.
    """
    text = value.strip()
    urn = _SGLN_URN.match(text)
    if urn:
        if len(urn.group(1)) + len(urn.group(2)) != 12:
            raise ValueError(f"{value!r}: company prefix + location reference must be 12 digits")
        return text
    link = _DIGITAL_LINK.match(text)
    gln = link.group(1) if link else (text if _GLN.match(text) else None)
    if gln is None:
        raise ValueError(
            f"{value!r} is no SGLN: give urn:epc:id:sgln:Prefix.Reference.Extension, a 13-digit"
            " GLN or https://id.gs1.org/414/{GLN}"
        )
    if check_digit(gln[:-1]) != gln[-1]:
        raise ValueError(f"GLN {gln} has check digit {gln[-1]}, expected {check_digit(gln[:-1])}")
    return text if link else f"https://id.gs1.org/414/{gln}"


class LocationsConfig(StrictModel):
    """What the reconciler knows about storage locations beyond their names.

    ``sgln`` maps a location to its GS1 location identifier (see :func:`sgln_uri`);
    ``reference_tags`` is the gateway's ``mobile.references`` (SGLN-96 EPC → location) pasted
    as it is: each tag's SGLN names its location. A location in neither gets a URI of the
    site's own namespace in EPCIS (``epcis.base_uri``).
    """

    sgln: dict[Location, str] = Field(default_factory=dict)
    reference_tags: dict[str, Location] = Field(default_factory=dict)

    @field_validator("sgln")
    @classmethod
    def _sglns(cls, value: dict[str, str]) -> dict[str, str]:
        return {location: sgln_uri(text) for location, text in value.items()}

    @field_validator("reference_tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for epc in value:
            key = epc.strip().lower()
            if not _EPC96_HEX.match(key):
                raise ValueError(f"reference tag {epc!r} is not 24 hexadecimal digits")
            try:
                decode_sgln96(bytes.fromhex(key))
            except ValueError as exc:
                raise ValueError(f"reference tag {epc!r} is no SGLN-96 EPC: {exc}") from None
        return {epc.strip().lower(): location for epc, location in value.items()}

    def sgln_of(self) -> dict[str, str]:
        """Location → its SGLN URI (``sgln`` wins over a reference tag of the same location)."""
        tags = {
            location: decode_sgln96(bytes.fromhex(epc)).uri
            for epc, location in self.reference_tags.items()
        }
        return tags | dict(self.sgln)


class CaptureRetry(StrictModel):
    """Backoff between attempts after a connection error, a timeout or a 5xx/429 answer."""

    min_seconds: float = Field(default=1.0, gt=0, le=3600)
    max_seconds: float = Field(default=60.0, gt=0, le=86400)


class EpcisConfig(StrictModel):
    """EPCIS 2.0 export and capture (docs/epcis.md); every key has a default."""

    capture_url: str | None = None
    """The capture interface's URL, POSTed to (e.g. ``https://epcis.example/capture``). None:
    nothing is sent by the service; ``edgecount epcis export`` still works."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra HTTP headers of every request (an API key header, ...)."""
    token_file: Path | None = None
    """A file holding a bearer token (``Authorization: Bearer …``); ``credential:NAME`` reads it
    from systemd's ``$CREDENTIALS_DIRECTORY``."""
    ca_file: Path | None = None
    """CA bundle to verify the capture server's certificate (default: the system's)."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    max_document_bytes: int = Field(default=1_000_000, ge=4096, le=1_000_000_000)
    """The largest document sent; a scan's events are split into documents under it (a 413
    answer halves it for that scan)."""
    max_events: int = Field(default=10_000, ge=1, le=1_000_000)
    """The most events in one document."""
    retry: CaptureRetry = CaptureRetry()
    poll_seconds: float = Field(default=1.0, gt=0, le=300)
    """How often a capture job is polled until it finished."""
    settle_seconds: float = Field(default=10.0, ge=0, le=3600)
    """A scan is sent this long after it ended (counts that arrive late still go with it)."""
    backfill_hours: float = Field(default=24.0, ge=0, le=24 * 366)
    """Scans that ended longer ago than this are not sent by the service (``epcis send``)."""
    lease_seconds: float = Field(default=120.0, ge=5, le=86400)
    """How long a reconciler instance holds a scan it sends before another may take it over."""
    namespace: str = "urn:edgecount:epcis:"
    """The IRI of the ``edgecount:`` prefix of our own fields."""
    base_uri: str | None = None
    """Prefix of the URIs of the site's own things (locations without SGLN, read points,
    SKUs that are no GTIN); default ``urn:edgecount:{site}:``."""
    schema_file: Path | None = None
    """The GS1 EPCIS 2.0 JSON Schema (``EPCIS-JSON-Schema.json``): when set, what is exported
    or sent is also checked against it (the semantic checks always run)."""

    _paths = field_validator("token_file", "ca_file", "schema_file")(resolve_path)
    _credential = field_validator("token_file", mode="before")(credential_path)

    @field_validator("capture_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not _HTTP_URL.match(value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @field_validator("namespace", "base_uri")
    @classmethod
    def _iri(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(https?://\S+[/#]|urn:\S+:)$", value):
            raise ValueError(
                f"{value!r}: give an http(s) IRI ending in '/' or '#', or a URN ending in ':'"
            )
        return value
