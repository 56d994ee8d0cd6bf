"""The base of the message classes: payload conversion derived from their fields, written once.

A :class:`Record` subclass is a frozen, slotted, keyword-only dataclass whose field types say
how each value is read and written (:func:`field_specs`): a nested record is its payload
object, a tuple is an array, a :class:`enum.StrEnum` is its value, ``X | None`` with a
default of ``None`` is a property the payload may leave out.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from typing import Any, ClassVar, NamedTuple, Self, Union, get_args, get_origin, get_type_hints

_Convert = Callable[[Any], Any]


class FieldSpec(NamedTuple):
    """How one field of a :class:`Record` is read from and written to a payload.

    Attributes:
        name: The field and payload key.
        optional: Whether the schema leaves it out (then ``None`` means absent).
        load: Payload value -> field value; ``None`` when the value is kept as it is.
        dump: Field value -> payload value; ``None`` when the value is written as it is.
        part: The record class of a nested object (or of each item of an array of them).
    """

    name: str
    optional: bool
    load: _Convert | None
    dump: _Convert | None
    part: type[Record] | None


def _nullable(convert: _Convert | None) -> _Convert | None:
    if convert is None:
        return None
    return lambda value: None if value is None else convert(value)


def _enum_load(cls: type[enum.StrEnum]) -> _Convert:
    """Value -> member by a lookup (calling the class is several times slower)."""
    members = {member.value: member for member in cls}

    def load(value: Any) -> Any:
        try:
            return members[value]
        except (KeyError, TypeError):  # not one of the values: the class says why
            return cls(value)

    return load


def _converters(hint: Any) -> tuple[_Convert | None, _Convert | None]:
    """(load, dump) for a field's type: records, tuples, enums, ``X | None``, scalars."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        (inner,) = (arg for arg in get_args(hint) if arg is not type(None))
        load, dump = _converters(inner)
        return _nullable(load), _nullable(dump)
    if origin is tuple:
        load, dump = _converters(get_args(hint)[0])
        if load is None and dump is None:
            return tuple, list
        item_load, item_dump = load or (lambda v: v), dump or (lambda v: v)
        return (
            lambda values: tuple(map(item_load, values)),
            lambda values: list(map(item_dump, values)),
        )
    if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
        return _enum_load(hint), str
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_payload, hint.to_payload
    return None, None


def _part(hint: Any) -> type[Record] | None:
    """The record class inside ``hint`` (``R``, ``R | None``, ``tuple[R, ...]``), if any."""
    if get_origin(hint) is None:
        return hint if isinstance(hint, type) and issubclass(hint, Record) else None
    parts = [part for arg in get_args(hint) if (part := _part(arg)) is not None]
    return parts[0] if parts else None


class Layout(NamedTuple):
    """Everything about a record class's fields that conversion needs, worked out once.

    Attributes:
        specs: One :class:`FieldSpec` per field, in payload order.
        names: The field names.
        required: The names of the fields without a default.
        parts: The specs of the fields that hold nested records.
        loads: ``(name, load)`` of each field, all :meth:`Record.from_payload` needs.
    """

    specs: tuple[FieldSpec, ...]
    names: frozenset[str]
    required: frozenset[str]
    parts: tuple[FieldSpec, ...]
    loads: tuple[tuple[str, _Convert | None], ...]


_LAYOUTS: dict[type[Record], Layout] = {}


def layout(cls: type[Record]) -> Layout:
    """The :class:`Layout` of ``cls`` (computed on first use, then kept)."""
    known = _LAYOUTS.get(cls)
    if known is not None:
        return known
    hints = get_type_hints(cls)
    specs = []
    for spec in fields(cls):  # type: ignore[arg-type]  # every Record is a dataclass
        hint = hints[spec.name]
        load, dump = _converters(hint)
        specs.append(FieldSpec(spec.name, spec.default is not MISSING, load, dump, _part(hint)))
    made = Layout(
        specs=tuple(specs),
        names=frozenset(spec.name for spec in specs),
        required=frozenset(spec.name for spec in specs if not spec.optional),
        parts=tuple(spec for spec in specs if spec.part is not None),
        loads=tuple((spec.name, spec.load) for spec in specs),
    )
    _LAYOUTS[cls] = made
    return made


def field_specs(cls: type[Record]) -> tuple[FieldSpec, ...]:
    """The :class:`FieldSpec` of every field of ``cls``, in payload order."""
    return layout(cls).specs


class Record:
    """Base of the message classes and their nested parts: conversion from their fields.

    Subclasses are frozen, slotted, keyword-only dataclasses; a message class also sets
    ``SCHEMA``, written first as the payload's ``schema``.
    """

    __slots__ = ()
    SCHEMA: ClassVar[str | None] = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Self:
        """Read a valid payload (or nested object); unknown keys are ignored."""
        values = {}
        for name, load in layout(cls).loads:
            if name in payload:
                value = payload[name]
                values[name] = value if load is None else load(value)
        make: Callable[..., Self] = cls
        return make(**values)

    def to_payload(self) -> dict[str, Any]:
        """The payload (or nested object): JSON types only, absent optional fields left out."""
        out: dict[str, Any] = {} if self.SCHEMA is None else {"schema": self.SCHEMA}
        for name, optional, _load, dump, _part in layout(type(self)).specs:
            value = getattr(self, name)
            if value is None and optional:
                continue
            out[name] = value if dump is None else dump(value)
        return out
