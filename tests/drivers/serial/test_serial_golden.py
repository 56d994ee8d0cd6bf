"""The serial codec against golden frames (tests/drivers/serial/golden/frames.json).

Each vector is checked three ways: its checksum and length by an independent computation here
(and its hand-written addition), the encoder reproduces its bytes exactly, and the decoder
turns its bytes into exactly the expected typed frame.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drivers.serial import codec as c

GOLDEN = Path(__file__).parent / "golden" / "frames.json"
VECTORS: list[dict[str, Any]] = json.loads(GOLDEN.read_text(encoding="utf-8"))["vectors"]
TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        c.SinglePoll,
        c.MultiPoll,
        c.StopMultiPoll,
        c.SetPower,
        c.GetPower,
        c.GetModuleInfo,
        c.TagNotice,
        c.Ack,
        c.PowerResponse,
        c.ModuleInfo,
        c.ErrorResponse,
    )
}
BYTE_FIELDS = {"epc", "data"}


def raw(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex(vector["hex"].replace(" ", ""))


def expected(vector: dict[str, Any]) -> c.Frame:
    spec = dict(vector["frame"])
    cls = TYPES[spec.pop("type")]
    args = {k: bytes.fromhex(v) if k in BYTE_FIELDS else v for k, v in spec.items()}
    frame: c.Frame = cls(**args)
    return frame


def ids(vector: dict[str, Any]) -> str:
    return str(vector["name"])


def test_every_command_and_response_has_a_vector() -> None:
    kinds = {v["frame"]["type"] for v in VECTORS}
    assert kinds == set(TYPES)
    assert len({v["name"] for v in VECTORS}) == len(VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=ids)
def test_vector_is_a_well_formed_frame(vector: dict[str, Any]) -> None:
    data = raw(vector)
    assert data[0] == 0xBB
    assert data[-1] == 0x7E
    assert int.from_bytes(data[3:5], "big") == len(data) - 7
    total = 0
    for byte in data[1:-2]:
        total += byte
    assert total % 256 == data[-2]
    terms, stated = vector["sum"].split(" = ")
    assert [int(t, 16) for t in terms.split("+")] == list(data[1:-2])
    assert int(stated.split()[0], 16) == total


@pytest.mark.parametrize("vector", VECTORS, ids=ids)
def test_encoder_reproduces_the_vector(vector: dict[str, Any]) -> None:
    assert expected(vector).encode() == raw(vector)


@pytest.mark.parametrize("vector", VECTORS, ids=ids)
def test_decoder_yields_the_typed_frame(vector: dict[str, Any]) -> None:
    decoder = c.FrameDecoder()
    frames = decoder.feed(raw(vector))
    assert frames == [expected(vector)]
    assert decoder.rejected_total == 0
    assert decoder.skipped_bytes == 0
    assert decoder.pending == 0
    if "crc_ok" in vector:
        frame = frames[0]
        assert isinstance(frame, c.TagNotice)
        assert frame.crc_ok is vector["crc_ok"]


def test_well_known_vectors_are_pinned() -> None:
    """The three frames every M100 driver starts with, spelled out in the test itself."""
    assert c.SinglePoll().encode() == bytes.fromhex("BB00220000227E")
    assert c.MultiPoll(10000).encode() == bytes.fromhex("BB00270003222710837E")
    assert c.StopMultiPoll().encode() == bytes.fromhex("BB00280000287E")
