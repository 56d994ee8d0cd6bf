"""Sign-in, sessions, CSRF, tokens, scopes and approval limits on the REST API.

The session flow runs over real HTTP against uvicorn (SQLite and PostgreSQL); the rest uses
the FastAPI test client on SQLite.
"""

from __future__ import annotations

import asyncio
import html.parser
from collections.abc import Iterator
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from reconciler import schema as t
from reconciler.api import create_app, serve_api
from reconciler.auth.dependencies import Auth
from reconciler.auth.roles import Role, Scope
from reconciler.auth.users import UserStore
from reconciler.config import ApiConfig
from reconciler.engine import Engine
from reconciler.rules import TolerancePolicy
from reconciler.store import Store, open_store
from tests.reconciler.apiclient import PASSWORD, add_user, bearer
from tests.reconciler.test_api import approvals, flagged

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
    yield opened
    opened.close()


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def app_with(engine: Engine, clock: FakeClock | None = None, **api: Any) -> FastAPI:
    auth = Auth(engine.store.engine, ApiConfig(**api), clock=clock or FakeClock())
    return create_app(engine, auth=auth)


def audit_actions(store: Store) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.audit.c.actor, t.audit.c.action).order_by(t.audit.c.id))
        return [(r.actor, r.action) for r in rows]


# -- nothing answers anonymously ------------------------------------------------------------


def every_endpoint(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the application has, path parameters filled in."""
    found: list[tuple[str, str]] = []
    for route in app.routes:
        assert isinstance(route, APIRoute | Route), route
        path = route.path.replace("{discrepancy_id}", "1")
        found.extend((m, path) for m in sorted(route.methods or ()) if m != "HEAD")
    return found


@pytest.mark.parametrize("anonymous", [("/health", "/metrics"), ()])
def test_anonymous_requests_are_401_on_every_endpoint(
    store: Store, anonymous: tuple[str, ...]
) -> None:
    engine, _ = flagged(store)
    app = app_with(engine, anonymous=anonymous)
    client = TestClient(app)
    open_ = {("GET", p) for p in anonymous} | {("GET", "/signin"), ("POST", "/signin")}
    open_ |= {("POST", "/signout")}  # signing out without a session just clears the cookie
    endpoints = every_endpoint(app)
    assert ("POST", "/discrepancies/1/approve") in endpoints
    assert ("GET", "/openapi.json") in endpoints
    for method, path in endpoints:
        answer = client.request(method, path)
        if (method, path) in open_:
            assert answer.status_code in (200, 204, 422), (method, path, answer.status_code)
            continue
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["detail"].startswith("not signed in")
        assert answer.headers["www-authenticate"].startswith("Bearer")
    for path in anonymous:
        assert client.get(path).status_code == 200


def test_a_route_added_without_a_requirement_is_still_not_anonymous(store: Store) -> None:
    app = create_app(Engine(store, "s", TolerancePolicy()))

    @app.get("/forgotten")
    def forgotten() -> str:
        return "secret"

    assert TestClient(app).get("/forgotten").status_code == 401
    assert TestClient(app, headers=bearer(store)).get("/forgotten").json() == "secret"


# -- tokens and scopes ------------------------------------------------------------------------


def test_token_scopes_and_roles(store: Store) -> None:
    engine, ident = flagged(store)
    client = TestClient(create_app(engine))
    reader = bearer(store, "rita", Role.ADMIN, frozenset({Scope.READ}))
    assert client.get("/discrepancies", headers=reader).status_code == 200
    refused = client.post(
        f"/discrepancies/{ident}/approve", json={"reason_code": "X"}, headers=reader
    )
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "this token lacks the scope 'decide'"},
    )
    assert client.post("/movements", json={"movements": []}, headers=reader).status_code == 403
    booker = bearer(store, "wms", Role.ADMIN, frozenset({Scope.BOOK}))
    assert client.post("/movements", json={"movements": []}, headers=booker).status_code == 200
    assert client.get("/discrepancies", headers=booker).status_code == 403
    viewer = bearer(store, "vic", Role.VIEWER, frozenset({Scope.READ}))
    assert client.get("/openapi.json", headers=viewer).json()["info"]["title"]
    # a role lowered after the token was made lowers what the token may do
    deciding = bearer(store, "dee", Role.APPROVER)
    with store.engine.begin() as conn:
        conn.execute(t.users.update().where(t.users.c.name == "dee").values(role="viewer"))
    lowered = client.post(
        f"/discrepancies/{ident}/approve", json={"reason_code": "X"}, headers=deciding
    )
    assert (lowered.status_code, lowered.json()["detail"]) == (
        403,
        "dee is viewer, which may not use 'decide'",
    )
    assert approvals(store) == []


def test_revoked_expired_unknown_and_malformed_tokens_are_401(store: Store) -> None:
    engine, _ = flagged(store)
    client = TestClient(create_app(engine))
    users = UserStore(store.engine)
    add_user(store, "ann")
    token_id, revoked = users.create_token("ann", frozenset({Scope.READ}), None, actor="t")
    assert client.get("/discrepancies", headers={"Authorization": f"Bearer {revoked}"}).is_success
    users.revoke_token(token_id, actor="t")
    _, expired = users.create_token("ann", frozenset({Scope.READ}), timedelta(0), actor="t")
    for header in (
        f"Bearer {revoked}",
        f"Bearer {expired}",
        "Bearer ect_not-a-token",
        f"Basic {revoked}",
        "Bearer ",
    ):
        answer = client.get("/discrepancies", headers={"Authorization": header})
        assert answer.status_code == 401, header
    actions = [a for _, a in audit_actions(store)]
    assert actions[-3:] == ["token.create", "token.revoke", "token.create"]


# -- decisions by identity, approval limits ------------------------------------------------------


def test_approval_limit_refuses_an_approver_and_lets_an_admin(store: Store) -> None:
    engine, ident = flagged(store)  # one line: 4 short at 2.00 = 8.00
    app = app_with(engine, approval_limits={"approver": 5})
    client = TestClient(app)
    url = f"/discrepancies/{ident}/approve"
    counter = client.post(url, json={"reason_code": "X"}, headers=bearer(store, "cy", Role.COUNTER))
    assert counter.status_code == 403
    over = client.post(url, json={"reason_code": "X"}, headers=bearer(store, "al", Role.APPROVER))
    assert over.status_code == 403
    assert over.json()["detail"] == (
        f"discrepancy {ident} is worth 8.00, above the approval limit of 5.00 of al (approver);"
        " an admin must decide it"
    )
    assert approvals(store) == []
    done = client.post(url, json={"reason_code": "X"}, headers=bearer(store, "boss", Role.ADMIN))
    assert done.status_code == 200
    assert approvals(store) == [(ident, "approved", "X", "boss", "")]
    assert ("boss", "discrepancy.approved") in audit_actions(store)


def test_an_approver_within_the_limit_decides_under_their_own_name(store: Store) -> None:
    engine, ident = flagged(store)
    client = TestClient(app_with(engine, approval_limits={"approver": 8}))  # 8.00 is allowed
    answer = client.post(
        f"/discrepancies/{ident}/reject",
        json={"reason_code": "BOOK_ERROR"},
        headers=bearer(store, "al", Role.APPROVER),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"]["by"] == "al"
    assert approvals(store) == [(ident, "rejected", "BOOK_ERROR", "al", "")]


# -- the sign-in page -------------------------------------------------------------------------


class _Form(html.parser.HTMLParser):
    """Accessible names of a form's fields (their labels) and buttons (their text)."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: dict[str, str] = {}
        self.inputs: dict[str, dict[str, str | None]] = {}
        self.buttons: list[str] = []
        self.scripts = 0
        self._label: str | None = None
        self._in_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "label":
            self._label = found.get("for")
        elif tag == "input" and found.get("id"):
            self.inputs[str(found["id"])] = found
        elif tag == "button":
            self._in_button = True
            self.buttons.append("")
        elif tag in ("script", "link", "img"):
            self.scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label = None
        elif tag == "button":
            self._in_button = False

    def handle_data(self, data: str) -> None:
        if self._label is not None:
            self.labels[self._label] = self.labels.get(self._label, "") + data.strip()
        elif self._in_button:
            self.buttons[-1] += data.strip()


def test_signin_page_names_its_fields_and_loads_nothing(store: Store) -> None:
    answer = TestClient(create_app(Engine(store, "s", TolerancePolicy()))).get("/signin")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    form = _Form()
    form.feed(answer.text)
    names = {form.labels[i]: form.inputs[i] for i in form.labels}
    assert sorted(names) == ["Password", "Username"]
    assert names["Password"]["type"] == "password"
    assert names["Username"]["name"] == "username"
    assert form.buttons == ["Sign in"]
    assert form.scripts == 0


def test_signin_rate_limit_per_user_and_per_address(store: Store) -> None:
    engine, _ = flagged(store)
    add_user(store, "ann")
    clock = FakeClock()
    client = TestClient(app_with(engine, clock, signin_limit={"attempts": 3, "window_seconds": 60}))

    def sign_in(user: str, password: str) -> httpx.Response:
        answer: httpx.Response = client.post(
            "/signin", json={"username": user, "password": password}
        )
        return answer

    for _ in range(3):
        assert sign_in("ann", "wrong password!").status_code == 401
    limited = sign_in("ann", PASSWORD)  # even the right password waits
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "60"
    clock.now += 45
    assert sign_in("ann", PASSWORD).headers["retry-after"] == "15"
    clock.now += 15
    assert sign_in("ann", PASSWORD).status_code == 200
    # per address: three failures on other names lock this client out of every name
    for name in ("x", "y", "z"):
        assert sign_in(name, "wrong password!").status_code == 401
    assert sign_in("ann", PASSWORD).status_code == 429
    failures = [a for a in audit_actions(store) if a[1] == "signin.failure"]
    assert failures == [("ann", "signin.failure")] * 3 + [
        (n, "signin.failure") for n in ("x", "y", "z")
    ]


def test_wrong_password_form_shows_the_page_again_with_401(store: Store) -> None:
    engine, _ = flagged(store)
    add_user(store, "ann")
    client = TestClient(create_app(engine), follow_redirects=False)
    wrong = client.post("/signin", content="username=ann&password=nope", headers=FORM)
    assert wrong.status_code == 401
    assert "Wrong username or password." in wrong.text
    assert "set-cookie" not in wrong.headers
    unknown = client.post("/signin", json={"username": "nobody", "password": PASSWORD})
    assert (unknown.status_code, unknown.json()) == (401, {"detail": "Wrong username or password."})
    evil = client.post(
        "/signin",
        content=f"username=ann&password={PASSWORD.replace(' ', '+')}&next=//evil.example/",
        headers=FORM,
    )
    assert (evil.status_code, evil.headers["location"]) == (303, "/session")


# -- sessions over real HTTP --------------------------------------------------------------------


async def started(app: FastAPI, stopping: asyncio.Event) -> tuple[asyncio.Task[None], str]:
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_api(app, "127.0.0.1", 0, stopping, on_listening=bound.set_result), name="api"
    )
    return task, f"http://127.0.0.1:{await asyncio.wait_for(bound, 5)}"


async def test_session_flow_over_http(any_store: Store) -> None:
    engine, ident = flagged(any_store)
    add_user(any_store, "ann", Role.APPROVER)
    stopping = asyncio.Event()
    task, base = await started(create_app(engine), stopping)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            body = f"username=ann&password={PASSWORD.replace(' ', '+')}&next=/discrepancies"
            signed = await http.post("/signin", content=body, headers=FORM)
            assert (signed.status_code, signed.headers["location"]) == (303, "/discrepancies")
            cookie = SimpleCookie(signed.headers["set-cookie"])["edgecount_session"]
            assert cookie["httponly"] is True
            assert cookie["samesite"] == "lax"
            assert not cookie["secure"]
            assert cookie["path"] == "/"
            assert (await http.get("/discrepancies")).status_code == 200  # the cookie is sent
            session = (await http.get("/session")).json()
            assert (session["user"], session["role"]) == ("ann", "approver")
            url = f"/discrepancies/{ident}/approve"
            no_csrf = await http.post(url, json={"reason_code": "MISCOUNT"})
            assert no_csrf.status_code == 403
            assert "CSRF token" in no_csrf.json()["detail"]
            wrong = await http.post(
                url, json={"reason_code": "MISCOUNT"}, headers={"X-CSRF-Token": "guess"}
            )
            assert wrong.status_code == 403
            assert approvals(any_store) == []
            csrf = {"X-CSRF-Token": session["csrf_token"]}
            done = await http.post(url, json={"reason_code": "MISCOUNT"}, headers=csrf)
            assert done.status_code == 200, done.text
            assert approvals(any_store) == [(ident, "approved", "MISCOUNT", "ann", "")]
            assert (await http.post("/signout")).status_code == 403  # CSRF on sign-out too
            assert (await http.post("/signout", headers=csrf)).status_code == 204
            http.cookies.set("edgecount_session", cookie.value)  # a copy of the old cookie
            assert (await http.get("/discrepancies")).status_code == 401
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)
    assert audit_actions(any_store)[-3:] == [
        ("ann", "signin.success"),
        ("ann", "discrepancy.approved"),
        ("ann", "signout"),
    ]


def test_secure_cookies_when_configured(store: Store) -> None:
    engine, _ = flagged(store)
    add_user(store, "ann")
    client = TestClient(app_with(engine, secure_cookies=True))
    answer = client.post("/signin", json={"username": "ann", "password": PASSWORD})
    assert answer.status_code == 200
    cookie = SimpleCookie(answer.headers["set-cookie"])["edgecount_session"]
    assert cookie["secure"] is True
    assert answer.json()["csrf_token"]
