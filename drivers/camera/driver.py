"""Camera driver: a capture thread per camera, a watchdog, reconnects, a drop-oldest queue.

OpenCV's ``read()`` blocks, so each camera has one capture thread that opens its
:class:`~drivers.camera.sources.FrameSource`, reads, and hands every frame to the event loop at
one seam, :meth:`Camera._post` (``loop.call_soon_threadsafe``). Health figures are changed on
the loop only, from what the thread posts.

The queue keeps the freshest frames: when it is full the oldest frame is dropped and counted
(``health.dropped``); the capture thread never waits for a consumer. Frames captured but not
yet moved into the queue wait in a hand-off buffer of ``queue_size`` that also drops its
oldest, so a busy or stalled loop cannot pile up images in memory either; one callback per
burst moves them over.

The watchdog lives on the capture thread: a source that delivers no frame for
``stall_seconds`` (or raises) is closed and opened again after a backoff delay with jitter
(:class:`edgecount.backoff.Backoff`), reset once a connection delivered a frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.base import DeviceHealth, HealthState
from drivers.camera.frame import Frame
from drivers.camera.sources import Captured, FrameSource, SourceError, make_source, redact
from edgecount.backoff import Backoff

log = logging.getLogger(__name__)

_POLL = 0.5
"""Longest single wait of the capture thread before it looks at its stop flag again."""


@dataclass(frozen=True, slots=True)
class CameraSettings:
    """What the driver needs to know about one camera.

    Attributes:
        name: Name of the camera (logs, health, :attr:`Frame.camera`).
        url: Where it is: ``rtsp://...``, ``http(s)://...``, ``usb:N``, ``/dev/videoN``, a
            video file or a folder of images (see :mod:`drivers.camera.sources`).
        kind: ``auto`` (from the URL), ``stream``, ``snapshot``, ``device``, ``file`` or
            ``folder``.
        fps: Snapshot polling rate, and the pace of file and folder frames; None: as fast as
            the source gives them. Must leave more than one frame per ``stall_seconds``.
        stall_seconds: Watchdog: no frame for this long closes the source and reconnects.
        queue_size: Frames kept for the consumer; when full the oldest is dropped.
        backoff_initial: Upper end of the first reconnect delay, seconds.
        backoff_max: Cap on the reconnect delay, seconds.
        loop: Start files and folders over at their end (else the camera stops there).
        timeout_seconds: Limit on opening a source and on one read; a stream read is also
            limited to ``stall_seconds``.
    """

    name: str
    url: str
    kind: str = "auto"
    fps: float | None = None
    stall_seconds: float = 5.0
    queue_size: int = 4
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    loop: bool = False
    timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        problems = []
        if self.stall_seconds <= 0 or self.timeout_seconds <= 0:
            problems.append("stall_seconds and timeout_seconds must be positive")
        if self.queue_size < 1:
            problems.append("queue_size must be at least 1")
        if self.backoff_initial <= 0 or self.backoff_max < self.backoff_initial:
            problems.append("need 0 < backoff_initial <= backoff_max")
        if self.fps is not None and (self.fps <= 0 or 1.0 / self.fps >= self.stall_seconds):
            problems.append("fps must be positive and above 1 / stall_seconds")
        if problems:
            raise ValueError(f"camera {self.name}: " + "; ".join(problems))


@dataclass(slots=True)
class _Outcome:
    """How one connection ended, as seen by the capture thread."""

    why: str | None  # the failure, None when stopped or ended
    frames: int
    ended: bool = False


class Camera:
    """One camera, kept capturing by its own thread.

    Frames appear on :attr:`queue` (or through :meth:`next_frame`). Call :meth:`start` once and
    :meth:`stop` at the end.

    Args:
        settings: The camera's settings.
        rng: Random source of the backoff jitter (tests pass a seeded one).

    Raises:
        ValueError: The URL or kind is unknown or names a missing path (raised here, before
            anything starts).
    """

    def __init__(self, settings: CameraSettings, *, rng: random.Random | None = None) -> None:
        self.name = settings.name
        self.settings = settings
        self.source: FrameSource = make_source(
            settings.url,
            settings.kind,
            timeout=min(settings.timeout_seconds, settings.stall_seconds),
            fps=settings.fps,
            loop=settings.loop,
        )
        self.queue: asyncio.Queue[Frame] = asyncio.Queue(maxsize=settings.queue_size)
        """The freshest frames, oldest first. Bounded: when full the oldest is dropped."""
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._health = DeviceHealth(name=settings.name)
        self._failures = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._first_attempt = asyncio.Event()
        self._changed = asyncio.Event()
        self._seq = 0  # capture thread only: frames captured
        self._handoff: deque[Frame] = deque(maxlen=settings.queue_size)
        self._handoff_lock = threading.Lock()  # guards _handoff, _late_drops, _drain_posted
        self._late_drops = 0
        self._drain_posted = False
        self._dropping = False
        self._last_frame = time.monotonic()

    # -- public API -------------------------------------------------------------------------

    def health(self) -> DeviceHealth:
        """Current health figures (``reads`` counts frames)."""
        extra = self._health.extra
        if self._health.state is HealthState.CONNECTED:
            extra["seconds_since_frame"] = time.monotonic() - self._last_frame
        else:
            extra.pop("seconds_since_frame", None)
        return self._health

    @property
    def failures(self) -> int:
        """Failed connection attempts plus connections lost, since start."""
        return self._failures

    async def start(self) -> None:
        """Start the capture thread; returns after the first connection attempt (either way)."""
        if self._thread is not None:
            raise RuntimeError(f"camera {self.name} already started")
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"camera:{self.name}", daemon=True)
        self._thread.start()
        await self._first_attempt.wait()

    async def stop(self) -> None:
        """Stop capturing and close the source.

        Waits for the capture thread at most ``timeout_seconds`` (a blocked OpenCV read ends at
        its own timeout, no later); a thread still blocked then is left to end by itself.
        """
        self._stopping.set()
        self.source.interrupt()
        thread = self._thread
        if thread is not None:
            limit = min(self.settings.timeout_seconds, self.settings.stall_seconds) + 1.0
            await asyncio.to_thread(thread.join, limit)
            if thread.is_alive():
                log.warning("%s: capture thread still blocked; it ends by itself", self.name)
        self._health.state = HealthState.STOPPED
        self._notify()

    async def next_frame(self, timeout: float) -> Frame:  # noqa: ASYNC109 - a bound per call
        """The next frame from the queue.

        Raises:
            TimeoutError: No frame within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            return await self.queue.get()

    async def wait_for(
        self,
        predicate: Callable[[DeviceHealth], bool],
        timeout: float,  # noqa: ASYNC109 - a bound, like wait_for's
    ) -> bool:
        """Wait until ``predicate(health)`` holds, at most ``timeout`` seconds; the outcome.

        Woken by every change the capture thread reports (connect, loss, frame, end).
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not predicate(self._health):
                    await self._changed.wait()
        return predicate(self._health)

    async def wait_connected(self, count: int = 1, timeout: float = 10.0) -> bool:  # noqa: ASYNC109
        """Wait until the camera connected ``count`` times in all (a reconnect is count 2)."""
        return await self.wait_for(lambda h: h.connects >= count, timeout)

    async def wait_disconnected(self, count: int = 1, timeout: float = 10.0) -> bool:  # noqa: ASYNC109
        """Wait until ``count`` connections in all were lost (watchdog, error or end)."""
        return await self.wait_for(lambda h: h.disconnects >= count, timeout)

    # -- capture thread ---------------------------------------------------------------------

    def _run(self) -> None:
        """The capture thread: connect, capture, reconnect with backoff until stopped."""
        try:
            self._supervise()
        except Exception as exc:
            log.exception("%s: capture thread failed", self.name)
            self._post(self._on_crashed, f"capture thread failed: {exc!r}")
            self._post(self._first_attempt.set)
        finally:
            self.source.close()

    def _supervise(self) -> None:
        s = self.settings
        backoff = Backoff(s.backoff_initial, s.backoff_max, self._rng)
        while not self._stopping.is_set():
            outcome = self._connect_and_capture()
            if outcome is not None:
                if outcome.ended or self._stopping.is_set():
                    return
                if outcome.frames:
                    backoff.reset()
            delay = backoff.next_delay()
            log.warning("%s: reconnecting in %.2f s", self.name, delay)
            self._stopping.wait(delay)

    def _connect_and_capture(self) -> _Outcome | None:
        """One connection: None if opening failed, else how capturing ended."""
        source = self.source
        try:
            source.open()
        except SourceError as exc:
            self._post(self._on_attempt_failed, str(exc))
            return None
        except Exception as exc:  # a bug in a source: loud, then supervised like any failure
            log.exception("%s: opening the source failed unexpectedly", self.name)
            self._post(self._on_attempt_failed, repr(exc))
            return None
        self._post(self._on_connected)
        try:
            outcome = self._capture(source)
        finally:
            source.close()
        if outcome.ended:
            self._post(self._on_lost, "source ended", True)
        elif outcome.why is not None:
            self._post(self._on_lost, outcome.why, False)
        return outcome

    def _capture(self, source: FrameSource) -> _Outcome:
        """Read until the source fails, ends, stalls (watchdog) or the camera stops."""
        stall = self.settings.stall_seconds
        frames = 0
        last = time.monotonic()
        while not self._stopping.is_set():
            wait = max(0.0, min(_POLL, last + stall - time.monotonic()))
            try:
                captured = source.read(wait)
            except SourceError as exc:
                return _Outcome(str(exc), frames)
            except Exception as exc:  # a bug in a source: loud, then supervised
                log.exception("%s: reading the source failed unexpectedly", self.name)
                return _Outcome(repr(exc), frames)
            now = time.monotonic()
            if captured is not None:
                last = now
                frames += 1
                self._hand_over(captured)
                continue
            if source.ended:
                return _Outcome(None, frames, ended=True)
            if now - last >= stall:
                return _Outcome(f"no frame for {now - last:.1f} s (watchdog)", frames)
        return _Outcome(None, frames)

    def _hand_over(self, captured: Captured) -> None:
        """Pass one frame towards the loop without waiting; the buffer drops its oldest."""
        self._seq += 1
        image, pose = captured
        frame = Frame(self.name, time.time(), image, self._seq, pose)
        with self._handoff_lock:
            if len(self._handoff) == self._handoff.maxlen:
                self._late_drops += 1
            self._handoff.append(frame)
            if self._drain_posted:
                return
            self._drain_posted = True
        self._post(self._drain)

    # -- thread seam ------------------------------------------------------------------------

    def _post(self, fn: Callable[..., None], *args: Any) -> bool:
        """Run ``fn(*args)`` on the event loop: the only way the capture thread reaches it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed in between
            return False
        return True

    # -- loop side --------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _drain(self) -> None:
        """Move the hand-off buffer into the queue, dropping the oldest frames when full."""
        with self._handoff_lock:
            frames = list(self._handoff)
            self._handoff.clear()
            late, self._late_drops = self._late_drops, 0
            self._drain_posted = False
        health = self._health
        health.dropped += late
        for frame in frames:
            health.reads += 1
            health.last_message_at = frame.t
            if self.queue.full():
                self.queue.get_nowait()
                health.dropped += 1
                if not self._dropping:  # normal between scans, when nothing reads the frames
                    log.info("%s: frame queue full, keeping the newest frames", self.name)
                self._dropping = True
            else:
                self._dropping = False
            self.queue.put_nowait(frame)
        self._last_frame = time.monotonic()
        self._notify()

    def _on_connected(self) -> None:
        self._first_attempt.set()
        if self._stopping.is_set():  # a late report from a thread stop() gave up on
            return
        health = self._health
        health.connects += 1
        health.state = HealthState.CONNECTED
        health.last_error = None
        self._last_frame = time.monotonic()
        log.info("%s: connected to %s", self.name, redact(self.settings.url))
        self._notify()

    def _on_lost(self, why: str, ended: bool) -> None:
        if self._stopping.is_set():
            return
        health = self._health
        health.disconnects += 1
        if ended:
            health.state = HealthState.STOPPED
            log.info("%s: %s", self.name, why)
        else:
            self._failures += 1
            health.state = HealthState.RECONNECTING
            health.last_error = why
            log.error("%s: %s", self.name, why)
        self._notify()

    def _on_attempt_failed(self, why: str) -> None:
        self._first_attempt.set()
        if self._stopping.is_set():
            return
        self._failures += 1
        self._health.state = HealthState.RECONNECTING
        self._health.last_error = f"connect failed: {why}"
        log.error("%s: connect failed: %s", self.name, why)
        self._notify()

    def _on_crashed(self, why: str) -> None:
        self._failures += 1
        self._health.state = HealthState.FAILED
        self._health.last_error = why
        self._notify()
