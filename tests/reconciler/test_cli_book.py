"""``edgecount book import`` / ``book movements`` and database errors, as real processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgdb import fresh_database

EDGECOUNT = str(Path(sys.executable).with_name("edgecount"))
EAN = "4006381333931"
GTIN = "04006381333931"
SKU_B = "80614141123465"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EDGECOUNT, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A reconciler config on SQLite (under tmp_path) or on a fresh PostgreSQL database."""
    path = tmp_path / "reconciler.yaml"
    text = "site: s\nstate_dir: state\n"
    if request.param == "sqlite":
        path.write_text(text)
        yield path
        return
    with fresh_database() as url:
        path.write_text(text + f"database: {url}\n")
        yield path


def test_book_import_as_an_operator_runs_it(config: Path, tmp_path: Path) -> None:
    book = tmp_path / "export.csv"
    rows = [f"Allée-{i:02d};{EAN};{i + 1};1,50;A" for i in range(4)]
    book.write_bytes(
        ("Bin;EAN;Qty on hand;Unit Cost;Class;Name\r\n" + "\r\n".join(rows)).encode("cp1252")
    )
    done = run("book", "import", "-c", str(config), str(book), "--as-of", "2026-11-20T22:00:00Z")
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.splitlines()[0]
        == f"book: 4 records imported from {book} (4 added, 0 changed, 0 removed)"
    )
    assert f"notice: {book}: columns ignored: Name" in done.stderr
    assert "net value change +15.00" in done.stdout

    smaller = tmp_path / "smaller.csv"
    smaller.write_text(
        f"location,sku,qty,unit_cost,abc\nAllée-00,{GTIN},1,1.5,A\n", encoding="utf-8-sig"
    )
    dry = run("book", "import", "-c", str(config), str(smaller), "--dry-run", "--yes")
    assert dry.returncode == 0, dry.stderr
    assert "would be imported (dry run)" in dry.stdout
    assert "(0 added, 0 changed, 3 removed)" in dry.stdout
    refused = run("book", "import", "-c", str(config), str(smaller))
    assert refused.returncode == 1
    assert "would remove 3 of the 4 current records (more than half): refused" in refused.stderr
    part = run("book", "import", "-c", str(config), str(smaller), "--locations-only")
    assert part.returncode == 0, part.stderr
    assert "(0 added, 0 changed, 0 removed)" in part.stdout

    empty = tmp_path / "empty.csv"
    empty.write_text("location,sku,qty,unit_cost,abc\n")
    refused = run("book", "import", "-c", str(config), str(empty))
    assert (refused.returncode, refused.stdout) == (1, "")
    assert "the book has no records: refused" in refused.stderr

    broken = tmp_path / "broken.csv"
    broken.write_text(
        "location,sku,qty,unit_cost,abc\n" + "".join(f"B-{i},x,lots,1,A\n" for i in range(60))
    )
    refused = run("book", "import", "-c", str(config), str(broken))
    assert refused.returncode == 1
    lines = refused.stderr.splitlines()
    assert lines[0] == f"{broken}:2: qty: not a number: 'lots'"
    assert lines[50:] == ["… and 10 more errors", "book: nothing imported (60 errors)"]
    assert "Traceback" not in refused.stderr


def test_movements_imported_twice_apply_once(config: Path, tmp_path: Path) -> None:
    log = tmp_path / "moves.csv"
    log.write_text(
        "movement_id\tts\tlocation\tsku\tqty_delta\tuser\tdoc\n"
        f"M-1\t2026-11-21T01:00:00Z\tA-01\t{EAN}\t-2\tann\tPICK-7\n"
        f"M-2\t2026-11-21T02:00:00Z\tA-01\t{SKU_B}\t3\tbo\tPUT-1\n"
    )
    first = run("book", "movements", "-c", str(config), str(log))
    assert (first.returncode, first.stdout) == (
        0,
        f"movements: 2 added, 0 already imported from {log}\n",
    )
    again = run("book", "movements", "-c", str(config), str(log))
    assert (again.returncode, again.stdout) == (
        0,
        f"movements: 0 added, 2 already imported from {log}\n",
    )
    old = tmp_path / "old.csv"
    old.write_text(f"ts,location,sku,qty_delta,user,doc\n2026-11-21T01:00:00Z,A-01,{EAN},1,a,b\n")
    refused = run("book", "movements", "-c", str(config), str(old))
    assert refused.returncode == 1
    assert f"{old}:1: header: missing column movement_id" in refused.stderr


# -- the database cannot be opened: one line, exit 2 ----------------------------------------------


WRONG_PORT = "postgresql+psycopg://kim:s3cret@127.0.0.1:1/test"
UNREACHABLE = "postgresql+psycopg://kim:***@127.0.0.1:1/test cannot be reached"


@pytest.mark.parametrize(
    ("command", "url", "says"),
    [
        (("reconcile", "list"), WRONG_PORT, UNREACHABLE),
        (
            ("reconcile", "list"),
            "postgresql+psycopg://kim:s3cret@no-such-host.invalid/test",
            "postgresql+psycopg://kim:***@no-such-host.invalid/test cannot be reached",
        ),
        (
            ("reconcile", "list"),
            "postgres://kim:s3cret@127.0.0.1/test",
            "database URL postgres://kim:***@127.0.0.1/test is not valid",
        ),
        (("reconcile", "list"), "not a url", "database URL not a url is not valid"),
        (("book", "movements"), WRONG_PORT, UNREACHABLE),
        (("book", "import"), WRONG_PORT, UNREACHABLE),
        (("reconcile", "report"), WRONG_PORT, UNREACHABLE),
        (("plan",), WRONG_PORT, UNREACHABLE),
        (("reconcile", "serve"), WRONG_PORT, UNREACHABLE),
    ],
    ids=str,
)
def test_database_errors_are_one_line_with_the_password_masked(
    tmp_path: Path, url: str, says: str, command: tuple[str, ...]
) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text(f"site: s\nstate_dir: state\ndatabase: '{url}'\n")
    log = tmp_path / "moves.csv"
    log.write_text("movement_id,ts,location,sku,qty_delta\nM-1,2026-11-21T01:00:00Z,A,x,1\n")
    book = tmp_path / "book.csv"
    book.write_text("location,sku,qty,unit_cost,abc\nA,x,1,1,A\n")
    extras: dict[tuple[str, ...], list[str]] = {
        ("book", "movements"): [str(log)],
        ("book", "import"): [str(book)],
        ("reconcile", "report"): ["--zone", "A", "--format", "csv"],
    }
    extra = extras.get(command, [])
    done = run(*command, "-c", str(config), *extra)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ")
    assert says in line
    assert "s3cret" not in line


def test_a_missing_driver_says_how_to_install_it(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text(
        "site: s\nstate_dir: state\ndatabase: postgresql+psycopg://kim@127.0.0.1/test\n"
    )
    without_psycopg = "import sys; sys.modules['psycopg'] = None; "
    without_psycopg += "from edgecount.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", without_psycopg, "reconcile", "list", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "its driver psycopg is not installed" in line
    assert "pip install 'edgecount[postgres]'" in line


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text("site: s\nstate_dir: state\n")
    book = tmp_path / "book.csv"
    book.write_text(f"location,sku,qty,unit_cost,abc\nA-01,{EAN},1,1,A\n")
    process = subprocess.Popen(
        [EDGECOUNT, "book", "import", "-c", str(config), str(book), "--dry-run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()  # like `| head` that has read all it wanted
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 141
    assert stderr == b""
