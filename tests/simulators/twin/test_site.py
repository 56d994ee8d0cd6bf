"""The site plan: which devices cover the twin, the gateway configuration, and the scoring."""

from __future__ import annotations

import itertools

import pytest

from edgecount.sgln import decode_sgln96
from edgecount.truth import score
from gateway.config import GatewayConfig
from reconciler.model import AbcClass, BookLine
from reconciler.rules import TolerancePolicy
from simulators.cart import CartPath, CartSim
from simulators.site import (
    PassSource,
    SitePlan,
    SitePorts,
    drone_layouts,
    drone_zone,
    fixed_groups,
    gateway_config,
    reference_epc,
)
from simulators.twin import Twin, TwinSpec, generate

SPEC = TwinSpec(zones=2, aisles_per_zone=2, bays_per_aisle=6, levels_per_bay=3, skus=30)
PLAN = SitePlan(twin=SPEC, drone_aisles=(("Z2", 1),), locations_per_reader=7)


@pytest.fixture(scope="module")
def twin() -> Twin:
    return generate(SPEC)


def test_every_location_is_covered_once_by_a_fixed_reader_or_a_drone(twin: Twin) -> None:
    groups = fixed_groups(twin, PLAN)
    fixed = [loc for zone in groups.values() for group in zone for loc in group]
    assert all(1 <= len(g) <= 7 for zone in groups.values() for g in zone)
    layouts = drone_layouts(twin, PLAN)
    flown = [bay for layout in layouts.values() for bay in layout.bays]
    assert sorted(fixed + flown) == sorted(twin.locations)
    assert set(layouts) == {drone_zone("Z2", 1, level) for level in (1, 2, 3)}
    assert all(loc.startswith("Z2-01-") for loc in flown)
    # every item of a flown location is a tag of its bay, plus one reference tag per bay
    layout = layouts["Z2-01-L2"]
    assert {
        bay: sorted(e.hex() for e, b in layout.truth().items() if b == bay) for bay in layout.bays
    } == {bay: sorted(twin.truth[bay]) for bay in layout.bays}


def test_reference_tags_are_sgln96_and_unique_in_the_site(twin: Twin) -> None:
    epcs = [reference_epc(location) for location in twin.locations]
    assert len(set(epcs)) == len(epcs)
    decoded = decode_sgln96(bytes.fromhex(reference_epc("Z2-01-04-3")))
    assert decoded is not None
    assert (decoded.company_prefix, decoded.location_reference) == ("061414", "201043")


def test_the_gateway_configuration_covers_the_site(twin: Twin) -> None:
    groups = fixed_groups(twin, PLAN)
    names = [f"{zone}-r{i + 1:02d}" for zone, g in groups.items() for i in range(len(g))]
    ports = SitePorts(
        llrp={name: 5000 + i for i, name in enumerate(names)},
        serial={zone: 6000 + i for i, zone in enumerate(drone_layouts(twin, PLAN, items=False))},
    )
    mapping = gateway_config(
        twin, PLAN, ports, gateway_id="gw", mqtt={"host": "h"}, state_dir="/tmp/x"
    )
    config = GatewayConfig.model_validate(mapping)
    assert set(config.zones) == {"Z1", "Z2", "Z2-01-L1", "Z2-01-L2", "Z2-01-L3"}
    located = list(itertools.chain.from_iterable(config.zone_locations(z) for z in config.zones))
    assert sorted(located) == sorted(twin.locations)
    drone = config.zones["Z2-01-L1"]
    assert drone.mobile is not None
    assert drone.scan_seconds > PLAN.drone_pass_seconds()
    assert config.reader("drone-Z2-01-L1").model_dump()["url"] == "socket://127.0.0.1:6000"


def test_a_new_pass_starts_after_the_inventory_stopped() -> None:
    layout = drone_layouts(generate(SPEC), PLAN)["Z2-01-L1"]
    now = [100.0]
    source = PassSource(
        CartSim(layout, CartPath.across(layout, speed=2.0)), seed=1, clock=lambda: now[0]
    )
    ref_first = bytes.fromhex(reference_epc(layout.bays[0]))

    def heard_first_bay() -> bool:
        return any(epc == ref_first for _ in range(20) for epc, _rssi in source.read_round(1))

    now[0] = 100.0
    assert not heard_first_bay()  # 1.6 m before the first bay: out of range
    now[0] = 101.2  # 0.8 m into the aisle, over the first bay
    assert heard_first_bay()
    now[0] = 130.0  # long past the end; the next rounds still come from the end...
    assert not heard_first_bay()
    source.inventory_stopped()  # ...until the gateway stops the inventory
    now[0] = 200.0
    assert not heard_first_bay()
    now[0] = 201.2
    assert heard_first_bay()
    assert source.passes == 2
    assert source.read_round(2) == []


def line(location: str, sku: str, qty: int) -> BookLine:
    return BookLine(location, sku, qty, 10.0, AbcClass.A)


def test_score_against_the_truth() -> None:
    before = {
        ("L1", "s1"): line("L1", "s1", 5),  # right
        ("L1", "s2"): line("L1", "s2", 3),  # wrong: 2 on the shelf
        ("L2", "s1"): line("L2", "s1", 4),  # right
        ("L3", "s3"): line("L3", "s3", 1),  # wrong: nothing there
    }
    truth = {"L1": {"s1": 5, "s2": 2}, "L2": {"s1": 4, "s4": 6}, "L3": {}}  # L2 s4: unbooked
    after = {**before, ("L1", "s2"): line("L1", "s2", 2), ("L2", "s4"): line("L2", "s4", 6)}
    flagged = {("L1", "s2"), ("L2", "s4"), ("L2", "s1")}  # two right, one false
    figures = score(before, after, truth, flagged, TolerancePolicy())
    assert figures["records"] == 5
    assert figures["true_discrepancies"] == 3
    assert figures["recall"] == 2 / 3
    assert figures["missed"] == ["L3 s3"]
    assert figures["precision"] == 2 / 3
    assert figures["false_flags"] == ["L2 s1"]
    assert figures["false_flag_rate"] == 1 / 2
    assert figures["ira_before"] == 2 / 5
    assert figures["ira_after"] == 4 / 5  # L3 s3 still booked
