"""Validation of EPCIS 2.0 JSON-LD: the GS1 JSON Schema, then what the schema lets through.

The GS1 schema (draft-07, ``EPCIS-JSON-Schema.json`` of github.com/gs1/EPCIS) is not shipped with
edgecount (its licence does not allow it): :func:`load_schema` reads it from a path the operator
gives (``--schema``, ``$EDGECOUNT_EPCIS_SCHEMA`` or ``epcis.schema`` in the config). It is checked
with :class:`jsonschema.Draft7Validator` and a format checker that must know ``date-time`` (it
comes with the ``rfc3339-validator`` package; without it jsonschema silently skips the format, so
:func:`load_schema` refuses to run). The schema's ``uri`` format is not checked by the schema
validator: the GS1 draft uses it for property names and code-list values that the ratified
standard extended (``persistentDisposition`` on an ``AggregationEvent``, measurement types such
as ``EffectiveDoseRate``), so a strict RFC 3986 check there rejects documents OpenEPCIS ships as
valid. Identifiers (EPCs, classes, locations, read points) are checked as absolute URIs by the
semantic checks instead, and field names and vocabulary values by their own rules.

The semantic checks (:func:`semantic_problems`) always run, schema or not. They catch what a
schema cannot say or what a lenient format checker lets through:

* a ``bizStep`` / ``disposition`` that is neither a CBV 2.0 word (bare, ``cbv:…`` or
  ``https://ref.gs1.org/cbv/…``) nor a URI whose prefix the document declares;
* an extension field (in an event, its ``ilmd``, ``readPoint`` or ``bizLocation``) whose name
  has no declared namespace prefix;
* an event type that is none of the five EPCIS event types and no declared extension type;
* a time that is not RFC 3339 with an offset, an ``eventTimeZoneOffset`` outside ±14:00;
* an identifier (``epcList`` entry, ``parentID``, ``epcClass``, ``readPoint.id``, …) that is
  not an absolute URI (RFC 3986);
* an ``ObjectEvent`` with no ``epcList``, ``quantityList`` or ``sensorElementList``, a
  negative quantity;
* in a query (the parameters of a ``SimpleEventQuery``, which has no ``type`` and is no
  document: the schema does not apply to it), an unknown parameter or a value of the wrong kind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from rfc3986_validator import validate_rfc3986  # type: ignore[import-untyped]

from reconciler.epcis import vocab

__all__ = [
    "SCHEMA_ENV",
    "EpcisValidator",
    "Problem",
    "SchemaUnavailableError",
    "document_kind",
    "load_schema",
    "schema_path",
    "semantic_problems",
]

SCHEMA_ENV = "EDGECOUNT_EPCIS_SCHEMA"
"""The environment variable naming the GS1 schema file when ``--schema`` is not given."""

REQUIRED_FORMATS = ("date-time",)
UNCHECKED_FORMATS = frozenset({"uri", "uri-reference", "iri", "iri-reference"})
"""Formats left to the semantic checks (see the module's description)."""

Kind = Literal["document", "query-document", "event", "query", "unknown"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a document is not valid EPCIS 2.0.

    Attributes:
        where: Where in the document, e.g. ``epcisBody.eventList[0].bizStep`` (empty: the whole).
        message: What is wrong.
        check: ``schema`` (the GS1 JSON Schema) or ``semantic`` (this module's checks).
    """

    where: str
    message: str
    check: Literal["schema", "semantic"]

    def __str__(self) -> str:
        return f"{self.where or '(document)'}: {self.message} [{self.check}]"


class SchemaUnavailableError(Exception):
    """The GS1 schema cannot be used: not given, not readable, not a schema, or formats off."""


def schema_path(explicit: Path | None, configured: Path | None = None) -> Path:
    """The schema file: ``--schema``, else ``$EDGECOUNT_EPCIS_SCHEMA``, else the config's.

    Raises:
        SchemaUnavailableError: None of them is set.
    """
    if explicit is not None:
        return explicit
    from_env = os.environ.get(SCHEMA_ENV)
    if from_env:
        return Path(from_env)
    if configured is not None:
        return configured
    raise SchemaUnavailableError(
        "no EPCIS JSON Schema given: pass --schema PATH, set $"
        f"{SCHEMA_ENV} or epcis.schema_file in the config (the GS1 file EPCIS-JSON-Schema.json,"
        " from https://github.com/gs1/EPCIS or ref.gs1.org/standards/epcis/artefacts)"
    )


def load_schema(path: Path) -> Draft7Validator:
    """A validator of the GS1 EPCIS 2.0 schema at ``path``, its format checker on.

    Raises:
        SchemaUnavailableError: The file is missing or no draft-07 schema, or jsonschema's
            format checker lacks ``date-time`` or ``uri`` (a package is missing).
    """
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchemaUnavailableError(
            f"cannot read the EPCIS schema {path}: {exc.strerror}"
        ) from None
    except ValueError as exc:
        raise SchemaUnavailableError(f"the EPCIS schema {path} is not JSON: {exc}") from None
    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as exc:
        raise SchemaUnavailableError(f"{path} is no JSON Schema: {exc.message}") from None
    return Draft7Validator(schema, format_checker=format_checker())


def format_checker() -> FormatChecker:
    """Draft 7's format checker without the URI formats; ``date-time`` is really checked.

    Raises:
        SchemaUnavailableError: jsonschema cannot check ``date-time`` (a package is missing).
    """
    known = Draft7Validator.FORMAT_CHECKER.checkers
    missing = [name for name in REQUIRED_FORMATS if name not in known]
    if missing:
        raise SchemaUnavailableError(
            f"jsonschema cannot check the format {', '.join(missing)}: install"
            " rfc3339-validator (a dependency of edgecount)"
        )
    return FormatChecker([name for name in known if name not in UNCHECKED_FORMATS])


def document_kind(doc: Any) -> Kind:
    """What a parsed JSON value is: a document, a query document, a bare event, a query."""
    if not isinstance(doc, dict):
        return "unknown"
    kind = doc.get("type")
    if kind == "EPCISDocument":
        return "document"
    if kind == "EPCISQueryDocument":
        return "query-document"
    if isinstance(kind, str):
        return "event"
    if kind is None and any(_query_name(key) for key in doc if key != "@context"):
        return "query"
    return "unknown"


class EpcisValidator:
    """The GS1 schema (when given) and the semantic checks, over one parsed document."""

    def __init__(self, schema: Draft7Validator | None) -> None:
        self.schema = schema

    def validate(self, doc: Any) -> list[Problem]:
        """Every problem of ``doc``; empty when it is valid."""
        kind = document_kind(doc)
        if kind == "query":
            # a query's parameters, not a document: the schema has nothing to say about them
            return list(_query_problems(doc))
        problems: list[Problem] = []
        if self.schema is not None:
            errors = sorted(self.schema.iter_errors(doc), key=lambda e: list(e.absolute_path))
            problems += [
                Problem(_where(error.absolute_path), _short(error.message), "schema")
                for error in errors
            ]
        return problems + semantic_problems(doc)


def semantic_problems(doc: Any) -> list[Problem]:
    """What the schema does not catch (see the module's description)."""
    kind = document_kind(doc)
    if kind == "unknown":
        return [Problem("", "neither an EPCIS document, an event nor a query", "semantic")]
    if kind == "query":
        return list(_query_problems(doc))
    prefixes = _declared(doc)
    problems: list[Problem] = list(_time_problems(doc, ""))
    for where, event in _events(doc, kind):
        problems.extend(_event_problems(event, where, prefixes))
    return problems


# --- events -----------------------------------------------------------------------------------


def _events(doc: Mapping[str, Any], kind: Kind) -> Iterator[tuple[str, Any]]:
    if kind == "event":
        yield "", doc
        return
    body = doc.get("epcisBody")
    if not isinstance(body, dict):
        return
    if kind == "document":
        where, events = "epcisBody.eventList", body.get("eventList")
    else:
        results = body.get("queryResults")
        inner = results.get("resultsBody") if isinstance(results, dict) else None
        where = "epcisBody.queryResults.resultsBody.eventList"
        events = inner.get("eventList") if isinstance(inner, dict) else None
    if isinstance(events, list):
        for index, event in enumerate(events):
            yield f"{where}[{index}]", event


def _event_problems(event: Any, where: str, prefixes: frozenset[str]) -> Iterator[Problem]:
    if not isinstance(event, dict):
        return
    at = f"{where}." if where else ""
    kind = event.get("type")
    if kind not in vocab.EVENT_TYPES and not (
        isinstance(kind, str) and _namespaced(kind, prefixes)
    ):
        yield Problem(f"{at}type", f"unknown event type {kind!r}", "semantic")
    for key in event:
        if key not in vocab.EVENT_FIELDS and not _namespaced(key, prefixes):
            yield Problem(
                at + key, f"extension field {key!r} has no declared namespace", "semantic"
            )
    offset = event.get("eventTimeZoneOffset")
    if offset is not None and not (isinstance(offset, str) and vocab.TIMEZONE_OFFSET.match(offset)):
        yield Problem(
            f"{at}eventTimeZoneOffset", f"{offset!r} is not ±hh:mm within ±14:00", "semantic"
        )
    action = event.get("action")
    if action is not None and action not in vocab.ACTIONS:
        yield Problem(f"{at}action", f"{action!r} is not ADD, OBSERVE or DELETE", "semantic")
    yield from _vocabulary_fields(event, at, prefixes)
    yield from _section_problems(event, at, prefixes)
    if kind == "ObjectEvent" and not any(
        field in event for field in ("epcList", "quantityList", "sensorElementList")
    ):
        yield Problem(
            where, "an ObjectEvent needs an epcList, quantityList or sensorElementList", "semantic"
        )
    yield from _quantity_problems(event, at)
    yield from _identifier_problems(event, at)


def _vocabulary_fields(
    event: Mapping[str, Any], at: str, prefixes: frozenset[str]
) -> Iterator[Problem]:
    for field in ("bizStep", "disposition"):
        if field in event:
            yield from _vocabulary(event[field], field, f"{at}{field}", prefixes)
    persistent = event.get("persistentDisposition")
    if isinstance(persistent, dict):
        for part in ("set", "unset"):
            values = persistent.get(part)
            for index, value in enumerate(values if isinstance(values, list) else ()):
                path = f"{at}persistentDisposition.{part}[{index}]"
                yield from _vocabulary(value, "disposition", path, prefixes)


def _section_problems(
    event: Mapping[str, Any], at: str, prefixes: frozenset[str]
) -> Iterator[Problem]:
    for field in ("ilmd", "readPoint", "bizLocation"):
        section = event.get(field)
        if isinstance(section, dict):
            for key in section:
                if key not in ("id", "@context") and not _namespaced(key, prefixes):
                    yield Problem(
                        f"{at}{field}.{key}",
                        f"{field} field {key!r} has no declared namespace",
                        "semantic",
                    )


def _identifier_problems(event: Mapping[str, Any], at: str) -> Iterator[Problem]:
    """Identifiers are absolute URIs (a scheme, then RFC 3986)."""
    found: list[tuple[str, Any]] = []
    for field in vocab.IDENTIFIER_LISTS:
        values = event.get(field)
        found += [
            (f"{field}[{i}]", v) for i, v in enumerate(values if isinstance(values, list) else ())
        ]
    found += [(field, event[field]) for field in vocab.IDENTIFIER_FIELDS if field in event]
    for field in ("readPoint", "bizLocation"):
        section = event.get(field)
        if isinstance(section, dict) and "id" in section:
            found.append((f"{field}.id", section["id"]))
    for field in ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"):
        elements = event.get(field)
        for index, element in enumerate(elements if isinstance(elements, list) else ()):
            if isinstance(element, dict) and "epcClass" in element:
                found.append((f"{field}[{index}].epcClass", element["epcClass"]))
    for path, value in found:
        if not (isinstance(value, str) and validate_rfc3986(value, rule="URI")):
            yield Problem(at + path, f"{value!r} is not an absolute URI", "semantic")


def _quantity_problems(event: Mapping[str, Any], at: str) -> Iterator[Problem]:
    for field in ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"):
        elements = event.get(field)
        for index, element in enumerate(elements if isinstance(elements, list) else ()):
            quantity = element.get("quantity") if isinstance(element, dict) else None
            if quantity is None:
                continue
            if isinstance(quantity, bool) or not isinstance(quantity, int | float) or quantity < 0:
                yield Problem(
                    f"{at}{field}[{index}].quantity",
                    f"{quantity!r} is not a quantity (a number >= 0)",
                    "semantic",
                )


def _vocabulary(value: Any, field: str, where: str, prefixes: frozenset[str]) -> Iterator[Problem]:
    """A CBV word in one of its three forms, or a URI of a declared or absolute namespace."""
    word_prefix, words = vocab.CBV_FORMS[field]
    if not isinstance(value, str):
        yield Problem(where, f"{value!r} is not a string", "semantic")
        return
    for cbv in ("cbv:", "https://ref.gs1.org/cbv/"):
        if value.startswith(cbv):
            word = value.removeprefix(cbv).removeprefix(word_prefix)
            if not value.removeprefix(cbv).startswith(word_prefix) or word not in words:
                yield Problem(where, f"{value!r} is no CBV 2.0 {field}", "semantic")
            return
    if ":" not in value:
        if value not in words:
            yield Problem(
                where,
                f"non-standard {field} {value!r}: not a CBV 2.0 word, and no URI of a declared"
                " namespace",
                "semantic",
            )
        return
    if not _namespaced(value, prefixes):
        yield Problem(where, f"{field} {value!r} has no declared namespace", "semantic")


def _namespaced(name: str, prefixes: frozenset[str]) -> bool:
    """An absolute http(s)/urn URI, a CURIE with a declared prefix, or a declared term."""
    if name in prefixes:
        return True
    head, colon, rest = name.partition(":")
    if not colon or not rest or not head:
        return False
    if head in vocab.ABSOLUTE_SCHEMES:
        return rest.startswith("//") if head != "urn" else ":" in rest
    return head in prefixes


def _declared(doc: Any) -> frozenset[str]:
    """Every prefix or term the document's ``@context`` s declare (at any level), and GS1's."""
    found: set[str] = set(vocab.STANDARD_PREFIXES)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "@context":
                    contexts = value if isinstance(value, list) else [value]
                    for context in contexts:
                        if isinstance(context, dict):
                            found.update(k for k in context if not k.startswith("@"))
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(doc)
    return frozenset(found)


def _time_problems(node: Any, where: str) -> Iterator[Problem]:
    """Every time field (:data:`vocab.TIME_FIELDS`) anywhere below ``node`` is RFC 3339."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else key
            if key in vocab.TIME_FIELDS and isinstance(value, str) and not _is_time(value):
                yield Problem(
                    path, f"{value!r} is not an RFC 3339 date-time with an offset", "semantic"
                )
            else:
                yield from _time_problems(value, path)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _time_problems(item, f"{where}[{index}]")


def _is_time(text: str) -> bool:
    if not vocab.TIMESTAMP.match(text):
        return False
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


# --- queries ----------------------------------------------------------------------------------


def _query_name(name: str) -> bool:
    return name in vocab.QUERY_FIXED or any(p.match(name) for p in vocab.QUERY_PATTERNS)


def _query_problems(query: Mapping[str, Any]) -> Iterator[Problem]:
    for name, value in query.items():
        if name == "@context":
            continue
        if not _query_name(name):
            yield Problem(name, f"unknown query parameter {name!r}", "semantic")
            continue
        yield from _query_value(name, value)


def _query_value(name: str, value: Any) -> Iterator[Problem]:
    if vocab.QUERY_TIMES.match(name):
        if not (isinstance(value, str) and _is_time(value)):
            yield Problem(name, f"{value!r} is not an RFC 3339 date-time", "semantic")
    elif vocab.QUERY_NUMBERS.match(name):
        if isinstance(value, bool) or not isinstance(value, int | float):
            yield Problem(name, f"{value!r} is not a number", "semantic")
    elif name in ("eventCountLimit", "maxEventCount"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            yield Problem(name, f"{value!r} is not a whole number >= 1", "semantic")
    elif name == "orderDirection":
        if value not in vocab.ORDER_DIRECTIONS:
            yield Problem(name, f"{value!r} is not ASC or DESC", "semantic")
    elif name in ("eventType", "EQ_action", "EQ_bizStep", "EQ_disposition"):
        if not isinstance(value, list) or not value:
            yield Problem(name, f"{value!r} is not a non-empty list", "semantic")
            return
        for index, item in enumerate(value):
            yield from _query_item(name, index, item)


def _query_item(name: str, index: int, item: Any) -> Iterator[Problem]:
    where = f"{name}[{index}]"
    prefixes = vocab.STANDARD_PREFIXES
    if name == "eventType" and item not in vocab.EVENT_TYPES:
        yield Problem(where, f"unknown event type {item!r}", "semantic")
    elif name == "EQ_action" and item not in vocab.ACTIONS:
        yield Problem(where, f"{item!r} is not ADD, OBSERVE or DELETE", "semantic")
    elif name == "EQ_bizStep":
        yield from _vocabulary(item, "bizStep", where, prefixes)
    elif name == "EQ_disposition":
        yield from _vocabulary(item, "disposition", where, prefixes)


# --- helpers ----------------------------------------------------------------------------------


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"
