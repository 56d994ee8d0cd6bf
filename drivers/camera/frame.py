"""The camera driver's observation: one decoded image with where and when it was taken."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(slots=True)
class Frame:
    """One frame from one camera. Treat as immutable.

    Attributes:
        camera: Name of the camera (from the configuration).
        t: When the frame was captured, UNIX seconds (gateway clock).
        image: The picture, ``uint8`` BGR, shape (height, width, 3).
        seq: Number of the frame from this camera since the driver started, 1-based.
        pose: Where the camera stood when the source reports it (the simulator's pan offset
            in ``X-Edgecount-Pose``); None when unknown.
    """

    camera: str
    t: float
    image: npt.NDArray[np.uint8]
    seq: int
    pose: float | None = None
