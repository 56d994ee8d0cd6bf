"""Count tasks: a person's blind count of a location that automation could not settle.

A task asks for a manual count of one location. It opens

* ``incomplete``: a recount failed as incomplete and the discrepancy now awaits approval
  (:func:`after_count`, in the engine's transaction);
* ``disagreement``: a fused count whose RFID and vision figures disagree beyond the zone's
  tolerance (the same way);
* ``requested``: a person asked for it (:func:`create`).

At most one task per location is open: a request for a second one is refused naming the open
one (:class:`TaskConflictError`), and the automatic rules do not add one. A task may be assigned to
a user of role counter or above; an unassigned one is anybody's. Its counter submits SKUs and
quantities **blind** (nothing here ever reads the book); :func:`submit` turns them into an
``edgecount.count/1`` with ``source: manual`` (:func:`manual_count`) and hands it to the
engine like a gateway's count, so the count is a recount for the reconciler: a complete count
within tolerance resolves the open discrepancy, one that differs updates or supersedes it.

The manual count of task ``N`` is ``msg_id`` ``console:N`` (gateway :data:`MANUAL_GATEWAY`,
``seq`` N), ``scan_id`` ``manual-N``: stable for the task, so a submit retried after a lost
answer stores nothing twice. States: ``open`` → ``done`` (with ``count_msg_id``, ``done_at``)
or ``cancelled``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from edgecount import contract
from edgecount.contract import CountMessage, CountSource
from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.auth.roles import Role
from reconciler.locks import lock_location
from reconciler.messages import Outgoing
from reconciler.repository import audit
from reconciler.store import Store
from reconciler.transitions import Action, State, Step

__all__ = [
    "MANUAL_GATEWAY",
    "MAX_LINES",
    "MAX_QTY",
    "Counted",
    "InvalidTaskError",
    "NotYoursError",
    "Reconciler",
    "Task",
    "TaskConflictError",
    "TaskError",
    "TaskReason",
    "TaskState",
    "UnknownTaskError",
    "after_count",
    "assign",
    "cancel",
    "counters",
    "create",
    "disputed",
    "get",
    "manual_count",
    "recount_gateway",
    "submit",
    "tasks",
]

MANUAL_GATEWAY = "console"
"""The ``gateway`` of every manual count (reserved: no real gateway may be called so)."""
MAX_LINES = 200
"""Most SKU lines one manual count may have."""
MAX_QTY = 1_000_000
"""Largest quantity of one line."""
_NOTE_LIMIT = 1024


class TaskReason(enum.StrEnum):
    """Why a task was opened."""

    INCOMPLETE = "incomplete"
    """The last recount was incomplete; the discrepancy awaits approval."""
    DISAGREEMENT = "disagreement"
    """RFID and vision disagreed beyond the fusion tolerance."""
    REQUESTED = "requested"
    """A person asked for it."""


class TaskState(enum.StrEnum):
    """Where a task is: open until counted (done) or cancelled."""

    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Task:
    """A count task as stored (it never carries book quantities)."""

    id: int
    zone: str
    location: str
    discrepancy_id: int | None
    reason: TaskReason
    state: TaskState
    assigned_to: str | None
    created_by: str
    created_at: datetime
    done_at: datetime | None
    count_msg_id: str | None
    note: str

    def view(self) -> dict[str, Any]:
        """The task as the REST API answers it (times in the contract's ISO form)."""
        return {
            "id": self.id,
            "zone": self.zone,
            "location": self.location,
            "discrepancy_id": self.discrepancy_id,
            "reason": self.reason.value,
            "state": self.state.value,
            "assigned_to": self.assigned_to,
            "created_by": self.created_by,
            "created_at": contract.to_iso(self.created_at),
            "done_at": None if self.done_at is None else contract.to_iso(self.done_at),
            "count_msg_id": self.count_msg_id,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Counted:
    """One line a counter entered: a SKU (already normalised) and how many."""

    sku: str
    qty: int


# -- errors --------------------------------------------------------------------------------


class TaskError(ValueError):
    """A task request that cannot be done; the message says why."""


class UnknownTaskError(TaskError):
    """No task of that id."""


class TaskConflictError(TaskError):
    """The task is not open, or the location already has an open task."""


class NotYoursError(TaskError):
    """The task is assigned to somebody else."""


class InvalidTaskError(TaskError):
    """A field of the request is not acceptable (an unknown user or location).

    Attributes:
        field: The request's field at fault.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# -- reading -------------------------------------------------------------------------------

_c = t.count_tasks.c


def _task(row: Any) -> Task:
    return Task(
        id=int(row.id),
        zone=row.zone,
        location=row.location,
        discrepancy_id=row.discrepancy_id,
        reason=TaskReason(row.reason),
        state=TaskState(row.state),
        assigned_to=row.assigned_to,
        created_by=row.created_by,
        created_at=utc(row.created_at),
        done_at=None if row.done_at is None else utc(row.done_at),
        count_msg_id=row.count_msg_id,
        note=row.note or "",
    )


def _read(conn: sa.Connection, task_id: int) -> Task:
    row = conn.execute(sa.select(t.count_tasks).where(_c.id == task_id)).first()
    if row is None:
        raise UnknownTaskError(f"no count task {task_id}")
    return _task(row)


def get(store: Store, task_id: int) -> Task:
    """One task.

    Raises:
        UnknownTaskError: No such task.
    """
    with store.engine.connect() as conn:
        return _read(conn, task_id)


def tasks(
    store: Store,
    *,
    states: Iterable[TaskState] | None = None,
    assigned_to: str | None = None,
    location: str | None = None,
    limit: int = 100,
) -> list[Task]:
    """Tasks, newest first, filtered by states, assignee and location when given."""
    query = sa.select(t.count_tasks).order_by(_c.id.desc()).limit(limit)
    if states is not None:
        query = query.where(_c.state.in_([state.value for state in states]))
    if assigned_to is not None:
        query = query.where(_c.assigned_to == assigned_to)
    if location is not None:
        query = query.where(_c.location == location)
    with store.engine.connect() as conn:
        return [_task(row) for row in conn.execute(query)]


def counters(store: Store) -> list[str]:
    """Users who may count (role counter or above), by name: whom a task may be assigned."""
    may = [role.label for role in Role if role >= Role.COUNTER]
    query = sa.select(t.users.c.name).where(t.users.c.role.in_(may)).order_by(t.users.c.name)
    with store.engine.connect() as conn:
        return list(conn.execute(query).scalars())


def _open_at(conn: sa.Connection, location: str) -> Task | None:
    query = sa.select(t.count_tasks).where(
        _c.location == location, _c.state == TaskState.OPEN.value
    )
    row = conn.execute(query.order_by(_c.id)).first()
    return None if row is None else _task(row)


def _insert(
    conn: sa.Connection,
    *,
    zone: str,
    location: str,
    reason: TaskReason,
    discrepancy_id: int | None,
    assigned_to: str | None,
    by: str,
    note: str,
    now: datetime,
) -> int:
    inserted = conn.execute(
        t.count_tasks.insert().values(
            zone=zone,
            location=location,
            discrepancy_id=discrepancy_id,
            reason=reason.value,
            state=TaskState.OPEN.value,
            assigned_to=assigned_to,
            created_by=by,
            created_at=now,
            note=note[:_NOTE_LIMIT],
        )
    )
    key = inserted.inserted_primary_key
    assert key is not None
    task_id = int(key[0])
    detail = {"task": task_id, "reason": reason.value, "assigned_to": assigned_to}
    audit(conn, by, "task.open", location, detail)
    return task_id


# -- the engine's rules --------------------------------------------------------------------


def disputed(count: CountMessage) -> bool:
    """A fused count whose RFID and vision figures disagree beyond the tolerance."""
    return count.fusion is not None and count.fusion.disagreement


def _rule(count: CountMessage, step: Step) -> TaskReason | None:
    if step.action is Action.ATTEMPT_FAILED and step.state is State.AWAITING_APPROVAL:
        return TaskReason.INCOMPLETE
    if disputed(count):
        return TaskReason.DISAGREEMENT
    return None


def after_count(
    conn: sa.Connection,
    count: CountMessage,
    step: Step,
    discrepancy_id: int | None,
    *,
    actor: str,
    now: datetime,
) -> int | None:
    """Open the task a count calls for, in the engine's transaction; returns its id.

    A recount that failed as incomplete and left the discrepancy awaiting approval opens an
    ``incomplete`` task; a fused count with ``fusion.disagreement`` a ``disagreement`` one.
    Nothing opens where a task is open already.

    Args:
        conn: The engine's connection (its step's transaction).
        count: The count the engine applied.
        step: What the state machine made of it.
        discrepancy_id: The discrepancy open at the location afterwards, if any.
        actor: Who opened it (the reconciler's actor name).
        now: When.
    """
    reason = _rule(count, step)
    if reason is None:
        return None
    lock_location(conn, "count_task", count.location)  # one open task a location
    if _open_at(conn, count.location) is not None:
        return None
    return _insert(
        conn, zone=count.zone, location=count.location, reason=reason,
        discrepancy_id=discrepancy_id, assigned_to=None, by=actor, note="", now=now,
    )  # fmt: skip


def recount_gateway(conn: sa.Connection, location: str) -> str | None:
    """The gateway of the latest count of ``location`` that no person made.

    A manual count names :data:`MANUAL_GATEWAY`, which cannot scan: a recount it calls for
    goes to the gateway that counted the location before.
    """
    query = (
        sa.select(t.counts.c.gateway)
        .where(t.counts.c.location == location, t.counts.c.source != CountSource.MANUAL.value)
        .order_by(t.counts.c.observed_at.desc())
        .limit(1)
    )
    return conn.execute(query).scalar()


# -- people's requests ---------------------------------------------------------------------


def _check_assignee(conn: sa.Connection, user: str | None) -> None:
    if user is None:
        return
    role = conn.execute(sa.select(t.users.c.role).where(t.users.c.name == user)).scalar()
    if role is None:
        raise InvalidTaskError("assigned_to", f"no user {user!r}")
    if Role[role.upper()] < Role.COUNTER:
        raise InvalidTaskError(
            "assigned_to", f"{user} is {role.lower()}: a task needs a counter, approver or admin"
        )


def _zone_of(conn: sa.Connection, location: str, zone: str | None) -> str:
    """The zone of ``location``: as given, checked against where gateways reported it."""
    zones: set[str] = set(
        conn.execute(
            sa.select(t.coverage.c.zone).where(t.coverage.c.location == location)
        ).scalars()
    )
    in_book = conn.execute(
        sa.select(t.book.c.location).where(t.book.c.location == location).limit(1)
    ).first()
    if not zones and in_book is None:
        raise InvalidTaskError(
            "location", f"location {location!r} is neither in the book nor counted by a gateway"
        )
    if zone is None:
        if len(zones) != 1:
            why = (
                f"it was counted in zones {', '.join(sorted(zones))}"
                if zones
                else "no zone is known"
            )
            raise InvalidTaskError("zone", f"give the zone of {location}: {why}")
        return zones.pop()
    if zones and zone not in zones:
        known = ", ".join(sorted(zones))
        raise InvalidTaskError("zone", f"{location} is in zone {known}, not {zone}")
    return zone


def _busy(task: Task) -> str:
    who = f"assigned to {task.assigned_to}" if task.assigned_to else "unassigned"
    return (
        f"location {task.location} already has open count task {task.id}"
        f" ({task.reason.value}, by {task.created_by}, {who})"
    )


def create(
    store: Store,
    *,
    location: str,
    zone: str | None = None,
    assigned_to: str | None = None,
    note: str = "",
    by: str,
    now: datetime | None = None,
) -> Task:
    """A person asks for a count of ``location`` (reason ``requested``).

    The task is linked to the discrepancy open at the location, if any. ``zone`` may be left
    out where gateways reported the location in one zone.

    Raises:
        InvalidTaskError: Unknown location, wrong or unknown zone, an assignee who is no user or
            may not count.
        TaskConflictError: The location has an open task (the message names it).
    """
    now = now or datetime.now(UTC)
    with store.engine.begin() as conn:
        _check_assignee(conn, assigned_to)
        chosen = _zone_of(conn, location, zone)
        lock_location(conn, "count_task", location)
        busy = _open_at(conn, location)
        if busy is not None:
            raise TaskConflictError(_busy(busy))
        flagged = conn.execute(
            sa.select(t.discrepancies.c.id).where(
                t.discrepancies.c.location == location,
                t.discrepancies.c.state.in_([s.value for s in contract.OPEN_STATES]),
            )
        ).scalar()
        task_id = _insert(
            conn, zone=chosen, location=location, reason=TaskReason.REQUESTED,
            discrepancy_id=flagged, assigned_to=assigned_to, by=by, note=note, now=now,
        )  # fmt: skip
        return _read(conn, task_id)


def _open_task(conn: sa.Connection, task_id: int) -> Task:
    task = _read(conn, task_id)
    if task.state is not TaskState.OPEN:
        counted = f" (count {task.count_msg_id})" if task.count_msg_id else ""
        raise TaskConflictError(f"count task {task_id} is {task.state.value}{counted}, not open")
    return task


def assign(store: Store, task_id: int, assigned_to: str | None, *, by: str) -> Task:
    """Give an open task to a user (None: to anybody).

    Raises:
        UnknownTaskError: No such task.
        TaskConflictError: The task is not open.
        InvalidTaskError: The user does not exist or may not count.
    """
    with store.engine.begin() as conn:
        task = _open_task(conn, task_id)
        _check_assignee(conn, assigned_to)
        conn.execute(t.count_tasks.update().where(_c.id == task_id).values(assigned_to=assigned_to))
        detail = {"task": task_id, "from": task.assigned_to, "to": assigned_to}
        audit(conn, by, "task.assign", task.location, detail)
        return _read(conn, task_id)


def cancel(store: Store, task_id: int, *, by: str, note: str = "") -> Task:
    """Cancel an open task.

    Raises:
        UnknownTaskError: No such task.
        TaskConflictError: The task is not open.
    """
    with store.engine.begin() as conn:
        task = _open_task(conn, task_id)
        values: dict[str, Any] = {"state": TaskState.CANCELLED.value}
        if note:
            values["note"] = _added_note(task.note, by, note)
        conn.execute(t.count_tasks.update().where(_c.id == task_id).values(values))
        audit(conn, by, "task.cancel", task.location, {"task": task_id, "note": note})
        return _read(conn, task_id)


def _added_note(note: str, by: str, more: str) -> str:
    return (f"{note}\n" if note else "") + f"{by}: {more}"


# -- the manual count ----------------------------------------------------------------------


def manual_count(
    task: Task, site: str, lines: Iterable[Counted], observed_at: datetime
) -> CountMessage:
    """The ``edgecount.count/1`` of a task's count: complete, ``source: manual``.

    Lines of the same SKU are added up. Validated by the contract.

    Raises:
        edgecount.contract.ContractError: A line the contract refuses.
    """
    summed: dict[str, int] = {}
    for line in lines:
        summed[line.sku] = summed.get(line.sku, 0) + line.qty
    draft = contract.count_payload(
        gateway=MANUAL_GATEWAY,
        site=site,
        zone=task.zone,
        location=task.location,
        scan_id=f"manual-{task.id}",
        items=[{"sku": sku, "qty": qty} for sku, qty in summed.items()],
        source=CountSource.MANUAL.value,
        complete=True,
        observed_at=observed_at,
    )
    payload = contract.with_sequence(draft, task.id)
    contract.validate(payload)
    return CountMessage.from_payload(payload)


class Reconciler(Protocol):
    """What :func:`submit` needs of the engine (:class:`reconciler.engine.Engine`)."""

    @property
    def store(self) -> Store:
        """The store the engine works on."""
        ...

    @property
    def site(self) -> str:
        """The site."""
        ...

    def on_counts(self, counts: Sequence[CountMessage]) -> list[Outgoing]:
        """React to new counts; returns what to publish."""
        ...


Enqueue = Callable[[sa.Connection, list[Outgoing]], object]
"""Queues messages for publishing in the caller's transaction (the console's outbox)."""


def _stored(conn: sa.Connection, task: Task, site: str, msg_id: str) -> CountMessage | None:
    """The manual count an earlier, unfinished submit of the task stored."""
    row = conn.execute(
        sa.select(t.counts.c["items"], t.counts.c.observed_at).where(t.counts.c.msg_id == msg_id)
    ).first()
    if row is None:
        return None
    lines = [Counted(item["sku"], int(item["qty"])) for item in row.items]
    return manual_count(task, site, lines, utc(row.observed_at))


def submit(
    reconciler: Reconciler,
    task_id: int,
    lines: Sequence[Counted],
    *,
    by: str,
    enqueue: Enqueue,
    note: str = "",
    now: datetime | None = None,
) -> Task:
    """Count a task: store its manual count once, let the engine react, close the task.

    The count goes the way of a gateway's (``record_counts``, then ``on_counts``); what the
    engine wants published is handed to ``enqueue`` in the transaction that marks the task
    done. A submit that failed after storing the count is finished by the next one, which
    lets the engine react to the count *stored* (re-applying it changes nothing), so a count
    is never applied twice. The task ends ``done`` with ``count_msg_id`` and ``done_at``, its
    ``assigned_to`` naming who counted it.

    Args:
        reconciler: The engine.
        task_id: The task.
        lines: What was counted (SKUs normalised); may be empty: the location is empty.
        by: The counter (the task's assignee, or anyone when it is unassigned).
        enqueue: Where the engine's messages go (``reconciler.console.outbox.enqueue``).
        note: The counter's remark, added to the task's note.
        now: When it was counted.

    Raises:
        UnknownTaskError: No such task.
        TaskConflictError: The task is not open (done: counted before).
        NotYoursError: The task is assigned to somebody else.
        edgecount.contract.ContractError: A line the contract refuses.
    """
    now = now or datetime.now(UTC)
    store = reconciler.store
    with store.engine.connect() as conn:
        task = _open_task(conn, task_id)
        if task.assigned_to is not None and task.assigned_to != by:
            raise NotYoursError(f"count task {task_id} is assigned to {task.assigned_to}, not {by}")
        count = manual_count(task, reconciler.site, lines, now)
        earlier = _stored(conn, task, reconciler.site, count.msg_id)
    recorded = store.record_counts([count], now) if earlier is None else [earlier]
    if not recorded:  # stored meanwhile by a submit running alongside: it finishes the task
        raise TaskConflictError(f"count task {task_id} is being counted by another submit")
    out = reconciler.on_counts(recorded)
    with store.engine.begin() as conn:
        values: dict[str, Any] = {
            "state": TaskState.DONE.value,
            "done_at": now,
            "count_msg_id": count.msg_id,
            "assigned_to": by,  # who counted it (an unassigned task is anybody's until then)
        }
        if note:
            values["note"] = _added_note(task.note, by, note)[:_NOTE_LIMIT]
        done = conn.execute(
            t.count_tasks.update()
            .where(_c.id == task_id, _c.state != TaskState.DONE.value)
            .values(values)
        )
        if done.rowcount != 1:
            raise TaskConflictError(f"count task {task_id} was counted meanwhile")
        enqueue(conn, out)
        detail = {"task": task_id, "count_msg_id": count.msg_id, "lines": len(recorded[0].items)}
        audit(conn, by, "task.count", task.location, detail)
        return _read(conn, task_id)
