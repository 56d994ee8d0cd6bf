"""A fresh PostgreSQL database on the shared test server (127.0.0.1:5432, trust auth).

Tests and benchmarks that need a database of their own create it here and drop it after,
so nothing is left on the shared server and no test sees another's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

__all__ = ["PG_ADMIN", "fresh_database"]

PG_ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@contextmanager
def fresh_database(prefix: str = "edgecount") -> Iterator[str]:
    """A new database named ``{prefix}_{random}``; yields its SQLAlchemy URL, drops it after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
