"""Sessions end when idle, when too old, on a password change and with their user."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.auth.roles import Role
from reconciler.auth.sessions import SessionPolicy, SessionStore
from reconciler.auth.users import UserStore
from reconciler.store import Store, open_store
from tests.reconciler.apiclient import PASSWORD, add_user

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
POLICY = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=2))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
    add_user(opened, "ann", Role.APPROVER)
    yield opened
    opened.close()


def test_idle_session_ends(store: Store) -> None:
    sessions = SessionStore(store.engine, POLICY)
    cookie, opened = sessions.open("ann", Role.APPROVER, T0, client="10.0.0.1")
    found = sessions.find(cookie, T0 + timedelta(minutes=29))
    assert found is not None
    assert (found.user, found.role, found.csrf_token) == ("ann", Role.APPROVER, opened.csrf_token)
    # that use moved last_seen on: 29 more minutes are still within the idle time
    assert sessions.find(cookie, T0 + timedelta(minutes=58)) is not None
    assert sessions.find(cookie, T0 + timedelta(minutes=89)) is None
    assert sessions.find(cookie, T0 + timedelta(minutes=58)) is None  # deleted, not just late


def test_session_ends_at_its_absolute_age_however_busy(store: Store) -> None:
    sessions = SessionStore(store.engine, POLICY)
    cookie, _ = sessions.open("ann", Role.APPROVER, T0, client="10.0.0.1")
    for minutes in range(10, 120, 10):
        assert sessions.find(cookie, T0 + timedelta(minutes=minutes)) is not None
    assert sessions.find(cookie, T0 + timedelta(minutes=121)) is None


def test_password_change_and_removal_end_sessions(store: Store) -> None:
    sessions = SessionStore(store.engine, POLICY)
    users = UserStore(store.engine)
    first, _ = sessions.open("ann", Role.APPROVER, T0, client="a")
    users.set_password("ann", PASSWORD + "!", actor="t")
    assert sessions.find(first, T0) is None
    second, _ = sessions.open("ann", Role.APPROVER, T0, client="a")
    assert sessions.find(second, T0) is not None
    users.remove("ann", actor="t")
    assert sessions.find(second, T0) is None
