"""MQTT connection settings and the helpers that turn them into a paho-mqtt client.

The configuration maps its YAML ``mqtt:`` section onto :class:`MqttSettings`; the publisher
builds a fresh paho client per connection with :func:`new_client`. Topic roots live in
:mod:`edgecount.contract` and are re-exported here for convenience.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edgecount.backoff import Backoff
from edgecount.bridge import LoopBridge
from edgecount.contract import TOPIC_PREFIX, site_filter, site_root

log = logging.getLogger(__name__)

__all__ = [
    "TOPIC_PREFIX",
    "Backoff",
    "ConnectionEvents",
    "Delivery",
    "MqttConnection",
    "MqttSettings",
    "MqttSettingsError",
    "new_client",
    "read_password",
    "site_filter",
    "site_root",
]

MqttProtocol = Literal["5", "3.1.1"]


class MqttSettingsError(ValueError):
    """The settings cannot work (unreadable password file, bad protocol, ...)."""


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """How to reach the broker.

    Attributes:
        host: Broker host name or address.
        port: Broker port (1883, or 8883 for TLS by convention).
        protocol: ``"5"`` or ``"3.1.1"``.
        client_id: MQTT client id; must be unique per gateway (a second client with the same
            id takes the session over). Empty: the publisher uses ``edgecount-{site}-{gateway_id}``.
        username: User name, or None for anonymous.
        password_file: File holding the password (trailing newline ignored). It is read at
            every connection attempt, so a rotated secret is picked up; it is never logged.
        ca_file: PEM CA bundle; setting it (or ``tls``) turns TLS on.
        cert_file: PEM client certificate, for mutual TLS (with ``key_file``).
        key_file: PEM private key of the client certificate.
        tls: TLS with the system's CA store when no ``ca_file`` is given.
        keepalive: MQTT keepalive, seconds; the broker publishes the Will about 1.5 times
            this long after the gateway goes silent.
        connect_timeout: Seconds for the TCP (and TLS) connection to open.
        reconnect_min_delay: First reconnect delay, seconds (see :class:`Backoff`).
        reconnect_max_delay: Cap on the reconnect delay, seconds.
        max_inflight: Messages published but not yet acknowledged, at most.
        session_expiry: None (the default): clean start, a fresh broker session per
            connection. Seconds: a persistent session, clean start off, so the broker keeps
            the subscriptions and queues QoS 1 messages for them while the client is away.
            MQTT 5 sends it as the Session Expiry Interval; MQTT 3.1.1 has no expiry and
            connects with clean session off (the broker's ``persistent_client_expiration``
            decides how long the session lives). Needs a stable ``client_id``.
    """

    host: str = "127.0.0.1"
    port: int = 1883
    protocol: MqttProtocol = "5"
    client_id: str = ""
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls: bool = False
    keepalive: int = 30
    connect_timeout: float = 10.0
    reconnect_min_delay: float = 0.5
    reconnect_max_delay: float = 60.0
    max_inflight: int = 20
    session_expiry: int | None = None

    def __post_init__(self) -> None:
        if self.protocol not in ("5", "3.1.1"):
            raise MqttSettingsError(f"protocol must be '5' or '3.1.1', got {self.protocol!r}")
        if (self.cert_file is None) != (self.key_file is None):
            raise MqttSettingsError("cert_file and key_file go together")
        if not 0 < self.reconnect_min_delay <= self.reconnect_max_delay:
            raise MqttSettingsError("need 0 < reconnect_min_delay <= reconnect_max_delay")
        if self.max_inflight < 1:
            raise MqttSettingsError("max_inflight must be at least 1")
        if self.session_expiry is not None and not 0 <= self.session_expiry <= 0xFFFFFFFF:
            raise MqttSettingsError("session_expiry must be 0 to 4294967295 seconds")

    @property
    def uses_tls(self) -> bool:
        """Whether connections use TLS."""
        return self.tls or self.ca_file is not None

    @property
    def paho_protocol(self) -> MQTTProtocolVersion:
        """The paho protocol constant."""
        return MQTTProtocolVersion.MQTTv5 if self.protocol == "5" else MQTTProtocolVersion.MQTTv311

    def describe(self) -> str:
        """``mqtt[s]://user@host:port (v5)``, for logs: never includes the password."""
        scheme = "mqtts" if self.uses_tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port} (MQTT {self.protocol})"


def read_password(path: Path) -> str:
    """The password in ``path`` without its trailing newline.

    Raises:
        MqttSettingsError: When the file cannot be read (the message names the file only).
    """
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise MqttSettingsError(f"cannot read MQTT password file {path}: {reason}") from None


def new_client(
    settings: MqttSettings,
    client_id: str,
    *,
    will: tuple[str, bytes] | None = None,
    manual_ack: bool = False,
) -> paho.Client:
    """A configured paho client (callback API v2) that never reconnects by itself.

    Reconnecting is the caller's job (:class:`Backoff`), with a fresh client each time, so
    paho's internal queue of unacknowledged messages never re-sends stale payloads next to
    the outbox's replay.

    Args:
        settings: Connection settings.
        client_id: MQTT client id.
        will: ``(topic, payload)`` published retained with QoS 1 by the broker when the
            connection is lost without a DISCONNECT.
        manual_ack: Incoming QoS 1 messages are acknowledged only by ``client.ack(mid, 1)``.
    """
    v5 = settings.protocol == "5"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=settings.paho_protocol,
        clean_session=None if v5 else settings.session_expiry is None,
        reconnect_on_failure=False,
        manual_ack=manual_ack,
    )
    client.connect_timeout = settings.connect_timeout
    client.max_inflight_messages_set(settings.max_inflight + 2)  # + birth and stopped
    if settings.username is not None:
        password = None if settings.password_file is None else read_password(settings.password_file)
        client.username_pw_set(settings.username, password)
    if settings.uses_tls:
        client.tls_set(
            ca_certs=None if settings.ca_file is None else str(settings.ca_file),
            certfile=None if settings.cert_file is None else str(settings.cert_file),
            keyfile=None if settings.key_file is None else str(settings.key_file),
        )
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    return client


@dataclass(frozen=True, slots=True)
class Delivery:
    """An incoming message that waits for :meth:`MqttConnection.ack` (manual acknowledgement).

    Attributes:
        conn: The connection it came on; a PUBACK only means something on that connection.
        topic: Its topic.
        payload: Its payload.
        mid: Its packet id (0 for QoS 0).
        qos: Its QoS.
    """

    conn: MqttConnection
    topic: str
    payload: bytes
    mid: int
    qos: int


DeliveryHandler = Callable[[Delivery], None]


class ConnectionEvents(Protocol):
    """What a :class:`MqttConnection` reports, always on the event loop."""

    def connection_acked(
        self, conn: MqttConnection, reason: ReasonCode, properties: Properties | None, /
    ) -> None:
        """CONNACK arrived; ``reason`` may be a failure (then the connection closes)."""

    def connection_closed(self, conn: MqttConnection, reason: str, /) -> None:
        """The connection ended (reported once)."""

    def message_acked(self, conn: MqttConnection, mid: int, reason: ReasonCode, /) -> None:
        """PUBACK for ``mid`` (for MQTT 5, ``reason`` may be a failure)."""

    def message_received(self, conn: MqttConnection, topic: str, payload: bytes, /) -> None:
        """An incoming PUBLISH."""

    def subscription_acked(
        self, conn: MqttConnection, topic_filter: str, reasons: list[ReasonCode], /
    ) -> None:
        """SUBACK for a subscription made with :meth:`MqttConnection.subscribe`."""


class MqttConnection:
    """One connection to the broker: a fresh paho client and its network thread.

    paho calls back on its own thread. Every callback goes through one
    :class:`~edgecount.bridge.LoopBridge`, the seam where that thread hands work to the event
    loop, so :class:`ConnectionEvents` are only ever called on the loop, in the order paho
    reported them. Incoming messages wait in the bridge; more than ``max_backlog`` of them
    are dropped and counted (:attr:`dropped`) — except with manual acknowledgement, where
    every message matters and the broker would not send a dropped one again before the next
    connection: there a full bridge holds paho's thread back (TCP keeps the backlog in the
    broker) for at most half a keepalive, so the thread still answers the broker in time,
    and drops only after that (a wedged loop).

    Args:
        settings: Connection settings.
        client_id: MQTT client id.
        events: Receives the connection's events.
        loop: The event loop to report on.
        will: ``(topic, payload)`` for the retained QoS 1 Will.
        max_backlog: Incoming messages allowed to wait for the loop.
        on_delivery: Manual acknowledgement: incoming messages go to this callback (on the
            loop) instead of ``events.message_received``, and a QoS 1 message is acknowledged
            only when the receiver calls :meth:`ack`. With MQTT 5 the connection asks the
            broker for at most ``max_backlog`` unacknowledged messages (Receive Maximum), so
            none is ever dropped here.
        held_until_released: A delivered message keeps its room in ``max_backlog`` until
            the receiver calls :meth:`release` for it (when it leaves the receiver's own
            queue), so the bound, and paho's wait for room, cover that queue too: a broker
            that sends more than the Receive Maximum (Mosquitto 2.0.11 under load) is held
            back by TCP instead of overflowing the receiver.
        receive_maximum: The MQTT 5 Receive Maximum asked of the broker (default
            ``max_backlog``); smaller than a ``max_backlog`` that covers the receiver's
            queue, so a broker that keeps to it never makes paho's thread wait.

    Raises:
        MqttSettingsError: When the settings cannot be applied (unreadable password file).
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        events: ConnectionEvents,
        *,
        loop: asyncio.AbstractEventLoop,
        will: tuple[str, bytes] | None = None,
        max_backlog: int = 1000,
        on_delivery: DeliveryHandler | None = None,
        held_until_released: bool = False,
        receive_maximum: int | None = None,
    ) -> None:
        self.settings = settings
        self.client = new_client(settings, client_id, will=will, manual_ack=on_delivery is not None)
        self.session_present = False
        self.closed = False
        self._events = events
        self._loop = loop
        self._max_backlog = max_backlog
        self._receive_maximum = receive_maximum or max_backlog
        self._on_delivery = on_delivery
        self._bridge: LoopBridge[Delivery] = LoopBridge(
            loop,
            self._deliver,
            maxsize=max_backlog,
            name=f"mqtt {client_id}",
            block_timeout=settings.keepalive / 2 if on_delivery is not None else 0.0,
            room_on="release" if held_until_released else "drain",
        )
        self._filters: dict[int, str] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    @property
    def dropped(self) -> int:
        """Incoming messages dropped because ``max_backlog`` of them waited for the loop
        (with manual acknowledgement: for longer than half a keepalive).

        None was acknowledged: a persistent session gets them again.
        """
        return self._bridge.dropped

    @property
    def waits(self) -> int:
        """Times paho's thread waited for room (manual acknowledgement: back-pressure)."""
        return self._bridge.waits

    # paho callbacks: network thread -----------------------------------------------------

    def _on_connect(
        self, _c: paho.Client, _u: Any, flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        self.session_present = bool(getattr(flags, "session_present", False))
        self._bridge.call(self._events.connection_acked, self, reason, props)

    def _on_disconnect(
        self, _c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Properties | None
    ) -> None:
        self._bridge.call(self._closed, str(reason))

    def _on_publish(
        self, _c: paho.Client, _u: Any, mid: int, reason: ReasonCode, _p: Properties
    ) -> None:
        self._bridge.call(self._events.message_acked, self, mid, reason)

    def _on_subscribe(
        self, _c: paho.Client, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any
    ) -> None:
        self._bridge.call(self._subscribed, mid, reasons)

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "replace")  # paho offers no other way
        self._bridge.put(Delivery(self, topic, bytes(message.payload), message.mid, message.qos))

    # the same events, on the loop --------------------------------------------------------

    def _deliver(self, batch: list[Delivery]) -> None:
        for delivery in batch:
            if self._on_delivery is not None:
                self._on_delivery(delivery)
            else:
                self._events.message_received(self, delivery.topic, delivery.payload)

    def _subscribed(self, mid: int, reasons: list[ReasonCode]) -> None:
        self._events.subscription_acked(self, self._filters.pop(mid, "?"), reasons)

    def _closed(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self._events.connection_closed(self, reason)

    # commands: event loop ----------------------------------------------------------------

    async def open(self) -> None:
        """Open TCP (and TLS), send CONNECT and start the network thread.

        Raises:
            OSError: The broker cannot be reached (refused, timeout, TLS failure, DNS).
        """
        await self._loop.run_in_executor(None, self._connect_blocking)
        self.client.loop_start()

    def _connect_blocking(self) -> None:
        s = self.settings
        if s.protocol != "5":
            self.client.connect(s.host, s.port, s.keepalive)
            return
        # Clean start by default: the gateway's outbox, not the broker session, remembers
        # what is unacked. A persistent session (session_expiry) lets the broker queue.
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if s.session_expiry is not None:
            props.SessionExpiryInterval = s.session_expiry
        if self._on_delivery is not None:
            props.ReceiveMaximum = self._receive_maximum
        self.client.connect(
            s.host,
            s.port,
            s.keepalive,
            clean_start=s.session_expiry is None,
            properties=props if s.session_expiry is not None or self._on_delivery else None,
        )

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> int | None:
        """Send a PUBLISH; returns its packet id, or None when the connection is gone."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return info.mid if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS else None

    def release(self, count: int = 1) -> None:
        """``count`` delivered messages left the receiver's queue (``held_until_released``)."""
        self._bridge.release(count)

    def ack(self, delivery: Delivery) -> bool:
        """Send the PUBACK of a delivery (manual acknowledgement); False when it cannot.

        A delivery from an earlier connection is not acknowledged here: its packet id means
        nothing on this one, and the broker sends it again on the next connection of a
        persistent session.
        """
        if delivery.conn is not self or delivery.qos == 0:
            return delivery.qos == 0
        return self.client.ack(delivery.mid, delivery.qos) == MQTTErrorCode.MQTT_ERR_SUCCESS

    def subscribe(self, topic_filter: str, qos: int = 1, *, retained_if_new: bool = False) -> bool:
        """Send a SUBSCRIBE; False when the connection is gone.

        With ``retained_if_new`` (MQTT 5 only: Retain Handling 1) the broker sends the
        retained messages only when the subscription is new, not again to a session that
        already holds it.
        """
        if retained_if_new and self.settings.protocol == "5":
            options = SubscribeOptions(
                qos=qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
            )
            rc, mid = self.client.subscribe(topic_filter, options=options)
        else:
            rc, mid = self.client.subscribe(topic_filter, qos=qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            return False
        self._filters[mid] = topic_filter
        return True

    def is_connected(self) -> bool:
        """paho's view: CONNACK received and the socket still up."""
        return self.client.is_connected()

    def disconnect(self) -> None:
        """Send DISCONNECT: a clean end, so the broker does not publish the Will."""
        self.client.disconnect()

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT (the broker publishes the Will)."""
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:
                log.debug("socket shutdown: %s", exc)

    async def close(self, within: float) -> bool:
        """Join the network thread (after the connection ended); False if it would not end."""
        join = self._loop.run_in_executor(None, self.client.loop_stop)
        try:
            await asyncio.wait_for(asyncio.shield(join), within)
        except TimeoutError:
            log.warning("paho network thread still running after %.1f s; abandoning it", within)
            return False
        return True
