"""Who made a request, however they proved it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reconciler.auth.roles import SCOPE_ROLE, Role, Scope

__all__ = ["Identity", "Via"]


class Via(StrEnum):
    """How a request proved who made it."""

    SESSION = "session"
    TOKEN = "token"  # noqa: S105 - a kind of credential, not one


@dataclass(frozen=True, slots=True)
class Identity:
    """The user behind a request, their role, and what the credential allows.

    Attributes:
        user: The user's name (recorded as the approver of a decision).
        role: The user's role as stored now.
        via: A session cookie or a bearer token.
        scopes: The token's scopes; a session may use every scope its role allows.
        session_id: The session's key (the SHA-256 of its cookie) when ``via`` is a session.
        csrf_token: The session's CSRF token when ``via`` is a session.
    """

    user: str
    role: Role
    via: Via
    scopes: frozenset[Scope]
    session_id: str | None = None
    csrf_token: str | None = None

    def may(self, scope: Scope) -> bool:
        """Whether this credential and the user's role both allow ``scope``."""
        return scope in self.scopes and self.role >= SCOPE_ROLE[scope]
