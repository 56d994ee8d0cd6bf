"""One supervisor for a daemon's long-running tasks: restart with backoff, or end the process.

Each task is registered with a name and a policy:

* :class:`Restart`: a failure is logged with its trace and the task is started again after a
  delay that backs off exponentially with jitter (:class:`~edgecount.backoff.Backoff`); a run
  that lasted ``stable_s`` starts the backoff afresh. More than ``max_restarts`` failures within
  ``window_s`` *escalate*: the task is failed for good, as a fatal one would be.
* :class:`Fatal`: a failure ends the supervisor's owner -- :meth:`Supervisor.wait` raises
  :class:`TaskFailed`, and the daemon exits with a non-zero status so systemd restarts it.

A failure is an exception, a cancellation the supervisor did not ask for, or a task that
*returns* while the owner is not stopping (unless the task is declared ``may_finish``). Every
failure is logged exactly once, with its trace; nothing is swallowed. Cancellation on
shutdown is not a failure. Once ``stopping`` is set no task is restarted, and a task that
returns is done.

The owner reads :meth:`Supervisor.reasons` for its health (the systemd watchdog is not fed
while a task is down) and :meth:`Supervisor.families` for ``/metrics``.

Example::

    async with Supervisor("gateway", stopping) as tasks:
        tasks.start("scan-worker", worker, RESTART)
        tasks.start("watchdog", feed, FATAL, may_finish=True, cancel_on_stop=True)
        await tasks.wait()  # until stopping is set; raises TaskFailed
    # leaving the block waits for the tasks to end (cancels those marked cancel_on_stop)

This is ``asyncio.TaskGroup``'s shape (the owner's block holds the tasks) with what a daemon
needs on top: restarts, health, and a graceful stop that lets some tasks finish their work.
It is not a ``TaskGroup`` underneath because a group cancels its owner on the first error,
while an owner like the MQTT publisher starts and stops its tasks from separate calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType

from edgecount.backoff import Backoff
from edgecount.metrics import Family, counter, gauge

__all__ = [
    "FATAL",
    "RESTART",
    "Fatal",
    "Policy",
    "Restart",
    "Supervisor",
    "TaskFailed",
    "TaskHealth",
    "TaskState",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Restart:
    """Restart a failed task with backoff; escalate past a restart rate.

    Attributes:
        initial_s: Upper end of the first delay, seconds.
        maximum_s: Cap on the delay, seconds.
        max_restarts: Restarts allowed within ``window_s``; one more failure escalates.
        window_s: The window of the restart rate, seconds.
        stable_s: A run that lasted this long starts the backoff again from ``initial_s``.
    """

    initial_s: float = 0.5
    maximum_s: float = 30.0
    max_restarts: int = 5
    window_s: float = 300.0
    stable_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Fatal:
    """A failure of the task ends the owner (non-zero exit; systemd restarts the process)."""


Policy = Restart | Fatal
RESTART = Restart()
FATAL = Fatal()


class TaskState(StrEnum):
    """Where a supervised task is."""

    RUNNING = "running"
    RESTARTING = "restarting"
    """Failed; waiting for its backoff delay before the next run."""
    FAILED = "failed"
    """Failed for good (fatal, escalated, or failed while stopping)."""
    FINISHED = "finished"
    """Returned as allowed (``may_finish``, or on stop), or cancelled on stop."""


class TaskFailed(Exception):  # noqa: N818 - the name says what the owner is told
    """A fatal task failed, or a restarting one failed too often: the process must end.

    Attributes:
        task: The task's name.
        reason: ``Type: message`` of the failure (its trace was logged when it happened).
    """

    def __init__(self, task: str, reason: str) -> None:
        super().__init__(f"task {task} failed: {reason}")
        self.task = task
        self.reason = reason


class TaskReturned(Exception):  # noqa: N818 - a failure that is no exception of the task's
    """A task that must run until stopped returned."""


class TaskCancelled(Exception):  # noqa: N818
    """A task was cancelled by something other than its supervisor."""


@dataclass(slots=True)
class TaskHealth:
    """One task's state and figures (a copy: changing it changes nothing).

    Attributes:
        name: The task's name.
        policy: Its policy.
        state: Where it is.
        restarts: Times it was started again since the supervisor began.
        last_error: ``Type: message`` of its newest failure.
    """

    name: str
    policy: Policy
    state: TaskState = TaskState.RUNNING
    restarts: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class _Entry:
    health: TaskHealth
    work: Callable[[], Awaitable[None]]
    may_finish: bool
    cancel_on_stop: bool
    task: asyncio.Task[None] | None = None
    failures: deque[float] = field(default_factory=deque)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def _being_cancelled() -> bool:
    """Whether the current task has a cancellation request pending (shutdown)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Supervisor:
    """Runs named tasks under a policy each; see the module's description.

    Args:
        name: Whose tasks these are (in logs).
        stopping: Set by the owner to stop; from then on no task is restarted and a task that
            returns is done.
        on_failed: Called once (on the loop) when a task fails for good, before
            :meth:`wait` raises; an owner that does not :meth:`wait` learns of it here.
        rng: Random source of the backoff jitter (tests pass a seeded one).
        clock: Monotonic seconds (the restart rate and the stable run).
    """

    def __init__(
        self,
        name: str,
        stopping: asyncio.Event,
        *,
        on_failed: Callable[[TaskFailed], None] | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.stopping = stopping
        self.failure: TaskFailed | None = None
        """The first task that failed for good, if any."""
        self._on_failed = on_failed
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._failed = asyncio.Event()

    # -- the owner's side ------------------------------------------------------------------

    def start(
        self,
        name: str,
        work: Callable[[], Awaitable[None]],
        policy: Policy,
        *,
        may_finish: bool = False,
        cancel_on_stop: bool = False,
    ) -> None:
        """Start ``work()`` as the task ``name`` (``work`` is called again for each restart).

        Args:
            name: Unique among this supervisor's tasks; also the asyncio task's name.
            work: Makes the coroutine of one run.
            policy: :data:`RESTART` (or a :class:`Restart` of its own) or :data:`FATAL`.
            may_finish: Returning before stopping is allowed (else it is a failure).
            cancel_on_stop: On stop the task is cancelled (else it is awaited: it must return
                once ``stopping`` is set).

        Raises:
            ValueError: A task of that name is already registered.
        """
        if name in self._entries:
            raise ValueError(f"{self.name}: task {name!r} is already supervised")
        entry = _Entry(TaskHealth(name, policy), work, may_finish, cancel_on_stop)
        self._entries[name] = entry
        entry.task = asyncio.create_task(self._run(entry), name=name)

    async def wait(self) -> None:
        """Return once ``stopping`` is set.

        Raises:
            TaskFailed: A task failed for good first (its trace is logged already).
        """
        waiters = [
            asyncio.ensure_future(self._failed.wait()),
            asyncio.ensure_future(self.stopping.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if self.failure is not None:
            raise self.failure

    async def shutdown(self) -> None:
        """End every task: cancel those marked ``cancel_on_stop`` and await the others.

        Every task is cancelled when a task failed for good or ``stopping`` is not set (the
        owner itself failed or was cancelled): then no task is waiting to finish its work.
        """
        graceful = self.stopping.is_set() and self.failure is None
        tasks = [entry.task for entry in self._entries.values() if entry.task is not None]
        for entry in self._entries.values():
            if entry.task is not None and (entry.cancel_on_stop or not graceful):
                entry.task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def cancel(self) -> None:
        """Cancel every task now (after a :meth:`shutdown` that waited too long)."""
        for entry in self._entries.values():
            if entry.task is not None:
                entry.task.cancel()

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Shut the tasks down; raise :class:`TaskFailed` if one failed and nothing else is."""
        await self.shutdown()
        if exc is None and self.failure is not None:
            raise self.failure

    # -- health ------------------------------------------------------------------------------

    def health(self) -> dict[str, TaskHealth]:
        """Every task's state and figures, by name (copies)."""
        return {
            name: TaskHealth(h.name, h.policy, h.state, h.restarts, h.last_error)
            for name, h in ((name, entry.health) for name, entry in self._entries.items())
        }

    def reasons(self) -> list[str]:
        """Why the tasks are unhealthy (a task restarting or failed); empty while stopping."""
        if self.stopping.is_set():
            return []
        reasons = []
        for entry in self._entries.values():
            health = entry.health
            if health.state is TaskState.RESTARTING:
                reasons.append(f"task {health.name} failed, restarting ({health.last_error})")
            elif health.state is TaskState.FAILED:
                reasons.append(f"task {health.name} failed: {health.last_error}")
        return reasons

    def families(self, prefix: str) -> Iterator[Family]:
        """``{prefix}_task_restarts_total`` and ``{prefix}_task_down`` (1 while restarting or
        failed), labelled by ``task``, for a scrape."""
        restarts = counter(f"{prefix}_task_restarts_total", "Restarts of a task.", ["task"])
        down = gauge(f"{prefix}_task_down", "1 while a task is restarting or failed.", ["task"])
        for name, entry in self._entries.items():
            restarts.add_metric([name], entry.health.restarts)
            state = entry.health.state
            down.add_metric([name], 1 if state in (TaskState.RESTARTING, TaskState.FAILED) else 0)
        yield restarts
        yield down

    # -- the tasks -----------------------------------------------------------------------------

    async def _run(self, entry: _Entry) -> None:
        """Run ``entry`` under its policy until it is done, stopped or failed for good."""
        policy = entry.health.policy
        backoff = None
        if isinstance(policy, Restart):
            backoff = Backoff(policy.initial_s, policy.maximum_s, self._rng)
        while True:
            entry.health.state = TaskState.RUNNING
            began = self._clock()
            error = await self._one_run(entry)
            if error is None:
                entry.health.state = TaskState.FINISHED
                return
            entry.health.last_error = _describe(error)
            if not isinstance(policy, Restart) or backoff is None or self.stopping.is_set():
                self._give_up(entry, error, "stopping" if self.stopping.is_set() else "fatal")
                return
            if self._clock() - began >= policy.stable_s:
                backoff.reset()
            if self._too_often(entry, policy):
                self._give_up(
                    entry,
                    error,
                    f"restarted {policy.max_restarts} times within {policy.window_s:g} s",
                )
                return
            delay = backoff.next_delay()
            entry.health.state = TaskState.RESTARTING
            log.error(
                "%s: task %s failed; restart in %.3f s", self.name, entry.health.name, delay,
                exc_info=error,
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                entry.health.state = TaskState.FINISHED
                return
            entry.health.restarts += 1
            log.warning("%s: restarting task %s", self.name, entry.health.name)

    async def _one_run(self, entry: _Entry) -> BaseException | None:
        """One run of the task: None when it ended as allowed, else the failure.

        Raises:
            asyncio.CancelledError: The supervisor's task is being cancelled (shutdown).
        """
        try:
            await entry.work()
        except asyncio.CancelledError as exc:
            if _being_cancelled():
                entry.health.state = TaskState.FINISHED
                raise
            failure = TaskCancelled(f"task {entry.health.name} was cancelled from inside")
            failure.__cause__ = exc
            return failure
        except Exception as exc:  # noqa: BLE001 - any failure of a task: the caller logs it once
            return exc
        if entry.may_finish or self.stopping.is_set():
            return None
        return TaskReturned(f"task {entry.health.name} returned while it should run")

    def _too_often(self, entry: _Entry, policy: Restart) -> bool:
        now = self._clock()
        entry.failures.append(now)
        while entry.failures and now - entry.failures[0] > policy.window_s:
            entry.failures.popleft()
        return len(entry.failures) > policy.max_restarts

    def _give_up(self, entry: _Entry, error: BaseException, why: str) -> None:
        """Log the failure (once, with its trace) and fail the task for good."""
        entry.health.state = TaskState.FAILED
        name = entry.health.name
        log.error("%s: task %s failed for good (%s)", self.name, name, why, exc_info=error)
        if why == "stopping" and isinstance(entry.health.policy, Restart):
            return  # on the way out anyway: logged, and the exit status is not at stake
        if self.failure is None:
            self.failure = TaskFailed(name, entry.health.last_error or why)
            self._failed.set()
            if self._on_failed is not None:
                self._on_failed(self.failure)
