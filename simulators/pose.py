"""The cart's pose on MQTT: what a robot carrying a reader reports while it drives.

:class:`PosePublisher` publishes a :class:`simulators.cart.CartProvider`'s position as
``edgecount.pose/1`` on ``edgecount/v1/{site}/pose/{robot}`` (QoS 0, not retained) about
``rate`` times a second, with paho. The position comes from the provider (on its clock: the
cart stands at its start until the first inventory round), the time stamp from the wall clock
(``at``, UTC), as a robot's would; a gateway with ``assign: pose`` matches it to the reads'
time stamps. :meth:`PosePublisher.inject` sends raw bytes on the pose topic (fault injection).

Example:
    >>> from simulators.cart import AisleLayout, CartPath, CartProvider, CartSim
    >>> layout = AisleLayout.synthetic(["A-01-01-1"], seed=1)
    >>> provider = CartProvider(CartSim(layout, CartPath.across(layout, speed=1.0)))
    >>> poses = PosePublisher(provider, host="127.0.0.1", port=1883, site="dc1", robot="cart-1")
    >>> poses.message(at=0.0).x
    -1.6
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from edgecount import contract
from edgecount.mqtt import MqttSettings, new_client
from edgecount.pose import QOS, pose_message, pose_topic
from simulators.cart import CartProvider

log = logging.getLogger(__name__)

__all__ = ["PosePublisher"]


class PosePublisher:
    """Publishes a cart's pose to an MQTT broker while it runs.

    Args:
        provider: The cart (its :meth:`~simulators.cart.CartProvider.pose` is the position).
        host: Broker host.
        port: Broker port.
        site: Site id of the topic.
        robot: Robot id: the topic's last level and the payload's ``robot``.
        rate: Poses per second.
        wall: Wall clock for ``at``, UNIX seconds.
    """

    def __init__(
        self,
        provider: CartProvider,
        *,
        host: str,
        port: int,
        site: str,
        robot: str,
        rate: float = 10.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.provider = provider
        self.settings = MqttSettings(host=host, port=port)
        self.robot = robot
        self.topic = pose_topic(site, robot)
        self.period = 1.0 / rate
        self.wall = wall
        self.published = 0
        """Poses handed to the broker connection."""
        self._client: paho.Client | None = None
        self._task: asyncio.Task[None] | None = None

    def message(self, at: float | None = None) -> contract.PoseMessage:
        """The pose message of the cart now (``at``: the time stamp, default the wall clock)."""
        path = self.provider.sim.path
        heading = 0.0 if path.x1 >= path.x0 else 180.0
        when = self.wall() if at is None else at
        return pose_message(robot=self.robot, x=self.provider.pose(), at=when, heading=heading)

    async def start(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a bound
        """Connect (waiting for the CONNACK) and start publishing every ``1/rate`` seconds.

        Raises:
            ConnectionError: The broker refused or did not answer within ``timeout``.
        """
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[ReasonCode] = loop.create_future()

        def answer(reason: ReasonCode) -> None:
            if not acked.done():
                acked.set_result(reason)

        def on_connect(_c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
            loop.call_soon_threadsafe(answer, reason)

        client = new_client(self.settings, f"edgecount-pose-{self.robot}-{uuid.uuid4().hex[:6]}")
        client.on_connect = on_connect
        client.connect_async(self.settings.host, self.settings.port)
        client.loop_start()
        self._client = client
        try:
            async with asyncio.timeout(timeout):
                reason = await acked
        except TimeoutError:
            await self.stop()
            raise ConnectionError(f"no CONNACK from {self.settings.describe()}") from None
        if reason.is_failure:
            await self.stop()
            raise ConnectionError(f"broker {self.settings.describe()} refused: {reason}")
        self._task = asyncio.create_task(self._run(), name=f"pose:{self.robot}")

    async def _run(self) -> None:
        """Publish a pose every period, on the loop's clock (no drift)."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            self.publish_now()
            due += self.period
            await asyncio.sleep(max(0.0, due - loop.time()))

    def publish_now(self) -> None:
        """Publish the cart's pose now."""
        self._send(contract.encode(self.message().to_payload()))
        self.published += 1

    def inject(self, raw: bytes) -> None:
        """Publish ``raw`` on the pose topic as it is (a malformed pose, for tests)."""
        self._send(raw)

    def _send(self, raw: bytes) -> None:
        if self._client is None:
            raise RuntimeError("PosePublisher is not started")
        self._client.publish(self.topic, raw, qos=QOS, retain=False)

    async def stop(self) -> None:
        """Stop publishing and disconnect. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.get_running_loop().run_in_executor(None, client.loop_stop)

    async def __aenter__(self) -> PosePublisher:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()
