"""A raw host for the serial module simulator: sends frames, collects decoded answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Self

from drivers.serial import codec as c

WAIT = 10.0


class RawHost:
    """A TCP host speaking raw frames to the simulator (no driver in between)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = c.FrameDecoder()
        self.frames: list[c.Frame] = []

    @classmethod
    async def connect(cls, port: int) -> Self:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.writer.close()

    def send(self, frame: c.Frame | bytes) -> None:
        self.writer.write(frame if isinstance(frame, bytes) else frame.encode())

    async def until(self, done: Callable[[list[c.Frame]], bool]) -> list[c.Frame]:
        """Read until ``done(frames so far)`` holds; all frames so far."""
        async with asyncio.timeout(WAIT):
            while not done(self.frames):
                data = await self.reader.read(4096)
                if not data:
                    raise ConnectionError("simulator closed the connection")
                self.frames += self.decoder.feed(data)
        return self.frames

    async def ask(self, frame: c.Frame, answer: type) -> c.Frame:
        """Send ``frame`` and return the first new frame of type ``answer``."""
        seen = len(self.frames)
        self.send(frame)
        frames = await self.until(lambda fs: any(isinstance(f, answer) for f in fs[seen:]))
        return next(f for f in frames[seen:] if isinstance(f, answer))
