"""What a detector returns for one image: boxes, scores and classes, as arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Detections:
    """Detections in one image, in that image's pixel coordinates.

    Attributes:
        boxes: (N, 4) float32 ``x1, y1, x2, y2``.
        scores: (N,) float32 confidence in 0..1.
        classes: (N,) int64 class index (0 = item for the shelf detector).
    """

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    classes: npt.NDArray[np.int64]

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        )

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def select(self, mask: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Detections:
        """The detections picked by a boolean mask or an index array."""
        return Detections(self.boxes[mask], self.scores[mask], self.classes[mask])

    def bottom_centres(self) -> npt.NDArray[np.float32]:
        """(N, 2) the middle of each box's bottom edge: where an item stands on the shelf."""
        return np.stack(
            [(self.boxes[:, 0] + self.boxes[:, 2]) / 2, self.boxes[:, 3]], axis=1
        ).astype(np.float32)
