"""Turn the tag reads of one scan window into per-location, per-SKU counts.

Rules (design notes, "Counting semantics"):

* a tag counts once per window (dedup by EPC);
* it must have been read at least ``min_reads`` times in the window, over all antennas
  (ALE's glimpsed → observed smoothing);
* it belongs to the location with the strongest mean RSSI over the window, where a location
  is a (reader, antenna) pair or several of them merged by an alias.

Memory is the constraint at a million tags, so state lives in flat arrays indexed by a slot
per tag: up to :data:`WAYS` locations per tag inline, more in a small overflow dict.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from drivers.base import TagRead
from gateway.epc import UNKNOWN_SKU, EpcDecoder

WAYS = 3  # locations kept inline per tag; a tag heard at more goes to the overflow dict
_EMPTY = 0xFFFF
_EMPTY_WAYS = (_EMPTY,) * WAYS
_ZERO_WAYS = (0,) * WAYS


@dataclass(slots=True)
class LocationTally:
    """The counted tags of one location."""

    location: str
    skus: dict[str, int] = field(default_factory=dict)
    unknown_epcs: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """All tags counted at this location."""
        return sum(self.skus.values())


class WindowAggregator:
    """Accumulates reads of one window; :meth:`tally` gives the counts.

    Args:
        locations: ``(reader, antenna) → location`` for every configured antenna.
        min_reads: Reads a tag needs in the window to count.
    """

    def __init__(self, locations: Mapping[tuple[str, int], str], min_reads: int = 2) -> None:
        names = sorted(set(locations.values()))
        self._names = names
        index = {name: i for i, name in enumerate(names)}
        self._where = {key: index[name] for key, name in locations.items()}
        self.min_reads = min_reads
        self._slot: dict[bytes, int] = {}
        self._loc = array("H")
        self._reads = array("I")
        self._rssi = array("f")
        self._overflow: dict[int, dict[int, list[float]]] = {}
        self.reads = 0
        self.unmapped = 0

    def __len__(self) -> int:
        return len(self._slot)

    def add(self, batch: Iterable[TagRead]) -> int:
        """Account for a batch of reads; returns how many reads it held (seen counts summed).

        The hot path: locals only, no allocation per read.
        """
        where = self._where
        slots = self._slot
        loc, reads, rssi = self._loc, self._reads, self._rssi
        total = unmapped = 0
        for read in batch:
            count = read.count
            where_index = where.get((read.reader, read.antenna))
            if where_index is None:
                unmapped += count
                continue
            total += count
            slot = slots.get(read.epc)
            if slot is None:
                slot = slots[read.epc] = len(slots)
                loc.extend(_EMPTY_WAYS)
                reads.extend(_ZERO_WAYS)
                rssi.extend(_ZERO_WAYS)
            i = slot * WAYS
            end = i + WAYS
            here = loc[i]
            while here != where_index:  # find this location's way, or claim an empty one
                if here == _EMPTY:
                    loc[i] = where_index
                    break
                i += 1
                if i == end:
                    break
                here = loc[i]
            if i == end:
                self._spill(slot, where_index, read)
                continue
            reads[i] += count
            rssi[i] += read.rssi * count
        self.reads += total
        self.unmapped += unmapped
        return total + unmapped

    def _spill(self, slot: int, where_index: int, read: TagRead) -> None:
        entry = self._overflow.setdefault(slot, {}).setdefault(where_index, [0.0, 0.0])
        entry[0] += read.count
        entry[1] += read.rssi * read.count

    def _candidates(self, slot: int) -> list[tuple[int, float, float]]:
        """(location index, reads, rssi sum) of every location that heard this tag."""
        base = slot * WAYS
        found = [
            (self._loc[i], float(self._reads[i]), float(self._rssi[i]))
            for i in range(base, base + WAYS)
            if self._loc[i] != _EMPTY
        ]
        spilled = self._overflow.get(slot)
        if spilled:
            found.extend((where, entry[0], entry[1]) for where, entry in spilled.items())
        return found

    def placements(self) -> Iterable[tuple[bytes, str]]:
        """Each counted tag with the location it belongs to."""
        for epc, slot in self._slot.items():
            found = self._candidates(slot)
            if sum(n for _, n, _ in found) < self.min_reads:
                continue
            best = max(found, key=lambda entry: entry[2] / entry[1])
            yield epc, self._names[best[0]]

    def tally(self, decoder: EpcDecoder) -> dict[str, LocationTally]:
        """Counts per location (only locations where something was counted)."""
        out: dict[str, LocationTally] = {}
        skus: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        for epc, location in self.placements():
            sku = decoder.decode(epc).sku
            skus[location][sku] += 1
            tally = out.get(location)
            if tally is None:
                tally = out[location] = LocationTally(location)
            if sku == UNKNOWN_SKU:
                tally.unknown_epcs.append(epc.hex())
        for location, by_sku in skus.items():
            out[location].skus = dict(sorted(by_sku.items()))
        return out
