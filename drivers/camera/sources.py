"""Where frames come from: streams, snapshot URLs, USB devices, video files, image folders.

Every source is a :class:`FrameSource`: ``open()``, ``read(timeout)``, ``close()``, all called on
one capture thread (OpenCV captures are not thread-safe), plus :meth:`FrameSource.interrupt`,
the one method another thread may call, to cut a wait short when the driver stops. Sources know
nothing of asyncio, health or reconnecting: they open, deliver images or raise
:class:`SourceError`, and the driver decides what to do.

:func:`make_source` picks the source from a URL (``kind="auto"``) or an explicit kind:

* ``stream``: ``rtsp://``/``rtmp://`` URLs, and ``http(s)://`` URLs that end in ``.mjpg`` or
  ``.mjpeg`` or contain ``stream``; read by ``cv2.VideoCapture`` (FFmpeg) with open and read
  timeouts.
* ``snapshot``: any other ``http(s)://`` URL; one GET per frame with ``http.client``, the
  ``X-Edgecount-Pose`` header read.
* ``device``: ``usb:N`` or ``/dev/videoN``; ``cv2.VideoCapture(N)``.
* ``file``: a video file path (or ``file://`` URL); ``cv2.VideoCapture(path)``.
* ``folder``: a folder of images, read in name order with ``cv2.imread``.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import logging
import socket
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit
from urllib.request import url2pathname

import cv2
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]
Captured = tuple[Image, float | None]
"""One image (``uint8`` BGR) and the camera pose when the source reports one."""

KINDS = ("auto", "stream", "snapshot", "device", "file", "folder")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
POSE_HEADER = "X-Edgecount-Pose"
"""Response header with the camera pose (a float), sent by the camera simulator."""
MAX_SNAPSHOT_BYTES = 32 * 1024 * 1024


class SourceError(Exception):
    """A source could not be opened or read; the driver logs it and reconnects."""


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def as_bgr(image: npt.NDArray[np.generic]) -> Image:
    """``image`` as a ``uint8`` BGR array, converting grey and BGRA images."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        return np.asarray(cv2.cvtColor(array, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if array.ndim == 3 and array.shape[2] == 4:
        return np.asarray(cv2.cvtColor(array, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    return array


def parse_pose(value: str | None) -> float | None:
    """The pose from a header value; None when absent or not a finite number."""
    if value is None:
        return None
    try:
        pose = float(value)
    except ValueError:
        log.warning("ignoring a malformed %s header: %r", POSE_HEADER, value[:40])
        return None
    return pose if np.isfinite(pose) else None


class FrameSource(ABC):
    """Frames from one camera, read on one thread.

    Attributes:
        url: What was opened (passwords redacted in logs via :func:`redact`).
        ended: Set by finite sources (a file or folder without ``loop``) once every frame
            was delivered; :meth:`read` then returns None.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.ended = False
        self._interrupted = threading.Event()

    @abstractmethod
    def open(self) -> None:
        """Open (or re-open) the source.

        Raises:
            SourceError: The source cannot be opened.
        """

    @abstractmethod
    def read(self, timeout: float) -> Captured | None:
        """The next frame, waiting at most about ``timeout`` seconds (see each source).

        Returns:
            The frame, or None when none is due yet or the source :attr:`ended`.

        Raises:
            SourceError: The source failed; it should be closed and opened again.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the source (it may be opened again)."""

    def interrupt(self) -> None:
        """Cut waits short (thread-safe). Blocking OpenCV reads end at their own timeout."""
        self._interrupted.set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(self.url)!r})"


class _Pacer:
    """Spaces frames ``1/fps`` apart (no pacing when ``fps`` is None); waits are interruptible."""

    def __init__(self, fps: float | None, interrupted: threading.Event) -> None:
        self.period = 1.0 / fps if fps else 0.0
        self.interrupted = interrupted
        self.due = time.monotonic()

    def reset(self) -> None:
        self.due = time.monotonic()

    def ready(self, timeout: float) -> bool:
        """Wait until the next frame is due; False if that is more than ``timeout`` away."""
        if not self.period:
            return True
        delay = self.due - time.monotonic()
        if delay > timeout:
            self.interrupted.wait(max(timeout, 0.0))
            return False
        if delay > 0 and self.interrupted.wait(delay):
            return False
        self.due = max(self.due + self.period, time.monotonic() - self.period)
        return True


class _CaptureSource(FrameSource):
    """A source read through ``cv2.VideoCapture``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._capture: cv2.VideoCapture | None = None

    @abstractmethod
    def _open_capture(self) -> cv2.VideoCapture: ...

    def open(self) -> None:
        self.close()
        self._interrupted.clear()
        self.ended = False
        try:
            capture = self._open_capture()
        except cv2.error as exc:
            raise SourceError(f"{redact(self.url)}: {exc}") from exc
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{redact(self.url)}: cannot open")
        self._capture = capture

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def _grab(self) -> Image | None:
        """One decoded image, or None when the capture returned nothing."""
        if self._capture is None:
            raise SourceError(f"{redact(self.url)}: not open")
        try:
            ok, image = self._capture.read()
        except cv2.error as exc:
            raise SourceError(f"{redact(self.url)}: {exc}") from exc
        if not ok or image is None:
            return None
        return as_bgr(image)


class StreamSource(_CaptureSource):
    """An RTSP or HTTP (MJPEG) stream through FFmpeg.

    ``timeout`` bounds opening and each read; a read that times out (or fails) leaves the
    FFmpeg session unusable, so it raises :class:`SourceError` and the driver reconnects.
    The part headers of an MJPEG stream (and so the pose) are not visible through OpenCV.
    """

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(url)
        self.timeout = timeout

    def _open_capture(self) -> cv2.VideoCapture:
        ms = max(1, round(self.timeout * 1000))
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)

    def read(self, timeout: float) -> Captured | None:  # noqa: ARG002 - fixed at open
        image = self._grab()
        if image is None:
            raise SourceError(f"{redact(self.url)}: stream read failed or timed out")
        return image, None


class DeviceSource(_CaptureSource):
    """A local camera: ``usb:N`` (index N) or a ``/dev/videoN`` path."""

    def __init__(self, url: str, device: int | str) -> None:
        super().__init__(url)
        self.device = device

    def _open_capture(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(self.device)

    def read(self, timeout: float) -> Captured | None:  # noqa: ARG002 - the device paces
        image = self._grab()
        if image is None:
            raise SourceError(f"{self.url}: device read failed")
        return image, None


class FileSource(_CaptureSource):
    """A video file, optionally looped and paced to ``fps`` (None: as fast as it decodes)."""

    def __init__(self, path: Path, *, loop: bool = False, fps: float | None = None) -> None:
        super().__init__(str(path))
        self.path = path
        self.loop = loop
        self._pacer = _Pacer(fps, self._interrupted)
        self._frames_this_pass = 0

    def _open_capture(self) -> cv2.VideoCapture:
        self._frames_this_pass = 0
        self._pacer.reset()
        return cv2.VideoCapture(str(self.path))

    def read(self, timeout: float) -> Captured | None:
        if self.ended or not self._pacer.ready(timeout):
            return None
        image = self._grab()
        if image is None and self.loop and self._frames_this_pass:
            log.debug("%s: end of file, looping", self.path)
            self.open()
            image = self._grab()
        if image is None:
            if not self._frames_this_pass:
                raise SourceError(f"{self.path}: no frame could be decoded")
            self.ended = True
            return None
        self._frames_this_pass += 1
        return image, None


class FolderSource(FrameSource):
    """The images of a folder in name order, optionally looped and paced to ``fps``.

    A file that is not a readable image is skipped with a warning.
    """

    def __init__(self, path: Path, *, loop: bool = False, fps: float | None = None) -> None:
        super().__init__(str(path))
        self.path = path
        self.loop = loop
        self._pacer = _Pacer(fps, self._interrupted)
        self._files: list[Path] = []
        self._next = 0

    def open(self) -> None:
        self._interrupted.clear()
        self.ended = False
        try:
            files = sorted(
                p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        except OSError as exc:
            raise SourceError(f"{self.path}: {exc}") from exc
        if not files:
            raise SourceError(f"{self.path}: no images ({', '.join(IMAGE_SUFFIXES)})")
        self._files, self._next = files, 0
        self._pacer.reset()

    def read(self, timeout: float) -> Captured | None:
        if self.ended or not self._pacer.ready(timeout):
            return None
        if self._next >= len(self._files):
            if not self.loop:
                self.ended = True
                return None
            self._next = 0
        path = self._files[self._next]
        self._next += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("%s: not a readable image, skipped", path)
            return None
        return as_bgr(image), None

    def close(self) -> None:
        self._files = []


class SnapshotSource(FrameSource):
    """An HTTP(S) URL that answers one JPEG (or PNG) per GET, polled at ``fps``.

    ``open`` fetches a first image (so a camera that does not answer fails to connect);
    ``timeout`` bounds connecting and each socket read. ``user:password@`` in the URL is sent
    as HTTP basic authentication. :meth:`interrupt` aborts a request in flight.
    """

    def __init__(self, url: str, timeout: float, fps: float | None = None) -> None:
        super().__init__(url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{redact(url)}: a snapshot URL must be http(s)://host/...")
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"User-Agent": "edgecount-camera", "Accept": "image/*"}
        if parts.username is not None:
            userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            token = base64.b64encode(userinfo.encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._pacer = _Pacer(fps, self._interrupted)
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None
        self._first: Captured | None = None

    def open(self) -> None:
        self._interrupted.clear()
        self._pacer.reset()
        self._first = self._fetch()

    def read(self, timeout: float) -> Captured | None:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if not self._pacer.ready(timeout):
            return None
        return self._fetch()

    def close(self) -> None:
        self._first = None

    def interrupt(self) -> None:
        super().interrupt()
        with self._lock:
            connection = self._connection
        sock = connection.sock if connection is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _fetch(self) -> Captured:
        if self._interrupted.is_set():
            raise SourceError(f"{redact(self.url)}: interrupted")
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = kind(self._host, self._port, timeout=self.timeout)
        with self._lock:
            self._connection = connection
        try:
            connection.request("GET", self._target, headers=self._headers)
            response = connection.getresponse()
            body = response.read(MAX_SNAPSHOT_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise SourceError(f"{redact(self.url)}: {exc or type(exc).__name__}") from exc
        finally:
            with self._lock:
                self._connection = None
            connection.close()
        if response.status != 200:
            raise SourceError(f"{redact(self.url)}: HTTP {response.status} {response.reason}")
        if len(body) > MAX_SNAPSHOT_BYTES:
            raise SourceError(f"{redact(self.url)}: snapshot larger than {MAX_SNAPSHOT_BYTES} B")
        image = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"{redact(self.url)}: the answer is not an image")
        return as_bgr(image), parse_pose(response.getheader(POSE_HEADER))


def infer_kind(url: str) -> str:
    """The source kind of ``url`` (see the module table).

    Raises:
        ValueError: Unknown scheme, or a path that does not exist.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in STREAM_SCHEMES:
        return "stream"
    if scheme in ("http", "https"):
        path = parts.path.lower()
        if path.endswith((".mjpg", ".mjpeg")) or "stream" in url.lower():
            return "stream"
        return "snapshot"
    if scheme == "usb" or url.startswith("/dev/video"):
        return "device"
    if scheme in ("", "file"):
        path_ = _local_path(url)
        if path_.is_dir():
            return "folder"
        if path_.is_file():
            return "file"
        raise ValueError(f"{url}: no such video file or image folder")
    raise ValueError(
        f"{redact(url)}: unknown camera URL scheme {scheme!r} (expected rtsp://, http(s)://, "
        "usb:N, /dev/videoN, a video file or a folder of images)"
    )


def make_source(
    url: str,
    kind: str = "auto",
    *,
    timeout: float = 5.0,
    fps: float | None = None,
    loop: bool = False,
) -> FrameSource:
    """The source for ``url``; nothing is opened yet.

    Args:
        url: Where the camera is (see the module table).
        kind: One of :data:`KINDS`; ``auto`` infers it from ``url``.
        timeout: Seconds to open and to wait for each frame of a stream or snapshot.
        fps: Pace of snapshot polls and of file and folder frames; None: as fast as they come.
        loop: Start files and folders over at their end.

    Raises:
        ValueError: Unknown kind or scheme, a path that does not exist, or a URL that does not
            fit ``kind``; the message names the URL.
    """
    if kind not in KINDS:
        raise ValueError(f"{redact(url)}: unknown camera kind {kind!r} (one of {', '.join(KINDS)})")
    chosen = infer_kind(url) if kind == "auto" else kind
    if chosen == "stream":
        return StreamSource(url, timeout)
    if chosen == "snapshot":
        return SnapshotSource(url, timeout, fps)
    if chosen == "device":
        return DeviceSource(url, _device(url))
    path = _local_path(url)
    if chosen == "file":
        if not path.is_file():
            raise ValueError(f"{url}: no such video file")
        return FileSource(path, loop=loop, fps=fps)
    if not path.is_dir():
        raise ValueError(f"{url}: no such image folder")
    return FolderSource(path, loop=loop, fps=fps)


def _local_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        return Path(url2pathname(parts.path))
    return Path(url)


def _device(url: str) -> int | str:
    """The OpenCV device of ``usb:N``, ``N`` or ``/dev/videoN``."""
    text = url.removeprefix("usb:").removeprefix("//")
    if text.isdigit():
        return int(text)
    if text.startswith("/dev/"):
        return text
    raise ValueError(f"{url}: a camera device is usb:N or /dev/videoN")
