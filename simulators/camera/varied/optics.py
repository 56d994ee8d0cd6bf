"""What the camera does to the varied scene: view, lens, light, blur, noise and compression.

The scene is painted on a canvas larger than the frame. :class:`View` maps it into the frame:
a homography (where the camera stands: shift, zoom, perspective) followed by radial lens
distortion. Images go through it with :func:`cv2.remap` (each frame pixel looks up its scene
point); outlines go the other way, point by point, so an item's box is the bounds of its warped
outline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from simulators.camera.varied.textures import Float

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class View:
    """Scene to frame: ``frame = distort(H @ scene)``.

    Attributes:
        homography: 3x3 scene -> undistorted frame.
        k: Radial distortion, ``r_undistorted = r (1 + k r^2)`` with ``r`` in units of the
            half-diagonal (negative: barrel, what wide lenses show; positive: pincushion).
        size: Frame ``(width, height)``.
    """

    homography: npt.NDArray[np.float64]
    k: float
    size: tuple[int, int]

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        window: tuple[float, float],
        size: tuple[int, int],
        tilt: float,
        distortion: float,
    ) -> View:
        """The frame looks at the scene window whose top-left is ``window``, with a random
        perspective (corner shifts up to ``tilt`` of the frame size), zoom and distortion."""
        w, h = size
        ox, oy = window
        zoom = float(rng.uniform(0.94, 1.06))
        cx, cy = ox + w / 2, oy + h / 2
        src = np.array(
            [[cx + (x - w / 2) / zoom, cy + (y - h / 2) / zoom] for x, y in
             ((0, 0), (w, 0), (w, h), (0, h))], np.float32,
        )  # fmt: skip
        dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        dst += rng.uniform(-tilt, tilt, (4, 2)).astype(np.float32) * np.array([w, h], np.float32)
        matrix = cv2.getPerspectiveTransform(src, dst).astype(np.float64)
        return cls(matrix, float(rng.uniform(-distortion, distortion * 0.5)), size)

    def _radius_scale(self) -> float:
        w, h = self.size
        return math.hypot(w / 2, h / 2)

    def points(self, scene: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """Frame positions of ``(N, 2)`` scene points."""
        flat = np.asarray(scene, np.float64).reshape(-1, 1, 2)
        p = cv2.perspectiveTransform(flat, self.homography).reshape(-1, 2)
        if self.k == 0.0:
            return p.astype(np.float32)
        w, h = self.size
        centre = np.array([w / 2, h / 2])
        d = (p - centre) / self._radius_scale()
        f = d.copy()
        for _ in range(8):  # solve d = f (1 + k |f|^2) for f
            f = d / (1.0 + self.k * np.sum(f * f, axis=1, keepdims=True))
        return np.asarray(centre + f * self._radius_scale(), np.float32)

    def image(self, scene: Float) -> Float:
        """The frame the camera sees of ``scene``."""
        w, h = self.size
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        centre = np.array([w / 2, h / 2])
        f = (np.stack([xs, ys], axis=-1) - centre) / self._radius_scale()
        d = f * (1.0 + self.k * np.sum(f * f, axis=-1, keepdims=True))
        p = centre + d * self._radius_scale()
        inverse = np.linalg.inv(self.homography)
        flat = cv2.perspectiveTransform(p.reshape(-1, 1, 2), inverse).reshape(h, w, 2)
        maps = flat.astype(np.float32)
        return np.asarray(
            cv2.remap(scene, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REFLECT),
            np.float32,
        )  # fmt: skip


def light(rng: np.random.Generator, image: Float, gain: tuple[float, float]) -> None:
    """Overall gain, a gradient, spotlights and vignetting, in place."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs, ys = xs / w * 2 - 1, ys / h * 2 - 1
    angle = float(rng.uniform(0, 2 * math.pi))
    field = float(rng.uniform(*gain)) * (
        1.0 + float(rng.uniform(0, 0.35)) * (math.cos(angle) * xs + math.sin(angle) * ys)
    )
    for _ in range(int(rng.integers(0, 3))):  # ceiling lights
        cx, cy = float(rng.uniform(-1, 1)), float(rng.uniform(-1.2, 0.2))
        spread = float(rng.uniform(0.2, 0.6))
        field += float(rng.uniform(0.1, 0.45)) * np.exp(
            -((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * spread**2)
        )
    if rng.random() < 0.5:
        field *= 1.0 - float(rng.uniform(0.1, 0.35)) * (xs**2 + ys**2) / 2
    image *= field[..., None]
    image += rng.uniform(-10, 10, 3).astype(np.float32)  # white balance


def shoot(
    rng: np.random.Generator, image: Float, *, blur: float, noise: float, jpeg: tuple[int, int]
) -> Image:
    """Blur (motion in any direction, or defocus), sensor noise and JPEG compression."""
    if rng.random() < blur:
        if rng.random() < 0.5:
            length = int(rng.integers(3, 12))
            kernel = np.zeros((length, length), np.float32)
            kernel[length // 2, :] = 1.0
            rotation = cv2.getRotationMatrix2D(
                (length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0
            )
            kernel = np.asarray(cv2.warpAffine(kernel, rotation, (length, length)), np.float32)
            kernel /= max(float(kernel.sum()), 1e-6)
            image = np.asarray(cv2.filter2D(image, -1, kernel), np.float32)
        else:
            sigma = float(rng.uniform(0.6, 2.0))
            image = np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), np.float32)
    if noise > 0:
        sigma = float(rng.uniform(0, noise))
        image = image + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    frame: Image = np.clip(image, 0, 255).astype(np.uint8)
    quality = int(rng.integers(jpeg[0], jpeg[1] + 1))
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if ok:
        frame = np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR), np.uint8)
    return frame
