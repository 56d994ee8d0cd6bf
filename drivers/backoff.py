"""Exponential backoff with full jitter, shared by every reconnecting driver."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delays for reconnect attempts: ``initial * factor**n`` capped at ``maximum``, jittered.

    "Equal jitter": half the delay is fixed and half is random, so attempts of many gateways
    after a site-wide outage spread out, yet no attempt comes sooner than half the nominal delay.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        """The delay before the next attempt, in seconds."""
        nominal = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return nominal / 2 + self.rng.uniform(0.0, nominal / 2)

    def reset(self) -> None:
        """Call after a successful connection."""
        self.attempts = 0
