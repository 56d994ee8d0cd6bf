"""Reconnect delays: exponential backoff with "equal jitter", shared by every reconnecting part.

The n-th delay is drawn uniformly from ``[d/2, d]`` with ``d = min(maximum, initial * 2**n)``.
paho's and sllurp's own reconnect delays have no jitter: after a broker or network restart a
whole fleet of gateways (or one gateway's fifty readers) would reconnect in lock-step, again
and again. Equal jitter spreads them while keeping a floor of ``d/2``, so a client never
hammers a peer that refuses it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delays for reconnect attempts.

    Attributes:
        initial: Upper end of the first delay, seconds.
        maximum: Cap on the delay, seconds.
        rng: Random source (tests pass a seeded one).
        attempt: Attempts since the last :meth:`reset`.
    """

    initial: float = 0.5
    maximum: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call backs off further."""
        ceiling = min(self.maximum, self.initial * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from ``initial`` (after a connection proved good)."""
        self.attempt = 0
