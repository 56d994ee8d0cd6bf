"""The one seam where threads hand work to the event loop.

sllurp's socket thread, the serial reader threads, the camera capture threads and paho's
network thread all call back on their own threads; everything they hand over goes through a
:class:`LoopBridge`. A thread :meth:`~LoopBridge.put`\\ s items (reads, frames, messages) and
:meth:`~LoopBridge.call`\\ s control events (connected, lost, a reply arrived); the loop gets
both in the order they were handed over, items in batches (one ``deliver(items)`` per run of
items), and never from any other thread.

Invariants:

* Bounded: at most ``maxsize`` items are outstanding: waiting for the loop, plus (with
  ``room_on="release"``) delivered items the loop has not :meth:`~LoopBridge.release`\\ d
  yet. When one more arrives, a put may first wait for room (``block_timeout``, below);
  then the bridge drops the newest (the arriving item; ``keep="oldest"``) or the oldest
  waiting item (``keep="newest"``: a camera wants the freshest frames; the arriving item
  when none is waiting) and counts it in :attr:`dropped`. Control calls are never dropped,
  never wait and do not count towards the bound (they are few).
* Back-pressure, bounded in time: with ``block_timeout`` > 0 a put from a thread other than
  the loop's waits while the bridge is full, until a drain (or a release) makes room, at
  most ``block_timeout`` seconds; then it drops as above, and later puts drop at once until
  room frees again (a wedged loop costs one wait, not one per item). A thread's items keep
  their order: a put that waited appends after everything that thread handed over before.
* Never blocks the loop: a put on the loop's own thread never waits (when full, the keep
  policy applies at once).
* Never hangs: a waiting put returns when room frees, when its wait ends, when the bridge is
  :meth:`~LoopBridge.close`\\ d, or when the loop closes (looked at every
  :data:`WAIT_SLICE` seconds: a closing loop says nothing).
* One loop callback per burst: the first hand-over after a drain schedules one drain; all
  that arrives before it runs goes with it.
* Safe after the loop closed: nothing raises on the thread; what cannot reach the loop any
  more is discarded (items counted in :attr:`dropped`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

WAIT_SLICE = 0.1
"""Longest a waiting put sleeps before it looks whether the loop closed (seconds)."""


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
        maxsize: Most items outstanding (see ``room_on``); at least 1.
        keep: Which items survive when full: ``"oldest"`` drops the arriving item,
            ``"newest"`` drops the oldest waiting one.
        weigh: What a dropped item counts in :attr:`dropped` (default 1; a batch of reads
            counts its reads).
        name: For the log.
        block_timeout: Longest a put from another thread than the loop's waits for room
            when full, in seconds, before ``keep`` applies; 0 never waits.
        room_on: When a delivered item gives its room back: ``"drain"``, as the loop takes
            it from the bridge, or ``"release"``, when the loop calls :meth:`release` for
            it (the bound then covers the loop's own queue too, and a waiting put is
            back-pressure from whoever empties that queue).
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
        block_timeout: float = 0.0,
        room_on: Literal["drain", "release"] = "drain",
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        if block_timeout < 0:
            raise ValueError("block_timeout must not be negative")
        self.loop = loop
        self.maxsize = maxsize
        self.keep = keep
        self.name = name
        self.block_timeout = block_timeout
        self.room_on = room_on
        self._deliver = deliver
        self._weigh = weigh
        self._lock = threading.Lock()  # guards everything below
        self._room = threading.Condition(self._lock)  # notified whenever room frees
        self._pending: deque[T | _Call] = deque()
        self._items = 0  # items in _pending
        self._held = 0  # delivered, not released yet (room_on="release")
        self._scheduled = False
        self._dropped = 0
        self._dropping = False
        self._stalled = False  # a wait ran out; no more waits until room frees
        self._closed = False
        self._waits = 0
        self._waited = 0.0
        self._blocked = 0  # puts waiting now

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

    @property
    def waits(self) -> int:
        """Puts that waited for room since construction; read from any thread."""
        with self._lock:
            return self._waits

    @property
    def blocked(self) -> int:
        """Puts waiting for room right now; read from any thread."""
        with self._lock:
            return self._blocked

    @property
    def waited_seconds(self) -> float:
        """Seconds the puts waited for room in all; read from any thread."""
        with self._lock:
            return self._waited

    def put(self, item: T) -> bool:
        """Hand ``item`` to the loop (any thread); False when it was dropped.

        Waits for room only with ``block_timeout`` and only off the loop's thread (see the
        module's invariants); otherwise never blocks.
        """
        with self._lock:
            if self._full() and not self._wait_for_room() and not self._make_room(item):
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

    def release(self, count: int = 1) -> None:
        """``count`` delivered items are done with: their room is free (``room_on="release"``).

        Call it from the loop, once per delivered item, when the item leaves the loop's own
        queue (taken by its consumer, or dropped). Does nothing with ``room_on="drain"``.
        """
        if self.room_on != "release":
            return
        with self._lock:
            self._held = max(self._held - count, 0)
            self._freed()

    def close(self) -> None:
        """Stop waiting for room: waiting puts drop now, later puts never wait (any thread).

        Items still flow to the loop; only the back-pressure ends. For shutdown, so that no
        thread stays blocked on a loop that is about to stop draining.
        """
        with self._lock:
            self._closed = True
            self._room.notify_all()

    # -- thread side, lock held ----------------------------------------------------------------

    def _full(self) -> bool:
        return self._items + self._held >= self.maxsize

    def _wait_for_room(self) -> bool:
        """The bridge is full: wait for room if this put may; whether there is room now."""
        if self.block_timeout <= 0 or self._stalled or self._closed or self._on_loop_thread():
            return False
        started = time.monotonic()
        deadline = started + self.block_timeout
        self._waits += 1
        self._blocked += 1
        while self._full() and not (self._closed or self.loop.is_closed()):
            left = deadline - time.monotonic()
            if left <= 0:
                self._stalled = True
                log.warning(
                    "%s: no room for %.1f s (the event loop or its consumer is stuck); "
                    "dropping until room frees",
                    self.name,
                    self.block_timeout,
                )
                break
            self._room.wait(min(left, WAIT_SLICE))
        self._blocked -= 1
        self._waited += time.monotonic() - started
        if self.loop.is_closed():  # nobody will drain: what waits is lost, and counted
            self._discard()
        return not self._full()

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:  # no loop runs on this thread
            return False

    def _make_room(self, item: T) -> bool:
        """The bridge is full: drop one item and count it; whether ``item`` may go in."""
        if self.keep == "newest":
            for index, waiting in enumerate(self._pending):
                if not isinstance(waiting, _Call):
                    del self._pending[index]
                    self._items -= 1
                    self._count_drop(waiting)
                    return True
        self._count_drop(item)  # keep="oldest", or nothing waiting to drop instead
        return False

    def _count_drop(self, item: T) -> None:
        self._dropped += 1 if self._weigh is None else self._weigh(item)
        if not self._dropping:  # once per run of drops: the loop is behind
            log.warning("%s: the event loop is behind, dropping what does not fit", self.name)
        self._dropping = True

    def _freed(self) -> None:
        """Room was made: wake the waiting puts, and let them wait again."""
        self._stalled = False
        self._room.notify_all()

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
        self._room.notify_all()

    # -- loop side -----------------------------------------------------------------------------

    def _drain(self) -> None:
        """Run on the loop: deliver every waiting run of items and call every waiting call."""
        with self._lock:
            entries = list(self._pending)
            self._pending.clear()
            if self.room_on == "release":
                self._held += self._items  # their room comes back with release()
            elif self._items:
                self._freed()
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
