"""A night at a simulated site, scored against the warehouse twin's truth.

:func:`run_night` is what ``edgecount demo`` and ``bench/truth.py`` run:

1. generate the twin (:mod:`simulators.twin`) and start every device simulator of the
   :class:`~simulators.site.SitePlan` in a child process (fixed LLRP readers, drones with
   serial modules);
2. load the twin's book snapshot and movement log into the reconciler (SQLite under the state
   directory, through the same CSV import a WMS export takes) and start the reconciliation
   service with automatic recounts;
3. start the gateway daemon (real drivers, outbox, paho-mqtt) and send it the night's scan
   requests on its command topic, one per zone, like a planner would;
4. wait until every zone was scanned and every discrepancy either cleared by a recount or
   waits for approval; then approve those confirmed differences (the adjustments go out over
   MQTT and into the book);
5. score what the system flagged against the injected book errors (:func:`score`).

Figures (fractions 0-1), all over the (location, SKU) records of the scanned locations:

* ``recall``: true discrepancies flagged ÷ true discrepancies. A true discrepancy is a record
  whose book differs from the shelf beyond the site's tolerance (with the default tolerances
  these are exactly the twin's injected errors).
* ``precision``: true discrepancies flagged ÷ records flagged.
* ``false_flag_rate``: records flagged although their book was right ÷ records whose book was
  right.
* ``ira_before`` / ``ira_after``: inventory record accuracy against the truth (records within
  tolerance ÷ records) of the book before the night and after the approved adjustments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edgecount.broker import embedded_broker
from edgecount.contract import DiscrepancyState
from edgecount.mqtt import MqttSettings
from edgecount.site_watch import REQUESTED_BY, Say, SiteWatcher
from reconciler.model import BookLine, Status
from reconciler.rules import TolerancePolicy, compare
from simulators.site import SitePlan, SitePorts, gateway_config, site_simulators
from simulators.twin import generate, write_book_csv, write_movements_csv

log = logging.getLogger(__name__)

__all__ = ["NightOptions", "run_night", "score"]

APPROVER = REQUESTED_BY
REASON = "CYCLE-COUNT"
_RECOUNTING = (DiscrepancyState.OPEN.value, DiscrepancyState.RECOUNT_REQUESTED.value)
"""States of a discrepancy the reconciler still recounts (the night has not settled)."""


@dataclass
class NightOptions:
    """How to run the night.

    Attributes:
        plan: The site and its devices.
        state_dir: Where the reconciler's SQLite, the gateway's outbox, the book CSVs and the
            HTML report go.
        broker: ``mqtt://HOST:PORT`` of an external broker; None starts an embedded one.
        scan_seconds: Scan window of the fixed zones.
        max_recounts: Recounts before a discrepancy waits for approval.
        timeout: Seconds the night may take at most.
        say: Where progress lines go (None: nowhere).
        policy: The site's tolerances (the reconciler's, and the scoring's).
    """

    plan: SitePlan
    state_dir: Path
    broker: str | None = None
    scan_seconds: float = 4.0
    max_recounts: int = 2
    timeout: float = 900.0
    say: Say | None = None
    policy: TolerancePolicy = field(default_factory=TolerancePolicy)


async def _until(
    predicate: Callable[[], bool], deadline: float, what: str, every: float = 0.2
) -> None:
    """Poll ``predicate`` until it holds; TimeoutError naming ``what`` at ``deadline``."""
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(every)


def score(
    book_before: Mapping[tuple[str, str], BookLine],
    book_after: Mapping[tuple[str, str], BookLine],
    truth: Mapping[str, Mapping[str, int]],
    flagged: set[tuple[str, str]],
    policy: TolerancePolicy,
) -> dict[str, Any]:
    """Score the flagged records and the books before and after against the truth.

    Args:
        book_before: The book as of the count, by (location, SKU), of the scanned locations.
        book_after: The book after the approved adjustments.
        truth: What is on the shelf: location → SKU → quantity (the scanned locations).
        flagged: (location, SKU) records the system flagged (after its recounts).
        policy: The site's tolerances.

    Returns:
        The figures (see the module docstring) and the counts they come from.
    """
    counts = {loc: (dict(per), True) for loc, per in truth.items()}
    before = compare(book_before, counts, policy, locations=truth)
    after = compare(book_after, counts, policy, locations=truth)
    true = {(row.location, row.sku) for row in before if row.is_exception}
    records = len(before)
    found = flagged & true
    false = flagged - true
    right = records - len(true)
    wrong_after = {(row.location, row.sku) for row in after if row.status != Status.MATCH}
    return {
        "locations": len(truth),
        "records": records,
        "true_discrepancies": len(true),
        "flagged": len(flagged),
        "found": len(found),
        "missed": sorted(f"{loc} {sku}" for loc, sku in true - flagged),
        "false_flags": sorted(f"{loc} {sku}" for loc, sku in false),
        "recall": len(found) / len(true) if true else 1.0,
        "precision": len(found) / len(flagged) if flagged else 1.0,
        "false_flag_rate": len(false) / right if right else 0.0,
        "ira_before": (records - len(true)) / records if records else 1.0,
        "ira_after": (len(after) - len(wrong_after)) / len(after) if after else 1.0,
    }


def _book(store: Any, locations: Iterable[str], at: datetime) -> dict[tuple[str, str], BookLine]:
    from reconciler.store import BookLedger

    wanted = list(locations)
    ledger = BookLedger.load(store, wanted)
    return {
        (location, sku): line
        for location in wanted
        for sku, line in ledger.book(location, at).items()
    }


async def run_night(options: NightOptions) -> dict[str, Any]:
    """Run one night at the simulated site and score it (see the module docstring).

    Returns:
        The figures of :func:`score`, plus ``reconciliation`` (the reconciler's own summary of
        the night), ``counting`` (counts against the truth), ``scans``, ``seconds`` and
        ``report_html``.

    Raises:
        TimeoutError: The night did not settle within ``options.timeout``.
        RuntimeError: A simulator or service did not start.
    """
    night = Night(options)
    async with contextlib.AsyncExitStack() as stack:
        await night.start(stack)
        await night.scan()
        await night.settle_and_approve()
    return night.figures()


class Night:
    """The steps of :func:`run_night`, with what they leave for the next ones."""

    def __init__(self, options: NightOptions) -> None:
        self.options = options
        self.say: Say = options.say or (lambda _text: None)
        self.began = time.monotonic()
        self.deadline = self.began + options.timeout
        self.twin = generate(options.plan.twin)
        self.site = self.twin.spec.site
        self.requests: dict[str, str] = {}
        self.locations: list[str] = []
        self.flagged: set[tuple[str, str]] = set()
        self.cleared = 0

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        """Broker, simulators, reconciler, gateway; each stopped by ``stack``."""
        twin, state_dir = self.twin, self.options.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.say(
            f"twin {self.site}: {len(twin.locations)} locations, {len(twin.skus)} SKUs, "
            f"{sum(len(e) for e in twin.truth.values())} tagged items, {len(twin.book)} book "
            f"records with {len({e.event for e in twin.errors})} injected errors"
        )
        if self.options.broker:
            url = urlparse(self.options.broker)
            host, port = url.hostname or "127.0.0.1", url.port or 1883
            self.say(f"using the broker at {host}:{port}")
        else:
            host, port = await stack.enter_async_context(embedded_broker())
            self.say(f"embedded MQTT broker (amqtt) on {host}:{port}")
        ports = await stack.enter_async_context(site_simulators(self.options.plan))
        self.say(
            f"simulators: {len(ports.llrp)} fixed LLRP readers, {len(ports.serial)} drone "
            f"passes (serial modules), {sum(map(len, ports.cameras.values()))} shelf cameras"
        )
        await self._start_reconciler(stack, host, port)
        await self._start_gateway(stack, host, port, ports)

    async def _start_reconciler(
        self, stack: contextlib.AsyncExitStack, host: str, port: int
    ) -> None:
        """The WMS's book export and movement log through the CSV import, then the service."""
        from reconciler.book_import import read_book_csv
        from reconciler.engine import Engine
        from reconciler.movement_import import read_movements_csv
        from reconciler.service import ReconcileService
        from reconciler.store import open_store

        state_dir = self.options.state_dir
        self.store = store = open_store(f"sqlite:///{state_dir / 'reconciler.sqlite3'}")
        stack.callback(store.close)
        write_book_csv(self.twin, state_dir / "book.csv")
        write_movements_csv(self.twin, state_dir / "movements.csv")
        book = read_book_csv(state_dir / "book.csv")
        store.replace_book(book, source="twin", at=self.twin.spec.book_at)
        store.add_movements(read_movements_csv(state_dir / "movements.csv"))
        self.engine = Engine(
            store, self.site, self.options.policy, max_recounts=self.options.max_recounts
        )
        settings = MqttSettings(
            host=host, port=port, protocol="3.1.1", client_id=f"rec-{self.site}"
        )
        service = ReconcileService(self.engine, settings, client_id=settings.client_id)
        task = asyncio.create_task(service.run(), name="reconciler")

        async def stop() -> None:
            service.stopping.set()
            await asyncio.wait_for(task, 10.0)

        stack.push_async_callback(stop)
        await asyncio.wait_for(service.ready.wait(), 15.0)
        self.say(
            f"reconciler on SQLite under {state_dir}, up to {self.options.max_recounts} recounts"
        )

    async def _start_gateway(
        self, stack: contextlib.AsyncExitStack, host: str, port: int, ports: SitePorts
    ) -> None:
        from gateway.config import GatewayConfig
        from gateway.daemon import Gateway, serve
        from gateway.runtime import open_publisher

        self.gateway_id = f"gw-{uuid.uuid4().hex[:6]}"
        self.config = config = GatewayConfig.model_validate(
            gateway_config(
                self.twin,
                self.options.plan,
                ports,
                gateway_id=self.gateway_id,
                mqtt={"host": host, "port": port, "protocol": "3.1.1"},
                state_dir=str(self.options.state_dir / "gateway"),
                scan_seconds=self.options.scan_seconds,
            )
        )
        self.watcher = watcher = SiteWatcher(host, port, self.site, self.gateway_id, self.say)
        stack.callback(watcher.close)
        if self.options.broker:  # leave a shared broker as it was (after the gateway stopped)
            stack.callback(watcher.clear_retained)
        if not await asyncio.to_thread(watcher.wait_subscribed, 15.0):
            raise RuntimeError("the watcher could not subscribe")
        publisher = await stack.enter_async_context(open_publisher(config, start=False))
        self.gateway = gateway = Gateway(config, publisher)
        task = asyncio.create_task(serve(config, publisher, gateway), name="gateway")

        async def stop() -> None:
            gateway.stopping.set()  # like SIGTERM: a running scan finishes first
            await asyncio.wait_for(task, 60.0)

        stack.push_async_callback(stop)
        if not await asyncio.to_thread(watcher.online.wait, 30.0):
            raise RuntimeError("the gateway did not come online")
        self.say(
            f"gateway {self.gateway_id}: {len(config.readers)} readers, {len(config.zones)} zones"
        )

    async def scan(self) -> None:
        """One scan request per zone, like a planner; wait until each was answered."""
        zones = self.config.zones
        self.requests = {zone: f"night-{zone}-{uuid.uuid4().hex[:6]}" for zone in zones}
        self.locations = sorted({loc for z in zones for loc in self.config.zone_locations(z)})
        self.counted_at = datetime.now(UTC)
        for zone, request_id in self.requests.items():
            self.watcher.request_scan(self.gateway_id, zone, request_id)
        await _until(
            lambda: self.watcher.scanned(self.requests.values()), self.deadline, "the scans"
        )

    async def settle_and_approve(self) -> None:
        """Wait for the recounts to settle; approve what they confirmed; write the report."""
        from reconciler.cli_report import build_report
        from reconciler.report import render_html

        engine, store = self.engine, self.store
        await _until(self._settled, self.deadline, "the recounts to settle")
        self.book_before = _book(store, self.locations, self.counted_at)
        waiting = [
            d
            for d in engine.list_discrepancies()
            if d["state"] == DiscrepancyState.AWAITING_APPROVAL
        ]
        self.flagged = {(d["location"], line["sku"]) for d in waiting for line in d["lines"]}
        every = engine.list_discrepancies(open_only=False)
        self.cleared = sum(1 for d in every if d["state"] == DiscrepancyState.RESOLVED)
        self.say(
            f"settled: {len(waiting)} discrepancies confirmed by recounts, {self.cleared} "
            "cleared by a recount; approving the confirmed ones"
        )
        for item in waiting:
            engine.decide(item["id"], approve=True, reason_code=REASON, approver=APPROVER)
        await _until(
            lambda: not engine.pending_adjustments(), self.deadline, "the adjustments to go out"
        )
        self.book_after = _book(store, self.locations, datetime.now(UTC))
        self.report = build_report(
            store, self.options.policy, since=self.counted_at, title=f"Night at site {self.site}"
        )
        self.report_path = self.options.state_dir / "report.html"
        self.report_path.write_text(render_html(self.report), encoding="utf-8")

    def _settled(self) -> bool:
        """Nothing more will happen: the gateway is idle, the reconciler has every count of
        every scan that ended, and no discrepancy waits for a recount."""
        import sqlalchemy as sa

        from reconciler.schema import counts, discrepancies

        if not self.gateway.idle:
            return False
        ended = self.watcher.ended()
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(counts.c.scan_id, sa.func.count())
                .where(counts.c.scan_id.in_(sorted(ended)))
                .group_by(counts.c.scan_id)
            ).all()
            stored = {str(scan_id): int(n) for scan_id, n in rows}
            pending = conn.execute(
                sa.select(sa.func.count())
                .select_from(discrepancies)
                .where(discrepancies.c.state.in_(_RECOUNTING))
            ).scalar()
        ingested = all(stored.get(scan_id, 0) >= n for scan_id, n in ended.items())
        return ingested and not pending and self.gateway.idle

    def figures(self) -> dict[str, Any]:
        """The figures of :func:`score` and the rest :func:`run_night` returns."""
        truth = self.twin.truth_counts()
        scanned = {loc: truth[loc] for loc in self.locations}
        figures = score(
            self.book_before, self.book_after, scanned, self.flagged, self.options.policy
        )
        summary = self.report.summary
        figures["reconciliation"] = {
            "records_counted": summary.records_counted,
            "ira": summary.ira,
            "exceptions": summary.exceptions,
            "net_variance": summary.net_variance,
            "absolute_variance_value": summary.absolute_variance_value,
            "top_exception_skus": summary.top_exception_skus,
            "confirmed": len({loc for loc, _ in self.flagged}),
            "cleared_by_recount": self.cleared,
            "adjustments": len(self.flagged),
        }
        scans = self.watcher.scans
        night = set(self.requests.values())
        drones = {z for z, zone in self.config.zones.items() if zone.mobile is not None}
        figures["counting"] = _counting(self.watcher, scanned, drones)
        figures["scans"] = {
            "nightly": len(night),
            "recounts": sum(1 for s in scans if s.request_id.startswith("recount-")),
            "incomplete_locations": sum(s.incomplete for s in scans if s.request_id in night),
        }
        figures["invalid_payloads"] = list(self.watcher.invalid)
        figures["seconds"] = round(time.monotonic() - self.began, 1)
        figures["report_html"] = str(self.report_path)
        return figures


def _counting(
    watcher: SiteWatcher, truth: Mapping[str, Mapping[str, int]], drone_zones: set[str]
) -> dict[str, Any]:
    """Counts against the truth: per location the night's first and latest count, and every
    complete count of the night (recounts included) by the kind of device that made it."""

    def exact(counts: Mapping[str, Mapping[str, int]]) -> int:
        return sum(1 for loc, per in truth.items() if dict(counts.get(loc, {"?": -1})) == dict(per))

    kinds: dict[str, dict[str, int]] = {
        "fixed": {"counts": 0, "exact": 0},
        "drone": {"counts": 0, "exact": 0},
    }
    for zone, location, items in watcher.all_counts:
        if location in truth:
            kind = kinds["drone" if zone in drone_zones else "fixed"]
            kind["counts"] += 1
            kind["exact"] += items == dict(truth[location])
    cameras = [(loc, seen) for loc, seen in watcher.vision_totals if loc in truth]
    if cameras:  # the cameras' own figure (the published count is RFID's where it is complete)
        kinds["camera"] = {
            "counts": len(cameras),
            "exact": sum(seen == sum(truth[loc].values()) for loc, seen in cameras),
        }
    return {
        "locations": len(truth),
        "first_count_exact": exact(watcher.first_counts),
        "latest_count_exact": exact(watcher.latest_counts),
        "true_items": sum(sum(per.values()) for per in truth.values()),
        "counted_items": sum(sum(per.values()) for per in watcher.latest_counts.values()),
        "by_device": kinds,
    }
