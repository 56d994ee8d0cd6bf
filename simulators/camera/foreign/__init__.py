"""Foreign shelves: evaluation renderers that share no drawing code with the training renderer.

The training renderer (:mod:`simulators.camera.render`) draws rectangles on pallet racking. A
detector that only ever saw it can learn its look rather than what an item is. These renderers
were written separately, with other primitives, other products and other shelves, to measure
that: a count that holds here generalises; one that does not, learned the renderer.

* ``wood`` (:mod:`.wood`): bottles with necks and shoulders, cans and gable-top cartons on
  wooden shelving, under perspective, a lighting gradient and blur.
* ``wire`` (:mod:`.wire`): jars, stand-up pouches and cereal boxes on metal or wire shelving,
  with price tags, occluders, strong JPEG artefacts and items cut by the frame edge.

Each returns the same :class:`~simulators.camera.render.ShelfImage` truth container as the
training renderer (only that data class is shared), so the one scorer in
:mod:`models.evaluate` counts every set the same way. **Labelling rule** (both renderers):
one box per item whatever its shape, the tightest box around its whole silhouette (neck, cap,
lid and gable included) as drawn in the frame; an occluder in front does not shrink it; an
item cut by the frame edge gets the box of its part inside the frame when at least half its
width is inside, and no box otherwise; such edge items stand outside every location.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from simulators.camera.dataset import Progress, write_splits
from simulators.camera.foreign import wire, wood
from simulators.camera.foreign.scene import ForeignShelf

Renderer = Callable[[np.random.Generator], ForeignShelf]

RENDERERS: dict[str, Renderer] = {"wood": wood.render, "wire": wire.render}
"""Every foreign renderer by name."""

HELD_OUT_SEED = 5000
"""Seed of the foreign held-out sets (training uses 0, the own held-out set 1000)."""


def foreign_held_out(
    name: str, count: int, seed: int = HELD_OUT_SEED, *, stream: int = 0
) -> Iterator[ForeignShelf]:
    """``count`` shelves of the foreign renderer ``name``, the same for the same seed.

    Args:
        name: One of :data:`RENDERERS`.
        count: Images to render.
        seed: The set's seed.
        stream: 0 for the held-out set; another number gives an independent set of the same
            seed (the training split of :func:`write_foreign` is stream 1).

    Raises:
        KeyError: ``name`` is not one of :data:`RENDERERS`.
    """
    render = RENDERERS[name]
    rng = np.random.default_rng(seed if stream == 0 else [seed, stream])
    for _ in range(count):
        yield render(rng)


def write_foreign(
    out: Path,
    name: str,
    *,
    train: int,
    val: int,
    seed: int = HELD_OUT_SEED,
    progress: Progress | None = None,
) -> Path:
    """Write a foreign set in the layout of :mod:`simulators.camera.dataset`; returns data.yaml.

    The ``val`` split is exactly the held-out set :func:`foreign_held_out` gives for ``seed``
    (what ``bench/vision.py`` scores); ``train`` is an independent pool of the same renderer,
    for fine-tuning experiments.
    """
    splits = (
        ("train", (scene.shelf for scene in foreign_held_out(name, train, seed, stream=1))),
        ("val", (scene.shelf for scene in foreign_held_out(name, val, seed))),
    )
    return write_splits(out, splits, train + val, progress)
