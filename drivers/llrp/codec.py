"""Pure LLRP 1.0.1 codec: framing, typed messages and a fast RO_ACCESS_REPORT path.

No sockets and no clock: bytes in, typed values out, and back.

Layers, bottom-up:

* :mod:`drivers.llrp.codec_base` - type numbers, status codes, errors, bounds-checked reads.
* :mod:`drivers.llrp.codec_params`, :mod:`~drivers.llrp.codec_caps`,
  :mod:`~drivers.llrp.codec_spec` - parameters as frozen dataclasses.
* :mod:`drivers.llrp.codec_report` - TagReportData, :class:`ReportEncoder` and
  :func:`decode_ro_access_report`.
* :mod:`drivers.llrp.codec_messages` - messages.
* this module - :class:`FrameBuffer` (stream to frames), :func:`encode_message` and
  :func:`decode_message`, and re-exports of the public names.

Example:
    >>> buf = FrameBuffer()
    >>> frames = buf.feed(encode_message(KeepaliveAck(msg_id=7)))
    >>> decode_message(frames[0])
    KeepaliveAck(msg_id=7)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from drivers.llrp.codec_access import AccessCommand, AccessSpec, C1G2Read, C1G2TargetTag
from drivers.llrp.codec_base import (
    HEADER_SIZE,
    LLRP_VERSION,
    Cursor,
    LLRPDecodeError,
    LLRPError,
    message,
    unpack_header,
)
from drivers.llrp.codec_caps import (
    C1G2LLRPCapabilities,
    FrequencyHopTable,
    FrequencyInformation,
    GeneralDeviceCapabilities,
    LLRPCapabilities,
    PerAntennaAirProtocol,
    ReceiveSensitivityTableEntry,
    RegulatoryCapabilities,
    TransmitPowerLevelTableEntry,
    UHFBandCapabilities,
    UHFC1G2RFModeTableEntry,
)
from drivers.llrp.codec_config import (
    GetReaderCapabilities,
    GetReaderCapabilitiesResponse,
    GetReaderConfig,
    GetReaderConfigResponse,
    ReaderConfig,
    SetReaderConfig,
)
from drivers.llrp.codec_events import (
    AISpecEvent,
    AntennaEvent,
    ReaderEventNotificationData,
    ROSpecEvent,
)
from drivers.llrp.codec_messages import (
    AccessSpecIDMessage,
    AddAccessSpec,
    AddAccessSpecResponse,
    AddROSpec,
    AddROSpecResponse,
    CloseConnection,
    CloseConnectionResponse,
    CustomMessage,
    DeleteAccessSpec,
    DeleteAccessSpecResponse,
    DeleteROSpec,
    DeleteROSpecResponse,
    DisableAccessSpec,
    DisableAccessSpecResponse,
    DisableROSpec,
    DisableROSpecResponse,
    EnableAccessSpec,
    EnableAccessSpecResponse,
    EnableEventsAndReports,
    EnableROSpec,
    EnableROSpecResponse,
    ErrorMessage,
    GetAccessSpecs,
    GetAccessSpecsResponse,
    GetReport,
    GetROSpecs,
    GetROSpecsResponse,
    Keepalive,
    KeepaliveAck,
    Message,
    ReaderEventNotification,
    ROAccessReport,
    ROSpecIDMessage,
    SetReaderConfigResponse,
    StartROSpec,
    StartROSpecResponse,
    StatusResponse,
    StopROSpec,
    StopROSpecResponse,
)
from drivers.llrp.codec_params import (
    AccessReportSpec,
    AntennaConfiguration,
    AntennaProperties,
    C1G2InventoryCommand,
    C1G2RFControl,
    C1G2SingulationControl,
    EventNotificationState,
    EventsAndReports,
    FieldError,
    GPIPortCurrentState,
    Identification,
    KeepaliveSpec,
    LLRPStatus,
    OpaqueParam,
    ParameterError,
    ReaderEventNotificationSpec,
    RFReceiver,
    RFTransmitter,
)
from drivers.llrp.codec_report import (
    ReportEncoder,
    TagRead,
    TagReportData,
    TagTuple,
    decode_ro_access_report,
    decode_tag_reports,
    encode_epc,
)
from drivers.llrp.codec_spec import (
    AISpec,
    AISpecStopTrigger,
    GPITriggerValue,
    InventoryParameterSpec,
    PeriodicTriggerValue,
    ROBoundarySpec,
    ROReportSpec,
    ROSpec,
    ROSpecStartTrigger,
    ROSpecStopTrigger,
    TagObservationTrigger,
    TagReportContentSelector,
)
from drivers.llrp.codec_types import (
    AISpecStopTriggerType,
    ConnectionAttemptStatus,
    GetReaderConfigRequestedData,
    KeepaliveTriggerType,
    MessageType,
    NotificationEventType,
    ParamType,
    ROReportTriggerType,
    ROSpecEventType,
    ROSpecStartTriggerType,
    ROSpecState,
    ROSpecStopTriggerType,
    StatusCode,
    TagObservationTriggerType,
)

#: Message classes by type number.
MESSAGE_CLASSES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        GetReaderCapabilities,
        GetReaderCapabilitiesResponse,
        GetReaderConfig,
        GetReaderConfigResponse,
        SetReaderConfig,
        SetReaderConfigResponse,
        CloseConnection,
        CloseConnectionResponse,
        AddROSpec,
        AddROSpecResponse,
        DeleteROSpec,
        DeleteROSpecResponse,
        StartROSpec,
        StartROSpecResponse,
        StopROSpec,
        StopROSpecResponse,
        EnableROSpec,
        EnableROSpecResponse,
        DisableROSpec,
        DisableROSpecResponse,
        GetROSpecs,
        GetROSpecsResponse,
        AddAccessSpec,
        AddAccessSpecResponse,
        DeleteAccessSpec,
        DeleteAccessSpecResponse,
        EnableAccessSpec,
        EnableAccessSpecResponse,
        DisableAccessSpec,
        DisableAccessSpecResponse,
        GetAccessSpecs,
        GetAccessSpecsResponse,
        GetReport,
        ROAccessReport,
        Keepalive,
        KeepaliveAck,
        ReaderEventNotification,
        EnableEventsAndReports,
        ErrorMessage,
        CustomMessage,
    )
}

#: Builds the response (msg_id, status) to each request type that has one.
RESPONSE_OF: dict[int, Callable[[int, LLRPStatus], Message]] = {
    MessageType.GET_READER_CAPABILITIES: GetReaderCapabilitiesResponse,
    MessageType.GET_READER_CONFIG: GetReaderConfigResponse,
    MessageType.GET_ROSPECS: GetROSpecsResponse,
    MessageType.GET_ACCESSSPECS: GetAccessSpecsResponse,
    MessageType.SET_READER_CONFIG: SetReaderConfigResponse,
    MessageType.CLOSE_CONNECTION: CloseConnectionResponse,
    MessageType.ADD_ROSPEC: AddROSpecResponse,
    MessageType.DELETE_ROSPEC: DeleteROSpecResponse,
    MessageType.START_ROSPEC: StartROSpecResponse,
    MessageType.STOP_ROSPEC: StopROSpecResponse,
    MessageType.ENABLE_ROSPEC: EnableROSpecResponse,
    MessageType.DISABLE_ROSPEC: DisableROSpecResponse,
    MessageType.ADD_ACCESSSPEC: AddAccessSpecResponse,
    MessageType.DELETE_ACCESSSPEC: DeleteAccessSpecResponse,
    MessageType.ENABLE_ACCESSSPEC: EnableAccessSpecResponse,
    MessageType.DISABLE_ACCESSSPEC: DisableAccessSpecResponse,
}

#: Default largest message a :class:`FrameBuffer` accepts (bytes).
DEFAULT_MAX_MESSAGE: Final = 8 * 1024 * 1024


class LLRPFramingError(LLRPError):
    """The byte stream cannot be split into messages (absurd length field).

    The stream is out of step after this; a reader answers with ERROR_MESSAGE and closes.

    Attributes:
        frames: The complete frames found before the bad header.
        msg_type: Type number from the bad header.
        msg_id: Message ID from the bad header.
    """

    def __init__(self, message: str, frames: list[Frame], msg_type: int, msg_id: int) -> None:
        super().__init__(message)
        self.frames = frames
        self.msg_type = msg_type
        self.msg_id = msg_id


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete LLRP message as found on the wire.

    Attributes:
        version: Protocol version from the header (1 for LLRP 1.0.1).
        msg_type: Message type number.
        msg_id: Message ID.
        data: The whole message, header included.
    """

    version: int
    msg_type: int
    msg_id: int
    data: bytes

    @property
    def body(self) -> bytes:
        """The message body (after the 10-byte header)."""
        return self.data[HEADER_SIZE:]


class FrameBuffer:
    """Split a TCP byte stream into LLRP frames.

    Feed it whatever ``recv`` returned; it keeps partial messages until they are complete.

    Args:
        max_length: Largest acceptable message length; larger ones are framing errors.

    Attributes:
        errors: How many framing errors were seen.
        frames: How many complete frames were returned.
    """

    def __init__(self, max_length: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_length = max_length
        self._buf = bytearray()
        self.errors = 0
        self.frames = 0

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes and return the complete frames now available.

        Raises:
            LLRPFramingError: if a header has a length below 10 or above ``max_length``.
                The buffer is cleared; frames found before it are on the exception.
        """
        buf = self._buf
        buf += data
        out: list[Frame] = []
        pos = 0
        size = len(buf)
        while size - pos >= HEADER_SIZE:
            version, msg_type, length, msg_id = unpack_header(buf, pos)
            if length < HEADER_SIZE or length > self.max_length:
                self.errors += 1
                buf.clear()
                self.frames += len(out)
                raise LLRPFramingError(
                    f"bad message length {length} (type {msg_type}, id {msg_id})",
                    out,
                    msg_type,
                    msg_id,
                )
            if size - pos < length:
                break
            out.append(Frame(version, msg_type, msg_id, bytes(buf[pos : pos + length])))
            pos += length
        if pos:
            del buf[:pos]
        self.frames += len(out)
        return out


def encode_raw(msg_type: int, msg_id: int, body: bytes) -> bytes:
    """Frame an already-encoded body as an LLRP 1.0.1 message (header included)."""
    return message(msg_type, msg_id, body)


def encode_message(msg: Message) -> bytes:
    """Encode a typed message, header included."""
    return msg.encode()


def decode_message(data: bytes | Frame) -> Message:
    """Decode one complete message into its typed form.

    Args:
        data: A :class:`Frame` or the bytes of exactly one message.

    Raises:
        LLRPDecodeError: with ``status`` M_UnsupportedVersion, M_UnsupportedMessage or the
            status a reader would answer for a malformed body.
    """
    if isinstance(data, Frame):
        raw = data.data
    else:
        raw = bytes(data)
        if len(raw) < HEADER_SIZE:
            raise LLRPDecodeError("message shorter than its header")
    version, msg_type, length, msg_id = unpack_header(raw)
    if length != len(raw):
        raise LLRPDecodeError(f"length field {length} does not match {len(raw)} bytes")
    if version != LLRP_VERSION:
        raise LLRPDecodeError(
            f"unsupported LLRP version {version}", StatusCode.M_UNSUPPORTED_VERSION
        )
    cls = MESSAGE_CLASSES.get(msg_type)
    if cls is None:
        raise LLRPDecodeError(
            f"unsupported message type {msg_type}", StatusCode.M_UNSUPPORTED_MESSAGE
        )
    return cls.decode_body(msg_id, Cursor(raw, HEADER_SIZE, length))


def error_response(request_type: int, msg_id: int, status: LLRPStatus) -> Message:
    """The response a reader sends when a request fails.

    Requests without a response message of their own get an ERROR_MESSAGE.
    """
    factory = RESPONSE_OF.get(request_type)
    if factory is None:
        return ErrorMessage(msg_id, status)
    return factory(msg_id, status)


__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "HEADER_SIZE",
    "LLRP_VERSION",
    "AISpec",
    "AISpecEvent",
    "AISpecStopTrigger",
    "AISpecStopTriggerType",
    "AccessCommand",
    "AccessReportSpec",
    "AccessSpec",
    "AccessSpecIDMessage",
    "AddAccessSpec",
    "AddAccessSpecResponse",
    "AddROSpec",
    "AddROSpecResponse",
    "AntennaConfiguration",
    "AntennaEvent",
    "AntennaProperties",
    "C1G2InventoryCommand",
    "C1G2LLRPCapabilities",
    "C1G2RFControl",
    "C1G2Read",
    "C1G2SingulationControl",
    "C1G2TargetTag",
    "CloseConnection",
    "CloseConnectionResponse",
    "ConnectionAttemptStatus",
    "CustomMessage",
    "DeleteAccessSpec",
    "DeleteAccessSpecResponse",
    "DeleteROSpec",
    "DeleteROSpecResponse",
    "DisableAccessSpec",
    "DisableAccessSpecResponse",
    "DisableROSpec",
    "DisableROSpecResponse",
    "EnableAccessSpec",
    "EnableAccessSpecResponse",
    "EnableEventsAndReports",
    "EnableROSpec",
    "EnableROSpecResponse",
    "ErrorMessage",
    "EventNotificationState",
    "EventsAndReports",
    "FieldError",
    "Frame",
    "FrameBuffer",
    "FrequencyHopTable",
    "FrequencyInformation",
    "GPIPortCurrentState",
    "GPITriggerValue",
    "GeneralDeviceCapabilities",
    "GetAccessSpecs",
    "GetAccessSpecsResponse",
    "GetROSpecs",
    "GetROSpecsResponse",
    "GetReaderCapabilities",
    "GetReaderCapabilitiesResponse",
    "GetReaderConfig",
    "GetReaderConfigRequestedData",
    "GetReaderConfigResponse",
    "GetReport",
    "Identification",
    "InventoryParameterSpec",
    "Keepalive",
    "KeepaliveAck",
    "KeepaliveSpec",
    "KeepaliveTriggerType",
    "LLRPCapabilities",
    "LLRPDecodeError",
    "LLRPError",
    "LLRPFramingError",
    "LLRPStatus",
    "Message",
    "MessageType",
    "NotificationEventType",
    "OpaqueParam",
    "ParamType",
    "ParameterError",
    "PerAntennaAirProtocol",
    "PeriodicTriggerValue",
    "RFReceiver",
    "RFTransmitter",
    "ROAccessReport",
    "ROBoundarySpec",
    "ROReportSpec",
    "ROReportTriggerType",
    "ROSpec",
    "ROSpecEvent",
    "ROSpecEventType",
    "ROSpecIDMessage",
    "ROSpecStartTrigger",
    "ROSpecStartTriggerType",
    "ROSpecState",
    "ROSpecStopTrigger",
    "ROSpecStopTriggerType",
    "ReaderConfig",
    "ReaderEventNotification",
    "ReaderEventNotificationData",
    "ReaderEventNotificationSpec",
    "ReceiveSensitivityTableEntry",
    "RegulatoryCapabilities",
    "ReportEncoder",
    "SetReaderConfig",
    "SetReaderConfigResponse",
    "StartROSpec",
    "StartROSpecResponse",
    "StatusCode",
    "StatusResponse",
    "StopROSpec",
    "StopROSpecResponse",
    "TagObservationTrigger",
    "TagObservationTriggerType",
    "TagRead",
    "TagReportContentSelector",
    "TagReportData",
    "TagTuple",
    "TransmitPowerLevelTableEntry",
    "UHFBandCapabilities",
    "UHFC1G2RFModeTableEntry",
    "decode_message",
    "decode_ro_access_report",
    "decode_tag_reports",
    "encode_epc",
    "encode_message",
    "encode_raw",
    "error_response",
]
