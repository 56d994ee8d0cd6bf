"""Which instance publishes a site's outboxes: a PostgreSQL advisory lock per site, no leader.

Counts are shared among the instances of a centre by the broker (``$share``), and what a count
or a decision makes is written once under the store's locks (:mod:`reconciler.locks`). What
the store then holds for the broker (adjustments, decisions, cleared discrepancies, console
requests) must go out once too: the instance whose database session holds a site's
*publisher lease* publishes that site's outboxes; the others leave them alone. A lease is a
session-level advisory lock on a connection kept for the purpose, so it ends the moment that
instance's session ends (the process stopped or was killed, or the database restarted), and
the next instance to look takes it over within a poll of its store publisher.

On SQLite every store is its own (one process writes a file): this instance holds them all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from reconciler.store import Store

__all__ = ["PublisherLeases"]

log = logging.getLogger(__name__)


def _key(store: Store) -> sa.ColumnElement[int]:
    return sa.func.hashtext(f"edgecount-publisher:{store.schema or ''}")


class PublisherLeases:
    """The publisher leases of the sites this instance serves (blocking: call from a thread).

    Args:
        stores: Each site's store, by site.
    """

    def __init__(self, stores: dict[str, Store]) -> None:
        self._stores = stores
        self._own = {s for s, store in stores.items() if not _shared(store)}  # SQLite: always
        self._groups: dict[str, list[str]] = {}  # database URL → its sites that need a lease
        for site, store in stores.items():
            if _shared(store):
                self._groups.setdefault(str(store.engine.url), []).append(site)
        self._held: set[str] = set(self._own)
        self._conns: dict[str, sa.Connection] = {}  # database URL → the leases' connection

    @property
    def held(self) -> frozenset[str]:
        """The sites whose outboxes this instance publishes now."""
        return frozenset(self._held)

    def refresh(self) -> set[str]:
        """Check the held leases are alive and try to take the others; returns those taken now.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: A database failed: its leases are dropped (another
                instance may take them) and the caller retries later.
        """
        taken: set[str] = set()
        failure: sa_exc.SQLAlchemyError | None = None
        for url, sites in self._groups.items():
            try:
                taken |= self._refresh_group(url, sites)
            except sa_exc.SQLAlchemyError as exc:
                self._drop(url, sites)
                failure = exc
        if taken:
            log.info("publisher lease taken for %s", ", ".join(sorted(taken)))
        if failure is not None:
            raise failure
        return taken

    def _refresh_group(self, url: str, sites: Sequence[str]) -> set[str]:
        conn = self._conns.get(url)
        if conn is None:
            # a connection of its own, outside the pool's churn, for as long as it lives
            conn = self._conns[url] = self._stores[sites[0]].engine.connect()
            self._held.difference_update(sites)  # a new session holds nothing yet
        wanted = [site for site in sites if site not in self._held]
        if not wanted:
            conn.execute(sa.select(1))  # the session (and with it the leases) is alive
            conn.commit()
            return set()
        tries = [sa.func.pg_try_advisory_lock(_key(self._stores[s])) for s in wanted]
        row = conn.execute(sa.select(*tries)).one()
        conn.commit()  # ends the statement's transaction; session-level locks stay
        taken = {site for site, got in zip(wanted, row, strict=True) if got}
        self._held |= taken
        return taken

    def _drop(self, url: str, sites: Sequence[str]) -> None:
        self._held.difference_update(sites)
        _end(self._conns.pop(url, None))
        log.warning("publisher leases of %s dropped (database failed)", ", ".join(sites))

    def close(self) -> None:
        """Release every lease (their connections end)."""
        while self._conns:
            _end(self._conns.popitem()[1])
        self._held = set(self._own)


def _shared(store: Store) -> bool:
    """Whether other processes may serve this store (PostgreSQL), so a lease is needed."""
    return store.engine.dialect.name == "postgresql"


def _end(conn: sa.Connection | None) -> None:
    """End a lease connection's session (and with it its locks): never back to the pool."""
    if conn is None:
        return
    try:
        conn.invalidate()
        conn.close()
    except sa_exc.SQLAlchemyError:
        log.debug("ending a lease connection", exc_info=True)
