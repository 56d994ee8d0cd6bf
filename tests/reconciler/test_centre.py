"""A centre: several reconciler instances serving many sites on one PostgreSQL database.

Real Mosquitto (shared subscriptions), a fresh PostgreSQL database holding one schema per
site, two services in this process with their own connection pools, as two hosts would.
"""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.publish as mqtt_publish
import psycopg
import pytest
import sqlalchemy as sa

from edgecount import contract
from edgecount.mqtt import MqttSettings
from edgecount.yamlcfg import ConfigError
from reconciler import ingest
from reconciler import schema as t
from reconciler.centre import load_centre_config
from reconciler.engine import Engine
from reconciler.ingest import BatchAttempt, handle_sites
from reconciler.model import AbcClass, BookLine
from reconciler.rules import TolerancePolicy
from reconciler.service import ReconcileService
from reconciler.store import EnginePool, Store, open_store
from tests.conftest import BrokerAddress, RecorderFactory, eventually
from tests.pgdb import fresh_database

SKU = "80614141123458"
SNAPSHOT = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
LOCATIONS = [f"L-{i:02d}" for i in range(24)]


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database("centre") as url:
        yield url


def count_body(site: str, location: str, qty: int, *, scan: str, seq: int) -> bytes:
    draft = contract.count_payload(
        gateway="gw-1",
        site=site,
        zone="A",
        location=location,
        scan_id=scan,
        items=[{"sku": SKU, "qty": qty}],
        complete=True,
        observed_at=SNAPSHOT + timedelta(hours=4),
    )
    return contract.encode(contract.with_sequence(draft, seq))


def publish_all(broker: BrokerAddress, messages: list[tuple[str, bytes]]) -> None:
    mqtt_publish.multiple(
        [{"topic": topic, "payload": body, "qos": 1} for topic, body in messages],
        hostname=broker.host,
        port=broker.port,
    )


def site_store(url: str, site_index: int, pool: EnginePool | None = None) -> Store:
    return open_store(url, schema=f"site_{site_index}", pool=pool)


def stored_counts(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.counts)).scalar_one())


def discrepancies(store: Store) -> list[tuple[str, str, int]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.discrepancies).order_by(t.discrepancies.c.id))
        return [(r.location, r.state, r.recounts) for r in rows]


@asynccontextmanager
async def instances(
    broker: BrokerAddress, url: str, sites: list[str], group: str, *, max_recounts: int = 2
) -> AsyncIterator[list[ReconcileService]]:
    """Two services sharing ``sites`` (each with its own pool, as on two hosts)."""
    pools = [EnginePool(), EnginePool()]
    services = [
        ReconcileService(
            [
                Engine(site_store(url, i, pool), site, TolerancePolicy(), max_recounts)
                for i, site in enumerate(sites)
            ],
            MqttSettings(host=broker.host, port=broker.port, client_id=f"{group}-{n}"),
            client_id=f"{group}-{n}",
            shared_group=group,
            metrics=("127.0.0.1", 0),
        )
        for n, pool in enumerate(pools)
    ]
    tasks = [asyncio.create_task(s.run()) for s in services]
    try:
        for service in services:
            await asyncio.wait_for(service.ready.wait(), 10)
        yield services
    finally:
        for service in services:
            service.stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)
        for pool in pools:
            pool.close()


def with_book(url: str, sites: list[str]) -> list[Store]:
    stores = [site_store(url, i) for i in range(len(sites))]
    for store in stores:
        book = [BookLine(loc, SKU, 10, 2.0, AbcClass.A) for loc in LOCATIONS]
        store.replace_book(book, source="test", at=SNAPSHOT)
    return stores


def test_each_site_keeps_its_tables_in_its_own_schema(database: str) -> None:
    pool = EnginePool()
    try:
        north, south = site_store(database, 0, pool), site_store(database, 1, pool)
        assert north.engine.pool is south.engine.pool  # one pool for both sites
        north.replace_book([BookLine("N-1", SKU, 3, 1.0, AbcClass.B)], source="t", at=SNAPSHOT)
        assert [line.location for line in north.book_lines()] == ["N-1"]
        assert south.book_lines() == []
        again = site_store(database, 0, pool)  # opening again migrates nothing, loses nothing
        assert [line.location for line in again.book_lines()] == ["N-1"]
    finally:
        pool.close()
    with psycopg.connect(database.replace("postgresql+psycopg", "postgresql")) as conn:
        tables = conn.execute(
            "SELECT table_schema, count(*) FROM information_schema.tables"
            " WHERE table_name IN ('counts', 'alembic_version') GROUP BY table_schema"
            " ORDER BY table_schema"
        ).fetchall()
        # nothing in public: the migrations ran inside each site's schema only
        assert tables == [("site_0", 2), ("site_1", 2)]
        assert conn.execute("SHOW search_path").fetchone() == ('"$user", public',)


def test_a_schema_on_sqlite_is_refused_with_a_reason(tmp_path: Path) -> None:
    from reconciler.store import DatabaseUnavailableError

    with pytest.raises(DatabaseUnavailableError, match="needs PostgreSQL"):
        open_store(f"sqlite:///{tmp_path / 'x.sqlite3'}", schema="site_0")


async def test_two_instances_share_the_sites_and_make_each_discrepancy_once(
    broker: BrokerAddress, database: str, unique_site: str
) -> None:
    sites = [f"{unique_site}-{i}" for i in range(3)]
    stores = with_book(database, sites)
    async with instances(broker, database, sites, f"g-{unique_site}") as services:
        # every location of every site counted twice (two scans, the same shortfall); the
        # two counts of a location follow each other, so the broker deals them to
        # different instances, which react at the same moment
        messages = [
            (f"edgecount/v1/{site}/count/A/{loc}", count_body(site, loc, 6, scan=scan, seq=seq))
            for site in sites
            for n, loc in enumerate(LOCATIONS)
            for seq, scan in ((2 * n + 1, "s1"), (2 * n + 2, "s2"))
        ]
        await asyncio.to_thread(publish_all, broker, messages)
        total = len(messages)
        await eventually(
            lambda: sum(s.stats.applied for s in services) >= total, 30, "all counts applied"
        )
        assert [s.stats.applied > 0 for s in services] == [True, True]  # the load was shared
        assert sum(s.stats.duplicates for s in services) == 0
        leases = 0
        async with httpx.AsyncClient() as http:
            for service in services:
                base = f"http://127.0.0.1:{service.metrics_port}"
                assert (await http.get(f"{base}/healthz")).status_code == 200
                figures = (await http.get(f"{base}/metrics")).text
                assert "edgecount_reconciler_sites 3.0" in figures
                applied = f"edgecount_reconciler_messages_applied_total {service.stats.applied}"
                assert applied in figures
                leases += int(_sample(figures, "edgecount_reconciler_publisher_leases"))
        assert leases == 3  # each site's outboxes have one publisher
        for store in stores:
            assert stored_counts(store) == 2 * len(LOCATIONS)
            # one discrepancy per location, which saw both counts (a recount), never two
            assert sorted(discrepancies(store)) == [
                (loc, "recount_requested", 1) for loc in LOCATIONS
            ]


async def test_each_sites_adjustments_go_out_once_and_another_instance_takes_over(
    broker: BrokerAddress, database: str, unique_site: str, mqtt_recorder: RecorderFactory
) -> None:
    sites = [f"{unique_site}-{i}" for i in range(2)]
    stores = with_book(database, sites)
    recorder = mqtt_recorder(broker, [f"edgecount/v1/{site}/adjustment" for site in sites])
    deciders = [
        Engine(store, site, TolerancePolicy(), 0) for store, site in zip(stores, sites, strict=True)
    ]

    async def shortfall_approved(location: str, seq: int) -> None:
        """A count short of the book at ``location`` of each site, approved by a person."""
        messages = [
            (
                f"edgecount/v1/{site}/count/A/{location}",
                count_body(site, location, 7, scan=f"s{seq}", seq=seq),
            )
            for site in sites
        ]
        await asyncio.to_thread(publish_all, broker, messages)
        for decider in deciders:
            opened = functools.partial(has_discrepancy_at, decider, location)
            await eventually(opened, 15, f"the discrepancy at {location} of {decider.site}")
            (view,) = [v for v in decider.list_discrepancies() if v["location"] == location]
            decider.decide(view["id"], approve=True, reason_code="MISCOUNT", approver="kim")

    async with instances(broker, database, sites, f"g-{unique_site}", max_recounts=0) as (a, b):
        await eventually(lambda: len(a.leases.held | b.leases.held) == 2, 10, "leases taken")
        assert not a.leases.held & b.leases.held  # each site's outboxes have one publisher
        await shortfall_approved("L-00", 1)
        await recorder.await_for(2, timeout=15)
        await eventually(lambda: all(_all_published(s) for s in stores), 15, "acks recorded")

        # the instance publishing the first site stops; the other takes its lease over
        holder, other = (a, b) if sites[0] in a.leases.held else (b, a)
        holder.stopping.set()
        await eventually(lambda: set(sites) <= other.leases.held, 15, "the lease taken over")
        await shortfall_approved("L-01", 2)
        await recorder.await_for(4, timeout=15)
        await eventually(lambda: all(_all_published(s) for s in stores), 15, "acks recorded")

    # an adjustment_id is unique within its site
    ids = [(m.topic, json.loads(m.raw)["adjustment_id"]) for m in recorder.matching()]
    assert len(ids) == 4
    assert len(set(ids)) == 4, f"an adjustment went out twice: {sorted(ids)}"


def _sample(figures: str, name: str) -> float:
    (line,) = [line for line in figures.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def has_discrepancy_at(engine: Engine, location: str) -> bool:
    return any(v["location"] == location for v in engine.list_discrepancies())


def _all_published(store: Store) -> bool:
    with store.engine.connect() as conn:
        waiting = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.adjustments)
            .where(t.adjustments.c.published_at.is_(None))
        ).scalar_one()
    return waiting == 0


def test_a_centre_file_names_every_problem_at_once(tmp_path: Path) -> None:
    (tmp_path / "sites").mkdir()
    good = "site: {site}\ndatabase: postgresql+psycopg://db/edgecount\ndatabase_schema: {schema}\n"
    (tmp_path / "sites" / "a.yaml").write_text(good.format(site="north", schema="site_n"))
    (tmp_path / "sites" / "b.yaml").write_text(good.format(site="north", schema="site_m"))
    (tmp_path / "sites" / "c.yaml").write_text(good.format(site="south", schema="site_n"))
    (tmp_path / "sites" / "d.yaml").write_text("site: east\ndatabase_schema: Bad-Name\n")
    centre = tmp_path / "centre.yaml"
    centre.write_text("instance_id: c1\nsites:\n  - sites/*.yaml\n  - missing.yaml\n")
    with pytest.raises(ConfigError) as caught:
        load_centre_config(centre)
    shown = [str(issue) for issue in caught.value.issues]
    assert f"{centre}:4: sites[1]: 'missing.yaml' names no file" in shown
    assert any(s.startswith(f"{tmp_path}/sites/d.yaml:2: database_schema:") for s in shown)
    assert (
        f"{tmp_path}/sites/b.yaml:1: site: 'north' is configured in {tmp_path}/sites/a.yaml too"
        in shown
    )
    assert any(
        s.startswith(f"{tmp_path}/sites/c.yaml:3: database_schema: site 'south' would share")
        for s in shown
    )
    assert len(shown) == 4


def test_serve_explains_a_bad_centre_file_without_a_trace(tmp_path: Path) -> None:
    centre = tmp_path / "centre.yaml"
    centre.write_text("sites: [nowhere/*.yaml]\n")  # and no instance_id
    done = subprocess.run(
        [sys.executable, "-m", "edgecount", "reconcile", "serve", "-c", str(centre)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "instance_id" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_site_whose_database_fails_is_retried_without_redoing_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sites = ["north", "south"]
    stores = [open_store(f"sqlite:///{tmp_path / f'{site}.sqlite3'}") for site in sites]
    for store in stores:
        store.replace_book([BookLine("L-00", SKU, 10, 2.0, AbcClass.A)], source="t", at=SNAPSHOT)
    engines = {
        site: Engine(store, site, TolerancePolicy())
        for site, store in zip(sites, stores, strict=True)
    }
    batch = [
        (f"edgecount/v1/{site}/count/A/L-00", count_body(site, "L-00", 6, scan="s1", seq=1))
        for site in sites
    ] + [("edgecount/v1/east/count/A/L-00", count_body("east", "L-00", 6, scan="s1", seq=1))]
    real = ingest.store_new_counts
    failures = iter([sa.exc.OperationalError("INSERT", {}, Exception("south's database away"))])
    south = str(stores[1].engine.url)

    def store_new_counts(conn: sa.Connection, *args: Any, **kwargs: Any) -> Any:
        if str(conn.engine.url) == south:
            for failure in failures:
                raise failure
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(ingest, "store_new_counts", store_new_counts)
    attempt = BatchAttempt()
    with pytest.raises(sa.exc.OperationalError):
        handle_sites(engines, batch, attempt, rejected_by="test")
    assert list(attempt.stored) == ["north"]  # north's counts committed before south failed
    outcome = handle_sites(engines, batch, attempt, rejected_by="test")
    assert (outcome.applied, outcome.duplicates) == (2, 0)  # north's count not applied again
    topics = sorted(m.topic for m in outcome.out)
    assert topics == [  # each site's discrepancy and recount request, once
        "edgecount/v1/north/cmd/gw-1/scan",
        "edgecount/v1/north/discrepancy/A/L-00",
        "edgecount/v1/south/cmd/gw-1/scan",
        "edgecount/v1/south/discrepancy/A/L-00",
    ]
    assert [len(discrepancies(store)) for store in stores] == [1, 1]
    # a site this reconciler does not serve: dead-lettered on that site's topic, with a reason
    letter = outcome.letters[2]
    assert letter.topic == "edgecount/v1/east/deadletter"
    assert "not served" in json.dumps(letter.message.to_payload() if letter.message else {})
    for store in stores:
        store.close()


async def test_an_instance_joins_during_the_night_and_takes_a_share(
    broker: BrokerAddress, database: str, unique_site: str
) -> None:
    sites = [f"{unique_site}-{i}" for i in range(2)]
    stores = with_book(database, sites)
    group = f"g-{unique_site}"

    def service(n: int, pool: EnginePool) -> ReconcileService:
        engines = [
            Engine(site_store(database, i, pool), s, TolerancePolicy()) for i, s in enumerate(sites)
        ]
        return ReconcileService(
            engines,
            MqttSettings(host=broker.host, port=broker.port, client_id=f"{group}-{n}"),
            client_id=f"{group}-{n}",
            shared_group=group,
        )

    def night(scan: str, first_seq: int) -> list[tuple[str, bytes]]:
        return [
            (f"edgecount/v1/{site}/count/A/{loc}", count_body(site, loc, 10, scan=scan, seq=seq))
            for site in sites
            for seq, loc in enumerate(LOCATIONS, start=first_seq)
        ]

    pools = [EnginePool(), EnginePool()]
    a, b = service(1, pools[0]), service(2, pools[1])
    tasks = [asyncio.create_task(a.run())]
    try:
        await asyncio.wait_for(a.ready.wait(), 10)
        await asyncio.to_thread(publish_all, broker, night("s1", 1))
        await eventually(lambda: a.stats.applied == 2 * len(LOCATIONS), 20, "the first half")
        tasks.append(asyncio.create_task(b.run()))  # joins mid-night
        await asyncio.wait_for(b.ready.wait(), 10)
        await asyncio.to_thread(publish_all, broker, night("s2", 100))
        total = 4 * len(LOCATIONS)
        await eventually(lambda: a.stats.applied + b.stats.applied == total, 20, "the rest")
        assert b.stats.applied > 0  # the newcomer took a share of what came after it joined
        assert a.leases.held == set(sites)  # the leases stayed put
        assert not b.leases.held
    finally:
        for s in (a, b):
            s.stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)
        for pool in pools:
            pool.close()
    assert [stored_counts(store) for store in stores] == [2 * len(LOCATIONS)] * 2
    assert [discrepancies(store) for store in stores] == [[], []]  # every count matched


def test_instances_starting_at_once_migrate_a_new_schema_once(database: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as workers:
        stores = list(workers.map(lambda _: site_store(database, 7), range(4)))
    try:
        assert all(store.book_lines() == [] for store in stores)  # every one got a usable store
        with stores[0].engine.connect() as conn:
            heads = conn.execute(sa.text("SELECT count(*) FROM site_7.alembic_version")).scalar()
        assert heads == 1
    finally:
        for store in stores:
            store.close()
