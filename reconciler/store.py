"""The reconciler's store: one SQLAlchemy Core code path for SQLite and PostgreSQL.

:func:`open_store` creates the engine (SQLite in WAL mode, foreign keys on), brings the schema
to the newest Alembic revision, and returns a :class:`Store`. Writes that must be idempotent
(messages delivered twice by QoS 1) insert into ``messages`` first and stop on a duplicate.

The store keeps the connection, the schema, the book and movements (:mod:`reconciler.store_book`)
and what gateways report (:mod:`reconciler.store_counts`).
"""

from __future__ import annotations

import re
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


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema revision (Alembic ``upgrade head``)."""
    config = Config()
    config.set_main_option("script_location", str(Path(reconciler.migrations.__file__).parent))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


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


def open_store(url: str) -> Store:
    """Open (and migrate) the database at a SQLAlchemy URL.

    Raises:
        DatabaseUnavailableError: The URL is not valid, its driver is not installed, or the database
            cannot be reached (one line, the URL with its password masked).
    """
    shown = masked(url)
    try:
        engine = sa.create_engine(url, future=True)
    except ImportError as exc:
        why = f"its driver {exc.name or exc} is not installed"
        raise DatabaseUnavailableError(f"database {shown}: {why}; {_driver_hint(exc)}") from None
    except sa.exc.ArgumentError as exc:
        raise DatabaseUnavailableError(
            f"database URL {shown} is not valid ({exc}); expected e.g."
            " sqlite:////var/lib/edgecount/reconciler.sqlite3 or"
            " postgresql+psycopg://user@host:5432/edgecount"
        ) from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    try:
        migrate(engine)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise DatabaseUnavailableError(
            f"database {shown} cannot be reached: {reason}; check host, port, name and"
            " credentials in `database:` and that the server runs"
        ) from None
    return Store(engine)


@dataclass(slots=True)
class Store(BookStore, CountStore):
    """Typed access to the reconciler's tables.

    Book and movements are :class:`~reconciler.store_book.BookStore`'s, counts and scans
    :class:`~reconciler.store_counts.CountStore`'s; what the reconciler decides is written by
    :mod:`reconciler.repository` and read by :mod:`reconciler.queries`.
    """

    engine: Engine

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()
