"""Fuzzing MQTT payload validation and the consumers that count rejections.

Arbitrary bytes, and structure-aware mutations of valid payloads (wrong types, missing keys,
huge and non-finite numbers, deep nesting, lone surrogates, invalid UTF-8).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecount import contract
from tests.fuzz.mqtt_targets import (
    COMMAND_TOPIC,
    contract_decode,
    dead_letter,
    gateway_command,
    mutate,
    pose,
    valid_payloads,
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
VALID = valid_payloads()

MUTATED = st.tuples(st.sampled_from(VALID), st.randoms(use_true_random=False), st.integers(1, 3))
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


def _mutation(case: tuple[tuple[str, dict[str, object]], random.Random, int]) -> tuple[str, bytes]:
    (topic, payload), rng, rounds = case
    return topic, mutate(payload, rng, rounds)


@FUZZ
@given(MUTATED)
def test_decode_rejects_mutations_only_with_contract_error(
    case: tuple[tuple[str, dict[str, object]], random.Random, int],
) -> None:
    topic, raw = _mutation(case)
    contract_decode(raw, topic)
    contract_decode(raw)


@FUZZ
@given(st.binary(max_size=200) | JSONISH.map(lambda v: repr(v).encode()))
def test_decode_of_arbitrary_bytes(raw: bytes) -> None:
    contract_decode(raw)


@FUZZ
@given(MUTATED)
def test_gateway_counts_every_command_it_does_not_queue(
    case: tuple[tuple[str, dict[str, object]], random.Random, int],
) -> None:
    _, raw = _mutation(case)
    gateway_command(raw)


@FUZZ
@given(MUTATED)
def test_pose_and_dead_letter_never_crash(
    case: tuple[tuple[str, dict[str, object]], random.Random, int],
) -> None:
    topic, raw = _mutation(case)
    pose(raw)
    dead_letter(raw, topic)


def test_valid_payloads_still_decode() -> None:
    for topic, payload in VALID:
        assert contract_decode(contract.encode(payload), topic).rejected == 0


POSE = contract.encode(VALID[-1][1])


def _pose_with_x(value: bytes) -> bytes:
    assert b'"x":3.5' in POSE
    return POSE.replace(b'"x":3.5', b'"x":' + value)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (
            contract.encode(VALID[4][1]).replace(b'["A-01-01"]', b"[" * 900 + b"]" * 900),
            "nested too deeply",
        ),
        (_pose_with_x(b"1" * 5000), "out of range"),
        (_pose_with_x(b"1e999"), "out of range"),
        (b'{"schema": {"a": 1}}', "unknown schema"),
        (b'{"schema": ["edgecount.pose/1"]}', "unknown schema"),
        (POSE.replace(b'"aisle":"A"', b'"aisle":"\\ud800"'), "lone surrogate"),
    ],
)
def test_regressions_found_by_fuzzing(raw: bytes, words: str) -> None:
    """Each of these escaped decode as RecursionError, ValueError or TypeError (or, for the
    lone surrogate, decoded and then broke ``encode``)."""
    with pytest.raises(contract.ContractError, match=words):
        contract.decode(raw)
    gateway_command(raw)
    pose(raw)
    dead_letter(raw, COMMAND_TOPIC)


def test_escaped_surrogate_pairs_still_decode() -> None:
    topic, payload = VALID[3]
    raw = contract.encode(payload).replace(b'"recount"', b'"\\ud83d\\ude00"')
    assert contract.decode(raw, topic=topic)["reason"] == "\U0001f600"
