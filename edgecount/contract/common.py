"""What every part of the contract shares: the error, the schema ids, message ids and time.

Nothing here imports another module of the contract package, so topics, wire and messages
can all build on it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from edgecount import timefmt

TOPIC_PREFIX: Final = "edgecount/v1"

COUNT: Final = "edgecount.count/1"
SCAN: Final = "edgecount.scan/1"
STATUS: Final = "edgecount.status/1"
SCAN_REQUEST: Final = "edgecount.scan-request/1"
DISCREPANCY: Final = "edgecount.discrepancy/1"
ADJUSTMENT: Final = "edgecount.adjustment/1"
DECISION: Final = "edgecount.decision/1"
DEADLETTER: Final = "edgecount.deadletter/1"
POSE: Final = "edgecount.pose/1"
FRAME: Final = "edgecount.frame/1"

SCHEMA_FILES: Final[Mapping[str, str]] = {
    COUNT: "count.json",
    SCAN: "scan.json",
    STATUS: "status.json",
    SCAN_REQUEST: "scan-request.json",
    DISCREPANCY: "discrepancy.json",
    ADJUSTMENT: "adjustment.json",
    DECISION: "decision.json",
    DEADLETTER: "deadletter.json",
    POSE: "pose.json",
    FRAME: "frame.json",
}
SEQUENCED: Final = frozenset({COUNT, SCAN})
"""Schemas whose payloads carry ``seq``, ``msg_id`` and ``historical`` (filled by the outbox)."""

SEQUENCE_FIELDS: Final = ("seq", "msg_id", "historical")
"""The fields the outbox fills into a sequenced draft, in the order they are appended."""

EPOCH_PATTERN: Final = re.compile(r"[0-9a-f]{8,32}")
"""An outbox epoch: random lowercase hex made with the outbox file (see :func:`msg_id`)."""

MAX_FRAME_BYTES: Final = 256 * 1024
"""The most bytes the JPEG of an ``edgecount.frame/1`` may have (its schema limits the base64)."""

UNKNOWN_SKU: Final = "unknown"
"""The sku under which tags that are not SGTIN are counted (their EPCs go in ``epcs``)."""


class ContractError(ValueError):
    """A topic or payload that breaks the contract.

    Attributes:
        reason: What is wrong, in words.
        schema: The schema id the payload claimed, when known.
        path: Where in the payload (``items[0].qty``), empty for the whole payload.
    """

    def __init__(self, reason: str, *, schema: str | None = None, path: str = "") -> None:
        self.reason = reason
        self.schema = schema
        self.path = path
        where = f" at {path}" if path else ""
        super().__init__(f"{schema or 'payload'}{where}: {reason}")


def msg_id(gateway: str, seq: int, epoch: str | None = None) -> str:
    """The ``msg_id`` of a sequenced message: ``"{gateway}:{epoch}:{seq}"``.

    The epoch is a random id the gateway's outbox creates with its file. A gateway whose
    outbox file was lost starts its sequence again at 1 under a new epoch, so its new
    messages never reuse an old ``msg_id`` (consumers would drop them as duplicates).
    Without an epoch (publishers with no outbox file, older gateways) it is
    ``"{gateway}:{seq}"``.
    """
    if epoch is None:
        return f"{gateway}:{seq}"
    if not EPOCH_PATTERN.fullmatch(epoch):
        raise ContractError(f"epoch {epoch!r} is not 8-32 lowercase hexadecimal digits")
    return f"{gateway}:{epoch}:{seq}"


to_iso = timefmt.to_iso  # kept here for the contract's callers; written in edgecount.timefmt
now_iso = timefmt.now_iso


def parse_iso(text: str) -> datetime:
    """Parse a contract timestamp (``...Z``) into an aware UTC datetime."""
    try:
        return timefmt.parse_zulu(text)
    except timefmt.TimeFormatError as exc:
        raise ContractError(str(exc)) from None


def iso_or_now(value: str | datetime | None) -> str:
    """A contract timestamp: ``value`` as given (text), formatted (datetime), or now (None)."""
    if value is None:
        return now_iso()
    return value if isinstance(value, str) else to_iso(value)
