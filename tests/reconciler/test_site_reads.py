"""A centre's batched ingest (one transaction, cross-schema reads, array inserts on PostgreSQL)
decides exactly as one site's store does on its own (SQLite, a statement per query)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edgecount import contract
from reconciler.engine import Engine
from reconciler.ingest import BatchAttempt, handle_sites
from reconciler.model import AbcClass, BookLine, Movement
from reconciler.rules import TolerancePolicy
from reconciler.site_reads import SiteReads, read_many
from reconciler.store import EnginePool, Store, open_store
from tests.pgdb import fresh_database

SITES = ["north", "south", "east"]
SNAPSHOT = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
SKUS = ["80614141123458", "80614141123465"]


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database("sitereads") as url:
        yield url


def prepare(stores: dict[str, Store]) -> None:
    """Each site a book of its own, and movements after the snapshot at some locations."""
    for n, (site, store) in enumerate(stores.items()):
        book = [
            BookLine(f"L-{i:02d}", sku, 10 + n + i, 2.5, AbcClass.A if i % 2 else AbcClass.C)
            for i in range(6)
            for sku in SKUS[: 1 + i % 2]
        ]
        store.replace_book(book, source="t", at=SNAPSHOT)
        moved = SNAPSHOT + timedelta(hours=1)
        store.add_movements(
            [
                Movement(moved, "L-01", SKUS[0], -2, "u", f"doc-{site}", None),
                Movement(moved, "L-00", SKUS[1], 4, "u", f"doc2-{site}", None),
            ]
        )


def counts(site: str, round_: int) -> list[tuple[str, bytes]]:
    """A round of counts at every location; some differ from the book."""
    out = []
    for i in range(6):
        qty = 10 + SITES.index(site) + i + (3 if i in (2, 4) and round_ < 2 else 0)
        if i == 1:
            qty -= 2  # the movement was booked: the count matches the book as moved
        items = [{"sku": SKUS[0], "qty": qty}]
        if i == 0:  # a SKU booked in by a movement (its class from another location's book)
            items.append({"sku": SKUS[1], "qty": 4})
        if i % 2:  # the second SKU the odd locations' books hold
            items.append({"sku": SKUS[1], "qty": 10 + SITES.index(site) + i})
        draft = contract.count_payload(
            gateway="gw-1", site=site, zone="A", location=f"L-{i:02d}",
            scan_id=f"scan-{round_}", items=items, complete=i != 5,
            observed_at=SNAPSHOT + timedelta(hours=4 + round_),
        )  # fmt: skip
        body = contract.encode(contract.with_sequence(draft, round_ * 10 + i + 1))
        out.append((contract.count_topic(site, "A", f"L-{i:02d}"), body))
    return out


def interleaved(round_: int) -> list[tuple[str, bytes]]:
    per_site = [counts(site, round_) for site in SITES]
    batch = [message for group in zip(*per_site, strict=True) for message in group]
    return batch + batch[:3]  # three redelivered within the batch


def outcome_view(
    engines: dict[str, Engine], batch: list[tuple[str, bytes]]
) -> tuple[int, int, list[int], list[tuple[str, str]]]:
    outcome = handle_sites(engines, batch, BatchAttempt(), rejected_by="test")
    out = sorted((m.topic, type(m.message).__name__) for m in outcome.out)
    return outcome.applied, outcome.duplicates, sorted(outcome.letters), out


def discrepancy_view(engine: Engine) -> list[tuple[object, ...]]:
    return sorted(
        (d["location"], d["state"], d["recounts"], str(d["lines"]))
        for d in engine.list_discrepancies(open_only=False)
    )


def test_a_centre_batch_decides_as_each_site_on_its_own(database: str, tmp_path: Path) -> None:
    pool = EnginePool()
    centre = {site: open_store(database, schema=site, pool=pool) for site in SITES}
    alone = {site: open_store(f"sqlite:///{tmp_path / f'{site}.db'}") for site in SITES}
    for stores in (centre, alone):
        prepare(stores)
    engines = {
        "centre": {site: Engine(store, site, TolerancePolicy()) for site, store in centre.items()},
        "alone": {site: Engine(store, site, TolerancePolicy()) for site, store in alone.items()},
    }
    try:
        for round_ in range(3):  # open, recount, resolve
            batch = interleaved(round_)
            seen = {name: outcome_view(group, batch) for name, group in engines.items()}
            assert seen["centre"] == seen["alone"]
            applied, duplicates, letters, out = seen["centre"]
            assert (applied, duplicates, letters) == (18, 3, [])
            if round_ == 0:  # L-02 and L-04 of each site differ: a discrepancy, a recount each
                assert len(out) == 12
        for site in SITES:
            centre_view = discrepancy_view(engines["centre"][site])
            assert centre_view == discrepancy_view(engines["alone"][site])
            assert {row[0] for row in centre_view} == {"L-02", "L-04"}
            assert all(row[1] == "resolved" for row in centre_view)
        # the reads themselves, side by side: every site of the database in one go, or alone
        locations = {f"L-{i:02d}" for i in range(7)}
        with centre["north"].engine.connect() as conn:
            many = read_many(conn, dict.fromkeys(SITES, locations))
        for site, store in centre.items():
            with store.engine.connect() as conn:
                one = SiteReads.read(conn, locations)
            assert many[site] == one
            assert one.ledger.moves  # movements after the snapshot
            assert one.ledger.known  # a SKU moved in, its class from another location
    finally:
        for store in [*centre.values(), *alone.values()]:
            store.close()
        pool.close()
