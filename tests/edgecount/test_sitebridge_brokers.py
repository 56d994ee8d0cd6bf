"""The generated site bridge between two real Mosquittos: a site broker and a central one.

The site broker runs the configuration ``edgecount site bridge`` writes, as it is (only its
listener and persistence folder are the test's). The central broker speaks TLS only, wants a
client certificate whose CN is the user (``use_identity_as_username``), keeps its sessions on
disk, and enforces the ACL ``edgecount security acl`` generates with ``bridges:``.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgecount import contract
from edgecount.cli import main
from edgecount.security import AclSpec, acl_text
from tests.conftest import MosquittoBroker, MosquittoFactory, TlsFiles

SITE = "dc-east"
ROOT = contract.site_root(SITE)
STATE = contract.bridge_state_topic(SITE)
BRIDGE_USER = "bridge-dc-east"
APP_USER = "central-app"  # the reconciler role on the central broker
WAIT = 20.0


@dataclass
class Client:
    """A paho MQTT 5 client that records what it receives and can wait for it."""

    name: str
    client: paho.Client
    filters: list[str]
    received: list[paho.MQTTMessage] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        """Wait until ``predicate()`` holds (checked on every message); fail after ``timeout``."""
        with self.changed:
            if not self.changed.wait_for(predicate, timeout):
                raise AssertionError(f"{self.name}: {what} not seen within {timeout} s")

    def on(self, topic: str) -> list[bytes]:
        """Payloads received on ``topic``, in order."""
        with self.changed:
            return [bytes(m.payload) for m in self.received if m.topic == topic]

    def last(self, topic: str) -> bytes | None:
        """The latest payload on ``topic``."""
        payloads = self.on(topic)
        return payloads[-1] if payloads else None

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Publish with QoS 1; return the PUBACK's reason code once it came."""
        acks: dict[int, int] = self.client.user_data_get()
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self.changed:
            if not self.changed.wait_for(lambda: info.mid in acks, WAIT):
                raise AssertionError(f"{self.name}: no PUBACK for {topic}")
            return acks.pop(info.mid)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    broker: MosquittoBroker,
    name: str,
    filters: list[str],
    *,
    tls: ssl.SSLContext | None = None,
    persistent: bool = False,
    login: tuple[str, str] | None = None,
) -> Client:
    """Connect (and reconnect after a broker restart, resubscribing) and wait for the SUBACK."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.user_data_set({})
    me = Client(name, client, filters)
    if tls is not None:
        client.tls_set_context(tls)
    if login is not None:
        client.username_pw_set(*login)
    client.reconnect_delay_set(1, 1)

    def on_connect(c: paho.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if filters and not getattr(reason, "is_failure", True):
            c.subscribe([(f, 1) for f in filters])

    def on_subscribe(*_args: object) -> None:
        me.subscribed.set()

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        with me.changed:
            me.received.append(message)
            me.changed.notify_all()

    def on_publish(
        _c: paho.Client, acks: dict[int, int], mid: int, reason: object, _p: object
    ) -> None:
        with me.changed:
            acks[mid] = int(getattr(reason, "value", 0))
            me.changed.notify_all()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_publish = on_publish
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 86400 if persistent else 0
    client.connect(broker.host, broker.port, 10, clean_start=not persistent, properties=properties)
    client.loop_start()
    if filters and not me.subscribed.wait(WAIT):
        raise AssertionError(f"{name}: not subscribed")
    return me


def count_payload(location: str, seq: int) -> bytes:
    """A valid count of ``location`` as a gateway sends it, ``seq`` in its msg_id."""
    draft = contract.count_draft(
        gateway="gw-01",
        site=SITE,
        zone="A",
        location=location,
        scan_id="scan-1",
        items=[contract.CountItem(sku="80614141123458", qty=seq % 7)],
        source=contract.CountSource.RFID,
        complete=True,
    )
    message = draft.sequenced(seq)
    return contract.encode_message(message, topic=contract.count_topic(SITE, "A", location))


@dataclass
class Sites:
    """The two brokers, the clients on them and what each side published."""

    central: MosquittoBroker
    site: MosquittoBroker
    app: Client  # on the central broker, persistent session
    local: Client  # on the site broker, plays the gateways
    tls: TlsFiles
    app_tls: ssl.SSLContext


@pytest.fixture
def sites(
    mosquitto_factory: MosquittoFactory, tls_certs: TlsFiles, tmp_path: Path
) -> Iterator[Sites]:
    """A central broker, a site broker bridged to it by the generated configuration."""
    bridge_cert, bridge_key = tls_certs.issue(BRIDGE_USER)
    app_cert, app_key = tls_certs.issue(APP_USER)
    acl = tmp_path / "central.acl"
    spec = AclSpec.model_validate(
        {"site": SITE, "bridges": [BRIDGE_USER], "reconciler": [APP_USER]}
    )
    acl.write_text(acl_text(spec), encoding="utf-8")
    (tmp_path / "central-db").mkdir()
    (tmp_path / "site-db").mkdir()
    central_extra = "\n".join(
        [
            tls_certs.broker_config(require_certificate=True),
            "use_identity_as_username true",
            "allow_anonymous false",
            f"acl_file {acl}",
            "persistence true",
            f"persistence_location {tmp_path / 'central-db'}/",
        ]
    )
    central = mosquitto_factory(central_extra, ping_tls=tls_certs.client_context())
    site_yaml = tmp_path / "site.yaml"
    site_yaml.write_text(
        f"site: {SITE}\n"
        "central:\n"
        f"  host: 127.0.0.1\n  port: {central.port}\n  user: {BRIDGE_USER}\n"
        f"  tls: {{ca_file: {tls_certs.ca}, cert_file: {bridge_cert}, key_file: {bridge_key}}}\n"
        "bridge: {keepalive_seconds: 5, restart_min_seconds: 1, restart_max_seconds: 2}\n",
        encoding="utf-8",
    )
    generated = tmp_path / "bridge.conf"
    assert main(["site", "bridge", "-c", str(site_yaml), "-o", str(generated)]) == 0
    site_extra = f"persistence_location {tmp_path / 'site-db'}/\n" + generated.read_text("utf-8")
    site = mosquitto_factory(site_extra)
    app_tls = ssl.create_default_context(cafile=str(tls_certs.ca))
    app_tls.load_cert_chain(app_cert, app_key)
    app = connect(central, APP_USER, [f"{ROOT}#"], tls=app_tls, persistent=True)
    local = connect(site, f"gw-{uuid.uuid4().hex[:6]}", [f"{ROOT}#"])
    yield Sites(central, site, app, local, tls_certs, app_tls)
    app.close()
    local.close()


def publish_counts(site: MosquittoBroker, seqs: range) -> dict[str, bytes]:
    """Publish counts (QoS 1, retained, as the gateway) on the site broker; msg_id -> bytes.

    Count ``seq`` is of location ``L{seq % 50}``: each location is counted several times, so
    the retained message (the latest) is not what carries the others: only the queue does.
    """
    gateway = connect(site, f"gw-burst-{uuid.uuid4().hex[:6]}", [])
    sent: dict[str, bytes] = {}
    try:
        for seq in seqs:
            location = f"L{seq % 50:02d}"
            payload = count_payload(location, seq)
            topic = contract.count_topic(SITE, "A", location)
            assert gateway.publish(topic, payload, retain=True) == 0
            sent[json.loads(payload)["msg_id"]] = payload
    finally:
        gateway.close()
    return sent


def by_msg_id(client: Client) -> dict[str, list[bytes]]:
    """Every count the client received, by msg_id."""
    out: dict[str, list[bytes]] = {}
    with client.changed:
        for message in client.received:
            if message.topic.startswith(f"{ROOT}count/"):
                payload = bytes(message.payload)
                out.setdefault(json.loads(payload)["msg_id"], []).append(payload)
    return out


def test_counts_go_out_requests_come_in_and_nothing_loops(sites: Sites) -> None:
    app, local = sites.app, sites.local
    app.wait(lambda: app.last(STATE) == b"1", "the bridge's state 1 on the central broker")
    local.wait(lambda: local.last(STATE) == b"1", "the bridge's state 1 on the site broker")

    first = count_payload("L-first", 1)
    assert local.publish(contract.count_topic(SITE, "A", "L-first"), first, retain=True) == 0
    app.wait(lambda: first in app.on(contract.count_topic(SITE, "A", "L-first")), "the count")

    request = contract.cmd_scan_topic(SITE, "gw-01")
    body = json.dumps({"marker": uuid.uuid4().hex}).encode()
    assert app.publish(request, body) == 0
    local.wait(lambda: body in local.on(request), "the scan request at the site")

    # A second count after both: any echo of the first two would be in by the time it is.
    second = count_payload("L-second", 2)
    assert local.publish(contract.count_topic(SITE, "A", "L-second"), second, retain=True) == 0
    app.wait(lambda: second in app.on(contract.count_topic(SITE, "A", "L-second")), "count 2")
    local.wait(lambda: second in local.on(contract.count_topic(SITE, "A", "L-second")), "own")
    assert local.on(contract.count_topic(SITE, "A", "L-first")) == [first]  # not back from centre
    assert app.on(contract.count_topic(SITE, "A", "L-first")) == [first]  # once at the centre
    assert local.on(request) == [body]  # the request came in once and did not go out again


def test_the_bridge_user_writes_only_its_own_site(sites: Sites) -> None:
    cert, key = (
        sites.tls.ca.parent / f"{BRIDGE_USER}.crt",
        sites.tls.ca.parent / f"{BRIDGE_USER}.key",
    )
    context = ssl.create_default_context(cafile=str(sites.tls.ca))
    context.load_cert_chain(cert, key)
    impostor = connect(sites.central, f"{BRIDGE_USER}-probe", [], tls=context)
    try:
        assert impostor.publish("edgecount/v1/dc-west/count/A/L1", b"{}") == 0x87
        assert impostor.publish(contract.cmd_scan_topic(SITE, "gw-01"), b"{}") == 0x87
        assert impostor.publish(contract.adjustment_topic(SITE), b"{}") == 0x87
        assert impostor.publish(contract.count_topic(SITE, "A", "L1"), b"{}") == 0
    finally:
        impostor.close()


def test_central_broker_away_nothing_lost(sites: Sites) -> None:
    app, local = sites.app, sites.local
    app.wait(lambda: app.last(STATE) == b"1", "the bridge's state 1 on the central broker")
    sites.central.stop()
    local.wait(lambda: local.last(STATE) == b"0", "the bridge's state 0 on the site broker")

    sent = publish_counts(sites.site, range(100, 300))
    sites.site.restart()  # a clean restart: the site broker saves its queue and loads it again
    sent |= publish_counts(sites.site, range(300, 400))
    started = time.monotonic()
    sites.central.start()
    app.wait(lambda: set(sent) <= set(by_msg_id(app)), "every count queued at the site")
    caught_up = time.monotonic() - started
    received = by_msg_id(app)
    assert set(received) == set(sent)
    assert all(payload == sent[msg_id] for msg_id, copies in received.items() for payload in copies)
    duplicates = sum(len(copies) - 1 for copies in received.values())
    print(f"400 counts queued; all in {caught_up:.1f} s after the centre came back;"
          f" {duplicates} duplicate copies")  # fmt: skip
    app.wait(lambda: app.last(STATE) == b"1", "the bridge's state 1 again")

    sites.site.kill()  # the site broker dies: the central broker publishes the bridge's Will
    app.wait(lambda: app.last(STATE) == b"0", "the bridge's Will (state 0) on the central broker")
