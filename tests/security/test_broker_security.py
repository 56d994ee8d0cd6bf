"""What the broker itself refuses: no TLS trust, no password, a wrong one, a foreign zone."""

from __future__ import annotations

import json
import ssl
import subprocess
from pathlib import Path

import pytest
from paho.mqtt.reasoncodes import ReasonCode

from edgecount import contract
from tests.conftest import mqtt_ping
from tests.security.conftest import SITE, Connect, SecureBroker, mqtt_client

NOT_AUTHORIZED = 0x87
BAD_CREDENTIALS = 0x86


def count_body(gateway: str, zone: str, location: str, qty: int = 1) -> bytes:
    payload = contract.count_payload(
        gateway=gateway,
        site=SITE,
        zone=zone,
        location=location,
        scan_id="s1",
        items=[{"sku": "80614141123458", "qty": qty}],
    )
    return contract.encode(contract.with_sequence(payload, qty))


def refused(reason: ReasonCode | None) -> int:
    assert reason is not None
    assert reason.is_failure, f"accepted: {reason}"
    return int(reason.value)


def test_unauthenticated_client_cannot_connect(connect: Connect) -> None:
    anonymous = connect(None)
    assert refused(anonymous.connack) in (NOT_AUTHORIZED, BAD_CREDENTIALS)


def test_wrong_password_is_refused(connect: Connect) -> None:
    intruder = connect("gw-a", "guessed")
    assert refused(intruder.connack) in (NOT_AUTHORIZED, BAD_CREDENTIALS)


def test_gateway_cannot_publish_a_count_for_another_gateways_zone(connect: Connect) -> None:
    root = contract.site_root(SITE)
    reconciler = connect("reconciler", subscribe=f"{root}count/#")
    gw_a = connect("gw-a")
    foreign = contract.count_topic(SITE, "B", "B-01")
    assert refused(gw_a.publish(foreign, count_body("gw-a", "B", "B-01"))) == NOT_AUTHORIZED
    own = contract.count_topic(SITE, "A", "A-01")
    assert not gw_a.publish(own, count_body("gw-a", "A", "A-01")).is_failure
    # Same connection, in order: had the refused one been forwarded, it would be first.
    (only,) = reconciler.wait_messages(1)
    assert only.topic == own


def test_gateway_cannot_impersonate_status_or_read_others_commands(connect: Connect) -> None:
    gw_a = connect("gw-a")
    assert refused(gw_a.publish(contract.status_topic(SITE, "gw-b"), b"{}")) == NOT_AUTHORIZED
    assert refused(gw_a.publish(contract.adjustment_topic(SITE), b"{}")) == NOT_AUTHORIZED
    wms = connect("wms")
    assert refused(wms.publish(contract.count_topic(SITE, "A", "A-9"), b"{}")) == NOT_AUTHORIZED


def test_gateways_own_counts_and_scans_arrive(connect: Connect) -> None:
    root = contract.site_root(SITE)
    reconciler = connect("reconciler", subscribe=f"{root}#")
    gw_b = connect("gw-b")
    topic = contract.count_topic(SITE, "B", "B-07")
    body = count_body("gw-b", "B", "B-07", qty=4)
    assert not gw_b.publish(topic, body).is_failure
    assert not gw_b.publish(contract.status_topic(SITE, "gw-b"), b"{}").is_failure
    first, second = reconciler.wait_messages(2)
    assert (first.topic, json.loads(first.payload)["total"]) == (topic, 4)
    assert second.topic == contract.status_topic(SITE, "gw-b")


def test_client_without_the_ca_cannot_connect(secure_broker: SecureBroker, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger-ca.crt"  # a CA of its own: not the broker's
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(tmp_path / "stranger.key"), "-out", str(stranger),
         "-days", "1", "-subj", "/CN=stranger"],
        check=True, capture_output=True,
    )  # fmt: skip
    with pytest.raises(ssl.SSLCertVerificationError):
        mqtt_client(secure_broker, "gw-a", ca=stranger)
    broker = secure_broker.broker
    assert not mqtt_ping(broker.host, broker.port, accepted=False)  # plain MQTT: no CONNACK


def test_gateway_receives_only_its_own_commands(connect: Connect) -> None:
    # Mosquitto 2.0 grants the SUBACK of any filter and checks read access per message.
    gw_a = connect("gw-a", subscribe=f"{contract.site_root(SITE)}#")
    reconciler = connect("reconciler")
    body = contract.encode(
        contract.scan_request_payload(reason="recount", requested_by="t", locations=["B-01"])
    )
    assert not reconciler.publish(contract.cmd_scan_topic(SITE, "gw-b"), body).is_failure
    assert not reconciler.publish(contract.cmd_scan_topic(SITE, "gw-a"), body).is_failure
    (only,) = gw_a.wait_messages(1)
    assert only.topic == contract.cmd_scan_topic(SITE, "gw-a")
