"""Shared test fixtures: real Mosquitto brokers, an MQTT recorder, async test functions.

Fixtures:

* ``mosquitto_factory`` -- starts private ``mosquitto`` processes (generated config, free
  port, temporary directory) that a test may stop, kill, pause or restart on the same port.
* ``broker`` -- the shared broker on 127.0.0.1:1883 (``EDGECOUNT_TEST_BROKER=host:port``
  overrides it; when none answers, one private broker is started for the session). Tests
  that use it keep to their own topics: take ``unique_site`` as the site.
* ``unique_site`` -- a site id no other test uses, so topics never collide.
* ``tls_certs`` -- a throw-away CA, server and client certificates (:class:`TlsFiles`).
* ``mqtt_recorder`` -- makes :class:`MqttRecorder` s that subscribe and let a test wait for
  messages; every payload they see is validated against the contract.

``async def`` tests run in a fresh event loop with :func:`asyncio.run` (no plugin needed),
bounded by ``ASYNC_TEST_TIMEOUT`` seconds (``@pytest.mark.async_timeout(S)``: by S).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import settings
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgecount import contract

ASYNC_TEST_TIMEOUT = 60.0
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

# Property tests check behaviour, not speed (benchmarks do that): no per-example deadline,
# which a busy CI machine would turn into random failures.
settings.register_profile("edgecount", deadline=None)
settings.load_profile("edgecount")


# --- markers ---------------------------------------------------------------------------------

# Fixtures that need the training extra (ultralytics on PyTorch): a test using one is a
# ``train`` test even without the mark written on it.
TRAIN_FIXTURES = frozenset({"throwaway_model"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the training extra ``train`` (see TRAIN_FIXTURES)."""
    for item in items:
        if TRAIN_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.train)


# --- async tests ----------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` test functions with :func:`asyncio.run`."""
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    names = inspect.signature(function).parameters
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    marker = pyfuncitem.get_closest_marker("async_timeout")
    limit = float(marker.args[0]) if marker is not None else ASYNC_TEST_TIMEOUT

    async def bounded() -> None:
        async with asyncio.timeout(limit):
            await function(**kwargs)

    asyncio.run(bounded())
    return True


async def eventually(
    predicate: Callable[[], bool],
    timeout: float = 5.0,  # noqa: ASYNC109 - a bound, like wait_for's
    what: str = "condition",
) -> None:
    """Wait until ``predicate()`` holds, checking every 10 ms; AssertionError on timeout.

    For state that has no event to wait on (health counters); prefer events where they exist.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.01)


# --- brokers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker listens."""

    host: str
    port: int


def mqtt_ping(
    host: str,
    port: int,
    timeout: float = 1.0,
    *,
    accepted: bool = True,
    tls: ssl.SSLContext | None = None,
) -> bool:
    """True when an anonymous MQTT 3.1.1 CONNECT to host:port gets a CONNACK.

    With ``accepted`` (the default) only CONNACK 0 counts; without it a refusal (a broker that
    wants a password) counts too: the broker is up. ``tls`` speaks TLS with that context.
    """
    client_id = f"ping-{uuid.uuid4().hex[:8]}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x00"  # protocol, level 4, clean session, keepalive 0
    body = variable + len(client_id).to_bytes(2, "big") + client_id
    packet = b"\x10" + bytes([len(body)]) + body
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
            if tls is not None:
                sock = stack.enter_context(tls.wrap_socket(sock, server_hostname=host))
            sock.sendall(packet)
            answer = sock.recv(4)
            sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return False
    return answer[:2] == b"\x20\x02" and (answer[3:4] == b"\x00" or not accepted)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MosquittoBroker:
    """A private ``mosquitto`` process with a generated configuration.

    Args:
        directory: Where the config and log go.
        port: The port to listen on (kept across restarts).
        config_extra: More configuration lines (e.g. ``password_file ...``).
        ping_tls: TLS context for the readiness check, when the listener speaks TLS.
    """

    def __init__(
        self,
        directory: Path,
        port: int,
        config_extra: str = "",
        ping_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.directory = directory
        self.address = BrokerAddress("127.0.0.1", port)
        self.config_path = directory / "mosquitto.conf"
        self.log_path = directory / "mosquitto.log"
        self.config_extra = config_extra
        self.ping_tls = ping_tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """Listening address."""
        return self.address.host

    @property
    def port(self) -> int:
        """Listening port."""
        return self.address.port

    def _write_config(self) -> None:
        user = pwd.getpwuid(os.geteuid()).pw_name
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            f"user {user}\n"
            "log_dest stdout\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
            f"{self.config_extra}\n",
            encoding="utf-8",
        )

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        """Start and return once the broker accepts an MQTT connection."""
        if self.running:
            return self
        self._write_config()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # fixed binary, generated config
                [MOSQUITTO, "-c", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not mqtt_ping(self.host, self.port, 0.5, accepted=False, tls=self.ping_tls):
            try:
                # Doubles as the pause between polls and as the check for an early exit.
                code = self.process.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                code = None
            if code is not None:
                raise RuntimeError(f"mosquitto exited with {code}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mosquitto not accepting after {timeout} s:\n{self.log_text()}")
        return self

    @property
    def running(self) -> bool:
        """The process is alive."""
        return self.process is not None and self.process.poll() is None

    def _signal(self, sig: signal.Signals, wait: bool) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        if wait:
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (clean shutdown) and wait."""
        self._signal(signal.SIGCONT, wait=False)
        self._signal(signal.SIGTERM, wait=True)

    def kill(self) -> None:
        """SIGKILL and wait: clients see their connection reset."""
        self._signal(signal.SIGKILL, wait=True)

    def pause(self) -> None:
        """SIGSTOP: the broker stays connected but answers nothing (no PUBACKs)."""
        self._signal(signal.SIGSTOP, wait=False)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self._signal(signal.SIGCONT, wait=False)

    def restart(self, *, kill: bool = False) -> MosquittoBroker:
        """Stop (or kill) and start again on the same port."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def log_text(self) -> str:
        """Everything the broker logged so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""


MosquittoFactory = Callable[..., MosquittoBroker]


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoFactory]:
    """Start private brokers: ``mosquitto_factory(config_extra="", port=None, ping_tls=None)``."""
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed: `make test` installs it (make system-tools)")
    brokers: list[MosquittoBroker] = []

    def make(
        config_extra: str = "", port: int | None = None, ping_tls: ssl.SSLContext | None = None
    ) -> MosquittoBroker:
        directory = tmp_path_factory.mktemp("mosquitto")
        broker = MosquittoBroker(directory, port or free_port(), config_extra, ping_tls)
        brokers.append(broker)
        return broker.start()

    yield make
    for broker in brokers:
        broker.kill()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerAddress]:
    """The shared broker (127.0.0.1:1883 or $EDGECOUNT_TEST_BROKER), else a private one."""
    host, _, port = os.environ.get("EDGECOUNT_TEST_BROKER", "127.0.0.1:1883").partition(":")
    address = BrokerAddress(host, int(port or 1883))
    if mqtt_ping(address.host, address.port):
        yield address
        return
    if not Path(MOSQUITTO).exists():
        pytest.fail(
            f"no broker at {address.host}:{address.port} and no mosquitto binary: "
            "`make test` installs it (make system-tools)"
        )
    private = MosquittoBroker(tmp_path_factory.mktemp("shared-mosquitto"), free_port()).start()
    try:
        yield private.address
    finally:
        private.kill()


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A throw-away CA with a server certificate for 127.0.0.1 and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def broker_config(self, require_certificate: bool = False) -> str:
        """Mosquitto lines that turn the listener into TLS (with client certificates)."""
        lines = [f"cafile {self.ca}", f"certfile {self.server_cert}", f"keyfile {self.server_key}"]
        if require_certificate:
            lines.append("require_certificate true")
        return "\n".join(lines)

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context trusting the CA and presenting the client certificate."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(self.client_cert, self.client_key)
        return context

    def issue(self, common_name: str) -> tuple[Path, Path]:
        """Another client certificate and key from the same CA, for ``common_name``."""
        d = self.ca.parent
        cert, key, csr = (d / f"{common_name}.{ext}" for ext in ("crt", "key", "csr"))
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        request = ["req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={common_name}"]
        sign = ["x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(d / "ca.key"),
                "-CAcreateserial", "-out", str(cert), "-days", "2"]  # fmt: skip
        for args in (request, sign):
            subprocess.run(["openssl", *args], check=True, capture_output=True)
        return cert, key


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Make :class:`TlsFiles` with the ``openssl`` command (EC P-256, valid two days)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed: `make test` installs it (make system-tools)")
    d = tmp_path_factory.mktemp("tls")
    files = TlsFiles(
        d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(files.ca), "-days", "2",
        "-subj", "/CN=edgecount-test-ca")  # fmt: skip
    san = d / "san.ext"
    san.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", encoding="utf-8")
    for name, cert, key, ext in (
        ("127.0.0.1", files.server_cert, files.server_key, ["-extfile", str(san)]),
        ("edgecount-test-client", files.client_cert, files.client_key, []),
    ):
        csr = d / f"{name}.csr"
        run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
        run("x509", "-req", "-in", str(csr), "-CA", str(files.ca), "-CAkey", str(d / "ca.key"),
            "-CAcreateserial", "-out", str(cert), "-days", "2", *ext)  # fmt: skip
    return files


@pytest.fixture
def unique_site() -> str:
    """A site id of its own for this test (topic isolation on a shared broker)."""
    return f"t{uuid.uuid4().hex[:12]}"


# --- recorder -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """One message a recorder saw. ``payload`` is None for an empty (clearing) message."""

    topic: str
    raw: bytes
    payload: dict[str, Any] | None
    retain: bool
    qos: int


class MqttRecorder:
    """Subscribes to filters and records every message, validating each payload.

    Payloads on ``edgecount/v1/...`` topics are decoded with :func:`contract.decode` (schema
    and topic checked); a violation is recorded in :attr:`errors` and makes every wait fail.
    The recorder reconnects (and resubscribes) by itself when its broker restarts.

    Args:
        address: The broker.
        topic_filters: One filter or several.
        protocol: ``"5"`` or ``"3.1.1"``.
        validate: Validate payloads (turn off only for tests that publish garbage).
    """

    def __init__(
        self,
        address: BrokerAddress,
        topic_filters: str | Sequence[str],
        *,
        protocol: str = "5",
        validate: bool = True,
    ) -> None:
        self.address = address
        self.filters = [topic_filters] if isinstance(topic_filters, str) else list(topic_filters)
        self.validate = validate
        self.messages: list[Received] = []
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._pending_subacks: set[int] = set()
        v5 = protocol == "5"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"recorder-{uuid.uuid4().hex[:10]}",
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self, timeout: float = 5.0) -> MqttRecorder:
        """Connect and return once every filter is subscribed."""
        self.client.connect(self.address.host, self.address.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise AssertionError(f"recorder not subscribed to {self.filters} within {timeout} s")
        return self

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        with self._cond:
            self._pending_subacks.clear()
            for topic_filter in self.filters:
                _rc, mid = client.subscribe(topic_filter, qos=1)
                if mid is not None:
                    self._pending_subacks.add(mid)

    def _on_subscribe(self, _c: paho.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        with self._cond:
            self._pending_subacks.discard(mid)
            if not self._pending_subacks:
                self._subscribed.set()

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        topic, raw = message.topic, bytes(message.payload)
        payload: dict[str, Any] | None = None
        error = None
        if raw and self.validate and topic.startswith(contract.TOPIC_PREFIX + "/"):
            try:
                payload = contract.decode(raw, topic=topic)
            except contract.ContractError as exc:
                error = f"{topic}: {exc}"
        elif raw:
            with contextlib.suppress(ValueError):
                payload = json.loads(raw)
        with self._cond:
            if error:
                self.errors.append(error)
            self.messages.append(Received(topic, raw, payload, bool(message.retain), message.qos))
            self._cond.notify_all()

    def matching(
        self, topic_filter: str = "#", where: Callable[[Received], bool] | None = None
    ) -> list[Received]:
        """Messages so far on ``topic_filter`` that satisfy ``where``."""
        with self._cond:
            return [
                m
                for m in self.messages
                if paho.topic_matches_sub(topic_filter, m.topic) and (where is None or where(m))
            ]

    def wait_for(
        self,
        count: int = 1,
        topic_filter: str = "#",
        *,
        where: Callable[[Received], bool] | None = None,
        timeout: float = 5.0,
    ) -> list[Received]:
        """Block until ``count`` matching messages arrived; return all matching ones.

        Raises:
            AssertionError: On timeout, or as soon as a payload breaks the contract.
        """

        def ready() -> bool:
            return bool(self.errors) or len(self.matching(topic_filter, where)) >= count

        with self._cond:
            self._cond.wait_for(ready, timeout)
        self.assert_valid()
        found = self.matching(topic_filter, where)
        if len(found) < count:
            seen = "\n  ".join(f"{m.topic} {m.raw[:120]!r}" for m in self.messages[-10:])
            raise AssertionError(
                f"waited {timeout} s for {count} messages on {topic_filter}, got {len(found)}; "
                f"last seen:\n  {seen}"
            )
        return found

    async def await_for(
        self,
        count: int = 1,
        topic_filter: str = "#",
        *,
        where: Callable[[Received], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - same signature as wait_for
    ) -> list[Received]:
        """:meth:`wait_for` without blocking the event loop."""
        return await asyncio.to_thread(
            self.wait_for, count, topic_filter, where=where, timeout=timeout
        )

    def assert_valid(self) -> None:
        """Fail if any payload seen broke the contract."""
        if self.errors:
            raise AssertionError("payloads breaking the contract:\n" + "\n".join(self.errors))


RecorderFactory = Callable[..., MqttRecorder]


@pytest.fixture
def mqtt_recorder() -> Iterator[RecorderFactory]:
    """Make started recorders: ``mqtt_recorder(address, filters, protocol="5")``.

    At teardown every recorder is closed and the test fails if any payload it saw broke the
    contract.
    """
    recorders: list[MqttRecorder] = []

    def make(
        address: BrokerAddress, topic_filters: str | Sequence[str], **kwargs: Any
    ) -> MqttRecorder:
        recorder = MqttRecorder(address, topic_filters, **kwargs).start()
        recorders.append(recorder)
        return recorder

    yield make
    for recorder in recorders:
        recorder.close()
    for recorder in recorders:
        recorder.assert_valid()
