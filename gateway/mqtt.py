"""MQTT connection settings and the helpers that turn them into a paho-mqtt client.

The configuration maps its YAML ``mqtt:`` section onto :class:`MqttSettings`; the publisher
builds a fresh paho client per connection with :func:`new_client`. Topic roots live in
:mod:`edgecount.contract` and are re-exported here for convenience.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgecount.contract import TOPIC_PREFIX, site_filter, site_root

__all__ = [
    "TOPIC_PREFIX",
    "Backoff",
    "MqttSettings",
    "MqttSettingsError",
    "new_client",
    "read_password",
    "site_filter",
    "site_root",
]

Protocol = Literal["5", "3.1.1"]


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
            id takes the session over). Empty: the publisher uses ``edgecount-{gateway_id}``.
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
    """

    host: str = "127.0.0.1"
    port: int = 1883
    protocol: Protocol = "5"
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

    def __post_init__(self) -> None:
        if self.protocol not in ("5", "3.1.1"):
            raise MqttSettingsError(f"protocol must be '5' or '3.1.1', got {self.protocol!r}")
        if (self.cert_file is None) != (self.key_file is None):
            raise MqttSettingsError("cert_file and key_file go together")
        if not 0 < self.reconnect_min_delay <= self.reconnect_max_delay:
            raise MqttSettingsError("need 0 < reconnect_min_delay <= reconnect_max_delay")
        if self.max_inflight < 1:
            raise MqttSettingsError("max_inflight must be at least 1")

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
    """
    v5 = settings.protocol == "5"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=settings.paho_protocol,
        clean_session=None if v5 else True,
        reconnect_on_failure=False,
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


class Backoff:
    """Exponential reconnect delays with "equal jitter".

    The n-th delay is drawn uniformly from ``[d/2, d]`` with ``d = min(max, min * 2**n)``.
    paho's own reconnect delay has no jitter: after a broker restart a whole fleet of
    gateways would reconnect in lock-step, again and again. Equal jitter spreads them while
    keeping a floor of ``d/2``, so one gateway never hammers a broker that refuses it.

    Args:
        minimum: The first delay's upper end, seconds.
        maximum: The cap, seconds.
        rng: Random source (tests pass a seeded one).
    """

    def __init__(self, minimum: float, maximum: float, rng: random.Random | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self) -> float:
        """The delay before the next attempt; each call backs off further."""
        ceiling = min(self.maximum, self.minimum * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from the minimum (after a connection proved stable)."""
        self.attempt = 0
