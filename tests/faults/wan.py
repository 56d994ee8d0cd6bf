"""A site's WAN link as a TCP relay the test can cut and restore (not a test module).

The site broker's bridge connects to :attr:`WanLink.port`, which relays to the central broker.
:meth:`WanLink.cut` closes every relayed connection and stops listening (the bridge's
reconnects are refused, as with a link that is down); :meth:`WanLink.restore` listens on the
same port again. Threads, not the event loop: a test that blocks its loop for a moment must
not stall the link.
"""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["WanLink"]

CHUNK = 65536


class WanLink:
    """Relay ``127.0.0.1:port`` → ``target_host:target_port`` until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0
        """Connections accepted so far (the bridge's connects and reconnects)."""
        self._start_accepting()

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(16)
        return listener

    def _start_accepting(self) -> None:
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                inside, _ = listener.accept()
            except OSError:
                return  # cut: the listener was closed
            try:
                outside = socket.create_connection(self.target, timeout=5)
            except OSError:
                inside.close()
                continue
            outside.settimeout(None)
            with self._lock:
                self.connections += 1
                self._sockets |= {inside, outside}
            for a, b in ((inside, outside), (outside, inside)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                with self._lock:
                    self._sockets.discard(sock)

    @property
    def up(self) -> bool:
        """Whether the link relays (not cut)."""
        return self._listener.fileno() != -1

    def cut(self) -> None:
        """Drop every relayed connection and refuse new ones."""
        # shutdown first: a thread blocked in accept() keeps a closed socket listening
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        """Listen on the same port again."""
        self._listener = self._listen(self.port)
        self._start_accepting()

    def close(self) -> None:
        """Cut for good."""
        if self.up:
            self.cut()
