"""Mobile counting: SGLN-96 reference tags, item → bay assignment, incremental closing.

The read streams come from a small physical model: a reader moving at ``SPEED`` along a row
of bays ``WIDTH`` wide, ``OFFSET`` away from the shelf face; each bay has a reference tag at
its centre; RSSI = ``A - 20 log10(distance)`` + Gaussian noise; the chance of a read in an
inventory round falls linearly with distance to zero at ``RANGE``. Seeded, so deterministic.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from epcpy.epc_schemes.sgln import SGLN, SGLNFilterValue
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import TagRead
from edgecount.sgln import decode_sgln96, encode_sgln96
from gateway.mobile import MobileAssigner, assign_by_pose

WIDTH = 1.0  # m, bay width
OFFSET = 0.4  # m, reader antenna to the tags, across the aisle
SPEED = 0.5  # m/s
ROUND = 0.05  # s between inventory rounds
RANGE = 1.6  # m, no reads beyond
A = -40.0  # dBm at 1 m
NOISE = 2.0  # dB, RSSI noise (standard deviation)
BAYS = [f"A-01-{n:02d}" for n in range(1, 7)]
MARGIN = 0.15  # m: boundary items this close to a bay edge are still assigned right
COMPANY = "0614141"


def sgtin(item: int, serial: int) -> bytes:
    """An SGTIN-96 EPC (company 0614141, item reference ``item``)."""
    value = (0x30 << 88) | (1 << 85) | (5 << 82) | (614141 << 58) | (item << 38) | serial
    return value.to_bytes(12, "big")


REFS = {encode_sgln96(COMPANY, f"{n:05d}", 0).hex(): bay for n, bay in enumerate(BAYS, 1)}
REF_X = {bytes.fromhex(epc): (BAYS.index(bay) + 0.5) * WIDTH for epc, bay in REFS.items()}


@dataclass
class Run:
    """A synthetic run: batches of reads (one per round), poses, and the true bays."""

    batches: list[list[TagRead]]
    poses: list[tuple[float, float]]
    truth: dict[bytes, str]


def make_items(
    rng: random.Random, margin: float = MARGIN
) -> tuple[dict[bytes, float], dict[bytes, str]]:
    """Items spread over each bay, and a pair at every inner boundary, ``margin`` inside."""
    where: dict[bytes, float] = {}
    truth: dict[bytes, str] = {}
    serial = 0
    for index, bay in enumerate(BAYS):
        spots = [index * WIDTH + rng.uniform(0.1, 0.9) * WIDTH for _ in range(6)]
        if index > 0:
            spots.append(index * WIDTH + margin)
        if index < len(BAYS) - 1:
            spots.append((index + 1) * WIDTH - margin)
        for x in spots:
            serial += 1
            epc = sgtin(100 + index, serial)
            where[epc], truth[epc] = x, bay
    return where, truth


def simulate(seed: int, *, stop_at: float | None = None, margin: float = MARGIN) -> Run:
    """Drive the reader from before the first bay to past the last one."""
    rng = random.Random(seed)
    where, truth = make_items(rng, margin)
    tags = {**where, **REF_X}
    start, end = -RANGE, len(BAYS) * WIDTH + RANGE
    batches: list[list[TagRead]] = []
    poses: list[tuple[float, float]] = []
    t = 1000.0
    x = start
    while x <= end and (stop_at is None or x < stop_at):
        poses.append((t, x))
        batch = []
        for epc, tag_x in tags.items():
            distance = math.hypot(tag_x - x, OFFSET)
            if rng.random() < max(0.0, 1.0 - distance / RANGE):
                rssi = A - 20.0 * math.log10(distance) + rng.gauss(0.0, NOISE)
                batch.append(TagRead("cart", 1, epc, round(rssi, 1), t))
        batches.append(batch)
        t += ROUND
        x += SPEED * ROUND
    return Run(batches, poses, truth)


def run_assigner(run: Run, *, close_every: int = 10) -> tuple[MobileAssigner, dict[str, int]]:
    """Feed a run, closing bays as it goes; returns the assigner and when each bay closed."""
    assigner = MobileAssigner(REFS, bays=BAYS)
    closed_at: dict[str, int] = {}
    for n, batch in enumerate(run.batches):
        assigner.add(batch)
        if n % close_every == 0:
            for bay in assigner.closed_bays(run.poses[n][0]):
                closed_at[bay] = n
    return assigner, closed_at


def expected(truth: dict[bytes, str], bay: str) -> dict[str, int]:
    """GTIN → qty of the true contents of one bay."""
    from gateway.epc import EpcDecoder

    decoder = EpcDecoder()
    skus: dict[str, int] = {}
    for epc, where in truth.items():
        if where == bay:
            sku = decoder.decode(epc).sku
            skus[sku] = skus.get(sku, 0) + 1
    return dict(sorted(skus.items()))


def test_every_item_goes_to_its_true_bay_even_at_the_boundaries() -> None:
    for seed in range(4):
        run = simulate(seed)
        assigner, closed_at = run_assigner(run)
        assert assigner.placements() == run.truth, seed
        counts = assigner.finish()
        assert set(closed_at) == set(BAYS[:-1])  # the last bay is only passed at the end
        for bay in BAYS:
            assert counts[bay].complete
            assert counts[bay].skus == expected(run.truth, bay)
            assert counts[bay].unknown_epcs == []


def test_bays_close_as_the_reader_passes_them() -> None:
    run = simulate(7)
    _, closed_at = run_assigner(run)
    order = sorted(closed_at, key=closed_at.__getitem__)
    assert order == BAYS[:-1]
    # closed soon after the reader is out of range of the next bay's reference tag (the
    # next reference's peak must be known), checked every 10 rounds (0.25 m)
    for bay, n in closed_at.items():
        x = run.poses[n][1]
        next_reference = (BAYS.index(bay) + 1.5) * WIDTH
        assert x < next_reference + RANGE + SPEED * 0.5 + 0.3


def test_a_run_stopped_early_marks_unfinished_bays_incomplete() -> None:
    run = simulate(11, stop_at=3.5 * WIDTH)  # in the middle of the fourth bay
    assigner, closed_at = run_assigner(run)
    counts = assigner.finish(stopped_early=True)
    assert set(counts) == set(BAYS)
    assert closed_at  # something was published as the robot passed
    for bay in BAYS:
        if bay in closed_at:
            assert counts[bay].complete
            assert counts[bay].skus == expected(run.truth, bay)
        else:
            assert not counts[bay].complete
    assert not counts[BAYS[3]].complete
    assert not counts[BAYS[-1]].complete
    assert counts[BAYS[-1]].total == 0  # never reached


def test_bays_whose_reference_was_never_heard_are_incomplete() -> None:
    run = simulate(3)
    assigner = MobileAssigner({k: v for k, v in REFS.items() if v != BAYS[2]}, bays=BAYS)
    for batch in run.batches:
        assigner.add(batch)
    counts = assigner.finish()
    assert not counts[BAYS[2]].complete
    assert all(counts[bay].complete for bay in BAYS if bay != BAYS[2])


def test_pose_based_assignment_gives_the_same_answer() -> None:
    extents = {bay: (i * WIDTH, (i + 1) * WIDTH) for i, bay in enumerate(BAYS)}
    for seed in range(4):
        run = simulate(seed)
        assigner, _ = run_assigner(run)
        by_pose = assign_by_pose(assigner.item_reads(), run.poses, extents)
        assert by_pose == run.truth == assigner.placements(), seed


def test_stray_reads_of_a_far_item_do_not_move_it() -> None:
    run = simulate(5)
    far = next(epc for epc, bay in run.truth.items() if bay == BAYS[0])
    # a reflection: the first bay's item heard faintly while the reader is at the last bays
    for n, batch in enumerate(run.batches):
        x = run.poses[n][1]
        if x > 4.5 * WIDTH and n % 3 == 0:
            batch.append(TagRead("cart", 1, far, -75.0, batch[0].t if batch else run.poses[n][0]))
    assigner, _ = run_assigner(run)
    assert assigner.placements()[far] == BAYS[0]
    assert assigner.finish()[BAYS[0]].skus == expected(run.truth, BAYS[0])


def test_min_reads_and_unknown_epcs() -> None:
    assigner = MobileAssigner(REFS, bays=BAYS[:1], window=0.5, min_reads=2)
    ref = next(iter(REF_X))
    once, odd = sgtin(9, 1), bytes.fromhex("e2801160600002054cc2f5a1")
    reads = [TagRead("cart", 1, ref, -45.0, 10.0 + k * 0.1) for k in range(5)]
    reads += [TagRead("cart", 1, once, -50.0, 10.1), TagRead("cart", 1, odd, -50.0, 10.2)]
    reads.append(TagRead("cart", 1, odd, -52.0, 10.3))
    assigner.add(reads)
    counts = assigner.finish()
    assert counts[BAYS[0]].skus == {"unknown": 1}
    assert counts[BAYS[0]].unknown_epcs == [odd.hex()]


def test_sgln96_known_vector_matches_epcpy_and_the_tds() -> None:
    epc = encode_sgln96(COMPANY, "12345", 400, filter_value=3)
    assert epc.hex().upper() == "3274257BF460720000000190"
    tag = SGLN("urn:epc:id:sgln:0614141.12345.400")
    hex_epcpy = tag.hex(
        binary_coding_scheme=SGLN.BinaryCodingScheme.SGLN_96,
        filter_value=SGLNFilterValue.RESERVED_3,
    )
    assert hex_epcpy == epc.hex().upper()
    decoded = decode_sgln96(epc)
    assert decoded.uri == tag.epc_uri
    assert decoded.gln == tag.gs1_key() == "0614141123452"
    assert decoded.filter_value == 3


@st.composite
def sgln_fields(draw: st.DrawFn) -> tuple[str, str, int, int]:
    prefix_len = draw(st.integers(6, 12))
    digits = draw(st.text("0123456789", min_size=12, max_size=12))
    extension = draw(st.integers(0, (1 << 41) - 1))
    return digits[:prefix_len], digits[prefix_len:], extension, draw(st.integers(0, 7))


@settings(max_examples=150, deadline=None)
@given(sgln_fields())
def test_sgln96_round_trips_and_agrees_with_epcpy(fields: tuple[str, str, int, int]) -> None:
    prefix, reference, extension, filter_value = fields
    epc = encode_sgln96(prefix, reference, extension, filter_value)
    decoded = decode_sgln96(epc)
    assert (decoded.company_prefix, decoded.location_reference) == (prefix, reference)
    assert (decoded.extension, decoded.filter_value) == (extension, filter_value)
    theirs = SGLN.from_hex(epc.hex().upper())
    assert theirs.epc_uri == decoded.uri
    assert theirs.gs1_key() == decoded.gln


def test_decode_rejects_other_epcs() -> None:
    for bad in (sgtin(1, 1), b"\x32" * 3, bytes.fromhex("327C" + "00" * 10)):
        try:
            decode_sgln96(bad)
        except ValueError:
            continue
        raise AssertionError(bad.hex())


def test_boundary_margin_measured_at_ten_centimetres() -> None:
    """The figure the module docstring quotes: at 10 cm from a bay edge, at most 1 in 100."""
    wrong = 0
    for seed in range(100, 110):  # 10 boundary items each
        run = simulate(seed, margin=0.10)
        assigner, _ = run_assigner(run)
        placed = assigner.placements()
        wrong += sum(placed.get(epc) != bay for epc, bay in run.truth.items())
    assert wrong <= 1


def test_a_reference_function_and_antenna_offsets() -> None:
    run = simulate(2)
    by_function = MobileAssigner(lambda epc: REFS.get(epc.hex()), bays=BAYS)
    # a uniform offset on the only antenna changes no decision
    offset = MobileAssigner(REFS, bays=BAYS, rssi_offsets={("cart", 1): -7.5})
    for batch in run.batches:
        by_function.add(batch)
        offset.add(batch)
    assert by_function.placements() == offset.placements() == run.truth
    counts = offset.finish()
    assert sum(count.total for count in counts.values()) == len(run.truth)


def test_an_item_first_heard_after_its_bay_closed_is_reported_late() -> None:
    run = simulate(4)
    assigner, closed_at = run_assigner(run)
    assert BAYS[0] in closed_at
    hidden = sgtin(99, 1)  # heard only now, strongly, next to the first reference tag
    first_ref = next(epc for epc, x in REF_X.items() if x == 0.5 * WIDTH)
    peak = assigner.reference_peaks()[0][0]
    assert assigner.best_bay(first_ref) is None  # a reference tag is no item
    assigner.add([TagRead("cart", 1, hidden, -42.0, peak), TagRead("cart", 1, hidden, -42.0, peak)])
    counts = assigner.finish()
    assert counts[BAYS[0]].skus == expected(run.truth, BAYS[0])  # as published
    assert assigner.late == {hidden: BAYS[0]}
