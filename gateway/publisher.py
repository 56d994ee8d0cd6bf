"""Publishing counts: the :class:`Publisher` contract and its in-memory implementation.

* :class:`MemoryPublisher` records messages in memory, for tests of pure logic. It assigns
  ``seq`` / ``msg_id`` and validates exactly like the real one.
* :class:`gateway.mqtt_publisher.MqttPublisher` is the durable MQTT one: outbox first,
  then the broker, in order, QoS 1.

Both take a message alone (:meth:`Publisher.publish`) or a batch
(:meth:`Publisher.publish_many`: one outbox transaction, so one fsync, for all of a scan's
counts). In a batch each message is judged on its own: one that is rejected does not keep
the others from being stored, and the first rejection is raised once they are.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from paho.mqtt.client import topic_matches_sub

from edgecount import contract
from gateway.outbox import Enqueued, OutboxFullError, Outgoing, Rejected, sequenced

log = logging.getLogger(__name__)

MessageCallback = Callable[[str, bytes], None]
"""Called on the event loop with (topic, payload bytes) for each incoming message."""

Batch = Sequence[tuple[str, Outgoing]]
"""Messages to publish together, each with its topic, in the order they are to go out."""


M = TypeVar("M", bound=contract.Record)

__all__ = [
    "Batch",
    "MemoryPublisher",
    "MessageCallback",
    "OutboxFullError",
    "Outgoing",
    "Publisher",
    "PublisherHealth",
    "Sent",
    "accepted",
]


@dataclass(slots=True)
class PublisherHealth:
    """Health figures of a publisher, for logs, metrics and the watchdog.

    Attributes:
        state: new, connecting, connected, backoff, stopping, stopped or failed.
        connected: A broker session is up (CONNACK success received).
        outbox_depth: Messages waiting for an acknowledgement.
        outbox_full: The outbox's full alarm.
        published: PUBLISH packets handed to the broker (re-sends included).
        acked: Messages acknowledged by the broker.
        replayed: Messages sent with ``historical: true``.
        rejected: Messages not accepted: outbox full or breaking the contract.
        refused: Messages the broker refused (MQTT 5 PUBACK reason code >= 0x80); they stay
            in the outbox and are tried again on the next connection.
        inflight: Messages sent and not yet acknowledged.
        connects: Successful connections.
        connect_failures: Failed attempts (TCP/TLS errors, refused CONNACK, no CONNACK).
        disconnects: Connections lost or closed.
        dropped_incoming: Incoming messages dropped because the loop was behind.
        callback_errors: Exceptions raised by subscription callbacks.
        transient_sent: Best-effort messages (camera frames) handed to the broker, QoS 0.
        transient_dropped: Best-effort messages dropped because no broker session was up.
        last_error: The last problem, in words.
        ack_latency_last_s: Send-to-PUBACK time of the last acknowledged message.
        ack_latency_mean_s: Mean send-to-PUBACK time over the last 256 messages.
        ack_latency_max_s: Largest send-to-PUBACK time seen.
        delivery_latency_last_s: Enqueue-to-PUBACK time of the last acknowledged message.
    """

    state: str = "new"
    connected: bool = False
    outbox_depth: int = 0
    outbox_full: bool = False
    published: int = 0
    acked: int = 0
    replayed: int = 0
    rejected: int = 0
    refused: int = 0
    inflight: int = 0
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    dropped_incoming: int = 0
    callback_errors: int = 0
    transient_sent: int = 0
    transient_dropped: int = 0
    last_error: str | None = None
    ack_latency_last_s: float | None = None
    ack_latency_mean_s: float | None = None
    ack_latency_max_s: float | None = None
    delivery_latency_last_s: float | None = None


class Publisher(ABC):
    """Where the pipeline sends its messages (Frigate's Communicator, made durable)."""

    @abstractmethod
    async def start(self) -> None:
        """Start publishing; returns after the first connection attempt ended."""

    @abstractmethod
    async def publish(self, topic: str, message: Outgoing, *, retain: bool) -> contract.Message:
        """Enqueue a message durably and return it as it goes out (sequenced: seq/msg_id).

        Delivery happens later, in order. Raises ``contract.ContractError`` for a message
        that breaks the contract and :class:`OutboxFullError` when there is no room.
        """

    @abstractmethod
    async def publish_many(self, messages: Batch, *, retain: bool) -> list[contract.Message]:
        """Enqueue a batch durably, together; return its messages as they go out.

        The messages are stored in one go (one outbox transaction) and delivered in batch
        order. Each is judged on its own: one that breaks the contract or finds no room is
        rejected and the others are stored all the same; then the first rejection is raised
        (``contract.ContractError`` or :class:`OutboxFullError`, as :meth:`publish` would
        raise it), with a note saying how many of the batch were stored.
        """

    @abstractmethod
    async def clear_retained(self, topic: str) -> None:
        """Enqueue an empty retained message that clears ``topic``."""

    @abstractmethod
    def publish_transient(self, topic: str, message: contract.Message, *, retain: bool) -> bool:
        """Publish now with QoS 0, outside the outbox (best effort: camera frames).

        Never queued: without a broker session the message is dropped and counted
        (``transient_dropped``); True when it was handed to the broker. Raises
        ``contract.ContractError`` for a message that breaks the contract.
        """

    @abstractmethod
    async def flush(self, timeout: float) -> bool:  # noqa: ASYNC109 - part of the contract
        """Wait until everything enqueued so far is acknowledged; False on timeout."""

    @abstractmethod
    async def stop(self) -> None:
        """Say ``stopped``, disconnect cleanly and release resources. Idempotent."""

    @abstractmethod
    def subscribe(self, topic_filter: str, callback: MessageCallback) -> None:
        """Call ``callback(topic, payload)`` on the event loop for matching messages."""

    @abstractmethod
    def health(self) -> PublisherHealth:
        """Current health figures (cheap, never blocks)."""


def accepted(outcomes: Sequence[Enqueued | Rejected]) -> list[contract.Message]:
    """The messages a batch stored, in order; raises the batch's first rejection, if any.

    For :meth:`Publisher.publish_many`: the rejection is raised after the batch's other
    messages were stored, with a note saying how many were.
    """
    stored = [outcome.message for outcome in outcomes if isinstance(outcome, Enqueued)]
    rejected = [outcome for outcome in outcomes if not isinstance(outcome, Enqueued)]
    if rejected:
        first = rejected[0]
        first.add_note(
            f"{len(stored)} of the batch's {len(outcomes)} messages were stored, "
            f"{len(rejected)} rejected"
        )
        raise first
    messages = [message for message in stored if message is not None]
    assert len(messages) == len(stored)  # only a retained clear is stored empty
    return messages


def _matches(topic_filter: str, topic: str) -> bool:
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2] if topic_filter.count("/") >= 2 else ""
    return topic_matches_sub(topic_filter, topic)


# --- in memory ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """A message a :class:`MemoryPublisher` published (message None: a retained clear)."""

    topic: str
    message: contract.Message | None
    retain: bool
    seq: int | None


class MemoryPublisher(Publisher):
    """Records messages in memory; validates and sequences them like :class:`MqttPublisher`.

    Attributes:
        messages: Everything published, status messages included, in order.
        retained: The retained message per topic, as a broker would keep it.
        fail_with: Set it to an exception to make the next publishes raise it (fault
            injection, e.g. :class:`OutboxFullError`).
        offline: Set it to make :meth:`publish_transient` drop messages, as with no broker.
    """

    def __init__(self, *, site: str, gateway_id: str, validate: bool = True) -> None:
        self.site = contract.check_segment(site, "site")
        self.gateway_id = contract.check_segment(gateway_id, "gateway_id")
        self.validate = validate
        self.messages: list[Sent] = []
        self.retained: dict[str, contract.Message] = {}
        self.fail_with: BaseException | None = None
        self.offline = False
        self._seq = 0
        self._subscriptions: list[tuple[str, MessageCallback]] = []
        self._health = PublisherHealth()

    def _record(
        self, topic: str, message: contract.Message | None, retain: bool, seq: int | None
    ) -> None:
        self.messages.append(Sent(topic, message, retain, seq))
        if retain and message is None:
            self.retained.pop(topic, None)
        elif retain and message is not None:
            self.retained[topic] = message
        self._health.published += 1
        self._health.acked += 1

    def _status(self, state: str) -> None:
        message = contract.status_message(gateway=self.gateway_id, site=self.site, state=state)
        self._record(contract.status_topic(self.site, self.gateway_id), message, True, None)

    async def start(self) -> None:
        """Mark connected and record the ``online`` birth."""
        self._health.state, self._health.connected = "connected", True
        self._status("online")

    async def publish(self, topic: str, message: Outgoing, *, retain: bool) -> contract.Message:
        """Sequence, validate and record the message."""
        if self.fail_with is not None:
            self._health.rejected += 1
            raise self.fail_with
        outcome = self._put(topic, message, retain)
        if not isinstance(outcome, Enqueued):
            raise outcome
        assert outcome.message is not None
        return outcome.message

    async def publish_many(self, messages: Batch, *, retain: bool) -> list[contract.Message]:
        """Sequence, validate and record each message of the batch (see :class:`Publisher`).

        With ``fail_with`` set, the whole batch is rejected: nothing is recorded.
        """
        if self.fail_with is not None:
            self._health.rejected += len(messages)
            raise self.fail_with
        return accepted([self._put(topic, message, retain) for topic, message in messages])

    def _put(self, topic: str, message: Outgoing, retain: bool) -> Enqueued | Rejected:
        final = sequenced(message, self._seq + 1)
        if self.validate:
            try:
                contract.encode_message(final, topic=topic)
            except contract.ContractError as exc:
                self._health.rejected += 1
                return exc
        self._seq += 1
        self._record(topic, final, retain, self._seq)
        return Enqueued(self._seq, final)

    async def clear_retained(self, topic: str) -> None:
        """Record an empty retained message."""
        self._seq += 1
        self._record(topic, None, True, self._seq)

    def publish_transient(self, topic: str, message: contract.Message, *, retain: bool) -> bool:
        """Record a best-effort message (validated); dropped and counted while ``offline``."""
        contract.encode_message(message, topic=topic)
        if self.offline:
            self._health.transient_dropped += 1
            return False
        self.messages.append(Sent(topic, message, retain, None))
        if retain:
            self.retained[topic] = message
        self._health.transient_sent += 1
        return True

    async def flush(self, timeout: float) -> bool:  # noqa: ASYNC109, ARG002
        """Always True: recorded means acknowledged."""
        return True

    async def stop(self) -> None:
        """Record ``stopped`` (once)."""
        if self._health.state != "stopped":
            self._status("stopped")
            self._health.state, self._health.connected = "stopped", False

    def subscribe(self, topic_filter: str, callback: MessageCallback) -> None:
        """Remember the subscription; :meth:`deliver` feeds it."""
        self._subscriptions.append((topic_filter, callback))

    def deliver(self, topic: str, payload: bytes) -> int:
        """Hand an incoming message to the matching callbacks; returns how many got it."""
        matched = [cb for flt, cb in self._subscriptions if _matches(flt, topic)]
        for callback in matched:
            callback(topic, payload)
        return len(matched)

    def health(self) -> PublisherHealth:
        """Current figures."""
        return self._health

    def published(self, cls: type[M]) -> list[M]:
        """The messages of class ``cls`` published so far, in order.

        ``contract.StatusMessage`` gives the ``online`` birth and ``stopped``.
        """
        return [message for sent in self.messages if isinstance(message := sent.message, cls)]
