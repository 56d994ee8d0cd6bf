"""Soak: gateway + simulators + reconciler for a long time, with broker and reader faults.

    .venv/bin/python bench/soak.py [--minutes 30] [--scan-every 15] [--broker-every 180]
                                   [--reader-every 75] [--json]

Real processes, as deployed: a Mosquitto broker (persistence on), the gateway daemon
(``edgecount gateway run``) and the reconciliation service (``edgecount reconcile serve``,
SQLite) as subprocesses; three LLRP reader simulators (a twin zone of 60 locations, 98 % read
rate, stray reads) in this process. Like a planner, the bench asks the gateway for a zone scan
every ``--scan-every`` seconds (over MQTT) and waits until the reconciler has stored that scan.
Faults on a schedule: the broker is restarted (SIGTERM, then started again on the same port)
every ``--broker-every`` seconds, and a reader's connection is dropped every
``--reader-every`` seconds (its locations of that scan are incomplete; the driver reconnects).

Figures: scans asked for / stored by the reconciler; counts expected (every location of every
stored scan) / stored (0 lost is the goal) and applied twice (0); resident memory of the gateway
and of the reconciler after the warm-up (the first 20 % of the run) and at the end (growth
<= 5 % is the goal).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.publish as mqtt_publish

from edgecount import contract
from simulators.llrp.server import LLRPSimulator
from simulators.site import SitePlan, SitePorts, fixed_groups, gateway_config, reader_name
from simulators.twin import TwinSpec, generate, write_book_csv

SITE = "soak"
GATEWAY = "gw-soak"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(found).exists():
        sys.exit("mosquitto is not installed (make test installs it)")
    return found


class Broker:
    """A Mosquitto process on a fixed port, persistence on, restartable."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.conf = work / "mosquitto.conf"
        (work / "mosq").mkdir()
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {work / 'mosq'}/\nautosave_interval 5\n"
            f"user {getpass.getuser()}\n"
            "max_queued_messages 100000\nlog_type error\n"
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1


def start_services(work: Path) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """Import the book, then start the gateway daemon and the reconciliation service."""
    edgecount = [sys.executable, "-m", "edgecount"]
    config = str(work / "reconciler.yaml")
    subprocess.run(
        [*edgecount, "book", "import", "-c", config, str(work / "book.csv")],
        check=True,
        capture_output=True,
    )
    with (work / "gateway.log").open("wb") as gw_log, (work / "reconciler.log").open("wb") as log:
        gateway = subprocess.Popen(
            [*edgecount, "gateway", "run", "-c", str(work / "gateway.yaml")],
            stdout=gw_log,
            stderr=gw_log,
        )
        reconciler = subprocess.Popen(
            [*edgecount, "reconcile", "serve", "-c", config], stdout=log, stderr=log
        )
    return gateway, reconciler


def ask_until_sent(port: int, zone: str, request_id: str) -> None:
    """Send a scan request, trying again while the broker restarts."""
    while not ask_scan(port, zone, request_id):
        time.sleep(0.5)


def rss_kib(pid: int) -> int:
    """Resident memory of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Soak:
    asked: int = 0
    stored: list[str] = field(default_factory=list)
    missing_scans: list[str] = field(default_factory=list)
    reader_drops: int = 0
    memory: list[tuple[float, int, int]] = field(default_factory=list)


def stored_scan(db: Path, request_id: str) -> str | None:
    """The scan id the reconciler stored for a request, once it ended."""
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        row = conn.execute(
            "SELECT scan_id FROM scans WHERE request_id = ? AND state != 'started'", (request_id,)
        ).fetchone()
    return None if row is None else str(row[0])


def ask_scan(port: int, zone: str, request_id: str) -> bool:
    payload = contract.scan_request_payload(
        reason="soak", requested_by="bench", zone=zone, request_id=request_id
    )
    try:
        mqtt_publish.single(
            contract.cmd_scan_topic(SITE, GATEWAY),
            json.dumps(payload),
            qos=1,
            hostname="127.0.0.1",
            port=port,
        )
    except OSError:
        return False
    return True


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    spec = TwinSpec(site=SITE, zones=1, aisles_per_zone=2, bays_per_aisle=10, levels_per_bay=3)
    plan = SitePlan(twin=spec, locations_per_reader=20, rounds_per_second=4.0)
    twin = generate(spec)
    broker = Broker(work)
    broker.start()
    sims: list[LLRPSimulator] = []
    ports: dict[str, int] = {}
    for zone, groups in fixed_groups(twin, plan).items():
        for index, group in enumerate(groups):
            sim = LLRPSimulator(twin.scene_for(zone, group, seed=index))
            await sim.start()
            sims.append(sim)
            ports[reader_name(zone, index)] = sim.port
    mqtt = {"host": "127.0.0.1", "port": broker.port}
    gw_config = gateway_config(
        twin,
        plan,
        SitePorts(ports, {}),
        gateway_id=GATEWAY,
        mqtt=mqtt,
        state_dir=str(work / "gateway"),
        scan_seconds=3.0,
    )
    (work / "gateway.yaml").write_text(json.dumps(gw_config))
    (work / "reconciler.yaml").write_text(
        json.dumps({"site": SITE, "state_dir": str(work / "rec"), "max_recounts": 0, "mqtt": mqtt})
    )
    write_book_csv(twin, work / "book.csv")
    gateway, reconciler = await asyncio.to_thread(start_services, work)
    db = work / "rec" / "reconciler.sqlite3"
    soak = Soak()
    started = time.monotonic()
    end = started + args.minutes * 60
    next_broker = started + args.broker_every
    next_reader = started + args.reader_every
    zone = next(iter(fixed_groups(twin, plan)))
    try:
        await asyncio.sleep(3.0)  # let both services connect before the first request
        while time.monotonic() < end:
            request_id = f"soak-{soak.asked:05d}"
            soak.asked += 1
            await asyncio.to_thread(ask_until_sent, broker.port, zone, request_id)
            asked_at = time.monotonic()
            scan_id = None
            while scan_id is None and time.monotonic() - asked_at < 120:
                now = time.monotonic()
                if now >= next_reader:  # mid-scan, most of the time
                    sims[soak.reader_drops % len(sims)].drop_connection()
                    soak.reader_drops += 1
                    next_reader = now + args.reader_every
                if now >= next_broker:
                    await asyncio.to_thread(broker.restart)
                    next_broker = now + args.broker_every
                await asyncio.sleep(0.5)
                scan_id = await asyncio.to_thread(stored_scan, db, request_id)
            if scan_id is None:
                soak.missing_scans.append(request_id)
            else:
                soak.stored.append(scan_id)
            elapsed = time.monotonic() - started
            soak.memory.append((elapsed, rss_kib(gateway.pid), rss_kib(reconciler.pid)))
            print(
                f"[{elapsed:7.1f} s] {request_id}: {'stored' if scan_id else 'NOT stored'}; "
                f"broker restarts {broker.restarts}, reader drops {soak.reader_drops}; "
                f"RSS gateway {soak.memory[-1][1] / 1024:.1f} MiB, "
                f"reconciler {soak.memory[-1][2] / 1024:.1f} MiB",
                file=sys.stderr,
                flush=True,
            )
            await asyncio.sleep(max(0.0, args.scan_every - (time.monotonic() - asked_at)))
        await asyncio.sleep(5.0)  # the last counts reach the store
    finally:
        for process in (gateway, reconciler):
            process.send_signal(signal.SIGTERM)
        for process in (gateway, reconciler):
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        for sim in sims:
            await sim.stop()
        broker.stop()
    return figures(db, soak, broker.restarts, args.minutes)


def figures(db: Path, soak: Soak, restarts: int, minutes: float) -> dict[str, Any]:
    """Counts expected vs stored, duplicates, and memory growth."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        expected = 0
        stored = 0
        doubled = 0
        for scan_id in soak.stored:
            (locations,) = conn.execute(
                "SELECT locations FROM scans WHERE scan_id = ?", (scan_id,)
            ).fetchone()
            wanted = set(json.loads(locations))
            rows = conn.execute(
                "SELECT location, count(*) FROM counts WHERE scan_id = ? GROUP BY location",
                (scan_id,),
            ).fetchall()
            expected += len(wanted)
            stored += sum(1 for location, _ in rows if location in wanted)
            doubled += sum(n - 1 for _, n in rows)
        historical = conn.execute("SELECT count(*) FROM counts WHERE historical").fetchone()[0]
    warm = [m for m in soak.memory if m[0] >= minutes * 60 * 0.2] or soak.memory
    first, last = warm[0], soak.memory[-1]
    return {
        "minutes": minutes,
        "scans_asked": soak.asked,
        "scans_stored": len(soak.stored),
        "scans_missing": soak.missing_scans,
        "counts_expected": expected,
        "counts_stored": stored,
        "counts_lost": expected - stored,
        "counts_applied_twice": doubled,
        "counts_replayed_historical": historical,
        "broker_restarts": restarts,
        "reader_drops": soak.reader_drops,
        "gateway_rss_mib": [round(first[1] / 1024, 1), round(last[1] / 1024, 1)],
        "gateway_growth": (last[1] - first[1]) / first[1],
        "reconciler_rss_mib": [round(first[2] / 1024, 1), round(last[2] / 1024, 1)],
        "reconciler_growth": (last[2] - first[2]) / first[2],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--scan-every", type=float, default=15.0)
    parser.add_argument("--broker-every", type=float, default=180.0)
    parser.add_argument("--reader-every", type=float, default=75.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgecount-soak-") as temp:
        result = asyncio.run(run(args, Path(temp)))
    if args.json:
        print(json.dumps(result, indent=2))
    ok = (
        not result["counts_lost"]
        and not result["counts_applied_twice"]
        and not result["scans_missing"]
        and result["gateway_growth"] <= 0.05
        and result["reconciler_growth"] <= 0.05
    )
    print(
        f"\nsoak {result['minutes']:g} min: {result['scans_stored']}/{result['scans_asked']} "
        f"scans stored, counts lost {result['counts_lost']} of {result['counts_expected']}, "
        f"applied twice {result['counts_applied_twice']}, replayed as historical "
        f"{result['counts_replayed_historical']}; {result['broker_restarts']} broker restarts, "
        f"{result['reader_drops']} reader drops\n"
        f"RSS after warm-up → end: gateway {result['gateway_rss_mib'][0]} → "
        f"{result['gateway_rss_mib'][1]} MiB ({result['gateway_growth']:+.1%}), reconciler "
        f"{result['reconciler_rss_mib'][0]} → {result['reconciler_rss_mib'][1]} MiB "
        f"({result['reconciler_growth']:+.1%})  goals: 0 lost, growth <= 5 %: "
        f"{'met' if ok else 'NOT MET'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
