"""Shared wiring of the fault tests (not a test module).

A fault test runs the real pieces: the LLRP simulator as the reader, the gateway (in this
process, or as ``python -m edgecount`` in a child process where it must be killed), a private
Mosquitto that the test stops, kills and restarts on the same port, and the reconciler service
in this process on SQLite, with a book equal to the simulator's truth (so an honest count
flags nothing).

The camera fault of issue 6 (a camera that stalls, then recovers) is covered where the
camera driver is tested: ``tests/drivers/camera/test_camera_driver.py::
test_recovers_from_a_camera_that_stalls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from edgecount import contract
from edgecount.mqtt import MqttSettings
from reconciler import schema as t
from reconciler.engine import Engine
from reconciler.model import AbcClass, BookLine
from reconciler.rules import TolerancePolicy
from reconciler.service import ReconcileService, ServiceStats
from reconciler.store import Store, open_store
from simulators.scene import Scene
from simulators.shelf import truth_by_antenna
from tests.conftest import BrokerAddress

REPO = Path(__file__).resolve().parents[2]
ZONE = "F"
LOCATIONS = {1: "F-01", 2: "F-02", 3: "F-03", 4: "F-04"}
FAST_RECONNECT = {"reconnect_min_seconds": 0.05, "reconnect_max_seconds": 0.3}


def book_of(scene: Scene) -> list[BookLine]:
    """The book that equals what the scene really holds (A items: the tightest tolerance)."""
    return [
        BookLine(LOCATIONS[antenna], sku, qty, 2.5, AbcClass.A)
        for antenna, skus in truth_by_antenna(scene).items()
        for sku, qty in skus.items()
    ]


def gateway_dict(
    *,
    site: str,
    gateway_id: str,
    state_dir: Path,
    broker: BrokerAddress,
    reader_port: int,
    scan_seconds: float = 1.0,
    **outbox: Any,
) -> dict[str, Any]:
    """A gateway configuration (as YAML would give it) with one LLRP reader, zone ``F``."""
    return {
        "site": site,
        "gateway_id": gateway_id,
        "state_dir": str(state_dir),
        "mqtt": {"host": broker.host, "port": broker.port, "keepalive": 5},
        "outbox": FAST_RECONNECT | outbox,
        "readers": [
            {
                "type": "llrp",
                "name": "r",
                "host": "127.0.0.1",
                "port": reader_port,
                "antennas": LOCATIONS,
                "keepalive_seconds": 1.0,
            }
        ],
        "zones": {ZONE: {"readers": ["r"], "scan_seconds": scan_seconds}},
    }


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write a configuration as YAML and return its path."""
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def new_gateway_id() -> str:
    """A gateway id no other test uses."""
    return f"gw-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class StoredCount:
    """One row of the reconciler's ``counts`` table."""

    msg_id: str
    location: str
    scan_id: str
    complete: bool
    historical: bool
    total: int


@dataclass(slots=True)
class Reconciler:
    """The reconciler service running in this process, and its store."""

    store: Store
    engine: Engine
    service: ReconcileService

    @property
    def stats(self) -> ServiceStats:
        """The service's counters."""
        return self.service.stats

    async def wait_until(
        self,
        predicate: Callable[[ServiceStats], bool],
        timeout: float = 20.0,  # noqa: ASYNC109 - a bound, like wait_for's
    ) -> None:
        """Wait until ``predicate(stats)`` holds after a handled batch."""
        await asyncio.wait_for(self.service.wait_until(predicate), timeout)

    def counts(self) -> list[StoredCount]:
        """Every count the reconciler stored."""
        c = t.counts.c
        query = sa.select(c.msg_id, c.location, c.scan_id, c.complete, c.historical, c["items"])
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            StoredCount(
                msg_id,
                location,
                scan_id,
                bool(complete),
                bool(historical),
                sum(int(item["qty"]) for item in items),
            )
            for msg_id, location, scan_id, complete, historical, items in rows
        ]

    def discrepancies(self) -> list[dict[str, Any]]:
        """Every discrepancy ever raised (open or closed)."""
        return self.engine.list_discrepancies(open_only=False)


@contextlib.asynccontextmanager
async def running_reconciler(
    broker: BrokerAddress, site: str, book: list[BookLine], database: Path
) -> AsyncIterator[Reconciler]:
    """Start the reconciler service on ``broker``; yield once it is subscribed."""
    store = open_store(f"sqlite:///{database}")
    store.replace_book(book, source="test", at=contract.parse_iso(contract.now_iso()))
    engine = Engine(store, site, TolerancePolicy(), max_recounts=2)
    settings = MqttSettings(
        host=broker.host, port=broker.port, reconnect_min_delay=0.05, reconnect_max_delay=0.3
    )
    service = ReconcileService(engine, settings, client_id=f"rec-{uuid.uuid4().hex[:8]}")
    task = asyncio.create_task(service.run(), name="reconciler")
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        yield Reconciler(store, engine, service)
    finally:
        service.stopping.set()
        await asyncio.wait_for(task, 10)
        store.close()


def outbox_rows(path: Path) -> list[dict[str, Any]]:
    """The payloads waiting in an outbox file another process owns (read-only, WAL-safe)."""
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT payload FROM outbox ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # the child has not created the table yet
        return []
    finally:
        db.close()
    return [json.loads(payload) for (payload,) in rows if payload]


def assert_exactly_once(stored: list[StoredCount], published: set[str]) -> None:
    """Every published count msg_id is stored once; nothing else is stored."""
    ids = [count.msg_id for count in stored]
    assert len(ids) == len(set(ids)), f"a count was applied twice: {sorted(ids)}"
    missing = published - set(ids)
    assert not missing, f"counts lost: {sorted(missing)}"
    extra = set(ids) - published
    assert not extra, f"counts nobody published: {sorted(extra)}"


@contextlib.asynccontextmanager
async def gateway_process(config: Path, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m edgecount gateway run -c CONFIG``; SIGTERM (then SIGKILL) when done."""
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edgecount", "gateway", "run", "-c", str(config),
            cwd=REPO, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
