"""Many sites into one reconciliation, with real processes, while a WAN link and a reconciler fail.

Three sites, each with its own Mosquitto bridged (``edgecount site bridge``, TLS with the
site's certificate, through a WAN link the test can cut) to one central Mosquitto; at each
site a gateway process (``edgecount gateway run``) reading an LLRP simulator; at the centre two
``edgecount reconcile serve`` processes sharing the three sites (``$share``) on one PostgreSQL
database, a schema per site. During the night:

* site 1's WAN link is cut for two minutes while its scan runs, and the site scans again
  meanwhile (its own scheduler, on the site broker): every count of the site arrives at the
  centre when the link returns;
* one reconciler is SIGKILLed while sites 2 and 3 scan: the other carries on storing its
  share; the killed one is started again (as systemd would) and stores what waited for it.

Afterwards every count each site's broker saw is stored once in that site's schema, every scan
that ended is stored, and nothing was flagged: the book equals the shelves, so a lost or a
doubled count would show as a discrepancy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.publish as mqtt_publish
import pytest
import sqlalchemy as sa
import yaml

from edgecount import contract
from edgecount.cli import main
from edgecount.security import AclSpec, acl_text
from reconciler import schema as t
from reconciler.store import Store, open_store
from simulators.llrp.server import LLRPSimulator
from simulators.shelf import shelf_scene
from tests.conftest import (
    MosquittoBroker,
    MosquittoFactory,
    MqttRecorder,
    Received,
    RecorderFactory,
    TlsFiles,
    eventually,
    free_port,
)
from tests.faults.fault_harness import (
    LOCATIONS,
    ZONE,
    book_of,
    gateway_dict,
    gateway_process,
    new_gateway_id,
    write_config,
)
from tests.faults.reconciler_process import ServeProcess
from tests.faults.wan import WanLink
from tests.pgdb import fresh_database

METRICS_AT = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
SITES = 3
ENDED = {contract.ScanState.COMPLETED.value, contract.ScanState.INCOMPLETE.value}
CUT_SECONDS = 120.0
"""How long site 1's WAN link is down (the issue's two minutes)."""


@dataclass
class Site:
    """One site: its broker, WAN link, gateway, store, and what its broker saw."""

    name: str
    number: int
    broker: MosquittoBroker
    wan: WanLink
    gateway_id: str
    store: Store
    seen: MqttRecorder  # counts and scans as the gateway published them on the site broker

    @property
    def root(self) -> str:
        return contract.site_root(self.name)

    def published_counts(self) -> set[str]:
        """msg_ids of every count published on the site broker."""
        return {m.payload["msg_id"] for m in self.seen.matching(f"{self.root}count/#") if m.payload}

    def ended_scans(self) -> set[str]:
        """scan_ids of every scan that ended at the site."""
        return {
            m.payload["scan_id"]
            for m in self.seen.matching(f"{self.root}scan/#")
            if m.payload and m.payload["state"] in ENDED
        }

    def all_stored(self) -> bool:
        """Every count and every ended scan the site's broker saw is in the site's schema."""
        counts = set(self.stored_counts()) >= self.published_counts()
        return counts and self.stored_scans() >= self.ended_scans()

    def stored_counts(self) -> list[str]:
        with self.store.engine.connect() as conn:
            return list(conn.execute(sa.select(t.counts.c.msg_id)).scalars())

    def stored_scans(self) -> set[str]:
        with self.store.engine.connect() as conn:
            return set(conn.execute(sa.select(t.scans.c.scan_id)).scalars())

    def discrepancies(self) -> int:
        with self.store.engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(t.discrepancies)
            return int(conn.execute(query).scalar_one())


class CentreProcess(ServeProcess):
    """``edgecount reconcile serve -c centre.yaml`` in a child process."""

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        # port 0: a port picked in advance could be taken meanwhile; the log says the bound one
        config_path = write_config(
            directory / f"{config['instance_id']}.yaml",
            config | {"metrics": {"host": "127.0.0.1", "port": 0}},
        )
        super().__init__(config_path, directory / f"{config['instance_id']}.log")

    def start(self, timeout: float = 60.0) -> None:
        """Start; return once subscribed (``edgecount_reconciler_subscribed 1``)."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.metrics_port = None
        self._spawn("-v")  # -v: it logs the port it bound
        deadline = time.monotonic() + timeout
        while self.metrics_port is None or "reconciler_subscribed 1" not in self.metrics():
            assert not self._exited(), f"reconciler exited:\n{self.log_text()}"
            assert time.monotonic() < deadline, f"not subscribed in {timeout} s:\n{self.log_text()}"
            if self.metrics_port is None:
                found = METRICS_AT.search(self.log_text()[offset:])
                self.metrics_port = None if found is None else int(found[1])
            time.sleep(0.05)

    def applied(self) -> float:
        """Counts and scans this process stored since it started (each once)."""
        return self.metric("messages_applied_total")


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database("multisite") as url:
        yield url


def central_broker(
    factory: MosquittoFactory, tls: TlsFiles, tmp_path: Path, sites: list[str]
) -> tuple[MosquittoBroker, int]:
    """The central Mosquitto: a plain listener for the centre's own clients (anonymous, all
    topics) and a TLS listener for the bridges (certificate CN = user, the generated ACL)."""
    acl = tmp_path / "central.acl"
    bridges = [
        acl_text(AclSpec.model_validate({"site": s, "bridges": [f"bridge-{s}"], "reconciler": []}))
        for s in sites
    ]
    acl.write_text("topic readwrite #\n\n" + "\n".join(bridges), encoding="utf-8")
    tls_port = free_port()
    extra = "\n".join(
        [
            "max_queued_messages 1000000",
            f"acl_file {acl}",
            f"listener {tls_port} 127.0.0.1",
            tls.broker_config(require_certificate=True),
            "use_identity_as_username true",
        ]
    )
    return factory(extra), tls_port


def site_broker(
    factory: MosquittoFactory, tls: TlsFiles, tmp_path: Path, name: str, wan: WanLink
) -> MosquittoBroker:
    """A site's Mosquitto running its generated bridge to the centre, through ``wan``."""
    cert, key = tls.issue(f"bridge-{name}")
    spec = tmp_path / f"{name}-site.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "site": name,
                "central": {
                    "host": "127.0.0.1",
                    "port": wan.port,
                    "user": f"bridge-{name}",
                    "tls": {"ca_file": str(tls.ca), "cert_file": str(cert), "key_file": str(key)},
                },
                "bridge": {
                    "keepalive_seconds": 5,
                    "restart_min_seconds": 1,
                    "restart_max_seconds": 2,
                },
            }
        ),
        encoding="utf-8",
    )
    generated = tmp_path / f"{name}-bridge.conf"
    assert main(["site", "bridge", "-c", str(spec), "-o", str(generated)]) == 0
    persistence = tmp_path / f"{name}-db"
    persistence.mkdir()
    return factory(f"persistence_location {persistence}/\n" + generated.read_text("utf-8"))


async def request_scan(broker: MosquittoBroker, site: Site) -> None:
    """Ask a site's gateway for a scan of the zone, on ``broker`` (central or the site's)."""
    request = contract.scan_request_payload(reason="cycle", requested_by="test", zone=ZONE)
    await asyncio.to_thread(
        mqtt_publish.single,
        contract.cmd_scan_topic(site.name, site.gateway_id),
        json.dumps(request),
        qos=1,
        hostname=broker.host,
        port=broker.port,
    )


def scans(recorder: MqttRecorder, site: Site, state: str) -> int:
    """Scan messages of ``site`` in ``state`` ("ended": completed or incomplete) seen."""

    states = ENDED if state == "ended" else {state}

    def in_state(m: Received) -> bool:
        return m.payload is not None and m.payload["state"] in states

    return len(recorder.matching(f"{site.root}scan/#", in_state))


def scans_reached(recorder: MqttRecorder, site: Site, state: str, number: int) -> bool:
    """Whether ``number`` scan messages of ``site`` in ``state`` came (more: a test error)."""
    seen = scans(recorder, site, state)
    assert seen <= number, f"{site.name}: {seen} scans {state}, expected {number}"
    return seen == number


def online(recorder: MqttRecorder, site: Site) -> bool:
    """Whether the site's gateway said ``online`` (its status crossed the bridge)."""

    def is_online(m: Received) -> bool:
        return m.payload is not None and m.payload["state"] == "online"

    return bool(recorder.matching(contract.status_topic(site.name, site.gateway_id), is_online))


@pytest.mark.slow
@pytest.mark.async_timeout(CUT_SECONDS + 180)
async def test_a_cut_site_and_a_killed_reconciler_lose_nothing_and_apply_nothing_twice(
    mosquitto_factory: MosquittoFactory,
    mqtt_recorder: RecorderFactory,
    tls_certs: TlsFiles,
    database: str,
    unique_site: str,
    tmp_path: Path,
) -> None:
    names = [f"{unique_site}-{n}" for n in range(1, SITES + 1)]
    central, tls_port = central_broker(mosquitto_factory, tls_certs, tmp_path, names)
    roots = [contract.site_root(name) for name in names]
    at_centre = mqtt_recorder(
        central.address, [f"{root}{what}" for root in roots for what in ("scan/#", "status/+")]
    )
    scene = shelf_scene(len(LOCATIONS), 12)
    sites: list[Site] = []
    site_files = []
    for number, name in enumerate(names, start=1):
        wan = WanLink(central.host, tls_port)
        broker = site_broker(mosquitto_factory, tls_certs, tmp_path, name, wan)
        store = open_store(database, schema=f"site_{number}")
        store.replace_book(book_of(scene), source="test", at=contract.parse_iso(contract.now_iso()))
        seen = mqtt_recorder(
            broker.address, [f"{roots[number - 1]}{w}" for w in ("count/#", "scan/#")]
        )
        sites.append(Site(name, number, broker, wan, new_gateway_id(), store, seen))
        site_file = {"site": name, "database": database, "database_schema": f"site_{number}"}
        site_files.append(str(write_config(tmp_path / f"{name}.yaml", site_file)))
    centre: dict[str, Any] = {
        "shared_group": f"g-{unique_site}",
        "mqtt": {"host": central.host, "port": central.port},
        "sites": site_files,
    }
    reconcilers = [
        CentreProcess(tmp_path, centre | {"instance_id": f"centre-{unique_site}-{n}"})
        for n in (1, 2)
    ]
    first, others = sites[0], sites[1:]
    try:
        for rec in reconcilers:
            await asyncio.to_thread(rec.start)
        async with contextlib.AsyncExitStack() as stack:
            for site in sites:
                sim = await stack.enter_async_context(LLRPSimulator(scene))
                config = gateway_dict(
                    site=site.name,
                    gateway_id=site.gateway_id,
                    state_dir=tmp_path / f"{site.name}-gw",
                    broker=site.broker.address,
                    reader_port=sim.port,
                    scan_seconds=4.0 if site is first else 1.0,  # site 1's scan outlasts the cut
                )
                path = write_config(tmp_path / f"{site.name}-gateway.yaml", config)
                log = tmp_path / f"{site.name}-gateway.log"
                await stack.enter_async_context(gateway_process(path, log))
            # a first scan everywhere, asked for at the centre, through the bridges
            for site in sites:
                await eventually(functools.partial(online, at_centre, site), 30, "gateway online")
                await request_scan(central, site)
            await eventually(
                lambda: all(scans(at_centre, s, "ended") == 1 for s in sites), 30, "first scans"
            )

            # site 1: its WAN link is cut while its second scan runs; it scans twice more
            await request_scan(central, first)
            await eventually(lambda: scans(at_centre, first, "started") == 2, 20, "scan started")
            first.wan.cut()
            cut_at = time.monotonic()
            for ended in (2, 3):
                done = functools.partial(scans_reached, first.seen, first, "ended", ended)
                await eventually(done, 30, f"scan {ended} at site 1")
                await request_scan(first.broker, first)  # the site's own scheduler
            await eventually(lambda: scans(first.seen, first, "ended") == 4, 30, "fourth scan")

            # sites 2 and 3 scan; one reconciler is killed in the middle of it
            killed, survivor = reconcilers
            for site in others:
                await request_scan(central, site)
            await eventually(
                lambda: all(scans(at_centre, s, "started") == 2 for s in others), 20, "started"
            )
            await asyncio.to_thread(killed.kill)
            at_kill = survivor.applied()
            for site in others:  # the night goes on while it is down
                done = functools.partial(scans_reached, at_centre, site, "ended", 2)
                await eventually(done, 30, f"second scan of {site.name}")
                await request_scan(central, site)
            await eventually(
                lambda: all(scans(at_centre, s, "ended") == 3 for s in others), 30, "third scans"
            )
            # the other carries on: it stores its share of what came after the kill
            await eventually(lambda: survivor.applied() > at_kill, 30, "the survivor storing")
            await asyncio.to_thread(killed.start)  # systemd restarts it; its share waited for it

            remaining = CUT_SECONDS - (time.monotonic() - cut_at)
            assert remaining > 0, "the night took longer than the cut: lengthen CUT_SECONDS"
            assert scans(at_centre, first, "ended") == 1  # nothing came through the cut link
            await asyncio.sleep(remaining)  # the outage itself (not a synchronisation)
            first.wan.restore()
            for site in sites:
                await eventually(site.all_stored, 60, f"everything of {site.name} stored")
    finally:
        for rec in reconcilers:
            rec.stop()
        for site in sites:
            site.wan.close()

    for site in sites:
        stored = site.stored_counts()
        published = site.published_counts()
        assert len(stored) == len(set(stored)), f"{site.name}: a count stored twice"
        assert set(stored) == published, f"{site.name}: lost {sorted(published - set(stored))}"
        assert len(published) == len(LOCATIONS) * len(site.ended_scans())
        assert site.discrepancies() == 0, f"{site.name}: a count lost or applied twice flagged"
        site.store.close()
    assert len(first.ended_scans()) == 4  # one before the cut, three during it
    assert all(len(s.ended_scans()) == 3 for s in others)
    assert first.wan.connections >= 2  # the bridge connected again after the cut
    logs = "".join(rec.log_text() for rec in reconcilers)
    assert "Traceback" not in logs
