"""Typed LLRP messages: every message the simulator sends or accepts.

Each message class has a ``TYPE`` (its :class:`MessageType`), a ``msg_id`` and encodes
itself with :meth:`Message.encode`. :data:`MESSAGE_CLASSES` maps type numbers to classes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, Self, TypeVar

from drivers.llrp.codec_access import AccessSpec
from drivers.llrp.codec_base import (
    Cursor,
    Params,
    RawParam,
    many,
    message,
)
from drivers.llrp.codec_events import ReaderEventNotificationData
from drivers.llrp.codec_params import LLRPStatus
from drivers.llrp.codec_report import TagReportData
from drivers.llrp.codec_spec import ROSpec
from drivers.llrp.codec_types import (
    MessageType,
    ParamType,
)

P = ParamType
M = MessageType


@dataclass(frozen=True, slots=True)
class Message:
    """Base of all messages.

    Attributes:
        msg_id: The message ID (a response carries the ID of its request).
    """

    TYPE: ClassVar[int] = 0
    msg_id: int = 0

    def encode_body(self) -> bytes:
        """Encode the message body (after the header)."""
        return b""

    def encode(self) -> bytes:
        """Encode the complete message."""
        return message(self.TYPE, self.msg_id, self.encode_body())

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode a body; the base version accepts only an empty one."""
        cur.params().finish()
        return cls(msg_id)


class _Decodable(Protocol):
    @classmethod
    def decode(cls, raw: RawParam) -> Self: ...


D = TypeVar("D", bound=_Decodable)


def decode_one(params: Params, ptype: int, kind: type[D]) -> D:
    return kind.decode(params.one(ptype))


def decode_opt(params: Params, ptype: int, kind: type[D]) -> D | None:
    raw = params.opt(ptype)
    return None if raw is None else kind.decode(raw)


def decode_many(params: Params, ptype: int, kind: type[D]) -> tuple[D, ...]:
    return tuple(kind.decode(raw) for raw in params.many(ptype))


# ---------------------------------------------------------------- empty messages


@dataclass(frozen=True, slots=True)
class CloseConnection(Message):
    """CLOSE_CONNECTION."""

    TYPE: ClassVar[int] = M.CLOSE_CONNECTION


@dataclass(frozen=True, slots=True)
class GetROSpecs(Message):
    """GET_ROSPECS."""

    TYPE: ClassVar[int] = M.GET_ROSPECS


@dataclass(frozen=True, slots=True)
class GetAccessSpecs(Message):
    """GET_ACCESSSPECS."""

    TYPE: ClassVar[int] = M.GET_ACCESSSPECS


@dataclass(frozen=True, slots=True)
class GetReport(Message):
    """GET_REPORT: ask for the buffered tag reports."""

    TYPE: ClassVar[int] = M.GET_REPORT


@dataclass(frozen=True, slots=True)
class Keepalive(Message):
    """KEEPALIVE (reader to client)."""

    TYPE: ClassVar[int] = M.KEEPALIVE


@dataclass(frozen=True, slots=True)
class KeepaliveAck(Message):
    """KEEPALIVE_ACK (client to reader)."""

    TYPE: ClassVar[int] = M.KEEPALIVE_ACK


@dataclass(frozen=True, slots=True)
class EnableEventsAndReports(Message):
    """ENABLE_EVENTS_AND_REPORTS."""

    TYPE: ClassVar[int] = M.ENABLE_EVENTS_AND_REPORTS


# ---------------------------------------------------------------- status responses


@dataclass(frozen=True, slots=True)
class StatusResponse(Message):
    """A response carrying only an LLRPStatus."""

    status: LLRPStatus = field(default_factory=LLRPStatus)

    def encode_body(self) -> bytes:
        """Encode the body."""
        return self.status.encode()

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body."""
        params = cur.params()
        status = decode_one(params, P.LLRP_STATUS, LLRPStatus)
        params.finish()
        return cls(msg_id, status)


@dataclass(frozen=True, slots=True)
class SetReaderConfigResponse(StatusResponse):
    """SET_READER_CONFIG_RESPONSE."""

    TYPE: ClassVar[int] = M.SET_READER_CONFIG_RESPONSE


@dataclass(frozen=True, slots=True)
class CloseConnectionResponse(StatusResponse):
    """CLOSE_CONNECTION_RESPONSE."""

    TYPE: ClassVar[int] = M.CLOSE_CONNECTION_RESPONSE


@dataclass(frozen=True, slots=True)
class AddROSpecResponse(StatusResponse):
    """ADD_ROSPEC_RESPONSE."""

    TYPE: ClassVar[int] = M.ADD_ROSPEC_RESPONSE


@dataclass(frozen=True, slots=True)
class DeleteROSpecResponse(StatusResponse):
    """DELETE_ROSPEC_RESPONSE."""

    TYPE: ClassVar[int] = M.DELETE_ROSPEC_RESPONSE


@dataclass(frozen=True, slots=True)
class StartROSpecResponse(StatusResponse):
    """START_ROSPEC_RESPONSE."""

    TYPE: ClassVar[int] = M.START_ROSPEC_RESPONSE


@dataclass(frozen=True, slots=True)
class StopROSpecResponse(StatusResponse):
    """STOP_ROSPEC_RESPONSE."""

    TYPE: ClassVar[int] = M.STOP_ROSPEC_RESPONSE


@dataclass(frozen=True, slots=True)
class EnableROSpecResponse(StatusResponse):
    """ENABLE_ROSPEC_RESPONSE."""

    TYPE: ClassVar[int] = M.ENABLE_ROSPEC_RESPONSE


@dataclass(frozen=True, slots=True)
class DisableROSpecResponse(StatusResponse):
    """DISABLE_ROSPEC_RESPONSE."""

    TYPE: ClassVar[int] = M.DISABLE_ROSPEC_RESPONSE


@dataclass(frozen=True, slots=True)
class AddAccessSpecResponse(StatusResponse):
    """ADD_ACCESSSPEC_RESPONSE."""

    TYPE: ClassVar[int] = M.ADD_ACCESSSPEC_RESPONSE


@dataclass(frozen=True, slots=True)
class DeleteAccessSpecResponse(StatusResponse):
    """DELETE_ACCESSSPEC_RESPONSE."""

    TYPE: ClassVar[int] = M.DELETE_ACCESSSPEC_RESPONSE


@dataclass(frozen=True, slots=True)
class EnableAccessSpecResponse(StatusResponse):
    """ENABLE_ACCESSSPEC_RESPONSE."""

    TYPE: ClassVar[int] = M.ENABLE_ACCESSSPEC_RESPONSE


@dataclass(frozen=True, slots=True)
class DisableAccessSpecResponse(StatusResponse):
    """DISABLE_ACCESSSPEC_RESPONSE."""

    TYPE: ClassVar[int] = M.DISABLE_ACCESSSPEC_RESPONSE


@dataclass(frozen=True, slots=True)
class ErrorMessage(StatusResponse):
    """ERROR_MESSAGE: the reader could not handle a message."""

    TYPE: ClassVar[int] = M.ERROR_MESSAGE


# ---------------------------------------------------------------- ROSpec / AccessSpec by ID


@dataclass(frozen=True, slots=True)
class ROSpecIDMessage(Message):
    """A request naming one ROSpec (0 = all, where the specification allows it)."""

    rospec_id: int = 0

    def encode_body(self) -> bytes:
        """Encode the body."""
        return struct.pack(">I", self.rospec_id)

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body."""
        rospec_id = cur.u32()
        cur.params().finish()
        return cls(msg_id, rospec_id)


@dataclass(frozen=True, slots=True)
class DeleteROSpec(ROSpecIDMessage):
    """DELETE_ROSPEC (0 = all)."""

    TYPE: ClassVar[int] = M.DELETE_ROSPEC


@dataclass(frozen=True, slots=True)
class StartROSpec(ROSpecIDMessage):
    """START_ROSPEC."""

    TYPE: ClassVar[int] = M.START_ROSPEC


@dataclass(frozen=True, slots=True)
class StopROSpec(ROSpecIDMessage):
    """STOP_ROSPEC."""

    TYPE: ClassVar[int] = M.STOP_ROSPEC


@dataclass(frozen=True, slots=True)
class EnableROSpec(ROSpecIDMessage):
    """ENABLE_ROSPEC (0 = all)."""

    TYPE: ClassVar[int] = M.ENABLE_ROSPEC


@dataclass(frozen=True, slots=True)
class DisableROSpec(ROSpecIDMessage):
    """DISABLE_ROSPEC (0 = all)."""

    TYPE: ClassVar[int] = M.DISABLE_ROSPEC


@dataclass(frozen=True, slots=True)
class AccessSpecIDMessage(Message):
    """A request naming one AccessSpec (0 = all)."""

    access_spec_id: int = 0

    def encode_body(self) -> bytes:
        """Encode the body."""
        return struct.pack(">I", self.access_spec_id)

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body."""
        spec_id = cur.u32()
        cur.params().finish()
        return cls(msg_id, spec_id)


@dataclass(frozen=True, slots=True)
class DeleteAccessSpec(AccessSpecIDMessage):
    """DELETE_ACCESSSPEC (0 = all)."""

    TYPE: ClassVar[int] = M.DELETE_ACCESSSPEC


@dataclass(frozen=True, slots=True)
class EnableAccessSpec(AccessSpecIDMessage):
    """ENABLE_ACCESSSPEC (0 = all)."""

    TYPE: ClassVar[int] = M.ENABLE_ACCESSSPEC


@dataclass(frozen=True, slots=True)
class DisableAccessSpec(AccessSpecIDMessage):
    """DISABLE_ACCESSSPEC (0 = all)."""

    TYPE: ClassVar[int] = M.DISABLE_ACCESSSPEC


# ---------------------------------------------------------------- specs


@dataclass(frozen=True, slots=True)
class AddROSpec(Message):
    """ADD_ROSPEC."""

    TYPE: ClassVar[int] = M.ADD_ROSPEC
    rospec: ROSpec = field(default_factory=lambda: ROSpec(1))

    def encode_body(self) -> bytes:
        """Encode the body."""
        return self.rospec.encode()

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body."""
        params = cur.params()
        rospec = decode_one(params, P.ROSPEC, ROSpec)
        params.finish()
        return cls(msg_id, rospec)


@dataclass(frozen=True, slots=True)
class GetROSpecsResponse(Message):
    """GET_ROSPECS_RESPONSE."""

    TYPE: ClassVar[int] = M.GET_ROSPECS_RESPONSE
    status: LLRPStatus = field(default_factory=LLRPStatus)
    rospecs: tuple[ROSpec, ...] = ()

    def encode_body(self) -> bytes:
        """Encode the body."""
        return self.status.encode() + many(self.rospecs)

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body."""
        params = cur.params()
        status = decode_one(params, P.LLRP_STATUS, LLRPStatus)
        rospecs = decode_many(params, P.ROSPEC, ROSpec)
        params.finish()
        return cls(msg_id, status, rospecs)


@dataclass(frozen=True, slots=True)
class AddAccessSpec(Message):
    """ADD_ACCESSSPEC."""

    TYPE: ClassVar[int] = M.ADD_ACCESSSPEC
    access_spec: AccessSpec = field(default_factory=lambda: AccessSpec(1))

    def encode_body(self) -> bytes:
        """Encode the body."""
        return self.access_spec.encode()

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body."""
        params = cur.params()
        spec = decode_one(params, P.ACCESS_SPEC, AccessSpec)
        params.finish()
        return cls(msg_id, spec)


@dataclass(frozen=True, slots=True)
class GetAccessSpecsResponse(Message):
    """GET_ACCESSSPECS_RESPONSE."""

    TYPE: ClassVar[int] = M.GET_ACCESSSPECS_RESPONSE
    status: LLRPStatus = field(default_factory=LLRPStatus)
    access_specs: tuple[AccessSpec, ...] = ()

    def encode_body(self) -> bytes:
        """Encode the body."""
        return self.status.encode() + many(self.access_specs)

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body."""
        params = cur.params()
        status = decode_one(params, P.LLRP_STATUS, LLRPStatus)
        specs = decode_many(params, P.ACCESS_SPEC, AccessSpec)
        params.finish()
        return cls(msg_id, status, specs)


# ---------------------------------------------------------------- reports and events


@dataclass(frozen=True, slots=True)
class ROAccessReport(Message):
    """RO_ACCESS_REPORT (typed; see :class:`ReportEncoder` for the fast path)."""

    TYPE: ClassVar[int] = M.RO_ACCESS_REPORT
    tag_reports: tuple[TagReportData, ...] = ()

    def encode_body(self) -> bytes:
        """Encode the body."""
        return many(self.tag_reports)

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body (RFSurveyReportData is skipped)."""
        params = cur.params()
        reports = decode_many(params, P.TAG_REPORT_DATA, TagReportData)
        params.many(P.RF_SURVEY_REPORT_DATA)
        params.finish()
        return cls(msg_id, reports)


@dataclass(frozen=True, slots=True)
class ReaderEventNotification(Message):
    """READER_EVENT_NOTIFICATION."""

    TYPE: ClassVar[int] = M.READER_EVENT_NOTIFICATION
    data: ReaderEventNotificationData = field(
        default_factory=lambda: ReaderEventNotificationData(0)
    )

    def encode_body(self) -> bytes:
        """Encode the body."""
        return self.data.encode()

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body."""
        params = cur.params()
        data = decode_one(params, P.READER_EVENT_NOTIFICATION_DATA, ReaderEventNotificationData)
        params.finish()
        return cls(msg_id, data)


@dataclass(frozen=True, slots=True)
class CustomMessage(Message):
    """CUSTOM_MESSAGE: a vendor extension (vendor PEN, subtype, payload)."""

    TYPE: ClassVar[int] = M.CUSTOM_MESSAGE
    vendor_id: int = 0
    subtype: int = 0
    payload: bytes = b""

    def encode_body(self) -> bytes:
        """Encode the body."""
        return struct.pack(">IB", self.vendor_id, self.subtype) + self.payload

    @classmethod
    def decode_body(cls, msg_id: int, cur: Cursor) -> Self:
        """Decode the body."""
        vendor, subtype = cur.u32(), cur.u8()
        return cls(msg_id, vendor, subtype, cur.raw(cur.remaining()))
