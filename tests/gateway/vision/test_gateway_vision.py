"""Cameras in zone scans: vision counts, fused counts and a stalled camera, end to end.

A real shelf camera simulator serves frames over HTTP, the camera driver polls it, the
shipped ONNX detector counts each ROI, an LLRP simulator covers some of the same locations
through real sllurp, and the counts go through a real Mosquitto broker where a recorder
validates every payload against the contract.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from drivers.base import Reader
from drivers.camera.driver import Camera
from edgecount import contract
from gateway.config import GatewayConfig
from gateway.publisher import MemoryPublisher
from gateway.readers import build_readers
from gateway.runtime import open_publisher
from gateway.scan import ScanResult, create_zone_scan
from gateway.vision.scan import build_cameras
from simulators.camera.render import RenderSettings, ShelfImage, finish, render_shelf
from simulators.camera.server import CameraServer
from simulators.llrp.server import LLRPSimulator
from simulators.scene import ReaderSpec, Scene, TagSpec
from simulators.shelf import SKU_PREFIXES, SKUS
from tests.conftest import BrokerAddress, RecorderFactory

GTIN = SKUS[SKU_PREFIXES[0]]
SHORT_BY = 5  # the RFID figure at one fused location is this many units short


def shelf() -> ShelfImage:
    """A fixed shelf; every location holds items (so one can be made to disagree)."""
    settings = RenderSettings(empty=0.0, half=0.3, occlusion=0.0)
    shelf = render_shelf(np.random.default_rng(1), settings)
    assert all(b.count >= SHORT_BY * 2 for b in shelf.bins), shelf.truth()
    return shelf


def still_camera(image: np.ndarray) -> CameraServer:
    """A camera whose every frame is the same picture (JPEG'd once, like the real one)."""
    frame = finish(np.random.default_rng(0), image, RenderSettings().clean())
    return CameraServer(lambda _index: (frame, None), fps=20.0)


def rfid_scene(counts: list[int]) -> Scene:
    """Antenna i+1 sees counts[i] tags of one GTIN, strays 15 dB weaker at its neighbours."""
    tags: list[TagSpec] = []
    serial = 1
    for antenna, count in enumerate(counts, start=1):
        for _ in range(count):
            epc = f"{SKU_PREFIXES[0] | serial:024x}"
            serial += 1
            tags.append(TagSpec(epc=epc, antenna=antenna, rssi=-50.0, read_prob=0.98))
            tags.extend(
                TagSpec(epc=epc, antenna=near, rssi=-65.0, read_prob=0.98)
                for near in (antenna - 1, antenna + 1)
                if 1 <= near <= len(counts)
            )
    return Scene(reader=ReaderSpec(antennas=len(counts), rounds_per_second=10), seed=3, tags=tags)


def config_for(
    site: str,
    broker: BrokerAddress,
    state_dir: Path,
    camera: dict[str, Any],
    *,
    reader: dict[str, Any] | None = None,
    scan_seconds: float = 2.0,
) -> GatewayConfig:
    zone: dict[str, Any] = {"cameras": [camera["name"]], "scan_seconds": scan_seconds}
    raw: dict[str, Any] = {
        "site": site,
        "gateway_id": f"gw-{uuid.uuid4().hex[:8]}",
        "state_dir": str(state_dir),
        "mqtt": {"host": broker.host, "port": broker.port},
        "cameras": [camera],
        "zones": {"A": zone},
    }
    if reader is not None:
        raw["readers"] = [reader]
        zone["readers"] = [reader["name"]]
    return GatewayConfig.model_validate(raw)


def camera_config(name: str, url: str, shelf: ShelfImage, **extra: Any) -> dict[str, Any]:
    rois = [
        {"location": b.location, "sku": GTIN, "polygon": b.polygon.tolist()} for b in shelf.bins
    ]
    return {"name": name, "url": url, "kind": "snapshot", "fps": 10.0, "rois": rois} | extra


async def run_scan(config: GatewayConfig) -> ScanResult:
    async with open_publisher(config) as publisher:
        readers = build_readers(config)
        cameras = build_cameras(config)
        devices: list[Reader | Camera] = [*readers.values(), *cameras.values()]
        await asyncio.gather(*(device.start() for device in devices))
        try:
            result = await create_zone_scan(config, "A", readers, publisher, cameras=cameras).run()
        finally:
            await asyncio.gather(*(device.stop() for device in devices))
        assert await publisher.flush(10.0)
    return result


async def test_vision_and_fused_counts_reach_the_broker(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    scene_shelf = shelf()
    truth = scene_shelf.truth()
    fused_locations = [b.location for b in scene_shelf.bins[:4]]  # antennas 1-4
    short = fused_locations[1]
    tags = [truth[loc] - (SHORT_BY if loc == short else 0) for loc in fused_locations]
    recorder = mqtt_recorder(broker, f"edgecount/v1/{unique_site}/#")
    with still_camera(scene_shelf.image) as camera:
        async with LLRPSimulator(rfid_scene(tags)) as sim:
            reader = {
                "type": "llrp", "name": "aisle-a", "host": "127.0.0.1", "port": sim.port,
                "antennas": dict(enumerate(fused_locations, start=1)), "keepalive_seconds": 1.0,
            }  # fmt: skip
            config = config_for(
                unique_site,
                broker,
                tmp_path,
                camera_config("cam-1", camera.snapshot_url, scene_shelf),
                reader=reader,
            )
            result = await run_scan(config)

    assert result.complete, {k: v.complete for k, v in result.locations.items()}
    assert result.cameras["cam-1"].ok
    assert result.cameras["cam-1"].frames == 3
    counts = await recorder.await_for(6, f"edgecount/v1/{unique_site}/count/A/+", timeout=10)
    published = {m.payload["location"]: m.payload for m in counts if m.payload}
    assert set(published) == set(truth)
    for location, payload in published.items():
        assert payload["complete"] is True
        if location not in fused_locations:
            assert payload["source"] == "vision"
            assert payload["total"] == truth[location], location
            (item,) = payload["items"]
            assert item["sku"] == GTIN
            assert 0.0 < item["confidence"] <= 1.0
            continue
        assert payload["source"] == "fused"
        fusion = payload["fusion"]
        assert fusion["vision"]["total"] == truth[location], location
        assert fusion["rfid"]["total"] == tags[fused_locations.index(location)]
        assert payload["total"] == fusion["rfid"]["total"]  # RFID complete: its items
        assert fusion["disagreement"] is (location == short), location
    scan = await recorder.await_for(
        1,
        f"edgecount/v1/{unique_site}/scan/A",
        where=lambda m: m.payload is not None and m.payload["state"] != "started",
    )
    assert scan[0].payload is not None
    assert scan[0].payload["state"] == "completed"
    assert scan[0].payload["cameras"] == [{"name": "cam-1", "ok": True, "frames": 3}]


async def test_a_stalled_camera_makes_its_locations_incomplete(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    scene_shelf = shelf()
    recorder = mqtt_recorder(broker, f"edgecount/v1/{unique_site}/#")
    with still_camera(scene_shelf.image) as camera:
        camera.stall()
        config = config_for(
            unique_site,
            broker,
            tmp_path,
            camera_config("cam-1", camera.snapshot_url, scene_shelf, stall_seconds=0.5),
            scan_seconds=1.0,
        )
        result = await run_scan(config)
        camera.resume()

    assert not result.complete
    outcome = result.cameras["cam-1"]
    assert not outcome.ok
    assert outcome.frames == 0
    counts = await recorder.await_for(6, f"edgecount/v1/{unique_site}/count/A/+", timeout=10)
    for message in counts:
        assert message.payload is not None
        assert message.payload["complete"] is False
        assert message.payload["source"] == "vision"
        assert message.payload["items"] == []  # never "0 found" as a fact
    scan = await recorder.await_for(
        1,
        f"edgecount/v1/{unique_site}/scan/A",
        where=lambda m: m.payload is not None and m.payload["state"] != "started",
    )
    assert scan[0].payload is not None
    assert scan[0].payload["state"] == "incomplete"
    assert sorted(scan[0].payload["incomplete_locations"]) == sorted(scene_shelf.truth())


def test_edgecount_scan_of_a_camera_only_zone(
    tmp_path: Path, broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory
) -> None:
    scene_shelf = shelf()
    truth = scene_shelf.truth()
    recorder = mqtt_recorder(broker, f"edgecount/v1/{unique_site}/count/A/+")
    with still_camera(scene_shelf.image) as camera:
        config = config_for(
            unique_site, broker, tmp_path / "state",
            camera_config("cam-1", camera.snapshot_url, scene_shelf), scan_seconds=1.0,
        )  # fmt: skip
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
        done = subprocess.run(
            [sys.executable, "-m", "edgecount", "scan", "-c", str(path), "--zone", "A", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["complete"] is True
    assert report["cameras"] == [{"name": "cam-1", "ok": True, "frames": 3, "error": None}]
    assert {row["location"]: row["total"] for row in report["locations"]} == truth
    assert {row["source"] for row in report["locations"]} == {"vision"}
    assert len(recorder.wait_for(len(truth), timeout=10)) == len(truth)


async def test_a_missing_model_fails_the_camera_not_the_scan(
    broker: BrokerAddress, unique_site: str, tmp_path: Path
) -> None:
    scene_shelf = shelf()
    missing = tmp_path / "no-such-model.onnx"
    with still_camera(scene_shelf.image) as camera:
        config = config_for(
            unique_site, broker, tmp_path,
            camera_config("cam-1", camera.snapshot_url, scene_shelf, model=str(missing)),
            scan_seconds=0.5,
        )  # fmt: skip
        result = await run_scan(config)

    outcome = result.cameras["cam-1"]
    assert not outcome.ok
    assert str(missing) in (outcome.error or "")
    assert result.published
    assert not result.complete
    assert all(not count.complete for count in result.locations.values())


async def scan_into(config: GatewayConfig, publisher: MemoryPublisher) -> ScanResult:
    """A camera-only zone scan that publishes into ``publisher``."""
    cameras = build_cameras(config)
    await asyncio.gather(*(camera.start() for camera in cameras.values()))
    try:
        return await create_zone_scan(config, "A", {}, publisher, cameras=cameras).run()
    finally:
        await asyncio.gather(*(camera.stop() for camera in cameras.values()))


async def test_a_fixed_camera_publishes_the_annotated_frame_of_each_count(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    scene_shelf = shelf()
    truth = scene_shelf.truth()
    recorder = mqtt_recorder(broker, f"edgecount/v1/{unique_site}/frame/A/+")
    with still_camera(scene_shelf.image) as camera:
        config = config_for(
            unique_site, broker, tmp_path,
            camera_config("cam-1", camera.snapshot_url, scene_shelf), scan_seconds=1.0,
        )  # fmt: skip
        started = time.time()
        result = await run_scan(config)
    frames = await recorder.await_for(len(truth), f"edgecount/v1/{unique_site}/frame/A/+")
    width = scene_shelf.image.shape[1]
    by_location = {}
    for received in frames:  # the recorder checked each payload against the contract
        message = contract.message_from_payload(received.payload or {})
        assert isinstance(message, contract.FrameMessage)
        by_location[message.location] = message
        assert message.scan_id == result.scan_id
        assert message.gateway == config.gateway_id
        assert started <= contract.parse_iso(message.observed_at).timestamp() <= time.time()
        assert message.width == min(width, 960)
        image = cv2.imdecode(np.frombuffer(message.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        assert image.shape[:2] == (message.height, message.width)
        assert len(message.jpeg) <= contract.MAX_FRAME_BYTES
    assert set(by_location) == set(truth)
    # retained: a subscriber that comes later (a reconciler that was away) still gets them
    late = mqtt_recorder(broker, f"edgecount/v1/{unique_site}/frame/A/+")
    kept = await late.await_for(len(truth), f"edgecount/v1/{unique_site}/frame/A/+")
    assert all(received.retain for received in kept)


async def test_frames_are_best_effort_and_can_be_turned_off(
    broker: BrokerAddress, unique_site: str, tmp_path: Path
) -> None:
    scene_shelf = shelf()
    locations = set(scene_shelf.truth())
    with still_camera(scene_shelf.image) as camera:
        cam = camera_config("cam-1", camera.snapshot_url, scene_shelf)
        config = config_for(unique_site, broker, tmp_path, cam, scan_seconds=0.5)
        publisher = MemoryPublisher(site=unique_site, gateway_id=config.gateway_id)
        publisher.offline = True  # no broker: frames are dropped and counted, counts are not
        await scan_into(config, publisher)
        assert publisher.health().transient_dropped == len(locations)
        assert publisher.published(contract.FrameMessage) == []
        counted = {m.location for m in publisher.published(contract.CountMessage)}
        assert counted == locations

        off = config_for(
            unique_site, broker, tmp_path, cam | {"publish_frames": False}, scan_seconds=0.5
        )
        publisher = MemoryPublisher(site=unique_site, gateway_id=off.gateway_id)
        await scan_into(off, publisher)
        assert len(publisher.published(contract.CountMessage)) == len(locations)
        assert publisher.published(contract.FrameMessage) == []
        assert publisher.health().transient_dropped == 0
