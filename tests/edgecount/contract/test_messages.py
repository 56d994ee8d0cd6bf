"""The typed message classes: checked against the JSON Schemas, and round trips to the byte."""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import types
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from edgecount import contract
from edgecount.contract import ContractError, Record
from edgecount.pose import pose_payload
from reconciler.model import AbcClass as ReconcilerAbc
from reconciler.model import Status
from reconciler.transitions import CLOSED_STATES, OPEN_STATES, State

DOCS = Path(__file__).resolve().parents[3] / "docs"
WHEN = datetime(2024, 5, 1, 2, 0, 0, 123000, tzinfo=UTC)
GW, SITE, ZONE = "gw-1", "dc-east", "zone-a"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(40))

# --- every class against its schema, mechanically -------------------------------------------

_SCALARS: Mapping[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Any]:
    """``node`` with a local ``$ref`` replaced by its target (the node's own keys kept)."""
    ref = node.get("$ref")
    if ref is None:
        return dict(node)
    target: Any = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    rest = {k: v for k, v in node.items() if k != "$ref"}
    return {**_resolve(target, root), **rest}


def _without_none(hint: Any) -> tuple[Any, bool]:
    """(the hint without ``None``, whether it allowed ``None``)."""
    if get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint):
        (inner,) = (arg for arg in get_args(hint) if arg is not type(None))
        return inner, True
    return hint, False


def _check_type(
    where: str, hint: Any, prop: Mapping[str, Any], root: Mapping[str, Any], allowed: Any
) -> None:
    """Fail unless ``hint`` is the Python type of schema property ``prop``."""
    if "enum" in prop:
        assert isinstance(hint, type), where
        assert issubclass(hint, enum.StrEnum), where
        values = {str(v) for v in (allowed if allowed is not None else hint)}
        assert values == set(prop["enum"]), f"{where}: {sorted(values)} != {prop['enum']}"
        return
    kind = prop.get("type")
    assert isinstance(kind, str), f"{where}: unexpected schema type {kind!r}"
    if kind == "array":
        assert get_origin(hint) is tuple, where
        item, ellipsis = get_args(hint)
        assert ellipsis is Ellipsis, where
        _check_type(f"{where}[]", item, _resolve(prop["items"], root), root, None)
    elif kind == "object":
        assert isinstance(hint, type), where
        assert issubclass(hint, Record), where
        _check_record(hint, prop, root, where)
    else:
        assert hint is _SCALARS[kind], f"{where}: {hint} is not {kind}"


def _check_record(
    cls: type[Record], schema: Mapping[str, Any], root: Mapping[str, Any], where: str
) -> None:
    """The fields of ``cls`` are exactly the object's properties, typed and required alike."""
    assert schema.get("additionalProperties") is False, where
    properties = dict(schema["properties"])
    required = set(schema.get("required", ()))
    if "schema" in properties:  # the const: the class's SCHEMA, not a field
        assert properties.pop("schema") == {"const": cls.SCHEMA}, where
        required.discard("schema")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    assert set(fields) == set(properties), f"{where}: {sorted(fields)} != {sorted(properties)}"
    hints = get_type_hints(cls)
    for name, spec in fields.items():
        here = f"{where}.{name}"
        prop = _resolve(properties[name], root)
        hint, nullable = _without_none(hints[name])
        defaulted = spec.default is not dataclasses.MISSING
        assert defaulted == (name not in required), f"{here}: required iff no default"
        if defaulted:
            assert spec.default is None, f"{here}: optional means None = absent"
            assert nullable, f"{here}: optional means None = absent"
        else:
            kinds = prop.get("type")
            schema_nullable = isinstance(kinds, list) and "null" in kinds
            assert nullable == schema_nullable, f"{here}: nullable in the schema iff in the class"
        if isinstance(prop.get("type"), list):
            prop = {**prop, "type": next(t for t in prop["type"] if t != "null")}
        _check_type(here, hint, prop, root, spec.metadata.get("allowed"))


@pytest.mark.parametrize("schema_id", sorted(contract.SCHEMA_FILES))
def test_class_fields_are_the_schema_properties(schema_id: str) -> None:
    document = contract.schema_document(schema_id)
    cls = contract.MESSAGE_CLASSES[schema_id]
    assert schema_id == cls.SCHEMA
    _check_record(cls, document, document, cls.__name__)


@pytest.mark.parametrize("schema_id", sorted(contract.SEQUENCED))
def test_a_draft_is_its_message_without_the_sequence_fields(schema_id: str) -> None:
    draft = contract.DRAFT_CLASSES[schema_id]
    message = contract.MESSAGE_CLASSES[schema_id]
    assert issubclass(message, draft)
    names = [f.name for f in dataclasses.fields(message)]
    assert names == [f.name for f in dataclasses.fields(draft)] + list(contract.SEQUENCE_FIELDS)


def test_every_class_is_frozen_slotted_and_keyword_only() -> None:
    seen: set[type] = set()
    todo: list[type[Record]] = [*contract.MESSAGE_CLASSES.values()]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen, cls
        assert "__slots__" in cls.__dict__, cls
        assert all(f.kw_only for f in dataclasses.fields(cls)), cls  # type: ignore[arg-type]
        todo.extend(spec.part for spec in contract.field_specs(cls) if spec.part)
    assert len(seen) > len(contract.MESSAGE_CLASSES)  # the nested parts were visited too


def test_the_reconciler_uses_the_contracts_enumerations() -> None:
    assert State is contract.DiscrepancyState
    assert OPEN_STATES is contract.OPEN_STATES
    assert CLOSED_STATES is contract.CLOSED_STATES
    assert Status is contract.LineStatus
    assert ReconcilerAbc is contract.AbcClass


# --- the payloads the builders, tests and docs use -------------------------------------------


def _reconciler_payloads() -> Iterator[dict[str, Any]]:
    line = {
        "sku": "x",
        "book_qty": 5,
        "counted_qty": 3,
        "diff": -2,
        "diff_value": -4.0,
        "status": "short",
    }
    common = {"site": SITE, "zone": ZONE, "location": "L1", "scan_id": "s1"}
    yield contract.build(
        contract.DISCREPANCY,
        {
            "discrepancy_id": "d1",
            **common,
            "state": "recount_requested",
            "count_msg_id": "gw-1:9",
            "observed_at": contract.to_iso(WHEN),
            "detected_at": contract.to_iso(WHEN),
            "recounts": 1,
            "lines": [
                line,
                {**line, "sku": "y", "counted_qty": None, "diff": None, "diff_value": None}
                | {"status": "not_scanned", "unit_cost": 2.5, "abc": "A"},
            ],
        },
    )
    yield contract.build(
        contract.ADJUSTMENT,
        {
            "adjustment_id": "adj-1-x",
            **common,
            "sku": "x",
            "book_qty": 5,
            "counted_qty": 3,
            "diff": -2,
            "diff_value": None,
            "unit_cost": 0.0,
            "reason_code": "SHRINK",
            "approved_by": "alice",
            "approved_at": contract.to_iso(WHEN),
            "discrepancy_id": "1",
            "count_msg_id": "gw-1:9",
            "note": "seen",
        },
    )
    decision = {
        "decision_id": "7",
        "discrepancy_id": "1",
        **common,
        "outcome": "approved",
        "by": "kim",
        "reason": "BOOK_ERROR",
        "at": contract.to_iso(WHEN),
        "count_msg_id": "gw-1:ab12cd34:5",
        "recounts": 2,
        "lines": [line],
        "note": "ok",
        "adjustments": [{"adjustment_id": "adj-1-x", "sku": "x", "diff": -2, "diff_value": -4.0}],
    }
    yield contract.build(contract.DECISION, decision)
    rejected = {k: v for k, v in decision.items() if k not in {"adjustments", "recounts"}}
    yield contract.build(contract.DECISION, {**rejected, "outcome": "rejected"})


FUSION: dict[str, Any] = {
    "rfid": {"total": 2, "complete": False},
    "vision": {"total": 3, "complete": True, "confidence": 0.9},
    "disagreement": True,
    "tolerance": {"abs": 0, "pct": 0.1},
}


def _gateway_payloads() -> Iterator[dict[str, Any]]:
    count = contract.count_payload(
        gateway=GW,
        site=SITE,
        zone=ZONE,
        location="A-01-02",
        scan_id="scan-42",
        items=[
            {"sku": contract.UNKNOWN_SKU, "qty": 1, "epcs": ["e2801160"], "confidence": 0.5},
            {"sku": "80614141123458", "qty": 2, "confidence": 0.97},
        ],
        source="fused",
        complete=False,
        observed_at=WHEN,
        fusion=FUSION,
    )
    yield count
    yield contract.with_sequence(count, 7, historical=True, epoch="ab12cd34")
    scan = contract.scan_payload(
        gateway=GW,
        site=SITE,
        zone=ZONE,
        scan_id="scan-42",
        state="incomplete",
        started_at=WHEN,
        ended_at=WHEN + timedelta(seconds=30),
        locations=["A-01-01", "A-01-02"],
        incomplete_locations=["A-01-02"],
        readers=[
            {"name": "r1", "ok": True, "reads": 120},
            {"name": "r2", "ok": False, "reads": 3, "error": "keepalive lost"},
        ],
        cameras=[{"name": "cam", "ok": True, "frames": 4}],
        request_id="req-1",
    )
    yield scan
    yield contract.with_sequence(scan, 8)
    started = contract.scan_payload(
        gateway=GW, site=SITE, zone=ZONE, scan_id="s", state="started", started_at=WHEN,
        locations=["A"],
    )  # fmt: skip
    yield contract.with_sequence(started, 1)
    yield contract.status_payload(gateway=GW, site=SITE, state="offline", at=WHEN)
    yield contract.scan_request_payload(
        reason="recount", requested_by="me", locations=["A", "B"], at=WHEN, expires_at=WHEN
    )
    yield contract.scan_request_payload(reason="cycle", requested_by="me", zone=ZONE)
    yield contract.deadletter_payload(topic="t", raw=b"x" * 9, reason="bad", rejected_by="r")
    yield contract.deadletter_payload(
        topic="t", raw=b"x" * 9, reason="bad", rejected_by="r", max_bytes=4
    )
    yield pose_payload(robot="cart-1", at=0.0, x=1.25, aisle="A", y=-0.5, heading=90.0)
    yield pose_payload(robot="cart-1", x=3)
    yield contract.frame_message(
        gateway=GW, site=SITE, zone=ZONE, location="A", scan_id="s", jpeg=JPEG, width=4,
        height=3, observed_at=WHEN,
    ).to_payload()  # fmt: skip


def _wire(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _class_of(payload: Mapping[str, Any]) -> type[Record]:
    sequenced = set(contract.SEQUENCE_FIELDS) <= payload.keys()
    if payload["schema"] in contract.SEQUENCED and not sequenced:
        return contract.DRAFT_CLASSES[payload["schema"]]
    return contract.MESSAGE_CLASSES[payload["schema"]]


BUILT = [*_gateway_payloads(), *_reconciler_payloads()]


@pytest.mark.parametrize("payload", BUILT, ids=lambda p: str(p["schema"]))
def test_builder_output_round_trips_to_the_byte(payload: dict[str, Any]) -> None:
    message = _class_of(payload).from_payload(payload)
    assert _wire(message.to_payload()) == _wire(payload)
    if set(contract.SEQUENCE_FIELDS) <= payload.keys() or payload["schema"] not in (
        contract.SEQUENCED
    ):
        contract.validate(message.to_payload())


def test_the_builders_cover_every_schema() -> None:
    assert {p["schema"] for p in BUILT} == set(contract.SCHEMA_FILES)


def _doc_examples() -> Iterator[dict[str, Any]]:
    asyncapi = yaml.safe_load((DOCS / "asyncapi.yaml").read_text(encoding="utf-8"))
    for message in asyncapi["components"]["messages"].values():
        for example in message.get("examples", []):
            yield example["payload"]
    for page in DOCS.glob("*.md"):
        for block in re.findall(r"```json\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            text = block.strip()
            loaded = json.loads(text if text.startswith("{") else "{" + text + "}")
            if "schema" in loaded:
                yield loaded


DOC_EXAMPLES = list(_doc_examples())


@pytest.mark.parametrize("payload", DOC_EXAMPLES, ids=lambda p: str(p["schema"]))
def test_documented_examples_round_trip(payload: dict[str, Any]) -> None:
    message = _class_of(payload).from_payload(payload)
    assert message.to_payload() == payload
    assert json.dumps(message.to_payload(), sort_keys=True) == json.dumps(payload, sort_keys=True)


def test_the_documented_fusion_fragment_is_a_fusion() -> None:
    text = (DOCS / "vision.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```json\n(.*?)```", text, re.S)
    fragment = json.loads("{" + block.strip() + "}")["fusion"]
    fusion = contract.Fusion.from_payload(fragment)
    assert fusion.vision.confidence == 0.97
    assert fusion.to_payload() == fragment
    assert len(DOC_EXAMPLES) >= 5


# --- typed access and decode_message ------------------------------------------------------------


def test_from_payload_gives_typed_parts() -> None:
    payload = contract.with_sequence(next(_gateway_payloads()), 3)
    count = contract.message_from_payload(payload)
    assert isinstance(count, contract.CountMessage)
    assert count.source is contract.CountSource.FUSED
    assert isinstance(count.items, tuple)
    assert count.items[0] == contract.CountItem(sku="80614141123458", qty=2, confidence=0.97)
    assert count.fusion is not None
    assert count.fusion.tolerance == contract.FusionTolerance(abs=0, pct=0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        count.total = 4  # type: ignore[misc]
    assert hash(count) == hash(contract.message_from_payload(payload))


def test_an_enumeration_is_read_as_its_member_and_refuses_other_values() -> None:
    status = contract.StatusMessage.from_payload(
        contract.status_payload(gateway=GW, site=SITE, state="offline")
    )
    assert status.state is contract.GatewayState.OFFLINE
    for wrong in ("lost", "OFFLINE", ["offline"], None):
        payload = {**status.to_payload(), "state": wrong}
        with pytest.raises(ValueError, match="is not a valid GatewayState"):
            contract.StatusMessage.from_payload(payload)


def test_count_quantities_are_sku_to_qty() -> None:
    payload = _count(items=[{"sku": "B", "qty": 3}, {"sku": "A", "qty": 0}])
    draft = contract.CountDraft.from_payload(payload)
    assert draft.quantities == {"A": 0, "B": 3}
    assert list(draft.quantities) == ["A", "B"]  # the items' (sorted) order
    assert draft.sequenced(1).quantities == draft.quantities
    empty = contract.CountDraft.from_payload(_count(items=[]))
    assert empty.quantities == {}


def test_a_draft_sequenced_is_what_the_outbox_writes() -> None:
    payload = next(_gateway_payloads())
    draft = contract.CountDraft.from_payload(payload)
    for epoch in (None, "ab12cd34"):
        wire = contract.with_sequence(payload, 5, historical=True, epoch=epoch)
        assert _wire(draft.sequenced(5, historical=True, epoch=epoch).to_payload()) == _wire(wire)


@pytest.mark.parametrize("payload", BUILT + DOC_EXAMPLES, ids=lambda p: str(p["schema"]))
def test_decode_message_picks_the_class_from_schema(payload: dict[str, Any]) -> None:
    if payload["schema"] in contract.SEQUENCED and "seq" not in payload:
        payload = contract.with_sequence(payload, 11)
    topic = _topic_of(payload)
    message = contract.decode_message(topic, contract.encode(payload))
    assert type(message) is contract.MESSAGE_CLASSES[payload["schema"]]
    assert message.to_payload() == payload


def _topic_of(payload: Mapping[str, Any]) -> str:
    site = payload.get("site", SITE)
    topics: dict[str, Callable[[], str]] = {
        contract.COUNT: lambda: contract.count_topic(site, payload["zone"], payload["location"]),
        contract.SCAN: lambda: contract.scan_topic(site, payload["zone"]),
        contract.STATUS: lambda: contract.status_topic(site, payload["gateway"]),
        contract.SCAN_REQUEST: lambda: contract.cmd_scan_topic(site, GW),
        contract.DISCREPANCY: lambda: contract.discrepancy_topic(
            site, payload["zone"], payload["location"]
        ),
        contract.ADJUSTMENT: lambda: contract.adjustment_topic(site),
        contract.DECISION: lambda: contract.decision_topic(site),
        contract.DEADLETTER: lambda: contract.deadletter_topic(site),
        contract.POSE: lambda: contract.site_root(site) + "pose/" + payload["robot"],
        contract.FRAME: lambda: contract.frame_topic(site, payload["zone"], payload["location"]),
    }
    return topics[payload["schema"]]()


@pytest.mark.parametrize(
    ("topic", "raw"),
    [
        ("edgecount/v1/s/status/gw", b""),
        ("edgecount/v1/s/status/gw", b"\xff"),
        ("edgecount/v1/s/status/gw", b"[]"),
        ("edgecount/v1/s/status/gw", b'{"a": 1, "a": 2}'),
        ("edgecount/v1/s/status/gw", b'{"schema": "edgecount.status/1"}'),
        ("edgecount/v1/s/status/gw", b'{"schema": "nope/1"}'),
        ("edgecount/v1/s/nowhere", contract.encode(contract.status_payload(
            gateway="gw", site="s", state="online"))),
        ("edgecount/v1/s/status/other", contract.encode(contract.status_payload(
            gateway="gw", site="s", state="online"))),
        ("edgecount/v1/s/scan/z", contract.encode(contract.status_payload(
            gateway="gw", site="s", state="online"))),
    ],
)  # fmt: skip
def test_decode_message_rejects_as_decode_does(topic: str, raw: bytes) -> None:
    with pytest.raises(ContractError) as expected:
        contract.decode(raw, topic=topic)
    with pytest.raises(ContractError) as got:
        contract.decode_message(topic, raw)
    assert str(got.value) == str(expected.value)
    assert (got.value.schema, got.value.path) == (expected.value.schema, expected.value.path)


# --- encode_message, and the builders that return the classes ---------------------------------


@pytest.mark.parametrize("payload", BUILT, ids=lambda p: str(p["schema"]))
def test_encode_message_is_encode_of_the_payload(payload: dict[str, Any]) -> None:
    if payload["schema"] in contract.SEQUENCED and "seq" not in payload:
        payload = contract.with_sequence(payload, 11, epoch="ab12cd34")
    message = contract.message_from_payload(payload)
    raw = contract.encode_message(message, topic=_topic_of(payload))
    assert raw == contract.encode(payload)
    assert contract.decode_message(_topic_of(payload), raw) == message


def test_encode_message_validates_and_checks_the_topic_unless_told_not_to() -> None:
    count = contract.CountDraft.from_payload(_count()).sequenced(1)
    wrong = dataclasses.replace(count, total=9)
    with pytest.raises(ContractError, match="total is 9 but the items add up to 1"):
        contract.encode_message(wrong)
    elsewhere = contract.count_topic(SITE, ZONE, "M")
    with pytest.raises(ContractError, match="location is 'L' but the topic"):
        contract.encode_message(count, topic=elsewhere)
    unchecked = contract.encode_message(wrong, topic=elsewhere, check=False)
    assert json.loads(unchecked)["total"] == 9
    with pytest.raises(ContractError, match="missing required properties: historical, msg_id"):
        contract.encode_message(contract.CountDraft.from_payload(_count()))


def test_count_draft_is_the_draft_of_count_payload() -> None:
    items = [
        contract.CountItem(sku="b", qty=2, confidence=0.5),
        contract.CountItem(sku="a", qty=1, epcs=("e2801160",)),
    ]
    draft = contract.count_draft(
        gateway=GW, site=SITE, zone=ZONE, location="L", scan_id="s", items=items, observed_at=WHEN
    )
    payload = _count(items=[item.to_payload() for item in items], observed_at=WHEN)
    assert draft == contract.CountDraft.from_payload(payload)
    assert [item.sku for item in draft.items] == ["a", "b"]
    assert draft.total == 3
    with pytest.raises(ContractError, match="fusion figures go with source 'fused'"):
        contract.count_draft(
            gateway=GW, site=SITE, zone=ZONE, location="L", scan_id="s", items=items,
            source=contract.CountSource.FUSED,
        )  # fmt: skip


def test_status_and_scan_request_messages_are_their_payload_builders() -> None:
    status = contract.status_message(gateway=GW, site=SITE, state="stopped", at=WHEN)
    assert status.state is contract.GatewayState.STOPPED
    assert status.to_payload() == contract.status_payload(
        gateway=GW, site=SITE, state="stopped", at=WHEN
    )
    with pytest.raises(ContractError, match="'asleep' is not one of"):
        contract.status_message(gateway=GW, site=SITE, state="asleep")
    request = contract.scan_request_message(
        reason="recount", requested_by="me", locations=["L1", "L2"], request_id="r-1", at=WHEN
    )
    assert request.locations == ("L1", "L2")
    assert request.to_payload() == contract.scan_request_payload(
        reason="recount", requested_by="me", locations=["L1", "L2"], request_id="r-1", at=WHEN
    )
    with pytest.raises(ContractError):
        contract.scan_request_message(reason="recount", requested_by="me")  # no zone, no locations


def test_as_historical_marks_sequenced_messages_only() -> None:
    count = contract.with_sequence(_count(), 4, epoch="ab12cd34")
    replayed = contract.as_historical(contract.encode(count))
    assert replayed == contract.encode({**count, "historical": True})
    status = contract.encode(contract.status_payload(gateway=GW, site=SITE, state="online"))
    assert contract.as_historical(status) == status
    assert contract.as_historical(b"") == b""


# --- builders check what they are given ---------------------------------------------------------


def _count(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "gateway": GW,
        "site": SITE,
        "zone": ZONE,
        "location": "L",
        "scan_id": "s",
        "items": [{"sku": "a", "qty": 1}],
    }
    return contract.count_payload(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"items": [{"sku": "a", "qty": 1, "colour": "red"}]}, r"items\[0\]: Additional .*colour"),
        ({"items": [{"sku": "a"}]}, r"items\[0\]: 'qty' is a required property"),
        ({"items": ["a"]}, r"items\[0\]: 'a' is not of type 'object'"),
        ({"items": [{"sku": "a", "qty": -1}]}, "less than the minimum of 0"),
        (
            {"source": "guess"},
            r"source: 'guess' is not one of \['rfid', 'vision', 'fused', 'manual'\]",
        ),
        ({"source": "vision", "fusion": {}}, "fusion figures go with source 'fused'"),
        (
            {"source": "fused", "fusion": {**FUSION, "rfid": {"total": 1}}},
            r"fusion\.rfid: 'complete' is a required property",
        ),
    ],
)
def test_count_builder_rejects_what_the_schema_rejects(
    overrides: dict[str, Any], words: str
) -> None:
    with pytest.raises(ContractError, match=words):
        _count(**overrides)


def test_other_builders_reject_bad_parts_and_states() -> None:
    base: dict[str, Any] = {
        "gateway": GW, "site": SITE, "zone": ZONE, "scan_id": "s", "started_at": WHEN,
        "locations": ["L"],
    }  # fmt: skip
    with pytest.raises(ContractError, match="'paused' is not one of"):
        contract.scan_payload(**base, state="paused")
    with pytest.raises(ContractError, match=r"readers\[0\]: 'reads' is a required property"):
        contract.scan_payload(**base, state="started", readers=[{"name": "r", "ok": True}])
    with pytest.raises(ContractError, match="'asleep' is not one of"):
        contract.status_payload(gateway=GW, site=SITE, state="asleep")


# --- property round trips -----------------------------------------------------------------------

_segment = st.text(alphabet="abcXYZ019-_.", min_size=1, max_size=12)
_items = st.lists(
    st.fixed_dictionaries(
        {"sku": _segment, "qty": st.integers(0, 10**6)},
        optional={"confidence": st.floats(0, 1)},
    ),
    unique_by=lambda item: item["sku"],
    max_size=6,
)


@given(
    items=_items,
    complete=st.booleans(),
    seq=st.integers(1, 2**53),
    historical=st.booleans(),
    millis=st.integers(0, 10**12),
)
def test_count_round_trips(
    items: list[dict[str, Any]], complete: bool, seq: int, historical: bool, millis: int
) -> None:
    observed = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    draft = _count(items=items, complete=complete, observed_at=observed)
    wire = contract.with_sequence(draft, seq, historical=historical)
    raw = contract.encode(wire)
    message = contract.decode_message(contract.count_topic(SITE, ZONE, "L"), raw)
    assert contract.encode(message.to_payload()) == raw
    assert _wire(contract.CountDraft.from_payload(draft).to_payload()) == _wire(draft)


@given(
    x=st.floats(-1e5, 1e5) | st.integers(-(10**5), 10**5),
    y=st.none() | st.floats(-1e5, 1e5),
    heading=st.none() | st.floats(0, 359.5),
    aisle=st.none() | _segment,
)
def test_pose_round_trips(
    x: float, y: float | None, heading: float | None, aisle: str | None
) -> None:
    payload = pose_payload(robot="r", at=WHEN, x=x, y=y, heading=heading, aisle=aisle)
    raw = contract.encode(payload)
    message = contract.decode_message(contract.site_root(SITE) + "pose/r", raw)
    assert isinstance(message, contract.PoseMessage)
    assert contract.encode(message.to_payload()) == raw
