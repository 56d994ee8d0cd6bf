"""The Alembic migrations build exactly the tables ``reconciler/schema.py`` declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from reconciler import schema
from reconciler.store import Store


def test_the_migrated_database_matches_the_declared_schema(any_store: Store) -> None:
    with any_store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert differences == []
