"""The wire: JSON Schema validation, hardened decoding and encoding of contract payloads.

The JSON Schemas (draft 2020-12) live in ``edgecount/schemas/`` and are the source of truth;
``docs/asyncapi.yaml`` references them. :func:`validate` checks what goes on the wire (a
compiled first pass, the reference validator for the explanation, then the semantic checks
JSON Schema cannot say); :func:`validate_draft` checks a sequenced draft that still lacks
``seq``, ``msg_id`` and ``historical``; :func:`decode` turns untrusted bytes into a valid
payload or a :class:`ContractError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any, Final

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from edgecount.contract.common import (
    ADJUSTMENT,
    COUNT,
    DECISION,
    DISCREPANCY,
    EPOCH_PATTERN,
    FRAME,
    MAX_FRAME_BYTES,
    SCAN,
    SCHEMA_FILES,
    SEQUENCED,
    ContractError,
    msg_id,
    parse_iso,
)
from edgecount.contract.topics import check_topic

# --- validation -----------------------------------------------------------------------------


@cache
def schema_document(schema_id: str) -> dict[str, Any]:
    """The JSON Schema of ``schema_id`` as shipped in ``edgecount/schemas/``."""
    name = SCHEMA_FILES.get(schema_id)
    if name is None:
        raise ContractError(f"unknown schema {schema_id!r}; known: {', '.join(SCHEMA_FILES)}")
    text = resources.files("edgecount").joinpath("schemas", name).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


@cache
def _validator(schema_id: str) -> Draft202012Validator:
    document = schema_document(schema_id)
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document)


def _path(error: ValidationError) -> str:
    text = ""
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def _message(error: ValidationError) -> str:
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator == "pattern" and description:
        return f"{error.instance!r} is not valid: {description}"
    message = error.message
    return message if len(message) <= 300 else message[:297] + "..."


def _schema_of(payload: Mapping[str, Any]) -> str:
    if not isinstance(payload, Mapping):
        raise ContractError(f"a payload must be a JSON object, got {type(payload).__name__}")
    schema = payload.get("schema")
    if schema is None:
        raise ContractError("has no 'schema' field")
    if not isinstance(schema, str) or schema not in SCHEMA_FILES:
        raise ContractError(f"unknown schema {schema!r}; this build knows {sorted(SCHEMA_FILES)}")
    return schema


def _inline(node: Any, root: Mapping[str, Any]) -> Any:
    """A copy of a schema with local ``$ref`` s inlined and annotations (format, content*) dropped.

    (jsonschema treats ``format`` as an annotation unless asked otherwise; dropping it keeps
    the compiled validator exactly as permissive.)
    """
    if isinstance(node, list):
        return [_inline(item, root) for item in node]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        target: Any = root
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**_inline(target, root), **_inline(rest, root)}
    skip = {"$defs", "$schema", "$id", "format", "contentEncoding", "contentMediaType"}
    return {k: _inline(v, root) for k, v in node.items() if k not in skip}


@cache
def _fast_validator(schema_id: str) -> Callable[[Any], Any]:
    """A compiled validator of the schema (fastjsonschema): about 30x faster than jsonschema.

    Used as a first pass only: what it accepts is valid; whatever it rejects goes through the
    jsonschema validator, which has the final word and explains the problem.
    """
    document = schema_document(schema_id)
    compiled: Callable[[Any], Any] = fastjsonschema.compile(_inline(document, document))
    return compiled


def validate(payload: Mapping[str, Any]) -> None:
    """Validate a payload as it goes on the wire, dispatching on its ``schema`` field.

    Raises:
        ContractError: With the most relevant problem (and how many more there are).
    """
    schema = _schema_of(payload)
    try:
        _fast_validator(schema)(payload)
    except fastjsonschema.JsonSchemaException:
        _explain(schema, payload)
    check = _SEMANTIC_CHECKS.get(schema)
    if check is not None:
        check(payload)


def _explain(schema: str, payload: Mapping[str, Any]) -> None:
    """Raise the reference validator's best description of what is wrong (if anything)."""
    errors = list(_validator(schema).iter_errors(payload))
    missing = [e for e in errors if e.validator == "required" and not e.absolute_path]
    if len(missing) > 1:
        names = ", ".join(sorted(str(e.message).split("'")[1] for e in missing))
        raise ContractError(f"missing required properties: {names}", schema=schema)
    if errors:
        first = best_match(errors)
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise ContractError(_message(first) + more, schema=schema, path=_path(first))


def validate_draft(payload: Mapping[str, Any]) -> None:
    """Validate a payload that may still lack ``seq``, ``msg_id`` and ``historical``."""
    schema = _schema_of(payload)
    if schema not in SEQUENCED:
        validate(payload)
        return
    gateway = payload.get("gateway")
    filled = {"seq": 1, "msg_id": f"{gateway}:1", "historical": False, **payload}
    if "seq" in payload and "msg_id" not in payload:
        filled["msg_id"] = f"{gateway}:{payload['seq']}"
    validate(filled)


def with_sequence(
    payload: Mapping[str, Any], seq: int, *, historical: bool = False, epoch: str | None = None
) -> dict[str, Any]:
    """A copy of a sequenced draft with ``seq``, ``msg_id`` and ``historical`` filled in.

    ``epoch`` goes into the ``msg_id`` (see :func:`msg_id`). Payloads of schemas outside
    :data:`SEQUENCED` are copied unchanged.
    """
    result = dict(payload)
    if result.get("schema") in SEQUENCED:
        result["seq"] = seq
        result["msg_id"] = msg_id(str(result.get("gateway")), seq, epoch)
        result["historical"] = historical
    return result


def encode(payload: Mapping[str, Any]) -> bytes:
    """Validate and serialise a payload to compact UTF-8 JSON."""
    validate(payload)
    return serialise(payload)


def serialise(payload: Mapping[str, Any]) -> bytes:
    """A payload as compact UTF-8 JSON, unchecked: :func:`encode` without :func:`validate`.

    For payloads validated already, or on purpose not at all (an outbox told not to).
    """
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def as_historical(raw: bytes) -> bytes:
    """Encoded bytes of a sequenced message, made ``historical: true``; others unchanged.

    For a message sent again that a consumer may have seen before (see ``gateway.outbox``);
    an empty payload (a retained clear) stays empty.
    """
    if not raw:
        return raw
    payload = json.loads(raw)
    if not isinstance(payload, dict) or payload.get("schema") not in SEQUENCED:
        return raw
    payload["historical"] = True
    return serialise(payload)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ContractError(f"duplicate key {key!r} in JSON object")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ContractError(f"{name} is not valid JSON")


#: Longest integer literal :func:`decode` accepts: every integer of contract v1 fits a double.
MAX_INT_DIGITS: Final = 300


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: JSON allows it, no double holds it
        raise ContractError(f"number {text[:40]} is out of range")
    return value


#: A \\u escape of a UTF-16 surrogate: JSON allows one alone, no UTF-8 text holds it.
_LONE_SURROGATE: Final = re.compile(r"\\u[dD][89a-fA-F]")


def _check_scalar_values(payload: Any) -> None:
    """Reject strings holding a lone surrogate (escaped pairs decode to one character)."""
    stack = [payload]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for item in items:
            stack.extend(item if isinstance(node, dict) else (item,))
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise ContractError(f"string {node[:40]!r} holds a lone surrogate") from None


def _bounded_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:  # int() of thousands of digits is slow, then refused
        raise ContractError(f"integer of {len(text)} digits is out of range")
    return int(text)


def decode(raw: bytes, *, topic: str | None = None) -> dict[str, Any]:
    """UTF-8 bytes -> validated payload dict; with ``topic``, also :func:`check_topic`.

    Raises:
        ContractError: For an empty payload (a retained clear), bad UTF-8, bad JSON (including
            duplicate keys, NaN and Infinity, numbers no double holds, nesting deeper than
            Python's recursion limit), a non-object, or a schema violation.
    """
    if not raw:
        raise ContractError("empty payload (a cleared retained message)")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(f"not valid UTF-8 at byte {exc.start}: {exc.reason}") from None
    try:
        payload = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except json.JSONDecodeError as exc:
        raise ContractError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ContractError("not valid JSON: nested too deeply") from None
    if not isinstance(payload, dict):
        raise ContractError(f"a payload must be a JSON object, got {type(payload).__name__}")
    if _LONE_SURROGATE.search(text):
        _check_scalar_values(payload)
    try:
        validate(payload)
    except RecursionError:  # nesting shallow enough for json.loads, too deep for the validator
        raise ContractError("nested too deeply") from None
    if topic is not None:
        check_topic(topic, payload)
    return payload


# --- semantic checks (what JSON Schema cannot say) -----------------------------------------


def _check_sequence(payload: Mapping[str, Any]) -> None:
    gateway, seq, given = payload["gateway"], payload["seq"], payload["msg_id"]
    head, tail = f"{gateway}:", f":{seq}"
    middle = given[len(head) : -len(tail)] if len(given) > len(head) + len(tail) else None
    if given == f"{gateway}:{seq}" or (
        given.startswith(head)
        and given.endswith(tail)
        and middle is not None
        and EPOCH_PATTERN.fullmatch(middle)
    ):
        return
    raise ContractError(
        f"msg_id {given!r} should be '{gateway}:{seq}' or '{gateway}:EPOCH:{seq}' "
        "(EPOCH: 8-32 lowercase hex digits)",
        schema=payload["schema"],
        path="msg_id",
    )


def _check_count(payload: Mapping[str, Any]) -> None:
    _check_sequence(payload)
    items = payload["items"]
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item["sku"] in seen:
            raise ContractError(
                f"sku {item['sku']!r} appears twice", schema=COUNT, path=f"items[{index}].sku"
            )
        seen.add(item["sku"])
        epcs = item.get("epcs")
        if epcs is not None and (len(epcs) != item["qty"] or len(set(epcs)) != len(epcs)):
            raise ContractError(
                f"epcs must list {item['qty']} distinct EPCs (one per unit), got {len(epcs)}",
                schema=COUNT,
                path=f"items[{index}].epcs",
            )
    total = sum(item["qty"] for item in items)
    if payload["total"] != total:
        raise ContractError(
            f"total is {payload['total']} but the items add up to {total}",
            schema=COUNT,
            path="total",
        )


def _check_scan(payload: Mapping[str, Any]) -> None:
    _check_sequence(payload)
    stray = sorted(set(payload["incomplete_locations"]) - set(payload["locations"]))
    if stray:
        raise ContractError(
            f"incomplete_locations {stray} are not in locations",
            schema=SCAN,
            path="incomplete_locations",
        )
    incomplete = bool(payload["incomplete_locations"])
    if payload["state"] == "completed" and incomplete:
        raise ContractError(
            "a completed scan has no incomplete_locations", schema=SCAN, path="state"
        )
    if payload["state"] == "incomplete" and not incomplete:
        raise ContractError(
            "an incomplete scan names its incomplete_locations", schema=SCAN, path="state"
        )
    ended = payload.get("ended_at")
    if ended is not None and parse_iso(ended) < parse_iso(payload["started_at"]):
        raise ContractError("ended_at is before started_at", schema=SCAN, path="ended_at")


def _check_discrepancy(payload: Mapping[str, Any]) -> None:
    for index, line in enumerate(payload["lines"]):
        counted, diff = line["counted_qty"], line["diff"]
        expected = None if counted is None else counted - line["book_qty"]
        if diff != expected:
            raise ContractError(
                f"diff should be {expected} (counted_qty - book_qty), got {diff}",
                schema=DISCREPANCY,
                path=f"lines[{index}].diff",
            )


def _check_adjustment(payload: Mapping[str, Any]) -> None:
    if payload["diff"] != payload["counted_qty"] - payload["book_qty"]:
        raise ContractError("diff should be counted_qty - book_qty", schema=ADJUSTMENT, path="diff")


def _check_decision(payload: Mapping[str, Any]) -> None:
    for index, line in enumerate(payload["lines"]):
        if line["diff"] != line["counted_qty"] - line["book_qty"]:
            raise ContractError(
                "diff should be counted_qty - book_qty",
                schema=DECISION,
                path=f"lines[{index}].diff",
            )
    if ("adjustments" in payload) != (payload["outcome"] == "approved"):
        raise ContractError(
            "adjustments go with outcome approved, and only with it", schema=DECISION
        )


def _check_frame(payload: Mapping[str, Any]) -> None:
    try:
        jpeg = base64.b64decode(payload["data"], validate=True)
    except binascii.Error as exc:
        raise ContractError(f"not valid base64: {exc}", schema=FRAME, path="data") from None
    if len(jpeg) > MAX_FRAME_BYTES:
        raise ContractError(
            f"the image has {len(jpeg)} bytes, more than {MAX_FRAME_BYTES}",
            schema=FRAME,
            path="data",
        )
    if not jpeg.startswith(b"\xff\xd8\xff"):
        raise ContractError("not a JPEG image (no SOI marker)", schema=FRAME, path="data")


_SEMANTIC_CHECKS: Final[Mapping[str, Callable[[Mapping[str, Any]], None]]] = {
    COUNT: _check_count,
    SCAN: _check_scan,
    DISCREPANCY: _check_discrepancy,
    ADJUSTMENT: _check_adjustment,
    DECISION: _check_decision,
    FRAME: _check_frame,
}
