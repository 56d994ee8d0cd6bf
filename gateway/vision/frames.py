"""Saved frames: how they are named, and a bounded folder of them (a camera's ``collect_dir``).

:class:`FrameKeeper` is the folder behind a camera's ``collect_dir``: during scans it keeps
the frames whose count confidence was low, at most ``limit`` files, the oldest removed first.
``edgecount models collect`` names its frames the same way.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2

from drivers.camera.frame import Frame

_SAVED = re.compile(r"^.+-\d{8}T\d{6}\.\d{3}Z-\d{6}\.jpg$")


def frame_name(frame: Frame) -> str:
    """``CAMERA-YYYYMMDDTHHMMSS.mmmZ-SEQ.jpg``: sorts by time, unique per camera and frame."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(frame.t))
    millis = int((frame.t % 1) * 1000)
    return f"{frame.camera}-{stamp}.{millis:03d}Z-{frame.seq:06d}.jpg"


def save_frame(folder: Path, frame: Frame) -> Path:
    """Write ``frame`` as a JPEG into ``folder`` (made if needed); returns its path.

    Raises:
        OSError: The folder cannot be made or the file written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / frame_name(frame)
    if not cv2.imwrite(str(path), frame.image):
        raise OSError(f"{path}: OpenCV could not write the JPEG")
    return path


class FrameKeeper:
    """A folder that keeps at most ``limit`` saved frames, removing the oldest first.

    Only files named as :func:`frame_name` names them count and are removed; anything else
    in the folder is left alone. So the folder holds at most ``limit`` frames of this kind;
    its size is bounded by ``limit`` times the largest JPEG of the camera.

    Args:
        folder: Where frames go (made on the first save).
        limit: Most frames kept.
    """

    def __init__(self, folder: Path, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.folder = folder
        self.limit = limit
        self.saved = 0
        """Frames saved by this keeper."""
        self.removed = 0
        """Older frames removed to stay within ``limit``."""

    def keep(self, frame: Frame) -> Path:
        """Save ``frame``, then remove the oldest frames beyond ``limit``.

        Raises:
            OSError: Writing failed (nothing is removed then).
        """
        path = save_frame(self.folder, frame)
        self.saved += 1
        frames = sorted(
            (p for p in self.folder.iterdir() if _SAVED.match(p.name)),
            key=lambda p: (p.stat().st_mtime_ns, p.name),
        )
        for old in frames[: max(len(frames) - self.limit, 0)]:
            old.unlink(missing_ok=True)
            self.removed += 1
        return path
