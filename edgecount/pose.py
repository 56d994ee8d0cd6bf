"""Robot poses on MQTT: ``edgecount/v1/{site}/pose/{robot}``, schema ``edgecount.pose/1``.

A robot (cart, drone) that carries a reader along an aisle publishes where it is, about ten
times a second, with QoS 0 and not retained: poses are a stream, and the gateway interpolates
over a lost one (:func:`gateway.mobile.position_at`). A mobile zone configured with
``assign: pose`` places each item tag at the position the reader had when it read the tag
most strongly.

``at`` is the robot's clock, and the gateway matches it to the time stamps of the tag reads
(UNIX seconds: the gateway's clock for serial modules, the reader's for LLRP readers), so
robot, gateway and readers must be kept in step by NTP; 10 ms of skew at 1 m/s moves an item
by 1 cm.

Example:
    >>> message = pose_message(robot="cart-1", at=0.0, x=1.25)
    >>> message.at, pose_topic("dc1", "cart-1")
    ('1970-01-01T00:00:00.000Z', 'edgecount/v1/dc1/pose/cart-1')
    >>> parse_pose(contract.encode(message.to_payload()), topic="edgecount/v1/dc1/pose/cart-1").t
    0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edgecount import contract

__all__ = ["POSE", "Pose", "parse_pose", "pose_message", "pose_payload", "pose_topic"]

POSE = contract.POSE
QOS = 0
"""Poses are published with QoS 0 and not retained."""


def pose_topic(site: str, robot: str) -> str:
    """``edgecount/v1/{site}/pose/{robot}``."""
    return contract.site_root(site) + "pose/" + contract.check_segment(robot, "robot")


def pose_message(
    *,
    robot: str,
    x: float,
    at: str | datetime | float | None = None,
    aisle: str | None = None,
    y: float | None = None,
    heading: float | None = None,
) -> contract.PoseMessage:
    """A validated ``edgecount.pose/1`` message.

    Args:
        robot: The robot's id (the topic's last level).
        x: Position of the reader along the aisle, metres.
        at: When it was there: an ISO-8601 UTC string, an aware datetime or UNIX seconds;
            now by default.
        aisle: The aisle it is in, when known.
        y: Position across the aisle, metres.
        heading: Direction of travel, degrees in [0, 360) from the aisle's +x direction.

    Raises:
        contract.ContractError: The message would not be valid (a bad robot id, a heading
            out of range, ...).
    """
    when = contract.now_iso() if at is None else at if isinstance(at, str) else contract.to_iso(at)
    message = contract.PoseMessage(
        robot=robot, at=when, x=float(x), aisle=aisle, y=y, heading=heading
    )
    contract.validate(message.to_payload())
    return message


def pose_payload(
    *,
    robot: str,
    x: float,
    at: str | datetime | float | None = None,
    aisle: str | None = None,
    y: float | None = None,
    heading: float | None = None,
) -> dict[str, Any]:
    """The payload of :func:`pose_message` (same arguments), validated."""
    message = pose_message(robot=robot, x=x, at=at, aisle=aisle, y=y, heading=heading)
    return message.to_payload()


@dataclass(frozen=True, slots=True)
class Pose:
    """A received pose.

    Attributes:
        robot: The robot's id.
        t: When, UNIX seconds (the clock of :attr:`drivers.base.TagRead.t`).
        x: Position along the aisle, metres.
    """

    robot: str
    t: float
    x: float


def parse_pose(raw: bytes, *, topic: str | None = None) -> Pose:
    """Decode and validate a pose message.

    Args:
        raw: The MQTT payload.
        topic: The topic it came on; when given, it must be a pose topic of the same robot.

    Raises:
        contract.ContractError: Not a valid ``edgecount.pose/1`` payload (for this topic).
    """
    message = contract.message_from_payload(contract.decode(raw, topic=topic))
    if not isinstance(message, contract.PoseMessage):
        raise contract.ContractError(f"expected {POSE}, got {message.SCHEMA!r}")
    moment = contract.parse_iso(message.at)
    return Pose(message.robot, moment.timestamp(), float(message.x))
