"""The simulated UHF module: answers commands, polls the scene, and misbehaves on request.

One :class:`ModuleSession` serves one host connection (a TCP client or the pty). It decodes
the host's frames with the driver's own codec and answers like an M100-family module:

* single poll (0x22): one inventory round; a notice per tag read, else error 0x15;
* multi-poll (0x27): ``count`` rounds at the scene's ``rounds_per_second``; each round sends
  a notice per tag read, or error 0x15 when no tag answered; then it stops silently;
* stop (0x28): ends the multi-poll, acknowledged with status 0;
* set/get power (0xB6/0xB7): within the scene's power table, else error 0x17;
* module information (0x03): hardware, software and manufacturer text;
* anything else: error 0x17.

Tags are those the scene puts on the module's antenna (:class:`~simulators.llrp.inventory.
TagField`, the LLRP simulator's RF model: per round ``read_prob`` and RSSI per tag, lowered
below the highest power), or those a :class:`RoundSource` given to :class:`SimModule` answers
with (a moving scene: :class:`simulators.cart.CartProvider`). Faults (:class:`SerialFaults`)
apply to everything the module sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from drivers.serial.codec import (
    Ack,
    Command,
    ErrorCode,
    ErrorResponse,
    Frame,
    FrameDecoder,
    GetModuleInfo,
    GetPower,
    InfoKind,
    ModuleInfo,
    MultiPoll,
    PowerResponse,
    SetPower,
    SinglePoll,
    StopMultiPoll,
    TagNotice,
)
from simulators.llrp.inventory import (  # RoundSource: re-exported, shared with the LLRP sim
    RoundSource as RoundSource,  # noqa: PLC0414
)
from simulators.llrp.inventory import TagField
from simulators.scene import Scene
from simulators.watch import StatsWatch

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SerialFaults:
    """What the simulated module does wrong. Change it at any time: it is read per frame.

    Attributes:
        garbage_prob: Chance of sending noise (1..``garbage_max`` random bytes) before a frame.
        garbage_max: Most noise bytes at a time.
        chunk_max: When above 0, write each frame in random pieces of 1..``chunk_max`` bytes
            (1: one byte at a time), yielding between pieces.
        bad_checksum_prob: Chance of corrupting a frame's checksum.
        truncate_prob: Chance of sending only the first part of a frame.
        blind_error_prob: Chance of damaging two adjacent EPC bytes of a tag notice so that the
            frame checksum still matches (+d and -d); only the tag CRC can tell.
        disconnect_after_seconds: Drop a connection this long after it was accepted.
        disconnect_after_frames: Drop a connection after sending this many frames on it.
        disconnect_times: How many connections to drop that way (0: every one).
        silent: Answer nothing and send nothing (a hung module).
    """

    garbage_prob: float = 0.0
    garbage_max: int = 8
    chunk_max: int = 0
    bad_checksum_prob: float = 0.0
    truncate_prob: float = 0.0
    blind_error_prob: float = 0.0
    disconnect_after_seconds: float | None = None
    disconnect_after_frames: int | None = None
    disconnect_times: int = 1
    silent: bool = False


@dataclass(slots=True)
class SerialSimStats:
    """What the simulated module did so far.

    Attributes:
        connections: Host connections served (a pty counts each time it is opened anew).
        connected: Whether a host connection is open now.
        drops: Connections dropped by fault injection.
        frames_in: Host frames decoded.
        bad_frames_in: Host byte sequences the module's decoder rejected.
        commands: Host frames per command code.
        frames_out: Frames sent (intact, corrupted or truncated; garbage excluded).
        bytes_out: Bytes sent, garbage included.
        notices_sent: Tag notices sent intact.
        reads_by_epc: Intact notices per EPC: what a perfect host decodes.
        rounds: Inventory rounds run.
        empty_rounds: Rounds no tag answered (error 0x15 sent).
        polls_started: Multi-polls started.
        polls_finished: Multi-polls that ran all their rounds.
        polls_stopped: Multi-polls ended by a stop command.
        garbage_bytes: Noise bytes sent.
        corrupted_frames: Frames sent with a wrong checksum.
        truncated_frames: Frames sent cut short.
        blind_errors: Tag notices sent with EPC damage the frame checksum cannot see.
        suppressed_frames: Frames not sent because the module was silent.
    """

    connections: int = 0
    connected: bool = False
    drops: int = 0
    frames_in: int = 0
    bad_frames_in: int = 0
    commands: Counter[int] = field(default_factory=Counter)
    frames_out: int = 0
    bytes_out: int = 0
    notices_sent: int = 0
    reads_by_epc: Counter[bytes] = field(default_factory=Counter)
    rounds: int = 0
    empty_rounds: int = 0
    polls_started: int = 0
    polls_finished: int = 0
    polls_stopped: int = 0
    garbage_bytes: int = 0
    corrupted_frames: int = 0
    truncated_frames: int = 0
    blind_errors: int = 0
    suppressed_frames: int = 0

    def copy(self) -> SerialSimStats:
        """A snapshot."""
        return dataclasses.replace(
            self, commands=Counter(self.commands), reads_by_epc=Counter(self.reads_by_epc)
        )


StatsPredicate = Callable[[SerialSimStats], bool]


class Wire(Protocol):
    """Where a session writes (an :class:`asyncio.StreamWriter` fits)."""

    def write(self, data: bytes) -> None:
        """Queue bytes."""

    async def drain(self) -> None:
        """Wait until the queue is low."""


class SimModule:
    """The module's persistent state, shared by its successive sessions.

    Args:
        scene: What the module sees (its reader spec: antennas, pace, power table).
        antenna: Which of the scene's antennas is this module's view.
        seed: Seed of the RF and fault randomness (default: the scene's).
        faults: Faults to inject (a fresh :class:`SerialFaults` if None).
        source: What answers each round instead of the scene's tags (a moving scene); the
            scene's static :class:`~simulators.llrp.inventory.TagField` if None.
    """

    def __init__(
        self,
        scene: Scene,
        antenna: int = 1,
        seed: int | None = None,
        faults: SerialFaults | None = None,
        source: RoundSource | None = None,
    ) -> None:
        if not 1 <= antenna <= scene.reader.antennas:
            raise ValueError(f"antenna {antenna} outside 1..{scene.reader.antennas}")
        self.scene = scene
        self.antenna = antenna
        self.faults = faults or SerialFaults()
        self.field: RoundSource = source if source is not None else TagField(scene, seed)
        self.rng = random.Random(scene.seed if seed is None else seed)  # noqa: S311
        self.power_centi_dbm = round(scene.reader.max_power_dbm * 100)
        self.stats = SerialSimStats()
        self.watch = StatsWatch(self.stats)
        self.info = {
            InfoKind.HARDWARE: f"{scene.reader.model} M100-compatible",
            InfoKind.SOFTWARE: f"V{scene.reader.firmware}",
            InfoKind.MANUFACTURER: "edgecount simulator",
        }

    @property
    def rounds_per_second(self) -> float:
        """Pace of inventory rounds."""
        return self.scene.reader.rounds_per_second

    def power_below_max_db(self) -> float:
        """How far the power is below the scene's highest."""
        return max(0.0, self.scene.reader.max_power_dbm - self.power_centi_dbm / 100)

    def changed(self) -> None:
        """Tell waiters the stats changed."""
        self.watch.check()


class ModuleSession:
    """One host connection: decode commands, answer, poll, inject faults.

    Args:
        module: The module.
        wire: Where to write.
        drop: Called to end the connection (fault injection); must make :meth:`run` return.
    """

    def __init__(self, module: SimModule, wire: Wire, drop: Callable[[], None]) -> None:
        self.module = module
        self.wire = wire
        self._drop = drop
        self.decoder = FrameDecoder()
        self.frames_sent = 0
        self.closing = False
        self._poll: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()

    async def run(self, reader: asyncio.StreamReader) -> None:
        """Serve until the host goes away, the connection drops, or the task is cancelled."""
        stats = self.module.stats
        try:
            while not self.closing:
                data = await reader.read(4096)
                if not data:
                    return
                rejected = self.decoder.rejected_total
                frames = self.decoder.feed(data)
                stats.bad_frames_in += self.decoder.rejected_total - rejected
                for frame in frames:
                    await self._handle(frame)
        except (ConnectionError, OSError) as exc:
            log.info("serial simulator: connection ended: %s", exc)
        finally:
            await self.stop_polling()

    async def stop_polling(self) -> bool:
        """End a running multi-poll; whether one was running."""
        task, self._poll = self._poll, None
        if task is None or task.done():
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True

    async def _handle(self, frame: Frame) -> None:
        module, stats = self.module, self.module.stats
        stats.frames_in += 1
        code = _CODES.get(type(frame))
        stats.commands[code if code is not None else getattr(frame, "command", -1)] += 1
        module.changed()
        if module.faults.silent:
            return
        if isinstance(frame, SinglePoll):
            await self._round()
        elif isinstance(frame, MultiPoll):
            await self.stop_polling()
            stats.polls_started += 1
            self._poll = asyncio.create_task(self._multi_poll(frame.count), name="sim:multi-poll")
        elif isinstance(frame, StopMultiPoll):
            if await self.stop_polling():
                stats.polls_stopped += 1
            stopped = getattr(module.field, "inventory_stopped", None)
            if callable(stopped):  # a moving source ends its pass (simulators.site.PassSource)
                stopped()
            await self.send(Ack(Command.STOP_MULTI_POLL).encode())
        elif isinstance(frame, SetPower):
            await self._set_power(frame)
        elif isinstance(frame, GetPower):
            await self.send(PowerResponse(module.power_centi_dbm).encode())
        elif isinstance(frame, GetModuleInfo) and frame.kind in module.info:
            await self.send(ModuleInfo(frame.kind, module.info[InfoKind(frame.kind)]).encode())
        else:
            await self.send(ErrorResponse(ErrorCode.COMMAND_ERROR).encode())

    async def _set_power(self, frame: SetPower) -> None:
        module = self.module
        spec = module.scene.reader
        if not spec.min_power_dbm <= frame.dbm <= spec.max_power_dbm:
            await self.send(ErrorResponse(ErrorCode.COMMAND_ERROR).encode())
            return
        module.power_centi_dbm = frame.centi_dbm
        await self.send(Ack(Command.SET_POWER).encode())

    async def _multi_poll(self, count: int) -> None:
        module = self.module
        loop = asyncio.get_running_loop()
        period = 1.0 / module.rounds_per_second
        start = loop.time()
        try:
            for index in range(count):
                await self._round()
                delay = start + (index + 1) * period - loop.time()
                await asyncio.sleep(max(delay, 0.0))
        except (ConnectionError, OSError) as exc:
            log.info("serial simulator: poll ended: %s", exc)
            return
        module.stats.polls_finished += 1
        module.changed()

    async def _round(self) -> None:
        module = self.module
        reads = module.field.read_round(module.antenna, module.power_below_max_db())
        module.stats.rounds += 1
        if not reads:
            module.stats.empty_rounds += 1
            await self.send(ErrorResponse(ErrorCode.INVENTORY_FAIL).encode())
        for epc, rssi in reads:
            await self.send(TagNotice.for_epc(epc, rssi).encode(), epc)
        module.changed()

    async def send(self, frame: bytes, epc: bytes | None = None) -> None:
        """Send one frame through the fault injector; ``epc`` marks a tag notice."""
        module = self.module
        faults, stats, rng = module.faults, module.stats, module.rng
        if self.closing:
            return
        if faults.silent:
            stats.suppressed_frames += 1
            return
        async with self._write_lock:
            if faults.garbage_prob and rng.random() < faults.garbage_prob:
                noise = rng.randbytes(rng.randint(1, max(1, faults.garbage_max)))
                stats.garbage_bytes += len(noise)
                await self._write(noise, faults.chunk_max)
            data, intact = self._damage(frame, epc)
            await self._write(data, faults.chunk_max)
        stats.frames_out += 1
        if intact and epc is not None:
            stats.notices_sent += 1
            stats.reads_by_epc[epc] += 1
        self.frames_sent += 1
        module.changed()
        limit = faults.disconnect_after_frames
        if limit is not None and self.frames_sent >= limit:
            self._drop()

    def _damage(self, frame: bytes, epc: bytes | None) -> tuple[bytes, bool]:
        """The bytes to send and whether they are the intact frame."""
        faults, stats, rng = self.module.faults, self.module.stats, self.module.rng
        blind = faults.blind_error_prob
        if epc is not None and len(epc) >= 2 and blind and rng.random() < blind:
            # EPC bytes start at 8 (BB, type, cmd, PL, PL, RSSI, PC, PC). Two adjacent bytes
            # changed by +d and -d keep the sum; a CRC-16 catches every 16-bit burst.
            stats.blind_errors += 1
            damaged = bytearray(frame)
            at, delta = 8 + rng.randrange(len(epc) - 1), rng.randint(1, 255)
            damaged[at] = (damaged[at] + delta) % 256
            damaged[at + 1] = (damaged[at + 1] - delta) % 256
            return bytes(damaged), False
        if faults.truncate_prob and rng.random() < faults.truncate_prob:
            stats.truncated_frames += 1
            return frame[: rng.randint(1, len(frame) - 1)], False
        if faults.bad_checksum_prob and rng.random() < faults.bad_checksum_prob:
            stats.corrupted_frames += 1
            damaged = bytearray(frame)
            damaged[-2] ^= rng.randint(1, 255)
            return bytes(damaged), False
        return frame, True

    async def _write(self, data: bytes, chunk_max: int) -> None:
        rng = self.module.rng
        self.module.stats.bytes_out += len(data)
        if chunk_max <= 0:
            self.wire.write(data)
            await self.wire.drain()
            return
        at = 0
        while at < len(data):
            size = rng.randint(1, chunk_max)
            self.wire.write(data[at : at + size])
            at += size
            await self.wire.drain()
            await asyncio.sleep(0)  # let each piece leave on its own


_CODES: dict[type, int] = {
    SinglePoll: Command.SINGLE_POLL,
    MultiPoll: Command.MULTI_POLL,
    StopMultiPoll: Command.STOP_MULTI_POLL,
    SetPower: Command.SET_POWER,
    GetPower: Command.GET_POWER,
    GetModuleInfo: Command.MODULE_INFO,
}
