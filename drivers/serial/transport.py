"""Serial links opened by URL with pyserial: device and pty paths, ``socket://``, ``loop://``.

``serial.serial_for_url`` picks the implementation from the URL, so the same driver reaches a
module on ``/dev/ttyUSB0``, a pty made by the simulator, a serial-to-TCP bridge (ser2net, or
the simulator) at ``socket://HOST:PORT``, or a loopback (``loop://``, for tests). This module
is the only place that imports pyserial; everything it raises is a :class:`TransportError`.
"""

from __future__ import annotations

import logging

import serial

log = logging.getLogger(__name__)

#: The module family's factory default.
DEFAULT_BAUDRATE = 115200
#: Most bytes taken from the port in one read.
READ_CHUNK = 4096


class TransportError(OSError):
    """The port could not be opened, or failed (unplugged, closed by the peer, I/O error)."""


class SerialLink:
    """One open serial port.

    Reads and writes may come from different threads (one reader thread, one writer at a
    time); pyserial's implementations allow that.

    Args:
        port: An open pyserial port.
    """

    def __init__(self, port: serial.Serial) -> None:
        self._port = port
        self.url = str(port.portstr)

    def read_some(self) -> bytes:
        """What arrived, at least one byte or empty after the port's read timeout.

        Raises:
            TransportError: The port failed or was closed by its peer (EOF on ``socket://``).
        """
        port = self._port
        try:
            waiting = port.in_waiting
            data: bytes = port.read(min(max(waiting, 1), READ_CHUNK))
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            # A port closed under a read shows up as TypeError/AttributeError inside pyserial.
            raise TransportError(f"{self.url}: read failed: {exc}") from exc
        return data

    def write(self, data: bytes) -> None:
        """Write all of ``data`` (blocks at most the port's write timeout).

        Raises:
            TransportError: The port failed, or the write timed out.
        """
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            raise TransportError(f"{self.url}: write failed: {exc}") from exc

    def close(self) -> None:
        """Close the port (idempotent; errors are logged, not raised)."""
        try:
            self._port.close()
        except (serial.SerialException, OSError) as exc:
            log.debug("%s: close failed: %s", self.url, exc)


def open_link(
    url: str,
    *,
    baudrate: int = DEFAULT_BAUDRATE,
    read_timeout: float = 0.05,
    write_timeout: float = 2.0,
) -> SerialLink:
    """Open ``url`` at 8N1 and ``baudrate``.

    Device paths are opened exclusively (a second process gets an error instead of sharing
    the line). ``socket://`` connects with pyserial's own connect timeout (5 s).

    Args:
        url: ``/dev/ttyUSB0``, a pty path, ``socket://HOST:PORT`` or ``loop://``.
        baudrate: Line speed (ignored by ``socket://`` and ``loop://``).
        read_timeout: Longest wait of one :meth:`SerialLink.read_some`, seconds.
        write_timeout: Longest wait of one :meth:`SerialLink.write`, seconds.

    Raises:
        TransportError: The port cannot be opened.
    """
    try:
        port = serial.serial_for_url(
            url,
            baudrate=baudrate,
            timeout=read_timeout,
            write_timeout=write_timeout,
            exclusive=True if "://" not in url else None,
        )
    except (serial.SerialException, OSError, ValueError) as exc:
        raise TransportError(f"cannot open {url}: {exc}") from exc
    return SerialLink(port)
