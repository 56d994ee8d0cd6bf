"""A Mosquitto as production runs it: TLS only, passwords, and the generated ACL.

The broker knows five users: gateways ``gw-a`` (zone A) and ``gw-b`` (zone B), ``gw-old``
(zone B: still in the ACL, no longer in the reconciler's ``authorized_gateways``; the ACL is
wider than the reconciler), the ``reconciler`` and a read-only ``wms``. Every password is
random per test and lives only in a file, like in production.
"""

from __future__ import annotations

import secrets
import ssl
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edgecount.mqtt import MqttSettings
from edgecount.security import AclSpec, acl_text
from tests.conftest import MosquittoBroker, MosquittoFactory, TlsFiles

SITE = "dc9"
SPEC = AclSpec.model_validate(
    {
        "site": SITE,
        "gateways": {"gw-a": ["A"], "gw-b": ["B"], "gw-old": ["B"]},
        "reconciler": ["reconciler"],
        "wms": ["wms"],
    }
)
AUTHORIZED = {"gw-a": frozenset({"A"}), "gw-b": frozenset({"B"})}  # the reconciler's view


@dataclass(frozen=True, slots=True)
class SecureBroker:
    """The broker, its CA, and each user's password file."""

    broker: MosquittoBroker
    ca: Path
    password_files: dict[str, Path]

    def password(self, user: str) -> str:
        """The password of ``user`` (for asserting it is never logged)."""
        return self.password_files[user].read_text(encoding="utf-8").strip()

    def settings(self, user: str, **overrides: Any) -> MqttSettings:
        """Client settings for ``user``: TLS with the test CA, password from its file."""
        values: dict[str, Any] = {
            "host": self.broker.host,
            "port": self.broker.port,
            "client_id": f"{user}-{uuid.uuid4().hex[:6]}",
            "username": user,
            "password_file": self.password_files[user],
            "ca_file": self.ca,
            "keepalive": 5,
            "connect_timeout": 3.0,
            "reconnect_min_delay": 0.05,
            "reconnect_max_delay": 0.3,
        }
        values.update(overrides)
        return MqttSettings(**values)


@pytest.fixture
def secure_broker(
    mosquitto_factory: MosquittoFactory, tls_certs: TlsFiles, tmp_path: Path
) -> SecureBroker:
    """Start the TLS + password + ACL broker (see the module docstring)."""
    users = [user for role in SPEC.users().values() for user in role]
    passwd = tmp_path / "passwd"
    passwd.touch()
    files: dict[str, Path] = {}
    for user in users:
        secret = secrets.token_urlsafe(18)
        subprocess.run(
            ["mosquitto_passwd", "-b", str(passwd), user, secret], check=True, capture_output=True
        )
        files[user] = tmp_path / f"{user}.password"
        files[user].write_text(secret + "\n", encoding="utf-8")
    acl = tmp_path / "acl"
    acl.write_text(acl_text(SPEC), encoding="utf-8")
    config = "\n".join(
        [
            "allow_anonymous false",
            f"password_file {passwd}",
            f"acl_file {acl}",
            tls_certs.broker_config(),
        ]
    )
    ping = ssl.create_default_context(cafile=str(tls_certs.ca))
    broker = mosquitto_factory(config, ping_tls=ping)
    return SecureBroker(broker, tls_certs.ca, files)


@dataclass
class Client:
    """A plain paho MQTT 5 client whose callbacks set events a test waits on."""

    client: paho.Client
    connack: ReasonCode | None = None
    connected: threading.Event = field(default_factory=threading.Event)
    subscribed: threading.Event = field(default_factory=threading.Event)
    acks: dict[int, ReasonCode] = field(default_factory=dict)
    acked: threading.Condition = field(default_factory=threading.Condition)
    messages: list[paho.MQTTMessage] = field(default_factory=list)

    def publish(self, topic: str, body: bytes, timeout: float = 5.0) -> ReasonCode:
        """Publish with QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, body, qos=1)
        with self.acked:
            if not self.acked.wait_for(lambda: info.mid in self.acks, timeout):
                raise AssertionError(f"no PUBACK for {topic} within {timeout} s")
            return self.acks[info.mid]

    def wait_messages(self, count: int, timeout: float = 5.0) -> list[paho.MQTTMessage]:
        """Block until ``count`` messages arrived; return them all."""
        with self.acked:
            if not self.acked.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"{len(self.messages)} of {count} messages in {timeout} s")
            return list(self.messages)


def mqtt_client(
    secure: SecureBroker,
    user: str | None,
    password: str | None = None,
    *,
    ca: Path | None = None,
    subscribe: str | None = None,
) -> Client:
    """Connect a client (TLS with ``ca``, default the test CA) and wait for the CONNACK.

    ``password`` defaults to the user's own; ``subscribe`` waits for that SUBACK too.

    Raises:
        ssl.SSLError: The TLS handshake failed (certificate verification).
    """
    c = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"t-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
        reconnect_on_failure=False,
    )
    state = Client(c)
    if user is not None:
        c.username_pw_set(user, password if password is not None else secure.password(user))
    c.tls_set(ca_certs=str(ca or secure.ca))

    def on_connect(_c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        state.connack = reason
        if not reason.is_failure and subscribe is not None:
            c.subscribe(subscribe, qos=1)
        state.connected.set()

    def on_subscribe(_c: paho.Client, _u: Any, _m: int, _r: Any, _p: Any) -> None:
        state.subscribed.set()

    def on_publish(_c: paho.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with state.acked:
            state.acks[mid] = reason
            state.acked.notify_all()

    def on_message(_c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        with state.acked:
            state.messages.append(message)
            state.acked.notify_all()

    c.on_connect, c.on_subscribe = on_connect, on_subscribe
    c.on_publish, c.on_message = on_publish, on_message
    c.connect(secure.broker.host, secure.broker.port, keepalive=10)
    c.loop_start()
    if not state.connected.wait(5):
        c.loop_stop()
        raise AssertionError(f"no CONNACK for {user} within 5 s")
    if subscribe is not None and state.connack is not None and not state.connack.is_failure:
        assert state.subscribed.wait(5), f"no SUBACK for {subscribe}"
    return state


Connect = Callable[..., Client]


@pytest.fixture
def connect(secure_broker: SecureBroker) -> Iterator[Connect]:
    """``connect(user, password=None, ca=None, subscribe=None)``: :func:`mqtt_client`s on the
    secure broker, disconnected after the test."""
    made: list[Client] = []

    def make(user: str | None, password: str | None = None, **kwargs: Any) -> Client:
        state = mqtt_client(secure_broker, user, password, **kwargs)
        made.append(state)
        return state

    yield make
    for state in made:
        state.client.disconnect()
        state.client.loop_stop()
