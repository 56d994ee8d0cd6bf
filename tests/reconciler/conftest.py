"""Fixtures of the reconciler tests: a migrated store on SQLite or on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.store import Store, open_store
from tests.pgdb import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store on SQLite (a file) or on a fresh PostgreSQL database (dropped after)."""
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
        yield opened
        opened.close()
        return
    with fresh_database() as url:
        opened = open_store(url)
        try:
            yield opened
        finally:
            opened.close()
