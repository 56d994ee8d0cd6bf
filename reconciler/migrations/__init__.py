"""Alembic migrations of the reconciler's database (see reconciler/store.py)."""
