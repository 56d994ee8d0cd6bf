"""Fuzzing the LLRP parsers: our codec, the simulator's session, and sllurp through our wrapper.

Inputs are golden messages with bytes flipped, cut, repeated and glued, and arbitrary bytes.
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import (
    LLRP_GOLDEN,
    driver_client,
    llrp_codec,
    llrp_corpus,
    llrp_driver,
    llrp_sim_session,
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CORPUS = llrp_corpus()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """Golden messages, glued, each maybe with bytes overwritten, cut or extended."""
    out = bytearray()
    for message in draw(st.lists(st.sampled_from(CORPUS), min_size=1, max_size=4)):
        data = bytearray(message)
        for at, value in draw(st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)))):
            data[at % len(data)] = value
        cut = draw(st.integers(0, len(data)))
        out += data[: len(data) - cut // 8] + draw(st.binary(max_size=8))
    return bytes(out)


INPUTS = st.one_of(mutated(), st.binary(max_size=300))


@FUZZ
@given(INPUTS)
def test_codec_raises_only_its_documented_errors(data: bytes) -> None:
    llrp_codec(data)


@FUZZ
@given(INPUTS)
@example(bytes.fromhex("040e0000000a0000a80005"))  # CLOSE_CONNECTION, then a stray byte
def test_simulator_session_counts_every_malformed_message(data: bytes) -> None:
    llrp_sim_session(data)


@settings(FUZZ, max_examples=500)
@given(INPUTS, st.integers(0, 40))
def test_driver_wrapper_counts_what_sllurp_cannot_decode(data: bytes, chunk: int) -> None:
    llrp_driver(data, chunk)


def test_driver_survives_a_message_that_ended_sllurps_thread() -> None:
    """Regression: a TV parameter type byte changed inside a TagReportData made sllurp raise
    ``struct.error`` out of ``raw_data_received``: its socket thread died and the driver
    reconnected, the message counted nowhere. Now it is counted and the next one decodes."""
    report = (LLRP_GOLDEN / "ro_access_report.hex").read_text().strip()
    broken = bytearray(bytes.fromhex(report))
    assert broken[27] == 0x89  # TV parameter 9 (FirstSeenTimestampUTC)
    broken[27] = 0xFD
    client, reads = driver_client()
    client.raw_data_received(bytes(broken) + bytes.fromhex(report))
    assert (client.counts.messages, client.counts.malformed) == (2, 1)
    assert [r.epc.hex() for r in reads][-2:] == [
        "e2801160600002054cc2096f00000001",
        "3034257bf7194e4000000001",
    ]


def test_framing_error_is_counted_and_the_stream_goes_on() -> None:
    bad_header = bytes((0x04, 0x3D)) + (3).to_bytes(4, "big") + (1).to_bytes(4, "big")
    keepalive = (LLRP_GOLDEN / "keepalive.hex").read_text().strip()
    client, _ = driver_client()
    client.raw_data_received(bad_header)
    assert client.counts.framing_errors == 1
    client.raw_data_received(bytes.fromhex(keepalive))
    assert (client.counts.messages, client.counts.malformed) == (1, 0)
