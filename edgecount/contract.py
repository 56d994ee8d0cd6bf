"""The MQTT message contract v1: topics, JSON Schemas, validation and payload builders.

Both the gateway and the reconciler import this module, so it depends only on the standard
library and ``jsonschema``. The JSON Schemas (draft 2020-12) live in ``edgecount/schemas/``
and are the source of truth; ``docs/asyncapi.yaml`` references them.

Topics live under ``edgecount/v1/{site}/``::

    count/{zone}/{location}        gateway -> *    edgecount.count/1        QoS 1, retained
    scan/{zone}                    gateway -> *    edgecount.scan/1         QoS 1, retained
    status/{gateway_id}            gateway -> *    edgecount.status/1       QoS 1, retained
    cmd/{gateway_id}/scan          * -> gateway    edgecount.scan-request/1 QoS 1
    discrepancy/{zone}/{location}  reconciler -> * edgecount.discrepancy/1  QoS 1, retained
    adjustment                     reconciler -> * edgecount.adjustment/1   QoS 1
    decision                       reconciler -> * edgecount.decision/1     QoS 1
    deadletter                     consumer -> *   edgecount.deadletter/1   QoS 1
    pose/{robot}                   robot -> gateway edgecount.pose/1        QoS 0 (edgecount.pose)

``count`` and ``scan`` messages are *sequenced*: the gateway's outbox fills in ``seq``,
``msg_id`` (``"{gateway}:{epoch}:{seq}"``) and ``historical`` (see :func:`with_sequence`). Their
builders therefore return *drafts* without those three fields; :func:`validate_draft` checks
a draft, :func:`validate` checks what goes on the wire.
"""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Final, NamedTuple

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from edgecount import __version__, timefmt

TOPIC_PREFIX: Final = "edgecount/v1"

COUNT: Final = "edgecount.count/1"
SCAN: Final = "edgecount.scan/1"
STATUS: Final = "edgecount.status/1"
SCAN_REQUEST: Final = "edgecount.scan-request/1"
DISCREPANCY: Final = "edgecount.discrepancy/1"
ADJUSTMENT: Final = "edgecount.adjustment/1"
DECISION: Final = "edgecount.decision/1"
DEADLETTER: Final = "edgecount.deadletter/1"
POSE: Final = "edgecount.pose/1"

SCHEMA_FILES: Final[Mapping[str, str]] = {
    COUNT: "count.json",
    SCAN: "scan.json",
    STATUS: "status.json",
    SCAN_REQUEST: "scan-request.json",
    DISCREPANCY: "discrepancy.json",
    ADJUSTMENT: "adjustment.json",
    DECISION: "decision.json",
    DEADLETTER: "deadletter.json",
    POSE: "pose.json",
}
SEQUENCED: Final = frozenset({COUNT, SCAN})
"""Schemas whose payloads carry ``seq``, ``msg_id`` and ``historical`` (filled by the outbox)."""

EPOCH_PATTERN: Final = re.compile(r"[0-9a-f]{8,32}")
"""An outbox epoch: random lowercase hex made with the outbox file (see :func:`msg_id`)."""

UNKNOWN_SKU: Final = "unknown"
"""The sku under which tags that are not SGTIN are counted (their EPCs go in ``epcs``)."""

MAX_SEGMENT: Final = 128
_BAD_SEGMENT = re.compile(r"[/+#\x00-\x1f\x7f-\x9f]")

# kind -> (topic levels after the site, schema). "{name}" levels are parameters.
TOPICS: Final[Mapping[str, tuple[tuple[str, ...], str]]] = {
    "count": (("count", "{zone}", "{location}"), COUNT),
    "scan": (("scan", "{zone}"), SCAN),
    "status": (("status", "{gateway}"), STATUS),
    "cmd_scan": (("cmd", "{gateway}", "scan"), SCAN_REQUEST),
    "discrepancy": (("discrepancy", "{zone}", "{location}"), DISCREPANCY),
    "adjustment": (("adjustment",), ADJUSTMENT),
    "decision": (("decision",), DECISION),
    "deadletter": (("deadletter",), DEADLETTER),
    "pose": (("pose", "{robot}"), POSE),
}


class ContractError(ValueError):
    """A topic or payload that breaks the contract.

    Attributes:
        reason: What is wrong, in words.
        schema: The schema id the payload claimed, when known.
        path: Where in the payload (``items[0].qty``), empty for the whole payload.
    """

    def __init__(self, reason: str, *, schema: str | None = None, path: str = "") -> None:
        self.reason = reason
        self.schema = schema
        self.path = path
        where = f" at {path}" if path else ""
        super().__init__(f"{schema or 'payload'}{where}: {reason}")


# --- topics -------------------------------------------------------------------------------


def check_segment(value: str, what: str = "topic segment") -> str:
    """Return ``value`` if it can be one MQTT topic level, else raise :class:`ContractError`.

    A segment is non-empty, at most 128 characters, encodable as UTF-8, and has no ``/``,
    ``+``, ``#`` or control characters.
    """
    if not isinstance(value, str) or not value:
        raise ContractError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_SEGMENT:
        raise ContractError(f"{what} {value[:40]!r}... is longer than {MAX_SEGMENT} characters")
    bad = _BAD_SEGMENT.search(value)
    if bad:
        raise ContractError(
            f"{what} {value!r} contains {bad.group()!r}; '/', '+', '#' and control "
            "characters are not allowed in a topic level"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ContractError(f"{what} {value!r} is not valid UTF-8: {exc.reason}") from None
    return value


def site_root(site: str) -> str:
    """``edgecount/v1/{site}/`` (with the trailing slash)."""
    return f"{TOPIC_PREFIX}/{check_segment(site, 'site')}/"


def site_filter(site: str = "+") -> str:
    """Subscription filter for every topic of ``site`` (``+`` for every site)."""
    if site != "+":
        check_segment(site, "site")
    return f"{TOPIC_PREFIX}/{site}/#"


def _topic(site: str, *levels: tuple[str, str]) -> str:
    return site_root(site) + "/".join(check_segment(value, what) for what, value in levels)


def count_topic(site: str, zone: str, location: str) -> str:
    """``edgecount/v1/{site}/count/{zone}/{location}``."""
    return _topic(site, ("", "count"), ("zone", zone), ("location", location))


def scan_topic(site: str, zone: str) -> str:
    """``edgecount/v1/{site}/scan/{zone}``."""
    return _topic(site, ("", "scan"), ("zone", zone))


def status_topic(site: str, gateway_id: str) -> str:
    """``edgecount/v1/{site}/status/{gateway_id}``."""
    return _topic(site, ("", "status"), ("gateway_id", gateway_id))


def cmd_scan_topic(site: str, gateway_id: str) -> str:
    """``edgecount/v1/{site}/cmd/{gateway_id}/scan``."""
    return _topic(site, ("", "cmd"), ("gateway_id", gateway_id), ("", "scan"))


def discrepancy_topic(site: str, zone: str, location: str) -> str:
    """``edgecount/v1/{site}/discrepancy/{zone}/{location}``."""
    return _topic(site, ("", "discrepancy"), ("zone", zone), ("location", location))


def adjustment_topic(site: str) -> str:
    """``edgecount/v1/{site}/adjustment``."""
    return site_root(site) + "adjustment"


def decision_topic(site: str) -> str:
    """``edgecount/v1/{site}/decision``."""
    return site_root(site) + "decision"


def deadletter_topic(site: str) -> str:
    """``edgecount/v1/{site}/deadletter``."""
    return site_root(site) + "deadletter"


class TopicInfo(NamedTuple):
    """A parsed contract topic: its kind (a key of :data:`TOPICS`), site and parameters."""

    kind: str
    site: str
    params: dict[str, str]

    @property
    def schema(self) -> str:
        """The schema id of payloads on this topic."""
        return TOPICS[self.kind][1]


def parse_topic(topic: str) -> TopicInfo:
    """Parse a contract topic; raise :class:`ContractError` for anything else."""
    levels = topic.split("/")
    if len(levels) < 4 or "/".join(levels[:2]) != TOPIC_PREFIX:
        raise ContractError(f"topic {topic!r} is not under {TOPIC_PREFIX}/{{site}}/")
    site = check_segment(levels[2], "site")
    rest = levels[3:]
    for kind, (pattern, _schema) in TOPICS.items():
        if len(pattern) != len(rest):
            continue
        params: dict[str, str] = {}
        for want, got in zip(pattern, rest, strict=True):
            if want.startswith("{"):
                params[want.strip("{}")] = check_segment(got, want.strip("{}"))
            elif want != got:
                break
        else:
            return TopicInfo(kind, site, params)
    raise ContractError(f"topic {topic!r} matches no topic of contract v1")


def check_topic(topic: str, payload: Mapping[str, Any]) -> TopicInfo:
    """Check that a (valid) payload belongs on ``topic``: schema and identifiers agree."""
    info = parse_topic(topic)
    schema = payload.get("schema")
    if schema != info.schema:
        raise ContractError(f"topic {topic!r} carries {info.schema}, not {schema!r}")
    expected = {"site": info.site, **info.params}
    for field, value in expected.items():
        if field in payload and payload[field] != value:
            raise ContractError(
                f"{field} is {payload[field]!r} but the topic {topic!r} says {value!r}",
                schema=info.schema,
                path=field,
            )
    return info


# --- time -----------------------------------------------------------------------------------


to_iso = timefmt.to_iso  # kept here for the contract's callers; written in edgecount.timefmt
now_iso = timefmt.now_iso


def parse_iso(text: str) -> datetime:
    """Parse a contract timestamp (``...Z``) into an aware UTC datetime."""
    try:
        return timefmt.parse_zulu(text)
    except timefmt.TimeFormatError as exc:
        raise ContractError(str(exc)) from None


def _iso_or_now(value: str | datetime | None) -> str:
    if value is None:
        return now_iso()
    return value if isinstance(value, str) else to_iso(value)


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


def msg_id(gateway: str, seq: int, epoch: str | None = None) -> str:
    """The ``msg_id`` of a sequenced message: ``"{gateway}:{epoch}:{seq}"``.

    The epoch is a random id the gateway's outbox creates with its file. A gateway whose
    outbox file was lost starts its sequence again at 1 under a new epoch, so its new
    messages never reuse an old ``msg_id`` (consumers would drop them as duplicates).
    Without an epoch (publishers with no outbox file, older gateways) it is
    ``"{gateway}:{seq}"``.
    """
    if epoch is None:
        return f"{gateway}:{seq}"
    if not EPOCH_PATTERN.fullmatch(epoch):
        raise ContractError(f"epoch {epoch!r} is not 8-32 lowercase hexadecimal digits")
    return f"{gateway}:{epoch}:{seq}"


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
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


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


_SEMANTIC_CHECKS: Final[Mapping[str, Callable[[Mapping[str, Any]], None]]] = {
    COUNT: _check_count,
    SCAN: _check_scan,
    DISCREPANCY: _check_discrepancy,
    ADJUSTMENT: _check_adjustment,
    DECISION: _check_decision,
}


# --- builders -------------------------------------------------------------------------------


def count_payload(
    *,
    gateway: str,
    site: str,
    zone: str,
    location: str,
    scan_id: str,
    items: Iterable[Mapping[str, Any]],
    source: str = "rfid",
    complete: bool = True,
    observed_at: str | datetime | None = None,
    fusion: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An ``edgecount.count/1`` draft (no seq/msg_id/historical: the outbox adds them).

    Items are ``{"sku", "qty", "confidence"?, "epcs"?}``, sorted here by sku; ``total`` is
    their sum. ``fusion`` (the RFID and vision figures) goes with ``source="fused"``.
    Raises :class:`ContractError` when the result would not be valid.
    """
    rows = sorted((dict(item) for item in items), key=lambda item: str(item.get("sku")))
    payload: dict[str, Any] = {
        "schema": COUNT,
        "gateway": gateway,
        "site": site,
        "zone": zone,
        "location": location,
        "scan_id": scan_id,
        "observed_at": _iso_or_now(observed_at),
        "source": source,
        "complete": complete,
        "items": rows,
        "total": sum(int(item.get("qty", 0)) for item in rows),
    }
    if (fusion is not None) != (source == "fused"):
        raise ContractError("fusion figures go with source 'fused', and only with it")
    if fusion is not None:
        payload["fusion"] = dict(fusion)
    validate_draft(payload)
    return payload


def scan_payload(
    *,
    gateway: str,
    site: str,
    zone: str,
    scan_id: str,
    state: str,
    started_at: str | datetime,
    locations: Sequence[str],
    ended_at: str | datetime | None = None,
    incomplete_locations: Sequence[str] = (),
    readers: Iterable[Mapping[str, Any]] = (),
    cameras: Iterable[Mapping[str, Any]] = (),
    request_id: str | None = None,
) -> dict[str, Any]:
    """An ``edgecount.scan/1`` draft; ``state`` is started, completed or incomplete."""
    payload: dict[str, Any] = {
        "schema": SCAN,
        "state": state,
        "scan_id": scan_id,
        "zone": zone,
        "gateway": gateway,
        "site": site,
        "started_at": _iso_or_now(started_at),
        "locations": list(locations),
        "incomplete_locations": list(incomplete_locations),
        "readers": [dict(reader) for reader in readers],
    }
    camera_rows = [dict(camera) for camera in cameras]
    if camera_rows:
        payload["cameras"] = camera_rows
    if ended_at is not None:
        payload["ended_at"] = _iso_or_now(ended_at)
    if request_id is not None:
        payload["request_id"] = request_id
    validate_draft(payload)
    return payload


def status_payload(
    *,
    gateway: str,
    site: str,
    state: str,
    at: str | datetime | None = None,
    version: str = __version__,
) -> dict[str, Any]:
    """An ``edgecount.status/1`` payload; ``state`` is online, offline or stopped."""
    payload = {
        "schema": STATUS,
        "gateway": gateway,
        "site": site,
        "state": state,
        "at": _iso_or_now(at),
        "version": version,
    }
    validate(payload)
    return payload


def scan_request_payload(
    *,
    reason: str,
    requested_by: str,
    zone: str | None = None,
    locations: Sequence[str] | None = None,
    request_id: str | None = None,
    at: str | datetime | None = None,
    expires_at: str | datetime | None = None,
) -> dict[str, Any]:
    """An ``edgecount.scan-request/1`` payload for a zone and/or locations.

    ``request_id`` defaults to a fresh UUID.
    """
    payload: dict[str, Any] = {
        "schema": SCAN_REQUEST,
        "request_id": request_id or str(uuid.uuid4()),
        "reason": reason,
        "requested_by": requested_by,
        "at": _iso_or_now(at),
    }
    if zone is not None:
        payload["zone"] = zone
    if locations is not None:
        payload["locations"] = list(locations)
    if expires_at is not None:
        payload["expires_at"] = _iso_or_now(expires_at)
    validate(payload)
    return payload


def build(schema: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Any payload: ``{"schema": schema, **fields}``, validated (a draft for sequenced ones).

    Used for the reconciler's messages (discrepancy, adjustment) until they get builders of
    their own.
    """
    payload = {"schema": schema, **fields}
    validate_draft(payload)
    return payload


def deadletter_payload(
    *, topic: str, raw: bytes, reason: str, rejected_by: str, max_bytes: int = 65536
) -> dict[str, Any]:
    """An ``edgecount.deadletter/1`` payload for a rejected message (kept up to max_bytes)."""
    payload: dict[str, Any] = {
        "schema": DEADLETTER,
        "topic": topic or "?",
        "reason": reason[:4096] or "?",
        "rejected_by": rejected_by,
        "received_at": now_iso(),
        "payload_base64": base64.b64encode(raw[:max_bytes]).decode("ascii"),
    }
    if len(raw) > max_bytes:
        payload["truncated"] = True
    validate(payload)
    return payload
