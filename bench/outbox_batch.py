"""The counts of a window's close, stored one by one or as one batch (issue 12, point 7).

At the close of a 150-reader scan the gateway has 600 location counts to publish. Each goes
into the SQLite outbox before it may leave, and the outbox commits with ``synchronous =
FULL``: one fsync per transaction. This measures, on a real outbox file in a fresh directory
(``--dir``, default the system's temporary directory: put it on the disk the gateway uses), the
time from the first count handed over until all are committed:

* ``one by one``: ``CountSink.publish_count`` per count, as the sink did before batches (one
  transaction, one fsync, one hop to the outbox's thread per count);
* ``batch``: ``CountSink.publish_counts`` with all of them (``Publisher.publish_many``: one
  transaction, one fsync, one hop).

Both go through :class:`gateway.mqtt_publisher.MqttPublisher`, not started: no broker, so the
figure is the outbox's alone. The two are run in turn ``--repeat`` times (alternating, on a
shared machine); medians and bests are printed with their ratio.

Run: ``.venv/bin/python bench/outbox_batch.py [--counts 600] [--repeat 5] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from edgecount.mqtt import MqttSettings
from gateway.config import GatewayConfig
from gateway.counts import LocationCount
from gateway.mqtt_publisher import MqttPublisher
from gateway.outbox import Outbox
from gateway.sink import CountSink

SKUS = ("00614141123452", "80614141123458", "00012345600012", "04012345000009")
ANTENNAS = 4  # per reader, one location each, as in bench/rfid_throughput.py


def config_for(counts: int, state: Path) -> GatewayConfig:
    """A gateway with ``counts / 4`` readers of 4 antennas: one location per antenna."""
    readers = -(-counts // ANTENNAS)
    return GatewayConfig.model_validate(
        {
            "site": "bench",
            "gateway_id": "bench",
            "state_dir": str(state),
            "readers": [
                {
                    "type": "llrp",
                    "name": f"r{i}",
                    "host": "127.0.0.1",
                    "antennas": {a: f"r{i}-L{a}" for a in range(1, ANTENNAS + 1)},
                }
                for i in range(readers)
            ],
            "zones": {"all": {"readers": [f"r{i}" for i in range(readers)]}},
        }
    )


def location_counts(config: GatewayConfig, counts: int) -> list[LocationCount]:
    """What a tally hands over: a few SKUs per location, about 250 items each."""
    locations = config.zone_locations("all")[:counts]
    return [
        LocationCount(location, skus={sku: 40 + (n + i) % 50 for i, sku in enumerate(SKUS)})
        for n, location in enumerate(locations)
    ]


Publish = Callable[[CountSink, list[LocationCount], datetime], Awaitable[None]]


async def one_by_one(sink: CountSink, counts: list[LocationCount], observed: datetime) -> None:
    for count in counts:
        await sink.publish_count(count, observed)


async def as_batch(sink: CountSink, counts: list[LocationCount], observed: datetime) -> None:
    await sink.publish_counts(counts, observed)


async def stored_in(publish: Publish, counts: int, where: Path) -> float:
    """Seconds until ``counts`` counts are committed to a fresh outbox under ``where``."""
    with tempfile.TemporaryDirectory(dir=where) as temp:
        config = config_for(counts, Path(temp))
        outbox = Outbox(Path(temp) / "outbox.sqlite3", gateway_id=config.gateway_id)
        publisher = MqttPublisher(MqttSettings(), outbox, site=config.site)
        sink = CountSink(config, "all", publisher)
        sink.begin("bench.all.1", None)
        made = location_counts(config, counts)
        try:
            started = time.perf_counter()
            await publish(sink, made, datetime.now(UTC))
            elapsed = time.perf_counter() - started
            assert outbox.depth == counts, f"{outbox.depth} stored, not {counts}"
        finally:
            await publisher.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"one by one": [], "batch": []}
    for _ in range(args.repeat):
        times["one by one"].append(asyncio.run(stored_in(one_by_one, args.counts, args.dir)))
        times["batch"].append(asyncio.run(stored_in(as_batch, args.counts, args.dir)))
    print(f"{args.counts} counts into an outbox on disk ({args.dir}), {args.repeat} runs each:")
    for name, runs in times.items():
        print(
            f"  {name:<10}  median {statistics.median(runs) * 1000:8.1f} ms, "
            f"best {min(runs) * 1000:8.1f} ms, "
            f"per count {statistics.median(runs) / args.counts * 1e6:7.0f} µs"
        )
    ratio = statistics.median(times["one by one"]) / statistics.median(times["batch"])
    print(f"  ratio (medians): one by one takes {ratio:.1f}x as long as the batch")
    if args.json:
        figures = {"counts": args.counts, "times_s": times, "ratio_medians": ratio}
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
