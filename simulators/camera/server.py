"""A simulated IP camera: JPEG snapshots and an MJPEG stream over HTTP, with fault controls.

One producer thread renders frames at ``fps`` (only while someone is watching) and encodes each
once; every client is served from that one latest frame, as from a real sensor. The HTTP side
is the standard library's :class:`~http.server.ThreadingHTTPServer` on a background thread,
with at most ``max_clients`` connections (more are closed at once and counted).

Endpoints:

* ``GET /snapshot.jpg``: one JPEG.
* ``GET /stream.mjpg``: ``multipart/x-mixed-replace``, one JPEG part per frame.
* ``GET /truth.json``: the owner's ground truth (:attr:`CameraServer.truth`), 404 when unset.

Camera answers carry ``X-Edgecount-Frame: <index>`` and, when the provider gives a pose,
``X-Edgecount-Pose: <float>`` (the stream on every part). Faults, for tests and the CLI:
:meth:`CameraServer.stall` (connections stay open, nothing more is sent: snapshot requests
hang, streams stop), :meth:`CameraServer.resume` and :meth:`CameraServer.drop_clients`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import cv2
import numpy as np
import numpy.typing as npt

from drivers.camera.sources import POSE_HEADER

log = logging.getLogger(__name__)

FrameProvider = Callable[[int], tuple[npt.NDArray[np.uint8], float | None]]
"""Frame index (0, 1, 2, ...) -> (BGR image, camera pose or None)."""

BOUNDARY = "edgecountframe"
FRAME_HEADER = "X-Edgecount-Frame"
_IDLE_AFTER = 2.0
"""Seconds after the last request for a snapshot that the producer keeps rendering."""
_WAKE = 0.5
"""Longest a waiting handler or the producer sleeps before looking at its state again."""


@dataclass(frozen=True, slots=True)
class ServerStats:
    """Counters of a :class:`CameraServer` (a copy; the server's own keep changing).

    Attributes:
        frames_rendered: Frames the provider produced and were encoded.
        frames_served: JPEGs sent: snapshots plus stream parts.
        snapshots: Snapshot answers sent.
        streams: Stream connections opened, in total.
        clients: Connections open now (any endpoint).
        streaming: Stream connections open now.
        refused: Connections closed at once because ``max_clients`` were open.
        dropped_clients: Connections closed by :meth:`CameraServer.drop_clients`.
        render_errors: Frames the provider failed to produce (logged).
    """

    frames_rendered: int = 0
    frames_served: int = 0
    snapshots: int = 0
    streams: int = 0
    clients: int = 0
    streaming: int = 0
    refused: int = 0
    dropped_clients: int = 0
    render_errors: int = 0


@dataclass(frozen=True, slots=True)
class _Encoded:
    index: int
    jpeg: bytes
    pose: float | None
    at: float  # time.monotonic() when it was published

    def headers(self) -> list[tuple[str, str]]:
        found = [("Content-Type", "image/jpeg"), ("Content-Length", str(len(self.jpeg)))]
        found.append((FRAME_HEADER, str(self.index)))
        if self.pose is not None:
            found.append((POSE_HEADER, repr(float(self.pose))))
        return found


class CameraServer:
    """A simulated HTTP camera serving the frames of ``frames``.

    Args:
        frames: The frame provider, called on the producer thread with 0, 1, 2, ...
        fps: Frames per second of the stream (and the freshness of snapshots).
        host: Address to bind.
        port: Port to bind; 0 picks a free one (read :attr:`port` after :meth:`start`).
        jpeg_quality: JPEG quality of the served frames.
        max_clients: Most connections served at once.
    """

    def __init__(
        self,
        frames: FrameProvider,
        fps: float = 10.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        jpeg_quality: int = 85,
        max_clients: int = 16,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        self.frames = frames
        self.fps = fps
        self.host = host
        self.jpeg_quality = jpeg_quality
        self.max_clients = max_clients
        self._bind_port = port
        self._cond = threading.Condition()
        self._stats = ServerStats()
        self._latest: _Encoded | None = None
        self._stalled = False
        self._stopping = False
        self._generation = 0  # bumped by drop_clients: open handlers compare and leave
        self._last_demand = -1e9
        self._waiting_snapshots = 0
        self._connections: set[socket.socket] = set()
        self._truth: bytes | None = None
        self._httpd: _HttpServer | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve on background threads; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("camera server already started")
        httpd = _HttpServer((self.host, self._bind_port), _Handler, self)
        self._httpd = httpd
        self._threads = [
            threading.Thread(target=httpd.serve_forever, args=(0.1,), name="camera-http"),
            threading.Thread(target=self._produce, name="camera-frames"),
        ]
        for thread in self._threads:
            thread.start()
        log.info("camera simulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Close every connection and stop the threads (prompt, even while stalled)."""
        httpd = self._httpd
        if httpd is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._shutdown_connections()
        httpd.shutdown()
        httpd.server_close()  # joins the handler threads (block_on_close)
        for thread in self._threads:
            thread.join()
        self._httpd = None
        log.info("camera simulator stopped")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port bound (after :meth:`start`)."""
        if self._httpd is None:
            raise RuntimeError("camera server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port`` of the server (after :meth:`start`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def snapshot_url(self) -> str:
        """The snapshot endpoint."""
        return f"{self.url}/snapshot.jpg"

    @property
    def stream_url(self) -> str:
        """The MJPEG stream endpoint."""
        return f"{self.url}/stream.mjpg"

    # -- owner controls ----------------------------------------------------------------------

    @property
    def truth(self) -> Any:
        """JSON-ready ground truth served at ``/truth.json`` (None: 404)."""
        return None if self._truth is None else json.loads(self._truth)

    @truth.setter
    def truth(self, value: Any) -> None:
        self._truth = None if value is None else json.dumps(value).encode()

    @property
    def stats(self) -> ServerStats:
        """A copy of the counters."""
        with self._cond:
            return self._stats

    @property
    def stalled(self) -> bool:
        """Whether :meth:`stall` is in effect."""
        return self._stalled

    def stall(self) -> None:
        """Keep connections open but send nothing more until :meth:`resume`."""
        with self._cond:
            self._stalled = True
            self._cond.notify_all()
        log.warning("camera simulator stalled")

    def resume(self) -> None:
        """End a stall: waiting snapshots are answered and streams go on."""
        with self._cond:
            self._stalled = False
            self._cond.notify_all()
        log.warning("camera simulator resumed")

    def drop_clients(self) -> int:
        """Close every open connection; returns how many were closed."""
        with self._cond:
            self._generation += 1
            count = len(self._connections)
            self._count(dropped_clients=self._stats.dropped_clients + count)
            self._cond.notify_all()
        self._shutdown_connections()
        log.warning("camera simulator dropped %d clients", count)
        return count

    def wait_for(self, predicate: Callable[[ServerStats], bool], timeout: float) -> bool:
        """Block until ``predicate(stats)`` holds or ``timeout`` seconds passed; the outcome."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._stats), timeout)

    # -- producer ----------------------------------------------------------------------------

    def _produce(self) -> None:
        """Render at ``fps`` while anyone watches; the provider runs outside the lock."""
        period = 1.0 / self.fps
        index = 0
        due = time.monotonic()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or self._wanted(), _WAKE)
                if self._stopping:
                    return
                if not self._wanted():
                    continue
                delay = due - time.monotonic()
                if delay > 0 and self._cond.wait_for(lambda: self._stopping, delay):
                    return
            encoded = self._render(index)
            index += 1  # a failed frame is skipped, as a camera skips one it could not read
            due = max(due + period, time.monotonic() - period)
            if encoded is None:
                continue
            with self._cond:
                self._latest = encoded
                self._count(frames_rendered=self._stats.frames_rendered + 1)
                self._cond.notify_all()

    def _wanted(self) -> bool:
        busy = self._stats.streaming > 0 or self._waiting_snapshots > 0
        recent = time.monotonic() - self._last_demand < _IDLE_AFTER
        return not self._stalled and (busy or recent)

    def _render(self, index: int) -> _Encoded | None:
        try:
            image, pose = self.frames(index)
            jpeg = encode_jpeg(image, self.jpeg_quality)
        except Exception:
            log.exception("camera simulator: frame %d failed", index)
            with self._cond:
                self._count(render_errors=self._stats.render_errors + 1)
            return None
        return _Encoded(index, jpeg, pose, time.monotonic())

    # -- handler side (called on handler threads) --------------------------------------------

    def _count(self, **changes: int) -> None:
        """Update counters; the caller holds the lock."""
        self._stats = replace(self._stats, **changes)

    def _connected(self, conn: socket.socket) -> bool:
        with self._cond:
            if self._stopping or len(self._connections) >= self.max_clients:
                self._count(refused=self._stats.refused + 1)
                return False
            self._connections.add(conn)
            self._count(clients=len(self._connections))
            self._cond.notify_all()
            return True

    def _disconnected(self, conn: socket.socket) -> None:
        with self._cond:
            self._connections.discard(conn)
            self._count(clients=len(self._connections))
            self._cond.notify_all()

    def _shutdown_connections(self) -> None:
        with self._cond:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _next_frame(self, after: int, fresh_since: float | None) -> _Encoded | None:
        """Wait for a frame to send; None when the connection should end.

        The frame must be newer than index ``after`` and, unless ``fresh_since`` is None, have
        been published at or after ``fresh_since`` (monotonic seconds): a snapshot or the first
        part of a stream is never a frame left over from an idle time.
        """
        with self._cond:
            generation = self._generation

            def ready() -> bool:
                latest = self._latest
                if self._stopping or self._generation != generation:
                    return True
                if self._stalled or latest is None or latest.index <= after:
                    return False
                return fresh_since is None or latest.at >= fresh_since

            while not ready():
                self._cond.wait(_WAKE)
            if self._stopping or self._generation != generation:
                return None
            return self._latest

    def _snapshot(self) -> _Encoded | None:
        now = time.monotonic()
        with self._cond:
            self._last_demand = now
            self._waiting_snapshots += 1
            self._cond.notify_all()
        try:
            return self._next_frame(-1, now - 1.0 / self.fps)
        finally:
            with self._cond:
                self._waiting_snapshots -= 1

    def _served(self, *, snapshot: bool) -> None:
        with self._cond:
            self._count(
                frames_served=self._stats.frames_served + 1,
                snapshots=self._stats.snapshots + int(snapshot),
            )

    def _streaming(self, delta: int) -> None:
        with self._cond:
            self._count(
                streaming=self._stats.streaming + delta,
                streams=self._stats.streams + max(delta, 0),
            )
            self._cond.notify_all()


def encode_jpeg(image: npt.NDArray[np.uint8], quality: int = 85) -> bytes:
    """``image`` (BGR) as JPEG bytes.

    Raises:
        ValueError: The image cannot be encoded.
    """
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} {image.dtype} image as JPEG")
    return np.asarray(data, dtype=np.uint8).tobytes()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = False  # joined by server_close(): stop() leaves no handler behind
    block_on_close = True

    def __init__(
        self, address: tuple[str, int], handler: type[_Handler], camera: CameraServer
    ) -> None:
        self.camera = camera
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.camera._connected(request):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.camera._disconnected(request)
        super().shutdown_request(request)

    def handle_error(self, _request: Any, client_address: Any) -> None:
        # Called inside the handler's ``except``: a client that went away, or a dropped one.
        log.debug(
            "camera simulator: connection from %s ended: %r", client_address, sys.exc_info()[1]
        )


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    timeout = 30.0  # a client that stops reading for this long is dropped
    server_version = "edgecount-camera-sim/1"

    def do_GET(self) -> None:
        camera = self.server.camera
        path = self.path.split("?", 1)[0]
        if path == "/snapshot.jpg":
            frame = camera._snapshot()
            if frame is None:
                return
            self.send_response(200)
            self._send_headers([*frame.headers(), ("Cache-Control", "no-store")])
            self.wfile.write(frame.jpeg)
            camera._served(snapshot=True)
        elif path == "/stream.mjpg":
            self._stream(camera)
        elif path == "/truth.json" and camera._truth is not None:
            self._send_body(200, "application/json", camera._truth)
        elif path == "/":
            index = "/snapshot.jpg\n/stream.mjpg\n/truth.json\n"
            self._send_body(200, "text/plain; charset=utf-8", index.encode())
        else:
            self._send_body(404, "text/plain; charset=utf-8", b"not found\n")

    def _stream(self, camera: CameraServer) -> None:
        self.send_response(200)
        self._send_headers(
            [
                ("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}"),
                ("Cache-Control", "no-store"),
                ("Connection", "close"),
            ]
        )
        camera._streaming(+1)
        try:
            sent = -1
            fresh_since: float | None = time.monotonic() - 1.0 / camera.fps
            while (frame := camera._next_frame(sent, fresh_since)) is not None:
                fresh_since = None
                head = "".join(f"{name}: {value}\r\n" for name, value in frame.headers())
                self.wfile.write(f"--{BOUNDARY}\r\n{head}\r\n".encode("ascii"))
                self.wfile.write(frame.jpeg)
                self.wfile.write(b"\r\n")
                self.wfile.flush()
                sent = frame.index
                camera._served(snapshot=False)
        finally:
            camera._streaming(-1)

    def _send_headers(self, headers: list[tuple[str, str]]) -> None:
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def _send_body(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self._send_headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("camera simulator: %s %s", self.address_string(), format % args)
