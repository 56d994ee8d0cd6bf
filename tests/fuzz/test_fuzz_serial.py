"""Fuzzing the serial receiver: arbitrary byte streams, cut anywhere, through the reader thread.

tests/drivers/serial/test_serial_codec.py pins the decoder itself (frames among noise, damaged
frames by reason, split invariance); here whole streams go through :class:`Receiver` over a link, as
the driver runs it: every rejected candidate and every bad tag CRC is counted, every valid
frame comes out (tag notices as reads).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.serial import codec as c
from tests.fuzz.targets import serial_receiver

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

EPCS = st.integers(0, 31).flatmap(lambda n: st.binary(min_size=2 * n, max_size=2 * n))
NOTICES = st.builds(
    lambda epc, rssi, good: c.TagNotice(
        rssi, c.pc_for(epc), epc, c.epc_crc(c.pc_for(epc).to_bytes(2, "big") + epc) ^ (not good)
    ).encode(),
    EPCS,
    st.integers(-128, 127),
    st.booleans(),
)
OTHERS = st.sampled_from(
    [c.Ack(0xB6, 0).encode(), c.ErrorResponse(0x15).encode(), c.PowerResponse(2600).encode()]
)


@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    """Valid frames, damaged ones and noise, cut into chunks anywhere."""
    parts = draw(
        st.lists(st.one_of(NOTICES, OTHERS, st.binary(max_size=20), st.just(b"\xbb")), max_size=20)
    )
    data = bytearray(b"".join(parts))
    for at, value in draw(st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)))):
        if data:
            data[at % len(data)] = value
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=10)))
    return [bytes(data[a:b]) for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@FUZZ
@given(streams(), st.booleans())
def test_receiver_counts_every_rejection_and_loses_no_valid_frame(
    chunks: list[bytes], verify_crc: bool
) -> None:
    serial_receiver(chunks, verify_crc)


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_receiver_survives_arbitrary_bytes(chunks: list[bytes]) -> None:
    serial_receiver(chunks)


def test_a_bad_crc_notice_is_counted_not_read() -> None:
    epc = bytes.fromhex("3034257bf7194e4000003039")
    good = c.TagNotice.for_epc(epc, -40)
    bad = c.TagNotice(good.rssi, good.pc, good.epc, good.crc ^ 1)
    out = serial_receiver([bad.encode()[:5], bad.encode()[5:] + good.encode()])
    assert (out.units, out.rejected) == (2, 1)
