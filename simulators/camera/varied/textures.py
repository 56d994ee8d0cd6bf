"""Label textures for the varied renderer: procedural text, patterns, gradients and photographs.

Every texture is a float32 ``(h, w, 3)`` BGR patch in 0..255. The photographs are the sample
images scikit-image ships inside its package (no download): a random crop of one stands in for
the printed picture on a real pack, which is what breaks a detector that learned flat colours.
"""

from __future__ import annotations

import functools
import string

import cv2
import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.float32]

PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina", "colorwheel", "camera", "coins", "moon", "brick", "grass", "gravel", "clock",
    "page", "text", "cell",
)  # fmt: skip
"""scikit-image sample images that are part of its package (no download needed)."""

KINDS = ("text", "stripes", "checker", "gradient", "dots", "photo", "noise", "logo")

_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
)


@functools.cache
def photos() -> tuple[Float, ...]:
    """The sample photographs as BGR float32 images, loaded once."""
    from skimage import data  # the train/dev extra; only the varied renderer needs it

    loaded = []
    for name in PHOTOS:
        image = np.asarray(getattr(data, name)())
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        image = image[..., :3].astype(np.float32)
        if image.max() <= 1.0:
            image *= 255.0
        loaded.append(np.ascontiguousarray(image[..., ::-1]))
    return tuple(loaded)


def colour(rng: np.random.Generator, *, dark: bool = False) -> npt.NDArray[np.float32]:
    """A random saturated (or dark) BGR colour."""
    value = rng.integers(20, 90) if dark else rng.integers(70, 256)
    hsv = np.array([[[rng.integers(0, 180), rng.integers(40, 256), value]]], np.uint8)
    return np.asarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0], np.float32)


def texture(rng: np.random.Generator, h: int, w: int, kind: str | None = None) -> Float:
    """A label of ``h`` x ``w`` pixels of a random (or the given) kind."""
    h, w = max(h, 1), max(w, 1)
    kind = kind or KINDS[int(rng.integers(len(KINDS)))]
    base = colour(rng)
    ink = colour(rng, dark=bool(rng.random() < 0.6))
    patch = np.empty((h, w, 3), np.float32)
    patch[:] = base
    if kind == "text":
        _text(rng, patch, ink)
    elif kind == "stripes":
        period = int(rng.integers(3, 12))
        horizontal = rng.random() < 0.5
        index = np.arange(h if horizontal else w)
        on = (index % period) < period // 2
        if horizontal:
            patch[on] = ink
        else:
            patch[:, on] = ink
    elif kind == "checker":
        step = int(rng.integers(3, 10))
        ys, xs = np.mgrid[0:h, 0:w]
        patch[((ys // step + xs // step) % 2) == 1] = ink
    elif kind == "gradient":
        t = np.linspace(0.0, 1.0, w if rng.random() < 0.5 else h, dtype=np.float32)
        ramp = t[None, :, None] if len(t) == w else t[:, None, None]
        patch[:] = base * (1 - ramp) + ink * ramp
    elif kind == "dots":
        for _ in range(int(rng.integers(1, 6))):
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            radius = int(rng.integers(1, max(2, min(h, w) // 3)))
            cv2.circle(patch, centre, radius, ink.tolist(), -1)
    elif kind == "photo":
        patch[:] = _photo_crop(rng, h, w)
    elif kind == "noise":
        grain = rng.normal(0.0, float(rng.uniform(10, 40)), (h, w, 1)).astype(np.float32)
        patch += cv2.GaussianBlur(grain, (0, 0), float(rng.uniform(0.5, 2.0)))[..., None]
    else:  # a logo: a bold shape and a word
        cx, cy = w // 2, h // 2
        axes = (max(1, int(w * rng.uniform(0.2, 0.45))), max(1, int(h * rng.uniform(0.15, 0.4))))
        cv2.ellipse(patch, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, ink.tolist(), -1)
        _text(rng, patch, base * 0.3 + 180)
    return np.clip(patch, 0, 255)


def _text(rng: np.random.Generator, patch: Float, ink: npt.NDArray[np.float32]) -> None:
    """Random words in place (OpenCV writes text on 8-bit images only)."""
    h, w = patch.shape[:2]
    letters = list(string.ascii_uppercase + string.digits + "  &-%")
    board = np.clip(patch, 0, 255).astype(np.uint8)
    lines = int(rng.integers(1, 4))
    for line in range(lines):
        word = "".join(rng.choice(letters, size=int(rng.integers(2, 9))))
        font = _FONTS[int(rng.integers(len(_FONTS)))]
        scale = float(rng.uniform(0.2, 0.6)) * max(h, 12) / 30
        y = int((line + 1) * h / (lines + 0.5))
        x = int(rng.integers(-w // 4, max(1, w // 3)))
        thickness = int(rng.integers(1, 3))
        cv2.putText(board, word, (x, y), font, scale, ink.tolist(), thickness, cv2.LINE_AA)
    patch[:] = board


def _photo_crop(rng: np.random.Generator, h: int, w: int) -> Float:
    photo = photos()[int(rng.integers(len(PHOTOS)))]
    ph, pw = photo.shape[:2]
    zoom = float(rng.uniform(0.15, 0.8))
    ch, cw = max(4, int(ph * zoom)), max(4, int(pw * zoom * w / max(h, 1)))
    ch, cw = min(ch, ph), min(cw, pw)
    y, x = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    crop = photo[y : y + ch, x : x + cw]
    tint = rng.uniform(0.7, 1.3, 3).astype(np.float32)
    return np.asarray(cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA), np.float32) * tint


def background(rng: np.random.Generator, h: int, w: int) -> Float:
    """A wall, a back panel or a photograph behind the shelf."""
    roll = rng.random()
    if roll < 0.3:
        dimmed = _photo_crop(rng, h, w) * np.float32(rng.uniform(0.3, 0.8))
        return np.asarray(np.clip(dimmed, 0, 255), np.float32)
    plain = np.empty((h, w, 3), np.float32)
    plain[:] = colour(rng, dark=bool(rng.random() < 0.5)) * float(rng.uniform(0.5, 1.0))
    if roll < 0.55:  # a pegboard
        step = int(rng.integers(12, 30))
        for y in range(step // 2, h, step):
            for x in range(step // 2, w, step):
                cv2.circle(plain, (x, y), max(1, step // 8), (20.0, 20.0, 20.0), -1)
    elif roll < 0.75:  # a textured wall
        grain = rng.normal(0.0, 18.0, (h // 4 + 1, w // 4 + 1)).astype(np.float32)
        plain += cv2.resize(grain, (w, h))[..., None]
    return np.clip(plain, 0, 255)
