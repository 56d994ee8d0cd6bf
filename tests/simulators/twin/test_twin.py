"""The warehouse twin: size, determinism, GTINs, EPC decoding, injected errors, CSVs, scenes."""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from epcpy.epc_schemes.sgtin import SGTIN
from epcpy.utils.parsers import hex_to_tag_encodable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.epc import EpcDecoder
from reconciler.book_import import read_book_csv
from reconciler.model import AbcClass
from reconciler.movement_import import read_movements_csv
from reconciler.rules import TolerancePolicy, book_as_of, compare
from simulators.twin import (
    ERROR_KINDS,
    Twin,
    TwinSpec,
    generate,
    gtin_check_digit,
    sgtin96,
    write_book_csv,
    write_errors_csv,
    write_movements_csv,
)

Counts = dict[str, dict[str, int]]


@pytest.fixture(scope="module")
def twin() -> Twin:
    return generate()


def _valid_gtin(gtin: str) -> bool:
    return len(gtin) == 14 and gtin.isdigit() and int(gtin[-1]) == gtin_check_digit(gtin[:-1])


def _fix(book: Counts, twin: Twin) -> Counts:
    """Apply the inverse of every injected error: book quantity := true quantity."""
    fixed = {loc: dict(per) for loc, per in book.items()}
    for error in twin.errors:
        per = fixed.setdefault(error.location, {})
        assert per.get(error.sku, 0) == error.book_qty
        if error.true_qty:
            per[error.sku] = error.true_qty
        else:
            del per[error.sku]
    return {loc: per for loc, per in fixed.items() if per}


def _nonempty(counts: Counts) -> Counts:
    return {loc: per for loc, per in counts.items() if per}


def _snapshot_truth(twin: Twin) -> Counts:
    counts = {loc: dict(per) for loc, per in twin.truth_counts().items()}
    for move in twin.movements:
        counts[move.location][move.sku] -= move.qty_delta
    return _nonempty(counts)


def _check_invariants(twin: Twin) -> None:
    spec = twin.spec
    assert len(twin.locations) == spec.n_locations == len(set(twin.locations))
    assert all(re.fullmatch(r"Z\d+-\d\d-\d\d-\d+", loc) for loc in twin.locations)
    assert all(_valid_gtin(g) and g[1:8] == "0614141" for g in twin.skus)
    epcs = [epc for loc in twin.locations for epc in twin.truth[loc]]
    assert len(epcs) == len(set(epcs))
    for loc, per in twin.truth_counts().items():
        assert 1 <= len(per) <= 2, loc
        assert all(qty >= 1 for qty in per.values())
    keys = [(e.location, e.sku) for e in twin.errors]
    assert len(keys) == len(set(keys)), "errors touch disjoint records"
    assert all(e.kind in ERROR_KINDS and e.book_qty != e.true_qty for e in twin.errors)
    assert _fix(twin.book_counts(after_movements=False), twin) == _snapshot_truth(twin)
    assert _fix(twin.book_counts(), twin) == _nonempty(twin.truth_counts())


def test_default_spec_is_a_real_warehouse(twin: Twin) -> None:
    assert len(twin.locations) >= 2000
    assert len(twin.skus) == 400
    classes = Counter(sku.abc for sku in twin.skus.values())
    assert classes == {"A": 80, "B": 120, "C": 200}
    mean = {
        c: sum(s.unit_cost for s in twin.skus.values() if s.abc == c) / n
        for c, n in classes.items()
    }
    assert mean["A"] > mean["B"] > mean["C"]
    _check_invariants(twin)


def test_generation_is_deterministic_per_seed(twin: Twin) -> None:
    assert generate(TwinSpec()) == twin
    other = generate(TwinSpec(seed=1))
    assert other.truth != twin.truth
    assert other.errors != twin.errors


def test_gtin_check_digits() -> None:
    # Independent truth: the design's test vector and GS1's published example.
    assert gtin_check_digit("8061414112345") == 8
    assert gtin_check_digit("0001234560001") == 2  # GS1 example 00012345600012
    assert sgtin96(812345, 12345).upper() == "3034257BF7194E4000003039"


def test_every_epc_decodes_to_its_gtin(twin: Twin) -> None:
    decoder = EpcDecoder()
    for loc in twin.locations:
        for epc in twin.truth[loc]:
            assert decoder.decode(bytes.fromhex(epc)).sku == twin.sku_of(epc)
    assert decoder.decodes == len({twin.sku_of(e) for epcs in twin.truth.values() for e in epcs})
    # And straight through epcpy, one tag per SKU, with its serial.
    for loc in twin.locations[:50]:
        epc = twin.truth[loc][0]
        tag = hex_to_tag_encodable(epc.upper())
        assert isinstance(tag, SGTIN)
        assert tag.gtin() == twin.sku_of(epc)
        assert tag.gtin() in twin.skus


def test_error_rate_and_kinds(twin: Twin) -> None:
    records = sum(len(per) for per in _snapshot_truth(twin).values())
    events = Counter(e.event for e in twin.errors)
    assert abs(len(events) / records - 0.03) <= 0.005
    kinds = Counter(e.kind for e in twin.errors if events[e.event] == 1 or e.true_qty)
    assert set(kinds) == set(ERROR_KINDS)
    assert max(kinds.values()) - min(kinds.values()) <= 2
    for error in twin.errors:
        if error.kind == "missing":
            assert error.true_qty == 0
            assert error.book_qty > 0
        elif error.kind == "unexpected":
            assert error.book_qty == 0
            assert error.true_qty > 0


def test_misplaced_stock_is_booked_next_door(twin: Twin) -> None:
    pairs: dict[int, list[str]] = {}
    for error in twin.errors:
        if error.kind == "misplaced":
            pairs.setdefault(error.event, []).append(error.location)
    assert pairs
    for shelf, booked in pairs.values():
        a, b = shelf.split("-"), booked.split("-")
        assert a[0] == b[0]
        assert sum(abs(int(x) - int(y)) for x, y in zip(a[1:], b[1:], strict=True)) == 1


def test_book_csv_round_trips_through_the_reconciler(twin: Twin, tmp_path: Path) -> None:
    write_book_csv(twin, tmp_path / "book.csv")
    lines = read_book_csv(tmp_path / "book.csv")
    assert [(x.location, x.sku, int(x.qty)) for x in lines] == [
        (r.location, r.sku, r.qty) for r in twin.book
    ]
    for line in lines:
        sku = twin.skus[line.sku]
        assert line.unit_cost == sku.unit_cost
        assert line.abc == AbcClass(sku.abc)


def test_movements_csv_gives_the_reconciler_the_book_of_now(twin: Twin, tmp_path: Path) -> None:
    write_book_csv(twin, tmp_path / "book.csv")
    write_movements_csv(twin, tmp_path / "moves.csv")
    moves = read_movements_csv(tmp_path / "moves.csv")
    assert len(moves) == len(twin.movements) == twin.spec.movements
    assert {m.qty_delta > 0 for m in moves} == {True, False}  # receipts and picks
    assert all(m.ts > twin.spec.book_at for m in moves)
    at = max(m.ts for m in moves)
    book = book_as_of(read_book_csv(tmp_path / "book.csv"), twin.spec.book_at, moves, at)
    now: Counts = {}
    for (loc, sku), line in book.items():
        now.setdefault(loc, {})[sku] = int(line.qty)
    assert now == _nonempty(twin.book_counts())


def test_scene_has_the_right_tags_per_antenna(twin: Twin) -> None:
    group = [loc for loc in twin.locations if loc.startswith("Z2-01-")][:6]
    scene = twin.scene_for("Z2", group)
    assert scene.reader.antennas == 6
    per_antenna = Counter(tag.antenna for tag in scene.tags)
    own = [len(twin.truth[loc]) for loc in group]
    for antenna in range(1, 7):
        strays = sum(own[n - 1] for n in (antenna - 1, antenna + 1) if 1 <= n <= 6)
        assert per_antenna[antenna] == own[antenna - 1] + strays
    best = Counter(scene.best_antenna().values())
    assert [best[a] for a in range(1, 7)] == own
    with pytest.raises(ValueError, match="zone"):
        twin.scene_for("Z1", group)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zones=st.integers(1, 2),
    aisles=st.integers(1, 3),
    bays=st.integers(1, 4),
    levels=st.integers(1, 3),
    skus=st.integers(1, 12),
    qty=st.tuples(st.integers(1, 5), st.integers(0, 10)),
    error_rate=st.floats(0.0, 0.5),
    movements=st.integers(0, 10),
    seed=st.integers(0, 2**32),
)
def test_small_specs_hold_the_invariants(
    zones: int,
    aisles: int,
    bays: int,
    levels: int,
    skus: int,
    qty: tuple[int, int],
    error_rate: float,
    movements: int,
    seed: int,
) -> None:
    spec = TwinSpec(
        site="s",
        zones=zones,
        aisles_per_zone=aisles,
        bays_per_aisle=bays,
        levels_per_bay=levels,
        skus=skus,
        qty_min=qty[0],
        qty_max=qty[0] + qty[1],
        error_rate=error_rate,
        movements=movements,
        seed=seed,
    )
    twin = generate(spec)
    _check_invariants(twin)
    assert generate(replace(spec)) == twin


def test_bad_specs_are_rejected() -> None:
    with pytest.raises(ValueError, match="zones"):
        TwinSpec(zones=0)
    with pytest.raises(ValueError, match="site"):
        TwinSpec(site="a/b")


def test_errors_csv_is_the_answer_key(twin: Twin, tmp_path: Path) -> None:
    write_errors_csv(twin, tmp_path / "errors.csv")
    with (tmp_path / "errors.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [
        (
            int(r["event"]),
            r["kind"],
            r["location"],
            r["sku"],
            int(r["book_qty"]),
            int(r["true_qty"]),
        )
        for r in rows
    ] == [(e.event, e.kind, e.location, e.sku, e.book_qty, e.true_qty) for e in twin.errors]


def test_the_reconcilers_discrepancies_are_the_injected_errors(twin: Twin, tmp_path: Path) -> None:
    """A perfect count of the shelf, compared by the reconciler, finds exactly the errors."""
    write_book_csv(twin, tmp_path / "book.csv")
    write_movements_csv(twin, tmp_path / "moves.csv")
    moves = read_movements_csv(tmp_path / "moves.csv")
    at = max(m.ts for m in moves)
    book = book_as_of(read_book_csv(tmp_path / "book.csv"), twin.spec.book_at, moves, at)
    counts = {loc: (dict(per), True) for loc, per in twin.truth_counts().items()}
    rows = compare(book, counts, TolerancePolicy())
    found = {(r.location, r.sku): (r.book_qty, r.counted_qty, r.status) for r in rows if r.diff}
    expected = {(e.location, e.sku): (e.book_qty, e.true_qty, e.kind) for e in twin.errors}
    assert found.keys() == expected.keys()
    for key, (book_qty, counted, status) in found.items():
        assert (book_qty, counted) == expected[key][:2]
        if expected[key][2] == "unexpected":
            assert status == "unexpected"
