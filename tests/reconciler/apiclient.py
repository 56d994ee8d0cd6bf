"""Signed-in clients of the REST API for tests: a user of a role with an API token."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from reconciler.api import create_app
from reconciler.auth.roles import Role, Scope
from reconciler.auth.users import UserStore
from reconciler.engine import Engine
from reconciler.store import Store

PASSWORD = "correct horse battery staple"
EVERY_SCOPE = frozenset(Scope)


def add_user(store: Store, name: str, role: Role = Role.ADMIN) -> None:
    """Add ``name`` with :data:`PASSWORD`."""
    UserStore(store.engine).add(name, role, PASSWORD, actor="test")


def bearer(
    store: Store,
    name: str = "kim",
    role: Role = Role.ADMIN,
    scopes: frozenset[Scope] = EVERY_SCOPE,
) -> dict[str, str]:
    """The ``Authorization`` header of a new token of ``name`` (added when unknown)."""
    users = UserStore(store.engine)
    if name not in {u.name for u in users.users()}:
        add_user(store, name, role)
    allowed = frozenset(s for s in scopes if role >= Role.APPROVER or s is Scope.READ)
    _, token = users.create_token(name, allowed, None, actor="test")
    return {"Authorization": f"Bearer {token}"}


def api_client(
    engine: Engine, name: str = "kim", role: Role = Role.ADMIN, app: FastAPI | None = None
) -> TestClient:
    """A test client of the API whose requests carry a token of ``name`` (every scope)."""
    headers = bearer(engine.store, name, role)
    return TestClient(app or create_app(engine), headers=headers)
