"""Store-level locks that let several reconciler instances share one PostgreSQL, no leader.

A step that reads a location's state and writes what follows from it (the engine's reaction
to a count, opening a count task) takes a transaction-scoped advisory lock on that location
first, so two instances handling counts of one location at the same moment take turns and
the second sees what the first wrote: one discrepancy, one recount request. SQLite has one
writer at a time and needs none.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["lock_location", "schema_of"]


def schema_of(conn: sa.Connection) -> str:
    """The PostgreSQL schema the connection's store runs in ("" for the default)."""
    translate = conn.get_execution_options().get("schema_translate_map") or {}
    return str(translate.get(None) or "")


def lock_location(conn: sa.Connection, purpose: str, location: str) -> None:
    """Hold ``purpose``'s lock on ``location`` (of this store's site) until the transaction ends.

    Different purposes never wait for each other; a caller taking several takes them in one
    order everywhere (the engine: ``location`` then ``count_task``), so they cannot deadlock.
    """
    if conn.dialect.name == "postgresql":
        key = f"{purpose}:{schema_of(conn)}:{location}"
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(key))))
