"""The RF side of the simulator: which tags one inventory round reads, and the report buffer.

Transmit power: at the table's highest power the scene applies as written. Each dB below it
lowers every tag's ``read_prob`` by 3 % (relative; clamped at zero) and its RSSI by 1 dB.

A :class:`RoundSource` answers the rounds: the scene's static :class:`TagField`, or a moving
scene (:class:`simulators.cart.CartProvider`) that both reader simulators, LLRP and serial,
take instead.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

from drivers.llrp.codec import TagRead
from simulators.scene import Scene

#: Relative read-probability loss per dB below the highest transmit power.
PROB_LOSS_PER_DB = 0.03


@dataclass(frozen=True, slots=True)
class _Sighting:
    epc: bytes
    rssi: float
    sd: float
    prob: float


class RoundSource(Protocol):
    """What answers in one inventory round (:class:`TagField` fits)."""

    def read_round(self, antenna: int, power_below_max_db: float = 0.0) -> list[tuple[bytes, int]]:
        """(EPC, RSSI dBm) of every tag read in one round on ``antenna``, now."""
        ...


class TagField:
    """The tags each antenna can see, sampled one inventory round at a time.

    Args:
        scene: The scene.
        seed: RNG seed (default: the scene's seed; None means unseeded).
    """

    def __init__(self, scene: Scene, seed: int | None = None) -> None:
        self.rng = random.Random(scene.seed if seed is None else seed)  # noqa: S311 - simulation
        self._by_antenna: dict[int, list[_Sighting]] = {}
        for tag in scene.tags:
            sd = scene.rssi_sd if tag.rssi_sd is None else tag.rssi_sd
            sighting = _Sighting(bytes.fromhex(tag.epc), tag.rssi, sd, tag.read_prob)
            self._by_antenna.setdefault(tag.antenna, []).append(sighting)

    def population(self, antenna: int) -> int:
        """How many tags the antenna can see."""
        return len(self._by_antenna.get(antenna, ()))

    def read_round(self, antenna: int, power_below_max_db: float = 0.0) -> list[tuple[bytes, int]]:
        """Run one inventory round on an antenna.

        Args:
            antenna: The antenna port.
            power_below_max_db: How far the transmit power is below the table's maximum.

        Returns:
            (EPC bytes, peak RSSI dBm) of every tag read, RSSI rounded and clamped to -128..-1.
        """
        sightings = self._by_antenna.get(antenna)
        if not sightings:
            return []
        scale = max(0.0, 1.0 - PROB_LOSS_PER_DB * power_below_max_db)
        offset = -power_below_max_db
        uniform = self.rng.random
        gauss = self.rng.gauss
        out: list[tuple[bytes, int]] = []
        append = out.append
        for sighting in sightings:
            if uniform() >= sighting.prob * scale:
                continue
            level = (
                gauss(sighting.rssi + offset, sighting.sd)
                if sighting.sd
                else sighting.rssi + offset
            )
            append((sighting.epc, min(-1, max(-128, round(level)))))
        return out


class RateCap:
    """A token bucket capping reads per second (None = no cap)."""

    def __init__(self, per_second: float | None) -> None:
        self.per_second = per_second
        self._tokens = per_second or 0.0
        self._last: float | None = None
        self.dropped = 0

    def admit(self, reads: list[tuple[bytes, int]], now: float) -> list[tuple[bytes, int]]:
        """Keep as many reads as the bucket allows at monotonic time ``now`` (seconds)."""
        if self.per_second is None:
            return reads
        if self._last is not None:
            self._tokens = min(self.per_second, self._tokens + (now - self._last) * self.per_second)
        self._last = now
        allowed = int(self._tokens)
        if allowed >= len(reads):
            self._tokens -= len(reads)
            return reads
        self._tokens -= allowed
        self.dropped += len(reads) - allowed
        return reads[:allowed]


class ReportBuffer:
    """Pending tag reports, accumulated per (EPC, antenna) like Impinj readers do.

    Each entry keeps first seen, last seen (µs), peak RSSI and the number of reads.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[bytes, int], list[int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, antenna: int, reads: Iterable[tuple[bytes, int]], now_us: int) -> None:
        """Accumulate reads of one antenna at time ``now_us``."""
        entries = self._entries
        for epc, rssi in reads:
            entry = entries.get((epc, antenna))
            if entry is None:
                entries[(epc, antenna)] = [now_us, now_us, rssi, 1]
                continue
            entry[1] = now_us
            entry[2] = max(entry[2], rssi)
            entry[3] += 1

    def take(self, limit: int | None = None) -> list[TagRead]:
        """Remove and return up to ``limit`` entries (all when None), oldest first."""
        if limit is None or limit >= len(self._entries):
            items = list(self._entries.items())
            self._entries.clear()
        else:
            keys = list(islice(self._entries, limit))
            items = [(key, self._entries.pop(key)) for key in keys]
        return [(epc, ant, e[2], e[0], e[1], e[3]) for (epc, ant), e in items]

    def clear(self) -> int:
        """Drop everything; returns how many entries were dropped."""
        count = len(self._entries)
        self._entries.clear()
        return count
