"""Declarative scenes for the device simulators: which tags a reader sees, where, how well.

A scene file is YAML or JSON (JSON is valid YAML; both go through ruamel.yaml so every error
names the file, the line and the key)::

    reader: {antennas: 4, rounds_per_second: 10}
    rssi_sd: 2.0
    seed: 42
    tags:
      - {epc: 3034257bf7194e4000003039, antenna: 1, rssi: -52.0, read_prob: 0.98}
      - {epc: 3034257bf7194e4000003039, antenna: 2, rssi: -71.0, read_prob: 0.30}  # stray

A tag listed under several antennas is visible to each of them. See ``docs/scene.md``.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from edgecount.yamlcfg import ConfigError, load_model

__all__ = [
    "ConfigError",
    "ReaderSpec",
    "Scene",
    "TagSpec",
    "generate_scene",
    "load_scene",
    "scene_json_schema",
]

_EPC = re.compile(r"([0-9A-Fa-f]{4}){1,31}")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")

#: EPC of the design's SGTIN-96 test vector (GTIN 80614141123458), serial 0.
SGTIN_BASE = 0x3034257BF7194E4000000000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReaderSpec(_Strict):
    """The simulated reader: identity, antennas and pace."""

    name: str = Field(default="sim-reader", description="Reader name (logs, identification).")
    model: str = Field(
        default="edgecount-sim", description="Model name reported in the firmware text."
    )
    manufacturer: int = Field(
        default=0,
        ge=0,
        le=0xFFFFFFFF,
        description="IANA enterprise number reported as manufacturer.",
    )
    model_number: int = Field(default=1, ge=0, le=0xFFFFFFFF, description="Vendor model number.")
    firmware: str = Field(default="0.1", description="Firmware version text.")
    mac: str = Field(
        default="02:00:00:00:00:01",
        description="Reader MAC address (LLRP Identification), like 02:00:00:00:00:01.",
        json_schema_extra={"pattern": "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"},
    )

    @field_validator("mac")
    @classmethod
    def _check_mac(cls, value: str) -> str:
        if not _MAC.fullmatch(value):
            raise ValueError(f"{value!r} is not a MAC address like 02:00:00:00:00:01")
        return value.lower()

    antennas: int = Field(default=4, ge=1, le=32, description="Number of antenna ports.")
    rounds_per_second: float = Field(
        default=10.0,
        gt=0,
        le=1000,
        description="Inventory rounds per second on each active antenna.",
    )
    max_reads_per_second: float | None = Field(
        default=None,
        gt=0,
        description="Cap on tag reads per second over all antennas (none if absent).",
    )
    min_power_dbm: float = Field(
        default=10.0, description="Lowest transmit power in the power table."
    )
    max_power_dbm: float = Field(
        default=32.5, description="Highest transmit power in the power table."
    )
    power_step_db: float = Field(
        default=0.25, gt=0, description="Step of the transmit power table."
    )


class TagSpec(_Strict):
    """One tag as seen by one antenna."""

    epc: str = Field(
        description="EPC as hexadecimal text: 1-31 whole 16-bit words (96 bits is usual).",
        json_schema_extra={"pattern": "^([0-9A-Fa-f]{4}){1,31}$"},
    )
    antenna: int = Field(default=1, ge=1, description="Antenna port that sees the tag (1-based).")
    rssi: float = Field(default=-55.0, ge=-128, le=0, description="Mean peak RSSI in dBm.")
    read_prob: float = Field(
        default=1.0, ge=0, le=1, description="Probability that one inventory round reads the tag."
    )
    rssi_sd: float | None = Field(
        default=None, ge=0, description="RSSI standard deviation in dB (default: the scene's)."
    )

    @field_validator("epc")
    @classmethod
    def _check_epc(cls, value: str) -> str:
        if not _EPC.fullmatch(value):
            raise ValueError(f"{value!r} is not an EPC: use 4 to 124 hex digits, a multiple of 4")
        return value.lower()


class Scene(_Strict):
    """A reader and the tags in its field."""

    description: str = Field(default="", description="Free text.")
    reader: ReaderSpec = Field(default_factory=ReaderSpec)
    rssi_sd: float = Field(default=2.0, ge=0, description="Default RSSI standard deviation in dB.")
    seed: int | None = Field(
        default=None, description="Random seed (reads are reproducible when set)."
    )
    tags: list[TagSpec] = Field(default_factory=list, description="Tag sightings.")

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, tags: list[TagSpec], info: ValidationInfo) -> list[TagSpec]:
        reader = info.data.get("reader")
        antennas = reader.antennas if isinstance(reader, ReaderSpec) else 32
        seen: set[tuple[str, int]] = set()
        for index, tag in enumerate(tags):
            if tag.antenna > antennas:
                raise ValueError(
                    f"tags[{index}]: antenna {tag.antenna} exceeds reader.antennas ({antennas})"
                )
            key = (tag.epc, tag.antenna)
            if key in seen:
                raise ValueError(
                    f"tags[{index}]: EPC {tag.epc} listed twice on antenna {tag.antenna}"
                )
            seen.add(key)
        return tags

    @property
    def epcs(self) -> set[str]:
        """The distinct EPCs of the scene (lower-case hex)."""
        return {tag.epc for tag in self.tags}

    def best_antenna(self) -> dict[str, int]:
        """For each EPC, the antenna where its mean RSSI is strongest (its true location)."""
        best: dict[str, TagSpec] = {}
        for tag in self.tags:
            current = best.get(tag.epc)
            if current is None or tag.rssi > current.rssi:
                best[tag.epc] = tag
        return {epc: tag.antenna for epc, tag in best.items()}


def load_scene(path: str | Path) -> Scene:
    """Load and validate a scene file (YAML or JSON).

    Valid files take a fast path (``json`` for JSON, ruamel's safe loader for YAML; prefer
    JSON for scenes of thousands of tags); a file with problems is parsed again with line
    tracking so every error names its line.

    Raises:
        ConfigError: listing every problem as ``FILE:LINE: key: why``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        as_json = path.suffix.lower() == ".json" or text.lstrip().startswith("{")
        doc = json.loads(text) if as_json else YAML(typ="safe").load(text)
        return Scene.model_validate(doc)
    except (OSError, ValueError, YAMLError):
        pass  # report it with file, line and key
    return load_model(path, Scene)


def scene_json_schema() -> dict[str, Any]:
    """The JSON Schema of scene files, generated from the pydantic model."""
    return Scene.model_json_schema()


def generate_scene(
    n_tags: int,
    *,
    antennas: int = 4,
    seed: int = 0,
    read_prob: float = 0.95,
    rssi: float = -55.0,
    stray_fraction: float = 0.2,
    stray_rssi_drop: float = 18.0,
    stray_read_prob: float = 0.3,
    epc_base: int = SGTIN_BASE,
    rounds_per_second: float = 10.0,
    reader: dict[str, Any] | None = None,
) -> Scene:
    """Build a scene programmatically (for tests and benchmarks).

    Tag ``i`` gets the EPC ``epc_base + i + 1`` (with the default base: SGTIN-96 of GTIN
    80614141123458, serial i + 1), sits on antenna ``i % antennas + 1`` and is, with
    probability ``stray_fraction``, also seen weakly by the next antenna.

    Args:
        n_tags: Number of distinct tags.
        antennas: Antenna ports of the reader.
        seed: Seed of the layout and of the scene's read randomness.
        read_prob: Read probability on the tag's own antenna.
        rssi: Mean RSSI on its own antenna (each tag varies by up to ±6 dB).
        stray_fraction: Share of tags also seen by a neighbouring antenna.
        stray_rssi_drop: How much weaker the stray sighting is (dB).
        stray_read_prob: Read probability of the stray sighting.
        epc_base: Integer added to the serial to form 96-bit EPCs.
        rounds_per_second: Inventory rounds per second per antenna.
        reader: Further reader keys (see :class:`ReaderSpec`).
    """
    rng = random.Random(seed)  # noqa: S311 - simulation, not cryptography
    tags: list[TagSpec] = []
    for index in range(n_tags):
        epc = f"{(epc_base + index + 1) & ((1 << 96) - 1):024x}"
        antenna = index % antennas + 1
        level = rssi + rng.uniform(-6.0, 6.0)
        tags.append(TagSpec(epc=epc, antenna=antenna, rssi=level, read_prob=read_prob))
        if antennas > 1 and rng.random() < stray_fraction:
            other = antenna % antennas + 1
            weak = max(level - stray_rssi_drop, -127.0)
            tags.append(TagSpec(epc=epc, antenna=other, rssi=weak, read_prob=stray_read_prob))
    spec = ReaderSpec(antennas=antennas, rounds_per_second=rounds_per_second, **dict(reader or {}))
    return Scene(reader=spec, seed=seed, tags=tags)


def scene_from_tags(
    tags: Sequence[tuple[str, int, float]], *, antennas: int = 4, seed: int = 0, **reader: Any
) -> Scene:
    """Build a scene from (EPC hex, antenna, mean RSSI) triples, all read with certainty."""
    return Scene(
        reader=ReaderSpec(antennas=antennas, **reader),
        seed=seed,
        tags=[TagSpec(epc=epc, antenna=ant, rssi=level) for epc, ant, level in tags],
    )
