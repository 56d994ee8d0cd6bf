"""``/tasks``: count tasks over REST, for the console's *Count tasks* page and for scripts.

* ``GET /tasks?state=&assigned_to=&location=&limit=`` (scope ``read``): tasks, newest first.
* ``GET /tasks/{id}`` (``read``).
* ``POST /tasks`` ``{"location", "zone"?, "assigned_to"?, "note"?}`` (``decide``: approver
  or admin): a person asks for a count; 201 with the task.
* ``POST /tasks/{id}/assign`` ``{"assigned_to": user | null}`` (``decide``).
* ``POST /tasks/{id}/cancel`` ``{"note"?}`` (``decide``).
* ``POST /tasks/{id}/count`` ``{"items": [{"sku", "qty"}], "note"?}``: the blind count. A
  session of a counter, approver or admin; an API token needs the scope ``decide``. Only the
  task's assignee may count it, or anyone when it is unassigned.

No answer carries a book quantity: the count is blind. ``assigned_to`` is a user of role
counter or above; ``null`` (or ``""``, what a form's empty choice sends) leaves the task to
anybody. A count's SKU is 1-64 characters (the contract's limit) without control
characters; a GTIN-8/12/13/14 becomes its GTIN-14 (its check digit verified); lines of the
same SKU are added up; quantities are whole numbers 0 to 1,000,000; at most 200 lines, none
meaning the location is empty.

Errors: 404 unknown task; 409 the task is not open (a second submit: it is done), or the
location has an open task already (the message names it); 403 the task is someone else's,
or a role or scope too low; 422 an invalid field (``loc`` names it: ``["body", "items", 2,
"qty"]`` is the third line's quantity), an unknown or non-counting assignee, an unknown
location or a wrong zone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Literal, TypeVar

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field
from pydantic import StringConstraints as Text

from edgecount.contract import ContractError
from edgecount.gtin import normalise_sku
from reconciler import count_tasks
from reconciler.api_types import Name, StrictBody
from reconciler.auth.dependencies import Auth
from reconciler.auth.identity import Identity, Via
from reconciler.auth.roles import Role, Scope
from reconciler.console import outbox
from reconciler.count_tasks import Counted, Task, TaskState
from reconciler.engine import Engine, Outgoing

__all__ = ["CountIn", "TaskIn", "TaskOut", "add_task_routes"]

SEGMENT = r"^[^/+#\x00-\x1f\x7f-\x9f]{1,128}$"
"""One MQTT topic level (the contract's ``segment``): what a zone or location may be."""

R = TypeVar("R")


def _blank_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _sku(text: str) -> str:
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in text):
        raise ValueError("a SKU has no control characters")
    return normalise_sku(text)  # GtinError is a ValueError: the message says which digit


Segment = Annotated[str, Text(strip_whitespace=True, pattern=SEGMENT)]
Assignee = Annotated[Name | None, BeforeValidator(_blank_is_none)]
Note = Annotated[str, Text(strip_whitespace=True, max_length=512)]
Sku = Annotated[str, Text(strip_whitespace=True, min_length=1, max_length=64), AfterValidator(_sku)]
Qty = Annotated[int, Field(ge=0, le=count_tasks.MAX_QTY, strict=True)]


class TaskIn(StrictBody):
    """A person asks for a count of a location (``zone`` may be left out where it is known)."""

    location: Segment
    zone: Annotated[Segment | None, BeforeValidator(_blank_is_none)] = None
    assigned_to: Assignee = None
    note: Note = ""


class AssignIn(StrictBody):
    """Whom a task goes to (null: anybody who counts)."""

    assigned_to: Assignee


class CancelIn(StrictBody):
    """Why a task is cancelled (optional)."""

    note: Note = ""


class CountLineIn(StrictBody):
    """One SKU counted."""

    sku: Sku
    qty: Qty


class CountIn(StrictBody):
    """A blind count: what is at the location (no lines: it is empty)."""

    items: Annotated[list[CountLineIn], Field(max_length=count_tasks.MAX_LINES)]
    note: Note = ""


class TaskOut(BaseModel):
    """A count task (never a book quantity)."""

    id: int
    zone: str
    location: str
    discrepancy_id: int | None
    reason: Literal["incomplete", "disagreement", "requested"]
    state: Literal["open", "done", "cancelled"]
    assigned_to: str | None
    created_by: str
    created_at: str
    done_at: str | None
    count_msg_id: str | None
    note: str


def _out(task: Task) -> TaskOut:
    return TaskOut.model_validate(task.view())


_STATUS: dict[type[count_tasks.TaskError], int] = {
    count_tasks.UnknownTaskError: 404,
    count_tasks.TaskConflictError: 409,
    count_tasks.NotYoursError: 403,
}


def _answer(action: Callable[[], R]) -> R:
    """Run a task action, its refusals as HTTP errors (blocking: in a worker thread)."""
    try:
        return action()
    except count_tasks.InvalidTaskError as exc:
        error = {"type": "value_error", "loc": ("body", exc.field), "msg": str(exc)}
        raise RequestValidationError([error]) from None
    except count_tasks.TaskError as exc:
        raise HTTPException(_STATUS[type(exc)], str(exc)) from None
    except ContractError as exc:  # the builders' checks run after ours: should not happen
        error = {"type": "value_error", "loc": ("body", *exc.path.split(".")), "msg": exc.reason}
        raise RequestValidationError([error]) from None


def _enqueue(by: str) -> count_tasks.Enqueue:
    """The engine's messages go to the console's outbox (the running service sends them)."""

    def enqueue(conn: sa.Connection, out: list[Outgoing]) -> int:
        return outbox.enqueue(conn, out, by=by, now=datetime.now(UTC))

    return enqueue


def _counting(auth: Auth) -> Callable[[Request], Any]:
    """A counter's session, or a token with the scope ``decide`` (403 otherwise)."""

    async def dependency(request: Request) -> Identity:
        identity = await auth.authenticate(request)
        if identity.via is Via.TOKEN and not identity.may(Scope.DECIDE):
            raise HTTPException(403, "counting a task by API token needs the scope 'decide'")
        if identity.role < Role.COUNTER:
            raise HTTPException(
                403, f"{identity.user} is {identity.role.label}; counting needs counter"
            )
        return identity

    return dependency


def add_task_routes(app: FastAPI, engine: Engine, auth: Auth) -> None:
    """Add ``/tasks`` to the REST API."""
    lock = threading.Lock()  # one task change at a time in this process (submit is 3 steps)
    reading = [Depends(auth.require(Scope.READ))]
    deciding = Depends(auth.require(Scope.DECIDE))
    counting = Depends(_counting(auth))
    store = engine.store
    errors: dict[int | str, dict[str, Any]] = {
        403: {"description": "not allowed (role, scope, or another user's task)"},
        404: {"description": "unknown task"},
        409: {"description": "the task is not open, or the location has an open task"},
    }

    def locked(action: Callable[[], Task]) -> Task:
        with lock:
            return _answer(action)

    @app.get("/tasks", dependencies=reading)
    async def list_tasks(
        state: Literal["open", "done", "cancelled"] | None = None,
        assigned_to: Annotated[str | None, Query(max_length=128)] = None,
        location: Annotated[str | None, Query(max_length=128)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[TaskOut]:
        """Count tasks, newest first (every state unless ``state`` is given)."""
        found = await run_in_threadpool(
            count_tasks.tasks, store, states=None if state is None else [TaskState(state)],
            assigned_to=assigned_to, location=location, limit=limit,
        )  # fmt: skip
        return [_out(task) for task in found]

    @app.get("/tasks/{task_id}", dependencies=reading, responses=errors)
    async def get_task(task_id: int) -> TaskOut:
        """One count task."""
        return _out(await run_in_threadpool(_answer, partial(count_tasks.get, store, task_id)))

    @app.post("/tasks", status_code=201, responses=errors)
    async def create_task(body: TaskIn, by: Identity = deciding) -> TaskOut:
        """Ask for a manual count of a location (reason ``requested``)."""

        create = partial(
            count_tasks.create, store, location=body.location, zone=body.zone,
            assigned_to=body.assigned_to, note=body.note, by=by.user,
        )  # fmt: skip
        return _out(await run_in_threadpool(locked, create))

    @app.post("/tasks/{task_id}/assign", responses=errors)
    async def assign_task(task_id: int, body: AssignIn, by: Identity = deciding) -> TaskOut:
        """Give an open task to a user who counts (null: to anybody)."""
        action = partial(count_tasks.assign, store, task_id, body.assigned_to, by=by.user)
        return _out(await run_in_threadpool(locked, action))

    @app.post("/tasks/{task_id}/cancel", responses=errors)
    async def cancel_task(
        task_id: int, body: CancelIn | None = None, by: Identity = deciding
    ) -> TaskOut:
        """Cancel an open task."""
        note = "" if body is None else body.note
        action = partial(count_tasks.cancel, store, task_id, by=by.user, note=note)
        return _out(await run_in_threadpool(locked, action))

    @app.post("/tasks/{task_id}/count", responses=errors)
    async def count_task(task_id: int, body: CountIn, by: Identity = counting) -> TaskOut:
        """Submit the blind count of a task: recorded as a ``source: manual`` count."""
        lines = [Counted(line.sku, line.qty) for line in body.items]

        submit = partial(
            count_tasks.submit, engine, task_id, lines,
            by=by.user, enqueue=_enqueue(by.user), note=body.note,
        )  # fmt: skip
        return _out(await run_in_threadpool(locked, submit))
