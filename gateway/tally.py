"""How a zone scan turns its readers' reads into location counts: the tally strategies.

A :class:`Tally` takes the reads of the scan window batch by batch, may hand out counts of
locations it has finished while the window runs (a mobile reader passing bays), and gives
the count of every location when the window ends. Two strategies exist:

* :class:`FixedTally` -- fixed readers: each tag at the location whose antenna read it
  strongest (:class:`gateway.aggregate.WindowAggregator`); nothing is finished before the
  window ends. A reader that failed makes its antennas' locations incomplete.
* :class:`gateway.mobile_scan.MobileTally` -- a reader on a robot or cart: reference tags or
  the robot's pose place the items (:mod:`gateway.mobile`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Protocol

from drivers.base import TagRead
from gateway.aggregate import LocationTally, WindowAggregator
from gateway.config import GatewayConfig
from gateway.counts import LocationCount, ReaderOutcome
from gateway.epc import EpcDecoder


class Tally(Protocol):
    """A strategy that turns the reads of one scan window into location counts."""

    @property
    def reads(self) -> int:
        """Reads taken so far (what the progress display shows)."""
        ...

    def add(self, batch: Sequence[TagRead]) -> int:
        """Take a batch of one reader's reads; returns how many reads it counts for it."""
        ...

    def listening(self) -> contextlib.AbstractContextManager[None]:
        """The scan runs inside this: the strategy takes outside input (poses) meanwhile."""
        ...

    def passed(self) -> list[LocationCount]:
        """Locations finished since the last call, while every reader is sound (may be none)."""
        ...

    def counts(self, outcomes: Mapping[str, ReaderOutcome]) -> dict[str, LocationCount]:
        """Every location's count when the window has ended, given how the readers did."""
        ...


class FixedTally:
    """Fixed readers: each tag counts at the location whose antenna read it strongest.

    Args:
        config: The gateway configuration.
        zone: The zone scanned.
        decoder: Turns EPCs into SKUs.
    """

    def __init__(self, config: GatewayConfig, zone: str, decoder: EpcDecoder) -> None:
        self.config = config
        self.zone = zone
        self.decoder = decoder
        readers = config.zones[zone].readers
        locations = {
            (name, antenna): location
            for name in readers
            for antenna, location in config.reader(name).antennas.items()
        }
        self.aggregator = WindowAggregator(locations, config.zones[zone].min_reads)

    @property
    def reads(self) -> int:
        """Reads on a mapped antenna so far."""
        return self.aggregator.reads

    def add(self, batch: Sequence[TagRead]) -> int:
        """Take a batch; returns the reads it held (seen counts summed)."""
        return self.aggregator.add(batch)

    def listening(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to listen to."""
        return contextlib.nullcontext()

    def passed(self) -> list[LocationCount]:
        """Fixed readers finish no location before the window ends."""
        return []

    def counts(self, outcomes: Mapping[str, ReaderOutcome]) -> dict[str, LocationCount]:
        """Each of the zone's RFID locations, incomplete where a reader that covers it failed."""
        failed = {name for name, outcome in outcomes.items() if not outcome.ok}
        incomplete = {
            location for name in failed for location in self.config.reader(name).antennas.values()
        }
        tallies: dict[str, LocationTally] = self.aggregator.tally(self.decoder)
        counts: dict[str, LocationCount] = {}
        for location in self.config.rfid_locations(self.zone):
            tally = tallies.get(location)
            counts[location] = LocationCount(
                location,
                skus=dict(tally.skus) if tally else {},
                unknown_epcs=list(tally.unknown_epcs) if tally else [],
                complete=location not in incomplete,
            )
        return counts
