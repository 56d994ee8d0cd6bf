"""Serving the REST API (and the console) inside the service's event loop.

:class:`ApiServer` binds its socket before uvicorn starts (a port in use raises instead of
uvicorn's ``sys.exit``; port 0 reports the port it got) and serves until asked to stop; uvicorn
handles no signal of its own there: the host service owns the signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)

__all__ = ["SHUTDOWN_GRACE_SECONDS", "ApiServer", "serve_api"]

SHUTDOWN_GRACE_SECONDS = 5


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handling of its own: the host service owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn >= 0.29
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class ApiServer:
    """The REST API in the running event loop: :meth:`open` binds, :meth:`serve` serves.

    The socket is bound before uvicorn starts, so a port in use raises instead of uvicorn's
    ``sys.exit``, and port 0 reports the port it got.

    Args:
        app: The application from :func:`create_app`.
        host: Address to listen on (``ApiConfig.host``).
        port: TCP port; 0 picks a free one.
        on_listening: Called with the bound port once the socket is listening.
    """

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        *,
        on_listening: Callable[[int], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._on_listening = on_listening
        self._config = uvicorn.Config(
            app,
            log_level="warning",
            log_config=None,  # uvicorn's loggers propagate to the service's logging setup
            lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        self._sock: socket.socket | None = None
        self._server: _EmbeddedServer | None = None

    def open(self) -> int:
        """Bind and listen; returns the bound port.

        Raises:
            OSError: The address cannot be bound.
        """
        self._sock = self._listen()
        return int(self._sock.getsockname()[1])

    async def serve(self, stopping: asyncio.Event) -> None:
        """Serve until ``stopping`` is set (binding first unless :meth:`open` did); open
        requests then get up to 5 s to finish.

        Returns early when uvicorn stops by itself (:meth:`close`).

        Raises:
            OSError: The address cannot be bound.
        """
        sock = self._sock or self._listen()
        server = self._server = _EmbeddedServer(self._config)
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
            server.should_exit = True
            await serving
        finally:
            for waiter in (serving, stop):
                waiter.cancel()
            await asyncio.wait({serving, stop})
            self._sock = self._server = None
            sock.close()

    def close(self) -> None:
        """Ask uvicorn to stop serving (open requests get up to 5 s)."""
        if self._server is not None:
            self._server.should_exit = True

    def _listen(self) -> socket.socket:
        sock = _bind(self.host, self.port)
        sock.listen(self._config.backlog)
        bound = int(sock.getsockname()[1])
        log.info("REST API listening on %s:%d", self.host, bound)
        if self._on_listening is not None:
            self._on_listening(bound)
        return sock


async def serve_api(
    app: FastAPI,
    host: str,
    port: int,
    stopping: asyncio.Event,
    *,
    on_listening: Callable[[int], None] | None = None,
) -> None:
    """Serve ``app`` over HTTP in the running event loop until ``stopping`` is set.

    Args:
        app: The application from :func:`create_app`.
        host: Address to listen on (``ApiConfig.host``).
        port: TCP port; 0 picks a free one.
        stopping: Set to stop: open requests get up to 5 s to finish.
        on_listening: Called with the bound port once the socket is listening.

    Raises:
        OSError: The address cannot be bound.
    """
    await ApiServer(app, host, port, on_listening=on_listening).serve(stopping)
