"""Robot poses: the ``edgecount.pose/1`` payload, ``assign: pose`` configuration, and the
:class:`~gateway.mobile.PoseAssigner` and pose-mode scan without a broker.

The read stream is the physical model of :mod:`tests.gateway.mobile.test_mobile_assign`; its poses
(one per inventory round, every 50 ms) are thinned to 10 per second as a robot sends them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edgecount import contract
from edgecount.contract import ContractError
from edgecount.pose import parse_pose, pose_payload, pose_topic
from edgecount.yamlcfg import ConfigError
from gateway.config import GatewayConfig, load_gateway_config
from gateway.mobile import PoseAssigner
from gateway.mobile_scan import MobileTally
from gateway.publisher import MemoryPublisher
from gateway.scan import ScanResult, create_zone_scan
from tests.gateway.mobile.test_mobile_assign import BAYS, REFS, WIDTH, Run, expected, simulate
from tests.gateway.mobile.test_mobile_scan import (
    SPEEDUP,
    ReplayReader,
    config,
    published_counts,
)

EXTENTS = {bay: (i * WIDTH, (i + 1) * WIDTH) for i, bay in enumerate(BAYS)}
TOPIC = "edgecount/v1/dc1/pose/cart-1"


# --- payload --------------------------------------------------------------------------------


def test_pose_payload_topic_and_parse() -> None:
    payload = pose_payload(robot="cart-1", x=3.42, at=1714528812.3, aisle="A-01", heading=0)
    assert payload == {
        "schema": "edgecount.pose/1",
        "robot": "cart-1",
        "at": "2024-05-01T02:00:12.300Z",
        "x": 3.42,
        "aisle": "A-01",
        "heading": 0,
    }
    assert pose_topic("dc1", "cart-1") == TOPIC
    info = contract.parse_topic(TOPIC)
    assert (info.kind, info.params, info.schema) == ("pose", {"robot": "cart-1"}, contract.POSE)
    pose = parse_pose(contract.encode(payload), topic=TOPIC)
    assert (pose.robot, pose.x) == ("cart-1", 3.42)
    assert pose.t == pytest.approx(1714528812.3)
    assert pose_payload(robot="r", x=0)["at"].endswith("Z")
    with pytest.raises(ContractError):
        pose_topic("dc1", "a/b")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "empty payload"),
        (b"{not json", "not valid JSON"),
        (b'{"schema": "edgecount.pose/1", "robot": "cart-1", "at": "2024-05-01T02:00:00Z"}', "x"),
        (
            b'{"schema": "edgecount.pose/1", "robot": "cart-1", "at": "2024-05-01T02:00:00Z",'
            b' "x": "far"}',
            "x",
        ),
        (
            b'{"schema": "edgecount.pose/1", "robot": "cart-1", "at": "yesterday", "x": 1}',
            "at",
        ),
        (
            b'{"schema": "edgecount.pose/1", "robot": "cart-1", "at": "2024-05-01T02:00:00Z",'
            b' "x": 1, "speed": 2}',
            "speed",
        ),
        (
            b'{"schema": "edgecount.pose/1", "robot": "cart-2", "at": "2024-05-01T02:00:00Z",'
            b' "x": 1}',
            "topic",
        ),
        (
            contract.encode(contract.status_payload(gateway="g", site="dc1", state="online")),
            "carries",
        ),
    ],
)
def test_malformed_poses_are_rejected_with_a_reason(raw: bytes, words: str) -> None:
    with pytest.raises(ContractError, match=words):
        parse_pose(raw, topic=TOPIC)


# --- configuration --------------------------------------------------------------------------


def gateway(**mobile: Any) -> GatewayConfig:
    return config(mobile={"references": REFS, "window_seconds": 0.05, **mobile})


def pose_config(**overrides: Any) -> GatewayConfig:
    extents = {bay: list(extent) for bay, extent in EXTENTS.items()}
    values: dict[str, Any] = {"assign": "pose", "robot": "cart-1", "extents": extents}
    return gateway(**{**values, **overrides})


def test_pose_configuration() -> None:
    mobile = pose_config().zones["A"].mobile
    assert mobile is not None
    assert (mobile.assign, mobile.robot, mobile.margin_metres) == ("pose", "cart-1", 1.0)
    assert mobile.extents == EXTENTS
    default = gateway().zones["A"].mobile
    assert default is not None
    assert default.assign == "reference"
    problems: dict[str, dict[str, Any]] = {
        "needs robot and extents": {"robot": None},
        "extents miss referenced locations: A-01-06": {
            "extents": {bay: EXTENTS[bay] for bay in BAYS[:-1]}
        },
        "no reference tag marks: B-9": {"extents": {**EXTENTS, "B-9": (9.0, 10.0)}},
        "x0 must be below x1": {"extents": {**EXTENTS, BAYS[0]: (1.0, 0.0)}},
        "overlap": {"extents": {**EXTENTS, BAYS[1]: (0.5, 2.0)}},
        "only with assign: pose": {"assign": "reference"},
    }
    for words, overrides in problems.items():
        with pytest.raises(ValidationError, match=words):
            pose_config(**overrides)


def test_pose_configuration_errors_carry_file_line_and_key(tmp_path: Path) -> None:
    refs = "\n".join(f'        "{epc}": {bay}' for epc, bay in REFS.items())
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "site: dc1\n"
        "gateway_id: gw-cart\n"
        "readers:\n"
        "  - {type: serial, name: cart, url: 'socket://cart:4001'}\n"
        "zones:\n"
        "  A:\n"
        "    readers: [cart]\n"
        "    mobile:\n"
        "      assign: pose\n"
        "      extents: {A-01-01: [1.0, 0.5]}\n"
        "      references:\n"
        f"{refs}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_gateway_config(path)
    text = str(raised.value)
    assert "gateway.yaml:10: zones.A.mobile.extents" in text
    assert "x0 must be below x1" in text
    path.write_text(path.read_text().replace("[1.0, 0.5]", "[0.0, 1.0]"))
    with pytest.raises(ConfigError) as raised:
        load_gateway_config(path)
    assert "gateway.yaml:8: zones.A.mobile" in str(raised.value)
    assert "needs robot and extents" in str(raised.value)


# --- the assigner ---------------------------------------------------------------------------


def feed(run: Run, assigner: PoseAssigner, *, poses: bool = True) -> list[str]:
    """Feed reads and every other pose (10 Hz), closing bays as it goes; the closing order."""
    order: list[str] = []
    for n, batch in enumerate(run.batches):
        if poses and n % 2 == 0:
            assigner.add_pose(*run.poses[n])
        assigner.add(batch)
        if n % 5 == 0:
            order += assigner.closed_bays(run.poses[n][0])
    return order


def test_pose_assigner_places_boundary_items_and_closes_bays_in_passing_order() -> None:
    for seed in range(4):
        run = simulate(seed)  # items as close as 15 cm to a bay edge
        assigner = PoseAssigner(REFS, EXTENTS, bays=BAYS)
        order = feed(run, assigner)
        assert order == BAYS, "every bay closed during the run, in the order passed"
        assert assigner.placements() == run.truth
        counts = assigner.finish()
        assert not assigner.late
        for bay in BAYS:
            assert counts[bay].complete
            assert counts[bay].skus == expected(run.truth, bay)


def test_poses_out_of_order_give_the_same_answer() -> None:
    run = simulate(5)
    in_order = PoseAssigner(REFS, EXTENTS, bays=BAYS)
    feed(run, in_order)
    shuffled = PoseAssigner(REFS, EXTENTS, bays=BAYS)
    for batch in run.batches:
        shuffled.add(batch)
    poses = run.poses[::2]
    for pair in range(0, len(poses) - 1, 2):
        shuffled.add_pose(*poses[pair + 1])
        shuffled.add_pose(*poses[pair])
    if len(poses) % 2:
        shuffled.add_pose(*poses[-1])
    assert shuffled.poses == in_order.poses
    assert shuffled.placements() == in_order.placements() == run.truth


def test_no_pose_means_no_bay_is_complete() -> None:
    run = simulate(6)
    assigner = PoseAssigner(REFS, EXTENTS, bays=BAYS)
    assert feed(run, assigner, poses=False) == []
    counts = assigner.finish()
    assert sorted(counts) == BAYS
    assert not any(count.complete for count in counts.values())


def test_a_stopped_robot_leaves_the_bays_it_did_not_cover_incomplete() -> None:
    run = simulate(7, stop_at=3.5)  # in the middle of the fourth bay
    assigner = PoseAssigner(REFS, EXTENTS, bays=BAYS)
    closed = feed(run, assigner)
    assert closed == BAYS[:2]  # the third bay is covered, but the robot is not 1 m past it
    counts = assigner.finish()
    assert [bay for bay in BAYS if counts[bay].complete] == BAYS[:3]
    for bay in BAYS[:3]:
        assert counts[bay].skus == expected(run.truth, bay)


# --- the scan, in memory --------------------------------------------------------------------


class PoseReplayReader(ReplayReader):
    """Replays the run and, like the robot, its pose every other round through the publisher."""

    def __init__(self, run: Run, publisher: MemoryPublisher, *, poses: bool = True) -> None:
        super().__init__(run, publisher)
        self.with_poses = poses
        self.malformed_sent = asyncio.Event()

    async def _replay(self) -> None:
        origin, first = time.time(), self.run.poses[0][0]
        for n, ((sim_t, x), batch) in enumerate(zip(self.run.poses, self.run.batches, strict=True)):
            at = origin + (sim_t - first) / SPEEDUP
            await asyncio.sleep(max(0.0, at - time.time()))
            if self.with_poses and n % 2 == 0:
                payload = pose_payload(robot="cart-1", x=x, at=at)
                self.publisher.deliver(TOPIC, json.dumps(payload).encode())
            if n == len(self.run.batches) // 2:
                self.publisher.deliver(TOPIC, b'{"schema": "edgecount.pose/1"}')
                self.malformed_sent.set()
            self.queue.put_nowait([dataclasses.replace(read, t=at) for read in batch])


async def pose_scan(run: Run, *, poses: bool = True) -> tuple[ScanResult, MobileTally, Any]:
    publisher = MemoryPublisher(site="dc1", gateway_id="gw-cart")
    reader = PoseReplayReader(run, publisher, poses=poses)
    zone_scan = create_zone_scan(pose_config(), "A", {"cart": reader}, publisher)
    tally = zone_scan.tally
    assert isinstance(tally, MobileTally)
    result = await zone_scan.run()
    assert reader.malformed_sent.is_set()
    assert publisher.deliver(TOPIC, b"{}") == 1, "subscribed once; nobody listens after the scan"
    return result, tally, publisher


async def test_a_pose_scan_publishes_bays_as_the_robot_passes_and_survives_a_bad_pose() -> None:
    run = simulate(8)
    result, tally, publisher = await pose_scan(run)
    assert tally.poses_rejected == 1
    assert tally.poses > 100
    assert result.complete
    counts = published_counts(publisher)
    assert [count.location for _, count in counts] == BAYS
    for _, count in counts:
        assert count.complete is True
        assert count.quantities == expected(run.truth, count.location)
    scan_end = publisher.published(contract.ScanMessage)[-1]
    assert scan_end.state is contract.ScanState.COMPLETED


async def test_a_pose_scan_without_poses_publishes_every_bay_incomplete() -> None:
    result, tally, publisher = await pose_scan(simulate(9), poses=False)
    assert tally.poses == 0
    assert not result.complete
    counts = published_counts(publisher)
    assert sorted(count.location for _, count in counts) == BAYS
    assert not any(count.complete for _, count in counts)
    scan_end = publisher.published(contract.ScanMessage)[-1]
    assert list(scan_end.incomplete_locations) == BAYS
