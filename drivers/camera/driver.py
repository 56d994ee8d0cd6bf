"""Camera driver: a capture thread per connection, a watchdog, reconnects, a drop-oldest queue.

The camera is a :class:`~drivers.base.Device`: its supervisor opens the
:class:`~drivers.camera.sources.FrameSource`, and OpenCV's ``read()`` blocks, so each
connection has one capture thread that reads and hands every frame to the event loop at the
device's one seam (its :class:`~edgecount.bridge.LoopBridge`). Health figures are changed on
the loop only, from what the thread hands over.

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
import logging
import random
import threading
import time
from dataclasses import dataclass

from drivers.base import Device, DeviceHealth, HealthState
from drivers.camera.frame import Frame
from drivers.camera.sources import FrameSource, SourceError, make_source, redact
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
    ended: bool = False


class Camera(Device[Frame]):
    """One camera, kept connected by a supervisor task (:class:`~drivers.base.Device`).

    Each connection has its own capture thread. Frames appear on :attr:`queue` (or through
    :meth:`next_frame`). Call :meth:`start` once and :meth:`stop` at the end.

    Args:
        settings: The camera's settings.
        rng: Random source of the backoff jitter (tests pass a seeded one).

    Raises:
        ValueError: The URL or kind is unknown or names a missing path (raised here, before
            anything starts).
    """

    kind = "camera"
    expected = (SourceError,)

    def __init__(self, settings: CameraSettings, *, rng: random.Random | None = None) -> None:
        backoff = Backoff(
            settings.backoff_initial,
            settings.backoff_max,
            rng or random.Random(),  # noqa: S311 - jitter, not cryptography
        )
        super().__init__(
            settings.name,
            backoff,
            watch_period=settings.stall_seconds,
            queue_size=settings.queue_size,
            keep="newest",
        )
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
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()  # tells the capture thread to end
        self._seq = 0  # capture threads only (one at a time): frames captured
        self._proved = False  # the current connection delivered a frame
        self._dropping = False
        self._last_frame = time.monotonic()

    # -- public API -------------------------------------------------------------------------

    async def next_frame(self, timeout: float) -> Frame:  # noqa: ASYNC109 - a bound per call
        """The next frame from the queue.

        Raises:
            TimeoutError: No frame within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            return await self.queue.get()

    async def wait_disconnected(self, count: int = 1, timeout: float = 10.0) -> bool:  # noqa: ASYNC109
        """Wait until ``count`` connections in all were lost (watchdog, error or end)."""
        return await self.wait_for(lambda h: h.disconnects >= count, timeout)

    # -- the link ---------------------------------------------------------------------------

    def _refresh_health(self, health: DeviceHealth) -> None:
        """``reads`` counts frames; ``extra`` has the age of the newest while connected."""
        if health.state is HealthState.CONNECTED:
            health.extra["seconds_since_frame"] = time.monotonic() - self._last_frame
        else:
            health.extra.pop("seconds_since_frame", None)

    def _where(self) -> str:
        return redact(self.settings.url)

    async def _connect(self) -> None:
        self._halt.clear()
        self._proved = False
        await asyncio.to_thread(self.source.open)
        self._thread = threading.Thread(target=self._run, name=f"camera:{self.name}", daemon=True)
        self._thread.start()

    async def _after_connect(self) -> None:
        self._last_frame = time.monotonic()

    def _proven(self) -> bool:
        """A connection proves the camera once it delivered a frame."""
        return self._proved

    def _interrupt(self) -> None:
        self._halt.set()
        self.source.interrupt()

    async def _disconnect(self) -> None:
        """End the capture thread; the source is closed by it (or here, after a failed open).

        Waits for the thread at most ``timeout_seconds`` (a blocked OpenCV read ends at its own
        timeout, no later); a thread still blocked then is left to end by itself.
        """
        self._halt.set()
        thread, self._thread = self._thread, None
        if thread is None:
            await asyncio.to_thread(self.source.close)
            return
        limit = min(self.settings.timeout_seconds, self.settings.stall_seconds) + 1.0
        await asyncio.to_thread(thread.join, limit)
        if thread.is_alive():
            log.warning("%s: capture thread still blocked; it ends by itself", self.name)

    # -- capture thread ---------------------------------------------------------------------

    def _run(self) -> None:
        """One connection's capture thread: read until stopped, failed, ended or stalled."""
        try:
            outcome = self._capture(self.source)
        except Exception as exc:  # a bug: loud, then supervised like any failure
            log.exception("%s: capture thread failed", self.name)
            outcome = _Outcome(f"capture thread failed: {exc!r}")
        finally:
            self.source.close()
        if outcome.ended:
            self._post(self._end)
        elif outcome.why is not None:
            self._post(self._lose, outcome.why)

    def _capture(self, source: FrameSource) -> _Outcome:
        """Read until the source fails, ends, stalls (watchdog) or the camera stops."""
        stall = self.settings.stall_seconds
        last = time.monotonic()
        while not self._halt.is_set():
            wait = max(0.0, min(_POLL, last + stall - time.monotonic()))
            try:
                captured = source.read(wait)
            except SourceError as exc:
                return _Outcome(str(exc))
            except Exception as exc:  # a bug in a source: loud, then supervised
                log.exception("%s: reading the source failed unexpectedly", self.name)
                return _Outcome(repr(exc))
            now = time.monotonic()
            if captured is not None:
                last = now
                self._seq += 1
                image, pose = captured
                self._hand_over(Frame(self.name, time.time(), image, self._seq, pose))
                continue
            if source.ended:
                return _Outcome(None, ended=True)
            if now - last >= stall:
                return _Outcome(f"no frame for {now - last:.1f} s (watchdog)")
        return _Outcome(None)

    # -- loop side --------------------------------------------------------------------------

    def _deliver(self, items: list[Frame]) -> None:
        """Frames from the capture thread into the queue, dropping the oldest when full."""
        health = self._health
        for frame in items:
            health.reads += 1
            health.last_message_at = frame.t
            if self.queue.full():
                self.queue.get_nowait()
                self._dropped += 1
                if not self._dropping:  # normal between scans, when nothing reads the frames
                    log.info("%s: frame queue full, keeping the newest frames", self.name)
                self._dropping = True
            else:
                self._dropping = False
            self.queue.put_nowait(frame)
        self._proved = True
        self._last_frame = time.monotonic()
        self._notify()

    def _end(self) -> None:
        """A finite source (file, folder) ended: the camera stops there."""
        if self._stopping.is_set():
            return
        log.info("%s: source ended", self.name)
        self._health.state = HealthState.STOPPED
        self._stopping.set()
        self._link_lost.set()
