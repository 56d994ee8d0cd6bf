"""``edgecount.frame/1``: the annotated camera frame of a vision count."""

from __future__ import annotations

import base64
import json

import pytest

from edgecount import contract
from edgecount.contract import ContractError

SITE, ZONE, LOCATION = "dc-east", "zone-a", "A-01-02"
TOPIC = contract.frame_topic(SITE, ZONE, LOCATION)
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4


def frame(jpeg: bytes = JPEG, **overrides: object) -> dict[str, object]:
    payload = contract.frame_message(
        gateway="gw-1", site=SITE, zone=ZONE, location=LOCATION, scan_id="scan-1",
        jpeg=jpeg, width=640, height=480, observed_at="2024-05-01T02:00:00.000Z",
    ).to_payload()  # fmt: skip
    payload.update(overrides)
    return payload


def raw(payload: dict[str, object]) -> bytes:
    return json.dumps(payload).encode()


def test_a_valid_frame_decodes_to_its_jpeg() -> None:
    message = contract.decode_message(TOPIC, raw(frame()))
    assert isinstance(message, contract.FrameMessage)
    assert message.jpeg == JPEG
    assert (message.width, message.height, message.content_type) == (640, 480, "image/jpeg")
    assert contract.parse_topic(TOPIC).kind == "frame"


def test_the_largest_frame_is_accepted_and_one_byte_more_is_not() -> None:
    largest = JPEG + b"\0" * (contract.MAX_FRAME_BYTES - len(JPEG))
    assert contract.decode_message(TOPIC, raw(frame(largest)))
    with pytest.raises(ContractError, match="more than 262144"):
        contract.frame_message(
            gateway="gw-1", site=SITE, zone=ZONE, location=LOCATION, scan_id="s",
            jpeg=largest + b"\0", width=1, height=1,
        )  # fmt: skip


def test_a_frame_far_too_big_is_refused_by_the_schema() -> None:
    data = base64.b64encode(JPEG + b"\0" * (2 * contract.MAX_FRAME_BYTES)).decode()
    with pytest.raises(ContractError, match="data"):
        contract.decode(raw(frame(data=data)), topic=TOPIC)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("not base64!", "data"),
        ("/9j/4A=", "base64"),  # bad padding
        (base64.b64encode(b"GIF89a....").decode(), "not a JPEG"),
    ],
)
def test_bad_image_data_is_refused(data: str, reason: str) -> None:
    with pytest.raises(ContractError, match=reason) as caught:
        contract.decode(raw(frame(data=data)), topic=TOPIC)
    assert caught.value.schema == contract.FRAME


def test_a_frame_on_another_location_topic_is_refused() -> None:
    with pytest.raises(ContractError, match="location"):
        contract.decode(raw(frame()), topic=contract.frame_topic(SITE, ZONE, "A-09"))


def test_only_jpeg_is_allowed() -> None:
    with pytest.raises(ContractError, match="content_type"):
        contract.decode(raw(frame(content_type="image/png")), topic=TOPIC)
