"""One frozen, typed class per message of contract v1, and the enumerations they use.

Each JSON Schema in ``edgecount/schemas/`` has a class here whose fields are the schema's
properties (``schema`` itself is the class constant ``SCHEMA``), in the order the builders
write them; nested objects (a count's items, a scan's readers, a discrepancy's lines) are
classes too, arrays are tuples, enumerations are :class:`enum.StrEnum` s. A field the schema
does not require defaults to ``None``, which means *absent* (it is left out of the payload);
a required field the schema allows to be ``null`` has no default. Timestamps stay the
contract's text (``2024-05-01T02:00:00.123Z``) so a payload read and written again is the
same bytes; :func:`edgecount.contract.parse_iso` turns one into a datetime.

Where a schema allows only some values of an enumeration (a discrepancy's ``state`` is one of
the open :class:`DiscrepancyState` s), the field says which in its ``metadata["allowed"]``.
The conversion is written once, in :class:`~edgecount.contract.record.Record`:
:meth:`Record.from_payload` reads a *valid* payload (one :func:`~edgecount.contract.decode`
or :func:`~edgecount.contract.validate` accepted) and :meth:`Record.to_payload` writes
exactly what the schema allows; ``tests/edgecount/contract/test_messages.py`` checks every class
against its schema, so a schema change without a class change fails.

``count`` and ``scan`` are sequenced: the gateway builds a :class:`CountDraft` /
:class:`ScanDraft`, and its outbox fills ``seq``, ``msg_id`` and ``historical`` to make the
:class:`CountMessage` / :class:`ScanMessage` that goes on the wire (:meth:`CountDraft.sequenced`).
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import (
    Any,
    ClassVar,
    Final,
    TypeVar,
)

from edgecount.contract.common import (
    ADJUSTMENT,
    COUNT,
    DEADLETTER,
    DECISION,
    DISCREPANCY,
    FRAME,
    POSE,
    SCAN,
    SCAN_REQUEST,
    SEQUENCE_FIELDS,
    STATUS,
    msg_id,
)
from edgecount.contract.record import Record, field_specs
from edgecount.contract.topics import check_topic
from edgecount.contract.wire import decode, serialise, validate

# --- enumerations -------------------------------------------------------------------------------


class CountSource(enum.StrEnum):
    """Where a location's count comes from."""

    RFID = "rfid"
    VISION = "vision"
    FUSED = "fused"
    """Both: the count carries ``fusion``, the RFID and vision figures behind it."""
    MANUAL = "manual"
    """A person's blind count from a count task, made by the reconciler's console (its
    ``gateway`` is ``console``); a gateway never sends one."""


class ScanState(enum.StrEnum):
    """The state of a zone scan: started, then completed or incomplete."""

    STARTED = "started"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"


class GatewayState(enum.StrEnum):
    """A gateway's availability: online (birth), offline (its Will), stopped (clean exit)."""

    ONLINE = "online"
    OFFLINE = "offline"
    STOPPED = "stopped"


class DiscrepancyState(enum.StrEnum):
    """The state of a discrepancy: three open ones (published), four ends (decisions).

    The reconciler's state machine uses it (``reconciler.transitions.State`` is this class).
    """

    OPEN = "open"
    RECOUNT_REQUESTED = "recount_requested"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    RESOLVED = "resolved"
    SUPERSEDED = "superseded"


OPEN_STATES: Final = (
    DiscrepancyState.OPEN,
    DiscrepancyState.RECOUNT_REQUESTED,
    DiscrepancyState.AWAITING_APPROVAL,
)
"""States of a discrepancy that is not over: the ``state`` of a discrepancy message."""

CLOSED_STATES: Final = (
    DiscrepancyState.APPROVED,
    DiscrepancyState.REJECTED,
    DiscrepancyState.RESOLVED,
    DiscrepancyState.SUPERSEDED,
)
"""States of a discrepancy that ended: the ``outcome`` of a decision message."""


class LineStatus(enum.StrEnum):
    """Outcome of comparing one (location, SKU) record with the book.

    * ``match``: the count is within tolerance of the book (not necessarily equal to it).
    * ``over`` / ``short``: outside tolerance, more / fewer than the book.
    * ``unexpected``: counted at a location whose book does not hold the SKU.
    * ``not_scanned``: in the book, but its location was not counted.
    * ``incomplete``: the location's count was not complete; it is never flagged short.
    * ``accepted``: outside tolerance, but a person rejected this very difference before
      (same counted figure against the same book, no movement since): not flagged again.
      It stays inside the reconciler and is never published.

    The reconciler compares with it (``reconciler.model.Status`` is this class).
    """

    MATCH = "match"
    OVER = "over"
    SHORT = "short"
    UNEXPECTED = "unexpected"
    NOT_SCANNED = "not_scanned"
    INCOMPLETE = "incomplete"
    ACCEPTED = "accepted"


EXCEPTION_STATUSES: Final = (LineStatus.OVER, LineStatus.SHORT, LineStatus.UNEXPECTED)
"""Statuses that open a discrepancy: those a decision's lines carry."""

PUBLISHED_STATUSES: Final = tuple(s for s in LineStatus if s is not LineStatus.ACCEPTED)
"""Statuses a discrepancy line carries on the wire (all but ``accepted``)."""


class ImageType(enum.StrEnum):
    """The image format of a camera frame (``edgecount.frame/1``)."""

    JPEG = "image/jpeg"


class AbcClass(enum.StrEnum):
    """ABC class of a SKU: A = high value / turnover, counted most often."""

    A = "A"
    B = "B"
    C = "C"


# --- count --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CountItem(Record):
    """One SKU of a count; ``epcs`` (one per unit) for tags that are not SGTIN."""

    sku: str
    qty: int
    epcs: tuple[str, ...] | None = None
    confidence: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FusionFigure(Record):
    """One source's figure behind a fused count."""

    total: int
    complete: bool
    confidence: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FusionTolerance(Record):
    """How far the RFID and vision figures may differ: ``abs`` units or ``pct`` (0-1)."""

    abs: int
    pct: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Fusion(Record):
    """The RFID and vision figures of a fused count, and whether they disagree."""

    rfid: FusionFigure
    vision: FusionFigure
    disagreement: bool
    tolerance: FusionTolerance


@dataclass(frozen=True, slots=True, kw_only=True)
class CountDraft(Record):
    """An ``edgecount.count/1`` as the gateway builds it, before the outbox sequences it."""

    SCHEMA: ClassVar[str | None] = COUNT
    gateway: str
    site: str
    zone: str
    location: str
    scan_id: str
    observed_at: str
    source: CountSource
    complete: bool
    items: tuple[CountItem, ...]
    total: int
    fusion: Fusion | None = None

    @property
    def quantities(self) -> dict[str, int]:
        """SKU -> quantity of the count's items (what a WMS or a scorer compares)."""
        return {item.sku: item.qty for item in self.items}

    def sequenced(
        self, seq: int, *, historical: bool = False, epoch: str | None = None
    ) -> CountMessage:
        """The message with ``seq``, ``msg_id`` (see :func:`msg_id`) and ``historical``."""
        return _sequenced(self, CountMessage, seq, historical, epoch)


@dataclass(frozen=True, slots=True, kw_only=True)
class CountMessage(CountDraft):
    """``edgecount.count/1``: what a gateway counted at one location in one scan."""

    seq: int
    msg_id: str
    historical: bool


# --- scan -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderReport(Record):
    """How one reader did during a scan."""

    name: str
    ok: bool
    reads: int
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraReport(Record):
    """How one camera did during a scan."""

    name: str
    ok: bool
    frames: int
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanDraft(Record):
    """An ``edgecount.scan/1`` as the gateway builds it, before the outbox sequences it."""

    SCHEMA: ClassVar[str | None] = SCAN
    state: ScanState
    scan_id: str
    zone: str
    gateway: str
    site: str
    started_at: str
    locations: tuple[str, ...]
    incomplete_locations: tuple[str, ...]
    readers: tuple[ReaderReport, ...]
    cameras: tuple[CameraReport, ...] | None = None
    ended_at: str | None = None
    request_id: str | None = None

    def sequenced(
        self, seq: int, *, historical: bool = False, epoch: str | None = None
    ) -> ScanMessage:
        """The message with ``seq``, ``msg_id`` (see :func:`msg_id`) and ``historical``."""
        return _sequenced(self, ScanMessage, seq, historical, epoch)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanMessage(ScanDraft):
    """``edgecount.scan/1``: the state of one zone scan."""

    seq: int
    msg_id: str
    historical: bool


_S = TypeVar("_S", CountMessage, ScanMessage)


def _sequenced(
    draft: CountDraft | ScanDraft, cls: type[_S], seq: int, historical: bool, epoch: str | None
) -> _S:
    """``cls`` made of the draft's fields and the three the outbox adds."""
    fields = {
        spec.name: getattr(draft, spec.name)
        for spec in field_specs(cls)
        if spec.name not in SEQUENCE_FIELDS
    }
    return cls(**fields, seq=seq, msg_id=msg_id(draft.gateway, seq, epoch), historical=historical)


# --- gateway status, scan request, pose -------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusMessage(Record):
    """``edgecount.status/1``: a gateway's availability."""

    SCHEMA: ClassVar[str | None] = STATUS
    gateway: str
    site: str
    state: GatewayState
    at: str
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanRequestMessage(Record):
    """``edgecount.scan-request/1``: asks a gateway to scan a zone and/or locations."""

    SCHEMA: ClassVar[str | None] = SCAN_REQUEST
    request_id: str
    reason: str
    requested_by: str
    at: str
    zone: str | None = None
    locations: tuple[str, ...] | None = None
    expires_at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PoseMessage(Record):
    """``edgecount.pose/1``: where a robot carrying a reader is along its aisle."""

    SCHEMA: ClassVar[str | None] = POSE
    robot: str
    at: str
    x: float
    aisle: str | None = None
    y: float | None = None
    heading: float | None = None


# --- camera frame ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameMessage(Record):
    """``edgecount.frame/1``: the annotated camera frame a vision count was made from.

    Not sequenced and not in the outbox: frames are best effort (QoS 0, retained).
    ``data`` is the JPEG in base64; :attr:`jpeg` is its bytes.
    """

    SCHEMA: ClassVar[str | None] = FRAME
    gateway: str
    site: str
    zone: str
    location: str
    scan_id: str
    observed_at: str
    content_type: ImageType
    width: int
    height: int
    data: str

    @property
    def jpeg(self) -> bytes:
        """The image bytes (``data`` decoded; a decoded message's ``data`` is valid base64)."""
        return base64.b64decode(self.data)


# --- the reconciler's messages ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscrepancyLine(Record):
    """One SKU of a discrepancy, as in the discrepancy report."""

    sku: str
    book_qty: int
    counted_qty: int | None
    diff: int | None
    diff_value: float | None
    status: LineStatus = field(metadata={"allowed": PUBLISHED_STATUSES})
    unit_cost: float | None = None
    abc: AbcClass | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscrepancyMessage(Record):
    """``edgecount.discrepancy/1``: the open discrepancy of one location."""

    SCHEMA: ClassVar[str | None] = DISCREPANCY
    discrepancy_id: str
    site: str
    zone: str
    location: str
    state: DiscrepancyState = field(metadata={"allowed": OPEN_STATES})
    scan_id: str
    count_msg_id: str
    observed_at: str
    detected_at: str
    recounts: int
    lines: tuple[DiscrepancyLine, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AdjustmentMessage(Record):
    """``edgecount.adjustment/1``: an approved stock adjustment of one SKU at one location."""

    SCHEMA: ClassVar[str | None] = ADJUSTMENT
    adjustment_id: str
    site: str
    zone: str
    location: str
    sku: str
    book_qty: int
    counted_qty: int
    diff: int
    diff_value: float | None
    unit_cost: float | None = None
    reason_code: str
    approved_by: str
    approved_at: str
    discrepancy_id: str
    scan_id: str
    count_msg_id: str
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionLine(Record):
    """One line of a decided discrepancy."""

    sku: str
    book_qty: int
    counted_qty: int
    diff: int
    diff_value: float | None
    status: LineStatus = field(metadata={"allowed": EXCEPTION_STATUSES})


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionAdjustment(Record):
    """One adjustment of an approved decision, as published on the adjustment topic."""

    adjustment_id: str
    sku: str
    diff: int
    diff_value: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionMessage(Record):
    """``edgecount.decision/1``: how a discrepancy ended, and who decided."""

    SCHEMA: ClassVar[str | None] = DECISION
    decision_id: str
    discrepancy_id: str
    site: str
    zone: str
    location: str
    outcome: DiscrepancyState = field(metadata={"allowed": CLOSED_STATES})
    by: str
    reason: str
    at: str
    scan_id: str
    count_msg_id: str
    recounts: int | None = None
    lines: tuple[DecisionLine, ...]
    note: str | None = None
    adjustments: tuple[DecisionAdjustment, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadletterMessage(Record):
    """``edgecount.deadletter/1``: a message a consumer rejected, kept for operators."""

    SCHEMA: ClassVar[str | None] = DEADLETTER
    topic: str
    reason: str
    rejected_by: str
    received_at: str
    payload_base64: str
    truncated: bool | None = None


# --- the union, and decoding into it ----------------------------------------------------------

Message = (
    CountMessage
    | ScanMessage
    | StatusMessage
    | ScanRequestMessage
    | DiscrepancyMessage
    | AdjustmentMessage
    | DecisionMessage
    | DeadletterMessage
    | PoseMessage
    | FrameMessage
)
"""Any message of contract v1 as it is on the wire."""

MESSAGE_CLASSES: Final[Mapping[str, type[Message]]] = {
    COUNT: CountMessage,
    SCAN: ScanMessage,
    STATUS: StatusMessage,
    SCAN_REQUEST: ScanRequestMessage,
    DISCREPANCY: DiscrepancyMessage,
    ADJUSTMENT: AdjustmentMessage,
    DECISION: DecisionMessage,
    DEADLETTER: DeadletterMessage,
    POSE: PoseMessage,
    FRAME: FrameMessage,
}
"""The class of each schema id."""

DRAFT_CLASSES: Final[Mapping[str, type[CountDraft | ScanDraft]]] = {
    COUNT: CountDraft,
    SCAN: ScanDraft,
}
"""The draft class of each sequenced schema id."""


def message_from_payload(payload: Mapping[str, Any]) -> Message:
    """The message of a valid payload, its class picked by the payload's ``schema``."""
    return MESSAGE_CLASSES[payload["schema"]].from_payload(payload)


def decode_message(topic: str, raw: bytes) -> Message:
    """Bytes received on ``topic`` -> the typed message.

    The same checks as :func:`~edgecount.contract.decode` with ``topic`` (hardened JSON,
    schema, semantic checks, topic and identifiers agree), then the class of the payload's
    ``schema``.

    Raises:
        ContractError: Whatever :func:`~edgecount.contract.decode` rejects, with its text.
    """
    return message_from_payload(decode(raw, topic=topic))


def encode_message(message: Record, *, topic: str | None = None, check: bool = True) -> bytes:
    """A typed message -> the bytes that go on the wire (compact UTF-8 JSON).

    The counterpart of :func:`decode_message`: the payload is :meth:`Record.to_payload`,
    validated (:func:`~edgecount.contract.validate`) and, with ``topic``, checked against it
    (:func:`~edgecount.contract.check_topic`). ``check=False`` skips both (an outbox told not
    to validate). A sequenced draft is not a message: sequence it first
    (:meth:`CountDraft.sequenced`).

    Raises:
        ContractError: The payload breaks the contract or does not belong on ``topic``.
    """
    payload = message.to_payload()
    if check:
        validate(payload)
        if topic is not None:
            check_topic(topic, payload)
    return serialise(payload)
