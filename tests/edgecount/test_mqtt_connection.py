"""MqttConnection against the real broker: what happens when the event loop falls behind."""

from __future__ import annotations

import asyncio
import threading
import time

import paho.mqtt.publish as paho_publish
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgecount.mqtt import Delivery, MqttConnection, MqttSettings
from tests.conftest import BrokerAddress, eventually

MESSAGES = 60
BACKLOG = 5


class _Events:
    """The connection's events, as asyncio events a test can await."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.subscribed = asyncio.Event()

    def connection_acked(
        self, _conn: MqttConnection, _reason: ReasonCode, _props: Properties | None, /
    ) -> None:
        self.connected.set()

    def connection_closed(self, _conn: MqttConnection, _reason: str, /) -> None:
        pass

    def message_acked(self, _conn: MqttConnection, _mid: int, _reason: ReasonCode, /) -> None:
        pass

    def message_received(self, _conn: MqttConnection, _topic: str, _payload: bytes, /) -> None:
        pass

    def subscription_acked(
        self, _conn: MqttConnection, _filter: str, _reasons: list[ReasonCode], /
    ) -> None:
        self.subscribed.set()


async def test_manual_ack_holds_paho_back_while_the_loop_is_busy_and_loses_nothing(
    broker: BrokerAddress, unique_site: str
) -> None:
    """MQTT 3.1.1 has no Receive Maximum: the broker sends as fast as it can. A busy loop
    (a long database transaction on the loop thread) must not cost a message: paho's
    thread waits for room, the backlog stays in TCP and the broker, and everything arrives
    in order once the loop is back."""
    topic = f"edgecount-test/{unique_site}/flood"
    events = _Events()
    got: list[Delivery] = []

    def delivered(delivery: Delivery) -> None:
        got.append(delivery)
        assert delivery.conn.ack(delivery)

    settings = MqttSettings(host=broker.host, port=broker.port, protocol="3.1.1", keepalive=20)
    conn = MqttConnection(
        settings,
        f"flood-{unique_site}",
        events,
        loop=asyncio.get_running_loop(),
        max_backlog=BACKLOG,
        on_delivery=delivered,
    )
    await conn.open()
    try:
        await asyncio.wait_for(events.connected.wait(), 5)
        assert conn.subscribe(topic, 1)
        await asyncio.wait_for(events.subscribed.wait(), 5)

        loop_free = threading.Event()
        outcome: list[str] = []

        def flood() -> None:  # another thread: publish while the loop is held
            paho_publish.multiple(
                [{"topic": topic, "payload": str(i), "qos": 1} for i in range(MESSAGES)],
                hostname=broker.host,
                port=broker.port,
            )
            deadline = time.monotonic() + 10
            while conn.waits == 0 and time.monotonic() < deadline:
                time.sleep(0.01)  # polls a condition with a deadline, like `eventually`
            outcome.append("waited" if conn.waits else "never waited")
            loop_free.set()

        worker = threading.Thread(target=flood, name="flood")
        worker.start()
        assert loop_free.wait(15)  # holds the event loop on purpose: it is "busy"
        worker.join(10)
        assert outcome == ["waited"]
        await eventually(lambda: len(got) == MESSAGES, 10, "every message delivered")
        assert [d.payload for d in got] == [str(i).encode() for i in range(MESSAGES)]
        assert conn.dropped == 0
    finally:
        conn.disconnect()
        conn.client.loop_stop()
