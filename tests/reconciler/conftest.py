"""Fixtures of the reconciler tests: a migrated store on SQLite or on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from reconciler.store import Store, open_store

PG_ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store on SQLite (a file) or on a fresh PostgreSQL database (dropped after)."""
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
        yield opened
        opened.close()
        return
    name = f"edgecount_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    opened = open_store(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    try:
        yield opened
    finally:
        opened.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
