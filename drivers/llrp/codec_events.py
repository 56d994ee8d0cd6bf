"""LLRP reader-event parameters (READER_EVENT_NOTIFICATION)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Self

from drivers.llrp.codec_base import (
    RawParam,
    fail,
    many,
    opt,
    tlv,
    utf8v,
)
from drivers.llrp.codec_params import OpaqueParam
from drivers.llrp.codec_types import (
    ParamType,
    StatusCode,
)

P = ParamType


@dataclass(frozen=True, slots=True)
class ROSpecEvent:
    """ROSpecEvent: start (0), end (1) or preemption (2) of an ROSpec."""

    event_type: int
    rospec_id: int
    preempting_rospec_id: int = 0

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.ROSPEC_EVENT,
            struct.pack(">BII", self.event_type, self.rospec_id, self.preempting_rospec_id),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        value = cls(cur.u8(), cur.u32(), cur.u32())
        cur.params().finish()
        return value


@dataclass(frozen=True, slots=True)
class AISpecEvent:
    """AISpecEvent: end (0) of an AISpec."""

    event_type: int
    rospec_id: int
    spec_index: int

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(
            P.AI_SPEC_EVENT,
            struct.pack(">BIH", self.event_type, self.rospec_id, self.spec_index),
        )

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter (an optional singulation-details TV is skipped)."""
        cur = raw.cursor()
        value = cls(cur.u8(), cur.u32(), cur.u16())
        params = cur.params()
        params.many(P.C1G2_SINGULATION_DETAILS)
        params.finish()
        return value


@dataclass(frozen=True, slots=True)
class AntennaEvent:
    """AntennaEvent: antenna disconnected (0) or connected (1)."""

    event_type: int
    antenna_id: int

    def encode(self) -> bytes:
        """Encode the parameter."""
        return tlv(P.ANTENNA_EVENT, struct.pack(">BH", self.event_type, self.antenna_id))

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter."""
        cur = raw.cursor()
        value = cls(cur.u8(), cur.u16())
        cur.params().finish()
        return value


@dataclass(frozen=True, slots=True)
class ReaderEventNotificationData:
    """ReaderEventNotificationData: a UTC timestamp and the events that happened.

    Attributes:
        timestamp_us: Reader UTC time in microseconds since the UNIX epoch.
        connection_attempt: ConnectionAttemptEvent status, if this is one.
        connection_close: True for a ConnectionCloseEvent.
        rospec_event: ROSpecEvent, if any.
        aispec_event: AISpecEvent, if any.
        antenna_event: AntennaEvent, if any.
        reader_exception: ReaderExceptionEvent message, if any.
        other: Further event parameters, kept as bytes.
    """

    timestamp_us: int
    connection_attempt: int | None = None
    connection_close: bool = False
    rospec_event: ROSpecEvent | None = None
    aispec_event: AISpecEvent | None = None
    antenna_event: AntennaEvent | None = None
    reader_exception: str | None = None
    other: tuple[OpaqueParam, ...] = field(default_factory=tuple)

    def encode(self) -> bytes:
        """Encode the parameter (events in the order the specification lists them)."""
        parts = [tlv(P.UTC_TIMESTAMP, struct.pack(">Q", self.timestamp_us))]
        parts.append(opt(self.rospec_event))
        if self.reader_exception is not None:
            parts.append(tlv(P.READER_EXCEPTION_EVENT, utf8v(self.reader_exception)))
        parts.append(opt(self.aispec_event))
        parts.append(opt(self.antenna_event))
        if self.connection_attempt is not None:
            parts.append(
                tlv(P.CONNECTION_ATTEMPT_EVENT, struct.pack(">H", self.connection_attempt))
            )
        if self.connection_close:
            parts.append(tlv(P.CONNECTION_CLOSE_EVENT))
        parts.append(many(self.other))
        return tlv(P.READER_EVENT_NOTIFICATION_DATA, *parts)

    @classmethod
    def decode(cls, raw: RawParam) -> Self:
        """Decode the parameter (an Uptime timestamp is accepted and reported as 0)."""
        params = raw.cursor().params()
        utc = params.opt(P.UTC_TIMESTAMP)
        uptime = params.opt(P.UPTIME)
        if utc is None and uptime is None:
            fail("event without timestamp", StatusCode.P_MISSING_PARAMETER, raw.ptype)
        timestamp = utc.cursor().u64() if utc else 0
        ro = params.opt(P.ROSPEC_EVENT)
        exc = params.opt(P.READER_EXCEPTION_EVENT)
        ai = params.opt(P.AI_SPEC_EVENT)
        ant = params.opt(P.ANTENNA_EVENT)
        attempt = params.opt(P.CONNECTION_ATTEMPT_EVENT)
        close = params.opt(P.CONNECTION_CLOSE_EVENT)
        others = params.many(
            P.HOPPING_EVENT,
            P.GPI_EVENT,
            P.REPORT_BUFFER_LEVEL_WARNING_EVENT,
            P.REPORT_BUFFER_OVERFLOW_ERROR_EVENT,
            P.RF_SURVEY_EVENT,
        )
        params.finish()
        return cls(
            timestamp,
            attempt.cursor().u16() if attempt else None,
            close is not None,
            ROSpecEvent.decode(ro) if ro else None,
            AISpecEvent.decode(ai) if ai else None,
            AntennaEvent.decode(ant) if ant else None,
            exc.cursor().utf8v() if exc else None,
            tuple(OpaqueParam.decode(p) for p in others),
        )
