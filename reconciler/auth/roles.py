"""Roles of people and scopes of API tokens, and which role each scope needs.

Roles are ordered: each may do everything the ones below it may. A token acts for its user
and carries scopes; a request through it needs both the scope and a user whose role still
allows that scope (a role lowered after the token was made lowers what the token may do).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["SCOPE_ROLE", "Role", "Scope", "parse_role"]


class Role(IntEnum):
    """A person's role, lowest first (compare with ``>=``)."""

    VIEWER = 1
    """Reads discrepancies, decisions, adjustments and the book."""
    COUNTER = 2
    """A viewer who counts by hand (the console's count tasks)."""
    APPROVER = 3
    """Decides discrepancies up to ``api.approval_limits.approver`` and uploads the book."""
    ADMIN = 4
    """Everything, with no approval limit."""

    @property
    def label(self) -> str:
        """The name used in the CLI, the config and the database (``approver``)."""
        return self.name.lower()


def parse_role(text: str) -> Role:
    """The role named ``text`` (``viewer``, ``counter``, ``approver``, ``admin``).

    Raises:
        ValueError: No such role (the message lists the roles).
    """
    try:
        return Role[text.strip().upper()]
    except KeyError:
        names = ", ".join(role.label for role in Role)
        raise ValueError(f"unknown role {text!r}; choose one of {names}") from None


class Scope(StrEnum):
    """What an API token may be used for."""

    READ = "read"
    """Every ``GET``: discrepancies, decisions, adjustments, book, OpenAPI document."""
    DECIDE = "decide"
    """Approve or reject discrepancies (``POST /discrepancies/{id}/approve|reject``)."""
    BOOK = "book"
    """Upload book snapshots and movements (``POST /book``, ``POST /movements``)."""


SCOPE_ROLE: dict[Scope, Role] = {
    Scope.READ: Role.VIEWER,
    Scope.DECIDE: Role.APPROVER,
    Scope.BOOK: Role.APPROVER,
}
"""The lowest role that may act in each scope (with a session or a token)."""
