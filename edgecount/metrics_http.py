"""A minimal HTTP/1.1 server for ``GET /metrics`` and ``GET /healthz``, on the event loop.

Prometheus scrapes ``/metrics`` (text exposition format); a load balancer, a container
runtime or a person asks ``/healthz``: 200 with ``{"healthy": true, "reasons": []}`` or 503
with the reasons. The server answers one request per connection (``Connection: close``) and
never blocks the loop: both answers are computed from in-memory figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from edgecount.metrics import CONTENT_TYPE, render

log = logging.getLogger(__name__)

__all__ = ["Endpoint", "MetricsServer"]

REQUEST_TIMEOUT_SECONDS = 5.0
MAX_HEADER_BYTES = 8192


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What the server answers: the metrics and the health check (reasons; none = healthy)."""

    registry: CollectorRegistry
    health: Callable[[], list[str]]


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def answer(endpoint: Endpoint, method: str, path: str) -> bytes:
    """The full HTTP response to ``method path``."""
    path = path.split("?", 1)[0]
    if path not in ("/metrics", "/healthz"):
        return _response("404 Not Found", "text/plain", b"not found: try /metrics or /healthz\n")
    if method not in ("GET", "HEAD"):
        return _response("405 Method Not Allowed", "text/plain", b"GET only\n")
    if path == "/metrics":
        body = render(endpoint.registry).encode()
        status = "200 OK"
        kind = CONTENT_TYPE
    else:
        reasons = endpoint.health()
        body = json.dumps({"healthy": not reasons, "reasons": reasons}).encode() + b"\n"
        status = "503 Service Unavailable" if reasons else "200 OK"
        kind = "application/json"
    response = _response(status, kind, body)
    return response[: len(response) - len(body)] if method == "HEAD" else response


async def _handle(
    endpoint: Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
            head = await reader.readuntil(b"\r\n\r\n")
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or len(head) > MAX_HEADER_BYTES:  # method, path, version
            writer.write(_response("400 Bad Request", "text/plain", b"bad request\n"))
        else:
            writer.write(answer(endpoint, parts[0], parts[1]))
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        pass  # a client that went away or never finished its request gets nothing
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class MetricsServer:
    """``/metrics`` and ``/healthz`` on one address: :meth:`open` binds, :meth:`serve` serves.

    The daemon opens it before its tasks start, so an address that cannot be bound fails the
    daemon at once; :meth:`serve` is the supervised task, and a run after a failure binds
    again.

    Args:
        endpoint: The registry and the health check.
        host: Address to listen on.
        port: TCP port; 0 picks a free one (reported to ``on_listening`` and logged).
        on_listening: Called with the bound port each time the server listens.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        host: str,
        port: int,
        *,
        on_listening: Callable[[int], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.host = host
        self.port = port
        self._on_listening = on_listening
        self._server: asyncio.Server | None = None

    async def open(self) -> int:
        """Bind and listen; returns the bound port.

        Raises:
            OSError: The address cannot be bound.
        """
        self._server, bound = await self._listen()
        return bound

    async def serve(self, stopping: asyncio.Event) -> None:
        """Serve until ``stopping`` is set (binding first unless :meth:`open` did).

        Raises:
            OSError: The address cannot be bound.
            ConnectionAbortedError: The listener was closed (:meth:`close`) while serving.
        """
        if self._server is None:
            self._server, _ = await self._listen()
        server = self._server
        try:
            async with server:
                serving = asyncio.ensure_future(server.serve_forever())
                stop = asyncio.ensure_future(stopping.wait())
                await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
                for waiter in (serving, stop):
                    waiter.cancel()
                await asyncio.wait({serving, stop})
                if not stopping.is_set():
                    raise ConnectionAbortedError(f"metrics listener on {self.host} closed")
        finally:
            self._server = None

    def close(self) -> None:
        """Stop listening (while serving, :meth:`serve` then fails)."""
        if self._server is not None:
            self._server.close()

    async def _listen(self) -> tuple[asyncio.Server, int]:
        server = await asyncio.start_server(
            lambda r, w: _handle(self.endpoint, r, w), self.host, self.port, limit=MAX_HEADER_BYTES
        )
        bound = int(server.sockets[0].getsockname()[1])
        log.info("metrics on http://%s:%d/metrics, health on /healthz", self.host, bound)
        if self._on_listening is not None:
            self._on_listening(bound)
        return server, bound
