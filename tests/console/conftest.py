"""Browser tests of the console: Debian's chromium driven by Playwright, against a real
``edgecount reconcile serve`` (its own PostgreSQL database, the test broker).

* :func:`console` starts the reconciler with a book, users of each role and the REST API on a
  free port; :class:`Console` publishes counts, scans and statuses to it over MQTT.
* :func:`browser` is one chromium per test session; :func:`open_page` gives a signed-in page
  whose console errors, page errors, failed requests and unexpected HTTP errors fail the test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.publish as mqtt_publish
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, sync_playwright

from edgecount import contract
from tests.conftest import BrokerAddress, free_port
from tests.pgdb import fresh_database

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
EDGECOUNT = [sys.executable, "-m", "edgecount"]
PASSWORD = "correct horse battery staple"
USERS = {"ada": "admin", "ann": "approver", "cole": "counter", "vic": "viewer"}
SKU_A = "80614141123458"
SKU_B = "04012345000030"
PHONE = {"width": 390, "height": 844}
REFUSED = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")
START_TIMEOUT = 60.0


def book_csv(locations: dict[str, list[tuple[str, int, float, str]]]) -> str:
    """A book CSV of ``{location: [(sku, qty, unit_cost, abc)]}``."""
    lines = ["location,sku,qty,unit_cost,abc"]
    for location, rows in locations.items():
        lines += [f"{location},{sku},{qty},{cost},{abc}" for sku, qty, cost, abc in rows]
    return "\n".join(lines) + "\n"


DEFAULT_BOOK = {
    f"A-{n:02d}": [(SKU_A, 10, 5.0, "A"), (SKU_B, 4, 2.5, "B")] for n in range(1, 7)
} | {"B-01": [(SKU_A, 50, 40.0, "A")], "B-02": [(SKU_B, 8, 2.5, "C")]}


@dataclass
class Console:
    """A running reconciler with the console, and ways to feed it."""

    url: str
    site: str
    config: Path
    broker: BrokerAddress
    process: subprocess.Popen[str]
    log: Path
    seq: dict[str, int] = field(default_factory=dict)

    @property
    def root(self) -> str:
        """The topic root of the site."""
        return f"edgecount/v1/{self.site}"

    def _publish(self, topic: str, payload: dict[str, Any], retain: bool) -> None:
        mqtt_publish.single(
            f"{self.root}/{topic}",
            json.dumps(payload),
            qos=1,
            retain=retain,
            hostname=self.broker.host,
            port=self.broker.port,
        )

    def _next(self, gateway: str) -> int:
        self.seq[gateway] = self.seq.get(gateway, 0) + 1
        return self.seq[gateway]

    def count(
        self,
        location: str,
        items: dict[str, int],
        *,
        scan_id: str,
        zone: str | None = None,
        gateway: str = "gw-1",
        complete: bool = True,
        at: datetime | None = None,
    ) -> None:
        """Publish a count of ``location`` (zone: the location's first letter)."""
        zone = zone or location[0]
        draft = contract.count_payload(
            gateway=gateway,
            site=self.site,
            zone=zone,
            location=location,
            scan_id=scan_id,
            items=[{"sku": sku, "qty": qty} for sku, qty in items.items()],
            observed_at=at or datetime.now(UTC),
            complete=complete,
        )
        payload = contract.with_sequence(draft, self._next(gateway))
        self._publish(f"count/{zone}/{location}", payload, retain=True)

    def scan(
        self,
        zone: str,
        scan_id: str,
        state: str,
        locations: list[str],
        *,
        gateway: str = "gw-1",
        incomplete: list[str] | None = None,
    ) -> None:
        """Publish an ``edgecount.scan/1`` of ``zone``."""
        now = datetime.now(UTC)
        draft = contract.scan_payload(
            gateway=gateway,
            site=self.site,
            zone=zone,
            scan_id=scan_id,
            state=state,
            started_at=now - timedelta(minutes=5),
            ended_at=None if state == "started" else now,
            locations=locations,
            incomplete_locations=incomplete or [],
            readers=[{"name": "dock-1", "ok": True, "reads": 120}],
        )
        payload = contract.with_sequence(draft, self._next(gateway))
        self._publish(f"scan/{zone}", payload, retain=True)

    def status(self, gateway: str = "gw-1", state: str = "online") -> None:
        """Publish a gateway's ``edgecount.status/1``."""
        payload = contract.status_payload(
            gateway=gateway, site=self.site, state=state, version="test"
        )
        self._publish(f"status/{gateway}", payload, retain=True)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``edgecount ARGS`` (a CLI command on this reconciler's config)."""
        return subprocess.run(
            [*EDGECOUNT, *args], capture_output=True, text=True, timeout=120, check=False
        )

    def token(self, user: str = "ada", scopes: tuple[str, ...] = ("read", "decide")) -> str:
        """A new API token of ``user``."""
        flags = [part for scope in scopes for part in ("--scope", scope)]
        made = self.run("users", "token", "-c", str(self.config), user, *flags)
        assert made.returncode == 0, made.stderr
        return made.stdout.splitlines()[0].strip()

    def client(self, user: str = "ada") -> httpx.Client:
        """An HTTP client signed in as ``user`` (session cookie; CSRF header set)."""
        client = httpx.Client(base_url=self.url, timeout=30)
        answer = client.post("/signin", json={"username": user, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        return client


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the test server, dropped afterwards."""
    with fresh_database("edgecount_console") as url:
        yield url


def start_console(
    tmp: Path,
    broker: BrokerAddress,
    database: str,
    *,
    book: dict[str, list[tuple[str, int, float, str]]] | None = None,
    extra: str = "",
    max_recounts: int = 0,
) -> Console:
    """Write a config, import the book, add :data:`USERS`, start ``reconcile serve``."""
    site = f"console-{uuid.uuid4().hex[:8]}"
    port = free_port()
    config = tmp / "reconciler.yaml"
    config.write_text(
        f"site: {site}\ninstance_id: {site}\nstate_dir: {tmp / 'state'}\n"
        f"database: {database}\nmax_recounts: {max_recounts}\n"
        f"mqtt: {{host: {broker.host}, port: {broker.port}}}\n"
        f"api:\n  port: {port}\n  approval_limits: {{approver: 1000}}\n{extra}"
    )
    csv = tmp / "book.csv"
    csv.write_text(book_csv(book or DEFAULT_BOOK))
    as_of = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    done = subprocess.run(
        [*EDGECOUNT, "book", "import", "-c", str(config), str(csv), "--as-of", as_of],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    secret = tmp / "password"
    secret.write_text(PASSWORD + "\n")
    for name, role in USERS.items():
        added = subprocess.run(
            [*EDGECOUNT, "users", "add", "-c", str(config), name, "--role", role,
             "--password-file", str(secret)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    log = tmp / "serve.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [*EDGECOUNT, "reconcile", "serve", "-c", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(process, url, log)
    return Console(url, site, config, broker, process, log)


def _wait_ready(process: subprocess.Popen[str], url: str, log: Path) -> None:
    """Ask ``/health`` until the API answers 200 (fail if the service ends or takes 60 s)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"reconcile serve ended ({process.returncode}):\n{log.read_text()}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.2)  # polling readiness, not synchronising on a guess
    process.kill()
    raise AssertionError(f"reconcile serve did not answer in {START_TIMEOUT} s:\n{log.read_text()}")


def stop_console(console: Console) -> None:
    """SIGTERM the service and wait for it."""
    console.process.terminate()
    try:
        console.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        console.process.kill()
        console.process.wait()


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, broker: BrokerAddress, pg_url: str
) -> Iterator[Console]:
    """A reconciler with the console on PostgreSQL, shared by a test module."""
    running = start_console(tmp_path_factory.mktemp("console"), broker, pg_url)
    try:
        yield running
    finally:
        stop_console(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless (make system-tools installs it), for one test module.

    Not for the whole session: Playwright's synchronous API keeps an event loop running in the
    main thread while it lives, and later tests that call ``asyncio.run`` would find it.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (make system-tools)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Watched:
    """A page and what went wrong on it."""

    page: Page
    problems: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)

    def check(self) -> None:
        """Fail with every console error, page error, failed or refused request seen."""
        assert not self.problems, "\n".join(self.problems)


def watch(page: Page, allowed: set[int] | None = None) -> Watched:
    """Record console errors, uncaught exceptions, failed requests and HTTP errors."""
    watched = Watched(page, allowed_statuses=set(allowed or ()))

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        refused = REFUSED.match(message.text)
        if refused and int(refused.group(1)) in watched.allowed_statuses:
            return  # chromium logs every HTTP error a script fetched: this one was expected
        watched.problems.append(f"console error: {message.text}")

    def on_failed(request: Request) -> None:
        failure = request.failure or ""
        went_away = "ERR_ABORTED" in failure
        if went_away and (
            request.url.endswith("/console/events")
            or request.headers.get("x-console-fragment") == "1"
        ):
            return  # the event stream, or a live refresh, cut because the page navigated
        watched.problems.append(f"request failed: {request.method} {request.url} {failure}")

    def on_response(response: Response) -> None:
        if response.status >= 400 and response.status not in watched.allowed_statuses:
            watched.problems.append(
                f"HTTP {response.status}: {response.request.method} {response.url}"
            )

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.problems.append(f"page error: {error}"))
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    return watched


OpenPage = Callable[..., Watched]


@pytest.fixture
def open_page(browser: Browser, console: Console) -> Iterator[OpenPage]:
    """``open_page(user, path="/console/", phone=False, allowed=set())``: a signed-in page.

    Every page opened is checked when the test ends: no console error, no page error, no
    failed request, no HTTP status >= 400 but those in ``allowed``.
    """
    opened: list[tuple[Any, Watched]] = []

    def make(
        user: str, path: str = "/console/", *, phone: bool = False, allowed: set[int] | None = None
    ) -> Watched:
        options: dict[str, Any] = {"base_url": console.url}
        if phone:
            options |= {"viewport": PHONE, "is_mobile": True, "has_touch": True}
        context = browser.new_context(**options)
        page = context.new_page()
        watched = watch(page, allowed)
        opened.append((context, watched))
        sign_in(page, user, path)
        return watched

    yield make
    try:
        for _context, watched in opened:
            watched.check()
    finally:
        for context, _watched in opened:
            context.close()


def sign_in(page: Page, user: str, path: str = "/console/") -> None:
    """Sign in through the sign-in page, landing on ``path``."""
    page.goto(f"/signin?next={path}")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{path}")
