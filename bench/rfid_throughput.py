"""RFID throughput and memory benchmark (issues 2 and 12).

Parts, each printing its figures:

1. ``decode``: on one RO_ACCESS_REPORT byte stream, (a) sllurp's raw decode rate (TagReportData
   per second, decoding each message in a loop), (b) the end-to-end rate: simulator process
   → TCP → driver (sllurp session, our codec decoding the reports) → pipeline → counts, and
   (c) our codec's raw decode rate. Prints them and the ratio b/a (goal ≥ 2.0).
2. ``readers``: N simulated readers x 1,000 reads/s for ``--duration`` s through the gateway
   into the local Mosquitto; for each N: dropped reads and the time from the window closing to
   the last count arriving on the broker. Prints the largest N held with zero drops and every
   count within 1 s (goal ≥ 150). ``--overflow`` picks what a full read queue does
   (``block``, the default: the socket thread waits, TCP keeps the backlog in the reader;
   ``drop``: dropped and counted) and ``--queue-size`` its bound in reports (1000, the
   default of the configuration); ``--keep-going`` tries every N even after one is not held.
3. ``memory``: peak memory of the window state per unique tag at 1,000,000 unique tags
   (goal ≤ 300 bytes).

Run: ``.venv/bin/python bench/rfid_throughput.py [--parts decode,readers,memory]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from drivers.base import TagRead
from drivers.llrp.codec import decode_ro_access_report
from drivers.llrp.driver import LlrpReader, LlrpSettings
from edgecount import contract
from gateway.aggregate import WindowAggregator
from gateway.config import GatewayConfig
from gateway.epc import EpcDecoder
from gateway.runtime import open_publisher, started_readers
from gateway.scan import create_zone_scan
from simulators.llrp.replay import load_replay, write_replay
from simulators.scene import generate_scene

EDGECOUNT = [sys.executable, "-m", "edgecount"]


def start_simulator(args: list[str]) -> tuple[subprocess.Popen[str], list[int]]:
    """Start ``edgecount sim llrp`` in its own process; return it and its ports."""
    count = int(args[args.index("--readers") + 1]) if "--readers" in args else 1
    sim = subprocess.Popen(
        [*EDGECOUNT, "sim", "llrp", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    assert sim.stdout is not None
    ports = [int(sim.stdout.readline().rsplit(":", 1)[1]) for _ in range(count)]
    return sim, ports


# -- part 1: decode ---------------------------------------------------------------------------


def sllurp_decode_rate(messages: list[bytes], tags: int, repeat: int = 3) -> float:
    """TagReportData per second for sllurp decoding every message (best of ``repeat``)."""
    from sllurp.llrp import LLRPMessage

    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        for raw in messages:
            LLRPMessage(msgbytes=raw)
        best = max(best, tags / (time.perf_counter() - started))
    return best


def codec_decode_rate(messages: list[bytes], tags: int, repeat: int = 3) -> float:
    """TagReportData per second for our codec decoding every message (best of ``repeat``)."""
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        for raw in messages:
            decode_ro_access_report(raw)
        best = max(best, tags / (time.perf_counter() - started))
    return best


async def end_to_end_rate(port: int, tags: int, antennas: int) -> tuple[float, int]:
    """TagReportData per second from START to counts; returns (rate, unique tags counted)."""
    reader = LlrpReader(
        LlrpSettings(
            name="r",
            host="127.0.0.1",
            port=port,
            antennas=tuple(range(1, antennas + 1)),
            queue_size=100_000,
        )
    )
    locations = {("r", a): f"L{a}" for a in range(1, antennas + 1)}
    aggregator = WindowAggregator(locations, min_reads=1)
    await reader.start()
    received = 0
    started = time.perf_counter()
    await reader.start_inventory()
    while received < tags:
        batch = await reader.queue.get()
        received += len(batch)
        aggregator.add(batch)
    tally = aggregator.tally(EpcDecoder())
    elapsed = time.perf_counter() - started
    await reader.stop_inventory()
    await reader.stop()
    return received / elapsed, sum(t.total for t in tally.values())


def part_decode(work: Path, reports: int, per_report: int) -> dict[str, float]:
    scene = generate_scene(10_000, antennas=4, seed=3)
    replay = work / "stream.llrp"
    (work / "scene.json").write_text(scene.model_dump_json())
    write_replay(replay, scene, reports, per_report)
    messages = load_replay(replay)
    tags = sum(len(decode_ro_access_report(raw)) for raw in messages)
    print(
        f"stream: {len(messages)} RO_ACCESS_REPORT, {tags} TagReportData, "
        f"{replay.stat().st_size / 1e6:.1f} MB"
    )
    raw = sllurp_decode_rate(messages, tags)
    ours = codec_decode_rate(messages, tags)
    sim, ports = start_simulator(["--scene", str(work / "scene.json"), "--replay", str(replay)])
    try:
        e2e = max(asyncio.run(end_to_end_rate(ports[0], tags, 4))[0] for _ in range(3))
    finally:
        sim.terminate()
        sim.wait(10)
    print(f"(a) sllurp raw decode:           {raw:>10,.0f} TagReportData/s")
    print(f"(b) end to end (sim→TCP→counts): {e2e:>10,.0f} TagReportData/s")
    print(f"(c) our codec raw decode:        {ours:>10,.0f} TagReportData/s")
    print(f"ratio b/a: {e2e / raw:.2f} (goal ≥ 2.0)")
    return {
        "sllurp_decode_per_s": raw,
        "end_to_end_per_s": e2e,
        "codec_decode_per_s": ours,
        "ratio": e2e / raw,
    }


# -- part 2: N readers ------------------------------------------------------------------------


class CountClock:
    """Records when each count message of a scan arrives on the broker."""

    def __init__(self, site: str) -> None:
        self.arrivals: dict[str, tuple[str, float]] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4()}")
        self.client.on_connect = lambda c, *_: c.subscribe(f"edgecount/v1/{site}/count/#", 1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        self.ready.wait(10)

    def _on_message(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        if not message.payload:
            return
        arrived = time.time()
        count = contract.decode_message(message.topic, bytes(message.payload))
        assert isinstance(count, contract.CountMessage)
        with self.lock:
            self.arrivals[message.topic] = (count.scan_id, arrived)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def run_readers(
    n: int, duration: float, work: Path, overflow: str, queue_size: int
) -> dict[str, float]:
    # 1,000 tags, 250 per antenna, each read once a second: 1,000 reads/s per reader. Every
    # simulated reader sees the same tags, so the zone counts 1,000 unique tags in all.
    scene = generate_scene(
        1000,
        antennas=4,
        seed=5,
        read_prob=1.0,
        stray_fraction=0.0,
        rounds_per_second=1.0,
        reader={"max_reads_per_second": 1000.0},
    )
    scene_path = work / "readers-scene.json"
    scene_path.write_text(scene.model_dump_json())
    sim, ports = start_simulator(["--scene", str(scene_path), "--readers", str(n)])
    site = f"bench-{uuid.uuid4().hex[:8]}"
    clock = CountClock(site)

    try:
        config = GatewayConfig.model_validate(
            {
                "site": site,
                "gateway_id": f"bench-{uuid.uuid4().hex[:8]}",
                "state_dir": str(work / f"state-{n}"),
                "readers": [
                    {
                        "type": "llrp",
                        "name": f"r{i}",
                        "host": "127.0.0.1",
                        "port": port,
                        "antennas": {a: f"r{i}-L{a}" for a in range(1, 5)},
                        "queue_size": queue_size,
                        "overflow": overflow,
                    }
                    for i, port in enumerate(ports)
                ],
                "zones": {
                    "all": {
                        "readers": [f"r{i}" for i in range(n)],
                        "scan_seconds": duration,
                        "min_reads": 1,
                    }
                },
            }
        )
        async with open_publisher(config) as publisher, started_readers(config) as readers:
            result = await create_zone_scan(config, "all", readers, publisher).run()
            await publisher.flush(30)
            dropped = sum(reader.health().dropped for reader in readers.values())
            waits = sum(r.health().extra.get("handover_waits", 0) for r in readers.values())
        deadline = time.time() + 10
        while time.time() < deadline:
            with clock.lock:
                mine = [t for sid, t in clock.arrivals.values() if sid == result.scan_id]
            if len(mine) == 4 * n:
                break
            await asyncio.sleep(0.05)
        reads = sum(o.reads for o in result.readers.values())
        assert result.window_closed is not None
        closed_at = result.window_closed.timestamp()
        late = max(mine) - closed_at if len(mine) == 4 * n else float("inf")
        counted = sum(c.total for c in result.locations.values())
    finally:
        clock.close()
        sim.terminate()
        sim.wait(10)
    return {
        "readers": n,
        "reads": reads,
        "reads_per_s": reads / duration,
        "dropped": dropped,
        "handover_waits": waits,
        "complete": float(result.complete),
        "counted": counted,
        "expected": len(scene.epcs),
        "last_count_after_close_s": late,
    }


def part_readers(
    work: Path,
    duration: float,
    counts: list[int],
    overflow: str,
    queue_size: int,
    keep_going: bool,
) -> dict[str, object]:
    held = 0
    failed = False
    rows = []
    for n in counts:
        row = asyncio.run(run_readers(n, duration, work, overflow, queue_size))
        ok = (
            row["dropped"] == 0
            and row["complete"] == 1.0
            and row["counted"] == row["expected"]
            and row["last_count_after_close_s"] <= 1.0
        )
        rows.append(row)
        print(
            f"N={n:>3} ({overflow}, queue {queue_size}): {row['reads_per_s']:>9,.0f} reads/s, "
            f"dropped {row['dropped']:.0f}, counted {row['counted']:.0f}/{row['expected']:.0f}, "
            f"complete {'yes' if row['complete'] else 'no'}, socket-thread waits "
            f"{row['handover_waits']:.0f}, last count {row['last_count_after_close_s']:.2f} s "
            f"after the window closed -> {'held' if ok else 'NOT held'}"
        )
        if not ok:
            failed = True
            if not keep_going:
                break
        elif not failed:  # held, and so was every smaller N
            held = n
    print(f"largest N held: {held} (goal ≥ 150)")
    return {"held": held, "rows": rows}


# -- part 3: memory ---------------------------------------------------------------------------


def part_memory(unique: int) -> dict[str, float]:
    """Peak traced memory of the window state per unique tag (reads arrive in batches)."""
    locations = {("r", a): f"L{a}" for a in range(1, 5)}
    prefix = bytes.fromhex("3034257BF7194E40")
    gc.collect()
    tracemalloc.start()
    aggregator = WindowAggregator(locations, min_reads=2)
    for start in range(0, unique, 1000):
        batch = []
        for i in range(start, min(start + 1000, unique)):
            epc = prefix + i.to_bytes(4, "big")
            batch.append(TagRead("r", 1 + i % 4, epc, -50.0, 0.0, 2))
            batch.append(TagRead("r", 1 + (i + 1) % 4, epc, -65.0, 0.0, 1))
        aggregator.add(batch)
    state_now, state_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    tally = aggregator.tally(EpcDecoder())
    _, tally_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sum(t.total for t in tally.values()) == unique
    per_tag = state_peak / unique
    print(
        f"{unique:,} unique tags (each heard at 2 locations): window state "
        f"{state_now / unique:.0f} B/tag, peak while reading {per_tag:.0f} B/tag, "
        f"peak while counting {tally_peak / unique:.0f} B/tag (goal ≤ 300)"
    )
    return {
        "state_bytes_per_tag": state_now / unique,
        "peak_bytes_per_tag": per_tag,
        "count_peak_bytes_per_tag": tally_peak / unique,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="decode,readers,memory")
    parser.add_argument("--reports", type=int, default=3000, help="reports in the decode stream")
    parser.add_argument("--tags-per-report", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60.0, help="readers part window (s)")
    parser.add_argument("--readers", default="50,100,150", help="N values (smallest first)")
    parser.add_argument("--unique", type=int, default=1_000_000)
    parser.add_argument(
        "--overflow", choices=["block", "drop"], default="block", help="full read queue"
    )
    parser.add_argument("--queue-size", type=int, default=1000, help="read queue bound")
    parser.add_argument("--keep-going", action="store_true", help="try every N")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    parts = args.parts.split(",")
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        if "decode" in parts:
            print("== decode: sllurp alone vs end to end, same byte stream")
            figures["decode"] = part_decode(work, args.reports, args.tags_per_report)
        if "readers" in parts:
            print(f"== readers: N x 1,000 reads/s for {args.duration:.0f} s into Mosquitto")
            counts = sorted(int(n) for n in args.readers.split(","))
            figures["readers"] = part_readers(
                work, args.duration, counts, args.overflow, args.queue_size, args.keep_going
            )
        if "memory" in parts:
            print("== memory: window state at many unique tags")
            figures["memory"] = part_memory(args.unique)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
