"""Payload builders: keyword arguments -> a message class -> its validated payload.

Each builder makes the typed class (:mod:`edgecount.contract.messages`) and returns its
:meth:`~edgecount.contract.messages.Record.to_payload`, so the classes are the one place that
knows each shape; the builders add what is derived (``total``, sorting, timestamps, a fresh
``request_id``) and validate the result. Nested parts given as mappings (a count's items, a
scan's readers) are checked key by key first, so a wrong key is a :class:`ContractError`,
never silently dropped. For a consumer that keeps the class until it encodes at the wire,
:func:`scan_request_message` and :func:`deadletter_message` return the validated class itself.
"""

from __future__ import annotations

import base64
import enum
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from edgecount import __version__
from edgecount.contract.common import (
    COUNT,
    SCAN,
    SEQUENCE_FIELDS,
    SEQUENCED,
    STATUS,
    ContractError,
    iso_or_now,
    now_iso,
)
from edgecount.contract.messages import (
    DRAFT_CLASSES,
    MESSAGE_CLASSES,
    CameraReport,
    CountDraft,
    CountItem,
    CountSource,
    DeadletterMessage,
    FrameMessage,
    Fusion,
    GatewayState,
    ImageType,
    ReaderReport,
    ScanDraft,
    ScanRequestMessage,
    ScanState,
    StatusMessage,
)
from edgecount.contract.record import Layout, Record, layout
from edgecount.contract.wire import validate, validate_draft

R = TypeVar("R", bound=Record)
E = TypeVar("E", bound=enum.StrEnum)


def _part(cls: type[R], raw: object, schema: str, path: str) -> R:
    """A nested part from a caller's mapping, its keys checked as the schema would."""
    if not isinstance(raw, dict | Mapping):
        raise ContractError(f"{raw!r} is not of type 'object'", schema=schema, path=path)
    shape = layout(cls)
    keys = raw.keys()
    if not (keys <= shape.names and shape.required <= keys):
        _wrong_keys(shape, keys, schema, path)
    for spec in shape.parts:
        value = raw.get(spec.name)
        if spec.part is not None and isinstance(value, dict | Mapping):
            _part(spec.part, value, schema, f"{path}.{spec.name}")
    try:
        return cls.from_payload(raw)
    except (TypeError, ValueError) as exc:  # a bad enumeration value, a non-list of parts
        raise ContractError(str(exc), schema=schema, path=path) from None


def _wrong_keys(shape: Layout, keys: Iterable[object], schema: str, path: str) -> None:
    """Raise the schema's words for unknown or missing keys."""
    extra = [repr(key) for key in keys if key not in shape.names]
    if extra:
        were = "was" if len(extra) == 1 else "were"
        raise ContractError(
            f"Additional properties are not allowed ({', '.join(extra)} {were} unexpected)",
            schema=schema,
            path=path,
        )
    missing = next(spec.name for spec in shape.specs if spec.name in shape.required - set(keys))
    raise ContractError(f"{missing!r} is a required property", schema=schema, path=path)


def _parts(cls: type[R], rows: Iterable[object], schema: str, name: str) -> list[R]:
    return [_part(cls, row, schema, f"{name}[{index}]") for index, row in enumerate(rows)]


def _enum(cls: type[E], value: str, schema: str, name: str) -> E:
    try:
        return cls(value)
    except ValueError:
        allowed = [member.value for member in cls]
        raise ContractError(
            f"{value!r} is not one of {allowed}", schema=schema, path=name
        ) from None


def count_draft(
    *,
    gateway: str,
    site: str,
    zone: str,
    location: str,
    scan_id: str,
    items: Iterable[CountItem],
    source: CountSource = CountSource.RFID,
    complete: bool = True,
    observed_at: str | datetime | None = None,
    fusion: Fusion | None = None,
) -> CountDraft:
    """An ``edgecount.count/1`` draft from typed parts: items sorted by sku, ``total`` their sum.

    Not validated against the schema: whoever sequences it validates the message (the
    gateway's outbox does, on put); :func:`count_payload` validates the draft.

    Raises:
        ContractError: ``fusion`` without ``source`` fused, or the other way round.
    """
    if (fusion is not None) != (source is CountSource.FUSED):
        raise ContractError("fusion figures go with source 'fused', and only with it")
    rows = tuple(sorted(items, key=lambda item: str(item.sku)))
    return CountDraft(
        gateway=gateway,
        site=site,
        zone=zone,
        location=location,
        scan_id=scan_id,
        observed_at=iso_or_now(observed_at),
        source=source,
        complete=complete,
        items=rows,
        total=sum(int(item.qty) for item in rows),
        fusion=fusion,
    )


def count_payload(
    *,
    gateway: str,
    site: str,
    zone: str,
    location: str,
    scan_id: str,
    items: Iterable[Mapping[str, Any]],
    source: str = "rfid",
    complete: bool = True,
    observed_at: str | datetime | None = None,
    fusion: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An ``edgecount.count/1`` draft (no seq/msg_id/historical: the outbox adds them).

    Items are ``{"sku", "qty", "confidence"?, "epcs"?}``, sorted here by sku; ``total`` is
    their sum. ``fusion`` (the RFID and vision figures) goes with ``source="fused"``.
    The payload of :func:`count_draft`, validated.
    Raises :class:`ContractError` when the result would not be valid.
    """
    if (fusion is not None) != (source == "fused"):  # before the parts: the clearer error
        raise ContractError("fusion figures go with source 'fused', and only with it")
    draft = count_draft(
        gateway=gateway,
        site=site,
        zone=zone,
        location=location,
        scan_id=scan_id,
        items=_parts(CountItem, items, COUNT, "items"),
        source=_enum(CountSource, source, COUNT, "source"),
        complete=complete,
        observed_at=observed_at,
        fusion=None if fusion is None else _part(Fusion, fusion, COUNT, "fusion"),
    )
    payload = draft.to_payload()
    validate_draft(payload)
    return payload


def scan_payload(
    *,
    gateway: str,
    site: str,
    zone: str,
    scan_id: str,
    state: str,
    started_at: str | datetime,
    locations: Sequence[str],
    ended_at: str | datetime | None = None,
    incomplete_locations: Sequence[str] = (),
    readers: Iterable[Mapping[str, Any]] = (),
    cameras: Iterable[Mapping[str, Any]] = (),
    request_id: str | None = None,
) -> dict[str, Any]:
    """An ``edgecount.scan/1`` draft; ``state`` is started, completed or incomplete."""
    camera_rows = _parts(CameraReport, cameras, SCAN, "cameras")
    draft = ScanDraft(
        state=_enum(ScanState, state, SCAN, "state"),
        scan_id=scan_id,
        zone=zone,
        gateway=gateway,
        site=site,
        started_at=iso_or_now(started_at),
        locations=tuple(locations),
        incomplete_locations=tuple(incomplete_locations),
        readers=tuple(_parts(ReaderReport, readers, SCAN, "readers")),
        cameras=tuple(camera_rows) if camera_rows else None,
        ended_at=None if ended_at is None else iso_or_now(ended_at),
        request_id=request_id,
    )
    payload = draft.to_payload()
    validate_draft(payload)
    return payload


def status_message(
    *,
    gateway: str,
    site: str,
    state: str,
    at: str | datetime | None = None,
    version: str = __version__,
) -> StatusMessage:
    """A validated ``edgecount.status/1``; ``state`` is online, offline or stopped."""
    message = StatusMessage(
        gateway=gateway,
        site=site,
        state=_enum(GatewayState, state, STATUS, "state"),
        at=iso_or_now(at),
        version=version,
    )
    validate(message.to_payload())
    return message


def status_payload(
    *,
    gateway: str,
    site: str,
    state: str,
    at: str | datetime | None = None,
    version: str = __version__,
) -> dict[str, Any]:
    """An ``edgecount.status/1`` payload: the payload of :func:`status_message`."""
    message = status_message(gateway=gateway, site=site, state=state, at=at, version=version)
    return message.to_payload()


def scan_request_message(
    *,
    reason: str,
    requested_by: str,
    zone: str | None = None,
    locations: Sequence[str] | None = None,
    request_id: str | None = None,
    at: str | datetime | None = None,
    expires_at: str | datetime | None = None,
) -> ScanRequestMessage:
    """An ``edgecount.scan-request/1`` for a zone and/or locations, validated.

    ``request_id`` defaults to a fresh UUID.
    """
    message = ScanRequestMessage(
        request_id=request_id or str(uuid.uuid4()),
        reason=reason,
        requested_by=requested_by,
        at=iso_or_now(at),
        zone=zone,
        locations=None if locations is None else tuple(locations),
        expires_at=None if expires_at is None else iso_or_now(expires_at),
    )
    validate(message.to_payload())
    return message


def scan_request_payload(
    *,
    reason: str,
    requested_by: str,
    zone: str | None = None,
    locations: Sequence[str] | None = None,
    request_id: str | None = None,
    at: str | datetime | None = None,
    expires_at: str | datetime | None = None,
) -> dict[str, Any]:
    """The payload of :func:`scan_request_message` (same arguments)."""
    return scan_request_message(
        reason=reason,
        requested_by=requested_by,
        zone=zone,
        locations=locations,
        request_id=request_id,
        at=at,
        expires_at=expires_at,
    ).to_payload()


def build(schema: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Any payload: ``{"schema": schema, **fields}``, validated (a draft for sequenced ones).

    Used for the reconciler's messages (discrepancy, adjustment, decision) until they get
    builders of their own. The result is written by the schema's class, so its keys come
    in the class's order.
    """
    payload = {"schema": schema, **fields}
    validate_draft(payload)
    cls: type[Record] = MESSAGE_CLASSES[schema]
    if schema in SEQUENCED and not set(SEQUENCE_FIELDS) <= payload.keys():
        if payload.keys() & set(SEQUENCE_FIELDS):
            return payload  # part-sequenced (validate_draft allows a seq alone): as given
        cls = DRAFT_CLASSES[schema]
    return cls.from_payload(payload).to_payload()


def deadletter_message(
    *, topic: str, raw: bytes, reason: str, rejected_by: str, max_bytes: int = 65536
) -> DeadletterMessage:
    """The ``edgecount.deadletter/1`` of a rejected message (kept up to max_bytes), validated."""
    message = DeadletterMessage(
        topic=topic or "?",
        reason=reason[:4096] or "?",
        rejected_by=rejected_by,
        received_at=now_iso(),
        payload_base64=base64.b64encode(raw[:max_bytes]).decode("ascii"),
        truncated=True if len(raw) > max_bytes else None,
    )
    validate(message.to_payload())
    return message


def deadletter_payload(
    *, topic: str, raw: bytes, reason: str, rejected_by: str, max_bytes: int = 65536
) -> dict[str, Any]:
    """The payload of :func:`deadletter_message` (same arguments)."""
    return deadletter_message(
        topic=topic, raw=raw, reason=reason, rejected_by=rejected_by, max_bytes=max_bytes
    ).to_payload()


def frame_message(
    *,
    gateway: str,
    site: str,
    zone: str,
    location: str,
    scan_id: str,
    jpeg: bytes,
    width: int,
    height: int,
    observed_at: str | datetime | None = None,
) -> FrameMessage:
    """A validated ``edgecount.frame/1`` carrying ``jpeg`` (at most ``MAX_FRAME_BYTES``).

    Raises:
        ContractError: The image is too big, not a JPEG, or a field breaks the schema.
    """
    message = FrameMessage(
        gateway=gateway,
        site=site,
        zone=zone,
        location=location,
        scan_id=scan_id,
        observed_at=iso_or_now(observed_at),
        content_type=ImageType.JPEG,
        width=width,
        height=height,
        data=base64.b64encode(jpeg).decode("ascii"),
    )
    validate(message.to_payload())
    return message
