"""The one seam where threads hand work to the event loop.

sllurp's socket thread, the serial reader threads, the camera capture threads and paho's
network thread all call back on their own threads; everything they hand over goes through a
:class:`LoopBridge`. A thread :meth:`~LoopBridge.put`\\ s items (reads, frames, messages) and
:meth:`~LoopBridge.call`\\ s control events (connected, lost, a reply arrived); the loop gets
both in the order they were handed over, items in batches (one ``deliver(items)`` per run of
items), and never from any other thread.

Invariants:

* Bounded: at most ``maxsize`` items wait for the loop. When one more arrives, the bridge
  drops the newest (the arriving item; ``keep="oldest"``) or the oldest waiting item
  (``keep="newest"``: a camera wants the freshest frames) and counts it in :attr:`dropped`.
  Control calls are never dropped and do not count towards the bound (they are few).
* One loop callback per burst: the first hand-over after a drain schedules one drain; all
  that arrives before it runs goes with it.
* Safe after the loop closed: nothing raises on the thread; what cannot reach the loop any
  more is discarded (items counted in :attr:`dropped`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Call:
    """A control event waiting in the bridge: ``fn(*args)`` on the loop."""

    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args


class LoopBridge(Generic[T]):
    """Hands items and calls from any thread to one event loop, in order, bounded.

    Args:
        loop: The event loop that receives everything.
        deliver: Called on the loop with each run of items, oldest first.
        maxsize: Most items waiting for the loop; at least 1.
        keep: Which items survive when full: ``"oldest"`` drops the arriving item,
            ``"newest"`` drops the oldest waiting one.
        weigh: What a dropped item counts in :attr:`dropped` (default 1; a batch of reads
            counts its reads).
        name: For the log.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[list[T]], None],
        *,
        maxsize: int,
        keep: Literal["oldest", "newest"] = "oldest",
        weigh: Callable[[T], int] | None = None,
        name: str = "bridge",
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.loop = loop
        self.maxsize = maxsize
        self.keep = keep
        self.name = name
        self._deliver = deliver
        self._weigh = weigh
        self._lock = threading.Lock()  # guards everything below
        self._pending: deque[T | _Call] = deque()
        self._items = 0
        self._scheduled = False
        self._dropped = 0
        self._dropping = False

    @property
    def dropped(self) -> int:
        """Items dropped since construction (weighed with ``weigh``); read from any thread."""
        with self._lock:
            return self._dropped

    @property
    def waiting(self) -> int:
        """Items handed over that the loop has not received yet."""
        with self._lock:
            return self._items

    def put(self, item: T) -> bool:
        """Hand ``item`` to the loop (any thread, never blocks); False when it was dropped."""
        with self._lock:
            if self._items >= self.maxsize and not self._make_room(item):
                return False
            self._pending.append(item)
            self._items += 1
            self._dropping = False
            return self._schedule()

    def call(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` on the loop after everything handed over before (any thread).

        Returns:
            False when the loop is closed (the call is discarded).
        """
        with self._lock:
            self._pending.append(_Call(fn, args))
            return self._schedule()

    # -- thread side, lock held ----------------------------------------------------------------

    def _make_room(self, item: T) -> bool:
        """The bridge is full: drop one item and count it; whether ``item`` may go in."""
        if self.keep == "oldest":
            self._count_drop(item)
            return False
        for index, waiting in enumerate(self._pending):
            if not isinstance(waiting, _Call):
                del self._pending[index]
                self._items -= 1
                self._count_drop(waiting)
                break
        return True

    def _count_drop(self, item: T) -> None:
        self._dropped += 1 if self._weigh is None else self._weigh(item)
        if not self._dropping:  # once per run of drops: the loop is behind
            log.warning("%s: the event loop is behind, dropping what does not fit", self.name)
        self._dropping = True

    def _schedule(self) -> bool:
        if self.loop.is_closed():  # closed after the last drain was scheduled, or before
            self._discard()
            return False
        if self._scheduled:
            return True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody will ever drain
            self._discard()
            return False
        self._scheduled = True
        return True

    def _discard(self) -> None:
        for waiting in self._pending:
            if not isinstance(waiting, _Call):
                self._dropped += 1 if self._weigh is None else self._weigh(waiting)
        self._pending.clear()
        self._items = 0

    # -- loop side -----------------------------------------------------------------------------

    def _drain(self) -> None:
        """Run on the loop: deliver every waiting run of items and call every waiting call."""
        with self._lock:
            entries = list(self._pending)
            self._pending.clear()
            self._items = 0
            self._scheduled = False
        run: list[T] = []
        for entry in entries:
            if not isinstance(entry, _Call):
                run.append(entry)
                continue
            if run:
                self._run(self._deliver, run)
                run = []
            self._run(entry.fn, *entry.args)
        if run:
            self._run(self._deliver, run)

    def _run(self, fn: Callable[..., object], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # a bug in a handler: loud, and the rest still gets delivered
            log.exception("%s: a handler failed on the event loop", self.name)
