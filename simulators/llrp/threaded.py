"""Run simulators on a background thread with their own event loop.

For code that blocks (sllurp's client, pyllrp's connector) and tests written without
asyncio::

    with SimulatorThread(scene) as sim:
        client.connect("127.0.0.1", sim.port)
        sim.wait_for(lambda s: s.tag_reports_sent >= 10, timeout=5)
        sim.call(lambda s: s.drop_connection())
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self, TypeVar

from simulators.llrp.inventory import RoundSource
from simulators.llrp.server import FaultPlan, LLRPSimulator
from simulators.llrp.stats import SimStats, StatsPredicate
from simulators.scene import Scene

T = TypeVar("T")


class SimulatorThread:
    """An :class:`LLRPSimulator` served from a daemon thread.

    Args:
        scene: What the reader sees.
        host: Address to bind.
        port: Port (0 = any free port; read :attr:`port`).
        replay: Messages to replay (see :class:`LLRPSimulator`).
        seed: RNG seed.
        faults: Scheduled faults.
        source: What answers the inventory rounds instead of the scene's tags (see
            :class:`LLRPSimulator`); it is called on the simulator's thread.
    """

    def __init__(
        self,
        scene: Scene,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        replay: Sequence[bytes] | None = None,
        seed: int | None = None,
        faults: FaultPlan | None = None,
        source: RoundSource | None = None,
    ) -> None:
        self._kwargs: dict[str, Any] = {
            "host": host,
            "port": port,
            "replay": replay,
            "seed": seed,
            "faults": faults,
            "source": source,
        }
        self._scene = scene
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sim: LLRPSimulator | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return self.simulator.port

    @property
    def host(self) -> str:
        """The bound host."""
        return self.simulator.host

    @property
    def simulator(self) -> LLRPSimulator:
        """The simulator (only touch it through :meth:`call` while running)."""
        if self._sim is None:
            raise RuntimeError("simulator thread not started")
        return self._sim

    def start(self, timeout: float = 10.0) -> Self:
        """Start the thread and wait until the simulator listens.

        Raises:
            RuntimeError: if the simulator failed to start.
        """
        self._thread = threading.Thread(target=self._run, name="llrp-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("simulator did not start in time")
        if self._error is not None:
            raise RuntimeError(f"simulator failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            self._sim = LLRPSimulator(self._scene, **self._kwargs)
            await self._sim.start()
        except (OSError, ValueError) as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self._sim.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the simulator and join the thread."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _submit(self, coro: Any) -> Future[Any]:
        if self._loop is None:
            raise RuntimeError("simulator thread not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, fn: Callable[[LLRPSimulator], T], timeout: float = 10.0) -> T:
        """Run ``fn(simulator)`` on the simulator's loop and return its result."""
        sim = self.simulator

        async def invoke() -> T:
            return fn(sim)

        result: T = self._submit(invoke()).result(timeout)
        return result

    def wait_for(self, predicate: StatsPredicate, timeout: float = 10.0) -> SimStats:
        """Block until ``predicate(stats)`` holds; returns a snapshot.

        Raises:
            TimeoutError: if it does not hold within ``timeout`` seconds.
        """
        future = self._submit(self.simulator.wait_for(predicate))
        try:
            result: SimStats = future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise
        return result

    @property
    def stats(self) -> SimStats:
        """A snapshot of the simulator's counters."""
        return self.call(lambda sim: sim.stats.copy())
