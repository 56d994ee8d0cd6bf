"""Shelf cameras on the warehouse twin: rendered truth is the twin's; the detector counts it."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from gateway.config import GatewayConfig
from gateway.vision.roi import candidate_floor, count_rois
from gateway.vision.scan import rois_of
from models.artifacts import SHELF_INT8
from models.detector import DEFAULT_CONF, OnnxDetector
from simulators.camera.render import RenderSettings
from simulators.camera.twin_render import (
    CameraView,
    camera_views,
    render_bays,
    serve_views,
    twin_catalogue,
    view_layouts,
)
from simulators.twin import Twin, TwinSpec, generate

# A small twin: one zone, one aisle of 4 bays x 5 levels (20 locations in 4 views).
SPEC = TwinSpec(zones=1, aisles_per_zone=1, bays_per_aisle=4, levels_per_bay=5, skus=40, seed=3)


@pytest.fixture(scope="module")
def twin() -> Twin:
    return generate(SPEC)


def totals(twin: Twin) -> dict[str, int]:
    return {loc: sum(per.values()) for loc, per in twin.truth_counts().items()}


def test_views_cover_every_location_once_in_the_trained_geometry(twin: Twin) -> None:
    layouts = view_layouts(SPEC, "Z1", 1)
    assert [(v.bays, v.levels) for v in layouts] == [
        ((1, 2), (1, 2, 3)),
        ((3, 4), (1, 2, 3)),
        ((1, 2), (3, 4, 5)),  # moved back: a full rack in view, level 3 counted below
        ((3, 4), (3, 4, 5)),
    ]
    counted = [loc for v in layouts for loc in v.counted]
    assert sorted(counted) == sorted(twin.locations)
    assert layouts[2].counted == ("Z1-01-01-4", "Z1-01-02-4", "Z1-01-01-5", "Z1-01-02-5")


def test_rendered_truth_is_the_twin_truth(twin: Twin) -> None:
    views = list(camera_views(twin, "Z1"))
    truth = totals(twin)
    counts = twin.truth_counts()
    seen: dict[str, int] = {}
    for view in views:
        assert view.shelf.image.shape == (544, 960, 3)
        assert np.array_equal(decode(view.jpeg), view.shelf.image)
        for b in view.bins:  # tilted: a corner may leave the frame by the tilt, never more
            assert (b.polygon >= -0.035 * 960).all()
            assert (b.polygon <= [960 * 1.035, 544 + 0.035 * 960]).all()
            per = counts[b.location]
            assert b.sku == max(sorted(per), key=lambda gtin: per[gtin])  # the larger SKU
        # Every drawn box belongs to a drawn bin, and the boxes add up to the truth.
        drawn = view.shelf.truth()
        assert {o: view.shelf.owners.count(o) for o in drawn} == drawn
        assert all(truth[loc] == n for loc, n in drawn.items())
        seen |= view.truth()
        rois = view.camera_config("http://127.0.0.1:9/snapshot.jpg")["rois"]
        assert [roi["location"] for roi in rois] == list(view.truth())
    assert seen == truth
    assert any(len(per) == 2 for per in counts.values())  # two-SKU locations are in the test


def test_untilted_polygons_lie_inside_the_image(twin: Twin) -> None:
    for view in camera_views(twin, "Z1", settings=RenderSettings(tilt=0.0)):
        for b in view.bins:
            assert (b.polygon >= 0).all()
            assert (b.polygon <= [960, 544]).all()


def test_views_are_deterministic_and_products_keep_their_look(twin: Twin) -> None:
    first = [v.jpeg for v in camera_views(twin, "Z1", seed=5)]
    again = [v.jpeg for v in camera_views(twin, "Z1", seed=5)]
    other = [v.jpeg for v in camera_views(twin, "Z1", seed=6)]
    assert first == again
    assert first != other
    gtins = sorted(twin.skus)[:3]
    assert twin_catalogue(gtins, 5) == twin_catalogue(reversed(gtins), 5)
    assert twin_catalogue(gtins, 5) != twin_catalogue(gtins, 6)


def test_render_bays_rejects_what_does_not_fit() -> None:
    catalogue = twin_catalogue(["10614141000019"])
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="outside"):
        render_bays(rng, {(3, 1): "X"}, {"X": {"10614141000019": 1}}, catalogue)
    with pytest.raises(ValueError, match="do not fit"):
        render_bays(rng, {(1, 1): "X"}, {"X": {"10614141000019": 5000}}, catalogue)


def test_shipped_detector_counts_a_clean_view(twin: Twin) -> None:
    clean = RenderSettings().clean()
    detector = OnnxDetector(SHELF_INT8, conf=candidate_floor(DEFAULT_CONF))
    views: list[CameraView] = list(camera_views(twin, "Z1", settings=clean))[:2]
    errors: list[int] = []
    for view in views:
        config = GatewayConfig.model_validate(
            gateway_config(view.camera_config("http://127.0.0.1:9/snapshot.jpg"))
        )
        counted = count_rois(
            detector.detect(view.shelf.image), rois_of(config.cameras[0]), conf=DEFAULT_CONF
        )
        errors += [counted[loc].count - n for loc, n in view.truth().items()]
    assert len(errors) == 12
    within = sum(abs(e) <= 1 for e in errors)
    assert within >= 10, errors
    assert sum(e == 0 for e in errors) >= 8, errors


def test_served_views_give_gateway_camera_entries(twin: Twin) -> None:
    views = list(camera_views(twin, "Z1"))[:2]
    with serve_views(views, fps=20.0, frames=1) as entries:
        raw = gateway_config(*entries)
        config = GatewayConfig.model_validate(raw)
        assert config.zones["Z1"].cameras == [v.name for v in views]
        url = urlsplit(entries[0]["url"])
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
        conn.request("GET", url.path)
        reply = conn.getresponse()
        assert reply.status == 200
        image = decode(reply.read())
        conn.close()
    assert image.shape == (544, 960, 3)
    assert [roi["location"] for roi in entries[1]["rois"]] == list(views[1].truth())
    assert {roi["sku"] for roi in entries[0]["rois"]} <= set(twin.skus)


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, dtype=np.uint8)


def gateway_config(*cameras: dict[str, object]) -> dict[str, object]:
    return {
        "site": SPEC.site,
        "gateway_id": "gw-twin",
        "state_dir": "/tmp",
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "cameras": list(cameras),
        "zones": {"Z1": {"cameras": [c["name"] for c in cameras]}},
    }
