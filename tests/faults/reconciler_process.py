"""Real processes for the reconciler fault tests (not a test module).

* :class:`ReconcilerProcess`: ``python -m edgecount reconcile serve -c FILE`` in a child
  process that the test SIGKILLs and starts again; its REST API (``/metrics``) is the window.
  :class:`ServeProcess` is what it shares with a centre's process (the multi-site test).
* :class:`PrivatePostgres`: a PostgreSQL cluster of its own (``initdb`` + ``pg_ctl``) in a
  temporary directory on a free port, which the test stops and starts. PostgreSQL refuses to
  run as root: as root the cluster belongs to ``nobody`` and its programs run through
  ``runuser`` (util-linux, on every Debian). The machine's shared PostgreSQL is never touched.
* :class:`CountPublisher`: a gateway stand-in that publishes counts (QoS 1, retained) with
  paho and waits for each PUBACK.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import psycopg
import sqlalchemy as sa
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgecount import contract
from reconciler import schema as t
from tests.conftest import BrokerAddress, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SKU = "80614141123458"
SNAPSHOT = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
BROKER_QUEUE = "max_queued_messages 100000\nmax_inflight_messages 100\n"
"""What a site's Mosquitto needs for a persistent session to hold a night of counts."""


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate()`` every 20 ms until it holds; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)


def locations(number: int) -> list[str]:
    """``F-001``, ``F-002``, ... in zone ``F``."""
    return [f"F-{index:03d}" for index in range(1, number + 1)]


def book_csv(path: Path, qty_by_location: dict[str, int]) -> Path:
    """A book CSV (one SKU per location, class A)."""
    rows = [f"{loc},{SKU},{qty},2.5,A" for loc, qty in qty_by_location.items()]
    path.write_text("location,sku,qty,unit_cost,abc\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def count(site: str, gateway: str, location: str, qty: int, scan_id: str, seq: int) -> bytes:
    """An ``edgecount.count/1`` payload (complete, one SKU)."""
    draft = contract.count_payload(
        gateway=gateway,
        site=site,
        zone="F",
        location=location,
        scan_id=scan_id,
        items=[{"sku": SKU, "qty": qty}],
        observed_at=SNAPSHOT + timedelta(hours=4, seconds=seq),
    )
    return contract.encode(contract.with_sequence(draft, seq))


@dataclass(slots=True)
class CountPublisher:
    """Publishes counts like a gateway (QoS 1, retained) and waits for every PUBACK."""

    broker: BrokerAddress
    site: str
    gateway: str = field(default_factory=lambda: f"gw-{uuid.uuid4().hex[:8]}")
    sent: set[str] = field(default_factory=set)
    seq: int = 0

    def publish_scan(
        self, qty_by_location: dict[str, int], scan_id: str, *, per_chunk: int = 0
    ) -> None:
        """Publish one count per location; with ``per_chunk``, in bursts of that many."""
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        try:
            infos = []
            for index, (loc, qty) in enumerate(qty_by_location.items()):
                self.seq += 1
                body = count(self.site, self.gateway, loc, qty, scan_id, self.seq)
                self.sent.add(contract.msg_id(self.gateway, self.seq, None))
                topic = contract.count_topic(self.site, "F", loc)
                infos.append(client.publish(topic, body, qos=1, retain=True))
                if per_chunk and index % per_chunk == per_chunk - 1:
                    infos[-1].wait_for_publish(10)  # the stream's pace: one burst at a time
            for info in infos:
                info.wait_for_publish(10)
                assert info.is_published(), "the broker did not acknowledge a count"
        finally:
            client.disconnect()
            client.loop_stop()


class ServeProcess:
    """``edgecount reconcile serve -c FILE`` as a child process, watched on its ``/metrics``.

    Subclasses say where ``/metrics`` is (:attr:`metrics_port`) and start it.
    """

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port: int | None = None

    def _spawn(self, *options: str) -> None:
        command = [sys.executable, "-m", "edgecount", *options, "reconcile", "serve"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # fixed interpreter, generated config
                [*command, "-c", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT
            )

    def _exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no DISCONNECT."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 15 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def metrics(self) -> str:
        """``/metrics`` text, or "" when it does not answer (or its port is not known yet)."""
        if self.metrics_port is None:
            return ""
        try:
            return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return ""

    def metric(self, name: str) -> float:
        """One unlabelled sample of ``/metrics`` (``edgecount_reconciler_`` + name)."""
        full = f"edgecount_reconciler_{name} "
        for line in self.metrics().splitlines():
            if line.startswith(full):
                return float(line.split()[1])
        raise AssertionError(f"{full.strip()} not in /metrics")

    def log_text(self) -> str:
        """What the process logged."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


class ReconcilerProcess(ServeProcess):
    """One site's ``reconcile serve`` on a generated configuration, with its REST API."""

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        self.directory = directory
        self.api_port = free_port()
        self.config = config | {"api": {"host": "127.0.0.1", "port": self.api_port}}
        config_path = directory / "reconciler.yaml"
        config_path.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        super().__init__(config_path, directory / "reconciler.log")
        self.metrics_port = self.api_port  # the REST API serves /metrics
        self.db = sa.create_engine(self.database_url, future=True, pool_pre_ping=True)

    @property
    def database_url(self) -> str:
        """The store's SQLAlchemy URL."""
        url: str = self.config["database"]
        return url

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``edgecount <args> -c FILE`` (book import, approve, ...)."""
        return subprocess.run(
            [sys.executable, "-m", "edgecount", *args[:2], "-c", str(self.config_path), *args[2:]],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start and return once it is subscribed (``edgecount_reconciler_subscribed 1``)."""
        self._spawn()
        wait_for(
            lambda: self._exited() or "edgecount_reconciler_subscribed 1" in self.metrics(),
            timeout,
            "reconciler subscribed",
        )
        assert not self._exited(), f"reconciler exited:\n{self.log_text()}"

    def health(self) -> httpx.Response:
        """``GET /health``."""
        return httpx.get(f"http://127.0.0.1:{self.api_port}/health", timeout=5)

    def stored_msg_ids(self) -> list[str]:
        """Every stored count's msg_id (one row each); [] while the database is away."""
        try:
            with self.db.connect() as conn:
                return list(conn.execute(sa.select(t.counts.c.msg_id)).scalars())
        except sa.exc.OperationalError:
            return []

    def awaiting_approval(self) -> list[int]:
        """Ids of the discrepancies awaiting approval."""
        query = sa.select(t.discrepancies.c.id).where(
            t.discrepancies.c.state == "awaiting_approval"
        )
        with self.db.connect() as conn:
            return sorted(conn.execute(query).scalars())

    def close(self) -> None:
        """Stop the process and release the test's own database connections."""
        self.stop()
        self.db.dispose()


def _as_cluster_owner() -> list[str]:
    """The command prefix that runs PostgreSQL's programs as a user it accepts."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "nobody", "--"]


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory on a free port (trust auth).

    Its directory is made with :func:`tempfile.mkdtemp` (not under pytest's root-only
    ``tmp_path``, which ``nobody`` cannot enter) and removed by :meth:`destroy`.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="edgecount-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
        self._run(PG_BIN / "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def _run(self, program: Path, *args: str) -> None:
        done = subprocess.run(
            [*_as_cluster_owner(), str(program), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program.name} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
        self._run(
            PG_BIN / "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        """Stop (fast: open connections are cut) and wait."""
        self._run(PG_BIN / "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        """Create a database; returns its SQLAlchemy URL."""
        conninfo = f"host=127.0.0.1 port={self.port} dbname=postgres user=postgres"
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def destroy(self) -> None:
        """Stop (immediately) if running and remove the cluster."""
        subprocess.run(
            [
                *_as_cluster_owner(),
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def counted_once(stored: Iterable[str], published: set[str]) -> Iterator[str]:
    """Problems: a msg_id stored twice, lost, or never published (empty: exactly once)."""
    ids = list(stored)
    seen: set[str] = set()
    for msg_id in ids:
        if msg_id in seen:
            yield f"stored twice: {msg_id}"
        seen.add(msg_id)
    yield from (f"lost: {m}" for m in sorted(published - seen))
    yield from (f"never published: {m}" for m in sorted(seen - published))
