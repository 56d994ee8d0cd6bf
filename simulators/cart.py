"""A moving reader: a cart (robot, drone) carrying a reader along an aisle of bays.

The aisle is a row of bays ``bay_width`` wide along x; every bay carries a *location reference
tag* (SGLN-96) at its centre and item tags (SGTIN-96) spread across it. The cart drives from
``x0`` to ``x1`` at ``speed`` m/s, optionally standing still for a while at one point, with
its antenna ``offset`` metres from the tag face. The RF model (:class:`RfModel`) is the one
the mobile-assignment tests use: RSSI = ``a_dbm - 20 log10(distance)`` + Gaussian noise, and
the chance of a read in an inventory round falling linearly with distance to zero at
``read_range``.

:class:`CartProvider` plugs the moving scene into the serial module simulator
(``SerialModuleSimulator(cart_scene(...), source=provider)``): each inventory round asks it
which tags answer *now*, on the provider's clock, started by the first round.

Example:
    >>> layout = AisleLayout.synthetic([f"A-01-{n:02d}-1" for n in range(1, 7)], seed=1)
    >>> sim = CartSim(layout, CartPath.across(layout, speed=2.0))
    >>> provider = CartProvider(sim, seed=1)
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from edgecount.sgln import encode_sgln96
from edgecount.yamlcfg import ConfigError, load_model
from simulators.llrp.inventory import PROB_LOSS_PER_DB
from simulators.scene import ReaderSpec, Scene, load_scene
from simulators.twin import sgtin96

__all__ = [
    "AisleLayout",
    "CartPath",
    "CartProvider",
    "CartSim",
    "CartSpec",
    "CartTag",
    "RfModel",
    "aisle_contents",
    "cart_scene",
    "encode_sgln96",
    "load_cart_spec",
    "scene_or_cart",
]

COMPANY_PREFIX = "0614141"


def aisle_contents(
    truth: Mapping[str, Sequence[str]], zone: str, aisle: str, level: str
) -> dict[str, list[str]]:
    """One aisle and level of a warehouse twin's truth, as :meth:`AisleLayout.build` takes it.

    Args:
        truth: Location ``{zone}-{aisle}-{bay}-{level}`` → item EPCs (``Twin.truth``).
        zone: The zone, e.g. ``Z1``.
        aisle: The aisle, e.g. ``01``.
        level: The shelf level, e.g. ``1``.

    Returns:
        Bay location → its EPCs (hex), bays in aisle order (by bay number).
    """
    picked: list[tuple[str, str]] = []
    for location in truth:
        parts = location.split("-")
        if len(parts) == 4 and (parts[0], parts[1], parts[3]) == (zone, aisle, level):
            picked.append((parts[2], location))
    picked.sort(key=lambda pair: (len(pair[0]), pair[0]))
    return {location: list(truth[location]) for _, location in picked}


@dataclass(frozen=True, slots=True)
class CartTag:
    """One tag along the aisle.

    Attributes:
        epc: The EPC bytes.
        x: Position along the aisle, metres.
        bay: The bay it sits in.
        reference: Whether it is the bay's location reference tag.
    """

    epc: bytes
    x: float
    bay: str
    reference: bool = False


@dataclass(frozen=True, slots=True)
class AisleLayout:
    """Bays of equal width along x, each with a reference tag at its centre, and items.

    Attributes:
        bays: Bay locations in aisle order; bay ``i`` spans ``[i*w, (i+1)*w)``.
        bay_width: ``w``, metres.
        tags: Every tag, reference tags included.
    """

    bays: tuple[str, ...]
    bay_width: float
    tags: tuple[CartTag, ...]

    @classmethod
    def build(
        cls,
        contents: Mapping[str, Sequence[bytes | str]],
        *,
        bay_width: float = 0.8,
        margin: float = 0.15,
        seed: int = 0,
        company_prefix: str = COMPANY_PREFIX,
    ) -> AisleLayout:
        """A layout from bay → item EPCs (e.g. one aisle and level of a twin's truth).

        Args:
            contents: Bays in aisle order, each with its item EPCs (bytes or hex).
            bay_width: Bay width, metres.
            margin: Items sit at least this far inside their bay's edges.
            seed: Seed of the item positions.
            company_prefix: Company prefix of the reference tags; bay ``i`` (from 0) gets the
                location reference ``i + 1``, zero-padded to 12 digits in all.

        Raises:
            ValueError: The margin leaves no room in a bay.
        """
        if not 0 <= margin < bay_width / 2:
            raise ValueError("margin must be below half the bay width")
        rng = random.Random(seed)  # noqa: S311 - simulation, not cryptography
        width = 12 - len(company_prefix)
        tags: list[CartTag] = []
        for index, (bay, epcs) in enumerate(contents.items()):
            left = index * bay_width
            ref = encode_sgln96(company_prefix, f"{index + 1:0{width}d}")
            tags.append(CartTag(ref, left + bay_width / 2, bay, reference=True))
            for epc in epcs:
                x = left + rng.uniform(margin, bay_width - margin)
                raw = bytes.fromhex(epc) if isinstance(epc, str) else epc
                tags.append(CartTag(raw, x, bay))
        return cls(tuple(contents), bay_width, tuple(tags))

    @classmethod
    def synthetic(
        cls,
        bays: Sequence[str],
        *,
        items_per_bay: int = 4,
        bay_width: float = 0.8,
        margin: float = 0.15,
        seed: int = 0,
    ) -> AisleLayout:
        """A layout with ``items_per_bay`` synthetic SGTIN-96 items per bay.

        Args:
            bays: Bay locations in aisle order; bay ``i`` holds item reference ``100 + i``.
            items_per_bay: Items in each bay.
            bay_width: Bay width, metres.
            margin: Items sit at least this far inside their bay's edges.
            seed: Seed of the item positions.
        """
        contents = {
            bay: [bytes.fromhex(sgtin96(100 + i, i * 1000 + k + 1)) for k in range(items_per_bay)]
            for i, bay in enumerate(bays)
        }
        return cls.build(contents, bay_width=bay_width, margin=margin, seed=seed)

    @property
    def length(self) -> float:
        """Aisle length, metres."""
        return len(self.bays) * self.bay_width

    def references(self) -> dict[str, str]:
        """Reference tag EPC (lower-case hex) → bay."""
        return {tag.epc.hex(): tag.bay for tag in self.tags if tag.reference}

    def truth(self) -> dict[bytes, str]:
        """Item EPC → its true bay."""
        return {tag.epc: tag.bay for tag in self.tags if not tag.reference}

    def extents(self) -> dict[str, tuple[float, float]]:
        """Bay → (start x, end x)."""
        w = self.bay_width
        return {bay: (i * w, (i + 1) * w) for i, bay in enumerate(self.bays)}


@dataclass(frozen=True, slots=True)
class CartPath:
    """The cart's motion: ``x0`` to ``x1`` at ``speed``, optionally stopping once on the way.

    Attributes:
        x0: Start position, metres.
        x1: End position, metres (below ``x0`` drives backwards).
        speed: Speed while moving, m/s.
        stop_at: Where it stands still for ``stop_seconds`` (None: no stop).
        stop_seconds: How long it stands there.
    """

    x0: float
    x1: float
    speed: float
    stop_at: float | None = None
    stop_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.speed <= 0 or self.stop_seconds < 0:
            raise ValueError("speed must be positive and stop_seconds not negative")
        if self.stop_at is not None and not min(self.x0, self.x1) <= self.stop_at <= max(
            self.x0, self.x1
        ):
            raise ValueError("stop_at must lie between x0 and x1")

    @classmethod
    def across(cls, layout: AisleLayout, *, speed: float, lead: float = 1.6) -> CartPath:
        """From ``lead`` before the first bay to ``lead`` past the last one."""
        return cls(-lead, layout.length + lead, speed)

    @property
    def duration(self) -> float:
        """Seconds from start to end, stop included."""
        stop = self.stop_seconds if self.stop_at is not None else 0.0
        return abs(self.x1 - self.x0) / self.speed + stop

    def pose_at(self, t: float) -> float:
        """Position at ``t`` seconds after the start (clamped to the ends)."""
        direction = 1.0 if self.x1 >= self.x0 else -1.0
        moving = max(0.0, t)
        if self.stop_at is not None:
            reach = abs(self.stop_at - self.x0) / self.speed
            if moving > reach:
                moving = max(reach, moving - self.stop_seconds)
        travel = min(moving * self.speed, abs(self.x1 - self.x0))
        return self.x0 + direction * travel

    def done(self, t: float) -> bool:
        """Whether the cart has arrived at ``t``."""
        return t >= self.duration


@dataclass(frozen=True, slots=True)
class RfModel:
    """Free-space RSSI and a read probability falling linearly with distance.

    Attributes:
        a_dbm: RSSI at 1 m, dBm.
        rssi_sd: RSSI noise (standard deviation), dB.
        read_range: No reads beyond this distance, metres.
        offset: Antenna to the tag face, across the aisle, metres.
        max_prob: Read probability at zero distance.
    """

    a_dbm: float = -40.0
    rssi_sd: float = 2.0
    read_range: float = 1.6
    offset: float = 0.4
    max_prob: float = 1.0

    def distance(self, tag_x: float, cart_x: float) -> float:
        """Antenna to tag, metres."""
        return math.hypot(tag_x - cart_x, self.offset)

    def mean_rssi(self, distance: float) -> float:
        """Mean RSSI at ``distance``, dBm."""
        return self.a_dbm - 20.0 * math.log10(max(distance, 1e-3))

    def read_prob(self, distance: float) -> float:
        """Chance that one inventory round reads a tag at ``distance``."""
        return self.max_prob * max(0.0, 1.0 - distance / self.read_range)


@dataclass(slots=True)
class CartSim:
    """A layout, a path and an RF model: what the cart's reader hears at any time.

    Attributes:
        layout: The aisle.
        path: The cart's motion.
        rf: The RF model.
    """

    layout: AisleLayout
    path: CartPath
    rf: RfModel = field(default_factory=RfModel)

    def pose_at(self, t: float) -> float:
        """The cart's x at ``t`` seconds after the start."""
        return self.path.pose_at(t)

    def rssi_at(self, tag: CartTag, t: float) -> float:
        """Mean RSSI of ``tag`` at ``t``, dBm."""
        return self.rf.mean_rssi(self.rf.distance(tag.x, self.pose_at(t)))

    def read_prob_at(self, tag: CartTag, t: float) -> float:
        """Chance that a round at ``t`` reads ``tag``."""
        return self.rf.read_prob(self.rf.distance(tag.x, self.pose_at(t)))

    def read_round(
        self, t: float, rng: random.Random, power_below_max_db: float = 0.0
    ) -> list[tuple[bytes, int]]:
        """One inventory round at ``t``: (EPC, RSSI dBm rounded, clamped -128..-1) per read.

        Args:
            t: Seconds since the start.
            rng: Randomness of the reads and the noise.
            power_below_max_db: Transmit power below the maximum: RSSI drops by as much and
                the read probability as in the LLRP simulator's model.
        """
        x = self.pose_at(t)
        scale = max(0.0, 1.0 - PROB_LOSS_PER_DB * power_below_max_db)
        out: list[tuple[bytes, int]] = []
        for tag in self.layout.tags:
            distance = self.rf.distance(tag.x, x)
            if (
                distance >= self.rf.read_range
                or rng.random() >= self.rf.read_prob(distance) * scale
            ):
                continue
            level = rng.gauss(self.rf.mean_rssi(distance) - power_below_max_db, self.rf.rssi_sd)
            out.append((tag.epc, min(-1, max(-128, round(level)))))
        return out


class CartProvider:
    """The serial module simulator's round source for a moving cart.

    The cart starts when the first round is asked for (or at :meth:`start`); a round's time
    is the provider's ``clock`` minus that start. After the cart arrives it stays at ``x1``.

    Args:
        sim: The moving scene.
        seed: Seed of the reads.
        antenna: The antenna port that carries the cart's reader; others hear nothing.
        clock: Seconds, monotonic (``time.monotonic`` by default).
    """

    def __init__(
        self,
        sim: CartSim,
        *,
        seed: int = 0,
        antenna: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sim = sim
        self.antenna = antenna
        self.clock = clock
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not cryptography
        self.started_at: float | None = None
        self.poses: list[tuple[float, float]] = []
        """(clock time, x) at every round run: the cart's pose log."""

    def start(self) -> None:
        """Start the cart now (the first round does it otherwise)."""
        if self.started_at is None:
            self.started_at = self.clock()

    def elapsed(self) -> float:
        """Seconds since the cart started (0 before)."""
        return 0.0 if self.started_at is None else self.clock() - self.started_at

    def pose(self) -> float:
        """The cart's x now."""
        return self.sim.pose_at(self.elapsed())

    def done(self) -> bool:
        """Whether the cart has started and arrived."""
        return self.started_at is not None and self.sim.path.done(self.elapsed())

    def read_round(self, antenna: int, power_below_max_db: float = 0.0) -> list[tuple[bytes, int]]:
        """One inventory round on ``antenna`` now (see :meth:`CartSim.read_round`)."""
        self.start()
        now = self.clock()
        t = now - (self.started_at or now)
        self.poses.append((now, self.sim.pose_at(t)))
        if antenna != self.antenna:
            return []
        return self.sim.read_round(t, self.rng, power_below_max_db)


def cart_scene(*, rounds_per_second: float = 100.0, seed: int = 0, antennas: int = 1) -> Scene:
    """A tagless scene holding the reader spec the serial module runs a cart with.

    Args:
        rounds_per_second: Inventory rounds per second.
        seed: The scene seed (fault randomness).
        antennas: Antenna ports of the reader.
    """
    reader = ReaderSpec(name="cart", antennas=antennas, rounds_per_second=rounds_per_second)
    return Scene(reader=reader, seed=seed)


class CartSpec(BaseModel):
    """A cart run as a file (``edgecount sim serial --cart SPEC.json``), YAML or JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bays: list[str] = Field(
        default_factory=list, description="Bay locations in aisle order (synthetic items)."
    )
    contents: dict[str, list[str]] | None = Field(
        default=None, description="Bay -> item EPCs (hex), in aisle order; replaces bays."
    )
    items_per_bay: int = Field(default=4, ge=0, description="Synthetic items per bay.")
    bay_width: float = Field(default=0.8, gt=0, description="Bay width, metres.")
    margin: float = Field(default=0.15, ge=0, description="Items this far inside bay edges.")
    speed: float = Field(default=0.5, gt=0, description="Cart speed, m/s.")
    x0: float | None = Field(default=None, description="Start x (default: -read_range).")
    x1: float | None = Field(default=None, description="End x (default: aisle end + range).")
    stop_at: float | None = Field(default=None, description="Where the cart stands still.")
    stop_seconds: float = Field(default=0.0, ge=0, description="How long it stands there.")
    rounds_per_second: float = Field(default=20.0, gt=0, le=1000, description="Round pace.")
    seed: int = Field(default=0, description="Seed of item positions and reads.")
    rf: RfModel = Field(default_factory=RfModel, description="The RF model.")

    def layout(self) -> AisleLayout:
        """The aisle this spec describes."""
        if self.contents is not None:
            return AisleLayout.build(
                self.contents, bay_width=self.bay_width, margin=self.margin, seed=self.seed
            )
        return AisleLayout.synthetic(
            self.bays,
            items_per_bay=self.items_per_bay,
            bay_width=self.bay_width,
            margin=self.margin,
            seed=self.seed,
        )

    def sim(self) -> CartSim:
        """The moving scene.

        Raises:
            ValueError: The spec has no bays, or its path or margin is invalid.
        """
        layout = self.layout()
        if not layout.bays:
            raise ValueError("a cart spec needs bays or contents")
        x0 = -self.rf.read_range if self.x0 is None else self.x0
        x1 = layout.length + self.rf.read_range if self.x1 is None else self.x1
        path = CartPath(x0, x1, self.speed, self.stop_at, self.stop_seconds)
        return CartSim(layout, path, self.rf)

    def scene(self) -> Scene:
        """The reader spec the serial module runs the cart with."""
        return cart_scene(rounds_per_second=self.rounds_per_second, seed=self.seed)


def load_cart_spec(path: str | Path) -> CartSpec:
    """Load and validate a cart spec file.

    Raises:
        ConfigError: Every problem, as ``FILE:LINE: key: why``.
    """
    return load_model(Path(path), CartSpec)


def scene_or_cart(
    scene: str | Path | None, cart: str | Path | None, seed: int | None = None
) -> tuple[Scene, CartProvider | None] | str:
    """What a simulator command line serves: a scene file, or a cart spec with its provider.

    Args:
        scene: A scene file (used when ``cart`` is None).
        cart: A cart spec file.
        seed: Seed of the cart's reads (default: the spec's).

    Returns:
        The scene and, for a cart, the provider of its rounds; or what is wrong with the file.
    """
    if cart is None:
        if scene is None:
            return "give a scene file or a cart spec"
        try:
            return load_scene(scene), None
        except ConfigError as exc:
            return f"invalid scene:\n{exc}"
    try:
        spec = load_cart_spec(cart)
        return spec.scene(), CartProvider(spec.sim(), seed=spec.seed if seed is None else seed)
    except (ConfigError, ValueError) as exc:
        return f"invalid cart spec:\n{exc}"
