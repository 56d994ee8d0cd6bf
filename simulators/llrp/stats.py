"""Counters of a simulated reader, and a way for tests to wait until they say something."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from simulators.watch import StatsWatch

StatsPredicate = Callable[["SimStats"], bool]

__all__ = ["SimStats", "StatsPredicate", "StatsWatch"]


@dataclass(slots=True)
class SimStats:
    """What a simulated reader has done so far (all counters start at 0).

    Attributes:
        connections: Client connections accepted as the reader's session.
        rejected_connections: Connections refused because a client was already connected.
        connected: Whether a client session is open now.
        messages_in: Complete messages received.
        messages_out: Messages sent (garbage excluded).
        suppressed_messages: Messages not sent because the connection was silenced.
        bytes_out: Bytes sent.
        reports_sent: RO_ACCESS_REPORT messages sent (replay included).
        tag_reports_sent: TagReportData parameters sent (replay excluded).
        reads: Tag reads simulated.
        reads_capped: Reads dropped by ``max_reads_per_second``.
        reports_discarded: TagReportData dropped because no client was listening.
        keepalives_sent: KEEPALIVE messages sent.
        keepalive_acks: KEEPALIVE_ACK messages received.
        framing_errors: Streams that could not be split into messages.
        decode_errors: Messages whose body was malformed.
        unsupported_messages: Messages answered with M_UnsupportedMessage/Version.
        error_messages_sent: ERROR_MESSAGE messages sent.
        rospecs_added: Successful ADD_ROSPEC.
        rospec_starts: ROSpec executions started.
        rospec_stops: ROSpec executions ended.
        drops: Connections dropped by fault injection.
        garbage_bytes_sent: Garbage bytes injected.
        replay_messages_sent: Messages streamed from the replay file.
        closes: CLOSE_CONNECTION requests served.
    """

    connections: int = 0
    rejected_connections: int = 0
    connected: bool = False
    messages_in: int = 0
    messages_out: int = 0
    suppressed_messages: int = 0
    bytes_out: int = 0
    reports_sent: int = 0
    tag_reports_sent: int = 0
    reads: int = 0
    reads_capped: int = 0
    reports_discarded: int = 0
    keepalives_sent: int = 0
    keepalive_acks: int = 0
    framing_errors: int = 0
    decode_errors: int = 0
    unsupported_messages: int = 0
    error_messages_sent: int = 0
    rospecs_added: int = 0
    rospec_starts: int = 0
    rospec_stops: int = 0
    drops: int = 0
    garbage_bytes_sent: int = 0
    replay_messages_sent: int = 0
    closes: int = 0

    def copy(self) -> SimStats:
        """A snapshot."""
        return dataclasses.replace(self)
