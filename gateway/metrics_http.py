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

__all__ = ["Endpoint", "serve_metrics"]

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


async def serve_metrics(
    endpoint: Endpoint,
    host: str,
    port: int,
    stopping: asyncio.Event,
    *,
    on_listening: Callable[[int], None] | None = None,
) -> None:
    """Serve ``/metrics`` and ``/healthz`` until ``stopping`` is set.

    Args:
        endpoint: The registry and the health check.
        host: Address to listen on.
        port: TCP port; 0 picks a free one (reported to ``on_listening`` and logged).
        stopping: Set to stop serving.
        on_listening: Called with the bound port once listening.

    Raises:
        OSError: The address cannot be bound (the daemon fails; systemd restarts it).
    """
    server = await asyncio.start_server(
        lambda r, w: _handle(endpoint, r, w), host, port, limit=MAX_HEADER_BYTES
    )
    bound = int(server.sockets[0].getsockname()[1])
    log.info("metrics on http://%s:%d/metrics, health on /healthz", host, bound)
    if on_listening is not None:
        on_listening(bound)
    async with server:
        await stopping.wait()
