"""systemd's service notification protocol (``sd_notify``), without a dependency.

A ``Type=notify`` service tells systemd it is ready (``READY=1``), what it is doing
(``STATUS=…``), that it is alive (``WATCHDOG=1``) and that it is stopping (``STOPPING=1``) by
sending datagrams to the ``AF_UNIX`` socket named in ``$NOTIFY_SOCKET``. A name starting with
``@`` is in the abstract namespace (a leading NUL byte). Outside systemd the variable is unset
and every call does nothing, so the daemons run the same way under a terminal.

The watchdog interval comes from ``$WATCHDOG_USEC`` (set by ``WatchdogSec=``), checked
against ``$WATCHDOG_PID`` when present; the daemons ping at half of it, and only while
healthy (see docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

__all__ = ["Notifier", "watchdog_interval"]


def _address(name: str) -> str | bytes:
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings (half of ``WATCHDOG_USEC``), or None when off.

    None too when ``WATCHDOG_PID`` names another process (the watchdog is someone else's).
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2


class Notifier:
    """Sends notifications to ``$NOTIFY_SOCKET``; a no-op when it is unset.

    Sending never raises: systemd going away must not take the service down with it (a
    failed send is logged once at warning, later ones at debug).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        name = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = _address(name) if name else None
        self.watchdog_seconds = watchdog_interval(env)
        self._warned = False

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notification socket."""
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` (``KEY=value`` each) in one datagram; True when it was sent."""
        if self.address is None or not lines:
            return False
        message = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall(message)
        except OSError as exc:
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            log.log(level, "sd_notify to %r failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (with a status line)."""
        return self.notify("READY=1", *self._status(status))

    def status(self, status: str) -> bool:
        """``STATUS=…``: one line shown by ``systemctl status``."""
        return self.notify(*self._status(status))

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1`` (with a status line)."""
        return self.notify("STOPPING=1", *self._status(status))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: alive and healthy."""
        return self.notify("WATCHDOG=1")

    @staticmethod
    def _status(status: str | None) -> tuple[str, ...]:
        if status is None:
            return ()
        return (f"STATUS={' '.join(status.split())}",)  # one line

    async def feed_watchdog(self, healthy: Callable[[], list[str]]) -> None:
        """Ping the watchdog every half interval while ``healthy()`` returns no reasons.

        Runs until cancelled; returns at once when the watchdog is off. The pings come from
        this event loop, so a blocked loop stops them too. While unhealthy the reasons go to
        ``STATUS=`` so ``systemctl status`` shows why the watchdog is starving.
        """
        if self.address is None or self.watchdog_seconds is None:
            return
        starving = False
        while True:
            reasons = healthy()
            if not reasons:
                if starving:
                    log.warning("healthy again: feeding the watchdog")
                    self.status("healthy")
                starving = False
                self.watchdog()
            elif not starving:
                starving = True
                log.error("unhealthy, not feeding the watchdog: %s", "; ".join(reasons))
                self.status("unhealthy: " + "; ".join(reasons))
            await asyncio.sleep(self.watchdog_seconds)
