"""A mobile zone scan: a reader on a cart passes the bays, which are published as it passes.

The read stream is the physical model of :mod:`tests.gateway.mobile.test_mobile_assign`,
replayed ten times faster than simulated (so the zone's ``window_seconds`` is a tenth of the
default) by an in-memory reader that stamps each batch with the real time it is delivered at.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.base import DeviceHealth, Reader, ReadQueue
from edgecount import contract
from edgecount.yamlcfg import ConfigError
from gateway.config import GatewayConfig, load_gateway_config
from gateway.mobile_scan import MobileTally
from gateway.publisher import MemoryPublisher
from gateway.scan import ScanResult, create_zone_scan
from tests.gateway.mobile.test_mobile_assign import BAYS, REFS, Run, expected, simulate

SPEEDUP = 10.0


class ReplayReader(Reader):
    """Replays a simulated run's batches in (compressed) real time once inventory starts.

    Args:
        run: The simulated run.
        publisher: Its message count is noted when the scan stops the inventory.
        fail_at_end: Count a link failure after the last batch (a run cut short).
    """

    def __init__(self, run: Run, publisher: MemoryPublisher, *, fail_at_end: bool = False):
        self.name = "cart"
        self.queue = ReadQueue()
        self.run = run
        self.publisher = publisher
        self.fail_at_end = fail_at_end
        self.messages_at_stop: int | None = None
        self._failures = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Nothing to connect."""

    async def start_inventory(self) -> None:
        """Start replaying."""
        self._task = asyncio.create_task(self._replay())

    async def _replay(self) -> None:
        origin, first = time.time(), self.run.poses[0][0]
        for (sim_t, _), batch in zip(self.run.poses, self.run.batches, strict=True):
            at = origin + (sim_t - first) / SPEEDUP
            await asyncio.sleep(max(0.0, at - time.time()))
            self.queue.put_nowait([dataclasses.replace(read, t=at) for read in batch])
        if self.fail_at_end:
            self._failures += 1

    async def stop_inventory(self) -> None:
        """Note how many messages went out during the window; stop replaying."""
        self.messages_at_stop = len(self.publisher.messages)
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        """Nothing to close."""

    def health(self) -> DeviceHealth:
        """Figures of a reader that is always connected."""
        return DeviceHealth(self.name)

    @property
    def failures(self) -> int:
        """1 after a cut-short run, else 0."""
        return self._failures


def config(**zone: Any) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "site": "dc1",
            "gateway_id": "gw-cart",
            "readers": [{"type": "serial", "name": "cart", "url": "socket://cart:4001"}],
            "zones": {
                "A": {
                    "readers": ["cart"],
                    "scan_seconds": 3.0,
                    "mobile": {"references": REFS, "window_seconds": 0.05},
                    **zone,
                }
            },
        }
    )


async def scan(run: Run, *, fail_at_end: bool = False) -> tuple[ScanResult, ReplayReader, Any]:
    publisher = MemoryPublisher(site="dc1", gateway_id="gw-cart")
    reader = ReplayReader(run, publisher, fail_at_end=fail_at_end)
    zone_scan = create_zone_scan(config(), "A", {"cart": reader}, publisher)
    assert isinstance(zone_scan.tally, MobileTally)
    result = await zone_scan.run()
    return result, reader, publisher


def published_counts(publisher: MemoryPublisher) -> list[tuple[int, contract.CountMessage]]:
    """(message index, message) of every count message."""
    return [
        (index, sent.message)
        for index, sent in enumerate(publisher.messages)
        if isinstance(sent.message, contract.CountMessage)
    ]


def last_scan(publisher: MemoryPublisher) -> contract.ScanMessage:
    """The last message published, which must be a scan message."""
    last = publisher.messages[-1].message
    assert isinstance(last, contract.ScanMessage)
    return last


async def test_every_bay_is_counted_and_published_as_the_reader_passes() -> None:
    run = simulate(1)
    result, reader, publisher = await scan(run)
    assert result.complete
    assert result.published
    counts = published_counts(publisher)
    locations = [count.location for _, count in counts]
    assert sorted(locations) == BAYS, "each bay once"
    for _, count in counts:
        assert count.source is contract.CountSource.RFID
        assert count.complete is True
        assert count.scan_id == result.scan_id
        assert count.quantities == expected(run.truth, count.location)
    assert reader.messages_at_stop is not None
    during = [count.location for index, count in counts if index < reader.messages_at_stop]
    assert during == BAYS[: len(during)], "published in the order the reader passed them"
    assert len(during) >= len(BAYS) - 2, "all but the last bays went out before the window ended"
    last = last_scan(publisher)
    assert last.state is contract.ScanState.COMPLETED
    assert list(last.locations) == BAYS
    assert all(index < len(publisher.messages) - 1 for index, _ in counts)


async def test_a_reader_failure_marks_the_unfinished_bays_incomplete() -> None:
    run = simulate(2, stop_at=4.0)  # the link drops in the middle of the fourth bay
    result, _, publisher = await scan(run, fail_at_end=True)
    assert not result.complete
    assert not result.readers["cart"].ok
    counts = {count.location: count for _, count in published_counts(publisher)}
    assert sorted(counts) == BAYS
    finished = [bay for bay in BAYS if counts[bay].complete]
    assert finished
    assert finished == BAYS[: len(finished)]
    assert len(finished) < 4
    for bay in finished:
        assert counts[bay].quantities == expected(run.truth, bay)
    last = last_scan(publisher)
    assert last.state is contract.ScanState.INCOMPLETE
    assert list(last.incomplete_locations) == [bay for bay in BAYS if bay not in finished]


def test_mobile_zone_configuration() -> None:
    gateway = config()
    assert gateway.zone_locations("A") == BAYS
    assert gateway.reader("cart").antennas == {}
    upper = {epc.upper(): bay for epc, bay in REFS.items()}
    mobile = config(mobile={"references": upper}).zones["A"].mobile
    assert mobile is not None
    assert mobile.references == REFS
    assert mobile.window_seconds == 0.5
    with pytest.raises(ValidationError, match="24 hexadecimal digits"):
        config(mobile={"references": {"30f4": "A-01-01"}})
    with pytest.raises(ValidationError, match="need a location: cart"):
        config(mobile=None)


def test_a_fixed_zone_reader_without_location_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "site: dc1\n"
        "gateway_id: gw-cart\n"
        "readers:\n"
        "  - {type: serial, name: cart, url: 'socket://cart:4001'}\n"
        "zones:\n"
        "  A: {readers: [cart]}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_gateway_config(path)
    assert "need a location" in str(raised.value)
    assert "gateway.yaml:5" in str(raised.value)
