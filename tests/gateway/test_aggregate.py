"""Window aggregation: dedup, min_reads smoothing, strongest mean RSSI, aliases, EPC decoding."""

from __future__ import annotations

from drivers.base import TagRead
from gateway.aggregate import WAYS, WindowAggregator
from gateway.epc import UNKNOWN_SKU, EpcDecoder

SGTIN = bytes.fromhex("3034257BF7194E4000003039")  # GTIN 80614141123458, serial 12345
GIAI = bytes.fromhex("3434257BF7194E4000003039")

LOCATIONS = {("r1", 1): "L1", ("r1", 2): "L2", ("r1", 3): "L2", ("r2", 1): "L3"}


def read(epc: bytes, antenna: int, rssi: float, reader: str = "r1", count: int = 1) -> TagRead:
    return TagRead(reader, antenna, epc, rssi, 0.0, count)


def placements(agg: WindowAggregator) -> dict[str, str]:
    return {epc.hex(): where for epc, where in agg.placements()}


def test_dedup_and_min_reads() -> None:
    agg = WindowAggregator(LOCATIONS, min_reads=2)
    once = bytes.fromhex("3034257BF7194E4000000001")
    agg.add([read(SGTIN, 1, -50), read(SGTIN, 1, -51), read(SGTIN, 1, -49), read(once, 1, -40)])
    assert placements(agg) == {SGTIN.hex(): "L1"}
    assert len(agg) == 2
    assert agg.reads == 4


def test_seen_count_counts_as_reads() -> None:
    agg = WindowAggregator(LOCATIONS, min_reads=3)
    agg.add([read(SGTIN, 1, -50, count=3)])
    assert placements(agg) == {SGTIN.hex(): "L1"}


def test_strongest_mean_rssi_wins_not_most_reads() -> None:
    agg = WindowAggregator(LOCATIONS, min_reads=2)
    # five stray reads at L1 averaging -65, two strong reads at L3 averaging -50
    agg.add([read(SGTIN, 1, -65)] * 5)
    agg.add([read(SGTIN, 1, -50, reader="r2"), read(SGTIN, 1, -50, reader="r2")])
    assert placements(agg) == {SGTIN.hex(): "L3"}


def test_aliased_antennas_pool_their_reads() -> None:
    agg = WindowAggregator(LOCATIONS, min_reads=2)
    # antennas 2 and 3 are both L2: their reads pool (mean -56) and beat L1 (-58)
    agg.add([read(SGTIN, 2, -60), read(SGTIN, 3, -52), read(SGTIN, 1, -58), read(SGTIN, 1, -58)])
    assert placements(agg) == {SGTIN.hex(): "L2"}


def test_more_locations_than_inline_ways_overflow_correctly() -> None:
    many = {("r", a): f"L{a}" for a in range(1, WAYS + 4)}
    agg = WindowAggregator(many, min_reads=1)
    for antenna in range(1, WAYS + 4):
        agg.add([read(SGTIN, antenna, -70 + antenna, reader="r")])
    agg.add([read(SGTIN, WAYS + 3, -70 + WAYS + 3, reader="r")])
    assert placements(agg) == {SGTIN.hex(): f"L{WAYS + 3}"}


def test_unmapped_antennas_are_counted_not_placed() -> None:
    agg = WindowAggregator(LOCATIONS, min_reads=1)
    agg.add([read(SGTIN, 4, -40), read(SGTIN, 1, -40, reader="r9")])
    assert placements(agg) == {}
    assert agg.unmapped == 2


def test_tally_groups_by_gtin_and_keeps_unknown_epcs() -> None:
    agg = WindowAggregator(LOCATIONS, min_reads=1)
    second = bytes.fromhex("3034257BF7194E4000003040")
    agg.add([read(SGTIN, 1, -50), read(second, 1, -50), read(GIAI, 1, -50)])
    decoder = EpcDecoder()
    tally = agg.tally(decoder)
    assert set(tally) == {"L1"}
    assert tally["L1"].skus == {"80614141123458": 2, UNKNOWN_SKU: 1}
    assert tally["L1"].unknown_epcs == [GIAI.hex()]
    assert tally["L1"].total == 3
    # two SGTINs of one GTIN cost one epcpy decode
    assert decoder.decodes == 2


def test_decoder_matches_the_design_test_vector() -> None:
    decoded = EpcDecoder().decode(SGTIN)
    assert decoded.sku == "80614141123458"
    assert decoded.scheme == "sgtin"
    assert EpcDecoder().decode(bytes.fromhex("E2801160600002054BF3D9A1")).sku == UNKNOWN_SKU
