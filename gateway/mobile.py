"""Counting with a moving reader: location reference tags (SGLN-96) or the robot's pose.

A reader on a robot or cart drives along an aisle. Each bay carries a *location reference
tag* (an SGLN-96 EPC); the items on the bay carry SGTIN tags. The reader hears both, and the
gateway assigns each item tag to the bay whose reference tag it was read with most strongly
(design notes, "Counting semantics (RFID)").

The rule, :class:`MobileAssigner`: as the reader passes, every tag's RSSI rises and falls; the
tag was closest to the reader at its *peak time*, the power-weighted mean time of its reads
within ``top_db`` (12 dB) of its strongest read. An item tag goes to the bay whose reference
tag peaked nearest in time to the item's own peak, i.e. the reference it was read with most
strongly in the sliding window around its strongest reads; it needs ``min_reads`` reads to
count at all. With references at the bay centres, bays of equal width and a steady speed
between two references, the decision boundary is the midpoint of the two references: the bay
edge. Weak stray reads (a far item heard by reflection) lie outside ``top_db`` and do not move
the item.

Why not credit each item read to the strongest reference read in ``±W`` (the first draft)?
Counting co-occurrences, even weighted by the product of the two powers, convolves two wide
bell curves (the RSSI of a tag 0.4 m from the antenna falls only 3 dB over ±0.4 m): in the
test model (2 dB RSSI noise, 0.5 m/s, 20 rounds/s) it put 21 of 200 items 10 cm from a bay
edge in the wrong bay; the peak-time rule put 1, and none at 15 cm. Closer than that the
RSSI noise decides: at 3 cm about a quarter go wrong, with the robot's pose too.

Peak times stand in for positions, so the rule assumes a roughly steady speed between two
reference tags: a robot that stops between them biases the items there towards where it
stood. When the robot reports its pose, :func:`assign_by_pose` has no such assumption.

Bays close as the reader passes them (:meth:`MobileAssigner.closed_bays`), so their counts can
be published before the run ends; :meth:`MobileAssigner.finish` gives every bay, and marks the
bays a run stopped early never finished ``complete: false``.

The pose alternative, :func:`assign_by_pose`, puts an item in the bay that held the reader
at the time of its strongest reads (the power-weighted mean position over the reads within
``top_db`` of its strongest one). :class:`PoseAssigner` runs it live from the poses the robot
publishes: a bay closes once the robot has covered its extent and moved ``margin`` metres past
it (in either direction); a bay the poses never covered is ``complete: false``.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from drivers.base import TagRead
from gateway.counts import LocationCount
from gateway.epc import UNKNOWN_SKU, EpcDecoder

ReferenceMap = Mapping[str, str] | Callable[[bytes], str | None]
"""``{epc_hex: location}`` (any case) or a function from a reference tag's EPC to its location."""


def _reference_lookup(references: ReferenceMap) -> Callable[[bytes], str | None]:
    if callable(references):
        return references
    by_bytes = {bytes.fromhex(key): location for key, location in references.items()}
    return by_bytes.get


def peak_time(reads: Sequence[tuple[float, float]], top_db: float = 12.0) -> float:
    """When a tag was closest to the reader: power-weighted mean time of its strongest reads.

    Args:
        reads: (time, RSSI) reads of one tag, at least one.
        top_db: Reads within this many dB of the strongest one count.
    """
    return strongest_mean(reads, lambda t: t, top_db)


def strongest_mean(
    reads: Sequence[tuple[float, float]], value: Callable[[float], float], top_db: float
) -> float:
    """The power-weighted mean of ``value(t)`` over a tag's reads within ``top_db`` of its best.

    Args:
        reads: (time, RSSI) reads of one tag, at least one.
        value: What is averaged, from a read's time (the time itself, the reader's position).
        top_db: Reads within this many dB of the strongest one count.
    """
    best = max(rssi for _, rssi in reads)
    weight_sum = value_sum = 0.0
    for t, rssi in reads:
        if rssi >= best - top_db:
            weight = 10.0 ** ((rssi - best) / 10.0)
            weight_sum += weight
            value_sum += weight * value(t)
    return value_sum / weight_sum


@dataclass(slots=True)
class _Tag:
    """The reads of one tag: (time, RSSI after offsets), and how many singulations."""

    reads: list[tuple[float, float]] = field(default_factory=list)
    count: int = 0
    last_t: float = float("-inf")

    def add(self, t: float, rssi: float, count: int) -> None:
        self.reads.append((t, rssi))
        self.count += count
        self.last_t = max(self.last_t, t)


class MobileAssigner:
    """Assigns the item tags a moving reader hears to bays by their reference tags.

    Feed read batches in time order with :meth:`add`; call :meth:`closed_bays` as time goes on
    to get the bays the reader has passed; :meth:`finish` at the end of the run.

    Args:
        references: Reference tag EPC → bay (mapping of hex strings, or a function).
        bays: Every bay the run should cover; bays never heard are incomplete at the end.
        window: ``W``, seconds: a tag not heard for longer has been passed.
        min_reads: Reads an item tag needs to count.
        top_db: Reads within this many dB of a tag's strongest read locate it.
        decoder: EPC → SKU decoder (a fresh one by default).
        rssi_offsets: ``(reader, antenna) → dB`` added to every read's RSSI (antenna gains).
    """

    def __init__(
        self,
        references: ReferenceMap,
        *,
        bays: Sequence[str] = (),
        window: float = 0.5,
        min_reads: int = 2,
        top_db: float = 12.0,
        decoder: EpcDecoder | None = None,
        rssi_offsets: Mapping[tuple[str, int], float] | None = None,
    ) -> None:
        self._lookup = _reference_lookup(references)
        self.bays = list(bays)
        self.window = window
        self.min_reads = min_reads
        self.top_db = top_db
        self.decoder = decoder or EpcDecoder()
        self._offsets = dict(rssi_offsets or {})
        self._items: dict[bytes, _Tag] = {}
        self._refs: dict[str, _Tag] = {}
        self._decided: dict[bytes, str] = {}
        self._closed: dict[str, LocationCount] = {}
        self.late: dict[bytes, str] = {}
        """Item tags :meth:`finish` found in a bay already closed (and published) without them."""

    def add(self, batch: Iterable[TagRead]) -> None:
        """Account for a batch of reads (reference and item tags mixed), in time order."""
        for read in batch:
            rssi = read.rssi + self._offsets.get((read.reader, read.antenna), 0.0)
            bay = self._lookup(read.epc)
            tags: dict[Any, _Tag] = self._items if bay is None else self._refs
            key = read.epc if bay is None else bay
            tag = tags.get(key)
            if tag is None:
                tag = tags[key] = _Tag()
            tag.add(read.t, rssi, read.count)

    def reference_peaks(self) -> list[tuple[float, str]]:
        """(peak time, bay) of every reference tag heard, in time order."""
        return sorted((peak_time(tag.reads, self.top_db), bay) for bay, tag in self._refs.items())

    def best_bay(self, epc: bytes, peaks: Sequence[tuple[float, str]] | None = None) -> str | None:
        """The bay an item tag belongs to now, or None (too few reads, no reference heard).

        Args:
            epc: The item tag.
            peaks: :meth:`reference_peaks`, when the caller has them already.
        """
        item = self._items.get(epc)
        if item is None or item.count < self.min_reads:
            return None
        peaks = self.reference_peaks() if peaks is None else peaks
        if not peaks:
            return None
        when = peak_time(item.reads, self.top_db)
        return min(peaks, key=lambda peak: abs(peak[0] - when))[1]

    def placements(self) -> dict[bytes, str]:
        """Every counted item tag with its bay (decided ones as they were decided)."""
        peaks = self.reference_peaks()
        out: dict[bytes, str] = {}
        for epc in self._items:
            bay = self._decided.get(epc) or self.best_bay(epc, peaks)
            if bay is not None:
                out[epc] = bay
        return out

    def _passed(self, now: float) -> set[str]:
        """Bays the reader has left behind for good, and whose next bay it has left too."""
        order = sorted(self._refs, key=lambda bay: self._refs[bay].last_t)
        gone = [now - self._refs[bay].last_t > self.window for bay in order]
        return {bay for i, bay in enumerate(order[:-1]) if gone[i] and gone[i + 1]}

    def closed_bays(self, now: float) -> dict[str, LocationCount]:
        """The bays that became final since the last call, with their counts.

        A bay is final once the reader has passed it and the next bay: neither reference tag
        has been heard for more than ``W`` (so both peaks are known), and no undecided item
        tag that currently belongs to the bay has been heard within ``W`` (its peak is known).
        Its items are then decided for good; later (stray) reads do not move them.

        Args:
            now: The current time, on the clock of the reads.
        """
        passed = self._passed(now) - set(self._closed)
        if not passed:
            return {}
        peaks = self.reference_peaks()
        pending: defaultdict[str, list[bytes]] = defaultdict(list)
        blocked: set[str] = set()
        for epc, item in self._items.items():
            if epc in self._decided:
                continue
            bay = self.best_bay(epc, peaks)
            if bay in passed:
                pending[bay].append(epc)
                if now - item.last_t <= self.window:
                    blocked.add(bay)
        out: dict[str, LocationCount] = {}
        for bay in sorted(passed - blocked):
            for epc in pending[bay]:
                self._decided[epc] = bay
            out[bay] = self._closed[bay] = self._count(bay, pending[bay], complete=True)
        return out

    def finish(self, stopped_early: bool = False) -> dict[str, LocationCount]:
        """Counts of every bay at the end of the run.

        Args:
            stopped_early: The run ended before the reader passed every bay. Bays already
                closed stay complete; the others are ``complete: false``.

        Returns:
            Bay → count, for every bay given at construction or heard during the run. A bay
            whose reference tag was never heard is incomplete (it was not scanned). A closed
            bay keeps the count it was published with; items that would have joined it after
            it closed are listed in :attr:`late`.
        """
        by_bay: defaultdict[str, list[bytes]] = defaultdict(list)
        for epc, bay in self.placements().items():
            if bay not in self._closed:
                by_bay[bay].append(epc)
            elif epc not in self._decided:
                self.late[epc] = bay
        out: dict[str, LocationCount] = {}
        for bay in sorted(set(self.bays) | set(self._refs) | set(by_bay)):
            if bay in self._closed:
                out[bay] = self._closed[bay]
                continue
            complete = not stopped_early and self._scanned(bay)
            out[bay] = self._count(bay, by_bay[bay], complete=complete)
        return out

    def _scanned(self, bay: str) -> bool:
        """Whether the reader went past ``bay``: its reference tag was heard."""
        return bay in self._refs

    def _count(self, bay: str, epcs: Iterable[bytes], *, complete: bool) -> LocationCount:
        count = LocationCount(bay, complete=complete)
        skus: defaultdict[str, int] = defaultdict(int)
        for epc in epcs:
            sku = self.decoder.decode(epc).sku
            skus[sku] += 1
            if sku == UNKNOWN_SKU:
                count.unknown_epcs.append(epc.hex())
        count.skus = dict(sorted(skus.items()))
        count.unknown_epcs.sort()
        return count

    def item_reads(self) -> dict[bytes, list[tuple[float, float]]]:
        """Each counted item tag's (time, RSSI after offsets) reads, for :func:`assign_by_pose`."""
        return {
            epc: list(tag.reads) for epc, tag in self._items.items() if tag.count >= self.min_reads
        }


def position_at(poses: Sequence[tuple[float, float]], t: float) -> float:
    """The reader's position at ``t``, linearly interpolated between reported poses.

    Args:
        poses: (time, x) pairs sorted by time, at least one.
        t: The time.
    """
    return _interpolate([pose[0] for pose in poses], poses, t)


def _interpolate(times: Sequence[float], poses: Sequence[tuple[float, float]], t: float) -> float:
    at = bisect.bisect_left(times, t)
    if at == 0:
        return poses[0][1]
    if at == len(poses):
        return poses[-1][1]
    (t0, x0), (t1, x1) = poses[at - 1], poses[at]
    return x0 if t1 == t0 else x0 + (x1 - x0) * (t - t0) / (t1 - t0)


def assign_by_pose(
    reads: Mapping[bytes, Sequence[tuple[float, float]]],
    poses: Sequence[tuple[float, float]],
    extents: Mapping[str, tuple[float, float]],
    *,
    top_db: float = 6.0,
) -> dict[bytes, str]:
    """Assign item tags to bays from the robot's reported pose.

    An item's position is the power-weighted mean of the reader's positions at its reads
    within ``top_db`` of its strongest read; it goes to the bay whose ``[x0, x1)`` extent
    holds that position (items outside every bay are left out).

    Args:
        reads: Item EPC → its (time, RSSI) reads (e.g. :meth:`MobileAssigner.item_reads`).
        poses: The reader's (time, x) poses, sorted by time.
        extents: Bay → (x0, x1) along the aisle.
        top_db: Which reads count as the strongest: within this many dB of the best.
    """
    out: dict[bytes, str] = {}
    times = [pose[0] for pose in poses]
    for epc, item_reads in reads.items():
        if not item_reads:
            continue
        x = strongest_mean(item_reads, lambda t: _interpolate(times, poses, t), top_db)
        for bay, (x0, x1) in extents.items():
            if x0 <= x < x1:
                out[epc] = bay
                break
    return out


class PoseAssigner(MobileAssigner):
    """Assigns item tags to bays by the robot's reported pose (:func:`assign_by_pose`).

    Takes reads like :class:`MobileAssigner` (reference tags are told apart and left out of
    the counts) and the robot's poses through :meth:`add_pose`, in any order. Times of poses
    and reads must be on one clock (UNIX seconds).

    Args:
        references: Reference tag EPC → bay, as for :class:`MobileAssigner`.
        extents: Bay → ``(x0, x1)`` along the aisle, in the poses' frame.
        margin: A bay closes once the reader is this many metres past its extent: by then
            its items' strongest reads are behind it.
        pose_top_db: ``top_db`` of :func:`assign_by_pose`.
        **options: The other arguments of :class:`MobileAssigner`.
    """

    def __init__(
        self,
        references: ReferenceMap,
        extents: Mapping[str, tuple[float, float]],
        *,
        margin: float = 1.0,
        pose_top_db: float = 6.0,
        **options: Any,
    ) -> None:
        super().__init__(references, **options)
        self.extents = dict(extents)
        self.margin = margin
        self.pose_top_db = pose_top_db
        self.poses: list[tuple[float, float]] = []
        """(time, x) of every pose received, sorted by time."""
        self._times: list[float] = []

    def add_pose(self, t: float, x: float) -> None:
        """Account for the robot being at ``x`` at time ``t`` (poses may come out of order)."""
        at = bisect.bisect_right(self._times, t)
        self._times.insert(at, t)
        self.poses.insert(at, (t, x))

    def _covered(self, until: float = float("inf")) -> set[str]:
        """The bays whose whole extent the reader went over up to ``until``."""
        seen = self.poses[: bisect.bisect_right(self._times, until)]
        if not seen:
            return set()
        low, high = min(x for _, x in seen), max(x for _, x in seen)
        return {bay for bay, (x0, x1) in self.extents.items() if low <= x0 and high >= x1}

    def placements(self) -> dict[bytes, str]:
        """Every counted item tag inside a bay's extent, with its bay."""
        undecided = {
            epc: reads for epc, reads in self.item_reads().items() if epc not in self._decided
        }
        out = {}
        if self.poses:
            out = assign_by_pose(undecided, self.poses, self.extents, top_db=self.pose_top_db)
        out.update(self._decided)
        return out

    def closed_bays(self, now: float) -> dict[str, LocationCount]:
        """The bays that became final since the last call, with their counts.

        A bay is final once the poses up to ``now`` covered its extent and the reader is
        :attr:`margin` past it; its items are then decided for good.

        Args:
            now: The current time on the clock of the reads (the newest read): poses newer
                than the reads do not close anything, so a reader gone silent closes nothing.
        """
        covered = self._covered(now) - set(self._closed)
        if not covered:
            return {}
        x = position_at(self.poses, now)
        passed = {
            bay
            for bay in covered
            if x >= self.extents[bay][1] + self.margin or x < self.extents[bay][0] - self.margin
        }
        if not passed:
            return {}
        pending: defaultdict[str, list[bytes]] = defaultdict(list)
        for epc, bay in self.placements().items():
            if bay in passed and epc not in self._decided:
                pending[bay].append(epc)
        out: dict[str, LocationCount] = {}
        for bay in sorted(passed):
            for epc in pending[bay]:
                self._decided[epc] = bay
            out[bay] = self._closed[bay] = self._count(bay, pending[bay], complete=True)
        return out

    def _scanned(self, bay: str) -> bool:
        """Whether the poses covered ``bay``'s extent (no pose at all: nothing was)."""
        return bay in self._covered()
