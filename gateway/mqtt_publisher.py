"""The MQTT implementation of :class:`~gateway.publisher.Publisher`.

:class:`MqttPublisher` writes every message to the :class:`~gateway.outbox.Outbox` first,
then drains the outbox to an MQTT broker with paho-mqtt, in order, QoS 1, deleting a row
only when its PUBACK arrives. It announces the gateway with a retained ``online`` birth,
leaves ``offline`` as its MQTT Will and publishes ``stopped`` before a clean disconnect.

Threads: paho runs its network loop on its own thread. Every paho callback goes through
:meth:`MqttPublisher._bridge` -- the one place where that thread hands work to the event
loop, with ``loop.call_soon_threadsafe`` -- so all state below is only touched on the loop.
Outbox I/O (which fsyncs) runs on one worker thread so it never stalls the loop.

Connections: each connection attempt uses a fresh paho client that never reconnects by
itself; the supervisor task reconnects with exponential backoff and jitter
(:class:`~edgecount.backoff.Backoff`). A fresh client means paho's own queue of unacknowledged
messages dies with the connection, and the outbox alone decides what is re-sent (with
``historical: true``, see :mod:`gateway.outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgecount import __version__, contract
from edgecount.mqtt import Backoff, MqttConnection, MqttSettings, MqttSettingsError
from edgecount.supervisor import RESTART, Supervisor, TaskFailed
from gateway.outbox import Outbox, OutboxError, Outgoing, Put
from gateway.publisher import (
    Batch,
    MessageCallback,
    Publisher,
    PublisherHealth,
    _matches,
    accepted,
)

log = logging.getLogger(__name__)

STABLE_AFTER_S = 10.0  # a connection that lasted this long resets the backoff
STOP_TIMEOUT_S = 5.0  # how long stop() waits for the PUBACK of ``stopped``

_P = ParamSpec("_P")
_T = TypeVar("_T")

__all__ = ["MqttPublisher", "default_client_id"]


# --- MQTT -----------------------------------------------------------------------------------


def default_client_id(site: str, gateway_id: str) -> str:
    """The daemon's MQTT client id unless ``mqtt.client_id`` says otherwise.

    ``edgecount-{site}-{gateway_id}``: gateway ids are unique within a site (the topics say
    so), not across sites, and two clients with one id take each other's session over.
    """
    return f"edgecount-{site}-{gateway_id}"


@dataclass(slots=True)
class _Inflight:
    seq: int
    sent_at: float  # monotonic
    created_at: float  # UNIX seconds, when it was enqueued


@dataclass(slots=True)
class _Session:
    """One connection and what is in flight on it."""

    conn: MqttConnection
    window: int
    connack: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    connected: bool = False
    connected_at: float | None = None
    cursor: int = 0  # highest seq handed to this connection
    inflight: dict[int, _Inflight] = field(default_factory=dict)
    control: dict[int, asyncio.Future[ReasonCode | None]] = field(default_factory=dict)
    refused: list[int] = field(default_factory=list)


def _failed(reason: ReasonCode | int) -> bool:
    if isinstance(reason, ReasonCode):
        return reason.is_failure
    return reason != 0


async def _wait(event: asyncio.Event, timeout: float) -> bool:  # noqa: ASYNC109
    """Wait for ``event`` at most ``timeout`` seconds; True when it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(timeout, 0.0))
    return event.is_set()


class MqttPublisher(Publisher):
    """Durable MQTT publisher: outbox first, then the broker, in order, QoS 1.

    Args:
        settings: How to reach the broker.
        outbox: The outbox; the publisher closes it in :meth:`stop`.
        site: Site identifier, for the status topic and payloads.
        gateway_id: Must equal ``outbox.gateway_id`` (default: taken from it).
        version: Reported in status payloads.
        announce: Speak for the gateway on its status topic (``online`` birth, ``offline``
            Will, ``stopped``). Only the daemon does; ``edgecount scan`` publishes counts
            without claiming the gateway is up and listening for commands.
    """

    def __init__(
        self,
        settings: MqttSettings,
        outbox: Outbox,
        *,
        site: str,
        gateway_id: str | None = None,
        version: str = __version__,
        announce: bool = True,
    ) -> None:
        if gateway_id is not None and gateway_id != outbox.gateway_id:
            raise ValueError(f"gateway_id {gateway_id!r} != outbox's {outbox.gateway_id!r}")
        self.settings = settings
        self.outbox = outbox
        self.site = contract.check_segment(site, "site")
        self.gateway_id = outbox.gateway_id
        self.version = version
        self.announce = announce
        self.client_id = settings.client_id or default_client_id(self.site, self.gateway_id)
        self.status_topic = contract.status_topic(self.site, self.gateway_id)
        self._db_exec = ThreadPoolExecutor(1, thread_name_prefix=f"outbox-{self.gateway_id}")
        self._health = PublisherHealth()
        self._latencies: deque[float] = deque(maxlen=256)
        self._subscriptions: list[tuple[str, MessageCallback]] = []
        self._session: _Session | None = None
        self._acks: list[int] = []
        self._dropped_before = 0
        self._tasks: Supervisor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()  # the drainer has work: new rows, acks, a connection
        self._stopping = asyncio.Event()
        self._attempted = asyncio.Event()  # the first connection attempt ended
        self._up = asyncio.Event()  # connected
        self._ack_pulse = asyncio.Event()  # replaced after every ack commit

    # --- public API -------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting; returns once the first attempt ended (or timed out)."""
        if self._tasks is not None:
            return
        if self._health.state == "stopped":
            raise RuntimeError("a stopped publisher cannot start again; make a new one")
        self._loop = asyncio.get_running_loop()
        self._health.state = "connecting"
        self._tasks = Supervisor(f"mqtt:{self.gateway_id}", self._stopping, on_failed=self._failed)
        self._tasks.start(f"mqtt-supervisor:{self.gateway_id}", self._supervise, RESTART)
        self._tasks.start(
            f"mqtt-drain:{self.gateway_id}", self._drain, RESTART, cancel_on_stop=True
        )
        await _wait(self._attempted, self.settings.connect_timeout * 2 + 1.0)

    async def publish(self, topic: str, message: Outgoing, *, retain: bool) -> contract.Message:
        """Store the message in the outbox (committed) and return it as it goes out."""
        enqueued = await self._db(self.outbox.put, topic, message, retain)
        self._wake.set()
        assert enqueued.message is not None  # only a retained clear is stored empty
        return enqueued.message

    async def publish_many(self, messages: Batch, *, retain: bool) -> list[contract.Message]:
        """Store the batch in the outbox in one transaction and return what went in.

        See :meth:`Publisher.publish_many`: a rejected message is raised once the batch's
        others are committed.
        """
        if not messages:
            return []
        puts = [Put(topic, message, retain) for topic, message in messages]
        outcomes = await self._db(self.outbox.put_many, puts)
        self._wake.set()
        return accepted(outcomes)

    async def clear_retained(self, topic: str) -> None:
        """Store an empty retained message for ``topic`` in the outbox."""
        await self._db(self.outbox.put, topic, None, True)
        self._wake.set()

    def publish_transient(self, topic: str, message: contract.Message, *, retain: bool) -> bool:
        """Send now, QoS 0, on the current session; dropped and counted without one."""
        body = contract.encode_message(message, topic=topic)
        session = self._session
        mid = None
        if session is not None and session.connected and not self._stopping.is_set():
            mid = session.conn.publish(topic, body, qos=0, retain=retain)
        if mid is None:
            self._health.transient_dropped += 1
            log.info("MQTT: not connected, best-effort message on %s dropped", topic)
            return False
        self._health.transient_sent += 1
        return True

    async def flush(self, timeout: float) -> bool:  # noqa: ASYNC109 - part of the contract
        """True once every message enqueued before the call is acknowledged and deleted."""
        target = self.outbox.last_seq
        deadline = time.monotonic() + timeout
        while True:
            pulse = self._ack_pulse
            oldest = await self._db(self.outbox.oldest_seq)
            if oldest is None or oldest > target:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await _wait(pulse, remaining)

    async def wait_connected(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until a broker session is up; False on timeout."""
        return await _wait(self._up, timeout)

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> None:
        """Subscribe (QoS 1) now if connected and again on every reconnect."""
        known = any(flt == topic_filter for flt, _ in self._subscriptions)
        self._subscriptions.append((topic_filter, callback))
        session = self._session
        if not known and session is not None and session.connected:
            session.conn.subscribe(topic_filter)

    def health(self) -> PublisherHealth:
        """A snapshot of the figures (no I/O)."""
        health = dataclasses.replace(self._health)
        health.outbox_depth = self.outbox.depth
        health.outbox_full = self.outbox.full
        health.rejected = self.outbox.rejected
        session = self._session
        health.dropped_incoming = self._dropped_before + (session.conn.dropped if session else 0)
        if self._latencies:
            health.ack_latency_mean_s = sum(self._latencies) / len(self._latencies)
        return health

    async def stop(self) -> None:
        """Publish ``stopped`` (waiting for its PUBACK), disconnect, end the tasks."""
        if self._health.state == "stopped":
            return
        self._health.state = "stopping"
        self._stopping.set()
        self._wake.set()
        session = self._session
        if session is not None and session.connected:
            if self.announce:
                await self._say_stopped(session)
            session.conn.disconnect()
        await self._end_tasks()
        await self._commit_acks()
        await self._db(self.outbox.close)
        await asyncio.get_running_loop().run_in_executor(None, self._db_exec.shutdown)
        self._health.state, self._health.connected = "stopped", False

    # --- tasks --------------------------------------------------------------------------

    def _failed(self, failure: TaskFailed) -> None:
        """A task failed for good (logged with its trace): the publisher is failed."""
        self._health.state = "failed"
        self._health.last_error = str(failure)

    async def _end_tasks(self) -> None:
        tasks = self._tasks
        if tasks is None:
            return
        limit = self.settings.connect_timeout + STOP_TIMEOUT_S
        ending = asyncio.ensure_future(tasks.shutdown())
        done, _ = await asyncio.wait({ending}, timeout=limit)
        if not done:
            log.warning("MQTT supervisor did not end within %.1f s; cancelling it", limit)
            tasks.cancel()
        await ending

    async def _db(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run an outbox call on the outbox's worker thread."""
        if self._health.state == "stopped":
            raise RuntimeError("the publisher is stopped")
        call = functools.partial(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._db_exec, call)

    async def _supervise(self) -> None:
        """Connect, watch the connection, reconnect with backoff, until stopping."""
        backoff = Backoff(self.settings.reconnect_min_delay, self.settings.reconnect_max_delay)
        while not self._stopping.is_set():
            session = await self._open_session()
            if session is not None:
                await self._watch(session)
                if await self._end_session(session):
                    backoff.reset()
            self._attempted.set()
            if self._stopping.is_set():
                return
            delay = backoff.next_delay()
            self._health.state = "backoff"
            log.info("MQTT: next connection attempt to %s in %.2f s", self._where, delay)
            await _wait(self._stopping, delay)

    async def _open_session(self) -> _Session | None:
        self._health.state = "connecting"
        will = (self.status_topic, self._status_bytes("offline")) if self.announce else None
        assert self._loop is not None
        try:
            conn = MqttConnection(self.settings, self.client_id, self, loop=self._loop, will=will)
        except MqttSettingsError as exc:
            self._attempt_failed(str(exc))
            return None
        session = _Session(conn, window=self.settings.max_inflight)
        self._session = session
        try:
            await conn.open()
        except (OSError, ValueError) as exc:
            self._session = None
            self._attempt_failed(f"cannot connect to {self._where}: {exc}")
            return None
        return session

    async def _watch(self, session: _Session) -> None:
        """Return when the session is over (closed, refused, or silent)."""
        timeout = self.settings.connect_timeout
        if not await _wait(session.connack, timeout) and not session.ended.is_set():
            self._attempt_failed(f"no CONNACK from {self._where} within {timeout:.1f} s")
            session.conn.abort()
            await _wait(session.ended, STOP_TIMEOUT_S)
            return
        while not await _wait(session.ended, max(1.0, float(self.settings.keepalive))):
            if session.connected and not session.conn.is_connected():
                log.warning("MQTT: network loop ended without a disconnect event")
                return

    async def _end_session(self, session: _Session) -> bool:
        """Tidy up after a connection; returns whether it had been up long enough (stable)."""
        stable = (
            session.connected_at is not None
            and time.monotonic() - session.connected_at >= STABLE_AFTER_S
        )
        if session.connected:
            self._health.disconnects += 1
        session.connected = False
        self._health.connected = False
        self._health.inflight = 0
        self._up.clear()
        for future in session.control.values():
            if not future.done():
                future.set_result(None)
        unacked = [item.seq for item in session.inflight.values()] + session.refused
        await self._db(self.outbox.mark_sent, unacked)
        if self._session is session:
            self._session = None
        self._dropped_before += session.conn.dropped
        session.conn.abort()
        await session.conn.close(STOP_TIMEOUT_S)
        self._wake.set()
        return stable

    async def _drain(self) -> None:
        """Commit acknowledgements and keep the in-flight window full, in outbox order."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._commit_acks()
            session = self._session
            if session is not None and self._sendable(session):
                await self._send_rows(session)

    def _sendable(self, session: _Session) -> bool:
        return session is self._session and session.connected and not self._stopping.is_set()

    async def _send_rows(self, session: _Session) -> None:
        while self._sendable(session):
            room = session.window - len(session.inflight)
            if room <= 0:
                return
            rows = await self._db(self.outbox.pending, after=session.cursor, limit=room)
            if not rows:
                return
            for row in rows:
                if not self._sendable(session):
                    return
                mid = session.conn.publish(
                    row.topic, row.wire_payload(), qos=row.qos, retain=row.retain
                )
                if mid is None:
                    return  # the connection is going; connection_closed follows
                session.inflight[mid] = _Inflight(row.seq, time.monotonic(), row.created_at)
                session.cursor = row.seq
                self._health.published += 1
                self._health.replayed += row.historical
            self._health.inflight = len(session.inflight)

    async def _commit_acks(self) -> None:
        if not self._acks:
            return
        seqs, self._acks = self._acks, []
        try:
            await self._db(self.outbox.ack, seqs)
        except OutboxError as exc:
            self._health.last_error = str(exc)
            log.error("MQTT: %s; those messages will be sent again", exc)  # noqa: TRY400
        pulse, self._ack_pulse = self._ack_pulse, asyncio.Event()
        pulse.set()

    # --- status messages ------------------------------------------------------------------

    def _status_bytes(self, state: str) -> bytes:
        message = contract.status_message(
            gateway=self.gateway_id, site=self.site, state=state, version=self.version
        )
        return contract.encode_message(message)

    def _send_control(
        self, session: _Session, state: str
    ) -> asyncio.Future[ReasonCode | None] | None:
        mid = session.conn.publish(self.status_topic, self._status_bytes(state), qos=1, retain=True)
        if mid is None:
            return None
        future: asyncio.Future[ReasonCode | None] = asyncio.get_running_loop().create_future()
        session.control[mid] = future
        return future

    async def _say_stopped(self, session: _Session) -> None:
        future = self._send_control(session, "stopped")
        if future is None:
            log.warning("MQTT: could not send 'stopped'; the connection is gone")
            return
        done, _ = await asyncio.wait({future}, timeout=STOP_TIMEOUT_S)
        reason = future.result() if done else None
        if reason is None or _failed(reason):
            log.warning("MQTT: 'stopped' not acknowledged (%s)", reason or "no PUBACK")

    @property
    def _where(self) -> str:
        return self.settings.describe()

    def _attempt_failed(self, why: str) -> None:
        self._health.connect_failures += 1
        self._health.last_error = why
        log.error("MQTT: %s", why)

    # --- ConnectionEvents (called on the event loop) ------------------------------------

    def _current(self, conn: MqttConnection) -> _Session | None:
        session = self._session
        return session if session is not None and session.conn is conn else None

    def connection_acked(
        self, conn: MqttConnection, reason: ReasonCode, properties: Properties | None
    ) -> None:
        """CONNACK: on success send the birth, resubscribe and start draining."""
        session = self._current(conn)
        if session is None:
            return
        session.connack.set()
        self._attempted.set()
        if _failed(reason):
            # Never mark a refused connection as connected (Frigate's bug); paho closes it
            # and the supervisor retries with backoff.
            self._attempt_failed(f"broker {self._where} refused the connection: {reason}")
            return
        if self._stopping.is_set():
            conn.disconnect()
            return
        session.connected, session.connected_at = True, time.monotonic()
        receive_maximum = getattr(properties, "ReceiveMaximum", None)
        if isinstance(receive_maximum, int) and receive_maximum > 2:
            session.window = min(session.window, receive_maximum - 2)
        self._health.connects += 1
        self._health.connected, self._health.state = True, "connected"
        self._up.set()
        log.info("MQTT: connected to %s as %s", self._where, self.client_id)
        # Subscribe before the birth: whoever reacts to "online" (a reconciler re-sending
        # open scan requests) finds the subscription in place, as the broker handles one
        # connection's packets in order.
        for topic_filter in dict.fromkeys(flt for flt, _ in self._subscriptions):
            conn.subscribe(topic_filter)
        if self.announce:
            self._send_control(session, "online")
        self._wake.set()

    def connection_closed(self, conn: MqttConnection, reason: str) -> None:
        """The connection ended: the supervisor tidies up and reconnects."""
        session = self._current(conn)
        if session is None:
            return
        if session.connected and not self._stopping.is_set():
            self._health.last_error = f"connection lost: {reason}"
            log.warning("MQTT: connection to %s lost: %s", self._where, reason)
        session.ended.set()

    def message_acked(self, conn: MqttConnection, mid: int, reason: ReasonCode) -> None:
        """PUBACK: queue the row for deletion (or keep it when MQTT 5 says refused)."""
        session = self._current(conn)
        if session is None:
            return
        control = session.control.pop(mid, None)
        if control is not None:
            if not control.done():
                control.set_result(reason)
            return
        item = session.inflight.pop(mid, None)
        if item is None:
            return
        self._health.inflight = len(session.inflight)
        if _failed(reason):
            session.refused.append(item.seq)
            self._health.refused += 1
            self._health.last_error = (
                f"broker refused message {self.gateway_id}:{item.seq}: {reason}"
            )
            log.error("MQTT: %s; it stays in the outbox", self._health.last_error)
        else:
            latency = time.monotonic() - item.sent_at
            self._latencies.append(latency)
            self._health.acked += 1
            self._health.ack_latency_last_s = latency
            self._health.ack_latency_max_s = max(latency, self._health.ack_latency_max_s or 0.0)
            self._health.delivery_latency_last_s = time.time() - item.created_at
            self._acks.append(item.seq)
        self._wake.set()

    def message_received(self, _conn: MqttConnection, topic: str, payload: bytes) -> None:
        """Hand an incoming message to every matching subscription callback."""
        for topic_filter, callback in self._subscriptions:
            if not _matches(topic_filter, topic):
                continue
            try:
                callback(topic, payload)
            except Exception:
                self._health.callback_errors += 1
                log.exception(
                    "MQTT: subscription callback for %s failed on %s", topic_filter, topic
                )

    def subscription_acked(
        self, _conn: MqttConnection, topic_filter: str, reasons: list[ReasonCode]
    ) -> None:
        """Log a refused subscription loudly."""
        refused = [reason for reason in reasons if _failed(reason)]
        if refused:
            self._health.last_error = f"subscription to {topic_filter} refused: {refused[0]}"
            log.error("MQTT: %s", self._health.last_error)
