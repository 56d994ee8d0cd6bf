"""``edgecount users …``: the people and machine clients of the REST API (docs/security.md).

Passwords are read from a file (``--password-file``, one trailing newline ignored), never
from the command line. ``users token`` prints the new token once; the database keeps only its
SHA-256. Every change is written to the audit log, by ``cli:<OS user>``.

Exit status: 0 done, 2 a usage mistake (unknown user or token, bad role or scope, unreadable,
empty or weak password file, the configuration, the database).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edgecount import timefmt
from edgecount.argtypes import bounded
from edgecount.exitcodes import ExitCode
from reconciler.auth.passwords import PasswordError, read_password_file
from reconciler.auth.roles import Role, Scope, parse_role
from reconciler.auth.users import UserError, UserStore
from reconciler.cli import _config_argument, _load, make_engine, reports_database_errors

ROLES = [role.label for role in Role]
SCOPES = [scope.value for scope in Scope]


def _actor() -> str:
    """Who runs the command, for the audit log (the OS user, as ``--by`` is for decisions)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no user name in the environment or the password database
        return "cli"


def _user_commands(run: Callable[[UserStore, argparse.Namespace], int]) -> Callable[..., int]:
    """Load the config, open the store, run; a user's mistake is one line and exit 2."""

    @reports_database_errors
    def wrapper(args: argparse.Namespace) -> int:
        config = _load(args.config)
        if config is None:
            return ExitCode.USAGE
        store = make_engine(config).store
        try:
            return run(UserStore(store.engine), args)
        except (UserError, PasswordError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return ExitCode.USAGE
        finally:
            store.close()

    wrapper.__doc__ = run.__doc__
    return wrapper


def _role(text: str) -> Role:
    try:
        return parse_role(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _name(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument("name", help="user name (1-128 characters)")


def _password_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-file",
        type=Path,
        required=True,
        metavar="FILE",
        help="file holding the password (at least 12 characters; trailing newline ignored)",
    )


# -- users ---------------------------------------------------------------------------------


def add_users_add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount users add``."""
    _name(parser)
    parser.add_argument(
        "--role", required=True, type=_role, metavar="{" + ",".join(ROLES) + "}", help="the role"
    )
    _password_file(parser)


@_user_commands
def run_users_add(users: UserStore, args: argparse.Namespace) -> int:
    """Add a user with a role and a password."""
    password = read_password_file(args.password_file)
    users.add(args.name, args.role, password, actor=_actor())
    print(f"user {args.name} added ({args.role.label})")
    return ExitCode.OK


def add_users_passwd_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount users passwd``."""
    _name(parser)
    _password_file(parser)


@_user_commands
def run_users_passwd(users: UserStore, args: argparse.Namespace) -> int:
    """Set a user's password; their sessions end."""
    users.set_password(args.name, read_password_file(args.password_file), actor=_actor())
    print(f"password of {args.name} changed; their sessions ended")
    return ExitCode.OK


def add_users_list_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount users list``."""
    _config_argument(parser)


@_user_commands
def run_users_list(users: UserStore, _args: argparse.Namespace) -> int:
    """Print every user with their role."""
    found = users.users()
    for user in found:
        print(f"{user.name}\t{user.role.label}\tsince {timefmt.to_iso(user.created_at)}")
    if not found:
        print("no users (add the first admin: edgecount users add NAME --role admin ...)")
    return ExitCode.OK


def add_users_remove_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount users remove``."""
    _name(parser)


@_user_commands
def run_users_remove(users: UserStore, args: argparse.Namespace) -> int:
    """Remove a user, their tokens and their sessions."""
    users.remove(args.name, actor=_actor())
    print(f"user {args.name} removed, with their tokens and sessions")
    return ExitCode.OK


# -- tokens --------------------------------------------------------------------------------


def add_users_token_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount users token``."""
    _name(parser)
    parser.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=SCOPES,
        help="what the token may do (repeat for several): " + ", ".join(SCOPES),
    )
    parser.add_argument(
        "--expires",
        type=bounded(int, 1, 3650, "days"),
        metavar="DAYS",
        help="days until it expires (default: never; revoke it with `users revoke`)",
    )


@_user_commands
def run_users_token(users: UserStore, args: argparse.Namespace) -> int:
    """Make an API token for a user and print it once."""
    expires = None if args.expires is None else timedelta(days=args.expires)
    scopes = frozenset(Scope(s) for s in args.scope)
    token_id, token = users.create_token(args.name, scopes, expires, actor=_actor())
    print(token)
    until = "never expires" if expires is None else f"expires in {args.expires} days"
    print(
        f"token {token_id} for {args.name} ({', '.join(sorted(s.value for s in scopes))}),"
        f" {until}; it is shown only now",
        file=sys.stderr,
    )
    return ExitCode.OK


def add_users_tokens_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount users tokens``."""
    _config_argument(parser)
    parser.add_argument("name", nargs="?", help="only this user's tokens")


@_user_commands
def run_users_tokens(users: UserStore, args: argparse.Namespace) -> int:
    """List API tokens (never the tokens themselves)."""
    now = datetime.now(UTC)
    found = users.tokens(args.name)
    for token in found:
        if token.revoked_at is not None:
            state = f"revoked {timefmt.to_iso(token.revoked_at)}"
        elif token.expires_at is None:
            state = "never expires"
        elif token.expires_at <= now:
            state = f"expired {timefmt.to_iso(token.expires_at)}"
        else:
            state = f"expires {timefmt.to_iso(token.expires_at)}"
        scopes = ",".join(s.value for s in token.scopes)
        print(f"{token.id}\t{token.user}\t{scopes}\t{state}")
    if not found:
        print("no tokens")
    return ExitCode.OK


def add_users_revoke_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgecount users revoke``."""
    _config_argument(parser)
    parser.add_argument("token_id", type=int, metavar="TOKEN", help="token number (see `tokens`)")


@_user_commands
def run_users_revoke(users: UserStore, args: argparse.Namespace) -> int:
    """Revoke an API token: it stops working at once."""
    users.revoke_token(args.token_id, actor=_actor())
    print(f"token {args.token_id} revoked")
    return ExitCode.OK
