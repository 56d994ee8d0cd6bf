"""The serial codec: frame types, the incremental decoder, and its behaviour on hostile input.

Property tests (hypothesis) build streams of valid frames, noise and damaged frames, cut
them at random points, and check that exactly the valid frames come out and every damaged
frame is counted under its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from drivers.serial import codec as c

NOT_BB = st.integers(0, 255).filter(lambda b: b != 0xBB)
NOISE = st.binary(max_size=30).map(lambda b: b.replace(b"\xbb", b"\x00"))


def decode_all(data: bytes) -> tuple[list[c.Frame], c.FrameDecoder]:
    decoder = c.FrameDecoder()
    frames = decoder.feed(data)
    return frames, decoder


# -- unit tests -------------------------------------------------------------------------------


def test_checksum_is_the_low_byte_of_the_sum() -> None:
    assert c.checksum(bytes([0x01, 0xFF, 0x00, 0x01, 0x15])) == 0x16
    assert c.encode_frame(0x01, 0xFF, b"\x15") == bytes.fromhex("BB01FF000115167E")


def test_epc_crc_matches_the_manual_example() -> None:
    pc_epc = bytes.fromhex("3400" + "30751FEB705C5904E3D50D70")
    assert c.epc_crc(pc_epc) == 0x3A76


def test_notice_for_epc_carries_length_in_the_pc_and_a_valid_crc() -> None:
    notice = c.TagNotice.for_epc(bytes.fromhex("3034257BF7194E4000003039"), -52)
    assert notice.pc == 0x3000
    assert notice.crc_ok
    damaged = c.TagNotice(notice.rssi, notice.pc, notice.epc, notice.crc ^ 1)
    assert not damaged.crc_ok


def test_power_in_hundredths_of_a_dbm() -> None:
    assert c.SetPower.from_dbm(26.0).centi_dbm == 2600
    assert c.SetPower.from_dbm(18.55).centi_dbm == 1855
    assert c.PowerResponse(-900).dbm == -9.0


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (c.MultiPoll(65536), "poll count"),
        (c.SetPower(40000), "16 bits"),
        (c.TagNotice(200, 0x3000, bytes(12), 0), "signed byte"),
        (c.TagNotice(-50, 0x3000, bytes(10), 0), "does not announce"),
    ],
)
def test_encoders_refuse_what_the_wire_cannot_carry(frame: c.Frame, why: str) -> None:
    with pytest.raises(c.FrameError, match=why):
        frame.encode()


def test_pc_for_refuses_odd_and_oversized_epcs() -> None:
    with pytest.raises(c.FrameError):
        c.pc_for(bytes(11))
    with pytest.raises(c.FrameError):
        c.pc_for(bytes(64))


def test_several_frames_in_one_feed_and_one_frame_over_many() -> None:
    stream = c.SinglePoll().encode() + c.Ack(0x28).encode() + c.GetPower().encode()
    frames, decoder = decode_all(stream)
    assert frames == [c.SinglePoll(), c.Ack(0x28), c.GetPower()]
    decoder = c.FrameDecoder()
    out: list[c.Frame] = []
    for byte in stream:
        out += decoder.feed(bytes([byte]))
    assert out == frames
    assert decoder.frames == 3


def test_garbage_before_and_between_frames_is_skipped_and_counted() -> None:
    ack = c.Ack(0x28).encode()
    frames, decoder = decode_all(b"\x00\x7e\x12" + ack + b"\xff\xfe" + ack)
    assert frames == [c.Ack(0x28), c.Ack(0x28)]
    assert decoder.skipped_bytes == 5
    assert decoder.rejected_total == 0


def test_bad_checksum_and_bad_end_are_rejected_and_the_next_frame_survives() -> None:
    good = c.StopMultiPoll().encode()
    bad_sum = bytearray(good)
    bad_sum[-2] ^= 0x40
    bad_end = bytearray(good)
    bad_end[-1] = 0x00
    frames, decoder = decode_all(bytes(bad_sum) + good + bytes(bad_end) + good)
    assert frames == [c.StopMultiPoll(), c.StopMultiPoll()]
    assert decoder.rejected[c.Reject.BAD_CHECKSUM] == 1
    assert decoder.rejected[c.Reject.BAD_END] == 1


def test_unknown_type_and_absurd_length_are_rejected_without_waiting() -> None:
    decoder = c.FrameDecoder()
    assert decoder.feed(b"\xbb\x07") == []
    assert decoder.rejected[c.Reject.BAD_TYPE] == 1
    assert decoder.pending == 0
    assert decoder.feed(b"\xbb\x02\x22\x40\x00") == []  # 16384 bytes announced
    assert decoder.rejected[c.Reject.BAD_LENGTH] == 1
    assert decoder.pending == 0


def test_a_truncated_frame_does_not_hide_the_frame_after_it() -> None:
    notice = c.TagNotice.for_epc(bytes.fromhex("3034257BF7194E4000003039"), -60).encode()
    ack = c.Ack(0x28).encode()
    stream = notice[:10] + notice + ack
    frames, decoder = decode_all(stream)
    assert [type(f) for f in frames] == [c.TagNotice, c.Ack]
    assert decoder.rejected_total == 1
    assert decoder.pending == 0


def test_idle_line_ends_a_partial_frame_and_frees_a_frame_caught_in_it() -> None:
    false_start = b"\xbb\x01\x22\x00\x20"  # announces 32 data bytes that never come
    ack = c.Ack(0x28).encode()
    decoder = c.FrameDecoder()
    assert decoder.feed(false_start + ack) == []  # the ack waits inside the candidate
    assert decoder.pending == len(false_start + ack)
    assert decoder.idle() == [c.Ack(0x28)]
    assert decoder.rejected[c.Reject.TRUNCATED] == 1
    assert decoder.pending == 0
    assert decoder.idle() == []


def test_well_framed_but_meaningless_data_is_a_bad_payload() -> None:
    wrong_pc = c.encode_frame(0x02, 0x22, b"\xc9\x34\x00" + bytes(10) + b"\x00\x00")
    no_code = c.encode_frame(0x01, 0xFF)
    bad_poll = c.encode_frame(0x00, 0x27, b"\x00\x00\x10")
    frames, decoder = decode_all(wrong_pc + no_code + bad_poll + c.GetPower().encode())
    assert frames == [c.GetPower()]
    assert decoder.rejected[c.Reject.BAD_PAYLOAD] == 3
    assert decoder.skipped_bytes == 0


def test_other_frames_decode_as_raw_or_ack() -> None:
    stream = (
        c.encode_frame(0x01, 0x07, b"\x00")
        + c.encode_frame(0x00, 0x0D)
        + c.encode_frame(0x01, 0xF1, b"\x03\x06\x01\xb0")
        + c.TagNotice(-40, 0x3000, bytes(12), 0, command=0x27).encode()
    )
    frames, _ = decode_all(stream)
    assert frames == [
        c.Ack(0x07, 0),
        c.RawFrame(0x00, 0x0D, b""),
        c.RawFrame(0x01, 0xF1, b"\x03\x06\x01\xb0"),
        c.TagNotice(-40, 0x3000, bytes(12), 0, command=0x27),
    ]


# -- property tests ---------------------------------------------------------------------------

EPCS = st.integers(0, 31).flatmap(lambda words: st.binary(min_size=2 * words, max_size=2 * words))
TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
DATA = st.binary(max_size=40)


@st.composite
def raw_frames(draw: st.DrawFn) -> c.RawFrame:
    """Frames the codec does not interpret (decoded back as RawFrame)."""
    ftype = draw(st.sampled_from(list(c.FrameType)))
    if ftype == c.FrameType.COMMAND:
        known = {0x03, 0x22, 0x27, 0x28, 0xB6, 0xB7}
        return c.RawFrame(
            ftype, draw(st.integers(0, 255).filter(lambda x: x not in known)), draw(DATA)
        )
    if ftype == c.FrameType.NOTICE:
        return c.RawFrame(
            ftype, draw(st.integers(0, 255).filter(lambda x: x not in (0x22, 0x27))), draw(DATA)
        )
    command = draw(st.integers(0, 255).filter(lambda x: x not in (0x03, 0xFF)))
    data = draw(DATA.filter(lambda d: len(d) != 1 and not (command == 0xB7 and len(d) == 2)))
    return c.RawFrame(ftype, command, data)


FRAMES: st.SearchStrategy[c.Frame] = st.one_of(
    st.just(c.SinglePoll()),
    st.builds(c.MultiPoll, st.integers(0, 0xFFFF)),
    st.just(c.StopMultiPoll()),
    st.builds(c.SetPower, st.integers(-0x8000, 0x7FFF)),
    st.just(c.GetPower()),
    st.builds(c.GetModuleInfo, st.integers(0, 255)),
    st.builds(
        lambda epc, rssi, crc, cmd: c.TagNotice(rssi, c.pc_for(epc), epc, crc, cmd),
        EPCS,
        st.integers(-128, 127),
        st.integers(0, 0xFFFF),
        st.sampled_from([0x22, 0x27]),
    ),
    st.builds(
        c.Ack, st.integers(0, 255).filter(lambda x: x not in (0x03, 0xFF)), st.integers(0, 255)
    ),
    st.builds(c.PowerResponse, st.integers(-0x8000, 0x7FFF)),
    st.builds(c.ModuleInfo, st.integers(0, 255), TEXT),
    st.builds(c.ErrorResponse, st.integers(0, 255), st.binary(max_size=12)),
    raw_frames(),
)


@dataclass(frozen=True)
class Piece:
    """One part of a test stream: a valid frame, noise, or a damaged frame."""

    data: bytes
    frame: c.Frame | None = None
    reject: c.Reject | None = None


@st.composite
def damaged(draw: st.DrawFn) -> Piece:
    """A frame damaged one way; no 0xBB after its first byte, so nothing else can start there."""
    frame = c.encode_frame(draw(st.integers(0, 2)), draw(NOT_BB), draw(NOISE.map(lambda b: b[:20])))
    assume(0xBB not in frame[1:])
    data = bytearray(frame)
    kind = draw(st.sampled_from(list(c.Reject)))
    if kind == c.Reject.BAD_TYPE:
        data[1] = draw(st.integers(3, 255).filter(lambda b: b != 0xBB))
    elif kind == c.Reject.BAD_LENGTH:
        data[3] = draw(st.integers(1, 255).filter(lambda b: b != 0xBB))
    elif kind == c.Reject.BAD_END:
        data[-1] = draw(NOT_BB.filter(lambda b: b != 0x7E))
    elif kind == c.Reject.BAD_CHECKSUM:
        data[-2] = draw(NOT_BB.filter(lambda b: b != frame[-2]))
    else:  # cut short, then line noise (no 0xBB, no 0x7E) at least as long as what is missing
        kind = c.Reject.BAD_END
        cut = draw(st.integers(5, len(data) - 1))
        pad = draw(st.binary(min_size=len(data) - cut, max_size=len(data) - cut + 5))
        data = data[:cut] + pad.replace(b"\xbb", b"\x01").replace(b"\x7e", b"\x01")
    return Piece(bytes(data), reject=kind)


PIECES = st.one_of(
    FRAMES.map(lambda f: Piece(f.encode(), frame=f)),
    NOISE.map(Piece),
)


def split_feed(data: bytes, cuts: list[int]) -> tuple[list[c.Frame], c.FrameDecoder]:
    decoder = c.FrameDecoder()
    frames: list[c.Frame] = []
    at = 0
    for cut in [*sorted({min(cut, len(data)) for cut in cuts}), len(data)]:
        frames += decoder.feed(data[at:cut])
        at = cut
    return frames, decoder


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES, max_size=25), st.lists(st.integers(0, 2000), max_size=30))
def test_frames_among_noise_come_out_exactly_whatever_the_split(
    pieces: list[Piece], cuts: list[int]
) -> None:
    stream = b"".join(p.data for p in pieces)
    frames, decoder = split_feed(stream, cuts)
    assert frames == [p.frame for p in pieces if p.frame is not None]
    assert decoder.rejected_total == 0
    assert decoder.skipped_bytes == sum(len(p.data) for p in pieces if p.frame is None)
    assert decoder.pending == 0


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(PIECES, damaged()), max_size=25), st.lists(st.integers(0, 2000)))
def test_damaged_frames_are_counted_by_reason_and_never_hide_good_ones(
    pieces: list[Piece], cuts: list[int]
) -> None:
    stream = b"".join(p.data for p in pieces)
    frames, decoder = split_feed(stream, cuts)
    assert frames == [p.frame for p in pieces if p.frame is not None]
    for reason in c.Reject:
        assert decoder.rejected[reason] == sum(p.reject == reason for p in pieces), reason
    good = sum(len(p.data) for p in pieces if p.frame is not None)
    # Every byte is a good frame's, a rejected candidate's 0xBB, or skipped.
    assert good + decoder.rejected_total + decoder.skipped_bytes == len(stream)
    assert decoder.pending == 0


HOSTILE = st.lists(
    st.one_of(st.binary(max_size=12), st.sampled_from([b"\xbb", b"\x7e", b"\xbb\x02\x22\x00"]))
).map(b"".join)


@settings(max_examples=300)
@given(HOSTILE, st.lists(st.integers(0, 400), max_size=20))
def test_any_input_decodes_the_same_however_it_is_split_and_never_raises(
    data: bytes, cuts: list[int]
) -> None:
    whole, one = decode_all(data)
    pieces, other = split_feed(data, cuts)
    assert pieces == whole
    assert (one.rejected, one.skipped_bytes, one.frames, one.pending) == (
        other.rejected,
        other.skipped_bytes,
        other.frames,
        other.pending,
    )
    one.idle()
    assert one.pending == 0
