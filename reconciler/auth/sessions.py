"""Server-side sessions of signed-in people, with their CSRF tokens.

The cookie holds a random 256-bit id; the database holds its SHA-256, the user, a CSRF token
and two times. A session ends when it was idle longer than ``idle`` or is older than
``absolute`` (both checked on every request, so a stolen cookie does not live forever), on
sign-out, and when the user's password changes or the user is removed. Being in the database,
sessions survive a restart of the service and are shared by several instances.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from reconciler import schema as t
from reconciler.auth.identity import Identity, Via
from reconciler.auth.roles import Role, Scope
from reconciler.auth.users import as_utc, digest
from reconciler.repository import audit

__all__ = ["TOUCH_EVERY", "SessionPolicy", "SessionStore"]

TOUCH_EVERY = timedelta(seconds=60)
"""``last_seen`` is written at most this often (not on every request)."""


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How long a session lives: idle at most ``idle``, in all at most ``absolute``."""

    idle: timedelta
    absolute: timedelta


@dataclass(slots=True)
class SessionStore:
    """Sessions on the reconciler's SQLAlchemy engine."""

    engine: sa.Engine
    policy: SessionPolicy

    def open(self, user: str, role: Role, now: datetime, *, client: str) -> tuple[str, Identity]:
        """Start a session after a successful sign-in (audited).

        Returns:
            The cookie value and the session's identity (with its CSRF token).
        """
        cookie = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                t.sessions.insert().values(
                    id_hash=digest(cookie),
                    user=user,
                    csrf_token=csrf,
                    created_at=now,
                    last_seen=now,
                )
            )
            # sessions of anyone that ran out: cleared here, where sessions are written anyway
            conn.execute(t.sessions.delete().where(t.sessions.c.last_seen < now - self.policy.idle))
            audit(conn, user, "signin.success", client, {})
        return cookie, self._identity(user, role, digest(cookie), csrf)

    def find(self, cookie: str, now: datetime) -> Identity | None:
        """The live session a cookie names; None if unknown or expired (then deleted)."""
        key = digest(cookie)
        query = (
            sa.select(t.sessions, t.users.c.role)
            .join(t.users, t.users.c.name == t.sessions.c.user)
            .where(t.sessions.c.id_hash == key)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            return None
        last_seen, created = as_utc(row.last_seen), as_utc(row.created_at)
        if now - last_seen > self.policy.idle or now - created > self.policy.absolute:
            with self.engine.begin() as conn:
                conn.execute(t.sessions.delete().where(t.sessions.c.id_hash == key))
            return None
        if now - last_seen > TOUCH_EVERY:
            with self.engine.begin() as conn:
                conn.execute(
                    t.sessions.update().where(t.sessions.c.id_hash == key).values(last_seen=now)
                )
        return self._identity(row.user, Role[row.role.upper()], key, row.csrf_token)

    def close(self, identity: Identity, *, client: str) -> None:
        """End a session on sign-out (audited)."""
        with self.engine.begin() as conn:
            conn.execute(t.sessions.delete().where(t.sessions.c.id_hash == identity.session_id))
            audit(conn, identity.user, "signout", client, {})

    @staticmethod
    def _identity(user: str, role: Role, key: str, csrf: str) -> Identity:
        return Identity(user, role, Via.SESSION, frozenset(Scope), key, csrf)
