"""``edgecount reconcile serve``: subscribe, validate, store once, reconcile, publish.

Every payload is validated against the contract. An invalid one is rejected with its reason,
counted, logged and republished to ``edgecount/v1/{site}/deadletter``; the service keeps
running. Counts and scans are stored once per ``msg_id`` (QoS 1 delivers duplicates), so the
same message twice is applied once. With ``shared_group`` set the subscriptions are MQTT 5
shared subscriptions (``$share/<group>/…``) and several instances split the load.

The connection is supervised: reconnect with backoff and jitter; on every (re)connect the
retained messages of open discrepancies are published again and adjustments not yet
acknowledged are re-sent, so a broker restart loses nothing the store knows.

Under systemd (``Type=notify``) the service says ``READY=1`` once its first subscriptions are
acknowledged, keeps ``STATUS=`` current, feeds the watchdog while its ingest worker and store
publisher run (a broker that is away is not unhealthy) and says ``STOPPING=1`` on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgecount import contract
from edgecount.backoff import Backoff
from edgecount.mqtt import MqttConnection, MqttSettings
from edgecount.sdnotify import Notifier
from reconciler.config import ApiConfig
from reconciler.engine import Engine, Outgoing

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # how often the table of adjustments is checked for new ones
BATCH = 500  # messages handled in one database transaction at most
LINGER_SECONDS = 0.02  # under load, wait this long for a batch to fill (like Kafka's linger.ms)
INBOX = 100_000  # messages waiting for the database at most; more are dropped and counted


@dataclass(slots=True)
class ServiceStats:
    """Counters of the running service."""

    received: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    adjustments_published: int = 0
    decisions_announced: int = 0
    decisions_published: int = 0
    connects: int = 0
    dropped: int = 0
    batches: int = 0
    statuses: int = 0


class ReconcileService:
    """The running reconciler: one MQTT connection, the engine, and a publisher loop."""

    def __init__(
        self,
        engine: Engine,
        settings: MqttSettings,
        *,
        client_id: str,
        shared_group: str | None = None,
        api: ApiConfig | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.client_id = client_id
        self.shared_group = shared_group
        self.api = api
        self.api_port: int | None = None
        self.stats = ServiceStats()
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()  # subscribed (set on each connection)
        self._conn: MqttConnection | None = None
        self._closed = asyncio.Event()
        # store-driven messages in flight: packet id → (key, what to do on the PUBACK)
        self._acks: dict[int, tuple[tuple[str, int], Callable[[], None]]] = {}
        self._in_flight: set[tuple[str, int]] = set()
        self._pending_subs: set[str] = set()
        self._handled = asyncio.Event()  # set after every batch handled
        self._inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=INBOX)
        self.notifier = Notifier()
        """systemd notifications (a no-op outside systemd)."""
        self._tasks: list[asyncio.Task[None]] = []  # must keep running (health)
        self._announced_ready = False

    def health_reasons(self) -> list[str]:
        """Why the service is unhealthy (a task that should run has ended); empty if healthy."""
        if self.stopping.is_set():
            return []
        return [f"task {task.get_name()} ended" for task in self._tasks if task.done()]

    def counters(self) -> dict[str, float]:
        """Totals since start for ``/metrics`` (``rejected`` is the dead letters sent)."""
        stats = self.stats
        return {
            "messages_received": stats.received,
            "messages_applied": stats.applied,
            "messages_duplicate": stats.duplicates,
            "messages_dropped": stats.dropped,
            "deadletters": stats.rejected,
            "adjustments_published": stats.adjustments_published,
            "decisions_announced": stats.decisions_announced,
            "decisions_published": stats.decisions_published,
            "connects": stats.connects,
            "batches": stats.batches,
            "statuses": stats.statuses,
        }

    def gauges(self) -> dict[str, float]:
        """Current values for ``/metrics``."""
        return {
            "inbox_depth": self._inbox.qsize(),
            "subscribed": 1.0 if self.ready.is_set() else 0.0,
            "healthy": 0.0 if self.health_reasons() else 1.0,
        }

    def filters(self) -> list[str]:
        """Topic filters to subscribe to."""
        root = contract.site_root(self.engine.site)
        plain = [f"{root}count/#", f"{root}scan/#", f"{root}status/+"]
        if self.shared_group:
            return [f"$share/{self.shared_group}/{f}" for f in plain]
        return plain

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :attr:`stopping` is set."""
        backoff = Backoff(self.settings.reconnect_min_delay, self.settings.reconnect_max_delay)
        api_task = await self._start_api()
        poller = asyncio.create_task(self._poll_store(), name="store-publisher")
        worker = asyncio.create_task(self._work(), name="ingest")
        self._tasks = [poller, worker]
        watchdog = asyncio.create_task(
            self.notifier.feed_watchdog(self.health_reasons), name="watchdog"
        )
        try:
            while not self.stopping.is_set():
                self._closed.clear()
                self._conn = MqttConnection(
                    self.settings, self.client_id, self, loop=asyncio.get_running_loop()
                )
                try:
                    await self._conn.open()
                except OSError as exc:
                    log.warning("broker %s unreachable: %s", self.settings.describe(), exc)
                else:
                    await self._wait_closed_or_stop()
                    if self.ready.is_set():
                        backoff.reset()
                await self._close_conn()
                if not self.stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), backoff.next_delay())
        finally:
            self.notifier.stopping("stopping")
            for task in (poller, worker, watchdog):
                task.cancel()
            await asyncio.gather(poller, worker, watchdog, return_exceptions=True)
            if api_task is not None:
                self.stopping.set()
                await asyncio.gather(api_task, return_exceptions=True)

    async def _start_api(self) -> asyncio.Task[None] | None:
        """Start the REST API in this loop (when configured); fails loudly if the port is taken."""
        if self.api is None:
            return None
        from reconciler.api import create_app, metrics_registry, serve_api

        listening = asyncio.Event()

        def bound(port: int) -> None:
            self.api_port = port
            listening.set()

        task = asyncio.create_task(
            serve_api(
                create_app(
                    self.engine,
                    metrics=metrics_registry(self.engine, self.counters, self.gauges),
                ),
                self.api.host,
                self.api.port,
                self.stopping,
                on_listening=bound,
            ),
            name="rest-api",
        )
        waiter = asyncio.ensure_future(listening.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()  # OSError (port in use): the service fails and systemd restarts it
        log.info("REST API on http://%s:%d", self.api.host, self.api_port)
        return task

    async def _wait_closed_or_stop(self) -> None:
        waiters = {
            asyncio.ensure_future(self._closed.wait()),
            asyncio.ensure_future(self.stopping.wait()),
        }
        _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        self.ready.clear()
        if conn is None:
            return
        if conn.is_connected():
            conn.disconnect()
        await conn.close(5.0)

    # -- connection events (on the loop) ----------------------------------------------------

    def connection_acked(
        self, conn: MqttConnection, reason: ReasonCode, _props: Properties | None
    ) -> None:
        """Subscribe after a good CONNACK; a refusal is logged and retried."""
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        self.stats.connects += 1
        self._pending_subs = set(self.filters())
        for topic_filter in self._pending_subs:
            conn.subscribe(topic_filter, qos=1)
        self._acks.clear()
        self._in_flight.clear()
        self.publish(self.engine.open_discrepancy_messages())

    def subscription_acked(
        self, _conn: MqttConnection, topic_filter: str, reasons: list[ReasonCode]
    ) -> None:
        """Ready once every filter is subscribed."""
        if any(r.is_failure for r in reasons):
            log.error("subscription to %s refused: %s", topic_filter, reasons)
            return
        self._pending_subs.discard(topic_filter)
        if not self._pending_subs:
            self.ready.set()
            status = f"subscribed on {self.settings.describe()}; {self.stats.received} received"
            if self._announced_ready:
                self.notifier.status(status)
            else:
                self._announced_ready = True
                self.notifier.ready(status)

    def connection_closed(self, _conn: MqttConnection, reason: str) -> None:
        """Reconnect (the supervisor loop does)."""
        if not self.stopping.is_set():
            log.warning("connection to the broker closed: %s", reason)
            self.notifier.status(f"broker connection lost ({reason}); reconnecting")
        self._closed.set()

    def message_acked(self, _conn: MqttConnection, mid: int, reason: ReasonCode) -> None:
        """Mark a store-driven message (adjustment, decision) done once the broker has it."""
        pending = self._acks.pop(mid, None)
        if pending is None:
            return
        key, on_ack = pending
        self._in_flight.discard(key)
        if reason.is_failure:
            log.error("broker refused %s %d: %s", key[0], key[1], reason)
            return
        on_ack()
        self._handled.set()

    async def wait_until(self, predicate: Callable[[ServiceStats], bool]) -> None:
        """Wait until ``predicate(stats)`` holds after a message (bound it with a timeout)."""
        while not predicate(self.stats):
            self._handled.clear()
            await self._handled.wait()

    def message_received(self, _conn: MqttConnection, topic: str, raw: bytes) -> None:
        """Queue an incoming message for the ingest worker (never blocks the loop)."""
        self.stats.received += 1
        try:
            self._inbox.put_nowait((topic, raw))
        except asyncio.QueueFull:
            self.stats.dropped += 1
            log.error(  # noqa: TRY400 - no exception worth a trace: the queue is full
                "ingest backlog full (%d): message on %s dropped", INBOX, topic
            )

    async def _work(self) -> None:
        """Take queued messages in batches and handle each batch in a worker thread."""
        while True:
            batch = [await self._inbox.get()]
            if not self._inbox.empty():
                # Busy: linger a moment so the batch fills (fewer, larger transactions).
                await asyncio.sleep(LINGER_SECONDS)
            while len(batch) < BATCH and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            try:
                out = await asyncio.to_thread(self._handle_batch, batch)
            except Exception:
                log.exception(
                    "a batch of %d messages failed; they stay on the broker "
                    "(retained counts are re-read on restart)",
                    len(batch),
                )
                out = []
            self.stats.batches += 1
            self.publish(out)
            self._handled.set()

    def _handle_batch(self, batch: list[tuple[str, bytes]]) -> list[Outgoing]:
        """Validate, store once, reconcile (runs in a worker thread)."""
        out: list[Outgoing] = []
        counts: list[dict[str, Any]] = []
        for topic, raw in batch:
            try:
                payload = contract.decode(raw, topic=topic)
            except contract.ContractError as exc:
                out.append(self._reject(topic, raw, str(exc)))
                continue
            if payload["schema"] in (contract.COUNT, contract.SCAN) and (
                denied := self.engine.unauthorized(payload)
            ):
                out.append(self._reject(topic, raw, denied))  # never applied
                continue
            if payload["schema"] == contract.COUNT:
                counts.append(payload)
            elif payload["schema"] == contract.STATUS:
                self.stats.statuses += 1
                if payload["state"] == "online":  # re-send what it may have missed offline
                    out += self.engine.recount_requests_for(payload["gateway"])
            elif payload["schema"] == contract.SCAN:
                if self.engine.store.record_scan(payload, datetime.now(UTC)):
                    self.stats.applied += 1
                else:
                    self.stats.duplicates += 1
            else:
                out.append(self._reject(topic, raw, f"{payload['schema']} is not accepted here"))
        new = self.engine.store.record_counts(counts, datetime.now(UTC))
        self.stats.duplicates += len(counts) - len(new)
        self.stats.applied += len(new)
        return out + self.engine.on_counts(new)

    def _reject(self, topic: str, raw: bytes, reason: str) -> Outgoing:
        self.stats.rejected += 1
        log.warning(
            "rejected message on %s: %s (%d rejected so far)", topic, reason, self.stats.rejected
        )
        letter = contract.deadletter_payload(
            topic=topic, raw=raw, reason=reason, rejected_by=self.client_id
        )
        return Outgoing(contract.deadletter_topic(self.engine.site), letter, retain=False)

    # -- publishing --------------------------------------------------------------------------

    def publish(self, messages: list[Outgoing]) -> None:
        """Send messages now (QoS 1); what cannot go out is re-derived from the store later."""
        conn = self._conn
        for message in messages:
            body = b"" if message.payload is None else contract.encode(message.payload)
            if (
                conn is None
                or conn.publish(message.topic, body, qos=1, retain=message.retain) is None
            ):
                log.warning("not connected: %s not sent now", message.topic)

    async def _poll_store(self) -> None:
        """Publish what decisions (CLI, API) left in the store: adjustments and clears."""
        while True:
            conn = self._conn
            if conn is not None and self.ready.is_set():
                self._send_from_store(
                    conn, "adjustment", self.engine.pending_adjustments(), self._adjustment_done
                )
                self._send_from_store(
                    conn, "decision", self.engine.unannounced(), self._decision_done
                )
                self._send_from_store(
                    conn, "decision-out", self.engine.pending_decisions(), self._decision_out_done
                )
            await asyncio.sleep(POLL_SECONDS)

    def _adjustment_done(self, row_id: int) -> None:
        self.engine.adjustment_published(row_id)
        self.stats.adjustments_published += 1

    def _decision_done(self, row_id: int) -> None:
        self.engine.announced(row_id)
        self.stats.decisions_announced += 1

    def _decision_out_done(self, row_id: int) -> None:
        self.engine.decision_published(row_id)
        self.stats.decisions_published += 1

    def _send_from_store(
        self,
        conn: MqttConnection,
        kind: str,
        items: list[tuple[int, Outgoing]],
        done: Callable[[int], None],
    ) -> None:
        for row_id, message in items:
            key = (kind, row_id)
            if key in self._in_flight:
                continue
            body = b"" if message.payload is None else contract.encode(message.payload)
            mid = conn.publish(message.topic, body, qos=1, retain=message.retain)
            if mid is not None:
                self._acks[mid] = (key, functools.partial(done, row_id))
                self._in_flight.add(key)


async def serve_until_signal(service: ReconcileService) -> int:
    """Run the service until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stopping.set)
    try:
        await service.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0
