"""FastAPI dependencies that say who makes a request and whether they may.

:class:`Auth` is built once per application. Routes declare what they need with
:meth:`Auth.require` (an API scope) or :meth:`Auth.current_user` (a role, for the console's
pages); :meth:`Auth.gate`, an application-wide dependency, additionally refuses every request
but the open ones (``api.anonymous``, the sign-in page) that carries no valid credential, so a
route added without a requirement is still not anonymous.

A request authenticates with ``Authorization: Bearer <token>`` or with the session cookie. A
state-changing request (``POST``, ``PUT``, ``PATCH``, ``DELETE``) authenticated by the cookie
must also send the session's CSRF token in the ``X-CSRF-Token`` header: a browser attaches
the cookie to a request another site makes it send, but that site cannot read the token.
Bearer requests need none (a browser never adds the header by itself).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from reconciler.auth.identity import Identity, Via
from reconciler.auth.ratelimit import SigninLimiter
from reconciler.auth.roles import Role, Scope
from reconciler.auth.sessions import SessionPolicy, SessionStore
from reconciler.auth.users import UserStore
from reconciler.config import ApiConfig

__all__ = [
    "ANONYMOUS",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "OPEN_PAGES",
    "SESSION_COOKIE",
    "Auth",
    "check_csrf",
]

SESSION_COOKIE = "edgecount_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
"""The form field that carries the CSRF token where a page posts a form (sign-out)."""
OPEN_PAGES = frozenset({"/signin", "/signout"})
"""Paths that handle their own credentials (signing in needs none; signing out checks its own)."""
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Dependency = Callable[[Request], Awaitable[Identity]]

ANONYMOUS = Identity("anonymous", Role.VIEWER, Via.TOKEN, frozenset({Scope.READ}))
"""Who reads an endpoint listed in ``api.anonymous``."""


class Auth:
    """Users, sessions and the sign-in limiter of one application, and its dependencies.

    Args:
        engine: The reconciler's database.
        config: The ``api:`` section (anonymous endpoints, cookies, sessions, limits).
        clock: Monotonic seconds for the sign-in limiter (tests pass their own).
    """

    def __init__(
        self,
        engine: sa.Engine,
        config: ApiConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.users = UserStore(engine)
        policy = SessionPolicy(
            idle=timedelta(minutes=config.session_idle_minutes),
            absolute=timedelta(hours=config.session_max_hours),
        )
        self.sessions = SessionStore(engine, policy)
        limit = config.signin_limit
        self.limiter = SigninLimiter(limit.attempts, limit.window_seconds, clock)
        self.anonymous = frozenset(config.anonymous)

    async def identify(self, request: Request) -> Identity | None:
        """Who the request's credential names (bearer token first); None without a valid one."""
        now = datetime.now(UTC)
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None
            return await run_in_threadpool(self.users.identify_token, token.strip(), now)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return await run_in_threadpool(self.sessions.find, cookie, now)
        return None

    async def authenticate(self, request: Request) -> Identity:
        """The request's identity, once per request; 401 without one, 403 without CSRF token.

        Raises:
            HTTPException: 401 no valid credential; 403 a cookie-authenticated state change
                without the session's CSRF token.
        """
        known: Identity | None = getattr(request.state, "identity", None)
        if known is not None:
            return known
        identity = await self.identify(request)
        if identity is None:
            raise HTTPException(
                401,
                "not signed in: sign in at /signin or send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="edgecount"'},
            )
        if identity.via is Via.SESSION and request.method in UNSAFE_METHODS:
            check_csrf(identity, request.headers.get(CSRF_HEADER))
        request.state.identity = identity
        return identity

    async def gate(self, request: Request) -> None:
        """Application-wide: anything but the open paths needs a valid credential."""
        if request.url.path in self.anonymous or request.url.path in OPEN_PAGES:
            return
        await self.authenticate(request)

    def require(self, scope: Scope) -> Dependency:
        """A dependency: the identity, if its credential and role allow ``scope`` (else 403).

        ``/health`` and ``/metrics`` listed in ``api.anonymous`` pass without one.
        """

        async def dependency(request: Request) -> Identity:
            if request.url.path in self.anonymous:
                return ANONYMOUS
            identity = await self.authenticate(request)
            if not identity.may(scope):
                raise HTTPException(403, _refusal(identity, scope))
            return identity

        return dependency

    def current_user(self, required_role: Role = Role.VIEWER) -> Dependency:
        """A dependency for the console's pages: the signed-in user, of ``required_role`` or
        above (401 when not signed in, 403 below the role)."""

        async def dependency(request: Request) -> Identity:
            identity = await self.authenticate(request)
            if identity.role < required_role:
                raise HTTPException(
                    403,
                    f"{identity.user} is {identity.role.label}; this needs {required_role.label}",
                )
            return identity

        return dependency


def check_csrf(identity: Identity, sent: str | None) -> None:
    """Refuse a state change by a session that does not send its CSRF token.

    Raises:
        HTTPException: 403 without the token or with another.
    """
    expected = identity.csrf_token or ""
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(
            403, f"CSRF token missing or wrong: send the session's token in {CSRF_HEADER}"
        )


def _refusal(identity: Identity, scope: Scope) -> str:
    if identity.via is Via.TOKEN and scope not in identity.scopes:
        return f"this token lacks the scope {scope.value!r}"
    return f"{identity.user} is {identity.role.label}, which may not use {scope.value!r}"
