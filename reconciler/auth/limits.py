"""Approval limits: how large a discrepancy each role may decide.

A discrepancy's value is the sum over its lines of the absolute ``diff_value`` (difference x
unit cost): what the book would move by in either direction, so a shortage and an overage
at one location do not cancel out into a small figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.auth.roles import Role
from reconciler.config import ApprovalLimits

__all__ = ["approval_limit", "discrepancy_value"]


def discrepancy_value(lines: Iterable[Mapping[str, Any]]) -> float:
    """The absolute value of a discrepancy's lines (each with ``diff_value``)."""
    return sum(abs(float(line["diff_value"])) for line in lines)


def approval_limit(role: Role, limits: ApprovalLimits) -> float | None:
    """The largest value ``role`` may decide; None: no limit (admin).

    Roles below approver never reach here: they lack the ``decide`` scope.
    """
    if role >= Role.ADMIN:
        return None
    return limits.approver
