"""The whole site's devices, driven by one warehouse twin: fixed LLRP readers and drones.

A :class:`SitePlan` says how a :class:`~simulators.twin.Twin` is covered:

* **fixed readers**: every aisle not flown by a drone is covered by LLRP readers on the racking,
  one antenna per location, :attr:`SitePlan.locations_per_reader` locations per reader in
  aisle/bay/level order (:meth:`Twin.scene_for`: a tag is heard by its own antenna and 15 dB
  weaker by the neighbouring ones, each read with :attr:`SitePlan.read_prob` per round). The
  gateway scans them as one zone per twin zone (``Z1``, ...).
* **drone aisles** (:attr:`SitePlan.drone_aisles`): a drone flies the aisle once per shelf
  level carrying a serial UHF module; every bay-level carries an SGLN-96 location reference
  tag (:func:`reference_epc`, unique in the site). The gateway scans each level as a mobile
  zone ``{zone}-{aisle:02d}-L{level}``; each scan of that zone is one pass
  (:class:`PassSource`).

:func:`site_simulators` runs every simulator in a child process (the gateway's own work then
has the parent's core to itself), generating the same twin from the same spec there, and
reports the ports; :func:`gateway_config` builds the gateway configuration that covers the
site from the plan and those ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from edgecount.sgln import encode_sgln96
from simulators.cart import AisleLayout, CartPath, CartSim, CartTag, aisle_contents, cart_scene
from simulators.twin import Twin, TwinSpec, generate

__all__ = [
    "PassSource",
    "SitePlan",
    "SitePorts",
    "drone_layouts",
    "drone_zone",
    "fixed_groups",
    "gateway_config",
    "reference_epc",
    "site_simulators",
]

REFERENCE_PREFIX = "061414"
"""Company prefix (6 digits) of the location reference tags: 6 digits remain for the location."""


@dataclass(frozen=True)
class SitePlan:
    """How the twin's locations are covered by devices, and how those behave.

    Attributes:
        twin: The warehouse to generate.
        drone_aisles: ``(zone, aisle)`` pairs flown by a drone (one pass per level); every
            other aisle has fixed LLRP readers.
        locations_per_reader: Antennas (locations) per fixed reader, 1-32.
        read_prob: Probability that one inventory round reads a tag (own antenna and strays).
        rounds_per_second: Inventory rounds per second of the fixed readers.
        stray_drop_db: How much weaker a fixed reader's neighbouring antennas hear a tag.
        drone_speed: The drones' speed along the aisle, m/s.
        drone_rounds_per_second: Inventory rounds per second of the drones' modules.
        bay_width: Width of a bay, metres (drone aisles).
        camera_aisles: ``(zone, aisle)`` pairs of fixed aisles that also have shelf cameras
            (:mod:`simulators.camera.twin_render`: one per 2 bays x 3 levels, with
            occluders, blur, noise and lighting changes); their counts are ``fused``.
        camera_fps: Frames per second each camera serves (and the gateway polls).
    """

    twin: TwinSpec = field(default_factory=TwinSpec)
    drone_aisles: tuple[tuple[str, int], ...] = ()
    locations_per_reader: int = 25
    read_prob: float = 0.98
    rounds_per_second: float = 4.0
    stray_drop_db: float = 15.0
    drone_speed: float = 2.0
    drone_rounds_per_second: float = 100.0
    bay_width: float = 0.8
    camera_aisles: tuple[tuple[str, int], ...] = ()
    camera_fps: float = 2.0

    def __post_init__(self) -> None:
        """Reject plans that cannot be built."""
        if not 1 <= self.locations_per_reader <= 32:
            raise ValueError("locations_per_reader must be 1..32")
        if not 0.0 < self.read_prob <= 1.0:
            raise ValueError("read_prob must be in (0, 1]")
        if self.twin.zones > 9 or self.twin.levels_per_bay > 9:
            raise ValueError("reference tags number at most 9 zones and 9 levels")
        for kind, aisles in (("drone", self.drone_aisles), ("camera", self.camera_aisles)):
            for zone, aisle in aisles:
                number = zone[1:]
                if not number.isdigit() or not 1 <= int(number) <= self.twin.zones:
                    raise ValueError(f"{kind} aisle in unknown zone {zone!r}")
                if not 1 <= aisle <= self.twin.aisles_per_zone:
                    raise ValueError(f"{kind} aisle {zone}-{aisle:02d} does not exist")
        if set(self.drone_aisles) & set(self.camera_aisles):
            raise ValueError("a drone aisle cannot have fixed cameras too")

    def drone_pass_seconds(self) -> float:
        """How long one pass down an aisle takes (leads before and after included)."""
        length = self.twin.bays_per_aisle * self.bay_width
        return (length + 2 * _LEAD) / self.drone_speed


_LEAD = 1.6  # metres flown before the first bay and after the last


def drone_zone(zone: str, aisle: int, level: int) -> str:
    """The gateway zone of one level of a drone aisle, e.g. ``Z4-02-L3``."""
    return f"{zone}-{aisle:02d}-L{level}"


def reference_epc(location: str) -> str:
    """The SGLN-96 reference tag (24 hex digits) of a twin location ``Z1-03-12-2``.

    Its location reference is the location's digits (zone, aisle, bay, level), so it is
    unique in the site.
    """
    zone, aisle, bay, level = location.split("-")
    return encode_sgln96(REFERENCE_PREFIX, f"{zone[1:]}{aisle}{bay}{level}").hex()


def fixed_groups(twin: Twin, plan: SitePlan) -> dict[str, list[list[str]]]:
    """Twin zone → the location groups of its fixed readers (antenna ``i`` = item ``i-1``)."""
    drone = {(zone, f"{aisle:02d}") for zone, aisle in plan.drone_aisles}
    out: dict[str, list[list[str]]] = {}
    for zone in twin.zones:
        fixed = [
            loc
            for loc in twin.locations
            if loc.startswith(f"{zone}-") and (zone, loc[3:5]) not in drone
        ]
        size = plan.locations_per_reader
        groups = [fixed[i : i + size] for i in range(0, len(fixed), size)]
        if groups:
            out[zone] = groups
    return out


def drone_layouts(twin: Twin, plan: SitePlan, *, items: bool = True) -> dict[str, AisleLayout]:
    """Gateway zone → the aisle layout one drone pass flies (one aisle, one level).

    Args:
        twin: The warehouse.
        plan: The plan naming the drone aisles.
        items: Place the item tags too (the simulators need them; the gateway only needs
            the reference tags).
    """
    out: dict[str, AisleLayout] = {}
    for zone, aisle in plan.drone_aisles:
        for level in range(1, twin.spec.levels_per_bay + 1):
            contents = aisle_contents(twin.truth, zone, f"{aisle:02d}", str(level))
            seed = zlib.crc32(f"{twin.spec.seed}/{zone}/{aisle}/{level}".encode())
            rng = random.Random(seed)  # noqa: S311 - simulation, not cryptography
            tags: list[CartTag] = []
            width = plan.bay_width
            for index, (bay, epcs) in enumerate(contents.items()):
                left = index * width
                ref = bytes.fromhex(reference_epc(bay))
                tags.append(CartTag(ref, left + width / 2, bay, reference=True))
                if items:
                    tags.extend(
                        CartTag(bytes.fromhex(epc), left + rng.uniform(0.15, width - 0.15), bay)
                        for epc in epcs
                    )
            out[drone_zone(zone, aisle, level)] = AisleLayout(tuple(contents), width, tuple(tags))
    return out


class PassSource:
    """A drone's reads: each inventory (start to stop) is one pass down the aisle.

    The serial module simulator asks it for every inventory round (the
    :class:`simulators.llrp.inventory.RoundSource` protocol) and tells it when the gateway
    stops the inventory (:meth:`inventory_stopped`): the next round starts a new pass from the
    start of the aisle, like a drone sent again for a recount.

    Args:
        sim: The aisle and the drone's path.
        seed: Seed of the reads.
        clock: Seconds, monotonic.
    """

    def __init__(
        self, sim: CartSim, *, seed: int = 0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sim = sim
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not cryptography
        self.clock = clock
        self.passes = 0
        self._started: float | None = None

    def inventory_stopped(self) -> None:
        """The pass is over; the next round starts another."""
        self._started = None

    def read_round(self, antenna: int, power_below_max_db: float = 0.0) -> list[tuple[bytes, int]]:
        """One inventory round now (antenna 1 only)."""
        now = self.clock()
        if self._started is None:
            self._started = now
            self.passes += 1
        if antenna != 1:
            return []
        return self.sim.read_round(now - self._started, self.rng, power_below_max_db)


@dataclass(frozen=True)
class SitePorts:
    """Where the simulators listen: fixed reader name → port, drone zone → port, and the
    gateway's camera entries (snapshot URL, ROIs) per zone."""

    llrp: dict[str, int]
    serial: dict[str, int]
    cameras: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def reader_name(zone: str, index: int) -> str:
    """The name of a fixed reader, e.g. ``Z1-r03``."""
    return f"{zone}-r{index + 1:02d}"


async def _serve(plan: SitePlan, conn: Connection) -> None:
    from simulators.llrp.server import LLRPSimulator
    from simulators.serial.server import SerialModuleSimulator

    twin = generate(plan.twin)
    async with contextlib.AsyncExitStack() as stack:
        llrp: dict[str, int] = {}
        for zone, groups in fixed_groups(twin, plan).items():
            for index, group in enumerate(groups):
                scene = twin.scene_for(
                    zone,
                    group,
                    read_prob=plan.read_prob,
                    stray_drop_db=plan.stray_drop_db,
                    rounds_per_second=plan.rounds_per_second,
                    seed=plan.twin.seed * 1000 + len(llrp),
                )
                sim = await stack.enter_async_context(LLRPSimulator(scene))
                llrp[reader_name(zone, index)] = sim.port
        serial: dict[str, int] = {}
        for index, (zone, layout) in enumerate(drone_layouts(twin, plan).items()):
            path = CartPath.across(layout, speed=plan.drone_speed, lead=_LEAD)
            source = PassSource(CartSim(layout, path), seed=plan.twin.seed * 1000 + index)
            module = SerialModuleSimulator(
                cart_scene(rounds_per_second=plan.drone_rounds_per_second), source=source
            )
            await module.start()
            stack.push_async_callback(module.stop)
            serial[zone] = module.port
        cameras: dict[str, list[dict[str, Any]]] = {}
        if plan.camera_aisles:
            from simulators.camera.twin_render import camera_views, serve_views

            for zone, aisle in plan.camera_aisles:
                views = list(camera_views(twin, zone, [aisle], seed=plan.twin.seed))
                entries = stack.enter_context(
                    serve_views(views, fps=plan.camera_fps, seed=plan.twin.seed)
                )
                # the gateway polls each snapshot camera at the rate it serves
                cameras.setdefault(zone, []).extend(e | {"fps": plan.camera_fps} for e in entries)
        conn.send(SitePorts(llrp, serial, cameras))
        await asyncio.to_thread(conn.recv)  # any message (or the parent's end) means stop


def _child(plan: SitePlan, conn: Connection) -> None:
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        asyncio.run(_serve(plan, conn))


@contextlib.asynccontextmanager
async def site_simulators(
    plan: SitePlan, *, start_seconds: float = 60.0
) -> AsyncIterator[SitePorts]:
    """Run every simulator of the plan in a child process; yields where they listen.

    Args:
        plan: The site.
        start_seconds: Seconds to wait for the simulators to listen.

    Raises:
        RuntimeError: The child process died or did not report in time.
    """
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_child, args=(plan, child), name="edgecount-site", daemon=True)
    process.start()
    child.close()
    try:
        ready = await asyncio.to_thread(parent.poll, start_seconds)
        if not ready:
            raise RuntimeError(f"the site simulators did not start within {start_seconds:g} s")
        ports: SitePorts = parent.recv()
        yield ports
    except EOFError as exc:
        raise RuntimeError(f"the site simulators exited (code {process.exitcode})") from exc
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        parent.close()
        await asyncio.to_thread(process.join, 10.0)
        if process.is_alive():
            process.kill()


def gateway_config(
    twin: Twin,
    plan: SitePlan,
    ports: SitePorts,
    *,
    gateway_id: str,
    mqtt: dict[str, Any],
    state_dir: str,
    scan_seconds: float = 4.0,
    host: str = "127.0.0.1",
) -> dict[str, Any]:
    """The gateway configuration (as a ``GatewayConfig`` mapping) that covers the site.

    Args:
        twin: The warehouse.
        plan: How it is covered.
        ports: Where the simulators listen.
        gateway_id: The gateway's id.
        mqtt: The ``mqtt`` section.
        state_dir: The gateway's state directory.
        scan_seconds: The fixed zones' scan window.
        host: The simulators' address.
    """
    readers: list[dict[str, Any]] = []
    cameras: list[dict[str, Any]] = []
    zones: dict[str, Any] = {}
    for zone, groups in fixed_groups(twin, plan).items():
        names = []
        for index, group in enumerate(groups):
            name = reader_name(zone, index)
            antennas = dict(enumerate(group, start=1))
            readers.append(
                {
                    "type": "llrp",
                    "name": name,
                    "host": host,
                    "port": ports.llrp[name],
                    "antennas": antennas,
                }
            )
            names.append(name)
        zones[zone] = {"readers": names, "scan_seconds": scan_seconds}
        entries = ports.cameras.get(zone, [])
        if entries:
            cameras.extend(entries)
            zones[zone]["cameras"] = [entry["name"] for entry in entries]
    pass_seconds = plan.drone_pass_seconds() + 1.0
    for zone, layout in drone_layouts(twin, plan, items=False).items():
        name = f"drone-{zone}"
        readers.append(
            {"type": "serial", "name": name, "url": f"socket://{host}:{ports.serial[zone]}"}
        )
        zones[zone] = {
            "readers": [name],
            "scan_seconds": round(pass_seconds, 2),
            "mobile": {"references": layout.references()},
        }
    return {
        "site": twin.spec.site,
        "gateway_id": gateway_id,
        "state_dir": state_dir,
        "mqtt": mqtt,
        "readers": readers,
        **({"cameras": cameras} if cameras else {}),
        "zones": zones,
    }
