"""The service's EPCIS sender: each ended scan's complete counts, once, to the capture interface.

A loop (:meth:`EpcisSender.run`, a supervised task of ``reconcile serve``) finds the scans that
ended (:meth:`~reconciler.epcis.records.ExportRecords.discover`), claims one at a time, and sends
its events in documents no larger than ``max_document_bytes`` / ``max_events``. After each
accepted document (``202`` + ``Location``) the record says so before anything else happens;
then the capture job is polled until it finished. A ``413`` makes the documents of that scan
smaller (the server's ``GS1-…-Limit`` headers when given, else half). A connection error, a
timeout, ``5xx`` or ``429`` gives the scan back with backoff (``epcis.retry``); a document the
server refuses, or a capture job that ends without success, marks the scan ``failed`` (logged;
``edgecount epcis send --scan ID`` sends it again once the cause is fixed).

The events carry ``eventID`` s made from the counts' ``msg_id`` s: in the one window where a
crash could still send a document twice (between the server's 202 and the record's update) the
repository receives the same event ids again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.config import ReconcilerConfig
from reconciler.epcis.capture import (
    CaptureClient,
    CaptureRejectedError,
    CaptureUnavailableError,
    DocumentTooLargeError,
)
from reconciler.epcis.document import Naming, document_bytes
from reconciler.epcis.export import Exporter, UnknownScanError
from reconciler.epcis.records import ExportRecord, ExportRecords, ScanBusyError
from reconciler.epcis.settings import EpcisConfig
from reconciler.epcis.validate import EpcisValidator
from reconciler.store import Store

__all__ = ["EpcisSender", "Outcome", "SenderStats", "make_sender", "send_now"]

log = logging.getLogger(__name__)

DISCOVER_SECONDS = 2.0
"""How often the store is asked for scans that ended."""


class _FailedError(Exception):
    """The scan cannot be sent as it is (logged, the record marked failed)."""


class _LostClaimError(Exception):
    """Another instance took the scan over (our lease ran out)."""


class _StoppedError(Exception):
    """The service stops while a job runs; the next start polls it again."""


@dataclass(slots=True)
class SenderStats:
    """What the sender did since it started."""

    documents: int = 0
    events: int = 0
    scans_sent: int = 0
    scans_failed: int = 0
    retries: int = 0
    too_large: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How sending one scan ended: ``sent``, ``failed``, ``retry`` or ``lost``."""

    state: str
    detail: str = ""


@dataclass(slots=True)
class _Limits:
    max_bytes: int
    max_events: int


@dataclass(slots=True)
class EpcisSender:
    """Sends ended scans; several instances may share one database (see ``records``)."""

    exporter: Exporter
    records: ExportRecords
    config: EpcisConfig
    client: CaptureClient | None = None
    """Set by :meth:`run` (its own, for each run) or by the caller of :meth:`send`."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    stats: SenderStats = field(default_factory=SenderStats)
    discover_seconds: float = DISCOVER_SECONDS
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stopping: asyncio.Event) -> None:
        """Find, claim and send scans until ``stopping`` is set (a client of its own)."""
        async with CaptureClient(self.config) as client:
            self.client = client
            try:
                await self._loop(stopping)
            finally:
                self.client = None

    async def _loop(self, stopping: asyncio.Event) -> None:
        cfg = self.config
        while not stopping.is_set():
            now = self.clock()
            await asyncio.to_thread(
                self.records.discover,
                now,
                timedelta(seconds=cfg.settle_seconds),
                timedelta(hours=cfg.backfill_hours),
            )
            for scan_id in await asyncio.to_thread(self.records.candidates, now):
                if stopping.is_set():
                    return
                await self.send(scan_id, stopping)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stopping, self.wake), self.discover_seconds)

    async def send(self, scan_id: str, stopping: asyncio.Event | None = None) -> Outcome | None:
        """Claim one scan and send it; None when it is not due or another instance has it."""
        lease = timedelta(seconds=self.config.lease_seconds)
        record = await asyncio.to_thread(self.records.claim, scan_id, self.clock(), lease)
        if record is None:
            return None
        try:
            await self._send_record(record, stopping or asyncio.Event())
        except _LostClaimError:
            log.warning("EPCIS: scan %s was taken over by another instance", scan_id)
            return Outcome("lost")
        except _StoppedError:
            return Outcome("stopped")
        except _FailedError as failed:
            self.stats.scans_failed += 1
            log.error("EPCIS: scan %s not sent: %s", scan_id, failed)  # noqa: TRY400 - no bug: its reason says it all
            await asyncio.to_thread(self.records.finish, scan_id, self.clock(), error=str(failed))
            return Outcome("failed", str(failed))
        except CaptureUnavailableError as exc:
            self.stats.retries += 1
            delay = self._backoff(record.attempts)
            log.warning("EPCIS: scan %s: %s; again in %.1f s", scan_id, exc, delay)
            retry_at = self.clock() + timedelta(seconds=delay)
            await asyncio.to_thread(
                self.records.release, scan_id, record.attempts + 1, retry_at, str(exc)
            )
            return Outcome("retry", str(exc))
        self.stats.scans_sent += 1
        await asyncio.to_thread(self.records.finish, scan_id, self.clock())
        log.info("EPCIS: scan %s sent (%d events)", scan_id, record.next_event)
        return Outcome("sent")

    @property
    def _client(self) -> CaptureClient:
        if self.client is None:
            raise RuntimeError("EpcisSender.send needs a client (run() makes its own)")
        return self.client

    async def _send_record(self, record: ExportRecord, stopping: asyncio.Event) -> None:
        for job in record.jobs:  # accepted before a restart: see them through, never resend
            if job["state"] == "accepted":
                await self._see_through(record, job, stopping)
        counts = await asyncio.to_thread(self.exporter.scan_counts, record.scan_id, by_arrival=True)
        events = await asyncio.to_thread(self.exporter.events, counts)
        limits = _Limits(self.config.max_document_bytes, self.config.max_events)
        while record.next_event < len(events):
            body, taken = self._next_document(events, record.next_event, limits)
            try:
                url = await self._client.capture(body)
            except DocumentTooLargeError as too_large:
                self.stats.too_large += 1
                _shrink(limits, too_large, len(body), taken)
                continue
            except CaptureRejectedError as exc:
                raise _FailedError(str(exc)) from None
            self.stats.documents += 1
            self.stats.events += taken
            job = {"url": url, "first": record.next_event, "count": taken, "state": "accepted"}
            record.jobs.append(job)
            record.next_event += taken
            await self._record(record, len(events))
            await self._see_through(record, job, stopping)

    def _next_document(
        self, events: Sequence[dict[str, Any]], first: int, limits: _Limits
    ) -> tuple[bytes, int]:
        """The largest document from ``events[first:]`` within the limits (at least one event).

        Raises:
            _FailedError: One event alone is larger than the byte limit.
        """
        last = min(len(events), first + limits.max_events)
        while True:
            document = self.exporter.document(events[first:last], self.clock())
            body = document_bytes(document)
            if len(body) <= limits.max_bytes:
                return body, last - first
            if last - first == 1:
                raise _FailedError(
                    f"one event is {len(body)} bytes, over the limit {limits.max_bytes}"
                )
            # shrink in proportion to the excess (and by one at least)
            last = first + max(
                1, min(last - first - 1, (last - first) * limits.max_bytes // len(body))
            )

    async def _see_through(
        self, record: ExportRecord, job: dict[str, Any], stopping: asyncio.Event
    ) -> None:
        """Poll a capture job until it finished (renewing the lease); failure ends the scan."""
        lease = timedelta(seconds=self.config.lease_seconds)
        while True:
            if not await asyncio.to_thread(
                self.records.renew, record.scan_id, self.clock() + lease
            ):
                raise _LostClaimError
            try:
                status = await self._client.job(job["url"])
            except CaptureRejectedError as exc:
                raise _FailedError(str(exc)) from None
            if not status.running:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.config.poll_seconds)
            if stopping.is_set():
                raise _StoppedError  # the lease runs out; the next start polls the job again
        job["state"] = "success" if status.success else "failed"
        await self._record(record, None)
        if not status.success:
            raise _FailedError(f"capture job {job['url']} failed: {status.errors!r:.500}")

    async def _record(self, record: ExportRecord, events: int | None) -> None:
        done = await asyncio.to_thread(
            self.records.progress,
            record.scan_id,
            record.next_event,
            record.jobs,
            events if events is not None else record.next_event,
        )
        if not done:
            raise _LostClaimError

    def _backoff(self, attempts: int) -> float:
        retry = self.config.retry
        ceiling = min(retry.max_seconds, retry.min_seconds * 2 ** min(attempts, 32))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


def _shrink(limits: _Limits, too_large: DocumentTooLargeError, size: int, taken: int) -> None:
    """Smaller documents after a 413: the server's limits when it told them, else half."""
    before = (limits.max_bytes, limits.max_events)
    if too_large.max_bytes is not None:
        limits.max_bytes = min(limits.max_bytes, too_large.max_bytes)
    if too_large.max_events is not None:
        limits.max_events = min(limits.max_events, too_large.max_events)
    if (limits.max_bytes, limits.max_events) == before and size <= limits.max_bytes:
        # no limits told, or ones this document already kept: halve what was refused
        limits.max_bytes = max(1, size // 2)
        limits.max_events = max(1, taken // 2)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def make_sender(
    store: Store,
    config: ReconcilerConfig,
    validator: EpcisValidator,
    client: CaptureClient | None = None,
    *,
    instance: str | None = None,
) -> EpcisSender:
    """The sender of a reconciler's config (``instance``, default its ``instance_id``,
    names its claims)."""
    exporter = Exporter.configured(store, config.site, config.epcis, config.locations, validator)
    records = ExportRecords(store, instance or config.instance_id)
    return EpcisSender(exporter, records, config.epcis, client)


async def send_now(
    store: Store, config: ReconcilerConfig, validator: EpcisValidator, scan_id: str
) -> tuple[bool, str]:
    """``epcis send``: (failed?, what happened) of sending one scan now."""
    try:
        await asyncio.to_thread(UnknownScanCheck(store).check, scan_id)
        records = ExportRecords(store, f"{config.instance_id}-cli")
        await asyncio.to_thread(records.request, scan_id, datetime.now(UTC))
    except (UnknownScanError, ScanBusyError) as exc:
        return True, f"error: {exc.args[0]}"
    async with CaptureClient(config.epcis) as client:
        sender = make_sender(store, config, validator, client, instance=records.me)
        outcome = await sender.send(scan_id)
    if outcome is None or outcome.state != "sent":
        detail = "another instance took it" if outcome is None else outcome.detail
        return True, f"error: scan {scan_id} not sent: {detail}"
    return (
        False,
        f"scan {scan_id}: {sender.stats.events} events sent in {sender.stats.documents} documents",
    )


@dataclass(frozen=True, slots=True)
class UnknownScanCheck:
    """Whether a scan exists (a scan row or a count)."""

    store: Store

    def check(self, scan_id: str) -> None:
        """Raises UnknownScanError when no scan and no count has the id."""
        Exporter(self.store, Naming("urn:x:"), "urn:x:", EpcisValidator(None)).scan_counts(scan_id)
