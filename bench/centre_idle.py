"""What a centre costs while nothing happens: CPU share of one reconcile service serving N sites.

The service (in this process) serves N sites on one fresh PostgreSQL database (a schema per
site, on the shared server 127.0.0.1:5432) and the shared Mosquitto on 127.0.0.1:1883; after
it subscribed it is left idle for ``--seconds`` and the process's CPU time over that wall time
is printed. What it measures is the store publisher's polling of every site's outboxes.

Run: ``.venv/bin/python bench/centre_idle.py [--sites 100] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.pgdb, from a checkout

from edgecount.mqtt import MqttSettings
from reconciler.engine import Engine
from reconciler.rules import TolerancePolicy
from reconciler.service import ReconcileService
from reconciler.store import EnginePool, open_store
from tests.pgdb import fresh_database


async def idle_share(service: ReconcileService, seconds: float) -> float:
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 30)
        await asyncio.sleep(2)  # the first rounds (re-sending open discrepancies) are not idle
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        return (time.process_time() - cpu) / (time.monotonic() - wall)
    finally:
        service.stopping.set()
        await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with fresh_database("centre_idle") as url:
        pool = EnginePool()
        try:
            began = time.monotonic()
            engines = [
                Engine(open_store(url, schema=f"site_{i}", pool=pool), f"s{i}", TolerancePolicy())
                for i in range(args.sites)
            ]
            print(f"{args.sites} schemas migrated in {time.monotonic() - began:.1f} s")
            settings = MqttSettings(host="127.0.0.1", port=1883, client_id="centre-idle-bench")
            service = ReconcileService(
                engines, settings, client_id=settings.client_id, shared_group="centre-idle-bench"
            )
            share = asyncio.run(idle_share(service, args.seconds))
        finally:
            pool.close()
    print(f"idle: {share:.1%} of one core for {args.sites} sites")


if __name__ == "__main__":
    main()
