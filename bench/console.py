"""Console benchmark (issue 14): server time and bytes of the big pages.

Seeds a fresh PostgreSQL database through the real path (book snapshot, then counts through
the engine, which opens the discrepancies): ``--locations`` locations (default 20,000), of
which ``--discrepancies`` (default 5,000) are counted differently from the book and so await
approval. Then asks the console in-process (FastAPI's TestClient, a signed-in token) for
each page ``--rounds`` times and prints the median server time and the bytes. The same pages
at a tenth of the size are measured side by side in the same run, so the ratio shows how the
time grows with the site (the machine's noise mostly cancels in it).

Goals: the map of 20,000 locations in < 1 s of server time; the queue at 5,000 open
discrepancies measured (no goal in the issue beyond being measured).

Run: ``.venv/bin/python bench/console.py [--locations 20000] [--discrepancies 5000]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/reconciler.py would shadow the `reconciler` package: take this folder off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: tests.pgdb

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from edgecount import contract
from reconciler.api import create_app
from reconciler.auth.roles import Role, Scope
from reconciler.auth.users import UserStore
from reconciler.engine import Engine
from reconciler.model import AbcClass, BookLine
from reconciler.rules import TolerancePolicy
from reconciler.store import Store, open_store
from tests.pgdb import fresh_database

SKU = "80614141123458"
PAGES = {
    "tonight": "/console/",
    "map": "/console/map",
    "queue": "/console/discrepancies",
}
BATCH = 1000


def location_name(n: int) -> tuple[str, str]:
    """(zone, location) of the n-th location: 10 zones, 40 aisles a zone, 50 places an aisle."""
    zone = f"Z{n // 2000 + 1}"
    aisle = (n % 2000) // 50 + 1
    return zone, f"{zone}-{aisle:02d}-{n % 50 + 1:02d}"


def seed(store: Store, locations: int, discrepancies: int) -> float:
    """Book, scans and counts of a night; returns the seconds it took."""
    started = time.perf_counter()
    snapshot = datetime.now(UTC) - timedelta(hours=6)
    places = [location_name(n) for n in range(locations)]
    book = [
        BookLine(loc, SKU, 10, 2.5 + n % 7, AbcClass("ABC"[n % 3]))
        for n, (_zone, loc) in enumerate(places)
    ]
    store.replace_book(book, source="bench", at=snapshot)
    engine = Engine(store, "bench", TolerancePolicy(), max_recounts=0)
    wrong = set(range(0, locations, max(1, locations // max(discrepancies, 1)))[:discrepancies])
    observed = datetime.now(UTC) - timedelta(hours=1)
    seq = 0
    for first in range(0, locations, BATCH):
        batch = []
        for n in range(first, min(first + BATCH, locations)):
            zone, loc = places[n]
            seq += 1
            draft = contract.count_payload(
                gateway="gw-1",
                site="bench",
                zone=zone,
                location=loc,
                scan_id=f"night-{zone}",
                items=[{"sku": SKU, "qty": 7 if n in wrong else 10}],
                observed_at=observed,
            )
            batch.append(contract.CountMessage.from_payload(contract.with_sequence(draft, seq)))
        recorded = store.record_counts(batch, datetime.now(UTC))
        engine.on_counts(recorded)
    zones = sorted({zone for zone, _loc in places})
    for zone in zones:
        seq += 1
        draft = contract.scan_payload(
            gateway="gw-1",
            site="bench",
            zone=zone,
            scan_id=f"night-{zone}",
            state="completed",
            started_at=observed - timedelta(minutes=30),
            ended_at=observed,
            locations=[loc for z, loc in places if z == zone],
            readers=[{"name": f"{zone}-reader", "ok": True, "reads": 1000}],
        )
        store.record_scan(
            contract.ScanMessage.from_payload(contract.with_sequence(draft, seq)),
            datetime.now(UTC),
        )
    return time.perf_counter() - started


def measure(client: TestClient, path: str, rounds: int) -> tuple[float, float, int]:
    """Seconds of the first GET of ``path``, the median of ``rounds`` more, the page's bytes.

    The first answer may draw what later ones take from a cache (Tonight's trend chart).
    """
    times = []
    size = 0
    for _ in range(rounds + 1):
        started = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {answer.status_code}: {answer.text[:200]}")
        size = len(answer.content)
    return times[0], statistics.median(times[1:]), size


def run_size(
    locations: int, discrepancies: int, rounds: int, pages: list[str]
) -> dict[str, tuple[float, float, int]]:
    """Seed a database of this size and measure every page."""
    with fresh_database("edgecount_bench_console") as url:
        store = open_store(url)
        try:
            seconds = seed(store, locations, discrepancies)
            print(f"  seeded {locations:,} locations, {discrepancies:,} open in {seconds:.1f} s")
            engine = Engine(store, "bench", TolerancePolicy(), max_recounts=0)
            users = UserStore(store.engine)
            users.add("bench", Role.ADMIN, "bench password 1234", actor="bench")
            _, token = users.create_token("bench", frozenset(Scope), None, actor="bench")
            client = TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"})
            return {name: measure(client, PAGES[name], rounds) for name in pages}
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locations", type=int, default=20_000)
    parser.add_argument("--discrepancies", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--pages", default=",".join(PAGES), help=f"which of {', '.join(PAGES)} (comma-separated)"
    )
    args = parser.parse_args()
    pages = [name for name in args.pages.split(",") if name]
    unknown = sorted(set(pages) - set(PAGES))
    if unknown:
        parser.error(f"unknown pages: {', '.join(unknown)}")
    small = (max(args.locations // 10, 1), max(args.discrepancies // 10, 1))
    print(f"full size: {args.locations:,} locations, {args.discrepancies:,} open discrepancies")
    full = run_size(args.locations, args.discrepancies, args.rounds, pages)
    print(f"a tenth: {small[0]:,} locations, {small[1]:,} open discrepancies")
    tenth = run_size(*small, args.rounds, pages)
    print(
        f"\n{'page':<10} {'first ms':>9} {'median ms':>10} {'KiB':>8} {'tenth ms':>9} {'ratio':>6}"
    )
    for name in pages:
        (first, seconds, size), (_, small_seconds, _) = full[name], tenth[name]
        print(
            f"{name:<10} {first * 1000:>9.0f} {seconds * 1000:>10.0f} {size / 1024:>8.0f}"
            f" {small_seconds * 1000:>9.0f} {seconds / small_seconds:>6.1f}"
        )
    if "map" in full:
        worst = max(full["map"][:2])
        verdict = "met" if worst < 1.0 else "NOT met"
        print(f"\nmap of {args.locations:,} locations in < 1 s: {verdict} ({worst:.2f} s)")


if __name__ == "__main__":
    main()
