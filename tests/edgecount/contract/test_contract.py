"""The message contract: topics, schemas, builders and readable rejections."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from edgecount import contract
from edgecount.contract import ContractError
from edgecount.pose import pose_topic

GW, SITE, ZONE = "gw-1", "dc-east", "zone-a"
WHEN = datetime(2024, 5, 1, 2, 0, 0, 123000, tzinfo=UTC)


def count(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "gateway": GW,
        "site": SITE,
        "zone": ZONE,
        "location": "A-01-02",
        "scan_id": "scan-42",
        "items": [
            {"sku": "80614141123458", "qty": 2, "confidence": 0.97},
            {"sku": contract.UNKNOWN_SKU, "qty": 1, "epcs": ["e2801160600002084f5c1b2c"]},
        ],
        "observed_at": WHEN,
    }
    fields.update(overrides)
    return contract.with_sequence(contract.count_payload(**fields), 7)


def scan(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "gateway": GW,
        "site": SITE,
        "zone": ZONE,
        "scan_id": "scan-42",
        "state": "incomplete",
        "started_at": WHEN,
        "ended_at": WHEN + timedelta(seconds=30),
        "locations": ["A-01-01", "A-01-02"],
        "incomplete_locations": ["A-01-02"],
        "readers": [
            {"name": "r1", "ok": True, "reads": 120},
            {"name": "r2", "ok": False, "reads": 3, "error": "keepalive lost"},
        ],
    }
    fields.update(overrides)
    return contract.with_sequence(contract.scan_payload(**fields), 8)


def rejection(payload: dict[str, Any]) -> ContractError:
    with pytest.raises(ContractError) as caught:
        contract.validate(payload)
    return caught.value


# --- schemas ----------------------------------------------------------------------------------


def test_every_schema_file_is_known_valid_and_self_describing() -> None:
    shipped = {
        entry.name
        for entry in resources.files("edgecount").joinpath("schemas").iterdir()
        if entry.name.endswith(".json")
    }
    assert shipped == set(contract.SCHEMA_FILES.values())
    for schema_id in contract.SCHEMA_FILES:
        document = contract.schema_document(schema_id)
        Draft202012Validator.check_schema(document)
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert document["title"] == schema_id
        assert document["properties"]["schema"] == {"const": schema_id}
        assert "schema" in document["required"]
        assert document["additionalProperties"] is False


def test_shared_definitions_are_identical_across_schemas() -> None:
    for name in ("segment", "timestamp"):
        variants = {
            json.dumps(contract.schema_document(sid)["$defs"][name], sort_keys=True)
            for sid in contract.SCHEMA_FILES
            if name in contract.schema_document(sid).get("$defs", {})
        }
        assert len(variants) == 1, name


# --- builders -----------------------------------------------------------------------------


def test_count_builder_output_is_valid_and_sequenced() -> None:
    payload = count()
    contract.validate(payload)
    assert payload["msg_id"] == f"{GW}:7"
    assert payload["seq"] == 7
    assert payload["historical"] is False
    assert payload["total"] == 3
    assert payload["observed_at"] == "2024-05-01T02:00:00.123Z"
    assert [item["sku"] for item in payload["items"]] == ["80614141123458", "unknown"]


def test_builders_return_drafts_without_sequence_fields() -> None:
    draft = contract.count_payload(
        gateway=GW, site=SITE, zone=ZONE, location="L", scan_id="s", items=[]
    )
    assert not {"seq", "msg_id", "historical"} & draft.keys()
    contract.validate_draft(draft)
    with pytest.raises(ContractError, match="missing required properties: historical, msg_id, seq"):
        contract.validate(draft)


def test_empty_incomplete_count_is_valid() -> None:
    payload = count(items=[], complete=False)
    contract.validate(payload)
    assert payload["total"] == 0


@pytest.mark.parametrize("state", ["started", "completed", "incomplete"])
def test_scan_builder_states(state: str) -> None:
    overrides: dict[str, Any] = {"state": state}
    if state == "started":
        overrides.update(ended_at=None, incomplete_locations=[])
    if state == "completed":
        overrides.update(incomplete_locations=[])
    payload = scan(**overrides)
    contract.validate(payload)
    assert ("ended_at" in payload) == (state != "started")


def test_status_scan_request_and_deadletter_builders() -> None:
    for state in ("online", "offline", "stopped"):
        contract.validate(contract.status_payload(gateway=GW, site=SITE, state=state))
    request = contract.scan_request_payload(
        zone=ZONE, reason="recount", requested_by="reconciler-1", expires_at=WHEN
    )
    contract.validate(request)
    assert len(request["request_id"]) == 36
    by_locations = contract.scan_request_payload(
        locations=["A-01-02"], reason="spot", requested_by="ops", request_id="r-1"
    )
    assert by_locations["request_id"] == "r-1"
    dead = contract.deadletter_payload(
        topic="edgecount/v1/x/count/z/l",
        raw=b"\xff" * 10,
        reason="bad",
        rejected_by="rec",
        max_bytes=4,
    )
    contract.validate(dead)
    assert dead["truncated"] is True


def test_the_message_builders_return_the_validated_class() -> None:
    request = contract.scan_request_message(
        locations=["A-01-02"], reason="spot", requested_by="ops", request_id="r-1", at=WHEN
    )
    assert isinstance(request, contract.ScanRequestMessage)
    assert request.to_payload() == contract.scan_request_payload(
        locations=["A-01-02"], reason="spot", requested_by="ops", request_id="r-1", at=WHEN
    )
    with pytest.raises(ContractError, match="request_id"):  # checked when made, not at the wire
        contract.scan_request_message(zone=ZONE, reason="spot", requested_by="o", request_id="a/b")
    dead = contract.deadletter_message(topic="", raw=b"x" * 5, reason="", rejected_by="rec")
    assert isinstance(dead, contract.DeadletterMessage)
    assert (dead.topic, dead.reason, dead.truncated, dead.payload_base64) == (
        "?",
        "?",
        None,
        "eHh4eHg=",
    )


def test_reconciler_payloads_via_build() -> None:
    line = {
        "sku": "x",
        "book_qty": 5,
        "counted_qty": 3,
        "diff": -2,
        "diff_value": -4.0,
        "status": "short",
    }
    common = {
        "site": SITE,
        "zone": ZONE,
        "location": "L1",
        "scan_id": "s1",
        "count_msg_id": "gw-1:9",
    }
    discrepancy = contract.build(
        contract.DISCREPANCY,
        {
            **common,
            "discrepancy_id": "d1",
            "state": "open",
            "observed_at": contract.to_iso(WHEN),
            "detected_at": contract.now_iso(),
            "recounts": 0,
            "lines": [
                line,
                {
                    **line,
                    "sku": "y",
                    "counted_qty": None,
                    "diff": None,
                    "diff_value": None,
                    "status": "not_scanned",
                },
            ],
        },
    )
    contract.validate(discrepancy)
    adjustment = {
        **common,
        "adjustment_id": "a1",
        "sku": "x",
        "book_qty": 5,
        "counted_qty": 3,
        "diff": -2,
        "diff_value": None,
        "reason_code": "SHRINK",
        "approved_by": "alice",
        "approved_at": contract.now_iso(),
        "discrepancy_id": "d1",
    }
    contract.validate(contract.build(contract.ADJUSTMENT, adjustment))
    with pytest.raises(ContractError, match="diff should be counted_qty - book_qty"):
        contract.build(contract.ADJUSTMENT, {**adjustment, "diff": -1})
    bad_line = {**line, "diff": 2}
    with pytest.raises(ContractError, match=r"lines\[0\]\.diff"):
        contract.build(contract.DISCREPANCY, {**discrepancy, "lines": [bad_line]})


def test_decision_payload_rules() -> None:
    line = {
        "sku": "x",
        "book_qty": 5,
        "counted_qty": 3,
        "diff": -2,
        "diff_value": -4.0,
        "status": "short",
    }
    decision = {
        "decision_id": "7",
        "discrepancy_id": "d1",
        "site": SITE,
        "zone": ZONE,
        "location": "L",
        "outcome": "rejected",
        "by": "kim",
        "reason": "ACCEPTED_VARIANCE",
        "at": contract.now_iso(),
        "scan_id": "s1",
        "count_msg_id": "gw-1:ab12cd34:5",
        "lines": [line],
    }
    contract.validate(contract.build(contract.DECISION, decision))
    adjustments = [{"adjustment_id": "adj-1-x", "sku": "x", "diff": -2, "diff_value": -4.0}]
    approved = {**decision, "outcome": "approved", "adjustments": adjustments}
    contract.validate(contract.build(contract.DECISION, approved))
    with pytest.raises(ContractError, match="adjustments go with outcome approved"):
        contract.build(contract.DECISION, {**decision, "adjustments": adjustments})
    with pytest.raises(ContractError, match="adjustments go with outcome approved"):
        contract.build(contract.DECISION, {**decision, "outcome": "approved"})
    with pytest.raises(ContractError, match=r"lines\[0\]\.diff"):
        contract.build(contract.DECISION, {**decision, "lines": [{**line, "diff": -1}]})
    with pytest.raises(ContractError, match="outcome"):
        contract.build(contract.DECISION, {**decision, "outcome": "forgotten"})
    with pytest.raises(ContractError):
        contract.build(contract.DECISION, {**decision, "lines": [{**line, "book_qty": 5.5}]})


# --- rejections are readable ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            {"items": [{"sku": "x", "qty": -1}]},
            "items[0].qty",
            "less than the minimum",
        ),
        ({"zone": "a/b"}, "zone", "'/', '+', '#'"),
        ({"location": ""}, "location", "not valid"),
        ({"observed_at": "2024-05-01T02:00:00+02:00"}, "observed_at", "'Z' suffix"),
        ({"observed_at": "2024-13-01T02:00:00Z"}, "observed_at", "not valid"),
        ({"source": "magic"}, "source", "is not one of"),
        ({"colour": "red"}, "", "'colour' was unexpected"),
        ({"total": 4}, "total", "items add up to 3"),
        ({"msg_id": "gw-2:7"}, "msg_id", "should be 'gw-1:7'"),
        ({"seq": 0, "msg_id": "gw-1:0"}, "seq", "less than the minimum of 1"),
        ({"complete": "yes"}, "complete", "not of type 'boolean'"),
    ],
)
def test_count_rejections_name_the_field(change: dict[str, Any], path: str, words: str) -> None:
    error = rejection({**count(), **change})
    assert error.schema == contract.COUNT
    assert error.path == path
    assert words in str(error)
    assert str(error).startswith("edgecount.count/1")


def test_count_semantic_rejections() -> None:
    payload = count()
    twice = [{"sku": "x", "qty": 1}, {"sku": "x", "qty": 2}]
    assert "appears twice" in str(rejection({**payload, "items": twice, "total": 3}))
    epcs = [{"sku": "unknown", "qty": 2, "epcs": ["abcd"]}]
    assert "2 distinct EPCs" in str(rejection({**payload, "items": epcs, "total": 2}))
    upper = [{"sku": "unknown", "qty": 1, "epcs": ["ABCD"]}]
    assert rejection({**payload, "items": upper, "total": 1}).path == "items[0].epcs[0]"


def test_scan_semantic_rejections() -> None:
    stray = {**scan(), "incomplete_locations": ["Z-9"]}
    assert "['Z-9'] are not in locations" in str(rejection(stray))
    assert "names its incomplete_locations" in str(
        rejection({**scan(), "incomplete_locations": []})
    )
    completed = scan(state="completed", incomplete_locations=[])
    assert "no incomplete_locations" in str(
        rejection({**completed, "incomplete_locations": ["A-01-01"]})
    )
    assert "before started_at" in str(rejection({**scan(), "ended_at": "2024-05-01T01:00:00Z"}))
    no_end = {k: v for k, v in scan().items() if k != "ended_at"}
    assert "'ended_at' is a required property" in str(rejection(no_end))


def test_scan_request_needs_zone_or_locations() -> None:
    request = contract.scan_request_payload(zone=ZONE, reason="r", requested_by="me")
    del request["zone"]
    assert rejection(request).schema == contract.SCAN_REQUEST


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"gateway": GW}, "has no 'schema' field"),
        ({"schema": "edgecount.count/2"}, "unknown schema 'edgecount.count/2'"),
        (
            {
                "schema": "edgecount.status/1",
                "gateway": GW,
                "site": SITE,
                "state": "sleepy",
                "at": "2024-05-01T00:00:00Z",
                "version": "1",
            },
            "'sleepy' is not one of",
        ),
    ],
)
def test_dispatch_rejections(payload: dict[str, Any], words: str) -> None:
    assert words in str(rejection(payload))


# --- decode ----------------------------------------------------------------------------------


def test_decode_round_trip_with_topic_check() -> None:
    payload = count()
    topic = contract.count_topic(SITE, ZONE, "A-01-02")
    assert contract.decode(contract.encode(payload), topic=topic) == payload
    with pytest.raises(ContractError, match="location is 'A-01-02' but the topic"):
        contract.decode(contract.encode(payload), topic=contract.count_topic(SITE, ZONE, "B"))
    with pytest.raises(ContractError, match=r"carries edgecount\.scan/1"):
        contract.decode(contract.encode(payload), topic=contract.scan_topic(SITE, ZONE))


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "empty payload"),
        (b"\xff\xfe{}", "not valid UTF-8 at byte 0"),
        (b"{", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'{"schema": "a", "schema": "b"}', "duplicate key 'schema'"),
        (b'{"schema": "edgecount.count/1", "total": NaN}', "NaN is not valid JSON"),
    ],
)
def test_decode_rejections(raw: bytes, words: str) -> None:
    with pytest.raises(ContractError, match=words):
        contract.decode(raw)


# --- topics ----------------------------------------------------------------------------------


def test_topic_helpers() -> None:
    assert contract.site_root(SITE) == "edgecount/v1/dc-east/"
    assert contract.count_topic(SITE, ZONE, "A-1") == "edgecount/v1/dc-east/count/zone-a/A-1"
    assert contract.scan_topic(SITE, ZONE) == "edgecount/v1/dc-east/scan/zone-a"
    assert contract.status_topic(SITE, GW) == "edgecount/v1/dc-east/status/gw-1"
    assert contract.cmd_scan_topic(SITE, GW) == "edgecount/v1/dc-east/cmd/gw-1/scan"
    assert (
        contract.discrepancy_topic(SITE, ZONE, "A-1")
        == "edgecount/v1/dc-east/discrepancy/zone-a/A-1"
    )
    assert contract.adjustment_topic(SITE) == "edgecount/v1/dc-east/adjustment"
    assert contract.deadletter_topic(SITE) == "edgecount/v1/dc-east/deadletter"
    assert contract.site_filter() == "edgecount/v1/+/#"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "non-empty"),
        ("a/b", "contains '/'"),
        ("a+", "contains '+'"),
        ("#", "contains '#'"),
        ("a\x00b", "contains '\\x00'"),
        ("tab\there", "control"),
        ("x" * 129, "longer than 128"),
        ("\ud800", "not valid UTF-8"),
    ],
)
def test_bad_segments_are_rejected_clearly(value: str, words: str) -> None:
    with pytest.raises(ContractError, match=words.replace("\\", "\\\\").replace("+", r"\+")):
        contract.count_topic(SITE, value, "L")


def test_unicode_segments_are_fine() -> None:
    topic = contract.count_topic("lager-münchen", "zone-ä", "Regal 1")
    assert contract.parse_topic(topic).params == {"zone": "zone-ä", "location": "Regal 1"}


def test_parse_topic_covers_every_kind() -> None:
    topics = {
        "count": contract.count_topic(SITE, ZONE, "L"),
        "scan": contract.scan_topic(SITE, ZONE),
        "status": contract.status_topic(SITE, GW),
        "cmd_scan": contract.cmd_scan_topic(SITE, GW),
        "discrepancy": contract.discrepancy_topic(SITE, ZONE, "L"),
        "adjustment": contract.adjustment_topic(SITE),
        "decision": contract.decision_topic(SITE),
        "deadletter": contract.deadletter_topic(SITE),
        "pose": pose_topic(SITE, "cart-1"),
        "frame": contract.frame_topic(SITE, ZONE, "L"),
    }
    assert set(topics) == set(contract.TOPICS)
    for kind, topic in topics.items():
        info = contract.parse_topic(topic)
        assert (info.kind, info.site) == (kind, SITE)
        assert info.schema == contract.TOPICS[kind][1]
    for bad in (
        "edgecount/v2/x/scan/z",
        "edgecount/v1/x/cmd/gw/dance",
        "edgecount/v1/x",
        "other/v1/x/scan/z",
    ):
        with pytest.raises(ContractError):
            contract.parse_topic(bad)


# --- time ------------------------------------------------------------------------------------


def test_time_helpers() -> None:
    assert contract.to_iso(0) == "1970-01-01T00:00:00.000Z"
    assert (
        contract.to_iso(datetime(2024, 5, 1, 4, 0, tzinfo=timezone(timedelta(hours=2))))
        == "2024-05-01T02:00:00.000Z"
    )
    with pytest.raises(ValueError, match="naive"):
        contract.to_iso(datetime(2024, 5, 1))
    now = contract.now_iso()
    assert abs(contract.parse_iso(now) - datetime.now(UTC)) < timedelta(seconds=5)
    with pytest.raises(ContractError, match="'Z' suffix"):
        contract.parse_iso("2024-05-01T02:00:00")
