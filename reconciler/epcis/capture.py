"""The HTTP client of an EPCIS 2.0 capture interface (``POST /capture``, capture jobs).

EPCIS 2.0 §12 (the REST binding): a document is POSTed as ``application/ld+json``; the server
answers ``202 Accepted`` with the capture job's URL in ``Location``; the job (``GET``) says
``running`` until it finished, then ``success`` and its ``errors``. A server may refuse a
document that is too large with ``413`` and tell its limits in ``GS1-EPCIS-Capture-Limit``
(events) and ``GS1-Capture-File-Size-Limit`` (bytes).

Errors are typed by what the caller should do: :class:`CaptureUnavailableError` (try again
later: no connection, a timeout, ``5xx``, ``429``), :class:`DocumentTooLargeError` (send
smaller documents), :class:`CaptureRejectedError` (the server refused the document for good).
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urljoin

import httpx

from reconciler.epcis.settings import EpcisConfig

__all__ = [
    "CaptureClient",
    "CaptureRejectedError",
    "CaptureUnavailableError",
    "DocumentTooLargeError",
    "JobStatus",
]

CONTENT_TYPE = "application/ld+json"
EVENTS_LIMIT_HEADER = "GS1-EPCIS-Capture-Limit"
BYTES_LIMIT_HEADER = "GS1-Capture-File-Size-Limit"


class CaptureUnavailableError(Exception):
    """The capture interface cannot take the document now (retry with backoff)."""


class CaptureRejectedError(Exception):
    """The capture interface refused the document (a 4xx other than 413 and 429)."""


@dataclass(slots=True)
class DocumentTooLargeError(Exception):
    """``413``: the document is too large; the limits the server told, if any."""

    max_events: int | None = None
    max_bytes: int | None = None

    def __str__(self) -> str:
        return f"413: too large (server limits: events {self.max_events}, bytes {self.max_bytes})"


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A capture job's state: running, or finished with success or errors."""

    running: bool
    success: bool
    errors: list[Any] = field(default_factory=list)


def _limit(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


class CaptureClient:
    """One HTTP connection pool to the capture interface of :class:`EpcisConfig`."""

    def __init__(self, config: EpcisConfig, transport: httpx.AsyncBaseTransport | None = None):
        if config.capture_url is None:
            raise ValueError("epcis.capture_url is not set")
        self.url = config.capture_url
        headers = {"GS1-EPCIS-Version": "2.0.0", "GS1-CBV-Version": "2.0.0"}
        headers.update(config.headers)
        if config.token_file is not None:
            token = config.token_file.read_text(encoding="utf-8").strip()
            headers["Authorization"] = f"Bearer {token}"
        verify: ssl.SSLContext | bool = True
        if config.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(config.ca_file))
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=config.timeout_seconds,
            verify=verify,
            transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> CaptureClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def capture(self, body: bytes) -> str:
        """POST one document; returns its capture job's URL.

        Raises:
            DocumentTooLargeError: 413.
            CaptureUnavailableError: No connection, a timeout, 5xx or 429.
            CaptureRejectedError: Any other answer but 202 with a ``Location``.
        """
        response = await self._request(
            "POST", self.url, content=body, headers={"Content-Type": CONTENT_TYPE}
        )
        if response.status_code == 413:
            raise DocumentTooLargeError(
                _limit(response, EVENTS_LIMIT_HEADER), _limit(response, BYTES_LIMIT_HEADER)
            )
        if response.status_code == 202 and response.headers.get("Location"):
            return urljoin(self.url, response.headers["Location"])
        raise CaptureRejectedError(
            f"capture answered {response.status_code}: {response.text[:300]!r}"
        )

    async def job(self, url: str) -> JobStatus:
        """The state of a capture job.

        Raises:
            CaptureUnavailableError: No connection, a timeout, 5xx or 429.
            CaptureRejectedError: Not 200 with a capture job's JSON.
        """
        response = await self._request("GET", url)
        if response.status_code != 200:
            raise CaptureRejectedError(f"capture job {url} answered {response.status_code}")
        try:
            body = response.json()
        except json.JSONDecodeError:
            raise CaptureRejectedError(f"capture job {url} answered no JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("running"), bool):
            raise CaptureRejectedError(f"capture job {url}: no 'running' in {body!r:.200}")
        errors = body.get("errors")
        return JobStatus(
            running=body["running"],
            success=body.get("success") is True,
            errors=errors if isinstance(errors, list) else [],
        )

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:  # connect, read, write, timeouts, protocol
            raise CaptureUnavailableError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise CaptureUnavailableError(f"{method} {url} answered {response.status_code}")
        return response
