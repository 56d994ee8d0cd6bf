"""The console's routes: the pages, their static files, the live stream, the 401 page.

Each page module adds its own routes (``add_routes(app, context)``); this module adds what
they share and the list of page modules (:data:`PAGES`).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reconciler.auth.dependencies import Auth
from reconciler.auth.identity import Identity
from reconciler.console import book, gateways, location, queue, reports, tasks, tonight
from reconciler.console import map as site_map
from reconciler.console.context import ConsoleContext
from reconciler.console.live import LiveFeed, figures
from reconciler.console.render import PAGE_HEADERS, ROOT, render_template
from reconciler.engine import Engine

__all__ = ["ConsoleContext", "add_console_routes"]

STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


PAGES: tuple[Callable[[FastAPI, ConsoleContext], None], ...] = (
    tonight.add_routes,
    site_map.add_routes,
    location.add_routes,
    queue.add_routes,
    tasks.add_routes,
    reports.add_routes,
    book.add_routes,
    gateways.add_routes,
)
"""Each page module's ``add_routes``; a new page is one more entry here."""


def add_console_routes(app: FastAPI, engine: Engine, auth: Auth) -> ConsoleContext:
    """Add the console to the REST API's application."""
    context = ConsoleContext(
        engine, auth, auth.config, LiveFeed(lambda: figures(engine.store.engine))
    )
    signed_in = Depends(auth.current_user())

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(f"{ROOT}/", status_code=303)

    @app.get(ROOT, include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse(f"{ROOT}/", status_code=303)

    @app.get(f"{ROOT}/static/{{name}}", include_in_schema=False, dependencies=[signed_in])
    async def static(name: str) -> Response:
        suffix = name[name.rfind(".") :] if "." in name else ""
        if "/" in name or suffix not in STATIC_TYPES:
            raise HTTPException(404, "no such file")
        source = resources.files("reconciler.console").joinpath("static", name)
        if not source.is_file():
            raise HTTPException(404, "no such file")
        return Response(
            source.read_bytes(),
            media_type=STATIC_TYPES[suffix],
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    @app.get(f"{ROOT}/events", include_in_schema=False)
    async def events(request: Request, _who: Identity = signed_in) -> StreamingResponse:
        """Server-sent events: ``change`` with the topics whose data changed."""
        return StreamingResponse(
            context.live.stream(request.is_disconnected),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def console_errors(request: Request, exc: StarletteHTTPException) -> Response:
        """A browser asking for a page gets an HTML answer (401: a link to sign in)."""
        wants_page = request.url.path == "/" or request.url.path.startswith(ROOT)
        accepts_html = "text/html" in request.headers.get("accept", "")
        if not (wants_page and accepts_html):
            return await http_exception_handler(request, exc)
        body = render_template(
            "error.html",
            status=exc.status_code,
            detail=str(exc.detail),
            next_path=request.url.path,
        )
        headers = dict(PAGE_HEADERS) | dict(exc.headers or {})
        return HTMLResponse(body, status_code=exc.status_code, headers=headers)

    for add_routes in PAGES:
        add_routes(app, context)
    return context
