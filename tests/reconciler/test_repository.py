"""The repository: the only writer of what the reconciler decides, inside the caller's transaction.

On SQLite and PostgreSQL. The engine's behaviour through the repository is what the other
reconciler tests pin; these pin the repository's own promises: a step and its audit entries
are written in the caller's transaction (gone with its rollback), a person's decision is
conditional on the state (of two racing deciders one wins), and no other module writes the
repository's tables.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from edgecount import contract
from reconciler import repository
from reconciler import schema as t
from reconciler.queries import discrepancies as read
from reconciler.store import Store
from reconciler.transitions import Action, State, Step

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
COUNT = contract.CountMessage(
    msg_id="gw-1:7",
    seq=7,
    historical=False,
    gateway="gw-1",
    site="s",
    zone="Z1",
    location="A-01",
    scan_id="scan-1",
    observed_at="2025-03-04T05:00:00Z",
    source=contract.CountSource.RFID,
    complete=True,
    items=(contract.CountItem(sku="S1", qty=3),),
    total=3,
)
LINES = (
    contract.DecisionLine(
        sku="S1",
        book_qty=5,
        counted_qty=3,
        diff=-2,
        diff_value=-4.0,
        status=contract.LineStatus.SHORT,
    ),
)
STORED_LINES = [
    {
        "sku": "S1",
        "book_qty": 5,
        "counted_qty": 3,
        "diff": -2,
        "diff_value": -4.0,
        "status": "short",
    }
]
OPEN_AWAITING = Step(Action.OPEN, State.AWAITING_APPROVAL, 0)

REPOSITORY_TABLES = {
    "discrepancies",
    "recounts",
    "approvals",
    "adjustments",
    "decisions",
    "accepted_variances",
    "audit",
}


@pytest.fixture
def store(any_store: Store) -> Store:
    """SQLite and PostgreSQL (see conftest.py)."""
    return any_store


def _rows(store: Store, table: sa.Table) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(table)))


def _open(conn: sa.Connection) -> int:
    opened = repository.write_step(
        conn, None, COUNT, LINES, OPEN_AWAITING, site="s", actor="reconciler", now=NOW
    )
    assert opened is not None
    return opened


def test_a_step_and_its_audit_roll_back_with_the_callers_transaction(store: Store) -> None:
    with store.engine.connect() as conn:
        transaction = conn.begin()
        opened = _open(conn)
        found = read.by_id(conn, opened)
        assert found is not None
        assert (found.state, found.location, found.lines) == (
            State.AWAITING_APPROVAL,
            "A-01",
            LINES,
        )
        assert found.observed_at == datetime(2025, 3, 4, 5, 0, tzinfo=UTC)
        transaction.rollback()
    assert _rows(store, t.discrepancies) == []
    assert _rows(store, t.audit) == []


def test_a_committed_step_is_audited(store: Store) -> None:
    with store.engine.begin() as conn:
        opened = _open(conn)
    (entry,) = _rows(store, t.audit)
    assert (entry.actor, entry.action, entry.subject) == ("reconciler", "discrepancy.open", "A-01")
    assert entry.detail == {"id": opened, "lines": STORED_LINES}
    (row,) = _rows(store, t.discrepancies)
    assert row.lines == STORED_LINES


def test_of_two_deciders_only_the_first_changes_the_discrepancy(store: Store) -> None:
    with store.engine.begin() as conn:
        stale = read.by_id(conn, _open(conn))
    assert stale is not None
    for expected in (True, False):
        with store.engine.begin() as conn:
            changed = repository.decide(
                conn, stale, decision=State.APPROVED, reason_code="MISCOUNT",
                approver="ann", note="", now=NOW,
            )  # fmt: skip
        assert changed is expected
    assert [row.decision for row in _rows(store, t.approvals)] == ["approved"]
    (decided,) = _rows(store, t.discrepancies)
    assert (decided.state, decided.announced) == ("approved", False)


def _writes(path: Path) -> list[str]:
    """``table.verb`` of each insert/update/delete on a repository table in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        # t.<table>.insert() / .update() / .delete()
        if (
            isinstance(func, ast.Attribute)
            and func.attr in {"insert", "update", "delete"}
            and isinstance(func.value, ast.Attribute)
            and func.value.attr in REPOSITORY_TABLES
        ):
            found.append(f"{func.value.attr}.{func.attr}")
        # insert(t.<table>) and friends (sa.insert, dialect inserts)
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name.endswith(("insert", "update", "delete")) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Attribute) and first.attr in REPOSITORY_TABLES:
                found.append(f"{first.attr}.{name}")
    return found


def test_no_other_module_writes_the_repository_tables() -> None:
    package = Path(repository.__file__).parent
    assert _writes(Path(repository.__file__)), "the scan finds the repository's own writes"
    others = {
        str(path.relative_to(package)): writes
        for path in sorted(package.rglob("*.py"))
        if "migrations" not in path.parts and path.name != "repository.py"
        if (writes := _writes(path))
    }
    assert others == {}
