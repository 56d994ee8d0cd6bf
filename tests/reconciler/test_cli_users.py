"""``edgecount users …``: users and API tokens from the command line, and a user's mistakes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from edgecount.cli import main
from reconciler import schema as t
from reconciler.auth.roles import Role
from reconciler.auth.users import UserStore
from reconciler.store import open_store

GOOD = "correct horse battery staple"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "reconciler.yaml"
    path.write_text("site: s\nstate_dir: state\n")
    return path


def password_file(tmp_path: Path, text: str, name: str = "pw") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def users(config: Path) -> UserStore:
    store = open_store(f"sqlite:///{config.parent / 'state' / 'reconciler.sqlite3'}")
    return UserStore(store.engine)


def edgecount(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_add_list_passwd_remove(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pw = str(password_file(tmp_path, GOOD + "\n"))
    c = str(config)
    assert edgecount(capsys, "users", "list", "-c", c) == (
        0,
        "no users (add the first admin: edgecount users add NAME --role admin ...)\n",
        "",
    )
    assert edgecount(
        capsys, "users", "add", "-c", c, "ann", "--role", "admin", "--password-file", pw
    )[:2] == (0, "user ann added (admin)\n")
    assert (
        edgecount(capsys, "users", "add", "-c", c, "bo", "--role", "Viewer", "--password-file", pw)[
            0
        ]
        == 0
    )
    status, out, _ = edgecount(capsys, "users", "list", "-c", c)
    assert status == 0
    assert [line.split("\t")[:2] for line in out.splitlines()] == [
        ["ann", "admin"],
        ["bo", "viewer"],
    ]
    store = users(config)
    assert store.authenticate("ann", GOOD) is Role.ADMIN  # the trailing newline is not in it
    new = str(password_file(tmp_path, "another long passphrase", "new"))
    assert edgecount(capsys, "users", "passwd", "-c", c, "ann", "--password-file", new)[0] == 0
    assert store.authenticate("ann", GOOD) is None
    assert store.authenticate("ann", "another long passphrase") is Role.ADMIN
    assert edgecount(capsys, "users", "remove", "-c", c, "bo")[:2] == (
        0,
        "user bo removed, with their tokens and sessions\n",
    )
    assert [u.name for u in store.users()] == ["ann"]
    with store.engine.connect() as conn:
        actions = conn.execute(sa.select(t.audit.c.action, t.audit.c.subject)).all()
    assert [tuple(a) for a in actions] == [
        ("user.add", "ann"),
        ("user.add", "bo"),
        ("user.password", "ann"),
        ("user.remove", "bo"),
    ]
    store.engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "zed", "--role", "admin", "--password-file", "{weak}"], "at least 12 are needed"),
        (["add", "zed", "--role", "admin", "--password-file", "{empty}"], "is empty"),
        (["add", "zed", "--role", "admin", "--password-file", "{missing}"], "cannot read"),
        (["add", "ann", "--role", "admin", "--password-file", "{good}"], "user 'ann' exists"),
        (["passwd", "zed", "--password-file", "{good}"], "no user 'zed'"),
        (["remove", "zed"], "no user 'zed'"),
        (["token", "zed", "--scope", "read"], "no user 'zed'"),
        (["token", "ann", "--scope", "read", "--expires", "0"], "expected days in 1..3650"),
        (["token", "ann", "--scope", "write"], "invalid choice: 'write'"),
        (["add", "zed", "--role", "boss", "--password-file", "{good}"], "unknown role 'boss'"),
        (["revoke", "99"], "no token 99"),
    ],
)
def test_mistakes_are_one_clear_line_and_exit_2(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    files = {
        "weak": password_file(tmp_path, "short\n", "weak"),
        "empty": password_file(tmp_path, "\n", "empty"),
        "missing": tmp_path / "nowhere",
        "good": password_file(tmp_path, GOOD, "good"),
    }
    main(
        [
            "users",
            "add",
            "-c",
            str(config),
            "ann",
            "--role",
            "approver",
            "--password-file",
            str(files["good"]),
        ]
    )
    capsys.readouterr()
    filled = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    try:
        status = main(["users", filled[0], "-c", str(config), *filled[1:]])
    except SystemExit as exc:  # argparse's own errors
        status = int(str(exc.code))
    out, err = capsys.readouterr()
    assert status == 2
    assert message in err
    assert "Traceback" not in err
    assert out == ""
    assert [u.name for u in users(config).users()] == ["ann"]


def test_token_is_printed_once_and_only_its_hash_is_kept(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c, pw = str(config), str(password_file(tmp_path, GOOD))
    main(["users", "add", "-c", c, "vic", "--role", "viewer", "--password-file", pw])
    capsys.readouterr()
    refused = edgecount(
        capsys, "users", "token", "-c", c, "vic", "--scope", "read", "--scope", "decide"
    )
    assert refused[0] == 2
    assert "user 'vic' is viewer: its role does not allow the scope decide" in refused[2]
    status, out, err = edgecount(
        capsys, "users", "token", "-c", c, "vic", "--scope", "read", "--expires", "30"
    )
    assert status == 0
    token = out.strip()
    assert token.startswith("ect_")
    assert len(token) > 40
    assert "token 1 for vic (read), expires in 30 days; it is shown only now" in err
    store = users(config)
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(t.api_tokens.c.token_hash)).scalar_one()
    assert token not in stored
    assert store.identify_token(token, datetime.now(UTC)) is not None
    status, out, _ = edgecount(capsys, "users", "tokens", "-c", c)
    assert out.startswith("1\tvic\tread\texpires ")
    assert token not in out
    assert edgecount(capsys, "users", "revoke", "-c", c, "1")[:2] == (0, "token 1 revoked\n")
    assert store.identify_token(token, datetime.now(UTC)) is None
    assert "\trevoked " in edgecount(capsys, "users", "tokens", "-c", c, "vic")[1]
    again = edgecount(capsys, "users", "revoke", "-c", c, "1")
    assert (again[0], again[2]) == (2, "error: token 1 was revoked before\n")
    store.engine.dispose()
