"""MemoryPublisher, MQTT settings and the reconnect backoff: pure logic, no broker."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edgecount import contract
from edgecount.mqtt import Backoff, MqttSettings, MqttSettingsError, new_client, read_password
from gateway.outbox import OutboxFullError
from gateway.publisher import MemoryPublisher

SITE, GW = "dc-east", "gw-1"


def draft(location: str = "L1") -> contract.CountDraft:
    return contract.count_draft(
        gateway=GW,
        site=SITE,
        zone="z",
        location=location,
        scan_id="s",
        items=[contract.CountItem(sku="x", qty=1)],
    )


async def test_memory_publisher_sequences_validates_and_keeps_retained() -> None:
    publisher = MemoryPublisher(site=SITE, gateway_id=GW)
    await publisher.start()
    first = await publisher.publish(contract.count_topic(SITE, "z", "L1"), draft(), retain=True)
    second = await publisher.publish(contract.count_topic(SITE, "z", "L1"), draft(), retain=True)
    assert isinstance(first, contract.CountMessage)
    assert isinstance(second, contract.CountMessage)
    assert (first.msg_id, second.msg_id) == ("gw-1:1", "gw-1:2")
    assert publisher.retained[contract.count_topic(SITE, "z", "L1")] == second
    with pytest.raises(contract.ContractError, match="location is 'L1' but the topic"):
        await publisher.publish(contract.count_topic(SITE, "z", "L2"), draft(), retain=True)
    assert publisher.health().rejected == 1
    publisher.fail_with = OutboxFullError("full")
    with pytest.raises(OutboxFullError):
        await publisher.publish(contract.count_topic(SITE, "z", "L1"), draft(), retain=True)
    assert await publisher.flush(0.1)
    await publisher.stop()
    states = [status.state for status in publisher.published(contract.StatusMessage)]
    assert states == [contract.GatewayState.ONLINE, contract.GatewayState.STOPPED]
    assert publisher.published(contract.CountMessage) == [first, second]


async def test_memory_publisher_delivers_to_matching_subscriptions() -> None:
    publisher = MemoryPublisher(site=SITE, gateway_id=GW)
    got: list[tuple[str, bytes]] = []
    publisher.subscribe(contract.cmd_scan_topic(SITE, GW), lambda t, p: got.append((t, p)))
    publisher.subscribe("$share/g/edgecount/v1/+/cmd/#", lambda t, p: got.append((t, p)))
    assert publisher.deliver(contract.cmd_scan_topic(SITE, GW), b"{}") == 2
    assert publisher.deliver(contract.cmd_scan_topic(SITE, "gw-2"), b"{}") == 1
    assert len(got) == 3


def test_settings_validation_and_description(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n", encoding="utf-8")
    settings = MqttSettings(host="broker", port=8883, username="gw", password_file=secret, tls=True)
    assert settings.uses_tls
    assert settings.describe() == "mqtts://gw@broker:8883 (MQTT 5)"
    assert "s3cret" not in repr(settings)
    assert read_password(secret) == "s3cret"
    with pytest.raises(MqttSettingsError, match="cannot read MQTT password file"):
        read_password(tmp_path / "missing")
    with pytest.raises(MqttSettingsError, match="protocol"):
        MqttSettings(protocol="4")  # type: ignore[arg-type]
    with pytest.raises(MqttSettingsError, match="go together"):
        MqttSettings(cert_file=secret)
    client = new_client(
        MqttSettings(protocol="3.1.1"), "id", will=("edgecount/v1/s/status/g", b"x")
    )
    assert client.max_inflight_messages == 22


def test_backoff_grows_with_jitter_caps_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays), "jitter: no two delays alike"
    backoff.reset()
    assert backoff.next_delay() <= 0.5


async def test_memory_publisher_batch_keeps_the_good_messages_and_raises_the_bad_one() -> None:
    publisher = MemoryPublisher(site=SITE, gateway_id=GW)
    batch = [
        (contract.count_topic(SITE, "z", "L1"), draft("L1")),
        (contract.count_topic(SITE, "z", "L9"), draft("L2")),  # the topic says another location
        (contract.count_topic(SITE, "z", "L3"), draft("L3")),
    ]
    with pytest.raises(contract.ContractError, match="location is 'L2'") as raised:
        await publisher.publish_many(batch, retain=True)
    assert "2 of the batch's 3 messages were stored, 1 rejected" in raised.value.__notes__
    sent = publisher.published(contract.CountMessage)
    assert [(m.location, m.seq) for m in sent] == [("L1", 1), ("L3", 2)]
    assert publisher.health().rejected == 1
    whole = await publisher.publish_many(batch[::2], retain=True)
    assert [m.msg_id for m in whole if isinstance(m, contract.CountMessage)] == [
        "gw-1:3",
        "gw-1:4",
    ]
    assert await publisher.publish_many([], retain=True) == []
    publisher.fail_with = OutboxFullError("full")
    with pytest.raises(OutboxFullError):
        await publisher.publish_many(batch, retain=True)
    assert publisher.health().rejected == 4
    assert len(publisher.published(contract.CountMessage)) == 4
