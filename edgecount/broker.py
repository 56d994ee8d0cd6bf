"""An MQTT broker inside the process (amqtt), for the demo and the truth benchmark."""

from __future__ import annotations

import contextlib
import logging
import socket
import warnings
from collections.abc import AsyncIterator

__all__ = ["embedded_broker", "free_port"]


def free_port() -> int:
    """A free TCP port on the loopback interface (free now; bind it soon)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def embedded_broker() -> AsyncIterator[tuple[str, int]]:
    """An amqtt broker (MQTT 3.1.1) on a free loopback port, anonymous."""
    from amqtt.broker import Broker

    logging.getLogger("amqtt").setLevel(logging.ERROR)
    logging.getLogger("transitions").setLevel(logging.ERROR)
    port = free_port()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        broker = Broker(config)
        await broker.start()
    try:
        yield "127.0.0.1", port
    finally:
        await broker.shutdown()
