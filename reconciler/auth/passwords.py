"""Passwords: argon2id hashes (argon2-cffi's defaults, RFC 9106's second recommendation).

A password is only ever read from a file (as the MQTT password is), never from the command
line, where it would show in the process list and the shell history.
"""

from __future__ import annotations

from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "PasswordError",
    "check_strength",
    "hash_password",
    "read_password_file",
    "verify_password",
]

MIN_PASSWORD_LENGTH = 12
"""NIST SP 800-63B asks for at least 8; twelve keeps an offline guess of a stolen hash costly."""
MAX_PASSWORD_LENGTH = 1024
"""Longer input is refused before hashing, so a sign-in cannot be made to hash megabytes."""

_hasher = PasswordHasher()
_DUMMY = _hasher.hash("edgecount: a hash to verify against for unknown users")


class PasswordError(ValueError):
    """A password (or its file) is not acceptable; the message says why."""


def check_strength(password: str) -> None:
    """Refuse a password too short or too long.

    Raises:
        PasswordError: Shorter than :data:`MIN_PASSWORD_LENGTH` or longer than 1024.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordError(
            f"the password has {len(password)} characters; at least {MIN_PASSWORD_LENGTH}"
            " are needed"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordError(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")


def read_password_file(path: Path) -> str:
    """The password in ``path`` (one trailing newline ignored), checked by :func:`check_strength`.

    Raises:
        PasswordError: The file cannot be read, is empty, or holds a weak password.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PasswordError(f"cannot read the password file {path}: {exc}") from None
    password = text.removesuffix("\n").removesuffix("\r")
    if not password:
        raise PasswordError(f"the password file {path} is empty")
    try:
        check_strength(password)
    except PasswordError as exc:
        raise PasswordError(f"{path}: {exc}") from None
    return password


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (a PHC string with its salt and parameters)."""
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; None (an unknown user) takes as long and fails.

    Verifying against a dummy hash for unknown users keeps the answer's timing from telling
    which user names exist.
    """
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
