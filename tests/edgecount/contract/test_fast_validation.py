"""The compiled first-pass validator is never more permissive than the reference one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import fastjsonschema
import pytest

from edgecount import contract
from edgecount.contract import wire
from edgecount.pose import pose_payload

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def samples() -> list[dict[str, Any]]:
    count = contract.with_sequence(
        contract.count_payload(
            gateway="gw",
            site="s",
            zone="Z",
            location="L1",
            scan_id="sc",
            items=[
                {"sku": "80614141123458", "qty": 3, "confidence": 0.9},
                {"sku": "unknown", "qty": 1, "epcs": ["e2801160600002054bf3d9a1"]},
            ],
            observed_at=NOW,
        ),
        7,
    )
    scan = contract.with_sequence(
        contract.scan_payload(
            gateway="gw",
            site="s",
            zone="Z",
            scan_id="sc",
            state="incomplete",
            started_at=NOW,
            ended_at=NOW,
            locations=["L1", "L2"],
            incomplete_locations=["L2"],
            readers=[{"name": "r", "ok": False, "reads": 3}],
        ),
        8,
    )
    status = contract.status_payload(gateway="gw", site="s", state="online")
    request = contract.scan_request_payload(reason="recount", requested_by="t", zone="Z")
    letter = contract.deadletter_payload(topic="t", raw=b"x", reason="bad", rejected_by="r")
    pose = pose_payload(robot="cart", x=1.5, at=NOW, aisle="A-01", y=0.4, heading=90.0)
    return [count, scan, status, request, letter, pose]


def mutations(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    odd_values: list[Any] = [None, "", -1, 1.5, "x" * 300, [], {}, True, "a/b", "+"]
    for key, current in payload.items():
        yield {k: v for k, v in payload.items() if k != key}
        for value in odd_values:
            yield {**payload, key: value}
        if isinstance(current, list) and current and isinstance(current[0], dict):
            for inner in current[0]:
                for value in odd_values:
                    items = [dict(current[0]), *current[1:]]
                    items[0][inner] = value
                    yield {**payload, key: items}
    yield {**payload, "extra": 1}


def reference_accepts(schema: str, payload: dict[str, Any]) -> bool:
    return not list(wire._validator(schema).iter_errors(payload))


def fast_accepts(schema: str, payload: dict[str, Any]) -> bool:
    try:
        wire._fast_validator(schema)(payload)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


@pytest.mark.parametrize("sample", samples(), ids=lambda p: str(p["schema"]))
def test_fast_validator_agrees_with_the_reference(sample: dict[str, Any]) -> None:
    schema = sample["schema"]
    assert fast_accepts(schema, sample)
    assert reference_accepts(schema, sample)
    checked = rejected = 0
    for mutated in mutations(sample):
        checked += 1
        reference = reference_accepts(schema, mutated)
        assert fast_accepts(schema, mutated) == reference, mutated
        rejected += not reference
    assert checked > 50
    assert rejected > 10
