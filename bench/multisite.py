"""Multi-site benchmark (issue 15): many site brokers bridged to a centre, 1 or 2 reconcilers.

Set up once, as the docs describe it (docs/operations.md, "Multi-site"):

* a CA, the central broker's certificate, one client certificate per site's bridge (its CN is
  the bridge's user) and one for the reconcilers, all EC P-256, made with ``openssl``;
* the central Mosquitto: TLS only, ``require_certificate``, ``use_identity_as_username``, the
  ACL of ``edgecount security acl`` per site (its bridge and the reconciler user)
  concatenated, a deep queue (``max_queued_messages``) for the reconcilers' sessions;
* ``--sites`` site Mosquittos, each running the configuration ``edgecount site bridge``
  generates from its ``site.yaml`` (started in parallel; ready when every bridge's state on
  the central broker is ``1``);
* one fresh PostgreSQL database with one schema per site, migrated once, each with a book of
  ``--locations`` locations x 1 SKU that every count matches (no discrepancy opens).

Then, for each instance count of ``--instances`` (alternating when ``--repeat`` > 1): empty
the sites' counts, scans, messages, discrepancies...; start that many
``edgecount reconcile serve -c centre.yaml`` processes (one shared group and fresh client ids
per run, session expiry 0, so no run's session takes messages of the next); wait until each
is subscribed (its ``/metrics``); publish every site's counts at once (QoS 1, pre-encoded,
from ``--publishers`` processes, each a gateway client on its sites' brokers, the sites
interleaved as on a night when every site scans); measure:

* **time**: from the first publish until the instances' ``messages_applied`` add up to every
  count (polled every 0.1 s), and the rate, counts ÷ time;
* **latency**: per count, from its publish (the publisher's ``time.time()`` when it handed the
  message to its MQTT client) to its ``counts.received_at`` in the store (``datetime.now(UTC)``
  in the reconciler as it stores the batch: same clock, microseconds, UTC) — p50, p99, max;
* **CPU** seconds of the reconcilers, the central broker, the site brokers together and the
  publishers, and the machine's busy share (/proc/stat) over the run.

Goals (issue 15): 2 instances ≥ 1.7 x one instance; 200,000 counts stored in ≤ 30 s with
2 instances.

Run: ``.venv/bin/python bench/multisite.py [--sites 100] [--locations 2000] [--instances 1,2]
[--repeat 1]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/reconciler.py would shadow the `reconciler` package: take this folder off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout: tests.pgdb

import argparse
import functools
import json
import multiprocessing
import os
import pwd
import selectors
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgecount import contract
from edgecount.security import AclSpec, acl_text
from edgecount.sitebridge import bridge_conf, load_site_spec
from reconciler.model import AbcClass, BookLine
from reconciler.store import EnginePool, open_store
from tests.pgdb import fresh_database

SKU = "80614141123458"
RECONCILER_USER = "centre-app"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
# What a run leaves in a site's schema; the book and its metadata stay.
RUN_TABLES = (
    "counts", "scans", "messages", "coverage", "discrepancies", "recounts", "approvals",
    "adjustments", "decisions", "audit", "count_tasks", "console_outbox", "gateway_status",
    "frames", "epcis_exports", "accepted_variances",
)  # fmt: skip
TICK = os.sysconf("SC_CLK_TCK")


def site_name(n: int) -> str:
    """The n-th site's id; also its schema name (``a-z0-9_``)."""
    return f"site{n:03d}"


def location_name(i: int) -> str:
    return f"L{i:05d}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port(port: int, deadline: float, log: Path) -> None:
    while time.time() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"nothing listens on port {port}; {log}:\n{tail}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# -- certificates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A throw-away CA, the central broker's certificate and client certificates by CN."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    def cert(self, name: str) -> tuple[Path, Path]:
        return self.directory / f"{name}.crt", self.directory / f"{name}.key"

    def _openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    def make_ca(self) -> None:
        self._openssl(
            "req", "-x509", *self._ec(self.directory / "ca.key"), "-out", str(self.ca),
            "-days", "2", "-subj", "/CN=edgecount-bench-ca",
        )  # fmt: skip

    def issue(self, name: str, server: bool = False) -> None:
        """A certificate with CN ``name`` (a server one for 127.0.0.1 when ``server``)."""
        cert, key = self.cert(name)
        csr = self.directory / f"{name}.csr"
        self._openssl("req", *self._ec(key), "-out", str(csr), "-subj", f"/CN={name}")
        ext: list[str] = []
        if server:
            san = self.directory / "san.ext"
            san.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            ext = ["-extfile", str(san)]
        self._openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca),
            "-CAkey", str(self.directory / "ca.key"), "-set_serial", f"0x{uuid.uuid4().hex}",
            "-out", str(cert), "-days", "2", *ext,
        )  # fmt: skip

    @staticmethod
    def _ec(key: Path) -> list[str]:
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(key)]  # fmt: skip

    def client_context(self, name: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(*self.cert(name))
        return context


# -- brokers ---------------------------------------------------------------------------------


@dataclass
class Broker:
    """A private Mosquitto process with its configuration and log in ``directory``."""

    name: str
    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self, config: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "mosquitto.conf"
        # Run as ourselves (as root it would switch to `mosquitto`, who cannot read our files).
        user = pwd.getpwuid(os.geteuid()).pw_name
        conf.write_text(f"user {user}\n{config}", encoding="utf-8")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def log(self) -> Path:
        return self.directory / "mosquitto.log"

    @property
    def cpu(self) -> float:
        return 0.0 if self.process is None else cpu_seconds(self.process.pid)


def central_config(broker: Broker, pki: Pki, acl: Path) -> str:
    cert, key = pki.cert("127.0.0.1")
    (broker.directory / "db").mkdir(parents=True, exist_ok=True)
    return "\n".join(
        [
            f"listener {broker.port} 127.0.0.1",
            f"cafile {pki.ca}",
            f"certfile {cert}",
            f"keyfile {key}",
            "require_certificate true",
            "use_identity_as_username true",
            "allow_anonymous false",
            f"acl_file {acl}",
            "persistence true",
            f"persistence_location {broker.directory / 'db'}/",
            "# The reconcilers' sessions: a deep queue (the default 1,000 drops in a burst).",
            "max_queued_messages 1000000",
            "max_queued_bytes 0",
            "max_inflight_messages 1000",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "",
        ]
    )


def site_config(broker: Broker, bridge: str) -> str:
    """The site broker: its listener for the gateways, then the generated bridge as it is."""
    (broker.directory / "db").mkdir(parents=True, exist_ok=True)
    head = [
        f"listener {broker.port} 127.0.0.1",
        "allow_anonymous true",
        f"persistence_location {broker.directory / 'db'}/",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    return "\n".join(head) + "\n" + bridge


@dataclass
class Setup:
    """Everything that lives across the runs."""

    work: Path
    url: str
    pki: Pki
    central: Broker
    sites: list[str]
    site_brokers: list[Broker]
    site_files: Path

    def brokers(self) -> Iterator[Broker]:
        yield self.central
        yield from self.site_brokers


def wait_bridges(setup: Setup, timeout: float) -> float:
    """Wait until every site's bridge state is ``1`` on the central broker; seconds taken."""
    started = time.time()
    up: set[str] = set()
    changed = threading.Condition()
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-watch-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.tls_set_context(setup.pki.client_context(RECONCILER_USER))

    def on_connect(c: paho.Client, *_args: object) -> None:
        c.subscribe("edgecount/v1/+/bridge/state", qos=1)

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        site = message.topic.split("/")[2]
        with changed:
            if message.payload == b"1":
                up.add(site)
            else:
                up.discard(site)
            changed.notify_all()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", setup.central.port)
    client.loop_start()
    try:
        with changed:
            if not changed.wait_for(lambda: len(up) == len(setup.sites), timeout):
                missing = sorted(set(setup.sites) - up)
                raise RuntimeError(f"bridges not up after {timeout} s: {missing[:10]}")
    finally:
        client.disconnect()
        client.loop_stop()
    return time.time() - started


def start_brokers(work: Path, pki: Pki, sites: list[str]) -> tuple[Broker, list[Broker]]:
    """The central broker, then every site broker with its generated bridge, in parallel."""
    acl = work / "central.acl"
    acl.write_text(
        "\n".join(
            acl_text(
                AclSpec.model_validate(
                    {"site": site, "bridges": [f"bridge-{site}"], "reconciler": [RECONCILER_USER]}
                )
            )
            for site in sites
        ),
        encoding="utf-8",
    )
    central = Broker("central", work / "central", free_port())
    central.start(central_config(central, pki, acl))
    wait_port(central.port, time.time() + 10, central.log)
    brokers = []
    for site in sites:
        cert, key = pki.cert(f"bridge-{site}")
        spec_file = work / "site-yaml" / f"{site}.yaml"
        spec_file.parent.mkdir(exist_ok=True)
        spec_file.write_text(
            f"site: {site}\n"
            "central:\n"
            f"  host: 127.0.0.1\n  port: {central.port}\n  user: bridge-{site}\n"
            f"  tls: {{ca_file: {pki.ca}, cert_file: {cert}, key_file: {key}}}\n"
            "bridge: {frames: false, restart_min_seconds: 1, restart_max_seconds: 5}\n",
            encoding="utf-8",
        )
        broker = Broker(site, work / "brokers" / site, free_port())
        broker.start(site_config(broker, bridge_conf(load_site_spec(spec_file))))
        brokers.append(broker)
    deadline = time.time() + 30
    try:
        for broker in brokers:
            wait_port(broker.port, deadline, broker.log)
    except RuntimeError:
        for broker in [central, *brokers]:
            broker.stop()
        raise
    return central, brokers


# -- database --------------------------------------------------------------------------------


def prepare_database(url: str, sites: list[str], locations: int, site_files: Path) -> float:
    """Migrate one schema per site, give each its book, write each site's file; seconds."""
    started = time.perf_counter()
    snapshot = datetime.now(UTC) - timedelta(hours=6)
    book = [BookLine(location_name(i), SKU, 10, 2.5, AbcClass.B) for i in range(locations)]
    pool = EnginePool()
    try:
        for site in sites:
            store = open_store(url, schema=site, pool=pool)
            store.replace_book(book, source="bench", at=snapshot)
            store.close()
            (site_files / f"{site}.yaml").write_text(
                f"site: {site}\ndatabase: {url}\ndatabase_schema: {site}\n", encoding="utf-8"
            )
    finally:
        pool.close()
    return time.perf_counter() - started


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def empty_run_tables(url: str, sites: list[str]) -> None:
    tables = ", ".join(f"{site}.{table}" for site in sites for table in RUN_TABLES)
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables}")  # our own names, not input


def stored_times(url: str, sites: list[str]) -> dict[str, dict[str, float]]:
    """Per site, location → when its count was stored (epoch seconds)."""
    out: dict[str, dict[str, float]] = {}
    with psycopg.connect(libpq(url)) as conn:
        for site in sites:
            rows = conn.execute(f"SELECT location, received_at FROM {site}.counts").fetchall()
            out[site] = {location: at.timestamp() for location, at in rows}
    return out


def stored_total(url: str, sites: list[str]) -> int:
    query = " + ".join(f"(SELECT count(*) FROM {site}.counts)" for site in sites)
    with psycopg.connect(libpq(url)) as conn:
        row = conn.execute(f"SELECT {query}").fetchone()
    return int(row[0]) if row else 0


# -- publishers ------------------------------------------------------------------------------


def encode_counts(site: str, locations: int) -> list[tuple[str, bytes]]:
    """A night's counts of one site, one per location, as its gateway sends them."""
    observed = datetime.now(UTC) - timedelta(minutes=5)
    gateway = f"gw-{site}"
    template = contract.count_payload(
        gateway=gateway,
        site=site,
        zone="Z",
        location=location_name(0),
        scan_id="scan-1",
        items=[{"sku": SKU, "qty": 10}],
        observed_at=observed,
    )
    out = []
    for i in range(locations):
        draft = dict(template, location=location_name(i))
        payload = contract.with_sequence(draft, i + 1)
        body = contract.encode(payload) if i == 0 else contract.serialise(payload)
        out.append((contract.count_topic(site, "Z", location_name(i)), body))
    return out


def publisher(
    sites: list[tuple[str, int]],
    locations: int,
    rate: float,
    ready: multiprocessing.Queue,  # type: ignore[type-arg]
    go: MpEvent,
    done: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    """Publish every count of ``sites`` (name, broker port), the sites interleaved (own process).

    Each site is a paho MQTT 5 client, as a gateway is; one thread drives them all (paho's
    external loop on a selector) instead of a network thread per client: fifty threads
    waking for every PUBACK cost this stand-in for a hundred gateways, which run on machines
    of their own, a fifth of the two cores the centre is measured on.

    Puts on ``done``: per site the publish time of each location's count, the time of the
    last PUBACK and the process's CPU seconds.
    """
    messages = {site: encode_counts(site, locations) for site, _port in sites}
    clients = {}
    selector = selectors.DefaultSelector()
    for site, port in sites:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"gw-{site}-{uuid.uuid4().hex[:6]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.connect("127.0.0.1", port)
        sock = client.socket()
        assert isinstance(sock, socket.socket)
        selector.register(sock, selectors.EVENT_READ, client)
        clients[site] = client
    pump = functools.partial(_pump, selector, list(clients.values()))
    while not all(client.is_connected() for client in clients.values()):
        pump(0.1)
    ready.put(os.getpid())
    go.wait()
    cpu = time.process_time()
    times: dict[str, list[float]] = {site: [] for site, _port in sites}
    infos = []
    started = time.time()
    n = 0
    for i in range(locations):
        for site, _port in sites:
            if rate > 0:
                ahead = started + n / rate - time.time()
                if ahead > 0:
                    time.sleep(ahead)
            topic, body = messages[site][i]
            times[site].append(time.time())
            infos.append(clients[site].publish(topic, body, qos=1))
            n += 1
        pump(0)  # the PUBACKs so far: the in-flight windows move on
    deadline = time.monotonic() + 300
    while not all(info.is_published() for info in infos) and time.monotonic() < deadline:
        pump(0.1)
    acked = time.time()
    for client in clients.values():
        client.disconnect()
    done.put((times, acked, time.process_time() - cpu))


def _pump(selector: selectors.BaseSelector, clients: list[paho.Client], timeout: float) -> None:
    """One round of paho's external loop for every client: read what arrived, write what
    waits, keep the connections alive."""
    for key, _events in selector.select(timeout):
        key.data.loop_read()
    for client in clients:
        if client.want_write():
            client.loop_write()
        client.loop_misc()


# -- one run ---------------------------------------------------------------------------------


@dataclass
class Instance:
    name: str
    metrics_port: int
    process: subprocess.Popen[bytes]
    log: Path

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("edgecount_reconciler_") and "{" not in line:
                name, _, value = line.partition(" ")
                out[name.removeprefix("edgecount_reconciler_")] = float(value)
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Result:
    instances: int
    round: int
    counts: int
    stored: int
    seconds: float
    publish_seconds: float
    latencies: list[float] = field(repr=False)
    cpu: dict[str, float]
    busy: float
    duplicates: int
    dropped: int

    @property
    def rate(self) -> float:
        return self.stored / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_instances(setup: Setup, k: int, round_: int) -> list[Instance]:
    group = f"bench-{round_}-{k}-{uuid.uuid4().hex[:6]}"
    cert, key = setup.pki.cert(RECONCILER_USER)
    instances = []
    for i in range(k):
        name = f"{group}-{i + 1}"
        port = free_port()
        conf = setup.work / f"centre-{name}.yaml"
        conf.write_text(
            f"instance_id: {name}\n"
            f"shared_group: {group}\n"
            "mqtt_session_expiry_seconds: 0\n"
            f"mqtt: {{host: 127.0.0.1, port: {setup.central.port}, protocol: '5',"
            f" tls: {{ca_file: {setup.pki.ca}, cert_file: {cert}, key_file: {key}}}}}\n"
            f"metrics: {{host: 127.0.0.1, port: {port}}}\n"
            f"sites: ['{setup.site_files}/*.yaml']\n",
            encoding="utf-8",
        )
        log = setup.work / f"centre-{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "edgecount", "reconcile", "serve", "-c", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=os.environ | {"PYTHONPATH": str(ROOT)},
                cwd=ROOT,
            )
        instances.append(Instance(name, port, process, log))
    try:
        wait_subscribed(instances, time.time() + 120)
    except BaseException:
        for instance in instances:
            instance.stop()
        raise
    return instances


def wait_subscribed(instances: list[Instance], deadline: float) -> None:
    for instance in instances:
        while True:
            if instance.process.poll() is not None:
                raise RuntimeError(f"{instance.name} exited; log: {instance.log}")
            try:
                if instance.metrics().get("subscribed") == 1.0:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"{instance.name} not subscribed in time; log: {instance.log}")
            time.sleep(0.2)


def totals(instances: list[Instance]) -> dict[str, float]:
    """The instances' metrics added up (an instance that does not answer counts 0)."""
    out: dict[str, float] = {}
    for instance in instances:
        try:
            figures = instance.metrics()
        except OSError:
            continue
        for name, value in figures.items():
            out[name] = out.get(name, 0.0) + value
    return out


def wait_stored(
    instances: list[Instance], total: int, timeout: float, stall: float
) -> dict[str, float]:
    """Poll until the instances applied ``total`` counts, or stalled, or ``timeout``.

    Stalled: their backlog is empty and nothing was applied for ``stall`` seconds (10 s once
    they dropped messages: their ingest backlog was full, and the broker re-sends those only
    on the next connection).
    """
    deadline = time.time() + timeout
    figures: dict[str, float] = {}
    last, since = -1.0, time.time()
    while time.time() < deadline:
        time.sleep(0.1)
        figures = totals(instances)
        applied = figures.get("messages_applied_total", 0.0)
        if applied >= total:
            break
        if applied != last:
            last, since = applied, time.time()
        waited = stall if figures.get("messages_dropped_total", 0.0) == 0 else 10
        if figures.get("inbox_depth", 0.0) == 0 and time.time() - since > waited:
            print(f"  !! nothing stored for {waited:.0f} s and nothing waiting: stalled")
            break
    return figures


def run_once(
    setup: Setup,
    k: int,
    round_: int,
    locations: int,
    publishers: int,
    rate: float,
    timeout: float,
    stall: float,
) -> Result:
    empty_run_tables(setup.url, setup.sites)
    total = len(setup.sites) * locations
    instances = start_instances(setup, k, round_)
    ctx = multiprocessing.get_context("spawn")
    ready: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    done: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    go = ctx.Event()
    ports = [(s, b.port) for s, b in zip(setup.sites, setup.site_brokers, strict=True)]
    shares = [ports[p::publishers] for p in range(publishers) if ports[p::publishers]]
    procs = [
        ctx.Process(target=publisher, args=(share, locations, rate / len(shares), ready, go, done))
        for share in shares
    ]
    try:
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.get(True, 300)
        cpu_before = {
            "reconcilers": sum(cpu_seconds(i.process.pid) for i in instances),
            "central broker": setup.central.cpu,
            "site brokers": sum(b.cpu for b in setup.site_brokers),
        }
        ticks_before = machine_ticks()
        go.set()
        figures = wait_stored(instances, total, timeout, stall)
        seen_all = time.time()
        ticks_after = machine_ticks()
        cpu_after = {
            "reconcilers": sum(cpu_seconds(i.process.pid) for i in instances),
            "central broker": setup.central.cpu,
            "site brokers": sum(b.cpu for b in setup.site_brokers),
        }
        finished = [done.get(True, 300) for _ in procs]
        figures = totals(instances)
    finally:
        for instance in instances:
            instance.stop()
        for proc in procs:
            proc.join(30)
            if proc.is_alive():  # interrupted before its figures were read
                proc.terminate()
    published: dict[str, list[float]] = {}
    for times, _acked, _cpu in finished:
        published |= times
    first = min(t[0] for t in published.values())
    stored = stored_times(setup.url, setup.sites)
    latencies = [
        stored[site][location_name(i)] - at
        for site, times in published.items()
        for i, at in enumerate(times)
        if location_name(i) in stored[site]
    ]
    count = sum(len(s) for s in stored.values())
    dropped = int(figures.get("messages_dropped_total", 0.0))
    if count < total:
        why = (
            f"{dropped:,} dropped by the reconcilers, unacknowledged"
            if dropped
            else "nothing more was delivered to the reconcilers"
        )
        print(f"  !! only {count:,} of {total:,} counts stored ({why})")
    # The last count stored: received_at is taken as its batch is stored (it commits within ms).
    end = max(max(s.values()) for s in stored.values() if s) if count else seen_all
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_before}
    cpu["publishers"] = sum(c for _t, _a, c in finished)
    busy = (ticks_after[0] - ticks_before[0]) / max(1, ticks_after[1] - ticks_before[1])
    return Result(
        instances=k,
        round=round_,
        counts=total,
        stored=count,
        seconds=end - first,
        publish_seconds=max(a for _t, a, _c in finished) - first,
        latencies=latencies,
        cpu=cpu,
        busy=busy,
        duplicates=int(figures.get("messages_duplicate_total", 0.0)),
        dropped=dropped,
    )


# -- main ------------------------------------------------------------------------------------


@contextmanager
def environment(args: argparse.Namespace) -> Iterator[Setup]:
    with ExitStack() as stack:
        if args.keep:  # the brokers' and reconcilers' logs stay for a look after the run
            work = Path(tempfile.mkdtemp(prefix="edgecount-multisite-"))
            print(f"work directory (kept): {work}")
        else:
            work = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="edgecount-multisite-"))
            )
        url = stack.enter_context(fresh_database("bench_multisite"))
        sites = [site_name(n) for n in range(args.sites)]
        started = time.perf_counter()
        pki = Pki(work / "pki")
        pki.directory.mkdir()
        pki.make_ca()
        names = ["127.0.0.1", RECONCILER_USER, *(f"bridge-{s}" for s in sites)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: pki.issue(n, server=n == "127.0.0.1"), names))
        print(f"certificates: {len(names)} in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        central, brokers = start_brokers(work, pki, sites)
        setup = Setup(work, url, pki, central, sites, brokers, work / "sites")
        for broker in setup.brokers():
            stack.callback(broker.stop)
        bridged = wait_bridges(setup, 120)
        print(
            f"brokers: 1 central + {len(brokers)} sites, every bridge up in"
            f" {time.perf_counter() - started:.1f} s (bridges {bridged:.1f} s)"
        )
        setup.site_files.mkdir()
        seconds = prepare_database(url, sites, args.locations, setup.site_files)
        print(
            f"database: {len(sites)} schemas migrated, books of {args.locations:,}: {seconds:.1f} s"
        )
        yield setup


def summary_table(results: list[Result]) -> str:
    rows = [
        "| instances | round | counts stored | dropped | time s | counts/s | publish s | p50 s"
        " | p99 s | max s | CPU s reconcilers · central · sites · publishers | machine busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cpu = " · ".join(
            f"{r.cpu[k]:.1f}"
            for k in ("reconcilers", "central broker", "site brokers", "publishers")
        )
        rows.append(
            f"| {r.instances} | {r.round} | {r.stored:,} | {r.dropped:,} | {r.seconds:.1f}"
            f" | {r.rate:,.0f}"
            f" | {r.publish_seconds:.1f} | {r.pct(0.5):.2f} | {r.pct(0.99):.2f}"
            f" | {max(r.latencies):.2f} | {cpu} | {r.busy:.0%} |"
        )
    return "\n".join(rows)


def verdicts(results: list[Result], total: int) -> list[str]:
    by_k: dict[int, list[Result]] = {}
    for r in results:
        by_k.setdefault(r.instances, []).append(r)
    out = []
    if 1 in by_k and 2 in by_k:
        one = statistics.median(r.rate for r in by_k[1])
        two = statistics.median(r.rate for r in by_k[2])
        ratio = two / one
        met = "met" if ratio >= 1.7 else "NOT met"
        partial = [r for r in by_k[1] + by_k[2] if r.stored < r.counts]
        caveat = (
            f" (but {len(partial)} run(s) did not store every count: rates over what they stored)"
            if partial
            else ""
        )
        out.append(
            f"2 instances / 1 instance: {two:,.0f} / {one:,.0f} counts/s = {ratio:.2f}"
            f" (goal ≥ 1.7): {met}{caveat}"
        )
    if 2 in by_k:
        complete = [r for r in by_k[2] if r.stored == r.counts]
        size = "" if total == 200_000 else f" (measured with {total:,}, not 200,000)"
        if complete:
            best = min(r.seconds for r in complete)
            met = "met" if best <= 30 else "NOT met"
            out.append(
                f"{total:,} counts stored with 2 instances in {best:.1f} s (goal ≤ 30 s){size}:"
                f" {met}"
            )
        else:
            most = max(by_k[2], key=lambda r: r.stored)
            out.append(
                f"2 instances stored {most.stored:,} of {total:,} counts ({most.dropped:,}"
                f" dropped) in {most.seconds:.1f} s (goal: all in ≤ 30 s){size}: NOT met"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--locations", type=int, default=2000, help="counts per site")
    parser.add_argument("--instances", default="1,2", help="reconciler instances per run")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (order alternates)")
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument(
        "--rate", type=float, default=0, help="total publish rate, counts/s (0: flat out)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds a run may take")
    parser.add_argument(
        "--stall",
        type=float,
        default=60,
        help="end a run when nothing was stored for this long and nothing waits (seconds)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (certificates, logs)"
    )
    args = parser.parse_args()
    counts = [int(k) for k in args.instances.split(",")]
    total = args.sites * args.locations
    print(f"uptime: {Path('/proc/loadavg').read_text().split()[:3]} (1, 5, 15 min load)")
    results = []
    with environment(args) as setup:
        for round_ in range(1, args.repeat + 1):
            order = counts if round_ % 2 else counts[::-1]
            for k in order:
                print(f"== round {round_}: {total:,} counts, {args.sites} sites, {k} instance(s)")
                result = run_once(
                    setup,
                    k,
                    round_,
                    args.locations,
                    args.publishers,
                    args.rate,
                    args.timeout,
                    args.stall,
                )
                load = Path("/proc/loadavg").read_text().split()[0]
                print(
                    f"  stored {result.stored:,} in {result.seconds:.1f} s: {result.rate:,.0f}"
                    f" counts/s; p50 {result.pct(0.5):.2f} s, p99 {result.pct(0.99):.2f} s;"
                    f" published in {result.publish_seconds:.1f} s; CPU {result.cpu};"
                    f" busy {result.busy:.0%}; load {load}; {result.duplicates} duplicates;"
                    f" {result.dropped:,} dropped"
                )
                results.append(result)
    print()
    print(summary_table(results))
    print()
    for line in verdicts(results, total):
        print(line)
    if args.json:
        figures: list[dict[str, Any]] = [
            {
                "instances": r.instances,
                "round": r.round,
                "stored": r.stored,
                "seconds": r.seconds,
                "per_s": r.rate,
                "p50_s": r.pct(0.5),
                "p99_s": r.pct(0.99),
                "cpu_s": r.cpu,
                "busy": r.busy,
            }
            for r in results
        ]
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
