"""Logging setup of the command line: plain text or one JSON object per line.

``--log-format json`` (or ``EDGECOUNT_LOG_FORMAT=json``, which the systemd units set) writes
each record as one line ``{"ts", "level", "logger", "msg"[, "exc"]}`` on stderr, which
journald stores as one entry and log shippers parse without a grok pattern. Secrets are
never formatted into log messages; :class:`JsonFormatter` adds nothing beyond the record's
own message and traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

__all__ = ["FORMATS", "JsonFormatter", "configure", "format_from_env"]

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")
ENV = "EDGECOUNT_LOG_FORMAT"
_OURS = "_edgecount_handler"
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC ISO-8601), level, logger, msg and exc."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (newlines inside strings are escaped)."""
        entry: dict[str, str] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def format_from_env(default: LogFormat = "text") -> LogFormat:
    """The format ``EDGECOUNT_LOG_FORMAT`` asks for (``text`` or ``json``), else ``default``."""
    value = os.environ.get(ENV, "").strip().lower()
    return value if value in FORMATS else default


def configure(
    level: int, log_format: LogFormat | None = None, stream: TextIO | None = None
) -> None:
    """Log records of ``level`` and above to ``stream`` (stderr) in ``log_format``.

    Like :func:`logging.basicConfig`, it leaves a root logger that has handlers set up by
    someone else (a test runner, an embedding program) alone; its own earlier handler is
    replaced.

    Args:
        level: The root logger's level.
        log_format: ``text`` or ``json``; None reads ``EDGECOUNT_LOG_FORMAT`` (default text).
        stream: Where to write; stderr when None.
    """
    root = logging.getLogger()
    if any(not getattr(h, _OURS, False) for h in root.handlers):
        return
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _OURS, True)
    chosen = log_format or format_from_env()
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT))
    root.addHandler(handler)
    root.setLevel(level)
