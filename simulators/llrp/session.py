"""One client connection to the simulated reader: framing, dispatch, keepalives, faults."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from drivers.llrp.codec import (
    CloseConnection,
    CloseConnectionResponse,
    ConnectionAttemptStatus,
    EnableEventsAndReports,
    ErrorMessage,
    Frame,
    FrameBuffer,
    GetReport,
    Keepalive,
    KeepaliveAck,
    KeepaliveTriggerType,
    LLRPDecodeError,
    LLRPFramingError,
    LLRPStatus,
    Message,
    ReaderEventNotification,
    ReaderEventNotificationData,
    StatusCode,
    decode_message,
    error_response,
)
from simulators.llrp.engine import now_us
from simulators.llrp.reader import SimReader

log = logging.getLogger(__name__)

#: Largest message the simulator accepts from a client.
MAX_CLIENT_MESSAGE = 1024 * 1024


def connection_event(msg_id: int, status: ConnectionAttemptStatus) -> bytes:
    """READER_EVENT_NOTIFICATION with a ConnectionAttemptEvent."""
    data = ReaderEventNotificationData(now_us(), connection_attempt=status)
    return ReaderEventNotification(msg_id, data).encode()


class Session:
    """Serves one connected client until it closes, is dropped, or sends garbage.

    Args:
        reader: The reader this client talks to.
        stream_reader: Incoming bytes.
        writer: Outgoing bytes.
    """

    def __init__(
        self, reader: SimReader, stream_reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.reader = reader
        self.stream = stream_reader
        self.writer = writer
        self.frames = FrameBuffer(MAX_CLIENT_MESSAGE)
        self.silent = False
        self.closing = False
        self.dropped = False

    # ------------------------------------------------------------ Sink

    def write(self, data: bytes, messages: int = 1) -> bool:
        """Queue bytes for the client unless silent or closing."""
        if self.silent:
            self.reader.stats.suppressed_messages += messages
            self.reader.watch.check()
            return False
        if self.closing or self.writer.is_closing():
            return False
        self.writer.write(data)
        stats = self.reader.stats
        stats.messages_out += messages
        stats.bytes_out += len(data)
        return True

    async def drain(self) -> None:
        """Back-pressure: wait while the client is slow; a lost client ends the session."""
        try:
            await self.writer.drain()
        except (ConnectionError, RuntimeError):
            self.closing = True

    # ------------------------------------------------------------ faults

    def drop(self) -> None:
        """Abort the TCP connection without any LLRP goodbye."""
        self.dropped = True
        self.closing = True
        self.reader.stats.drops += 1
        self.writer.transport.abort()

    def send_garbage(self, data: bytes) -> None:
        """Write bytes that are not LLRP (ignores silence)."""
        if self.writer.is_closing():
            return
        self.writer.write(data)
        self.reader.stats.garbage_bytes_sent += len(data)

    # ------------------------------------------------------------ main loop

    async def run(self) -> None:
        """Greet the client, then serve its requests until the connection ends."""
        reader = self.reader
        self.write(connection_event(reader.next_id(), ConnectionAttemptStatus.SUCCESS))
        keepalive = asyncio.create_task(self._keepalives(), name="llrp-sim-keepalive")
        try:
            await self._serve()
        finally:
            keepalive.cancel()
            await asyncio.gather(keepalive, return_exceptions=True)
            self.closing = True
            with contextlib.suppress(ConnectionError, RuntimeError):
                self.writer.close()
                await self.writer.wait_closed()

    def is_closing(self) -> bool:
        """Whether the session is ending (closed by either side or dropped)."""
        return self.closing

    async def _serve(self) -> None:
        while not self.is_closing():
            try:
                data = await self.stream.read(65536)
            except ConnectionError:
                return
            if not data:
                if self.frames.pending:
                    self.reader.stats.framing_errors += 1
                    log.info("client closed mid-message (%d bytes pending)", self.frames.pending)
                return
            try:
                frames = self.frames.feed(data)
            except LLRPFramingError as exc:
                for frame in exc.frames:
                    await self._on_frame(frame)
                await self._framing_error(exc)
                return
            for frame in frames:
                await self._on_frame(frame)
                if self.is_closing():
                    return
            await self.drain()

    async def _framing_error(self, exc: LLRPFramingError) -> None:
        self.reader.stats.framing_errors += 1
        log.warning("closing connection: %s", exc)
        status = LLRPStatus(StatusCode.M_PARAMETER_ERROR, f"framing error: {exc}")
        if self.write(ErrorMessage(exc.msg_id, status).encode()):
            self.reader.stats.error_messages_sent += 1
        await self.drain()
        self.reader.watch.check()

    def reply(self, msg: Message) -> None:
        """Send a response (counting ERROR_MESSAGEs)."""
        if self.write(msg.encode()) and isinstance(msg, ErrorMessage):
            self.reader.stats.error_messages_sent += 1

    async def _on_frame(self, frame: Frame) -> None:
        stats = self.reader.stats
        stats.messages_in += 1
        try:
            msg = decode_message(frame)
        except LLRPDecodeError as exc:
            self._on_decode_error(frame, exc)
            self.reader.watch.check()
            return
        await self._dispatch(msg)
        self.reader.watch.check()

    def _on_decode_error(self, frame: Frame, exc: LLRPDecodeError) -> None:
        stats = self.reader.stats
        status = LLRPStatus(exc.status, str(exc))
        if exc.status in (StatusCode.M_UNSUPPORTED_MESSAGE, StatusCode.M_UNSUPPORTED_VERSION):
            stats.unsupported_messages += 1
            self.reply(ErrorMessage(frame.msg_id, status))
            return
        stats.decode_errors += 1
        log.info("malformed message type %d id %d: %s", frame.msg_type, frame.msg_id, exc)
        self.reply(error_response(frame.msg_type, frame.msg_id, status))

    async def _dispatch(self, msg: Message) -> None:
        reader = self.reader
        if isinstance(msg, KeepaliveAck):
            reader.stats.keepalive_acks += 1
        elif isinstance(msg, EnableEventsAndReports):
            return
        elif isinstance(msg, GetReport):
            await reader.get_report(msg.msg_id)
        elif isinstance(msg, CloseConnection):
            reader.stats.closes += 1
            self.reply(CloseConnectionResponse(msg.msg_id, LLRPStatus()))
            await self.drain()
            self.closing = True
        elif type(msg) in reader.handlers:
            response = await reader.handle(msg)
            if response is not None:
                self.reply(response)
        else:
            reader.stats.unsupported_messages += 1
            text = f"{type(msg).__name__} is not supported by this reader"
            self.reply(ErrorMessage(msg.msg_id, LLRPStatus(StatusCode.M_UNSUPPORTED_MESSAGE, text)))

    async def _keepalives(self) -> None:
        """Send KEEPALIVE per the KeepaliveSpec; re-read it whenever the config changes."""
        changed = self.reader.config_changed
        while True:
            spec = self.reader.settings.keepalive
            periodic = spec.trigger_type == KeepaliveTriggerType.PERIODIC and spec.interval_ms
            try:
                async with asyncio.timeout(spec.interval_ms / 1000 if periodic else None):
                    await changed.wait()
                changed.clear()
            except TimeoutError:
                if self.write(Keepalive(self.reader.next_id()).encode()):
                    self.reader.stats.keepalives_sent += 1
                    self.reader.watch.check()
