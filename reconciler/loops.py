"""Helpers of the reconciler service's two supervised loops that hold no connection.

:class:`LoopHealth` is how a loop (the ingest worker, the store publisher) reports failures to
``/health`` and ``/metrics``; :func:`store_streams` lists what the store publisher sends;
:class:`BatchOutcome` is what one ingest batch produced; :class:`ServiceStats` the counters.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy.exc as sa_exc

from edgecount.mqtt import MqttSettings
from reconciler.console import outbox
from reconciler.engine import Engine, Outgoing

__all__ = [
    "BatchOutcome",
    "LoopHealth",
    "ServiceStats",
    "StoreStream",
    "database_unavailable",
    "describe_session",
    "store_streams",
]

log = logging.getLogger(__name__)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is away (retry later) rather than a bad message."""
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


@dataclass(frozen=True, slots=True)
class StoreStream:
    """Messages the store holds for the broker: ``fetch`` what is due, ``done`` once acked.

    Attributes:
        kind: Name in logs and in :attr:`ServiceStats.published`.
        fetch: ``(row_id, message)`` pairs not yet acknowledged by the broker (blocking).
        done: Records that the broker acknowledged ``row_id`` (blocking).
        counter: Its ``/metrics`` counter (``edgecount_reconciler_{counter}_total``).
    """

    kind: str
    fetch: Callable[[], list[tuple[int, Outgoing]]]
    done: Callable[[int], None]
    counter: str
    site: str = ""
    """The site whose store holds it."""

    def key(self, row_id: int) -> tuple[str, str, int]:
        """What names one of its messages among every site's streams."""
        return (self.site, self.kind, row_id)


def store_streams(engine: Engine) -> list[StoreStream]:
    """Every stream the store publisher sends, in order. A new stream is one more line here."""
    site = engine.site
    return [
        StoreStream(
            "adjustment",
            engine.pending_adjustments,
            engine.adjustment_published,
            "adjustments_published",
            site,
        ),
        StoreStream("decision", engine.unannounced, engine.announced, "decisions_announced", site),
        StoreStream(
            "decision-out",
            engine.pending_decisions,
            engine.decision_published,
            "decisions_published",
            site,
        ),
        StoreStream(
            "console",
            lambda: outbox.pending(engine.store.engine),
            lambda row_id: outbox.mark_published(engine.store.engine, row_id, datetime.now(UTC)),
            "console_messages_published",
            site,
        ),
    ]


@dataclass(slots=True)
class LoopHealth:
    """How a supervised loop fares, for ``/health`` and ``/metrics``.

    Attributes:
        errors: Failures since start.
        failing: Failures in a row (0: healthy).
        failing_since: ``time.monotonic()`` of the first failure in a row.
        last_error: ``Type: message`` of the newest failure.
    """

    errors: int = 0
    failing: int = 0
    failing_since: float | None = None
    last_error: str | None = None

    @property
    def healthy(self) -> bool:
        """No failure since the last success."""
        return self.failing == 0

    def failed(self, exc: BaseException) -> None:
        """Count a failure."""
        self.errors += 1
        self.failing += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.last_error = "".join(traceback.format_exception_only(exc)).strip()[:500]

    def recovered(self) -> bool:
        """Count a success; True when it ends a run of failures."""
        was_failing = self.failing > 0
        self.failing = 0
        self.failing_since = None
        return was_failing

    def report(self) -> dict[str, Any]:
        """JSON-able state (``failing_seconds`` is None when healthy)."""
        since = self.failing_since
        return {
            "healthy": self.healthy,
            "errors_total": self.errors,
            "failing_seconds": None if since is None else round(time.monotonic() - since, 1),
            "last_error": self.last_error,
        }


@dataclass(slots=True)
class ServiceStats:
    """Counters of the running service."""

    received: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    acked: int = 0
    connects: int = 0
    dropped: int = 0
    connection_dropped: int = 0  # by MQTT connections closed since (see MqttConnection.dropped)
    held_back: int = 0  # times their network thread waited for room (MqttConnection.waits)
    batches: int = 0
    statuses: int = 0
    frames: int = 0
    published: dict[str, int] = field(default_factory=dict)
    """Store-stream messages the broker acknowledged, by :attr:`StoreStream.kind`."""

    @property
    def adjustments_published(self) -> int:
        """Adjustments the broker acknowledged (and the store recorded as published)."""
        return self.published.get("adjustment", 0)

    @property
    def decisions_announced(self) -> int:
        """Decision clears the broker acknowledged."""
        return self.published.get("decision", 0)

    @property
    def decisions_published(self) -> int:
        """``edgecount.decision/1`` messages the broker acknowledged."""
        return self.published.get("decision-out", 0)


@dataclass(slots=True)
class BatchOutcome:
    """What handling a batch produced (the service's counters move only once it committed)."""

    out: list[Outgoing] = field(default_factory=list)
    letters: dict[int, Outgoing] = field(default_factory=dict)  # batch index → dead letter
    applied: int = 0
    duplicates: int = 0
    statuses: int = 0
    frames: int = 0  # camera frames kept (an older one than the stored is not)

    def merge(self, other: BatchOutcome, offset: int) -> None:
        """Add ``other`` (of a sub-batch starting at ``offset``) to this outcome."""
        self.merge_at(other, {i: offset + i for i in other.letters})

    def merge_at(self, other: BatchOutcome, indices: Sequence[int] | Mapping[int, int]) -> None:
        """Add ``other``, the outcome of a part of this batch: its message ``i`` is this
        batch's message ``indices[i]``."""
        self.out += other.out
        self.letters.update({indices[i]: letter for i, letter in other.letters.items()})
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.statuses += other.statuses
        self.frames += other.frames


def describe_session(settings: MqttSettings, client_id: str) -> None:
    """Log what the broker keeps while the service is away (and what is lost)."""
    expiry = settings.session_expiry
    if expiry is None:
        log.warning(
            "MQTT clean start: counts published while the reconciler is down are lost "
            "(only the latest retained count per location comes back); set "
            "mqtt_session_expiry_seconds to keep them on the broker"
        )
    elif settings.protocol == "3.1.1":
        log.info(
            "MQTT 3.1.1 persistent session (clean session off) as %s: the broker decides "
            "how long it lives (Mosquitto: persistent_client_expiration)",
            client_id,
        )
    else:
        log.info("MQTT 5 persistent session as %s, expiry %d s", client_id, expiry)
