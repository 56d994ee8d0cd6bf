"""What a book import would change, record by record: the console's dry-run preview.

:func:`reconciler.book_import.diff_book` counts the records added, changed and removed;
:func:`changed_lines` names them, so a person sees what an import does before applying it.
Pure: no database, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconciler.model import BookLine

__all__ = ["Change", "LineChange", "changed_lines"]


class Change(StrEnum):
    """How one record of the book changes."""

    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class LineChange:
    """One record that an import adds, changes or removes (``old``/``new`` None when absent)."""

    change: Change
    location: str
    sku: str
    old: BookLine | None
    new: BookLine | None


def changed_lines(
    current: Sequence[BookLine], new: Sequence[BookLine], *, locations_only: bool
) -> list[LineChange]:
    """The records an import changes, by location and SKU.

    Args:
        current: The book now.
        new: The file's records (unique by location and SKU).
        locations_only: The file replaces only its own locations (every other is kept).

    Returns:
        Added, changed and removed records, sorted by location and SKU; unchanged ones are
        left out. Counts agree with :func:`reconciler.book_import.diff_book`.
    """
    scope = {line.location for line in new} if locations_only else None
    old = {(b.location, b.sku): b for b in current if scope is None or b.location in scope}
    fresh = {(b.location, b.sku): b for b in new}
    out = [
        LineChange(Change.REMOVED, key[0], key[1], line, None)
        for key, line in old.items()
        if key not in fresh
    ]
    for key, line in fresh.items():
        before = old.get(key)
        if before is None:
            out.append(LineChange(Change.ADDED, key[0], key[1], None, line))
        elif before != line:
            out.append(LineChange(Change.CHANGED, key[0], key[1], before, line))
    out.sort(key=lambda c: (c.location, c.sku))
    return out
