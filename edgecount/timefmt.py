"""ISO-8601 times, written once: the contract's UTC ``...Z`` form, parsing, and UTC normalising.

Every time on the wire and in reports is UTC with milliseconds and a ``Z``
(``2024-05-01T02:00:00.123Z``, :func:`to_iso`). Parsing comes in three strictnesses:
:func:`parse_zulu` for the contract (``Z`` required), :func:`parse` for what people type (``Z``,
an offset, or none: the caller decides what a naive time means) and :func:`parse_utc` for times
we wrote ourselves or that are UTC by convention (naive ones are read as UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["TimeFormatError", "now_iso", "parse", "parse_utc", "parse_zulu", "to_iso", "utc"]


class TimeFormatError(ValueError):
    """A timestamp that is not in the form asked for (the message names it and why)."""


def utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already (SQLite gives those back)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def to_iso(value: datetime | float) -> str:
    """UTC ISO-8601 with milliseconds and a ``Z``: ``2024-05-01T02:00:00.123Z``.

    Args:
        value: An aware datetime, or UNIX seconds.

    Raises:
        ValueError: For a naive datetime (its zone is unknown).
    """
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, UTC)
    elif value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: give it a time zone")
    else:
        moment = value.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """The current time as :func:`to_iso` writes it."""
    return to_iso(datetime.now(UTC))


def parse(text: str) -> datetime:
    """An ISO-8601 date or time with ``Z``, an offset or no zone (then naive).

    Raises:
        ValueError: ``text`` is not ISO-8601.
    """
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse_utc(text: str) -> datetime:
    """Like :func:`parse`, as aware UTC (a time without a zone is read as UTC).

    Raises:
        ValueError: ``text`` is not ISO-8601.
    """
    return utc(parse(text))


def parse_zulu(text: str) -> datetime:
    """A contract timestamp (``...Z``) as an aware UTC datetime.

    Raises:
        TimeFormatError: No ``Z`` suffix, or not ISO-8601.
    """
    if not text.endswith("Z"):
        raise TimeFormatError(f"timestamp {text!r} must be UTC with a 'Z' suffix")
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError as exc:
        raise TimeFormatError(f"timestamp {text!r} is not ISO-8601: {exc}") from None
