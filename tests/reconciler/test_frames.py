"""Camera frames in the reconciler: checked like every payload, the newest kept per location."""

from __future__ import annotations

import base64
import json

from edgecount import contract
from reconciler.engine import Engine
from reconciler.frames import latest_frame
from reconciler.ingest import handle_batch
from reconciler.rules import TolerancePolicy
from reconciler.store import Store

SITE, ZONE = "dc1", "A"
JPEG = b"\xff\xd8\xff\xe0" + b"frame"


def frame(location: str, at: str, *, gateway: str = "gw-1", scan: str = "s-1") -> bytes:
    message = contract.frame_message(
        gateway=gateway, site=SITE, zone=ZONE, location=location, scan_id=scan,
        jpeg=JPEG + scan.encode(), width=320, height=240, observed_at=at,
    )  # fmt: skip
    return contract.encode_message(message)


def ingest(engine: Engine, *messages: tuple[str, bytes]) -> dict[int, str]:
    """Handle one batch; the reasons of its dead letters by index."""
    outcome = handle_batch(engine, list(messages), rejected_by="test")
    letters = {}
    for index, out in outcome.letters.items():
        assert isinstance(out.message, contract.DeadletterMessage)
        letters[index] = out.message.reason
    return letters


def test_the_newest_frame_of_a_location_is_kept(any_store: Store) -> None:
    engine = Engine(any_store, SITE, TolerancePolicy())
    topic = contract.frame_topic(SITE, ZONE, "A-01")
    assert latest_frame(any_store.engine, ZONE, "A-01") is None
    assert ingest(engine, (topic, frame("A-01", "2024-05-01T02:00:00.000Z", scan="s-1"))) == {}
    stored = latest_frame(any_store.engine, ZONE, "A-01")
    assert stored is not None
    assert (stored.scan_id, stored.gateway, stored.width, stored.height) == (
        "s-1",
        "gw-1",
        320,
        240,
    )
    assert stored.jpeg == JPEG + b"s-1"
    assert stored.content_type == "image/jpeg"

    ingest(engine, (topic, frame("A-01", "2024-05-01T03:00:00.000Z", scan="s-2")))
    stored = latest_frame(any_store.engine, ZONE, "A-01")
    assert stored is not None
    assert stored.scan_id == "s-2"
    assert stored.jpeg == JPEG + b"s-2"

    # a retained frame that arrives late (older) does not replace the newer one
    ingest(engine, (topic, frame("A-01", "2024-05-01T02:30:00.000Z", scan="s-old")))
    stored = latest_frame(any_store.engine, ZONE, "A-01")
    assert stored is not None
    assert stored.scan_id == "s-2"
    assert latest_frame(any_store.engine, ZONE, "A-02") is None


def test_bad_and_unauthorised_frames_go_to_the_dead_letters(any_store: Store) -> None:
    engine = Engine(any_store, SITE, TolerancePolicy(), authorized={"gw-1": frozenset({"B"})})
    topic = contract.frame_topic(SITE, ZONE, "A-03")
    good = json.loads(frame("A-03", "2024-05-01T02:00:00.000Z"))
    not_jpeg = {**good, "data": base64.b64encode(b"GIF89a").decode()}
    letters = ingest(
        engine,
        (topic, frame("A-03", "2024-05-01T02:00:00.000Z")),  # gw-1 may not report zone A
        (topic, json.dumps(not_jpeg).encode()),
        (contract.frame_topic(SITE, ZONE, "A-04"), frame("A-03", "2024-05-01T02:00:00.000Z")),
    )
    assert "may not report zone 'A'" in letters[0]
    assert "not a JPEG" in letters[1]
    assert "location" in letters[2]
    assert latest_frame(any_store.engine, ZONE, "A-03") is None
