"""Child processes for tests that kill -9 a gateway. Not a test module.

Usage:
    python child.py outbox DB GATEWAY SITE COUNT
        put COUNT counts into the outbox, printing each seq once put() returned.
    python child.py batches DB GATEWAY SITE SIZE
        put batches of SIZE counts into the outbox until killed, printing the first and last
        seq of each batch once put_many() returned.
    python child.py gateway HOST PORT PROTOCOL SITE GATEWAY STATE_DIR
        run an MqttPublisher, print "up" once connected, then wait to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from edgecount import contract
from edgecount.mqtt import MqttSettings
from gateway.mqtt_publisher import MqttPublisher
from gateway.outbox import Enqueued, Outbox, Put


def count_draft(gateway: str, site: str, n: int) -> contract.CountDraft:
    return contract.count_draft(
        gateway=gateway,
        site=site,
        zone="z",
        location=f"L{n}",
        scan_id="s1",
        items=[contract.CountItem(sku="80614141123458", qty=n)],
    )


def fill_outbox(db: str, gateway: str, site: str, count: int) -> None:
    with Outbox(db, gateway_id=gateway) as outbox:
        for n in range(count):
            enqueued = outbox.put(
                contract.count_topic(site, "z", f"L{n}"), count_draft(gateway, site, n), True
            )
            print(enqueued.seq, flush=True)


def fill_batches(db: str, gateway: str, site: str, size: int) -> None:
    with Outbox(db, gateway_id=gateway) as outbox:
        n = 0
        while True:
            batch = [
                Put(contract.count_topic(site, "z", f"L{i}"), count_draft(gateway, site, i), True)
                for i in range(n, n + size)
            ]
            n += size
            outcomes = outbox.put_many(batch)
            stored = [outcome for outcome in outcomes if isinstance(outcome, Enqueued)]
            if len(stored) != size:
                sys.exit(f"batch rejected: {outcomes}")
            print(stored[0].seq, stored[-1].seq, flush=True)


async def run_gateway(
    host: str, port: int, protocol: str, site: str, gateway: str, state: str
) -> None:
    settings = MqttSettings(host=host, port=port, protocol="5" if protocol == "5" else "3.1.1")
    with Outbox(Path(state) / "outbox.sqlite3", gateway_id=gateway) as outbox:
        publisher = MqttPublisher(settings, outbox, site=site)
        await publisher.start()
        if not await publisher.wait_connected(10):
            sys.exit("not connected")
        print("up", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    if argv[0] == "outbox":
        fill_outbox(argv[1], argv[2], argv[3], int(argv[4]))
    elif argv[0] == "batches":
        fill_batches(argv[1], argv[2], argv[3], int(argv[4]))
    elif argv[0] == "gateway":
        asyncio.run(run_gateway(argv[1], int(argv[2]), argv[3], argv[4], argv[5], argv[6]))
    else:
        sys.exit(f"unknown child {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
