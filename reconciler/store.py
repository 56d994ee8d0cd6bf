"""The reconciler's store: one SQLAlchemy Core code path for SQLite and PostgreSQL.

:func:`open_store` creates the engine (SQLite in WAL mode, foreign keys on), brings the schema
to the newest Alembic revision, and returns a :class:`Store`. Writes that must be idempotent
(messages delivered twice by QoS 1) insert into ``messages`` first and stop on a duplicate.

The store keeps the connection, the schema, the book and movements (:mod:`reconciler.store_book`)
and what gateways report (:mod:`reconciler.store_counts`).

**Many sites on one PostgreSQL database** (``database_schema``): each site's tables live in a
PostgreSQL schema of their own. The migrations run with that schema first on the
``search_path`` (tables and Alembic's version table land in it), and the store then runs every
statement with SQLAlchemy's ``schema_translate_map``, which names the schema in the SQL it
sends. Stores of one database URL opened with the same :class:`EnginePool` share one
connection pool, so a reconciler serving a hundred sites holds a handful of connections, not
a hundred pools.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

import reconciler.migrations
from reconciler.store_book import IN_CHUNK, BookLedger, BookStore, MovementOutcome, chunks
from reconciler.store_counts import CountStore

__all__ = [
    "IN_CHUNK",
    "BookLedger",
    "DatabaseUnavailableError",
    "EnginePool",
    "MovementOutcome",
    "Store",
    "chunks",
    "masked",
    "migrate",
    "open_store",
]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, fast
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
"""A PostgreSQL schema name the store accepts (lower case: never needs quoting)."""


def migrate(engine: Engine, schema: str | None = None) -> None:
    """Bring the database (or one PostgreSQL schema of it) to the newest revision.

    With ``schema`` the schema is created when missing and put first on the migration
    connection's ``search_path``, so Alembic's unqualified DDL and its version table land in it.
    On PostgreSQL two processes migrating one schema at once take turns (an advisory lock).
    """
    config = Config()
    config.set_main_option("script_location", str(Path(reconciler.migrations.__file__).parent))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # two instances starting at once: one migrates, the other then finds nothing to do
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(schema or ""))))
        if schema is not None:
            connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            # SET LOCAL: the pooled connection goes back with its usual search_path
            connection.exec_driver_sql(f"SET LOCAL search_path TO {schema}")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _lock_key(schema: str) -> sa.ColumnElement[int]:
    return sa.func.hashtext(f"edgecount-migrate:{schema}")


class EnginePool:
    """One SQLAlchemy engine (one connection pool) per database URL, shared by the stores of
    many sites (:func:`open_store` with ``pool=``); :meth:`close` disposes them all."""

    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}

    def get(self, url: str, make: Callable[[str], Engine]) -> Engine:
        """The engine of ``url``, made once by ``make``."""
        engine = self._engines.get(url)
        if engine is None:
            engine = self._engines[url] = make(url)
        return engine

    def close(self) -> None:
        """Release every pool."""
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()


class DatabaseUnavailableError(Exception):
    """The database cannot be opened; the message names the URL (password masked) and a fix."""


def masked(url: str) -> str:
    """A database URL fit to print: its password replaced by ``***``."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _driver_hint(exc: ImportError) -> str:
    if exc.name is not None and exc.name.startswith("psycopg"):
        return "install it: pip install 'edgecount[postgres]'"
    return "install the driver the URL names, or use postgresql+psycopg:// or sqlite:///"


def open_store(url: str, *, schema: str | None = None, pool: EnginePool | None = None) -> Store:
    """Open (and migrate) the database at a SQLAlchemy URL.

    Args:
        url: The database.
        schema: PostgreSQL only: the schema holding this store's tables (one per site when
            many sites share a database); None: the database's default (``public``).
        pool: Share one engine per URL with the other stores opened with this pool (its
            owner closes it; :meth:`Store.close` then leaves the engine alone).

    Raises:
        DatabaseUnavailableError: The URL is not valid, its driver is not installed, the database
            cannot be reached (one line, the URL with its password masked), or a schema is
            asked of a database that has none (SQLite).
    """
    shown = masked(url)
    try:
        engine = _create_engine(url) if pool is None else pool.get(url, _create_engine)
    except ImportError as exc:
        why = f"its driver {exc.name or exc} is not installed"
        raise DatabaseUnavailableError(f"database {shown}: {why}; {_driver_hint(exc)}") from None
    except sa.exc.ArgumentError as exc:
        raise DatabaseUnavailableError(
            f"database URL {shown} is not valid ({exc}); expected e.g."
            " sqlite:////var/lib/edgecount/reconciler.sqlite3 or"
            " postgresql+psycopg://user@host:5432/edgecount"
        ) from None
    if schema is not None:
        if engine.dialect.name != "postgresql":
            raise DatabaseUnavailableError(
                f"database {shown}: database_schema {schema!r} needs PostgreSQL; give each"
                " site its own SQLite file instead"
            )
        if not SCHEMA_NAME.match(schema):
            raise DatabaseUnavailableError(
                f"database_schema {schema!r}: use 1-63 lower-case letters, digits and '_',"
                " starting with a letter or '_'"
            )
    try:
        migrate(engine, schema)
    except sa.exc.DBAPIError as exc:
        if pool is None:
            engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise DatabaseUnavailableError(
            f"database {shown} cannot be reached: {reason}; check host, port, name and"
            " credentials in `database:` and that the server runs"
        ) from None
    if schema is not None:
        engine = engine.execution_options(schema_translate_map={None: schema})
    return Store(engine, schema=schema, owns_engine=pool is None)


def _create_engine(url: str) -> Engine:
    engine = sa.create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@dataclass(slots=True)
class Store(BookStore, CountStore):
    """Typed access to the reconciler's tables.

    Book and movements are :class:`~reconciler.store_book.BookStore`'s, counts and scans
    :class:`~reconciler.store_counts.CountStore`'s; what the reconciler decides is written by
    :mod:`reconciler.repository` and read by :mod:`reconciler.queries`.
    """

    engine: Engine
    schema: str | None = None
    """The PostgreSQL schema of this store's tables (None: the default)."""
    owns_engine: bool = True
    """Whether :meth:`close` disposes the pool (not when an :class:`EnginePool` shares it)."""

    def close(self) -> None:
        """Release the connection pool (unless an :class:`EnginePool` owns it)."""
        if self.owns_engine:
            self.engine.dispose()
