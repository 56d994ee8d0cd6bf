"""A warehouse digital twin: locations, SKUs, item-level truth, an erroneous book, movements.

:func:`generate` builds a :class:`Twin` from a :class:`TwinSpec`; it is pure and seeded (the
same spec gives the same twin). The twin knows the *truth* (which SGTIN-96 tags sit at each
storage location), the *book* the WMS believes (the truth with injected errors) and the list
of those errors, so benchmarks can score a count against the real discrepancies.

Defaults of :class:`TwinSpec`:

* ``site="wh1"``; 4 zones (``Z1``..``Z4``) x 5 aisles x 20 bays x 5 levels = 2,000 locations,
  named ``{zone}-{aisle:02d}-{bay:02d}-{level}`` (e.g. ``Z1-03-12-2``; valid MQTT topic
  segments: no ``/``, ``+`` or ``#``).
* 400 SKUs: GTIN-14 of company prefix 0614141 (like :mod:`simulators.shelf`), indicator
  digit 1, unique 5-digit item references drawn at random, GS1 check digit computed.
  ABC shares A 20 %, B 30 %, C 50 %; unit costs drawn uniformly (2 decimals) from
  A 80-400, B 15-80, C 1-15.
* Every location holds one SKU, two with probability ``two_sku_share=0.3``; each
  (location, SKU) record holds 1-24 items (``qty_min``, ``qty_max``, uniform). Each item is one
  SGTIN-96 tag (filter 1, partition 5) with a serial unique in the twin (1, 2, 3, ...).
* Book errors on ``error_rate=0.03`` of the truth records at the book snapshot (error
  *events* ÷ truth records, rounded), four kinds in equal shares (shuffled):

  - ``miscount``: the book quantity is off by ±1..5 (never below 1);
  - ``misplaced``: the stock is booked at the neighbouring location (bay ± 1, else level
    ± 1, else aisle ± 1; at random within that tier) instead: two error entries,
    ``(L, sku, book 0, true q)`` and ``(N, sku, book q, true 0)``, with the same ``event``;
  - ``missing``: a phantom record: the book has ``(L, sku, q)``, the shelf has none;
  - ``unexpected``: the shelf has a record the book lacks (book 0, true q).

  Every error touches its own (location, SKU) keys; setting the book quantity of each entry
  to its ``true_qty`` (removing the record at 0) turns the book into the truth exactly.
* ``movements=24`` movements after the book snapshot (``book_at=2026-01-05T06:00:00Z``),
  about 7 minutes apart: receipts (40 %, +1..12 items, new tags; user ``receiving``, doc
  ``GR-000001``...) and picks (-1..5 items, never emptying a record; user ``picker-N``, doc
  ``PK-000001``...). They touch only error-free records and apply to the truth and the book
  alike, so the reconciler's book as of now (snapshot + movements) differs from the shelf
  exactly by the injected errors. :attr:`Twin.truth` is the shelf *after* the movements.
* ``seed=0``.

Files: :func:`write_book_csv` writes the reconciler's book import
(``location,sku,qty,unit_cost,abc``, the snapshot); :func:`write_movements_csv` writes its
movement log (``movement_id,ts,location,sku,qty_delta,user,doc``; ISO-8601 UTC times); see
:mod:`reconciler.book_import` and :mod:`reconciler.movement_import`. :func:`write_errors_csv`
writes the injected errors (``event,kind,location,sku,book_qty,true_qty``), the answer key of
benchmarks.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from simulators.scene import ReaderSpec, Scene, TagSpec
from simulators.twin_book import (
    ERROR_KINDS,
    BookRecord,
    InjectedError,
    TwinMovement,
    book_records,
    inject_errors,
    make_movements,
    write_book_csv,
    write_errors_csv,
    write_movements_csv,
)

__all__ = [
    "ERROR_KINDS",
    "BookRecord",
    "InjectedError",
    "Sku",
    "Twin",
    "TwinMovement",
    "TwinSpec",
    "generate",
    "gtin_check_digit",
    "sgtin96",
    "write_book_csv",
    "write_errors_csv",
    "write_movements_csv",
]

COMPANY_PREFIX = "0614141"
INDICATOR = "1"
_SERIAL_BITS = 38
_MAX_SERIAL = (1 << _SERIAL_BITS) - 1
_COSTS = {"A": (80.0, 400.0), "B": (15.0, 80.0), "C": (1.0, 15.0)}
_MAX_ANTENNAS = 32


@dataclass(frozen=True)
class TwinSpec:
    """What warehouse to generate (see the module docstring for every default).

    Attributes:
        site: Site name (MQTT topic segment).
        zones: Number of zones, named ``Z1``, ``Z2``, ...
        aisles_per_zone: Aisles in each zone.
        bays_per_aisle: Bays along each aisle.
        levels_per_bay: Shelf levels in each bay.
        skus: Number of SKUs (1-99,999).
        abc_shares: Shares of A and B SKUs (C takes the rest).
        two_sku_share: Probability that a location holds two SKUs instead of one.
        qty_min: Fewest items of one SKU at one location.
        qty_max: Most items of one SKU at one location.
        error_rate: Book error events per truth record (0-0.5).
        movements: Movements in the log after the book snapshot.
        book_at: When the book snapshot was taken (aware UTC).
        seed: Seed of everything random.
    """

    site: str = "wh1"
    zones: int = 4
    aisles_per_zone: int = 5
    bays_per_aisle: int = 20
    levels_per_bay: int = 5
    skus: int = 400
    abc_shares: tuple[float, float] = (0.2, 0.3)
    two_sku_share: float = 0.3
    qty_min: int = 1
    qty_max: int = 24
    error_rate: float = 0.03
    movements: int = 24
    book_at: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 6, 0, tzinfo=UTC))
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject specs that cannot be generated."""
        dims = (self.zones, self.aisles_per_zone, self.bays_per_aisle, self.levels_per_bay)
        if min(dims) < 1 or self.aisles_per_zone > 99 or self.bays_per_aisle > 99:
            raise ValueError("zones, aisles, bays and levels must be >= 1 (aisles, bays <= 99)")
        if not 1 <= self.skus <= 99_999:
            raise ValueError("skus must be 1..99,999")
        if not 1 <= self.qty_min <= self.qty_max:
            raise ValueError("need 1 <= qty_min <= qty_max")
        if not 0.0 <= self.error_rate <= 0.5 or not 0.0 <= self.two_sku_share <= 1.0:
            raise ValueError("error_rate must be 0..0.5 and two_sku_share 0..1")
        if min(self.abc_shares) < 0 or sum(self.abc_shares) > 1 or self.movements < 0:
            raise ValueError("abc_shares must be >= 0 summing to <= 1; movements >= 0")
        if any(c in self.site for c in "/+#") or not self.site:
            raise ValueError("site must be a non-empty MQTT topic segment")

    @property
    def n_locations(self) -> int:
        """How many storage locations the spec makes."""
        return self.zones * self.aisles_per_zone * self.bays_per_aisle * self.levels_per_bay


@dataclass(frozen=True, slots=True)
class Sku:
    """One SKU: its GTIN-14, ABC class, unit cost and SGTIN-96 item reference field."""

    gtin: str
    abc: str
    unit_cost: float
    item_reference: int


def gtin_check_digit(body: str) -> int:
    """The GS1 check digit of a GTIN body (all digits but the last).

    Args:
        body: 7, 11, 12 or 13 digits.

    Returns:
        The digit that completes a valid GTIN.
    """
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def sgtin96(item_reference: int, serial: int, *, company: str = COMPANY_PREFIX) -> str:
    """The SGTIN-96 EPC (filter 1, partition 5: 7-digit company prefix) as 24 hex digits.

    Args:
        item_reference: Indicator digit and item reference as one 6-digit number.
        serial: Serial number (0 to 2^38 - 1).
        company: The 7-digit GS1 company prefix.
    """
    if not 0 <= serial <= _MAX_SERIAL or not 0 <= item_reference < 1_000_000:
        raise ValueError("serial or item reference out of range")
    value = (0x30 << 88) | (1 << 85) | (5 << 82) | (int(company) << 58)
    return f"{value | (item_reference << _SERIAL_BITS) | serial:024x}"


def _neighbours(location: str, spec: TwinSpec) -> list[list[str]]:
    """Neighbouring locations in tiers, nearest first: same shelf level (bay ± 1), same bay
    (level ± 1), facing aisle (aisle ± 1)."""
    zone, *numbers = location.split("-")
    aisle, bay, level = (int(n) for n in numbers)
    tiers = (
        ((aisle, bay - 1, level), (aisle, bay + 1, level)),
        ((aisle, bay, level - 1), (aisle, bay, level + 1)),
        ((aisle - 1, bay, level), (aisle + 1, bay, level)),
    )
    limits = (spec.aisles_per_zone, spec.bays_per_aisle, spec.levels_per_bay)
    return [
        [
            f"{zone}-{a:02d}-{b:02d}-{lv}"
            for a, b, lv in tier
            if all(1 <= x <= top for x, top in zip((a, b, lv), limits, strict=True))
        ]
        for tier in tiers
    ]


@dataclass(frozen=True)
class Twin:
    """A generated warehouse: truth, book snapshot, injected errors and movements.

    Attributes:
        spec: What it was generated from.
        locations: All location names, in zone/aisle/bay/level order.
        skus: SKUs by GTIN-14.
        truth: EPCs (24 lower-case hex digits) on the shelf at each location now (after the
            movements); every location is present.
        book: The book snapshot at ``spec.book_at``, sorted by (location, SKU).
        errors: The injected errors (the true discrepancies of the book snapshot).
        movements: The movement log after the snapshot, in time order.
    """

    spec: TwinSpec
    locations: tuple[str, ...]
    skus: Mapping[str, Sku]
    truth: Mapping[str, tuple[str, ...]]
    book: tuple[BookRecord, ...]
    errors: tuple[InjectedError, ...]
    movements: tuple[TwinMovement, ...]

    @property
    def zones(self) -> tuple[str, ...]:
        """Zone names."""
        return tuple(f"Z{z}" for z in range(1, self.spec.zones + 1))

    def sku_of(self, epc: str) -> str:
        """The GTIN-14 of one of the twin's EPCs (hex)."""
        field_ = (int(epc, 16) >> _SERIAL_BITS) & ((1 << 20) - 1)
        return _gtin(field_)

    def truth_counts(self) -> dict[str, dict[str, int]]:
        """What is on the shelf now: location → GTIN → quantity (empty locations included)."""
        counts: dict[str, dict[str, int]] = {}
        for location, epcs in self.truth.items():
            per: dict[str, int] = {}
            for epc in epcs:
                gtin = self.sku_of(epc)
                per[gtin] = per.get(gtin, 0) + 1
            counts[location] = per
        return counts

    def book_counts(self, *, after_movements: bool = True) -> dict[str, dict[str, int]]:
        """The book: location → GTIN → quantity, as of now or of the snapshot.

        Args:
            after_movements: Add the movement log to the snapshot (the book as of now).
        """
        counts: dict[str, dict[str, int]] = {}
        for line in self.book:
            counts.setdefault(line.location, {})[line.sku] = line.qty
        if after_movements:
            for move in self.movements:
                per = counts.setdefault(move.location, {})
                per[move.sku] = per.get(move.sku, 0) + move.qty_delta
        return counts

    def scene_for(
        self,
        zone: str,
        locations: Sequence[str],
        *,
        read_prob: float = 0.98,
        stray_drop_db: float = 15.0,
        rounds_per_second: float = 10.0,
        seed: int | None = None,
    ) -> Scene:
        """A scene for one LLRP reader covering a small group of locations of one zone.

        Antenna ``i`` (1-based) covers ``locations[i - 1]``; each tag is read there at -62 to
        -45 dBm and also heard ``stray_drop_db`` weaker by antennas ``i - 1`` and ``i + 1``
        (stray reads from the next shelf), like :func:`simulators.shelf.shelf_scene`.

        Args:
            zone: The zone the locations belong to.
            locations: 1 to 32 distinct locations of that zone.
            read_prob: Probability that one round reads a tag (own and stray sightings).
            stray_drop_db: How much weaker the neighbouring antennas hear a tag.
            rounds_per_second: Inventory rounds per second per antenna.
            seed: Seed of RSSI levels and of the reads (default: the spec's seed).

        Raises:
            ValueError: The group is empty, too large, repeats or leaves the zone.
        """
        if not 1 <= len(locations) <= _MAX_ANTENNAS or len(set(locations)) != len(locations):
            raise ValueError(f"need 1-{_MAX_ANTENNAS} distinct locations")
        strangers = [loc for loc in locations if loc not in self.truth or loc.split("-")[0] != zone]
        if strangers:
            raise ValueError(f"not locations of zone {zone!r}: {', '.join(strangers)}")
        seed = self.spec.seed if seed is None else seed
        rng = random.Random(seed)  # noqa: S311 - simulation, not cryptography
        tags: list[TagSpec] = []
        count = len(locations)
        for antenna, location in enumerate(locations, start=1):
            for epc in self.truth[location]:
                rssi = rng.uniform(-62.0, -45.0)
                tags.append(TagSpec(epc=epc, antenna=antenna, rssi=rssi, read_prob=read_prob))
                tags.extend(
                    TagSpec(epc=epc, antenna=n, rssi=rssi - stray_drop_db, read_prob=read_prob)
                    for n in (antenna - 1, antenna + 1)
                    if 1 <= n <= count
                )
        reader = ReaderSpec(
            name=f"{self.spec.site}-{zone}-reader",
            antennas=count,
            rounds_per_second=rounds_per_second,
        )
        return Scene(
            description=f"twin {self.spec.site} {zone}", reader=reader, seed=seed, tags=tags
        )


def _gtin(item_field: int) -> str:
    digits = f"{item_field:06d}"
    body = digits[0] + COMPANY_PREFIX + digits[1:]
    return body + str(gtin_check_digit(body))


def _make_skus(spec: TwinSpec, rng: random.Random) -> dict[str, Sku]:
    refs = rng.sample(range(100_000), spec.skus)
    n_a = round(spec.skus * spec.abc_shares[0])
    n_b = min(round(spec.skus * spec.abc_shares[1]), spec.skus - n_a)
    skus: dict[str, Sku] = {}
    for index, ref in enumerate(refs):
        abc = "A" if index < n_a else "B" if index < n_a + n_b else "C"
        low, high = _COSTS[abc]
        item_field = int(INDICATOR + f"{ref:05d}")
        gtin = _gtin(item_field)
        skus[gtin] = Sku(gtin, abc, round(rng.uniform(low, high), 2), item_field)
    return skus


def _locations(spec: TwinSpec) -> tuple[str, ...]:
    return tuple(
        f"Z{z}-{a:02d}-{b:02d}-{lv}"
        for z in range(1, spec.zones + 1)
        for a in range(1, spec.aisles_per_zone + 1)
        for b in range(1, spec.bays_per_aisle + 1)
        for lv in range(1, spec.levels_per_bay + 1)
    )


class _Serials:
    def __init__(self) -> None:
        self.next = 1

    def take(self, n: int) -> Iterator[int]:
        start = self.next
        self.next += n
        return iter(range(start, start + n))


def _stock(
    spec: TwinSpec,
    locations: Sequence[str],
    skus: Mapping[str, Sku],
    serials: _Serials,
    rng: random.Random,
) -> dict[str, dict[str, list[str]]]:
    gtins = list(skus)
    stock: dict[str, dict[str, list[str]]] = {}
    for location in locations:
        n = 2 if len(gtins) > 1 and rng.random() < spec.two_sku_share else 1
        per: dict[str, list[str]] = {}
        for gtin in rng.sample(gtins, n):
            qty = rng.randint(spec.qty_min, spec.qty_max)
            per[gtin] = [sgtin96(skus[gtin].item_reference, s) for s in serials.take(qty)]
        stock[location] = per
    return stock


def generate(spec: TwinSpec | None = None) -> Twin:
    """Generate the twin of a spec (pure: the same spec always gives the same twin).

    Args:
        spec: What to generate (default: :class:`TwinSpec` ()).

    Returns:
        The twin: truth after the movements, book snapshot, errors and movement log.
    """
    spec = spec or TwinSpec()
    rng = random.Random(spec.seed)  # noqa: S311 - simulation, not cryptography
    locations = _locations(spec)
    skus = _make_skus(spec, rng)
    serials = _Serials()
    stock = _stock(spec, locations, skus, serials, rng)
    snapshot = {(loc, gtin): len(epcs) for loc, per in stock.items() for gtin, epcs in per.items()}
    book, errors = inject_errors(
        snapshot,
        rate=spec.error_rate,
        gtins=list(skus),
        neighbours=lambda location: _neighbours(location, spec),
        qty_range=(spec.qty_min, spec.qty_max),
        rng=rng,
    )
    moves = make_movements(
        stock,
        {(e.location, e.sku) for e in errors},
        count=spec.movements,
        book_at=spec.book_at,
        new_epcs=lambda gtin, n: [sgtin96(skus[gtin].item_reference, s) for s in serials.take(n)],
        rng=rng,
    )
    costs = {gtin: (sku.unit_cost, sku.abc) for gtin, sku in skus.items()}
    return Twin(
        spec=spec,
        locations=locations,
        skus=skus,
        truth={loc: tuple(e for epcs in stock[loc].values() for e in epcs) for loc in locations},
        book=tuple(book_records(book, costs)),
        errors=tuple(errors),
        movements=tuple(moves),
    )
