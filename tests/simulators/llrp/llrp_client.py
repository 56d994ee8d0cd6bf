"""A minimal asyncio LLRP client built on our codec, for driving the simulator in tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import TypeVar

from drivers.llrp import codec as c

M = TypeVar("M", bound=c.Message)

#: Messages a reader sends on its own initiative (never a response to a request).
UNSOLICITED = (c.ROAccessReport, c.ReaderEventNotification, c.Keepalive)


class RawClient:
    """Sends requests and awaits their responses; everything else lands in :attr:`inbox`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.inbox: asyncio.Queue[c.Message] = asyncio.Queue()
        self.raw: list[c.Frame] = []
        self._pending: dict[int, asyncio.Future[c.Message]] = {}
        self._ids = itertools.count(1000)
        self.closed = asyncio.Event()
        self.framing_error: c.LLRPFramingError | None = None
        self._task = asyncio.create_task(self._read(), name="test-llrp-client")

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> RawClient:
        """Connect; the greeting (a READER_EVENT_NOTIFICATION) stays in the inbox."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def _read(self) -> None:
        frames = c.FrameBuffer()
        try:
            while data := await self.reader.read(65536):
                try:
                    found = frames.feed(data)
                except c.LLRPFramingError as exc:
                    self.framing_error = exc
                    return
                for frame in found:
                    self.raw.append(frame)
                    self._deliver(c.decode_message(frame))
        except ConnectionError:
            return
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))

    def _deliver(self, msg: c.Message) -> None:
        future = self._pending.get(msg.msg_id)
        if future is not None and not isinstance(msg, UNSOLICITED) and not future.done():
            del self._pending[msg.msg_id]
            future.set_result(msg)
            return
        self.inbox.put_nowait(msg)

    def next_id(self) -> int:
        """A fresh message ID."""
        return next(self._ids)

    def send_bytes(self, data: bytes) -> None:
        """Write raw bytes."""
        self.writer.write(data)

    async def request(self, msg: c.Message) -> c.Message:
        """Send ``msg`` and return the response carrying its message ID."""
        future: asyncio.Future[c.Message] = asyncio.get_running_loop().create_future()
        self._pending[msg.msg_id] = future
        self.writer.write(msg.encode())
        await self.writer.drain()
        return await future

    async def expect(self, kind: type[M]) -> M:
        """The next inbox message of type ``kind`` (others are skipped)."""
        while True:
            msg = await self.inbox.get()
            if isinstance(msg, kind):
                return msg

    def drain_inbox(self) -> list[c.Message]:
        """Everything in the inbox now."""
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out

    async def close(self) -> None:
        """Close the socket and stop reading."""
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
        await asyncio.gather(self._task, return_exceptions=True)


def ok(response: c.Message) -> bool:
    """Whether a response carries M_Success."""
    status = getattr(response, "status", None)
    return isinstance(status, c.LLRPStatus) and status.ok


def rospec(
    rospec_id: int = 1,
    *,
    antennas: tuple[int, ...] = (0,),
    start: int = c.ROSpecStartTriggerType.NULL,
    stop: c.ROSpecStopTrigger | None = None,
    aispec_stop: c.AISpecStopTrigger | None = None,
    trigger: int = c.ROReportTriggerType.UPON_N_TAGS_OR_END_OF_ROSPEC,
    n: int = 0,
    selector: c.TagReportContentSelector | None = None,
    specs: tuple[c.AISpec, ...] | None = None,
) -> c.ROSpec:
    """Build an ROSpec with test-friendly defaults (full selector, manual start)."""
    selector = selector or c.TagReportContentSelector(
        enable_rospec_id=True,
        enable_spec_index=True,
        enable_antenna_id=True,
        enable_peak_rssi=True,
        enable_first_seen=True,
        enable_last_seen=True,
        enable_tag_seen_count=True,
    )
    aispec = c.AISpec(antennas, aispec_stop or c.AISpecStopTrigger())
    return c.ROSpec(
        rospec_id,
        0,
        c.ROSpecState.DISABLED,
        c.ROBoundarySpec(c.ROSpecStartTrigger(start), stop or c.ROSpecStopTrigger()),
        specs or (aispec,),
        c.ROReportSpec(trigger, n, selector),
    )
