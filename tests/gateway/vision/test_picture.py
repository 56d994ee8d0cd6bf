"""The annotated frame of a location's count: which frame, how large, how encoded."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecount import contract
from gateway.vision.picture import MAX_WIDTH, location_picture, pick
from gateway.vision.roi import Roi, count_rois
from models.detections import Detections

ROI = Roi("A-01", np.array([[100, 100], [1800, 100], [1800, 1000], [100, 1000]], np.float32))


def detections() -> Detections:
    boxes = np.array([[200, 200, 400, 600], [600, 200, 800, 600], [900, 300, 950, 350]])
    return Detections(
        boxes=boxes.astype(np.float32),
        scores=np.array([0.9, 0.8, 0.3], np.float32),
        classes=np.zeros(3, np.int64),
    )


@pytest.mark.parametrize(
    ("counts", "index"),
    [([5], 0), ([4, 5, 6], 1), ([6, 5, 5], 1), ([3, 9], 0), ([2, 7, 2, 7], 0)],
)
def test_the_frame_of_the_median_count_is_picked(counts: list[int], index: int) -> None:
    assert pick(counts) == index


def test_a_large_frame_is_drawn_on_scaled_down_and_encoded() -> None:
    image = np.full((1080, 1920, 3), 90, np.uint8)
    found = detections()
    (count,) = count_rois(found, [ROI], conf=0.5).values()
    picture = location_picture(image, found, ROI, count, conf=0.5, taken=1.5)
    assert picture is not None
    assert (picture.width, picture.height, picture.taken) == (MAX_WIDTH, 540, 1.5)
    decoded = cv2.imdecode(np.frombuffer(picture.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape == (540, MAX_WIDTH, 3)
    assert not np.all(decoded == decoded[0, 0])  # the region and the boxes are drawn


def test_noise_too_big_even_at_the_least_quality_is_not_made() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (2000, 960, 3), np.uint8)
    found = Detections.empty()
    (count,) = count_rois(found, [ROI], conf=0.5).values()
    # pure noise of 960 x 2000 is over 500 KB even at quality 30: no frame rather than a bad one
    assert location_picture(noise, found, ROI, count, conf=0.5, taken=0.0) is None
    small = location_picture(noise[:200], found, ROI, count, conf=0.5, taken=0.0)
    assert small is not None
    assert len(small.jpeg) <= contract.MAX_FRAME_BYTES
