"""A row of shelf locations read by one reader: the standard scene of demos and tests.

Each location is one antenna. Every tag sits at one location, is read with ``read_prob`` per
round, and is also heard ``stray_drop_db`` weaker by the neighbouring antennas (stray reads
from the next shelf). Tags carry SGTIN-96 EPCs of a few SKUs, so counts group by GTIN.
"""

from __future__ import annotations

import random
from collections import Counter

from simulators.scene import ReaderSpec, Scene, TagSpec

# SGTIN-96 (filter 1, partition 5) of company prefix 0614141, indicator 8, item references
# 12345..12348 with the serial bits zero, and the GTIN-14 each encodes. The GTINs are written
# out (check digits by hand) so tests compare the gateway's epcpy decoding to independent truth.
SKUS = {
    0x3034257BF7194E4000000000: "80614141123458",
    0x3034257BF7194E8000000000: "80614141123465",
    0x3034257BF7194EC000000000: "80614141123472",
    0x3034257BF7194F0000000000: "80614141123489",
}
SKU_PREFIXES = tuple(SKUS)
_SERIAL_BITS = (1 << 38) - 1


def shelf_scene(
    locations: int = 4,
    tags_per_location: int = 260,
    *,
    read_prob: float = 0.98,
    stray_drop_db: float = 15.0,
    rounds_per_second: float = 10.0,
    seed: int = 7,
) -> Scene:
    """Build the scene; antenna ``i`` covers location ``i``."""
    rng = random.Random(seed)  # noqa: S311 - simulation, not cryptography
    tags: list[TagSpec] = []
    serial = 1
    for antenna in range(1, locations + 1):
        for _ in range(tags_per_location):
            epc = f"{rng.choice(SKU_PREFIXES) | serial:024x}"
            serial += 1
            rssi = rng.uniform(-62.0, -45.0)
            tags.append(TagSpec(epc=epc, antenna=antenna, rssi=rssi, read_prob=read_prob))
            tags.extend(
                TagSpec(epc=epc, antenna=near, rssi=rssi - stray_drop_db, read_prob=read_prob)
                for near in (antenna - 1, antenna + 1)
                if 1 <= near <= locations
            )
    reader = ReaderSpec(antennas=locations, rounds_per_second=rounds_per_second)
    return Scene(reader=reader, seed=seed, tags=tags)


def truth_by_antenna(scene: Scene) -> dict[int, Counter[str]]:
    """What is really at each antenna's location: SKU → quantity."""
    truth: dict[int, Counter[str]] = {a: Counter() for a in range(1, scene.reader.antennas + 1)}
    for epc, antenna in scene.best_antenna().items():
        truth[antenna][SKUS[int(epc, 16) & ~_SERIAL_BITS]] += 1
    return truth
