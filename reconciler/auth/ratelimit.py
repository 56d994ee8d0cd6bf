"""Failed sign-ins, limited per user name and per client address.

A fixed budget of failures in a sliding window: once a user name or an address has failed
``limit`` times within ``window``, further attempts are refused (429, ``Retry-After``) without
checking the password until the oldest failure leaves the window. Per name stops guessing one
account's password from many addresses; per address stops one client trying many names. A
success clears the name's failures. The counts are in memory: they start afresh with the
service, and each instance behind a load balancer keeps its own (docs/security.md).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable

__all__ = ["SigninLimiter"]


class SigninLimiter:
    """Failures per key (``user:NAME``, ``addr:IP``) in a sliding window.

    Args:
        limit: Failures allowed per key within the window.
        window: The window, in seconds.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, keys: list[str]) -> int | None:
        """Seconds until one of ``keys`` may try again; None when all may try now."""
        now = self._clock()
        waits: list[float] = []
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self.limit:
                    waits.append(times[0] + self.window - now)
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, keys: list[str]) -> None:
        """Count a failed sign-in against each key."""
        now = self._clock()
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                times.append(now)
                self._failures[key] = times

    def succeeded(self, key: str) -> None:
        """Forget a key's failures (the user signed in)."""
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        """The key's failures still in the window; a key with none left is dropped, so the
        table holds only keys that failed recently."""
        times = self._failures.pop(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if times:
            self._failures[key] = times
        return times
