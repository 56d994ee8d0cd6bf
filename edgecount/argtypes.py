"""Command-line value types that say what they expect: ``--conf 2`` is an error, not a crash.

argparse calls a ``type=`` function with the text; an :class:`argparse.ArgumentTypeError`
becomes ``edgecount …: error: argument --conf: expected a number in 0..1, got '2'`` (exit 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar

from edgecount import timefmt

N = TypeVar("N", int, float)


def bounded(
    convert: Callable[[str], N], low: N, high: N, what: str, *, inclusive: bool = True
) -> Callable[[str], N]:
    """A ``type=`` for argparse: ``convert(text)`` within ``low..high``.

    Args:
        convert: ``int`` or ``float``.
        low: Least value.
        high: Largest value.
        what: The value in words, for the error (``"seconds"``, ``"a number"``).
        inclusive: Whether ``low`` and ``high`` themselves are allowed.
    """
    span = f"{low}..{high}" if inclusive else f"between {low} and {high} (exclusive)"

    def parse(text: str) -> N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        inside = low <= value <= high if inclusive else low < value < high
        if not inside:
            raise argparse.ArgumentTypeError(f"expected {what} in {span}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type by it in some messages
    return parse


def utc_time(text: str) -> datetime:
    """A ``type=`` for argparse: ``YYYY-MM-DD`` (midnight UTC) or an ISO-8601 time (UTC when
    it names no zone)."""
    try:
        return timefmt.parse_utc(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date (YYYY-MM-DD) or ISO-8601 time: {text!r}"
        ) from None


def iso_date(text: str) -> date:
    """A ``type=`` for argparse: a calendar date, ``YYYY-MM-DD``."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None
