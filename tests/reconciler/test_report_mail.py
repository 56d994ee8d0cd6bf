"""``edgecount report send`` against a real SMTP server (aiosmtpd) on this machine.

The server speaks STARTTLS (or implicit TLS) with the ``tls_certs`` server certificate and
requires AUTH (PLAIN or LOGIN) after TLS; the command reads its password from a file. What
the server received is compared with the report ``build_report`` makes of the same store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from edgecount.cli import main as edgecount_main
from edgecount.exitcodes import ExitCode
from edgecount.yamlcfg import ConfigError
from reconciler import schema
from reconciler.cli_mail import add_report_send_arguments, run_report_send
from reconciler.config import load_reconciler_config
from reconciler.email_config import EmailConfig
from reconciler.report import render_csv
from reconciler.report_build import build_report
from reconciler.report_html import report_sections
from reconciler.report_mail import default_night, night_period
from reconciler.report_mail_store import delivered
from reconciler.rules import TolerancePolicy
from reconciler.store import Store, open_store
from tests.conftest import TlsFiles, eventually, free_port
from tests.reconciler.test_cli_report import write_config
from tests.reconciler.test_queries import T0, World, _scan, fill

USER = "reports"
PASSWORD = "s3cret-smtp-Passw0rd"
SINCE = T0 - timedelta(hours=1)  # before scan s1: the period holds s1, s2 and s3 (running)
RECIPIENTS = ["Kim <kim@example.com>", "ops@example.com"]
ENVELOPE = ["kim@example.com", "ops@example.com"]


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    at: datetime


@dataclass
class Handler:
    """aiosmtpd's handler: keeps what it accepts; ``answers`` refuse the next DATA commands."""

    received: list[Received] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # recipients answered 550

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
        if self.answers:
            return self.answers.pop(0)
        content = envelope.original_content or b""
        message = BytesParser(policy=policy.default).parsebytes(content)
        assert isinstance(message, EmailMessage)
        mail_from = envelope.mail_from or ""
        rcpt = list(envelope.rcpt_tos)
        self.received.append(Received(mail_from, rcpt, message, datetime.now(UTC)))
        return "250 2.0.0 accepted"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        if ok:
            self.logins.append(mechanism)
        return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535 itself


@dataclass
class SmtpServer:
    """A running aiosmtpd server, its handler, and how to reach it."""

    port: int
    handler: Handler
    controller: Controller


def server_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.server_cert, tls.server_key)
    return context


@contextlib.contextmanager
def smtp_server(
    tls: TlsFiles,
    *,
    port: int | None = None,
    implicit: bool = False,
    mechanisms_excluded: Sequence[str] = (),
    handler: Handler | None = None,
) -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1 requiring STARTTLS (or implicit TLS) and AUTH."""
    handler = handler or Handler()
    port = port or free_port()
    context = server_context(tls)
    tls_args: dict[str, Any] = (
        # aiosmtpd offers AUTH only after its STARTTLS unless told that TLS needs no upgrade
        {"ssl_context": context, "auth_require_tls": False}
        if implicit
        else {"tls_context": context, "require_starttls": True}
    )
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=handler.authenticate,
        auth_required=True,
        auth_exclude_mechanism=list(mechanisms_excluded),
        **tls_args,
    )
    controller.start()
    try:
        yield SmtpServer(port, handler, controller)
    finally:
        controller.stop()


def email_yaml(
    port: int,
    tls: TlsFiles,
    password_file: Path,
    *,
    mode: str = "starttls",
    settle: float = 0,
    retry_total: float = 5,
    extra: str = "",
) -> str:
    to = "".join(f"\n    - {r}" for r in RECIPIENTS)
    return (
        f"email:\n  host: 127.0.0.1\n  port: {port}\n  tls: {mode}\n  ca_file: {tls.ca}\n"
        f"  username: {USER}\n  password_file: {password_file}\n"
        f"  from: edgecount <edgecount@example.com>\n  to:{to}\n"
        f"  settle_seconds: {settle}\n  poll_seconds: 0.02\n  timeout_seconds: 5\n"
        f"  retry: {{initial_seconds: 0.05, max_seconds: 0.2, total_seconds: {retry_total}}}\n"
        f"{extra}"
    )


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
    yield opened
    opened.close()


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "smtp-password"
    path.write_text(PASSWORD + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def configure(store: Store, tmp_path: Path, email: str) -> Path:
    return write_config(tmp_path / "reconciler.yaml", store, "s", extra=email)


def send(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_report_send_arguments(parser)
    return run_report_send(parser.parse_args(list(argv)))


def parts(message: EmailMessage) -> tuple[str, str, bytes, str]:
    """(plain text, HTML, CSV attachment bytes, its file name)."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/csv"
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return str(text.get_content()), str(html.get_content()), payload, str(attachment.get_filename())


def deliveries(store: Store) -> list[tuple[str, str, int]]:
    d = schema.report_deliveries
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(d.c.scope, d.c.recipient, d.c.sends).order_by(d.c.recipient))
        return [(r.scope, r.recipient, r.sends) for r in rows]


def end_scan_s3(store: Store) -> datetime:
    """Scan s3 of :func:`fill` ends now (completed)."""
    ended = datetime.now(UTC)
    world = World("s", seq=1000)
    _scan(world, store, "s3", "completed", ["A-03"], started=T0 + timedelta(days=1, hours=2),
          ended=ended)  # fmt: skip
    return ended


# -- delivery ------------------------------------------------------------------------------------


def test_the_report_goes_out_over_starttls_with_its_figures_and_csv(
    sqlite_store: Store,
    tmp_path: Path,
    tls_certs: TlsFiles,
    secret: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fill(sqlite_store, "s")
    end_scan_s3(sqlite_store)
    caplog.set_level(logging.DEBUG, logger="reconciler")
    with smtp_server(tls_certs) as server:
        config = configure(sqlite_store, tmp_path, email_yaml(server.port, tls_certs, secret))
        assert send("-c", str(config), "--since", SINCE.isoformat()) == ExitCode.OK
    (got,) = server.handler.received
    assert server.handler.logins == ["PLAIN"]
    assert got.mail_from == "edgecount@example.com"
    assert sorted(got.rcpt_tos) == ENVELOPE
    expected = build_report(
        sqlite_store, TolerancePolicy(), since=SINCE, title="Reconciliation report, site s"
    )
    summary = expected.summary
    # (Python's parser keeps the blank of a subject folded right after "Subject:")
    assert str(got.message["Subject"]).strip() == (
        f"s: inventory report, since {SINCE.astimezone(UTC).isoformat()}:"
        f" IRA {summary.ira:.1%}, {summary.exceptions} exceptions"
    )
    assert got.message["To"] == "Kim <kim@example.com>, ops@example.com"
    text, html, csv_bytes, filename = parts(got.message)
    assert report_sections(expected) in html.replace(
        "\r\n", "\n"
    )  # every figure, table and chart of the report
    assert "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert f"IRA {summary.ira:.1%}" in text
    assert f"Exceptions: {summary.exceptions}" in text
    assert csv_bytes == render_csv(expected).encode("utf-8")
    assert filename.endswith(".csv")
    key = f"since:{SINCE.astimezone(UTC).isoformat()}"
    assert deliveries(sqlite_store) == [(key, r, 1) for r in ENVELOPE]
    assert PASSWORD not in caplog.text


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_auth_login_and_implicit_tls(
    sqlite_store: Store, tmp_path: Path, tls_certs: TlsFiles, secret: Path
) -> None:
    fill(sqlite_store, "s")
    with smtp_server(tls_certs, implicit=True, mechanisms_excluded=["PLAIN"]) as server:
        email = email_yaml(server.port, tls_certs, secret, mode="implicit")
        config = configure(sqlite_store, tmp_path, email)
        assert send("-c", str(config), "--scan", "s1") == ExitCode.OK
    (got,) = server.handler.received
    assert server.handler.logins == ["LOGIN"]
    expected = build_report(sqlite_store, TolerancePolicy(), scan="s1", title="x")
    assert parts(got.message)[2] == render_csv(expected).encode("utf-8")
    assert "scan s1" in str(got.message["Subject"])


def test_sent_once_then_not_again_and_force_sends_again(
    any_store: Store,
    tmp_path: Path,
    tls_certs: TlsFiles,
    secret: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fill(any_store, "s")
    end_scan_s3(any_store)
    with smtp_server(tls_certs) as server:
        config = configure(any_store, tmp_path, email_yaml(server.port, tls_certs, secret))
        argv = ("-c", str(config), "--since", SINCE.isoformat())
        assert send(*argv) == ExitCode.OK
        capsys.readouterr()
        assert send(*argv) == ExitCode.OK  # the timer runs again
        assert "already sent" in capsys.readouterr().err
        assert len(server.handler.received) == 1
        assert send(*argv, "--force") == ExitCode.OK
        assert len(server.handler.received) == 2
    assert [sends for _, _, sends in deliveries(any_store)] == [2, 2]
    first, second = server.handler.received
    assert first.message["Message-ID"] != second.message["Message-ID"]


def test_a_wrong_password_fails_at_once_and_records_nothing(
    sqlite_store: Store,
    tmp_path: Path,
    tls_certs: TlsFiles,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fill(sqlite_store, "s")
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n", encoding="utf-8")
    caplog.set_level(logging.DEBUG, logger="reconciler")
    with smtp_server(tls_certs) as server:
        email = email_yaml(server.port, tls_certs, wrong, retry_total=30)
        config = configure(sqlite_store, tmp_path, email)
        assert send("-c", str(config), "--now", "--since", SINCE.isoformat()) == ExitCode.FAILED
    err = capsys.readouterr().err
    assert f"refused the login as '{USER}': 535" in err
    assert "attempt" not in caplog.text  # not retried
    assert server.handler.received == []
    assert deliveries(sqlite_store) == []
    assert "not-the-password" not in err + caplog.text


def test_a_permanent_refusal_fails_at_once_with_the_server_answer(
    sqlite_store: Store, tmp_path: Path, tls_certs: TlsFiles, secret: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    fill(sqlite_store, "s")
    handler = Handler(answers=["554 5.7.1 message refused by policy"])
    with smtp_server(tls_certs, handler=handler) as server:
        config = configure(sqlite_store, tmp_path, email_yaml(server.port, tls_certs, secret))
        assert send("-c", str(config), "--now", "--scan", "s1") == ExitCode.FAILED
    assert "answered 554 5.7.1 message refused by policy" in capsys.readouterr().err
    assert server.handler.received == []
    assert deliveries(sqlite_store) == []


def test_a_temporary_refusal_is_retried_and_delivered_once(
    sqlite_store: Store, tmp_path: Path, tls_certs: TlsFiles, secret: Path
) -> None:
    fill(sqlite_store, "s")
    handler = Handler(answers=["451 4.3.0 try again later", "421 4.7.0 busy"])
    with smtp_server(tls_certs, handler=handler) as server:
        config = configure(sqlite_store, tmp_path, email_yaml(server.port, tls_certs, secret))
        assert send("-c", str(config), "--now", "--scan", "s1") == ExitCode.OK
    assert len(server.handler.received) == 1
    assert [r for _, r, _ in deliveries(sqlite_store)] == ENVELOPE


def test_a_refused_recipient_is_named_and_tried_alone_next_time(
    sqlite_store: Store, tmp_path: Path, tls_certs: TlsFiles, secret: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    fill(sqlite_store, "s")
    handler = Handler(refuse={"ops@example.com"})
    with smtp_server(tls_certs, handler=handler) as server:
        config = configure(sqlite_store, tmp_path, email_yaml(server.port, tls_certs, secret))
        argv = ("-c", str(config), "--now", "--scan", "s1")
        assert send(*argv) == ExitCode.FAILED
        assert "ops@example.com: 550 5.1.1 no such mailbox" in capsys.readouterr().err
        assert [r.rcpt_tos for r in server.handler.received] == [["kim@example.com"]]
        assert [r for _, r, _ in deliveries(sqlite_store)] == ["kim@example.com"]
        handler.refuse.clear()  # the mailbox exists now
        assert send(*argv) == ExitCode.OK
    assert [r.rcpt_tos for r in server.handler.received] == [
        ["kim@example.com"],
        ["ops@example.com"],
    ]
    assert [sends for _, _, sends in deliveries(sqlite_store)] == [1, 1]


async def test_a_server_down_at_first_is_retried_until_it_is_up(
    sqlite_store: Store,
    tmp_path: Path,
    tls_certs: TlsFiles,
    secret: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fill(sqlite_store, "s")
    caplog.set_level(logging.INFO, logger="reconciler")
    port = free_port()  # nothing listens there yet
    config = configure(sqlite_store, tmp_path, email_yaml(port, tls_certs, secret))
    sending = asyncio.ensure_future(
        asyncio.to_thread(send, "-c", str(config), "--now", "--scan", "s1")
    )
    await eventually(lambda: "attempt 2 failed" in caplog.text, what="two failed attempts")
    assert "cannot reach 127.0.0.1" in caplog.text
    assert deliveries(sqlite_store) == []
    with smtp_server(tls_certs, port=port) as server:
        assert await asyncio.wait_for(sending, 10) == ExitCode.OK
    assert len(server.handler.received) == 1
    assert len(deliveries(sqlite_store)) == 2


def test_a_server_that_stays_down_fails_after_the_retry_time(
    sqlite_store: Store,
    tmp_path: Path,
    tls_certs: TlsFiles,
    secret: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fill(sqlite_store, "s")
    email = email_yaml(free_port(), tls_certs, secret, retry_total=0.3)
    config = configure(sqlite_store, tmp_path, email)
    assert send("-c", str(config), "--now", "--scan", "s1") == ExitCode.UNDELIVERED
    err = capsys.readouterr().err
    assert "gave up after" in err
    assert "cannot reach 127.0.0.1" in err
    assert deliveries(sqlite_store) == []


def test_an_untrusted_certificate_is_refused(
    sqlite_store: Store, tmp_path: Path, tls_certs: TlsFiles, secret: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    fill(sqlite_store, "s")
    other_ca = tls_certs.server_cert  # not a CA of the server's chain
    with smtp_server(tls_certs) as server:
        email = email_yaml(server.port, tls_certs, secret).replace(
            f"ca_file: {tls_certs.ca}", f"ca_file: {other_ca}"
        )
        config = configure(sqlite_store, tmp_path, email)
        assert send("-c", str(config), "--now", "--scan", "s1") == ExitCode.FAILED
    assert "is not trusted" in capsys.readouterr().err
    assert server.handler.received == []


# -- settling ------------------------------------------------------------------------------------


async def test_it_waits_for_the_running_scan_then_the_settle_time(
    sqlite_store: Store,
    tmp_path: Path,
    tls_certs: TlsFiles,
    secret: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fill(sqlite_store, "s")  # scan s3 is still running
    caplog.set_level(logging.INFO, logger="reconciler")
    with smtp_server(tls_certs) as server:
        email = email_yaml(server.port, tls_certs, secret, settle=0.5)
        config = configure(sqlite_store, tmp_path, email)
        sending = asyncio.ensure_future(
            asyncio.to_thread(send, "-c", str(config), "--since", SINCE.isoformat())
        )
        await eventually(lambda: "waiting for 1 running scans (s3)" in caplog.text)
        assert server.handler.received == []  # it cannot send while s3 runs
        ended = end_scan_s3(sqlite_store)
        assert await asyncio.wait_for(sending, 10) == ExitCode.OK
    (got,) = server.handler.received
    assert got.at >= ended + timedelta(seconds=0.5)
    assert "waiting 0 s" in caplog.text or "to settle" in caplog.text
    assert "still running" not in str(got.message.get_body(("html",)))


def test_scans_that_do_not_settle_in_time_are_named_in_the_report(
    sqlite_store: Store, tmp_path: Path, tls_certs: TlsFiles, secret: Path
) -> None:
    fill(sqlite_store, "s")  # s3 never ends
    with smtp_server(tls_certs) as server:
        extra = "  settle_timeout_seconds: 0.1\n"
        config = configure(sqlite_store, tmp_path, email_yaml(server.port, tls_certs, secret,
                                                              extra=extra))  # fmt: skip
        assert send("-c", str(config), "--since", SINCE.isoformat()) == ExitCode.OK
    (got,) = server.handler.received
    assert "(still running: s3)" in parts(got.message)[1]


# -- dry run, nights, the command line ------------------------------------------------------------


def test_dry_run_prints_the_message_and_sends_nothing(
    sqlite_store: Store, tmp_path: Path, tls_certs: TlsFiles, secret: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    fill(sqlite_store, "s")  # s3 running: a dry run does not wait
    port = free_port()  # no server: nothing may connect
    config = configure(sqlite_store, tmp_path, email_yaml(port, tls_certs, secret))
    assert edgecount_main(["report", "send", "-c", str(config), "--dry-run", "--scan", "s1"]) == 0
    out, err = capsys.readouterr()
    message = BytesParser(policy=policy.default).parsebytes(out.encode("utf-8"))
    assert isinstance(message, EmailMessage)
    assert "scan s1" in str(message["Subject"])
    assert len(list(message.iter_attachments())) == 1
    assert "dry run: not sent" in err
    assert deliveries(sqlite_store) == []


def test_a_night_runs_from_night_start_in_its_time_zone() -> None:
    config = EmailConfig.model_validate(
        {
            "host": "mail",
            "from": "a@example.com",
            "to": ["b@example.com"],
            "timezone": "Europe/Berlin",
            "night_start": "18:00",
        }
    )
    period = night_period(config, date(2026, 1, 5))
    assert period.key == "night:2026-01-05"
    assert period.since == datetime(2026, 1, 5, 17, 0, tzinfo=UTC)  # 18:00 CET
    morning = datetime(2026, 1, 6, 6, 30, tzinfo=UTC)
    assert default_night(config, morning) == date(2026, 1, 5)
    evening = datetime(2026, 1, 6, 17, 30, tzinfo=UTC)  # 18:30 in Berlin: the next night
    assert default_night(config, evening) == date(2026, 1, 6)


def test_the_default_night_is_the_one_just_ended_in_the_morning(
    sqlite_store: Store, tmp_path: Path, tls_certs: TlsFiles, secret: Path
) -> None:
    fill(sqlite_store, "s")
    with smtp_server(tls_certs) as server:
        config = configure(sqlite_store, tmp_path, email_yaml(server.port, tls_certs, secret))
        assert send("-c", str(config)) == ExitCode.OK
    email = load_reconciler_config(config).email
    assert email is not None
    night = default_night(email, datetime.now(UTC))
    (got,) = server.handler.received
    assert f"night of {night.isoformat()}" in str(got.message["Subject"])
    assert set(delivered(sqlite_store, f"night:{night.isoformat()}")) == set(ENVELOPE)


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "key", "why"),
    [
        ("  tls: none\n", "email", "password would go in clear"),
        ("  subject: '{site} {nigth}'\n", "email.subject", "unknown field {nigth}"),
        ("  timezone: Mars/Olympus\n", "email.timezone", "not an IANA time zone"),
        ("  smtp_host: x\n", "email.smtp_host", "unknown key"),
        ("  to: [nobody]\n", "email.to", "is not one e-mail address"),
    ],
)
def test_bad_email_settings_name_the_file_line_and_key(
    tmp_path: Path, lines: str, key: str, why: str
) -> None:
    path = tmp_path / "reconciler.yaml"
    base = (
        "site: s\nemail:\n  host: mail.example.com\n  from: edgecount@example.com\n"
        "  username: u\n  password_file: pw\n"
    )
    to = "" if "to:" in lines else "  to: [kim@example.com]\n"
    path.write_text(base + to + lines, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_reconciler_config(path)
    text = str(caught.value)
    assert f"{path}:" in text
    assert f"{key}:" in text
    assert why in text


def test_a_config_without_email_is_a_usage_error(
    sqlite_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = configure(sqlite_store, tmp_path, "")
    assert send("-c", str(config)) == ExitCode.USAGE
    assert "no `email:` section" in capsys.readouterr().err
