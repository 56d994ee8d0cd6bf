"""The exit statuses of every ``edgecount`` command, in one place (docs/operations.md lists them).

A command returns an :class:`ExitCode` (an ``int``, so ``sys.exit`` and ``subprocess`` see the
number). The values are part of the interface: scripts and systemd units test them.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    """Why a command ended."""

    OK = 0
    """Done (a scan: complete)."""
    FAILED = 1
    """The work failed (a database error, an approval refused, a write that failed)."""
    USAGE = 2
    """Bad arguments, configuration or input file, or a ``state_dir`` held by another process."""
    INCOMPLETE = 3
    """A scan ended incomplete (published with ``complete: false``)."""
    UNDELIVERED = 4
    """Not every message was acknowledged by the broker (a scan, a scan request), or the SMTP
    server could not be reached (or answered 4xx) within the retry time (``report send``)."""
    TIMEOUT = 5
    """``scan-request --wait``: no result within ``--timeout``."""
    BROKEN_PIPE = 141
    """128 + SIGPIPE: stdout was closed by its reader (``| head``)."""
