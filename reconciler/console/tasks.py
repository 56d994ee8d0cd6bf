"""*Count tasks*: a counter's open tasks, counted blind on a phone; approvers hand them out.

``GET /console/tasks`` needs a counter, approver or admin (a viewer gets 403). A counter sees
the open tasks assigned to them and the unassigned ones, each with its location, why it was
opened, its note and who asked, and a form to enter SKUs and quantities (``static/tasks.js``
sends it to ``POST /tasks/{id}/count``; a "Scan barcode" button appears where the browser
has ``BarcodeDetector`` and a camera). The page never shows a book quantity. Approvers and
admins also see every open task, assign or cancel it, and ask for a new one. Live on the
``tasks`` topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from reconciler import count_tasks
from reconciler.auth.dependencies import Auth
from reconciler.auth.identity import Identity
from reconciler.auth.roles import Role
from reconciler.console.render import ROOT, render_page
from reconciler.count_tasks import Task, TaskReason, TaskState
from reconciler.engine import Engine
from reconciler.store import Store

__all__ = ["CLOSED_SHOWN", "REASONS", "PageContext", "TasksPage", "add_routes", "tasks_page"]

CLOSED_SHOWN = 20
"""Recently closed tasks listed."""

REASONS = {
    TaskReason.INCOMPLETE: "Recount incomplete",
    TaskReason.DISAGREEMENT: "RFID and camera disagree",
    TaskReason.REQUESTED: "Asked for",
}
"""What the page calls each reason."""


@dataclass(slots=True)
class TasksPage:
    """What the page shows (no book quantity anywhere)."""

    mine: list[Task] = field(default_factory=list)
    """Open tasks the user may count: theirs first, then the unassigned ones."""
    manage: bool = False
    """The user may create, assign and cancel tasks (approver or admin)."""
    open_tasks: list[Task] = field(default_factory=list)
    """Every open task (for those who manage)."""
    closed: list[Task] = field(default_factory=list)
    """Recently done or cancelled: everyone's for those who manage, else the user's own."""
    counters: list[str] = field(default_factory=list)
    """Users a task may be assigned to."""


def tasks_page(store: Store, identity: Identity) -> TasksPage:
    """The page's data for ``identity`` (blocking: run it in a worker thread)."""
    manage = identity.role >= Role.APPROVER
    everything = count_tasks.tasks(store, states=[TaskState.OPEN], limit=500)
    mine = [task for task in everything if task.assigned_to == identity.user]
    mine += [task for task in everything if task.assigned_to is None]
    closed = count_tasks.tasks(
        store,
        states=[TaskState.DONE, TaskState.CANCELLED],
        assigned_to=None if manage else identity.user,
        limit=CLOSED_SHOWN,
    )
    return TasksPage(
        mine=sorted(mine, key=lambda task: (task.assigned_to is None, task.id)),
        manage=manage,
        open_tasks=sorted(everything, key=lambda task: task.id) if manage else [],
        closed=closed,
        counters=count_tasks.counters(store) if manage else [],
    )


class PageContext(Protocol):
    """What the page needs of :class:`reconciler.console.routes.ConsoleContext` (named here,
    not imported: ``routes`` imports this module)."""

    @property
    def engine(self) -> Engine:
        """The engine (its store holds the tasks)."""
        ...

    @property
    def auth(self) -> Auth:
        """Who may see the page."""
        ...

    @property
    def site(self) -> str:
        """The site shown in the header."""
        ...


def add_routes(app: FastAPI, context: PageContext) -> None:
    """``GET /console/tasks``: the Count tasks page."""
    counting = Depends(context.auth.current_user(Role.COUNTER))

    @app.get(f"{ROOT}/tasks", response_class=HTMLResponse, include_in_schema=False)
    async def tasks(request: Request, identity: Identity = counting) -> HTMLResponse:
        data = await run_in_threadpool(tasks_page, context.engine.store, identity)
        return render_page(
            request,
            identity,
            "tasks.html",
            title="Count tasks",
            active="tasks",
            site=context.site,
            live="tasks",
            page=data,
            reasons=REASONS,
            max_qty=count_tasks.MAX_QTY,
        )
