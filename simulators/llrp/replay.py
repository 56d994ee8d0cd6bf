"""Replay files: recorded LLRP byte streams the simulator streams as fast as TCP allows.

Format: raw LLRP messages concatenated back to back, exactly as they travel on the wire
(a capture of the reader-to-client direction is one). Only RO_ACCESS_REPORT messages are
replayed; anything else in the file is skipped. :func:`write_replay` makes one from a scene.
"""

from __future__ import annotations

from pathlib import Path

from drivers.llrp.codec import (
    FrameBuffer,
    LLRPFramingError,
    MessageType,
    ReportEncoder,
    TagReportContentSelector,
)
from simulators.llrp.inventory import ReportBuffer, TagField
from simulators.scene import Scene

#: The selector used by :func:`write_replay` (what the gateway driver asks for).
REPLAY_SELECTOR = TagReportContentSelector(
    enable_rospec_id=True,
    enable_antenna_id=True,
    enable_peak_rssi=True,
    enable_first_seen=True,
    enable_last_seen=True,
    enable_tag_seen_count=True,
)


class ReplayError(ValueError):
    """The replay file is not a sequence of LLRP messages."""


def load_replay(path: str | Path, max_message: int = 64 * 1024 * 1024) -> list[bytes]:
    """Read a replay file and return its RO_ACCESS_REPORT messages.

    Raises:
        ReplayError: if the file cannot be split into LLRP messages, ends with a partial
            message, or holds no RO_ACCESS_REPORT.
        OSError: if it cannot be read.
    """
    data = Path(path).read_bytes()
    frames = FrameBuffer(max_message)
    try:
        found = frames.feed(data)
    except LLRPFramingError as exc:
        raise ReplayError(f"{path}: not LLRP at message {frames.frames + 1}: {exc}") from exc
    if frames.pending:
        raise ReplayError(f"{path}: ends with a partial message ({frames.pending} bytes)")
    reports = [f.data for f in found if f.msg_type == MessageType.RO_ACCESS_REPORT]
    if not reports:
        raise ReplayError(f"{path}: no RO_ACCESS_REPORT messages")
    return reports


def make_replay(
    scene: Scene, reports: int, tags_per_report: int = 100, rospec_id: int = 1
) -> bytes:
    """Simulate inventory rounds on ``scene`` and encode them as RO_ACCESS_REPORT messages.

    Args:
        scene: The scene to simulate.
        reports: Number of messages.
        tags_per_report: TagReportData per message (the last rounds' reads, accumulated).
        rospec_id: ROSpecID to put in the reports.
    """
    field = TagField(scene)
    encoder = ReportEncoder(REPLAY_SELECTOR, rospec_id=rospec_id)
    buffer = ReportBuffer()
    antennas = sorted({tag.antenna for tag in scene.tags}) or [1]
    out: list[bytes] = []
    if not any(tag.read_prob > 0 for tag in scene.tags):
        raise ValueError("the scene produces no reads")
    stamp = 1_700_000_000_000_000
    rounds = 0
    while len(out) < reports:
        for antenna in antennas:
            buffer.add(antenna, field.read_round(antenna), stamp)
        stamp += 100_000
        rounds += 1
        # Small scenes never fill a report: send what ten rounds gathered.
        while len(out) < reports and (
            len(buffer) >= tags_per_report or (rounds % 10 == 0 and len(buffer))
        ):
            out.append(encoder.encode(len(out) + 1, buffer.take(tags_per_report)))
    return b"".join(out)


def write_replay(path: str | Path, scene: Scene, reports: int, tags_per_report: int = 100) -> int:
    """Write :func:`make_replay` output to ``path``; returns the number of bytes."""
    data = make_replay(scene, reports, tags_per_report)
    Path(path).write_bytes(data)
    return len(data)
