"""Users, API tokens and sessions in the reconciler's database.

:class:`UserStore` is the only writer of ``users``, ``api_tokens`` and ``sessions``. Every
change to a user or a token is written to the audit log in the same transaction. Tokens and
session cookies are random (256 bits) and only their SHA-256 is stored: a copy of the database
gives no working credential.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from reconciler import schema as t
from reconciler.auth.identity import Identity, Via
from reconciler.auth.passwords import check_strength, hash_password, verify_password
from reconciler.auth.roles import SCOPE_ROLE, Role, Scope
from reconciler.repository import audit

__all__ = ["TOKEN_PREFIX", "TokenInfo", "User", "UserError", "UserStore", "as_utc", "digest"]

TOKEN_PREFIX = "ect_"  # noqa: S105 - a prefix, not a secret
"""Every API token starts with this, so a secret scanner can recognise a leaked one."""


class UserError(ValueError):
    """A user-management request that cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class User:
    """A user as listed (never with the password hash)."""

    name: str
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """An API token as listed (never with the token or its hash)."""

    id: int
    user: str
    scopes: tuple[Scope, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def digest(secret: str) -> str:
    """The SHA-256 (hex) under which a token or a session cookie is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def as_utc(value: datetime) -> datetime:
    """A time read from the database, made aware (SQLite returns naive ones; all are UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _maybe_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class UserStore:
    """Users, tokens and sessions on the reconciler's SQLAlchemy engine."""

    engine: sa.Engine

    # -- users -------------------------------------------------------------------------------

    def add(self, name: str, role: Role, password: str, *, actor: str) -> None:
        """Add a user.

        Raises:
            UserError: The name is taken or not valid.
            PasswordError: The password is too weak.
        """
        if not name.strip() or len(name) > 128 or name != name.strip():
            raise UserError(f"user name {name!r}: 1-128 characters, no surrounding spaces")
        check_strength(password)
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            if self._role(conn, name) is not None:
                raise UserError(f"user {name!r} exists already")
            conn.execute(
                t.users.insert().values(
                    name=name,
                    role=role.label,
                    password_hash=hash_password(password),
                    created_at=now,
                    password_changed_at=now,
                )
            )
            audit(conn, actor, "user.add", name, {"role": role.label})

    def set_password(self, name: str, password: str, *, actor: str) -> None:
        """Change a user's password and end their sessions (tokens stay).

        Raises:
            UserError: No such user.
            PasswordError: The password is too weak.
        """
        check_strength(password)
        with self.engine.begin() as conn:
            self._known(conn, name)
            conn.execute(
                t.users.update()
                .where(t.users.c.name == name)
                .values(
                    password_hash=hash_password(password), password_changed_at=datetime.now(UTC)
                )
            )
            conn.execute(t.sessions.delete().where(t.sessions.c.user == name))
            audit(conn, actor, "user.password", name, {})

    def remove(self, name: str, *, actor: str) -> None:
        """Remove a user with their tokens and sessions.

        Raises:
            UserError: No such user.
        """
        with self.engine.begin() as conn:
            self._known(conn, name)
            conn.execute(t.sessions.delete().where(t.sessions.c.user == name))
            conn.execute(t.api_tokens.delete().where(t.api_tokens.c.user == name))
            conn.execute(t.users.delete().where(t.users.c.name == name))
            audit(conn, actor, "user.remove", name, {})

    def users(self) -> list[User]:
        """Every user, by name."""
        query = sa.select(t.users.c.name, t.users.c.role, t.users.c.created_at)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.users.c.name)).all()
        return [
            User(r.name, Role[r.role.upper()], as_utc(r.created_at) or r.created_at) for r in rows
        ]

    def authenticate(self, name: str, password: str) -> Role | None:
        """The user's role if ``password`` is theirs; None for a wrong password or user."""
        query = sa.select(t.users.c.password_hash, t.users.c.role).where(t.users.c.name == name)
        with self.engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        if not verify_password(None if row is None else row.password_hash, password):
            return None
        assert row is not None  # verify_password fails for an unknown user
        return Role[row.role.upper()]

    def record(self, actor: str, action: str, subject: str, detail: dict[str, object]) -> None:
        """Write an audit entry of its own (a failed sign-in changes nothing else)."""
        with self.engine.begin() as conn:
            audit(conn, actor[:128], action, subject[:256], detail)

    @staticmethod
    def _role(conn: sa.Connection, name: str) -> Role | None:
        found = conn.execute(sa.select(t.users.c.role).where(t.users.c.name == name)).scalar()
        return None if found is None else Role[found.upper()]

    def _known(self, conn: sa.Connection, name: str) -> Role:
        role = self._role(conn, name)
        if role is None:
            raise UserError(f"no user {name!r} (see `edgecount users list`)")
        return role

    # -- tokens ------------------------------------------------------------------------------

    def create_token(
        self, name: str, scopes: frozenset[Scope], expires: timedelta | None, *, actor: str
    ) -> tuple[int, str]:
        """Make an API token for ``name``; returns its id and the token (shown once).

        Raises:
            UserError: No such user, no scope, or a scope the user's role does not allow.
        """
        if not scopes:
            raise UserError("a token needs at least one scope")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            role = self._known(conn, name)
            beyond = sorted(s.value for s in scopes if role < SCOPE_ROLE[s])
            if beyond:
                raise UserError(
                    f"user {name!r} is {role.label}: its role does not allow the scope"
                    f" {', '.join(beyond)}"
                )
            ordered = sorted(s.value for s in scopes)
            inserted = conn.execute(
                t.api_tokens.insert().values(
                    user=name,
                    token_hash=digest(token),
                    scopes=ordered,
                    created_at=now,
                    expires_at=None if expires is None else now + expires,
                )
            )
            key = inserted.inserted_primary_key
            assert key is not None
            token_id = int(key[0])
            detail = {"token": token_id, "scopes": ordered, "expires_days": _days(expires)}
            audit(conn, actor, "token.create", name, detail)
        return int(token_id), token

    def revoke_token(self, token_id: int, *, actor: str) -> None:
        """Revoke a token (it stays listed, revoked).

        Raises:
            UserError: No such token, or it was revoked before.
        """
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(t.api_tokens.c.user, t.api_tokens.c.revoked_at).where(
                    t.api_tokens.c.id == token_id
                )
            ).one_or_none()
            if row is None:
                raise UserError(f"no token {token_id} (see `edgecount users tokens`)")
            if row.revoked_at is not None:
                raise UserError(f"token {token_id} was revoked before")
            conn.execute(
                t.api_tokens.update()
                .where(t.api_tokens.c.id == token_id)
                .values(revoked_at=datetime.now(UTC))
            )
            audit(conn, actor, "token.revoke", row.user, {"token": token_id})

    def tokens(self, name: str | None = None) -> list[TokenInfo]:
        """Tokens (of ``name``, or of everyone), oldest first."""
        query = sa.select(t.api_tokens).order_by(t.api_tokens.c.id)
        if name is not None:
            query = query.where(t.api_tokens.c.user == name)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            TokenInfo(
                r.id,
                r.user,
                tuple(Scope(s) for s in r.scopes),
                as_utc(r.created_at),
                _maybe_utc(r.expires_at),
                _maybe_utc(r.revoked_at),
            )
            for r in rows
        ]

    def identify_token(self, token: str, now: datetime) -> Identity | None:
        """The identity a bearer token stands for; None if unknown, revoked or expired."""
        query = (
            sa.select(
                t.api_tokens.c.scopes, t.api_tokens.c.expires_at, t.users.c.name, t.users.c.role
            )
            .join(t.users, t.users.c.name == t.api_tokens.c.user)
            .where(t.api_tokens.c.token_hash == digest(token), t.api_tokens.c.revoked_at.is_(None))
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            return None
        expires = _maybe_utc(row.expires_at)
        if expires is not None and expires <= now:
            return None
        scopes = frozenset(Scope(s) for s in row.scopes)
        return Identity(row.name, Role[row.role.upper()], Via.TOKEN, scopes)


def _days(expires: timedelta | None) -> float | None:
    return None if expires is None else expires.total_seconds() / 86400
