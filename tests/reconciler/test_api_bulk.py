"""``POST /discrepancies/approve``: many approvals, each on its own, on the test client (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from edgecount import contract
from reconciler import schema as t
from reconciler.api import BULK_LIMIT, create_app
from reconciler.auth.dependencies import Auth
from reconciler.auth.roles import Role, Scope
from reconciler.config import ApiConfig, ApprovalLimits
from reconciler.engine import Engine
from reconciler.model import AbcClass, BookLine
from reconciler.rules import TolerancePolicy
from reconciler.store import Store, open_store
from tests.reconciler.apiclient import PASSWORD, add_user, bearer
from tests.reconciler.test_api import approvals, error_locs

SKU = "80614141123458"
SNAPSHOT = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
URL = "/discrepancies/approve"
LIMIT = 100.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
    yield opened
    opened.close()


def flag(store: Store, costs: list[float]) -> tuple[Engine, list[int]]:
    """One discrepancy per cost, each 4 short of 10 (worth 4 x cost), awaiting approval."""
    store.replace_book(
        [BookLine(f"A-{n:02d}", SKU, 10, cost, AbcClass.A) for n, cost in enumerate(costs)],
        source="test",
        at=SNAPSHOT,
    )
    engine = Engine(store, "s", TolerancePolicy(), max_recounts=0)
    for n in range(len(costs)):
        draft = contract.count_payload(
            gateway="gw-1", site="s", zone="A", location=f"A-{n:02d}", scan_id="s1",
            items=[{"sku": SKU, "qty": 6}], observed_at=SNAPSHOT + timedelta(hours=4),
        )  # fmt: skip
        engine.on_count(contract.CountMessage.from_payload(contract.with_sequence(draft, n + 1)))
    ids = sorted(int(item["id"]) for item in engine.list_discrepancies())
    assert len(ids) == len(costs)
    return engine, ids


def client_of(engine: Engine) -> TestClient:
    auth = Auth(engine.store.engine, ApiConfig(approval_limits=ApprovalLimits(approver=LIMIT)))
    return TestClient(create_app(engine, auth=auth))


def adjustments(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        query = sa.select(t.adjustments.c.discrepancy_id).order_by(t.adjustments.c.id)
        return list(conn.execute(query).scalars())


def test_each_id_gets_its_own_result_in_the_order_asked(store: Store) -> None:
    engine, (small, done, large, other) = flag(store, [2.0, 3.0, 40.0, 5.0])  # 8, 12, 160, 20
    client = client_of(engine)
    ann = bearer(store, "ann", Role.APPROVER)
    first = client.post(f"/discrepancies/{done}/approve", json={"reason_code": "X"}, headers=ann)
    assert first.status_code == 200
    body = {"ids": [small, done, large, 999, other], "reason_code": "MISCOUNT", "note": "n"}
    answer = client.post(URL, json=body, headers=ann)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [(r["id"], r["result"]) for r in results] == [
        (small, "approved"),
        (done, "conflict"),
        (large, "forbidden"),
        (999, "not_found"),
        (other, "approved"),
    ]
    assert "above the approval limit of 100.00" in results[2]["detail"]
    assert results[1]["detail"] == f"discrepancy {done} is approved, not awaiting_approval"
    assert approvals(store) == [
        (done, "approved", "X", "ann", ""),
        (small, "approved", "MISCOUNT", "ann", "n"),
        (other, "approved", "MISCOUNT", "ann", "n"),
    ]
    assert adjustments(store) == [done, small, other]  # one per line, once each
    again = client.post(URL, json=body, headers=ann).json()["results"]
    assert [r["result"] for r in again] == ["conflict", "conflict", "forbidden", "not_found",
                                           "conflict"]  # fmt: skip
    assert adjustments(store) == [done, small, other]  # nothing applied twice
    admin = client.post(URL, json={"ids": [large], "reason_code": "THEFT"}, headers=bearer(store))
    assert admin.json()["results"] == [{"id": large, "result": "approved", "detail": ""}]
    decided = client.get("/decisions", headers=bearer(store)).json()["items"]
    assert [(d["payload"]["by"], d["payload"]["reason"]) for d in decided][-1] == ("kim", "THEFT")


def test_ids_are_one_to_500_distinct_whole_numbers(store: Store) -> None:
    engine, (ident,) = flag(store, [2.0])
    client = client_of(engine)
    admin = bearer(store)
    too_many = {"ids": list(range(1, BULK_LIMIT + 2)), "reason_code": "X"}
    assert error_locs(client.post(URL, json=too_many, headers=admin)) == [["body", "ids"]]
    for ids in ([], [ident, ident], ["one"], None):
        answer = client.post(URL, json={"ids": ids, "reason_code": "X"}, headers=admin)
        assert error_locs(answer)[0][:2] == ["body", "ids"], ids
    no_reason = client.post(URL, json={"ids": [ident]}, headers=admin)
    assert error_locs(no_reason) == [["body", "reason_code"]]
    named = client.post(
        URL, json={"ids": [ident], "reason_code": "X", "approver": "x"}, headers=admin
    )
    assert named.status_code == 422
    assert approvals(store) == []
    just_500 = {"ids": list(range(10_000, 10_000 + BULK_LIMIT)), "reason_code": "X"}
    answer = client.post(URL, json=just_500, headers=admin)
    assert answer.status_code == 200
    assert {r["result"] for r in answer.json()["results"]} == {"not_found"}


def test_only_the_decide_scope_may_and_never_anonymously(store: Store) -> None:
    engine, (ident,) = flag(store, [2.0])
    client = client_of(engine)
    body = {"ids": [ident], "reason_code": "X"}
    assert client.post(URL, json=body).status_code == 401
    for who in (
        bearer(store, "vic", Role.VIEWER),
        bearer(store, "cole", Role.COUNTER),
        bearer(store, "reader", Role.ADMIN, frozenset({Scope.READ})),
    ):
        answer = client.post(URL, json=body, headers=who)
        assert answer.status_code == 403, answer.text
    assert approvals(store) == []


def test_a_session_must_send_its_csrf_token(store: Store) -> None:
    engine, (ident,) = flag(store, [2.0])
    client = client_of(engine)
    add_user(store, "ann", Role.APPROVER)
    signed = client.post("/signin", json={"username": "ann", "password": PASSWORD})
    assert signed.status_code == 200
    body = {"ids": [ident], "reason_code": "X"}
    refused = client.post(URL, json=body)
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert client.post(URL, json=body, headers={"X-CSRF-Token": "guess"}).status_code == 403
    assert approvals(store) == []
    done = client.post(URL, json=body, headers={"X-CSRF-Token": signed.json()["csrf_token"]})
    assert done.json()["results"] == [{"id": ident, "result": "approved", "detail": ""}]
    assert approvals(store) == [(ident, "approved", "X", "ann", "")]
