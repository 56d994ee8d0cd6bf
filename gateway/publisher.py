"""Publishing counts: the :class:`Publisher` contract and its in-memory implementation.

* :class:`MemoryPublisher` records messages in memory, for tests of pure logic. It assigns
  ``seq`` / ``msg_id`` and validates exactly like the real one.
* :class:`gateway.mqtt_publisher.MqttPublisher` is the durable MQTT one: outbox first,
  then the broker, in order, QoS 1.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from paho.mqtt.client import topic_matches_sub

from edgecount import contract
from gateway.outbox import OutboxFullError, Outgoing, sequenced

log = logging.getLogger(__name__)

MessageCallback = Callable[[str, bytes], None]
"""Called on the event loop with (topic, payload bytes) for each incoming message."""


M = TypeVar("M", bound=contract.Record)

__all__ = [
    "MemoryPublisher",
    "MessageCallback",
    "OutboxFullError",
    "Outgoing",
    "Publisher",
    "PublisherHealth",
    "Sent",
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
    async def clear_retained(self, topic: str) -> None:
        """Enqueue an empty retained message that clears ``topic``."""

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
    """

    def __init__(self, *, site: str, gateway_id: str, validate: bool = True) -> None:
        self.site = contract.check_segment(site, "site")
        self.gateway_id = contract.check_segment(gateway_id, "gateway_id")
        self.validate = validate
        self.messages: list[Sent] = []
        self.retained: dict[str, contract.Message] = {}
        self.fail_with: BaseException | None = None
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
        final = sequenced(message, self._seq + 1)
        if self.validate:
            try:
                contract.encode_message(final, topic=topic)
            except contract.ContractError:
                self._health.rejected += 1
                raise
        self._seq += 1
        self._record(topic, final, retain, self._seq)
        return final

    async def clear_retained(self, topic: str) -> None:
        """Record an empty retained message."""
        self._seq += 1
        self._record(topic, None, True, self._seq)

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
