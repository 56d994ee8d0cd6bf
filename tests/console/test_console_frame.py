"""A location's page shows the annotated camera frame of its vision count, in chromium.

Against a real reconciler, broker and PostgreSQL: a frame published (retained, QoS 0) on
``frame/{zone}/{location}`` appears on the open page of the location by the live feed, and
``frame.jpg`` serves it.
"""

from __future__ import annotations

import json
from contextlib import closing
from datetime import UTC, datetime

import cv2
import numpy as np
import paho.mqtt.publish as mqtt_publish
from playwright.sync_api import expect

from edgecount import contract
from tests.console.conftest import SKU_A, SKU_B, Console, OpenPage


def jpeg(width: int, height: int) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    cv2.rectangle(image, (10, 10), (width - 10, height - 10), (0, 200, 0), 3)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 75])
    assert ok
    return encoded.tobytes()


def publish_frame(console: Console, location: str, scan_id: str, at: datetime) -> None:
    zone = location[0]
    message = contract.frame_message(
        gateway="gw-1", site=console.site, zone=zone, location=location, scan_id=scan_id,
        jpeg=jpeg(320, 240), width=320, height=240, observed_at=at,
    )  # fmt: skip
    mqtt_publish.single(
        contract.frame_topic(console.site, zone, location),
        json.dumps(message.to_payload()),
        qos=0,
        retain=True,
        hostname=console.broker.host,
        port=console.broker.port,
    )


def test_the_location_page_shows_its_camera_frame(console: Console, open_page: OpenPage) -> None:
    console.count("A-05", {SKU_A: 10, SKU_B: 4}, scan_id="frame-1")
    page = open_page("vic", "/console/locations/A/A-05").page
    expect(page.get_by_role("row").filter(has_text="frame-1")).to_be_visible()
    expect(page.get_by_role("img", name="Camera frame of A-05")).to_have_count(0)

    at = datetime(2026, 5, 1, 2, 3, 4, tzinfo=UTC)
    publish_frame(console, "A-05", "frame-1", at)
    image = page.get_by_role("img", name="Camera frame of A-05, frame-1, 2026-05-01 02:03:04 UTC")
    expect(image).to_be_visible()  # the live feed reloads the page when the frame is stored
    expect(image).to_have_attribute("src", "/console/locations/A/A-05/frame.jpg")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 320", arg=image.element_handle()
    )

    with closing(console.client("vic")) as client:
        served = client.get("/console/locations/A/A-05/frame.jpg")
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/jpeg"
        assert served.headers["cache-control"] == "no-store"
        assert served.content.startswith(b"\xff\xd8\xff")
        missing = client.get("/console/locations/A/A-06/frame.jpg")
        assert missing.status_code == 404
