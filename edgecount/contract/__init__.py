"""The MQTT message contract v1: topics, JSON Schemas, validation, typed messages, builders.

Both the gateway and the reconciler import this package, so it depends only on the standard
library, ``jsonschema`` and ``fastjsonschema``. The JSON Schemas (draft 2020-12) live in
``edgecount/schemas/`` and are the published source of truth; ``docs/asyncapi.yaml``
references them. The package's parts, bottom up:

* :mod:`~edgecount.contract.common`: :class:`ContractError`, the schema ids, ``msg_id``, time;
* :mod:`~edgecount.contract.topics`: topic builders, :func:`parse_topic`, :func:`check_topic`;
* :mod:`~edgecount.contract.wire`: :func:`validate`, :func:`encode`, the hardened
  :func:`decode`, and the semantic checks JSON Schema cannot say;
* :mod:`~edgecount.contract.messages`: one frozen typed class per schema, the enumerations,
  :func:`decode_message` (bytes -> the typed :data:`Message`) and :func:`encode_message`
  (a typed message -> validated bytes);
* :mod:`~edgecount.contract.builders`: ``count_payload`` and the other builders, which make
  the class and return its payload; ``count_draft`` returns the class itself.

Topics live under ``edgecount/v1/{site}/``::

    count/{zone}/{location}        gateway -> *    edgecount.count/1        QoS 1, retained
    scan/{zone}                    gateway -> *    edgecount.scan/1         QoS 1, retained
    status/{gateway_id}            gateway -> *    edgecount.status/1       QoS 1, retained
    cmd/{gateway_id}/scan          * -> gateway    edgecount.scan-request/1 QoS 1
    discrepancy/{zone}/{location}  reconciler -> * edgecount.discrepancy/1  QoS 1, retained
    adjustment                     reconciler -> * edgecount.adjustment/1   QoS 1
    decision                       reconciler -> * edgecount.decision/1     QoS 1
    deadletter                     consumer -> *   edgecount.deadletter/1   QoS 1
    pose/{robot}                   robot -> gateway edgecount.pose/1        QoS 0 (edgecount.pose)

``count`` and ``scan`` messages are *sequenced*: the gateway's outbox fills in ``seq``,
``msg_id`` (``"{gateway}:{epoch}:{seq}"``) and ``historical`` (see :func:`with_sequence`). Their
builders therefore return *drafts* without those three fields; :func:`validate_draft` checks
a draft, :func:`validate` checks what goes on the wire.
"""

from edgecount.contract.builders import (
    build,
    count_draft,
    count_payload,
    deadletter_message,
    deadletter_payload,
    scan_payload,
    scan_request_message,
    scan_request_payload,
    status_message,
    status_payload,
)
from edgecount.contract.common import (
    ADJUSTMENT,
    COUNT,
    DEADLETTER,
    DECISION,
    DISCREPANCY,
    EPOCH_PATTERN,
    POSE,
    SCAN,
    SCAN_REQUEST,
    SCHEMA_FILES,
    SEQUENCE_FIELDS,
    SEQUENCED,
    STATUS,
    TOPIC_PREFIX,
    UNKNOWN_SKU,
    ContractError,
    msg_id,
    now_iso,
    parse_iso,
    to_iso,
)
from edgecount.contract.messages import (
    CLOSED_STATES,
    DRAFT_CLASSES,
    EXCEPTION_STATUSES,
    MESSAGE_CLASSES,
    OPEN_STATES,
    PUBLISHED_STATUSES,
    AbcClass,
    AdjustmentMessage,
    CameraReport,
    CountDraft,
    CountItem,
    CountMessage,
    CountSource,
    DeadletterMessage,
    DecisionAdjustment,
    DecisionLine,
    DecisionMessage,
    DiscrepancyLine,
    DiscrepancyMessage,
    DiscrepancyState,
    Fusion,
    FusionFigure,
    FusionTolerance,
    GatewayState,
    LineStatus,
    Message,
    PoseMessage,
    ReaderReport,
    ScanDraft,
    ScanMessage,
    ScanRequestMessage,
    ScanState,
    StatusMessage,
    decode_message,
    encode_message,
    message_from_payload,
)
from edgecount.contract.record import FieldSpec, Layout, Record, field_specs, layout
from edgecount.contract.topics import (
    MAX_SEGMENT,
    TOPICS,
    TopicInfo,
    adjustment_topic,
    check_segment,
    check_topic,
    cmd_scan_topic,
    count_topic,
    deadletter_topic,
    decision_topic,
    discrepancy_topic,
    parse_topic,
    scan_topic,
    site_filter,
    site_root,
    status_topic,
)
from edgecount.contract.wire import (
    MAX_INT_DIGITS,
    as_historical,
    decode,
    encode,
    schema_document,
    serialise,
    validate,
    validate_draft,
    with_sequence,
)

__all__ = [
    "ADJUSTMENT",
    "CLOSED_STATES",
    "COUNT",
    "DEADLETTER",
    "DECISION",
    "DISCREPANCY",
    "DRAFT_CLASSES",
    "EPOCH_PATTERN",
    "EXCEPTION_STATUSES",
    "MAX_INT_DIGITS",
    "MAX_SEGMENT",
    "MESSAGE_CLASSES",
    "OPEN_STATES",
    "POSE",
    "PUBLISHED_STATUSES",
    "SCAN",
    "SCAN_REQUEST",
    "SCHEMA_FILES",
    "SEQUENCED",
    "SEQUENCE_FIELDS",
    "STATUS",
    "TOPICS",
    "TOPIC_PREFIX",
    "UNKNOWN_SKU",
    "AbcClass",
    "AdjustmentMessage",
    "CameraReport",
    "ContractError",
    "CountDraft",
    "CountItem",
    "CountMessage",
    "CountSource",
    "DeadletterMessage",
    "DecisionAdjustment",
    "DecisionLine",
    "DecisionMessage",
    "DiscrepancyLine",
    "DiscrepancyMessage",
    "DiscrepancyState",
    "FieldSpec",
    "Fusion",
    "FusionFigure",
    "FusionTolerance",
    "GatewayState",
    "Layout",
    "LineStatus",
    "Message",
    "PoseMessage",
    "ReaderReport",
    "Record",
    "ScanDraft",
    "ScanMessage",
    "ScanRequestMessage",
    "ScanState",
    "StatusMessage",
    "TopicInfo",
    "adjustment_topic",
    "as_historical",
    "build",
    "check_segment",
    "check_topic",
    "cmd_scan_topic",
    "count_draft",
    "count_payload",
    "count_topic",
    "deadletter_message",
    "deadletter_payload",
    "deadletter_topic",
    "decision_topic",
    "decode",
    "decode_message",
    "discrepancy_topic",
    "encode",
    "encode_message",
    "field_specs",
    "layout",
    "message_from_payload",
    "msg_id",
    "now_iso",
    "parse_iso",
    "parse_topic",
    "scan_payload",
    "scan_request_message",
    "scan_request_payload",
    "scan_topic",
    "schema_document",
    "serialise",
    "site_filter",
    "site_root",
    "status_message",
    "status_payload",
    "status_topic",
    "to_iso",
    "validate",
    "validate_draft",
    "with_sequence",
]
