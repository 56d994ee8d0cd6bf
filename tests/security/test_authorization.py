"""Defence in depth: the reconciler's own check behind the ACL, and secrets kept out of logs."""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa

from edgecount import contract
from gateway.mqtt_publisher import MqttPublisher
from gateway.outbox import Outbox
from reconciler import schema as t
from reconciler.engine import Engine
from reconciler.rules import TolerancePolicy
from reconciler.service import ReconcileService
from reconciler.store import open_store
from tests.conftest import eventually
from tests.security.conftest import AUTHORIZED, SITE, Connect, SecureBroker
from tests.security.test_broker_security import count_body


def test_engine_names_gateway_and_zone_of_an_unauthorized_count(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'e.sqlite3'}")
    try:
        engine = Engine(store, SITE, TolerancePolicy(), authorized=AUTHORIZED)
        assert engine.unauthorized("gw-a", "A") is None
        assert engine.unauthorized("gw-a", "B") == (
            "unauthorized: gateway 'gw-a' may not report zone 'B'"
        )
        assert "not in authorized_gateways" in (engine.unauthorized("gw-x", "A") or "")
        assert engine.unauthorized_total == 2
        open_engine = Engine(store, SITE, TolerancePolicy())  # no key: every gateway
        assert open_engine.unauthorized("gw-x", "A") is None
    finally:
        store.close()


async def test_reconciler_dead_letters_what_the_acl_lets_through(
    secure_broker: SecureBroker,
    connect: Connect,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
    engine = Engine(store, SITE, TolerancePolicy(), authorized=AUTHORIZED)
    settings = secure_broker.settings("reconciler")
    service = ReconcileService(engine, settings, client_id=settings.client_id)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        wms = await asyncio.to_thread(connect, "wms", subscribe=contract.deadletter_topic(SITE))
        gw_old = await asyncio.to_thread(connect, "gw-old")  # in the ACL, not authorised
        gw_a = await asyncio.to_thread(connect, "gw-a")
        gw_b = await asyncio.to_thread(connect, "gw-b")
        stale = await asyncio.to_thread(
            gw_old.publish,
            contract.count_topic(SITE, "B", "B-01"),
            count_body("gw-old", "B", "B-01"),
        )
        assert not stale.is_failure  # the broker let it through: only the reconciler stops it
        # Its own zone, but another gateway's id in the payload: gw-b may not report zone A.
        forged = await asyncio.to_thread(
            gw_a.publish, contract.count_topic(SITE, "A", "A-01"), count_body("gw-b", "A", "A-01")
        )
        assert not forged.is_failure
        good = await asyncio.to_thread(
            gw_b.publish, contract.count_topic(SITE, "B", "B-02"), count_body("gw-b", "B", "B-02")
        )
        assert not good.is_failure
        letters = await asyncio.to_thread(wms.wait_messages, 2)
        reasons = sorted(
            contract.decode(bytes(m.payload), topic=m.topic)["reason"] for m in letters
        )
        assert reasons == [
            "unauthorized: gateway 'gw-b' may not report zone 'A'",
            "unauthorized: gateway 'gw-old' is not in authorized_gateways",
        ]
        await asyncio.wait_for(service.wait_until(lambda stats: stats.applied >= 1), 10)
        assert (service.stats.rejected, engine.unauthorized_total) == (2, 2)
        with store.engine.connect() as conn:
            stored = conn.execute(sa.select(t.counts.c.location)).scalars().all()
        assert stored == ["B-02"]
    finally:
        service.stopping.set()
        await asyncio.wait_for(task, 10)
        store.close()
    assert "unauthorized: gateway 'gw-old'" in caplog.text  # logged, with the reason
    assert secure_broker.password("reconciler") not in caplog.text


async def run_gateway(
    secure: SecureBroker, state: Path, password_file: Path, *, refused: bool = False
) -> None:
    """Start gw-a's publisher with ``password_file``; wait for the refusal or publish a count."""
    outbox = Outbox(state / f"{password_file.stem}.sqlite3", gateway_id="gw-a")
    settings = secure.settings("gw-a", password_file=password_file)
    publisher = MqttPublisher(settings, outbox, site=SITE)
    try:
        await publisher.start()
        if refused:
            await eventually(lambda: publisher.health().connect_failures >= 1, what="refusal")
            return
        assert await publisher.wait_connected(5)
        draft = contract.count_draft(
            gateway="gw-a", site=SITE, zone="A", location="A-03", scan_id="s1",
            items=[contract.CountItem(sku="80614141123458", qty=2)],
        )  # fmt: skip
        await publisher.publish(contract.count_topic(SITE, "A", "A-03"), draft, retain=True)
        assert await publisher.flush(5)
    finally:
        await publisher.stop()
        outbox.close()


async def test_gateway_never_logs_its_password(
    secure_broker: SecureBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = tmp_path / "wrong.password"
    guess = secrets.token_urlsafe(12)
    wrong.write_text(guess + "\n", encoding="utf-8")
    await run_gateway(secure_broker, tmp_path, wrong, refused=True)
    await run_gateway(secure_broker, tmp_path, secure_broker.password_files["gw-a"])
    assert "refused the connection" in caplog.text
    assert "gw-a" in caplog.text  # the user name may be logged ...
    assert guess not in caplog.text  # ... a password never, right or wrong
    assert secure_broker.password("gw-a") not in caplog.text
