"""MqttPublisher against real Mosquitto brokers, with real paho clients on both ends."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import paho.mqtt.publish as paho_publish
import pytest

from edgecount import contract
from edgecount.mqtt import MqttSettings
from gateway.mqtt_publisher import MqttPublisher
from gateway.outbox import Outbox, OutboxFullError
from tests.conftest import (
    BrokerAddress,
    MosquittoFactory,
    Received,
    RecorderFactory,
    TlsFiles,
    eventually,
    free_port,
)

CHILD = Path(__file__).with_name("child.py")
PROTOCOLS = pytest.mark.parametrize("protocol", ["5", "3.1.1"])


def gateway_id() -> str:
    return f"gw-{uuid.uuid4().hex[:8]}"


def count(site: str, gateway: str, location: str, qty: int = 1) -> contract.CountDraft:
    return contract.count_draft(
        gateway=gateway,
        site=site,
        zone="z",
        location=location,
        scan_id="s1",
        items=[contract.CountItem(sku="80614141123458", qty=qty)],
    )


def settings(address: BrokerAddress, protocol: str = "5", **overrides: Any) -> MqttSettings:
    values: dict[str, Any] = {
        "host": address.host,
        "port": address.port,
        "protocol": protocol,
        "keepalive": 5,
        "connect_timeout": 3.0,
        "reconnect_min_delay": 0.05,
        "reconnect_max_delay": 0.3,
    }
    values.update(overrides)
    return MqttSettings(**values)


@contextlib.asynccontextmanager
async def running(
    state: Path,
    config: MqttSettings,
    site: str,
    gateway: str,
    *,
    max_rows: int = 1000,
) -> AsyncIterator[tuple[MqttPublisher, Outbox]]:
    outbox = Outbox(state / f"{gateway}.sqlite3", gateway_id=gateway, max_rows=max_rows)
    publisher = MqttPublisher(config, outbox, site=site)
    try:
        await publisher.start()
        yield publisher, outbox
    finally:
        await publisher.stop()
        outbox.close()


def state_is(state: str) -> Any:
    return lambda m: m.payload is not None and m.payload.get("state") == state


async def publish(
    publisher: MqttPublisher, site: str, location: str, qty: int = 1
) -> contract.CountMessage:
    topic = contract.count_topic(site, "z", location)
    sent = await publisher.publish(
        topic, count(site, publisher.gateway_id, location, qty), retain=True
    )
    assert isinstance(sent, contract.CountMessage)
    return sent


@PROTOCOLS
async def test_count_is_delivered_retained_with_qos1_and_birth(
    broker: BrokerAddress,
    unique_site: str,
    mqtt_recorder: RecorderFactory,
    tmp_path: Path,
    protocol: str,
) -> None:
    site, gateway = unique_site, gateway_id()
    live = mqtt_recorder(broker, contract.site_filter(site), protocol=protocol)
    async with running(tmp_path, settings(broker, protocol), site, gateway) as (publisher, outbox):
        assert await publisher.wait_connected(5)
        sent = await publish(publisher, site, "A-1", qty=3)
        assert sent.msg_id == f"{gateway}:{outbox.epoch}:1"
        assert await publisher.flush(5)
        assert outbox.depth == 0
        (message,) = await live.await_for(1, contract.count_topic(site, "z", "A-1"))
        assert message.payload == sent.to_payload()
        assert message.qos == 1
        health = publisher.health()
        assert (health.connected, health.published, health.acked, health.replayed) == (
            True,
            1,
            1,
            0,
        )
        assert health.ack_latency_last_s is not None
        late = mqtt_recorder(broker, contract.site_filter(site), protocol=protocol)
        retained = await late.await_for(2)
        by_topic = {m.topic: m for m in retained}
        assert by_topic[contract.count_topic(site, "z", "A-1")].retain
        status = by_topic[contract.status_topic(site, gateway)]
        assert status.retain
        assert status.payload is not None
        assert status.payload["state"] == "online"


async def test_one_gateway_id_at_two_sites_keeps_both_sessions(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    """Gateway ids are unique within a site only: the default client ids must differ."""
    gateway = gateway_id()
    sites = (unique_site, f"{unique_site}b")
    recorders = [mqtt_recorder(broker, contract.status_topic(site, gateway)) for site in sites]
    async with (
        running(tmp_path / "a", settings(broker), sites[0], gateway) as (first, _),
        running(tmp_path / "b", settings(broker), sites[1], gateway) as (second, _),
    ):
        assert first.client_id != second.client_id
        assert await first.wait_connected(5)
        assert await second.wait_connected(5)
        for recorder in recorders:
            await recorder.await_for(1, where=state_is("online"))
        await publish(first, sites[0], "A-1")  # the first session is still the broker's
        await publish(second, sites[1], "A-1")
        assert await first.flush(5)
        assert await second.flush(5)
        assert (first.health().disconnects, second.health().disconnects) == (0, 0)
    for recorder in recorders:
        await recorder.await_for(1, where=state_is("stopped"))
        assert not recorder.matching(where=state_is("offline"))


async def test_clean_stop_says_stopped_and_leaves_no_will(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    site, gateway = unique_site, gateway_id()
    status_topic = contract.status_topic(site, gateway)
    recorder = mqtt_recorder(broker, status_topic)
    async with running(tmp_path, settings(broker), site, gateway) as (publisher, _):
        assert await publisher.wait_connected(5)
        await recorder.await_for(1, where=state_is("online"))
    assert publisher.health().state == "stopped"
    await publisher.stop()  # idempotent
    with pytest.raises(RuntimeError, match="stopped"):
        await publish(publisher, site, "A")
    await recorder.await_for(1, where=state_is("stopped"))
    late = mqtt_recorder(broker, status_topic)
    (retained,) = await late.await_for(1)
    assert retained.payload is not None
    assert retained.payload["state"] == "stopped"
    assert not recorder.matching(where=state_is("offline"))


@PROTOCOLS
async def test_killed_gateway_process_leaves_offline_will(
    broker: BrokerAddress,
    unique_site: str,
    mqtt_recorder: RecorderFactory,
    tmp_path: Path,
    protocol: str,
) -> None:
    site, gateway = unique_site, gateway_id()
    recorder = mqtt_recorder(broker, contract.status_topic(site, gateway))
    args = ["gateway", broker.host, str(broker.port), protocol, site, gateway, str(tmp_path)]
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert (await child.stdout.readline()).strip() == b"up"
        await recorder.await_for(1, where=state_is("online"))
        child.send_signal(signal.SIGKILL)
        (will,) = await recorder.await_for(1, where=state_is("offline"))
        assert will.payload is not None
        assert will.payload["gateway"] == gateway
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()


@PROTOCOLS
async def test_broker_restart_replays_unacked_messages_as_historical(
    mosquitto_factory: MosquittoFactory,
    unique_site: str,
    mqtt_recorder: RecorderFactory,
    tmp_path: Path,
    protocol: str,
) -> None:
    site, gateway = unique_site, gateway_id()
    mosquitto = mosquitto_factory()
    recorder = mqtt_recorder(mosquitto.address, contract.site_filter(site), protocol=protocol)
    commands: list[tuple[str, bytes, int]] = []
    cmd_topic = contract.cmd_scan_topic(site, gateway)
    async with running(tmp_path, settings(mosquitto.address, protocol), site, gateway) as (
        publisher,
        outbox,
    ):
        publisher.subscribe(cmd_topic, lambda t, p: commands.append((t, p, threading.get_ident())))
        assert await publisher.wait_connected(5)
        await publish(publisher, site, "L0")
        assert await publisher.flush(5)

        mosquitto.pause()  # connected, but no PUBACK comes back
        await publish(publisher, site, "L1")
        await publish(publisher, site, "L2")
        await eventually(lambda: publisher.health().inflight == 2, what="2 messages in flight")
        assert not await publisher.flush(0.2)
        assert outbox.depth == 2, "no PUBACK, so the rows stay"

        mosquitto.kill()
        await eventually(lambda: not publisher.health().connected, what="disconnect seen")
        await publish(publisher, site, "L3")  # queued while down, never attempted
        mosquitto.start()

        assert await publisher.flush(10)
        assert outbox.depth == 0
        health = publisher.health()
        assert (health.connects, health.replayed, health.acked) == (2, 2, 4)

        def historical(location: str) -> set[bool]:
            found = recorder.matching(contract.count_topic(site, "z", location))
            return {bool(m.payload and m.payload["historical"]) for m in found}

        for location in ("L1", "L2", "L3"):
            await recorder.await_for(1, contract.count_topic(site, "z", location), timeout=10)
        assert historical("L1") == historical("L2") == {True}
        assert historical("L3") == {False}

        await recorder.await_for(2, contract.status_topic(site, gateway), where=state_is("online"))
        request = contract.scan_request_payload(zone="z", reason="recount", requested_by="test")
        await asyncio.to_thread(
            paho_publish.single,
            cmd_topic,
            contract.encode(request),
            qos=1,
            hostname=mosquitto.host,
            port=mosquitto.port,
        )
        await eventually(lambda: len(commands) == 1, what="command delivered after reconnect")
        topic, raw, thread = commands[0]
        assert (topic, contract.decode(raw)) == (cmd_topic, request)
        assert thread == threading.get_ident(), "callbacks run on the event loop's thread"


async def test_messages_from_before_a_restart_are_sent_historical(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    site, gateway = unique_site, gateway_id()
    with Outbox(tmp_path / f"{gateway}.sqlite3", gateway_id=gateway) as previous_process:
        for location in ("A", "B"):
            previous_process.put(
                contract.count_topic(site, "z", location), count(site, gateway, location), True
            )
    recorder = mqtt_recorder(broker, contract.site_filter(site))
    async with running(tmp_path, settings(broker), site, gateway) as (publisher, outbox):
        fresh = await publish(publisher, site, "C")
        assert fresh.seq == 3
        assert await publisher.flush(5)
        assert outbox.depth == 0
    found = await recorder.await_for(3, f"{contract.site_root(site)}count/#")
    assert [(m.payload or {}).get("historical") for m in found] == [True, True, False]
    assert [(m.payload or {}).get("seq") for m in found] == [1, 2, 3]


async def test_many_messages_arrive_in_order(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    site, gateway = unique_site, gateway_id()
    topic = contract.count_topic(site, "z", "A")
    recorder = mqtt_recorder(broker, topic)
    async with running(tmp_path, settings(broker, max_inflight=8), site, gateway) as (publisher, _):
        for qty in range(200):
            await publish(publisher, site, "A", qty)
        assert await publisher.flush(10)
    found: list[Received] = await recorder.await_for(200, topic, timeout=10)
    assert [(m.payload or {}).get("seq") for m in found] == list(range(1, 201))


async def test_a_batch_goes_out_in_order_without_its_rejected_message(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    site, gateway = unique_site, gateway_id()
    recorder = mqtt_recorder(broker, contract.site_filter(site))
    batch: list[tuple[str, contract.CountDraft]] = [
        (contract.count_topic(site, "z", f"L{n}"), count(site, gateway, f"L{n}", n))
        for n in range(30)
    ]
    batch[7] = (contract.count_topic(site, "z", "L7"), count(site, gateway, "elsewhere"))
    async with running(tmp_path, settings(broker), site, gateway) as (publisher, outbox):
        with pytest.raises(contract.ContractError, match="location is 'elsewhere'") as raised:
            await publisher.publish_many(batch, retain=True)
        assert "29 of the batch's 30 messages were stored, 1 rejected" in raised.value.__notes__
        assert publisher.health().rejected == 1
        assert outbox.last_seq == 29
        assert await publisher.flush(5)
    found = await recorder.await_for(29, f"{contract.site_root(site)}count/#")
    payloads = [m.payload or {} for m in found]
    assert [p["seq"] for p in payloads] == list(range(1, 30))
    assert [p["location"] for p in payloads] == [f"L{n}" for n in range(30) if n != 7]
    late = mqtt_recorder(broker, f"{contract.site_root(site)}count/#")
    assert all(m.retain for m in await late.await_for(29)), "published retained"


async def test_refused_connection_is_never_marked_connected(
    mosquitto_factory: MosquittoFactory, unique_site: str, tmp_path: Path
) -> None:
    passwords = tmp_path / "passwd"
    make = await asyncio.create_subprocess_exec(
        "mosquitto_passwd", "-c", "-b", str(passwords), "gw", "right"
    )
    assert await make.wait() == 0
    mosquitto = mosquitto_factory(f"allow_anonymous false\npassword_file {passwords}")
    secret = tmp_path / "secret"
    secret.write_text("wrong\n", encoding="utf-8")
    config = settings(mosquitto.address, username="gw", password_file=secret)
    async with running(tmp_path, config, unique_site, gateway_id()) as (publisher, _):
        await eventually(lambda: publisher.health().connect_failures >= 2, what="retries")
        health = publisher.health()
        assert not health.connected
        assert health.connects == 0
        assert "refused the connection" in (health.last_error or "")
        assert not await publisher.wait_connected(0.1)
        secret.write_text("right\n", encoding="utf-8")  # rotated: read on the next attempt
        assert await publisher.wait_connected(5)


async def test_outbox_bound_while_the_broker_is_unreachable(
    unique_site: str, tmp_path: Path
) -> None:
    nowhere = BrokerAddress("127.0.0.1", free_port())
    site, gateway = unique_site, gateway_id()
    async with running(tmp_path, settings(nowhere), site, gateway, max_rows=2) as (publisher, _):
        await publish(publisher, site, "A")
        await publish(publisher, site, "B")
        with pytest.raises(OutboxFullError):
            await publish(publisher, site, "C")
        health = publisher.health()
        assert (health.connected, health.outbox_depth, health.outbox_full) == (False, 2, True)
        assert health.rejected == 1
        assert health.connect_failures >= 1
        assert "cannot connect" in (health.last_error or "")
        assert not await publisher.flush(0.1)


async def test_mqtt5_refused_publish_stays_in_the_outbox(
    mosquitto_factory: MosquittoFactory, unique_site: str, tmp_path: Path
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite edgecount/v1/+/status/#\n", encoding="utf-8")
    mosquitto = mosquitto_factory(f"acl_file {acl}")
    site, gateway = unique_site, gateway_id()
    async with running(tmp_path, settings(mosquitto.address), site, gateway) as (publisher, outbox):
        assert await publisher.wait_connected(5)
        await publish(publisher, site, "A")
        await eventually(lambda: publisher.health().refused == 1, what="PUBACK with a failure")
        assert outbox.depth == 1
        assert "Not authorized" in (publisher.health().last_error or "")
        assert not await publisher.flush(0.1)


async def test_broker_that_never_answers_connect_is_retried(
    mosquitto_factory: MosquittoFactory, unique_site: str, tmp_path: Path
) -> None:
    mosquitto = mosquitto_factory()
    mosquitto.pause()  # the kernel still accepts TCP; CONNACK never comes
    config = settings(mosquitto.address, connect_timeout=0.3)
    async with running(tmp_path, config, unique_site, gateway_id()) as (publisher, _):
        await eventually(lambda: publisher.health().connect_failures >= 1, what="no CONNACK")
        assert "no CONNACK" in (publisher.health().last_error or "")
        assert not publisher.health().connected
        mosquitto.resume()
        assert await publisher.wait_connected(5)


async def test_mutual_tls(
    mosquitto_factory: MosquittoFactory, tls_certs: TlsFiles, unique_site: str, tmp_path: Path
) -> None:
    config_lines = tls_certs.broker_config(require_certificate=True)
    mosquitto = mosquitto_factory(config_lines, ping_tls=tls_certs.client_context())
    site, gateway = unique_site, gateway_id()
    untrusted = settings(mosquitto.address, tls=True)  # system CAs do not know the test CA
    async with running(tmp_path, untrusted, site, f"{gateway}-x") as (publisher, _):
        await eventually(lambda: publisher.health().connect_failures >= 1, what="TLS failure")
        assert "CERTIFICATE_VERIFY_FAILED" in (publisher.health().last_error or "")
    config = settings(
        mosquitto.address,
        ca_file=tls_certs.ca,
        cert_file=tls_certs.client_cert,
        key_file=tls_certs.client_key,
    )
    assert config.describe().startswith("mqtts://")
    async with running(tmp_path, config, site, gateway) as (publisher, outbox):
        assert await publisher.wait_connected(5)
        await publish(publisher, site, "A")
        assert await publisher.flush(5)
        assert outbox.depth == 0


def frame(site: str, gateway: str, location: str) -> contract.FrameMessage:
    return contract.frame_message(
        gateway=gateway, site=site, zone="z", location=location, scan_id="s1",
        jpeg=b"\xff\xd8\xff\xe0frame", width=4, height=3,
    )  # fmt: skip


async def test_a_transient_message_goes_out_at_once_or_is_dropped(
    broker: BrokerAddress, unique_site: str, tmp_path: Path, mqtt_recorder: RecorderFactory
) -> None:
    site, gateway = unique_site, gateway_id()
    topic = contract.frame_topic(site, "z", "A")
    nowhere = BrokerAddress("127.0.0.1", free_port())
    async with running(tmp_path, settings(nowhere), site, gateway) as (publisher, outbox):
        assert not publisher.publish_transient(topic, frame(site, gateway, "A"), retain=True)
        assert outbox.depth == 0  # never queued
        assert (publisher.health().transient_dropped, publisher.health().transient_sent) == (1, 0)
    recorder = mqtt_recorder(broker, f"edgecount/v1/{site}/frame/#")
    async with running(tmp_path, settings(broker), site, gateway) as (publisher, outbox):
        assert await publisher.wait_connected(5.0)
        assert publisher.publish_transient(topic, frame(site, gateway, "A"), retain=True)
        assert outbox.depth == 0
        assert publisher.health().transient_sent == 1
        (received,) = await recorder.await_for(1, topic)
        assert received.payload is not None
        assert received.payload["location"] == "A"
        assert received.qos == 0
