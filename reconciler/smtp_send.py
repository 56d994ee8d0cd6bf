"""Sending one message over SMTP with :mod:`smtplib`: TLS, login, and retries with backoff.

* :func:`send_once`: one connection: STARTTLS (required when configured) or implicit TLS with
  the certificate checked against ``ca_file`` and the host name, login, the message.
* :func:`deliver`: :func:`send_once` until every recipient was accepted, a permanent refusal,
  or ``retry.total_seconds``. What counts as temporary: the server cannot be reached or drops
  the connection, or answers 4xx (a recipient refused with 4xx is tried again alone). A 5xx
  answer (a wrong password, a refused sender or recipient) and a TLS failure are permanent:
  trying again would not help.

The password is read from its file at each run and never logged.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from edgecount.backoff import Backoff
from reconciler.email_config import EmailConfig, parse_address

log = logging.getLogger(__name__)

__all__ = ["DeliveryError", "Outcome", "deliver", "read_secret", "send_once", "tls_context"]


class DeliveryError(Exception):
    """The message did not go out; :attr:`temporary` when trying again may help."""

    def __init__(self, text: str, *, temporary: bool) -> None:
        super().__init__(text)
        self.temporary = temporary


def read_secret(path: Path) -> str:
    """The password in ``path`` without its trailing newline.

    Raises:
        DeliveryError: (permanent) the file cannot be read or is empty; names the file only.
    """
    try:
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise DeliveryError(
            f"cannot read the SMTP password file {path}: {reason}", temporary=False
        ) from None
    if not text:
        raise DeliveryError(f"the SMTP password file {path} is empty", temporary=False)
    return text


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificate and host name verification, against ``ca_file`` or the system's CAs."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _answer(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(words.split())}"


def classify(exc: Exception, config: EmailConfig) -> DeliveryError:
    """An :mod:`smtplib` or socket error as a :class:`DeliveryError` (temporary or not)."""
    where = f"{config.host}:{config.smtp_port}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return _answered(exc, where, config)
    if isinstance(exc, ssl.SSLError):
        return _tls_failed(exc, where, config)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return DeliveryError(f"{where} closed the connection: {exc}", temporary=True)
    if isinstance(exc, smtplib.SMTPException):  # STARTTLS or AUTH not offered, ...
        return DeliveryError(f"{where}: {exc}", temporary=False)
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"{where} did not answer in time", temporary=True)
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
    return DeliveryError(f"cannot reach {where}: {reason}", temporary=True)


def _answered(exc: smtplib.SMTPResponseException, where: str, config: EmailConfig) -> DeliveryError:
    """A refusal: 4xx (or -1, no valid answer) is temporary, 5xx permanent."""
    temporary = exc.smtp_code < 500
    answer = _answer(exc.smtp_code, exc.smtp_error)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        text = f"{where} refused the login as {config.username!r}: {answer}"
        return DeliveryError(text, temporary=temporary)
    return DeliveryError(f"{where} answered {answer}", temporary=temporary)


def _tls_failed(exc: ssl.SSLError, where: str, config: EmailConfig) -> DeliveryError:
    """TLS did not come up: a configuration matter, not worth retrying."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        hint = f" (ca_file: {config.ca_file})" if config.ca_file else " (set email.ca_file)"
        text = f"the certificate of {where} is not trusted: {exc.verify_message}{hint}"
        return DeliveryError(text, temporary=False)
    return DeliveryError(f"TLS with {where} failed: {exc.reason or exc}", temporary=False)


def send_once(
    config: EmailConfig, password: str | None, message: EmailMessage, recipients: Sequence[str]
) -> dict[str, tuple[int, bytes]]:
    """Connect, secure, log in and send ``message`` to ``recipients`` (envelope addresses).

    Returns:
        The recipients the server refused, with its answer (the others were accepted).

    Raises:
        smtplib.SMTPException, OSError: As :mod:`smtplib` raises them (see :func:`classify`).
    """
    port, timeout = config.smtp_port, config.timeout_seconds
    context = None if config.tls == "none" else tls_context(config.ca_file)
    smtp = (
        smtplib.SMTP_SSL(config.host, port, timeout=timeout, context=context)
        if config.tls == "implicit"
        else smtplib.SMTP(config.host, port, timeout=timeout)
    )
    with smtp:
        smtp.ehlo()
        if config.tls == "starttls":
            if not smtp.has_extn("starttls"):
                raise smtplib.SMTPNotSupportedError(
                    "the server does not offer STARTTLS (tls: starttls requires it)"
                )
            smtp.starttls(context=context)
            smtp.ehlo()
        if config.username is not None:
            _login(smtp, config.username, password or "")
        sender = parse_address(config.sender).addr_spec
        return smtp.send_message(message, from_addr=sender, to_addrs=list(recipients))


def _login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH PLAIN, else LOGIN: one attempt (``SMTP.login`` would try every mechanism the
    server offers after a refusal, each one a failed login on the server's account)."""
    offered = smtp.esmtp_features.get("auth", "").upper().split()
    smtp.user, smtp.password = username, password
    for mechanism, method in (("PLAIN", smtp.auth_plain), ("LOGIN", smtp.auth_login)):
        if mechanism in offered:
            smtp.auth(mechanism, method)
            return
    raise smtplib.SMTPNotSupportedError(
        f"the server offers no AUTH PLAIN or LOGIN after TLS (it offers: {' '.join(offered)})"
    )


@dataclass(slots=True)
class Outcome:
    """What :func:`deliver` achieved.

    Attributes:
        accepted: Recipients the server accepted.
        refused: Recipient -> the server's permanent refusal.
        error: Why some recipients were not delivered (None when all were accepted); when
            temporary, the retry time ran out.
        attempts: Connections made.
    """

    accepted: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    error: DeliveryError | None = None
    attempts: int = 0


def deliver(
    config: EmailConfig,
    password: str | None,
    message: EmailMessage,
    recipients: Sequence[str],
    on_accepted: Callable[[list[str]], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Send until every recipient is accepted, refused for good, or the retry time is out.

    Args:
        config: The ``email:`` section (server, TLS, ``retry``).
        password: The login's password (None without ``username``).
        message: The message.
        recipients: Envelope addresses.
        on_accepted: Called with the recipients of each attempt that the server accepted,
            before anything else happens (the caller records them).
        sleep: Waits between attempts.
        clock: Monotonic seconds.

    Returns:
        The :class:`Outcome`.
    """
    outcome = Outcome()
    pending = list(recipients)
    backoff = Backoff(config.retry.initial_seconds, config.retry.max_seconds)
    start = clock()
    while True:
        outcome.attempts += 1
        error: DeliveryError
        try:
            refused = send_once(config, password, message, pending)
        except smtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients
        except (smtplib.SMTPException, OSError) as exc:
            error = classify(exc, config)
            refused = None
        if refused is not None:
            accepted = [r for r in pending if r not in refused]
            if accepted:
                on_accepted(accepted)
                outcome.accepted.extend(accepted)
            for who, (code, text) in refused.items():
                if code >= 500:
                    outcome.refused[who] = _answer(code, text)
            pending = [who for who, (code, _) in refused.items() if code < 500]
            if not pending:
                if outcome.refused:
                    listed = "; ".join(f"{w}: {a}" for w, a in outcome.refused.items())
                    outcome.error = DeliveryError(f"refused {listed}", temporary=False)
                return outcome
            answers = "; ".join(f"{w}: {_answer(*refused[w])}" for w in pending)
            error = DeliveryError(f"recipients refused for now: {answers}", temporary=True)
        if not error.temporary:
            outcome.error = error
            return outcome
        delay = backoff.next_delay()
        spent = clock() - start
        if spent + delay > config.retry.total_seconds:
            outcome.error = DeliveryError(
                f"gave up after {outcome.attempts} attempts in {spent:.0f} s"
                f" (retry.total_seconds {config.retry.total_seconds:g}): {error}",
                temporary=True,
            )
            return outcome
        log.warning(
            "report mail: attempt %d failed: %s; trying again in %.1f s",
            outcome.attempts,
            error,
            delay,
        )
        sleep(delay)
