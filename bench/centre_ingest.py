"""A centre's ingest alone: how fast one reconciler stores and assesses counts of many sites.

No broker: the batches go straight to :func:`reconciler.ingest.handle_sites`, as the
service's ingest worker hands them over. One fresh PostgreSQL database (the shared server on
127.0.0.1:5432) holds a schema per site, each with a book of ``--locations`` locations that
every count matches (the common night: nothing opens). The counts are interleaved across
the sites, as a centre receives them while every site scans, and handled in batches of each
size of ``--batches``, side by side in one run (same database, the counts' tables emptied
between runs), so the ratios hold on a noisy machine.

Printed per batch size: counts/s (wall), the process's CPU per count, and the ratio to the
first size. The service's batch is at most ``reconciler.service.BATCH`` messages.

Run: ``.venv/bin/python bench/centre_ingest.py [--sites 100] [--locations 200]
[--batches 500,2000] [--repeat 2]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/reconciler.py would shadow the `reconciler` package: take this folder off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.pgdb, from a checkout

import argparse
import time
from datetime import UTC, datetime, timedelta

import psycopg

from edgecount import contract
from reconciler.engine import Engine
from reconciler.ingest import BatchAttempt, handle_sites
from reconciler.model import AbcClass, BookLine
from reconciler.rules import TolerancePolicy
from reconciler.service import BATCH
from reconciler.store import EnginePool, open_store
from tests.pgdb import fresh_database

SKU = "80614141123458"
RUN_TABLES = ("counts", "coverage", "messages")


def location_name(i: int) -> str:
    return f"L-{i:05d}"


def night(sites: list[str], locations: int) -> list[tuple[str, bytes]]:
    """Every site's counts, one per location, interleaved across the sites."""
    observed = datetime.now(UTC) - timedelta(minutes=5)
    out = []
    for i in range(locations):
        for site in sites:
            draft = contract.count_payload(
                gateway=f"gw-{site}", site=site, zone="Z", location=location_name(i),
                scan_id="scan-1", items=[{"sku": SKU, "qty": 10}], observed_at=observed,
            )  # fmt: skip
            body = contract.serialise(contract.with_sequence(draft, i + 1))
            out.append((contract.count_topic(site, "Z", location_name(i)), body))
    return out


def empty(url: str, sites: list[str]) -> None:
    tables = ", ".join(f"{site}.{table}" for site in sites for table in RUN_TABLES)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(f"TRUNCATE {tables}")  # our own names, not input


def run(
    engines: dict[str, Engine], messages: list[tuple[str, bytes]], size: int
) -> tuple[float, float]:
    """Handle every message in batches of ``size``; (counts/s, CPU ms per count)."""
    started, cpu = time.perf_counter(), time.process_time()
    applied = 0
    for first in range(0, len(messages), size):
        outcome = handle_sites(
            engines, messages[first : first + size], BatchAttempt(), rejected_by="bench"
        )
        applied += outcome.applied
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if applied != len(messages):
        raise SystemExit(f"stored {applied} of {len(messages)}")
    return applied / wall, cpu / applied * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--locations", type=int, default=200, help="counts per site")
    parser.add_argument("--batches", default=f"500,{BATCH}", help="batch sizes to compare")
    parser.add_argument("--repeat", type=int, default=2, help="rounds (order alternates)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.batches.split(",")]
    sites = [f"s{n:03d}" for n in range(args.sites)]
    with fresh_database("bench_centre_ingest") as url:
        pool = EnginePool()
        started = time.perf_counter()
        snapshot = datetime.now(UTC) - timedelta(hours=6)
        book = [BookLine(location_name(i), SKU, 10, 2.5, AbcClass.B) for i in range(args.locations)]
        engines = {}
        for site in sites:
            store = open_store(url, schema=site, pool=pool)
            store.replace_book(book, source="bench", at=snapshot)
            engines[site] = Engine(store, site, TolerancePolicy())
        messages = night(sites, args.locations)
        print(
            f"{len(sites)} schemas with books of {args.locations:,}: "
            f"{time.perf_counter() - started:.1f} s; {len(messages):,} counts a run"
        )
        figures: dict[int, list[tuple[float, float]]] = {size: [] for size in sizes}
        try:
            for round_ in range(args.repeat):
                for size in sizes if round_ % 2 == 0 else sizes[::-1]:
                    empty(url, sites)
                    rate, cpu = run(engines, messages, size)
                    figures[size].append((rate, cpu))
                    print(f"round {round_ + 1}: batch {size:>5}: {rate:7.0f} counts/s, "
                          f"{cpu:.3f} ms CPU per count")  # fmt: skip
        finally:
            pool.close()
    base = max(rate for rate, _ in figures[sizes[0]])
    print("\n| batch | counts/s (best) | CPU ms/count (best) | ratio to batch", sizes[0], "|")
    print("|---|---|---|---|")
    for size in sizes:
        rate = max(r for r, _ in figures[size])
        cpu = min(c for _, c in figures[size])
        print(f"| {size:,} | {rate:,.0f} | {cpu:.3f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
