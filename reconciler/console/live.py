"""Live updates: the database says what changed, server-sent events tell the pages.

One :class:`LiveFeed` per application polls a handful of cheap figures (the newest message
received, the newest discrepancy change, ...) once a second **while someone listens**, and
sends each listener the topics whose figure moved. The database is the source of truth, so
an instance sharing the database with others (or the CLI approving meanwhile) is seen too.

Topics: ``messages`` (counts, scans and camera frames received), ``discrepancies`` (opened,
updated, decided), ``tasks`` (count tasks), ``gateways`` (status messages), ``book`` (book
snapshots).
``GET /console/events`` streams them as ``event: change`` with ``data: {"topics": [...]}``; a
comment line every 15 s keeps proxies from closing the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from reconciler import schema as t

__all__ = ["POLL_SECONDS", "TOPICS", "LiveFeed", "figures"]

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
STREAM_MAX_SECONDS = 600.0
"""A stream ends after this long; the browser's EventSource reconnects by itself."""

_QUERIES: dict[str, Any] = {
    "messages": sa.select(
        sa.select(sa.func.max(t.counts.c.received_at)).scalar_subquery(),
        sa.select(sa.func.max(t.messages.c.received_at)).scalar_subquery(),
        sa.select(sa.func.max(t.frames.c.received_at)).scalar_subquery(),
    ),
    "discrepancies": sa.select(
        sa.func.max(t.discrepancies.c.updated_at), sa.func.max(t.discrepancies.c.id)
    ),
    "decisions": sa.select(sa.func.max(t.decisions.c.id)),
    "tasks": sa.select(
        sa.func.max(t.count_tasks.c.id),
        sa.func.max(t.count_tasks.c.done_at),
        sa.func.count().filter(t.count_tasks.c.state == "open"),
        # assignments change no task column the figures above see: their audit entries do
        sa.select(sa.func.max(t.audit.c.id))
        .where(t.audit.c.action.like("task.%"))
        .scalar_subquery(),
    ),
    "gateways": sa.select(sa.func.max(t.gateway_status.c.received_at)),
    "book": sa.select(sa.func.max(t.book_meta.c.snapshot_at), sa.func.max(t.book_meta.c.id)),
}
TOPICS = tuple(name for name in _QUERIES if name != "decisions")
"""The topics a page may listen to (a decision is a ``discrepancies`` change)."""


def figures(engine: sa.Engine) -> dict[str, str]:
    """Each topic's figure now (a string that changes when its data does)."""
    out: dict[str, str] = {}
    with engine.connect() as conn:
        for name, query in _QUERIES.items():
            out[name] = repr(tuple(conn.execute(query).one()))
    out["discrepancies"] += out.pop("decisions")
    return out


class LiveFeed:
    """Polls :func:`figures` while anyone listens and fans the changes out.

    Args:
        read: Returns the figures (blocking; run in a worker thread).
        poll_seconds: Seconds between polls.
    """

    def __init__(
        self, read: Callable[[], dict[str, str]], *, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self._read = read
        self._poll = poll_seconds
        self._listeners: set[asyncio.Queue[frozenset[str]]] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def listeners(self) -> int:
        """Streams open now."""
        return len(self._listeners)

    async def _run(self) -> None:
        last: dict[str, str] | None = None
        while self._listeners:
            now: dict[str, str] | None
            try:
                now = await asyncio.to_thread(self._read)
            except SQLAlchemyError as exc:  # the database is away: try again, say nothing
                log.warning("console live feed: %s", exc.__class__.__name__)
                now = last
            if last is not None and now is not None:
                changed = frozenset(k for k, v in now.items() if last.get(k) != v)
                if changed:
                    for queue in self._listeners:
                        queue.put_nowait(changed)
            last = now
            await asyncio.sleep(self._poll)
        self._task = None

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[frozenset[str]]]:
        """A queue of changed topic sets, for as long as the context lasts."""
        queue: asyncio.Queue[frozenset[str]] = asyncio.Queue()
        self._listeners.add(queue)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="console-live-feed")
        try:
            yield queue
        finally:
            self._listeners.discard(queue)

    async def stream(
        self,
        disconnected: Callable[[], Any],
        *,
        max_seconds: float = STREAM_MAX_SECONDS,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> AsyncIterator[str]:
        """The server-sent event stream of one client, until it goes or ``max_seconds``."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + max_seconds
        async with self.listen() as queue:
            yield "retry: 2000\n\n"
            quiet_since = loop.time()
            while loop.time() < ends:
                try:
                    topics = await asyncio.wait_for(queue.get(), self._poll * 2)
                except TimeoutError:
                    if await disconnected():
                        return
                    if loop.time() - quiet_since >= keepalive:
                        quiet_since = loop.time()
                        yield ": keepalive\n\n"
                    continue
                quiet_since = loop.time()
                data = json.dumps({"topics": sorted(topics)})
                yield f"event: change\ndata: {data}\n\n"
