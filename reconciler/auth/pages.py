"""The sign-in page and the session endpoints.

* ``GET /signin``: a plain HTML form (no script, no external asset), fields ``Username`` and
  ``Password``, a ``Sign in`` button; the console's pages send people here.
* ``POST /signin``: a form post (``application/x-www-form-urlencoded``) answers ``303`` to
  ``next`` (a path on this server; ``/session`` by default) with the session cookie; a JSON
  body ``{"username", "password"}`` answers the session as JSON. A wrong name or password is
  401, too many failures 429 with ``Retry-After`` (:mod:`reconciler.auth.ratelimit`).
* ``GET /session``: who is signed in, and the CSRF token a page sends with each change.
* ``POST /signout``: ends the session (CSRF token in the header or the ``csrf_token`` field).

Sign-ins that succeed or fail and sign-outs go to the audit log.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from reconciler.auth.dependencies import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Auth, check_csrf
from reconciler.auth.identity import Identity, Via
from reconciler.auth.passwords import MAX_PASSWORD_LENGTH
from reconciler.auth.roles import Role

__all__ = ["SessionOut", "add_signin_routes"]

FORM_TYPE = "application/x-www-form-urlencoded"
DEFAULT_NEXT = "/session"
MAX_FORM_BYTES = 4 * MAX_PASSWORD_LENGTH
PAGE_HEADERS = {
    # the page loads nothing from anywhere and may not be framed (clickjacking)
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · edgecount</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 22rem; margin: 4rem auto; padding: 0 1rem; }}
label, input, button {{ display: block; width: 100%; box-sizing: border-box; font-size: 1rem; }}
input {{ margin: 0.25rem 0 1rem; padding: 0.5rem; }}
button {{ padding: 0.6rem; }}
p[role=alert] {{ color: #a00; }}
</style>
</head>
<body>
<main>
<h1>edgecount</h1>
{message}<form method="post" action="/signin">
<input type="hidden" name="next" value="{next}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="{username}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
"""


class SessionOut(BaseModel):
    """The signed-in user, and the CSRF token to send with every change (``X-CSRF-Token``)."""

    user: str
    role: str
    csrf_token: str


def page(*, message: str = "", username: str = "", next_path: str = DEFAULT_NEXT) -> str:
    """The sign-in page, with an error message when given."""
    alert = f'<p role="alert">{html.escape(message)}</p>\n' if message else ""
    return _PAGE.format(message=alert, next=html.escape(next_path), username=html.escape(username))


def _local(path: str) -> str:
    """``path`` if it stays on this server, else the default: no open redirect."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return DEFAULT_NEXT


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _credentials(request: Request) -> tuple[str, str, str, bool] | None:
    """(username, password, next, is_form) from a form or JSON body; None if malformed."""
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return None
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == FORM_TYPE:
        fields = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=8)
        values = {k: v[0] for k, v in fields.items() if v}
        found = (values.get("username", ""), values.get("password", ""), values.get("next", ""))
        return found[0].strip(), found[1], _local(found[2] or DEFAULT_NEXT), True
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    user, password = body.get("username"), body.get("password")
    if not isinstance(user, str) or not isinstance(password, str):
        return None
    return user.strip(), password, DEFAULT_NEXT, False


def add_signin_routes(app: FastAPI, auth: Auth) -> None:
    """Add ``/signin``, ``/signout`` and ``/session`` to the application."""

    @app.get("/signin", response_class=HTMLResponse, include_in_schema=False)
    async def signin_page(
        next_path: Annotated[str, Query(alias="next", max_length=2048)] = DEFAULT_NEXT,
    ) -> HTMLResponse:
        return HTMLResponse(page(next_path=_local(next_path)), headers=PAGE_HEADERS)

    @app.post("/signin", response_model=SessionOut, responses={401: {}, 429: {}})
    async def signin(request: Request) -> Response:
        """Sign in with a form (303 to ``next``) or JSON (the session); sets the cookie."""
        given = await _credentials(request)
        if given is None:
            return JSONResponse({"detail": "send username and password (form or JSON)"}, 422)
        user, password, next_path, is_form = given
        client = _client(request)
        keys = [f"user:{user}", f"addr:{client}"]
        wait = auth.limiter.retry_after(keys)
        if wait is not None:
            message = f"Too many failed sign-ins; try again in {wait} s."
            retry = {"Retry-After": str(wait)}
            return _answer(is_form, 429, message, user=user, next_path=next_path, headers=retry)
        role = await run_in_threadpool(auth.users.authenticate, user, password)
        if role is None:
            auth.limiter.failed(keys)
            await run_in_threadpool(auth.users.record, user, "signin.failure", client, {})
            wrong = "Wrong username or password."
            return _answer(is_form, 401, wrong, user=user, next_path=next_path, headers={})
        auth.limiter.succeeded(keys[0])
        return await _signed_in(auth, user, role, client, next_path if is_form else None)

    signed_in = Depends(auth.current_user())  # a default, not Annotated: it is a local

    @app.get("/session")
    async def session(identity: Identity = signed_in) -> SessionOut:
        """Who is signed in, and the CSRF token (a bearer token has none: 403)."""
        if identity.via is not Via.SESSION:
            raise HTTPException(403, "a bearer token has no session")
        return _session(identity)

    @app.post("/signout", status_code=204, responses={303: {}, 403: {}})
    async def signout(request: Request) -> Response:
        """End the session (CSRF token in ``X-CSRF-Token`` or the ``csrf_token`` field)."""
        identity = await auth.identify(request)
        if identity is None or identity.via is not Via.SESSION:
            return _signed_out(request)
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and _is_form(request):
            sent = parse_qs((await request.body()).decode("utf-8", "replace")).get(
                CSRF_FIELD, [""]
            )[0]
        check_csrf(identity, sent)
        await run_in_threadpool(auth.sessions.close, identity, client=_client(request))
        return _signed_out(request)


async def _signed_in(
    auth: Auth, user: str, role: Role, client: str, next_path: str | None
) -> Response:
    """Open the session; answer 303 to ``next_path`` (a form) or the session as JSON."""
    now = datetime.now(UTC)
    cookie, identity = await run_in_threadpool(auth.sessions.open, user, role, now, client=client)
    answer: Response
    if next_path is not None:
        answer = RedirectResponse(next_path, status_code=303)
    else:
        answer = JSONResponse(_session(identity).model_dump())
    answer.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="lax",
        secure=auth.config.secure_cookies,
        path="/",
    )
    return answer


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == FORM_TYPE


def _signed_out(request: Request) -> Response:
    answer: Response = (
        RedirectResponse("/signin", 303) if _is_form(request) else Response(status_code=204)
    )
    answer.delete_cookie(SESSION_COOKIE, path="/")
    return answer


def _session(identity: Identity) -> SessionOut:
    return SessionOut(
        user=identity.user, role=identity.role.label, csrf_token=identity.csrf_token or ""
    )


def _answer(
    is_form: bool,
    status: int,
    message: str,
    *,
    user: str,
    next_path: str,
    headers: dict[str, str],
) -> Response:
    if is_form:
        body = page(message=message, username=user, next_path=next_path)
        return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS | headers)
    return JSONResponse({"detail": message}, status_code=status, headers=headers)
