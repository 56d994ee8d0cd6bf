"""The pure codec: framing, malformed input, fast report path against the typed path."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.llrp import codec as c
from tests.drivers.llrp.llrp_cases import cases, golden_bytes

CASES = cases()
REPORT = golden_bytes("ro_access_report")
CAPS = golden_bytes("get_reader_capabilities_response")


def test_frame_buffer_one_byte_at_a_time() -> None:
    stream = REPORT + CAPS + golden_bytes("keepalive")
    buf = c.FrameBuffer()
    frames: list[c.Frame] = []
    for index in range(len(stream)):
        frames += buf.feed(stream[index : index + 1])
    assert [f.msg_type for f in frames] == [61, 11, 62]
    assert b"".join(f.data for f in frames) == stream
    assert buf.pending == 0
    assert buf.frames == 3
    assert buf.errors == 0


def test_frame_buffer_many_frames_in_one_chunk_and_a_partial_tail() -> None:
    buf = c.FrameBuffer()
    frames = buf.feed(REPORT * 3 + CAPS[:20])
    assert len(frames) == 3
    assert buf.pending == 20
    assert frames[0].msg_id == 20
    assert frames[0].body == REPORT[10:]
    assert buf.feed(CAPS[20:])[0].data == CAPS


@pytest.mark.parametrize("length", [0, 9, 2**31])
def test_frame_buffer_rejects_absurd_lengths(length: int) -> None:
    bad = struct.pack(">HII", (1 << 10) | 61, length, 77)
    buf = c.FrameBuffer(max_length=1 << 20)
    with pytest.raises(c.LLRPFramingError) as info:
        buf.feed(REPORT + bad + REPORT)
    assert [f.data for f in info.value.frames] == [REPORT]
    assert info.value.msg_id == 77
    assert buf.errors == 1
    assert buf.pending == 0
    assert buf.feed(CAPS)[0].data == CAPS  # usable again on a fresh stream


def test_decode_rejects_wrong_version_and_unknown_types() -> None:
    v2 = bytearray(golden_bytes("keepalive"))
    v2[0] = (2 << 2) | v2[0] & 0x03
    with pytest.raises(c.LLRPDecodeError) as info:
        c.decode_message(bytes(v2))
    assert info.value.status == c.StatusCode.M_UNSUPPORTED_VERSION
    unknown = struct.pack(">HII", (1 << 10) | 999, 10, 1)
    with pytest.raises(c.LLRPDecodeError) as info:
        c.decode_message(unknown)
    assert info.value.status == c.StatusCode.M_UNSUPPORTED_MESSAGE


def test_decode_rejects_a_length_mismatch_and_short_input() -> None:
    with pytest.raises(c.LLRPDecodeError, match="length"):
        c.decode_message(REPORT + b"\x00")
    with pytest.raises(c.LLRPDecodeError):
        c.decode_message(REPORT[:5])


def test_missing_and_unexpected_parameters_carry_reader_status_codes() -> None:
    no_rospec = c.encode_raw(c.MessageType.ADD_ROSPEC, 3, b"")
    with pytest.raises(c.LLRPDecodeError) as info:
        c.decode_message(no_rospec)
    assert info.value.status == c.StatusCode.M_MISSING_PARAMETER
    assert info.value.param_type == c.ParamType.ROSPEC
    stray = c.encode_raw(c.MessageType.GET_ROSPECS, 3, c.KeepaliveSpec(1, 5).encode())
    with pytest.raises(c.LLRPDecodeError) as info:
        c.decode_message(stray)
    assert info.value.status == c.StatusCode.M_UNEXPECTED_PARAMETER
    custom = c.OpaqueParam(1023, b"\x00\x00\x65\x1a\x00\x00\x00\x15").encode()
    assert c.decode_message(c.encode_raw(c.MessageType.GET_ROSPECS, 4, custom)) == c.GetROSpecs(4)


def _with_length(body_and_header: bytes) -> bytes:
    """Rewrite the header length so the frame is self-consistent."""
    data = bytearray(body_and_header)
    struct.pack_into(">I", data, 2, len(data))
    return bytes(data)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_truncation_is_a_decode_error_never_a_crash(name: str) -> None:
    data = golden_bytes(name)
    failures = 0
    for cut in range(10, len(data)):
        try:
            c.decode_message(_with_length(data[:cut]))
        except c.LLRPDecodeError:
            failures += 1
    # Most prefixes are malformed; those that parse are legitimately shorter messages.
    assert failures >= (len(data) - 10) // 2


def test_random_corruption_raises_only_decode_errors() -> None:
    rng = random.Random(7)
    blobs = [golden_bytes(name) for name in sorted(CASES) if len(golden_bytes(name)) > 10]
    rejected = 0
    for _ in range(3000):
        data = bytearray(rng.choice(blobs))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(10, len(data))] = rng.randrange(256)
        try:
            c.decode_message(_with_length(bytes(data)))
        except c.LLRPDecodeError:
            rejected += 1
    assert rejected > 100


def test_fast_decoder_rejects_corrupt_reports() -> None:
    broken = bytearray(REPORT)
    struct.pack_into(">H", broken, 12, 4000)  # first TagReportData claims 4000 bytes
    with pytest.raises(c.LLRPDecodeError):
        c.decode_ro_access_report(bytes(broken))
    with pytest.raises(c.LLRPDecodeError):
        c.decode_ro_access_report(golden_bytes("keepalive"))
    with pytest.raises(c.LLRPDecodeError):
        c.decode_tag_reports(b"\x00\xf0\x00\x05\x8d")  # TV cut short


def test_fast_decoder_falls_back_when_the_shape_changes() -> None:
    selector = c.TagReportContentSelector(enable_antenna_id=True, enable_peak_rssi=True)
    epc = bytes.fromhex("3034257bf7194e4000000001")
    first = c.TagReportData(epc, antenna_id=1, peak_rssi=-40)
    # Same length as `first`, different layout: ChannelIndex instead of AntennaID.
    second = c.TagReportData(epc, channel_index=2, peak_rssi=-41)
    data = c.ROAccessReport(1, (first, second)).encode()
    assert c.decode_ro_access_report(data) == [
        (epc.hex(), 1, -40, None, None, None),
        (epc.hex(), None, -41, None, None, None),
    ]
    assert len(c.ReportEncoder(selector).tag_report_data((epc, 1, -40, 0, 0, 1))) == len(
        first.encode()
    )


FLAGS = st.booleans()
READS = st.lists(
    st.tuples(
        st.binary(min_size=2, max_size=30).filter(lambda b: len(b) % 2 == 0),
        st.integers(1, 65535),
        st.integers(-128, 127),
        st.integers(0, 2**64 - 1),
        st.integers(0, 2**64 - 1),
        st.integers(1, 70000),
    ),
    max_size=20,
)


@settings(max_examples=150, deadline=None)
@given(
    rospec=FLAGS,
    spec=FLAGS,
    ips=FLAGS,
    ant=FLAGS,
    chan=FLAGS,
    rssi=FLAGS,
    first=FLAGS,
    last=FLAGS,
    count=FLAGS,
    reads=READS,
)
def test_fast_encoder_equals_typed_encoder(
    rospec: bool,
    spec: bool,
    ips: bool,
    ant: bool,
    chan: bool,
    rssi: bool,
    first: bool,
    last: bool,
    count: bool,
    reads: list[c.TagRead],
) -> None:
    selector = c.TagReportContentSelector(rospec, spec, ips, ant, chan, rssi, first, last, count)
    encoder = c.ReportEncoder(
        selector, rospec_id=9, spec_index=2, inventory_parameter_spec_id=3, channel_index=4
    )
    typed = c.ROAccessReport(
        5,
        tuple(
            c.TagReportData(
                epc,
                rospec_id=9 if rospec else None,
                spec_index=2 if spec else None,
                inventory_parameter_spec_id=3 if ips else None,
                antenna_id=a if ant else None,
                peak_rssi=r if rssi else None,
                channel_index=4 if chan else None,
                first_seen_utc=f if first else None,
                last_seen_utc=la if last else None,
                tag_seen_count=min(n, 65535) if count else None,
            )
            for epc, a, r, f, la, n in reads
        ),
    )
    fast = encoder.encode(5, reads)
    assert fast == typed.encode()
    assert c.decode_message(fast) == typed
    assert c.decode_ro_access_report(fast) == [
        (
            epc.hex(),
            a if ant else None,
            r if rssi else None,
            f if first else None,
            la if last else None,
            min(n, 65535) if count else None,
        )
        for epc, a, r, f, la, n in reads
    ]


def test_error_response_picks_the_matching_response_type() -> None:
    status = c.LLRPStatus(c.StatusCode.M_FIELD_ERROR, "x")
    assert isinstance(c.error_response(c.MessageType.ADD_ROSPEC, 4, status), c.AddROSpecResponse)
    assert isinstance(
        c.error_response(c.MessageType.GET_READER_CONFIG, 4, status), c.GetReaderConfigResponse
    )
    fallback = c.error_response(c.MessageType.KEEPALIVE_ACK, 4, status)
    assert fallback == c.ErrorMessage(4, status)


def test_deeply_nested_parameter_errors_are_rejected_not_a_recursion_crash() -> None:
    inner = b""
    for _ in range(5000):
        inner = c.OpaqueParam(c.ParamType.PARAMETER_ERROR, b"\x00\xb1\x00\xc9" + inner).encode()
        if len(inner) > 60000:
            break
    status = c.OpaqueParam(c.ParamType.LLRP_STATUS, b"\x00\x64\x00\x00" + inner).encode()
    with pytest.raises(c.LLRPDecodeError, match="nested"):
        c.decode_message(c.encode_raw(c.MessageType.ADD_ROSPEC_RESPONSE, 1, status))
