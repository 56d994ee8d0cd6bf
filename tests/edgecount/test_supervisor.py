"""The task supervisor on its own: restarts, escalation, fatal failures, health, metrics."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable

import pytest

from edgecount.metrics import render, scrape_registry
from edgecount.supervisor import (
    FATAL,
    Policy,
    Restart,
    Supervisor,
    TaskFailed,
    TaskState,
)

Work = Callable[[], Awaitable[None]]
FAST = Restart(initial_s=0.001, maximum_s=0.002, max_restarts=3, window_s=60.0)
SLOW = Restart(initial_s=60.0, maximum_s=60.0)


class InjectedError(Exception):
    """The fault the tests inject."""


def traces(caplog: pytest.LogCaptureFixture, kind: type[BaseException]) -> list[logging.LogRecord]:
    """Records of the supervisor that carry a trace of ``kind``."""
    return [
        r
        for r in caplog.records
        if r.name == "edgecount.supervisor" and r.exc_info and isinstance(r.exc_info[1], kind)
    ]


def supervisor(stopping: asyncio.Event) -> Supervisor:
    return Supervisor("test", stopping, rng=random.Random(1))


async def run(tasks: Supervisor, *specs: tuple[str, Work, Policy]) -> None:
    """Start ``specs`` under ``tasks`` and wait like a daemon does (raises TaskFailed)."""
    async with tasks:
        for name, work, policy in specs:
            tasks.start(name, work, policy, may_finish=name.startswith("finishing-"))
        await tasks.wait()


async def test_a_failing_task_is_logged_with_its_trace_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopping = asyncio.Event()
    runs = 0
    steady = asyncio.Event()

    async def work() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise InjectedError(f"run {runs}")
        steady.set()
        await stopping.wait()

    async with supervisor(stopping) as tasks:
        tasks.start("worker", work, FAST)
        await asyncio.wait_for(steady.wait(), 5)
        health = tasks.health()["worker"]
        assert (health.state, health.restarts) == (TaskState.RUNNING, 2)
        assert health.last_error == "InjectedError: run 2"
        assert tasks.reasons() == []
        stopping.set()
        await tasks.wait()
    assert [str(r.exc_info[1]) for r in traces(caplog, InjectedError) if r.exc_info] == [
        "run 1",
        "run 2",
    ]
    assert tasks.health()["worker"].state is TaskState.FINISHED


async def test_a_restarting_task_is_a_health_reason_and_stop_ends_its_backoff() -> None:
    stopping = asyncio.Event()
    failed = asyncio.Event()

    async def work() -> None:
        failed.set()
        raise InjectedError("down")

    async with supervisor(stopping) as tasks:
        tasks.start("publisher", work, SLOW)
        await asyncio.wait_for(failed.wait(), 5)
        await asyncio.sleep(0)  # let the supervisor see the failure
        assert tasks.health()["publisher"].state is TaskState.RESTARTING
        assert tasks.reasons() == ["task publisher failed, restarting (InjectedError: down)"]
        stopping.set()
    # the 60 s backoff did not hold the stop up, and no restart happened
    assert tasks.health()["publisher"].state is TaskState.FINISHED
    assert tasks.health()["publisher"].restarts == 0


async def test_too_many_restarts_escalate_to_a_task_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopping = asyncio.Event()
    sibling_cancelled = asyncio.Event()

    async def always() -> None:
        raise InjectedError("again")

    async def sibling() -> None:
        try:
            await stopping.wait()
        except asyncio.CancelledError:
            sibling_cancelled.set()
            raise

    tasks = supervisor(stopping)
    with pytest.raises(TaskFailed) as failed:
        await run(tasks, ("sibling", sibling, FAST), ("ingest", always, FAST))
    assert failed.value.task == "ingest"
    assert failed.value.reason == "InjectedError: again"
    health = tasks.health()
    assert (health["ingest"].state, health["ingest"].restarts) == (TaskState.FAILED, 3)
    assert sibling_cancelled.is_set()
    assert health["sibling"].state is TaskState.FINISHED
    assert (
        len(traces(caplog, InjectedError)) == 4
    )  # each failure once: three restarts, then the last
    assert "failed for good (restarted 3 times within 60 s)" in caplog.text
    assert tasks.reasons() == ["task ingest failed: InjectedError: again"]


async def test_a_fatal_task_failure_ends_the_owner(caplog: pytest.LogCaptureFixture) -> None:
    stopping = asyncio.Event()
    told: list[TaskFailed] = []

    async def watchdog() -> None:
        raise InjectedError("no socket")

    tasks = Supervisor("test", stopping, on_failed=told.append)
    with pytest.raises(TaskFailed, match="task watchdog failed: InjectedError: no socket"):
        await run(tasks, ("watchdog", watchdog, FATAL))
    assert [f.task for f in told] == ["watchdog"]
    assert tasks.health()["watchdog"].state is TaskState.FAILED
    assert tasks.health()["watchdog"].restarts == 0
    assert len(traces(caplog, InjectedError)) == 1


async def test_a_task_that_returns_fails_unless_it_may_finish(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopping = asyncio.Event()

    async def done() -> None:
        return

    tasks = supervisor(stopping)
    with pytest.raises(TaskFailed, match="returned while it should run"):
        await run(tasks, ("finishing-feeder", done, FATAL), ("worker", done, FATAL))
    health = tasks.health()
    assert health["finishing-feeder"].state is TaskState.FINISHED
    assert health["worker"].state is TaskState.FAILED
    assert "returned while it should run" in caplog.text


async def test_cancellation_on_shutdown_is_no_failure(caplog: pytest.LogCaptureFixture) -> None:
    stopping = asyncio.Event()
    finished_work = asyncio.Event()
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async def graceful() -> None:
        await stopping.wait()
        await asyncio.sleep(0)  # the last bit of work after stop was asked
        finished_work.set()

    async with supervisor(stopping) as tasks:
        tasks.start("loop", forever, FAST, cancel_on_stop=True)
        tasks.start("scan", graceful, FAST)
        await asyncio.wait_for(started.wait(), 5)
        stopping.set()
        await tasks.wait()
    assert finished_work.is_set()  # awaited, not cancelled
    assert {h.state for h in tasks.health().values()} == {TaskState.FINISHED}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_an_owner_that_fails_cancels_every_task() -> None:
    stopping = asyncio.Event()
    started = asyncio.Event()

    async def scan() -> None:
        started.set()
        await stopping.wait()  # would wait for ever: stopping is never set

    tasks = supervisor(stopping)

    async def owner() -> None:
        async with tasks:
            tasks.start("scan", scan, FAST)
            await asyncio.wait_for(started.wait(), 5)
            raise InjectedError("owner")

    with pytest.raises(InjectedError):
        await owner()
    assert tasks.health()["scan"].state is TaskState.FINISHED


async def test_a_cancellation_from_inside_the_task_is_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopping = asyncio.Event()

    async def awaits_a_cancelled_future() -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    with pytest.raises(TaskFailed, match="cancelled from inside"):
        await run(supervisor(stopping), ("reader", awaits_a_cancelled_future, FATAL))
    assert "cancelled from inside" in caplog.text


async def test_restarts_and_down_tasks_are_metrics() -> None:
    stopping = asyncio.Event()
    steady = asyncio.Event()
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise InjectedError("once")
        steady.set()
        await stopping.wait()

    async def down() -> None:
        raise InjectedError("down")

    async with supervisor(stopping) as tasks:
        tasks.start("flaky", flaky, FAST)
        tasks.start("down", down, SLOW)
        await asyncio.wait_for(steady.wait(), 5)
        text = render(scrape_registry(lambda: tasks.families("edgecount_x")))
        stopping.set()
    assert 'edgecount_x_task_restarts_total{task="flaky"} 1.0' in text
    assert 'edgecount_x_task_restarts_total{task="down"} 0.0' in text
    assert 'edgecount_x_task_down{task="flaky"} 0.0' in text
    assert 'edgecount_x_task_down{task="down"} 1.0' in text


async def test_a_stable_run_starts_the_backoff_afresh(caplog: pytest.LogCaptureFixture) -> None:
    stopping = asyncio.Event()
    now = [0.0]
    runs: list[float] = []
    third = asyncio.Event()
    policy = Restart(initial_s=0.01, maximum_s=0.04, max_restarts=10, stable_s=5.0)

    async def work() -> None:
        runs.append(now[0])
        if len(runs) == 2:
            now[0] += 10.0  # the second run lasts 10 s: stable
        if len(runs) == 3:
            third.set()
            await stopping.wait()
            return
        raise InjectedError(f"run {len(runs)}")

    tasks = Supervisor("test", stopping, rng=random.Random(1), clock=lambda: now[0])
    async with tasks:
        tasks.start("worker", work, policy)
        await asyncio.wait_for(third.wait(), 5)
        stopping.set()
    assert tasks.health()["worker"].restarts == 2
    said = [re.search(r"restart in ([0-9.]+) s", r.getMessage()) for r in caplog.records]
    delays = [float(found[1]) for found in said if found]
    assert len(delays) == 2
    # equal jitter: a first delay is at most initial_s, a second in a row at least that;
    # after the stable run the second is a first again
    assert delays[1] <= policy.initial_s


async def test_a_name_is_supervised_once() -> None:
    stopping = asyncio.Event()
    stopping.set()

    async def work() -> None:
        return

    async with supervisor(stopping) as tasks:
        tasks.start("a", work, FATAL)
        with pytest.raises(ValueError, match="already supervised"):
            tasks.start("a", work, FATAL)
