"""``edgecount reconcile serve``: subscribe, validate, store once, reconcile, publish.

Every payload is validated against the contract. An invalid one is rejected with its reason,
counted, logged and republished to ``edgecount/v1/{site}/deadletter``; the service keeps
running. Counts and scans are stored once per ``msg_id`` (QoS 1 delivers duplicates), so the
same message twice is applied once. With ``shared_group`` set the subscriptions are MQTT 5
shared subscriptions (``$share/<group>/…``) and several instances split the load.

One service serves one site, or many (a centre, :mod:`reconciler.centre`): each site has its
engine and store, a batch is split by the site in each message's topic, and each site's
outboxes are published by the one instance holding its publisher lease
(:mod:`reconciler.lease`); what a count makes is written once under the store's locks
(:mod:`reconciler.locks`), whichever instance handles it.

Delivery (see docs/reconciliation.md): incoming QoS 1 messages are acknowledged by hand
(:class:`~edgecount.mqtt.Delivery`), only once the database transaction of the batch holding
them committed, or once their dead letter was acknowledged by the broker. With a persistent
session (``mqtt_session_expiry_seconds``) the broker keeps what is not acknowledged, and what
arrives while the service is down, and sends it again: a crash or a database outage loses
nothing, and duplicates are absorbed by ``msg_id``.

Two supervised loops do the work, and neither ever runs blocking database calls on the event
loop (they use worker threads):

* the **ingest** worker stores batches; a batch whose transaction fails because the database
  is away is kept, not acknowledged, and retried with backoff until the database answers;
* the **store publisher** publishes what the store holds for the broker (the
  :func:`store_streams`: adjustments, decision clears, ...) and, on each connection, the
  retained messages of open discrepancies; a failing round is logged with its trace, counted
  and retried with backoff.

Both report through :class:`LoopHealth` to ``/health`` and ``/metrics``. Under systemd
(``Type=notify``) the service says ``READY=1`` once its first subscriptions are acknowledged,
keeps ``STATUS=`` current, feeds the watchdog while both loops run (a broker or a database
that is away is not a reason to restart: the loops retry) and says ``STOPPING=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgecount import contract
from edgecount.backoff import Backoff
from edgecount.exitcodes import ExitCode
from edgecount.metrics import Family
from edgecount.mqtt import Delivery, MqttConnection, MqttSettings
from edgecount.sdnotify import Notifier
from edgecount.supervisor import FATAL, RESTART, Supervisor, TaskFailed
from reconciler.config import ApiConfig
from reconciler.engine import Engine, Outgoing
from reconciler.ingest import BatchAttempt, dead_letter, handle_sites, topic_site
from reconciler.lease import PublisherLeases
from reconciler.loops import (
    BatchOutcome,
    LoopHealth,
    ServiceStats,
    StoreStream,
    database_unavailable,
    store_streams,
)

if TYPE_CHECKING:
    from reconciler.api import ApiServer
    from reconciler.epcis.sender import EpcisSender

__all__ = ["ReconcileService", "ServiceStats", "StoreStream", "serve_until_signal"]

StreamKey = tuple[str, str, int]
"""A store-stream message: (site, stream kind, row id)."""

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # how often the store is checked for messages to publish
IDLE_POLL_MAX_SECONDS = 10.0  # the longest wait before looking again at an idle site
BATCH = 2000  # messages handled in one database transaction at most
LINGER_SECONDS = 0.02  # under load, wait this long for a batch to fill (like Kafka's linger.ms)
INBOX = 100_000  # messages waiting for the database at most; then the connection holds back
UNACKED = 4000  # MQTT 5 Receive Maximum: unacknowledged messages the broker may send at once
RETRY_MIN_SECONDS = 0.5  # first retry delay after a database failure
RETRY_MAX_SECONDS = 10.0  # cap on that delay


class ReconcileService:
    """The running reconciler: one MQTT connection, the engine of each site it serves, an
    ingest worker, a store publisher.

    Args:
        engine: The engine of the one site served, or of each site (a centre).
        settings: The broker.
        client_id: The MQTT client id (one per instance).
        shared_group: Share the subscriptions with the other instances of this group.
        api: Serve the REST API and the console (one site only).
        epcis: EPCIS senders, one for each site that sends (none: no EPCIS capture).
        metrics: ``(host, port)`` to serve ``/metrics`` and ``/healthz`` on without the REST
            API (a centre's figures; port 0: any free one, see :attr:`metrics_port`).

    Raises:
        ValueError: No engine, two engines of one site, or ``api`` with several sites.
    """

    def __init__(
        self,
        engine: Engine | Sequence[Engine],
        settings: MqttSettings,
        *,
        client_id: str,
        shared_group: str | None = None,
        api: ApiConfig | None = None,
        metrics: tuple[str, int] | None = None,
        epcis: Sequence[EpcisSender] = (),
    ) -> None:
        self.engines = [engine] if isinstance(engine, Engine) else list(engine)
        self.by_site = {e.site: e for e in self.engines}
        if not self.engines or len(self.by_site) != len(self.engines):
            raise ValueError("a reconcile service needs one engine for each of its sites")
        if api is not None and len(self.engines) > 1:
            raise ValueError("the REST API serves one site: run `reconcile console` per site")
        self.engine = self.engines[0]
        """The (first) site's engine; the REST API's."""
        self.epcis = list(epcis)
        """Senders of ended scans to EPCIS capture interfaces (docs/epcis.md): one for each
        site that has ``epcis.capture_url``."""
        self.settings = settings
        self.client_id = client_id
        self.shared_group = shared_group
        self.api = api
        self.api_port: int | None = None
        self.metrics_address = metrics
        self.metrics_port: int | None = None
        self.stats = ServiceStats()
        self.streams = [stream for e in self.engines for stream in store_streams(e)]
        self.leases = PublisherLeases({e.site: e.store for e in self.engines})
        """The sites whose outboxes this instance publishes."""
        self.ingest_health = LoopHealth()
        self.publisher_health = LoopHealth()
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()  # subscribed (set on each connection)
        self._conn: MqttConnection | None = None
        self._closed = asyncio.Event()
        # messages whose PUBACK does something: packet id → (key or None, what to do)
        self._acks: dict[int, tuple[StreamKey | None, Callable[[], None]]] = {}
        self._in_flight: set[StreamKey] = set()  # sent or acked, not yet recorded
        self._confirmed: list[tuple[StoreStream, int]] = []  # acked, to record in the store
        self._resync_conn: MqttConnection | None = None  # the connection of _resynced
        self._resynced: set[str] = set()  # sites whose open discrepancies were re-sent on it
        self._pending_subs: set[str] = set()
        self._handled = asyncio.Event()  # set after every batch handled
        self._wake = asyncio.Event()  # the store publisher has work now
        # A centre's sites are polled less often while their outboxes stay empty (one site:
        # every round, as always; 100 sites: every 10 s), and at the next round after a
        # batch of theirs was stored: 4 queries a site a second kept a core 40 % busy idle.
        self._idle_poll = min(IDLE_POLL_MAX_SECONDS, POLL_SECONDS * len(self.engines) / 10)
        self._next_poll: dict[str, float] = {}  # site → loop time of its next look
        self._inbox: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=INBOX)
        self.notifier = Notifier()
        """systemd notifications (a no-op outside systemd)."""
        self.tasks = Supervisor("reconciler", self.stopping)
        """The service's supervised tasks (policies in docs/architecture.md, "Task trees")."""
        self.api_server: ApiServer | None = None
        """The REST API's server, once listening."""
        self._announced_ready = False

    def health_reasons(self) -> list[str]:
        """Why the service is unhealthy (a task restarting or failed); empty if healthy.

        A database or broker that is away is not listed: the loops retry by themselves
        (see :meth:`loop_health`).
        """
        return self.tasks.reasons()

    def loop_health(self) -> dict[str, dict[str, Any]]:
        """The store publisher's and the ingest worker's state, for ``/health``."""
        ingest = self.ingest_health.report() | {"waiting": self._inbox.qsize()}
        return {"publisher": self.publisher_health.report(), "ingest": ingest}

    def counters(self) -> dict[str, int]:
        """Totals since start for ``/metrics`` (``rejected`` is the dead letters sent)."""
        stats = self.stats
        published = {s.counter: stats.published.get(s.kind, 0) for s in self.streams}
        connection_dropped, held_back = self._connection_figures()
        return {
            "messages_received": stats.received,
            "messages_applied": stats.applied,
            "messages_duplicate": stats.duplicates,
            "messages_dropped": stats.dropped + connection_dropped,
            "mqtt_held_back": held_back,
            "messages_acked": stats.acked,
            "deadletters": stats.rejected,
            "connects": stats.connects,
            "batches": stats.batches,
            "statuses": stats.statuses,
            "frames": stats.frames,
            "store_errors": self.ingest_health.errors + self.publisher_health.errors,
            "ingest_errors": self.ingest_health.errors,
            "publisher_errors": self.publisher_health.errors,
        } | published

    def gauges(self) -> dict[str, float]:
        """Current values for ``/metrics``."""
        return {
            "inbox_depth": self._inbox.qsize(),
            "subscribed": 1.0 if self.ready.is_set() else 0.0,
            "healthy": 0.0 if self.health_reasons() else 1.0,
            "publisher_healthy": 1.0 if self.publisher_health.healthy else 0.0,
            "ingest_healthy": 1.0 if self.ingest_health.healthy else 0.0,
            "sites": len(self.engines),
            "publisher_leases": len(self.leases.held),
        }

    def filters(self) -> list[str]:
        """Topic filters to subscribe to (four per site)."""
        plain = []
        for engine in self.engines:
            root = contract.site_root(engine.site)
            plain += [f"{root}count/#", f"{root}scan/#", f"{root}status/+", f"{root}frame/#"]
        if self.shared_group:
            return [f"$share/{self.shared_group}/{f}" for f in plain]
        return plain

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :attr:`stopping` is set; the tasks run under :attr:`tasks`.

        Raises:
            TaskFailed: A task failed for good (logged with its trace when it happened):
                the caller exits non-zero so that systemd restarts the service.
            OSError: The REST API's address cannot be bound.
        """
        tasks = self.tasks
        try:
            async with tasks:
                await self._start_api(tasks)
                await self._start_metrics(tasks)
                tasks.start("mqtt-connection", self._stay_connected, RESTART)
                tasks.start("ingest", self._work, RESTART, cancel_on_stop=True)
                tasks.start(
                    "store-publisher", self._publish_from_store, RESTART, cancel_on_stop=True
                )
                for n, sender in enumerate(self.epcis):
                    work = functools.partial(sender.run, self.stopping)
                    name = "epcis-sender" if n == 0 else f"epcis-sender-{n + 1}"
                    tasks.start(name, work, RESTART, cancel_on_stop=True)
                feeder = functools.partial(self.notifier.feed_watchdog, self.health_reasons)
                tasks.start("watchdog", feeder, FATAL, may_finish=True, cancel_on_stop=True)
                try:
                    await tasks.wait()
                except TaskFailed as failed:
                    self.notifier.stopping(f"failed: {failed}")
                    raise
                self.notifier.stopping("stopping")
        finally:
            self.stopping.set()
            self.leases.close()  # another instance takes this one's sites at once

    async def _stay_connected(self) -> None:
        """Hold the MQTT connection: connect, wait until it closes, reconnect with backoff."""
        backoff = Backoff(self.settings.reconnect_min_delay, self.settings.reconnect_max_delay)
        try:
            while not self.stopping.is_set():
                await self._connect_once()
                if self.ready.is_set():
                    backoff.reset()
                await self._close_conn()
                if not self.stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), backoff.next_delay())
        finally:
            await self._close_conn()

    async def _connect_once(self) -> None:
        self._closed.clear()
        self._conn = MqttConnection(
            self.settings,
            self.client_id,
            self,
            loop=asyncio.get_running_loop(),
            max_backlog=INBOX,
            on_delivery=self.message_delivered,
            held_until_released=True,  # the inbox is inside the bound: back-pressure, no drops
            receive_maximum=UNACKED,
        )
        try:
            await self._conn.open()
        except OSError as exc:
            log.warning("broker %s unreachable: %s", self.settings.describe(), exc)
            return
        await self._wait_closed_or_stop()

    async def _start_api(self, tasks: Supervisor) -> None:
        """Start the REST API in this loop (when configured); fails loudly if the port is taken."""
        if self.api is None:
            return
        from reconciler.api import ApiServer, create_app, metrics_registry
        from reconciler.auth.dependencies import Auth

        def bound(port: int) -> None:
            self.api_port = port

        app = create_app(
            self.engine,
            auth=Auth(self.engine.store.engine, self.api),
            metrics=metrics_registry(
                self.engine, self.counters, self.gauges, families=self._task_families
            ),
            service_health=self.loop_health,
        )
        server = ApiServer(app, self.api.host, self.api.port, on_listening=bound)
        server.open()  # OSError (port in use): the service fails and systemd restarts it
        self.api_server = server
        tasks.start("rest-api", functools.partial(server.serve, self.stopping), FATAL)
        log.info("REST API on http://%s:%d", self.api.host, self.api_port)

    async def _start_metrics(self, tasks: Supervisor) -> None:
        """Serve ``/metrics`` and ``/healthz`` alone (when asked); fails if the port is taken."""
        if self.metrics_address is None:
            return
        from edgecount.metrics_http import Endpoint, MetricsServer
        from reconciler.api import service_registry

        def bound(port: int) -> None:
            self.metrics_port = port

        registry = service_registry(self.counters, self.gauges, families=self._task_families)
        host, port = self.metrics_address
        server = MetricsServer(
            Endpoint(registry, self.health_reasons), host, port, on_listening=bound
        )
        await server.open()  # OSError (port in use): the service fails and systemd restarts it
        tasks.start("metrics-http", functools.partial(server.serve, self.stopping), FATAL)

    def _task_families(self) -> Iterator[Family]:
        return self.tasks.families("edgecount_reconciler")

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
        self.stats.connection_dropped += conn.dropped
        self.stats.held_back += conn.waits

    def _connection_figures(self) -> tuple[int, int]:
        """Messages the MQTT connections dropped, and times they held the broker back (their
        network thread waited for room), the current connection's included."""
        conn = self._conn
        dropped, waits = (0, 0) if conn is None else (conn.dropped, conn.waits)
        return self.stats.connection_dropped + dropped, self.stats.held_back + waits

    # -- connection events (on the loop) ----------------------------------------------------

    def connection_acked(
        self, conn: MqttConnection, reason: ReasonCode, _props: Properties | None
    ) -> None:
        """Subscribe after a good CONNACK; a refusal is logged and retried."""
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        self.stats.connects += 1
        if self.settings.session_expiry is not None and not conn.session_present:
            log.warning("the broker had no session for %s: a new one starts", self.client_id)
        # a session that holds the subscriptions has queued what came: no retained repeats
        persistent = self.settings.session_expiry is not None
        self._pending_subs = set(self.filters())
        for topic_filter in self._pending_subs:
            conn.subscribe(topic_filter, qos=1, retained_if_new=persistent)
        # PUBACKs of the old connection never come: send those messages again
        for key, _on_ack in self._acks.values():
            if key is not None:
                self._in_flight.discard(key)
        self._acks.clear()
        self._wake.set()  # the publisher re-sends open discrepancies on this connection

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
            self._wake.set()
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
        """Run what waits on a PUBACK (store streams, dead letters)."""
        pending = self._acks.pop(mid, None)
        if pending is None:
            return
        key, on_ack = pending
        if reason.is_failure:
            log.error("broker refused %s (packet %d): %s", key or "a dead letter", mid, reason)
            if key is not None:
                self._in_flight.discard(key)
                return
        on_ack()
        self._handled.set()

    async def wait_until(self, predicate: Callable[[ServiceStats], bool]) -> None:
        """Wait until ``predicate(stats)`` holds after a message (bound it with a timeout)."""
        while not predicate(self.stats):
            self._handled.clear()
            await self._handled.wait()

    def message_received(self, conn: MqttConnection, topic: str, raw: bytes) -> None:
        """An incoming message without manual acknowledgement (treated as QoS 0)."""
        self.message_delivered(Delivery(conn, topic, raw, 0, 0))

    def message_delivered(self, delivery: Delivery) -> None:
        """Queue an incoming message for the ingest worker (never blocks the loop)."""
        self.stats.received += 1
        try:
            self._inbox.put_nowait(delivery)
        except asyncio.QueueFull:
            delivery.conn.release()
            self.stats.dropped += 1  # not acknowledged: a persistent session re-sends it
            log.error(  # noqa: TRY400 - no exception worth a trace: the queue is full
                "ingest backlog full (%d): message on %s dropped", INBOX, delivery.topic
            )

    # -- ingest ------------------------------------------------------------------------------

    async def _work(self) -> None:
        """Take queued messages in batches; store each batch, then acknowledge it."""
        while True:
            batch = [await self._inbox.get()]
            if not self._inbox.empty():
                # Busy: linger a moment so the batch fills (fewer, larger transactions).
                await asyncio.sleep(LINGER_SECONDS)
            while len(batch) < BATCH and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            for delivery in batch:  # their room in the connection's bound is free again
                delivery.conn.release()
            outcome = await self._store_until_committed(batch)
            self.stats.batches += 1
            self.stats.applied += outcome.applied
            self.stats.duplicates += outcome.duplicates
            self.stats.statuses += outcome.statuses
            self.stats.frames += outcome.frames
            self.stats.rejected += len(outcome.letters)
            for delivery in batch:  # what they made is looked for at the next round
                self._next_poll.pop(topic_site(delivery.topic), None)
            self._acknowledge(batch, outcome.letters)
            self.publish(outcome.out)
            self._handled.set()

    async def _store_until_committed(self, batch: list[Delivery]) -> BatchOutcome:
        """Handle a batch in a worker thread; while the database is away, wait and retry.

        Nothing of the batch is acknowledged before this returns, so a crash while waiting
        loses nothing: the broker sends the batch again.
        """
        backoff = Backoff(RETRY_MIN_SECONDS, RETRY_MAX_SECONDS)
        attempt = BatchAttempt()  # what an attempt did before it failed
        while True:
            try:
                outcome = await self._handle_in_thread(batch, attempt)
            except Exception as exc:  # only "database away" gets here (see _handle_in_thread)
                self.ingest_health.failed(exc)
                delay = backoff.next_delay()
                log.warning(
                    "database unavailable; a batch of %d messages waits, unacknowledged "
                    "(failure %d, retry in %.1f s): %s",
                    len(batch),
                    self.ingest_health.failing,
                    delay,
                    self.ingest_health.last_error,
                    exc_info=self.ingest_health.failing == 1,  # the trace once per outage
                )
                await asyncio.sleep(delay)
                continue
            if self.ingest_health.recovered():
                log.warning("database answers again: ingest resumed")
            return outcome

    async def _handle_in_thread(self, batch: list[Delivery], attempt: BatchAttempt) -> BatchOutcome:
        """Handle a batch; a failure other than "database away" is isolated to its message.

        ``attempt`` carries what earlier attempts did: the sites' parts that are done (not
        done again) and the counts a failed part stored, so the engine still reacts to them
        (storing and reacting are two transactions).

        Raises:
            sqlalchemy.exc.DBAPIError: A database is away (:func:`database_unavailable`).
        """
        items = [(d.topic, d.payload) for d in batch]
        try:
            return await asyncio.to_thread(
                handle_sites, self.by_site, items, attempt, rejected_by=self.client_id
            )
        except Exception as exc:
            if database_unavailable(exc):
                raise
            if len(batch) == 1:
                log.exception("handling the message on %s failed: dead-lettered", batch[0].topic)
                reason = f"internal error: {type(exc).__name__}"
                site = topic_site(batch[0].topic) or self.engine.site
                letter = dead_letter(site, *items[0], reason, self.client_id)
                return BatchOutcome(letters={0: letter})
        log.warning("a batch of %d failed; handling its messages one by one", len(batch))
        whole = BatchOutcome()
        for indices, outcome in attempt.done.values():  # the parts done stay done
            whole.merge_at(outcome, indices)
        done = attempt.done_indices()
        for index, delivery in enumerate(batch):
            if index not in done:
                whole.merge(await self._handle_in_thread([delivery], BatchAttempt()), index)
        return whole

    def _acknowledge(self, batch: list[Delivery], letters: dict[int, Outgoing]) -> None:
        """PUBACK the committed messages; a rejected one once its dead letter is acked."""
        conn = self._conn
        for index, delivery in enumerate(batch):
            letter = letters.get(index)
            if letter is None:
                self._ack(delivery)
                continue
            mid = None if conn is None else self._send(conn, letter)
            if mid is None:
                log.warning("not connected: dead letter for %s not sent now", delivery.topic)
            else:
                self._acks[mid] = (None, functools.partial(self._ack, delivery))

    def _ack(self, delivery: Delivery) -> None:
        if delivery.conn.ack(delivery):
            self.stats.acked += delivery.qos > 0

    # -- publishing --------------------------------------------------------------------------

    @staticmethod
    def _send(conn: MqttConnection, out: Outgoing) -> int | None:
        """Encode at the wire (validated once more) and publish QoS 1; None: not sent."""
        body = b"" if out.message is None else contract.encode(out.message.to_payload())
        return conn.publish(out.topic, body, qos=1, retain=out.retain)

    def publish(self, messages: list[Outgoing]) -> None:
        """Send messages now (QoS 1); what cannot go out is re-derived from the store later."""
        conn = self._conn
        for message in messages:
            if conn is None or self._send(conn, message) is None:
                log.warning("not connected: %s not sent now", message.topic)

    async def _publish_from_store(self) -> None:
        """Publish what the store holds for the broker, for ever; a failing round is retried."""
        backoff = Backoff(RETRY_MIN_SECONDS, RETRY_MAX_SECONDS)
        while True:
            self._wake.clear()  # before the round: a wake-up during it is not lost
            try:
                await self._publish_round()
            except Exception as exc:  # any failure of a round: logged with its trace, retried
                self.publisher_health.failed(exc)
                delay = backoff.next_delay()
                log.exception(
                    "store publisher: round failed (failure %d, retry in %.1f s)",
                    self.publisher_health.failing,
                    delay,
                )
            else:
                if self.publisher_health.recovered():
                    log.warning("store publisher: the database answers again; publishing")
                backoff.reset()
                delay = POLL_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _publish_round(self) -> None:
        """Record the acknowledged; for the sites whose lease this instance holds, re-send
        open discrepancies (on a new connection, or a lease just taken) and send what is due."""
        while self._confirmed:
            stream, row_id = self._confirmed[0]
            await asyncio.to_thread(stream.done, row_id)
            self._confirmed.pop(0)
            self._in_flight.discard(stream.key(row_id))
            self.stats.published[stream.kind] = self.stats.published.get(stream.kind, 0) + 1
            self._handled.set()
        conn = self._conn
        if conn is None or not self.ready.is_set():
            return
        await asyncio.to_thread(self.leases.refresh)
        held = self.leases.held
        if self._resync_conn is not conn:
            self._resync_conn, self._resynced = conn, set()
        self._resynced &= held  # a lease lost and taken again: re-send then
        for engine in self.engines:
            if engine.site in held and engine.site not in self._resynced:
                self.publish(await asyncio.to_thread(engine.open_discrepancy_messages))
                self._resynced.add(engine.site)
        now = asyncio.get_running_loop().time()
        looked: dict[str, bool] = {}  # site → whether any of its streams had something
        for stream in self.streams:
            if stream.site not in held or self._next_poll.get(stream.site, 0.0) > now:
                continue
            items = await asyncio.to_thread(stream.fetch)
            looked[stream.site] = looked.get(stream.site, False) or bool(items)
            if conn is self._conn:
                self._send_stream(conn, stream, items)
        for site, busy in looked.items():
            self._next_poll[site] = now + (0.0 if busy else self._idle_poll)

    def _send_stream(
        self, conn: MqttConnection, stream: StoreStream, items: list[tuple[int, Outgoing]]
    ) -> None:
        for row_id, message in items:
            key = stream.key(row_id)
            if key in self._in_flight:
                continue
            mid = self._send(conn, message)
            if mid is not None:
                self._acks[mid] = (key, functools.partial(self._confirm, stream, row_id))
                self._in_flight.add(key)

    def _confirm(self, stream: StoreStream, row_id: int) -> None:
        """The broker has it: the publisher records it in the store (off the loop)."""
        self._confirmed.append((stream, row_id))
        self._wake.set()


async def serve_until_signal(service: ReconcileService) -> int:
    """Run the service until SIGTERM or SIGINT.

    Returns:
        0 once stopped; 1 when a task failed for good, so that systemd restarts the service.
    """
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stopping.set)
    try:
        await service.run()
    except TaskFailed as failed:
        log.error("%s; exiting with status %d", failed, ExitCode.FAILED)  # noqa: TRY400
        return ExitCode.FAILED
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return ExitCode.OK
