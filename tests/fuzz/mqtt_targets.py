"""MQTT payload fuzz targets: the contract's decoder and the consumers that count rejections.

* :func:`contract_decode` - ``contract.decode`` raises nothing but ``ContractError``; a
  payload it accepts validates again after a round trip.
* :func:`gateway_command` - ``Gateway.on_command`` counts every command it does not queue.
* :func:`pose` - ``parse_pose`` (what the mobile scan's pose handler calls, counting each
  ``ContractError`` in ``poses_rejected``) raises nothing else.
* :func:`dead_letter` - what the reconciler publishes for a rejected message is itself a valid
  ``edgecount.deadletter/1``, whatever the bytes were.

:func:`mutate` makes structure-aware mutations of valid payloads (wrong types, missing keys,
huge and non-finite numbers, deep nesting, invalid UTF-8, ...).
"""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from edgecount import contract
from edgecount.pose import parse_pose, pose_payload, pose_topic
from gateway.config import GatewayConfig
from gateway.daemon import Gateway
from gateway.publisher import MemoryPublisher
from tests.fuzz.targets import Outcome, check

SITE = "s1"
GATEWAY = "gw"
WHEN = datetime(2024, 5, 1, 2, 0, 0, 123000, tzinfo=UTC)

CONFIG = GatewayConfig.model_validate(
    {
        "site": SITE,
        "gateway_id": GATEWAY,
        "readers": [{"type": "llrp", "name": "r1", "host": "h", "antennas": {1: "A-01-01"}}],
        "zones": {"A": {"readers": ["r1"]}},
    }
)
COMMAND_TOPIC = contract.cmd_scan_topic(SITE, GATEWAY)
POSE_TOPIC = pose_topic(SITE, "robot-1")


def valid_payloads() -> list[tuple[str, dict[str, Any]]]:
    """One valid payload of each kind a consumer receives, with its topic."""
    count = contract.count_payload(
        gateway=GATEWAY,
        site=SITE,
        zone="A",
        location="A-01-01",
        scan_id="scan-1",
        items=[
            {"sku": "80614141123458", "qty": 2, "confidence": 0.97},
            {"sku": contract.UNKNOWN_SKU, "qty": 1, "epcs": ["e2801160600002084f5c1b2c"]},
        ],
        observed_at=WHEN,
    )
    scan = contract.scan_payload(
        gateway=GATEWAY,
        site=SITE,
        zone="A",
        scan_id="scan-1",
        state="completed",
        started_at=WHEN,
        ended_at=WHEN + timedelta(seconds=30),
        locations=["A-01-01"],
        readers=[{"name": "r1", "ok": True, "reads": 120}],
    )
    far = datetime.now(UTC) + timedelta(days=3650)
    return [
        (contract.count_topic(SITE, "A", "A-01-01"), contract.with_sequence(count, 7)),
        (contract.scan_topic(SITE, "A"), contract.with_sequence(scan, 8)),
        (
            contract.status_topic(SITE, GATEWAY),
            contract.status_payload(gateway=GATEWAY, site=SITE, state="online"),
        ),
        (
            COMMAND_TOPIC,
            contract.scan_request_payload(
                zone="A", reason="recount", requested_by="ops", expires_at=far
            ),
        ),
        (
            COMMAND_TOPIC,
            contract.scan_request_payload(
                locations=["A-01-01"], reason="spot", requested_by="ops", request_id="r-1"
            ),
        ),
        (POSE_TOPIC, pose_payload(robot="robot-1", x=3.5, at=WHEN, aisle="A", y=0.5)),
    ]


# -- structure-aware mutations ----------------------------------------------------------------

ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**63,
    10**300,
    1e308,
    -0.0,
    0.5,
    "",
    "x" * 5000,
    "\u0000",
    "\ud800",
    "2024-13-45T99:99:99Z",
    "2024-05-01T02:00:00+01:00",
    [],
    {},
    [1, "a", None],
    {"schema": "edgecount.count/1"},
]
RAW_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" * 5000, b"1e-999"]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*path, index))
    return out


def _set(root: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return root


def _delete(root: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return root
    node = root
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return root


def mutate(payload: dict[str, Any], rng: random.Random, rounds: int = 1) -> bytes:
    """A mutation of ``payload``, as the bytes a broken or hostile publisher might send."""
    doc: Any = json.loads(json.dumps(payload))
    raw_at: tuple[Any, ...] | None = None
    raw_value = b""
    for _ in range(rounds):
        paths = _paths(doc)
        path = rng.choice(paths)
        kind = rng.randrange(7)
        if kind == 0 and path:
            doc = _delete(doc, path)
        elif kind == 1:
            doc = _set(doc, path, copy.deepcopy(rng.choice(ODD_VALUES)))
        elif kind == 2 and path:
            depth = rng.choice([2, 50, 900, 5000])
            raw_at, raw_value = path, b"[" * depth + b"]" * depth
        elif kind == 3 and isinstance(doc, dict):
            doc[rng.choice(["extra", "schema", "seq", "x"])] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif kind == 4 and path:
            raw_at, raw_value = path, rng.choice(RAW_NUMBERS)
        elif kind == 5:
            value = rng.choice(paths)
            doc = _set(doc, path, _get(doc, value))
        else:
            doc = _set(doc, path, rng.choice(["edgecount.pose/1", "edgecount.count/1", 7]))
    try:
        text = json.dumps(doc, ensure_ascii=rng.random() < 0.5)
    except (RecursionError, ValueError):
        text = json.dumps(payload)
    data = text.encode("utf-8", "surrogatepass")
    if raw_at is not None:
        marker = json.dumps("@@RAW@@").encode()
        try:
            data = json.dumps(_set(doc, raw_at, "@@RAW@@")).encode("utf-8", "surrogatepass")
            data = data.replace(marker, raw_value, 1)
        except (KeyError, IndexError, TypeError, RecursionError, ValueError):
            pass
    if rng.random() < 0.1 and data:  # a byte flipped: often invalid UTF-8 or JSON
        at = rng.randrange(len(data))
        data = data[:at] + bytes((rng.randrange(256),)) + data[at + 1 :]
    return data


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    node = root
    for key in path:
        node = node[key]
    return json.loads(json.dumps(node))


# -- targets ----------------------------------------------------------------------------------


def contract_decode(raw: bytes, topic: str | None = None) -> Outcome:
    """``decode`` raises only ``ContractError``; what it accepts validates again."""
    try:
        payload = contract.decode(raw, topic=topic)
    except contract.ContractError:
        return Outcome(1, 1)
    contract.validate(contract.decode(contract.encode(payload), topic=topic))
    return Outcome(1, 0)


def gateway_command(raw: bytes, gateway: Gateway | None = None) -> Outcome:
    """Every command the gateway does not queue (or merge) is counted in rejected_commands."""
    gw = gateway or Gateway(CONFIG, MemoryPublisher(site=SITE, gateway_id=GATEWAY))
    before, queued = gw.rejected_commands, gw.requests.qsize()
    gw.on_command(COMMAND_TOPIC, raw)
    rejected = gw.rejected_commands - before
    added = gw.requests.qsize() - queued
    check(rejected in (0, 1), f"one command counted {rejected} times")
    if rejected:
        check(added == 0, "a rejected command was queued")
    else:  # accepted: queued, or merged into a request already waiting
        check(added >= 0, "queue shrank")
        contract.decode(raw)
    while not gw.requests.empty():  # the next input starts with an empty queue
        gw.requests.get_nowait()
    gw._waiting.clear()
    return Outcome(1, rejected)


def pose(raw: bytes) -> Outcome:
    """``parse_pose`` raises only ``ContractError`` (counted by the mobile scan)."""
    try:
        parse_pose(raw, topic=POSE_TOPIC)
    except contract.ContractError:
        return Outcome(1, 1)
    return Outcome(1, 0)


def dead_letter(raw: bytes, topic: str = COMMAND_TOPIC) -> Outcome:
    """A rejected message always makes a valid dead letter (the reconciler publishes it)."""
    try:
        contract.decode(raw, topic=topic)
    except contract.ContractError as exc:
        letter = contract.deadletter_payload(
            topic=topic, raw=raw, reason=str(exc), rejected_by="fuzz"
        )
        contract.validate(letter)
        contract.decode(contract.encode(letter))
        return Outcome(1, 1)
    return Outcome(1, 0)


def mqtt_all(raw: bytes, topic: str | None = None) -> Outcome:
    """All four consumers on one payload (the long runs' target)."""
    out = Outcome()
    for result in (
        contract_decode(raw, topic),
        gateway_command(raw),
        pose(raw),
        dead_letter(raw, topic or COMMAND_TOPIC),
    ):
        out.units += result.units
        out.rejected += result.rejected
    return out
