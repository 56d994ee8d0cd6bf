"""Count tasks on a real store: the engine's rules, the REST API, the blind manual count."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from edgecount import contract
from reconciler import count_tasks
from reconciler import schema as t
from reconciler.api import create_app
from reconciler.auth.passwords import hash_password
from reconciler.auth.roles import Role, Scope
from reconciler.count_tasks import Counted, TaskReason
from reconciler.engine import Engine
from reconciler.model import AbcClass, BookLine
from reconciler.rules import TolerancePolicy
from reconciler.store import Store, open_store
from tests.reconciler.apiclient import PASSWORD, bearer

SKU_A, SKU_B = "80614141123458", "04012345000030"
EAN_B = "4012345000030"  # SKU_B as an EAN-13
SNAPSHOT = datetime.now(UTC) - timedelta(days=1)
BOOK = [
    BookLine("A-01", SKU_A, 10, 2.0, AbcClass.A),
    BookLine("A-01", SKU_B, 5, 10.0, AbcClass.B),
    BookLine("A-02", SKU_A, 4, 2.0, AbcClass.A),
    BookLine("A-03", SKU_A, 7, 2.0, AbcClass.A),
]
USERS = {"ann": Role.APPROVER, "cole": Role.COUNTER, "cleo": Role.COUNTER, "vic": Role.VIEWER}
TASK_KEYS = {
    "id", "zone", "location", "discrepancy_id", "reason", "state", "assigned_to",
    "created_by", "created_at", "done_at", "count_msg_id", "note",
}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store with the book and the users."""
    opened = open_store(f"sqlite:///{tmp_path / 'rec.sqlite3'}")
    _prepare(opened)
    yield opened
    opened.close()


@pytest.fixture
def pg_or_sqlite(any_store: Store) -> Store:
    """The same on SQLite and on PostgreSQL."""
    _prepare(any_store)
    return any_store


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)  # once: argon2 is slow on purpose


def _prepare(store: Store) -> None:
    store.replace_book(BOOK, source="test", at=SNAPSHOT)
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(
            t.users.insert(),
            [
                {"name": name, "role": role.label, "password_hash": _password_hash(),
                 "created_at": now, "password_changed_at": now}
                for name, role in USERS.items()
            ],
        )  # fmt: skip


class Feed:
    """Counts of gateway ``gw-1`` (or another) into an engine, numbered."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seq = 0

    def count(
        self,
        location: str,
        items: dict[str, int],
        *,
        scan_id: str,
        complete: bool = True,
        gateway: str = "gw-1",
        fusion: dict[str, Any] | None = None,
    ) -> None:
        self.seq += 1
        draft = contract.count_payload(
            gateway=gateway,
            site="s",
            zone="A",
            location=location,
            scan_id=scan_id,
            items=[{"sku": sku, "qty": qty} for sku, qty in items.items()],
            complete=complete,
            source="fused" if fusion else "rfid",
            fusion=fusion,
        )
        message = contract.CountMessage.from_payload(contract.with_sequence(draft, self.seq))
        recorded = self.engine.store.record_counts([message], datetime.now(UTC))
        self.engine.on_counts(recorded)


def engine_of(store: Store, max_recounts: int = 0) -> Engine:
    return Engine(store, "s", TolerancePolicy(), max_recounts=max_recounts)


def session(app: Any, user: str) -> TestClient:
    """A client signed in as ``user`` by session cookie, sending the CSRF header."""
    client = TestClient(app)
    answer = client.post("/signin", json={"username": user, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    return client


def flagged(engine: Engine, location: str = "A-01") -> int:
    """A discrepancy awaiting approval at ``location`` (SKU_A counted 6 of 10)."""
    Feed(engine).count(location, {SKU_A: 6, SKU_B: 5}, scan_id="night-1")
    (item,) = [d for d in engine.list_discrepancies() if d["location"] == location]
    assert item["state"] == "awaiting_approval"
    return int(item["id"])


def outbox_rows(store: Store) -> list[tuple[str, Any]]:
    query = sa.select(t.console_outbox.c.topic, t.console_outbox.c.payload)
    with store.engine.connect() as conn:
        return [(row.topic, row.payload) for row in conn.execute(query.order_by("id"))]


def counts_of(store: Store, location: str) -> list[Any]:
    query = sa.select(t.counts).where(t.counts.c.location == location)
    with store.engine.connect() as conn:
        return list(conn.execute(query.order_by(t.counts.c.observed_at)))


def error_locs(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


# -- the blind count, end to end ---------------------------------------------------------------


def test_a_count_equal_to_the_book_resolves_the_discrepancy(pg_or_sqlite: Store) -> None:
    store = pg_or_sqlite
    engine = engine_of(store)
    ident = flagged(engine)
    app = create_app(engine)
    ann, cole = session(app, "ann"), session(app, "cole")
    made = ann.post("/tasks", json={"zone": "A", "location": "A-01", "assigned_to": "cole"})
    assert made.status_code == 201, made.text
    task = made.json()
    assert set(task) == TASK_KEYS
    assert (task["reason"], task["state"], task["discrepancy_id"], task["created_by"]) == (
        "requested",
        "open",
        ident,
        "ann",
    )
    done = cole.post(
        f"/tasks/{task['id']}/count",
        json={"items": [{"sku": SKU_A, "qty": 10}, {"sku": EAN_B, "qty": 5}]},
    )
    assert done.status_code == 200, done.text
    assert set(done.json()) == TASK_KEYS  # blind: no book figure in the answer
    assert done.json()["state"] == "done"
    assert done.json()["count_msg_id"] == f"console:{task['id']}"
    assert done.json()["done_at"] is not None
    assert engine.discrepancy(ident)["state"] == "resolved"  # type: ignore[index]
    manual = counts_of(store, "A-01")[-1]
    assert (manual.gateway, manual.source, manual.scan_id, manual.complete) == (
        "console",
        "manual",
        f"manual-{task['id']}",
        True,
    )
    assert sorted((i["sku"], i["qty"]) for i in manual.items) == [(SKU_B, 5), (SKU_A, 10)]
    # a person is not a gateway: the location stays covered by the gateway that scans it
    assert store.gateway_for("A", "A-01") == "gw-1"
    # the retained discrepancy message is cleared through the console's outbox
    assert outbox_rows(store) == [("edgecount/v1/s/discrepancy/A/A-01", None)]
    listed = cole.get("/tasks", params={"state": "done"}).json()
    assert [item["id"] for item in listed] == [task["id"]]


def test_a_count_that_differs_keeps_the_discrepancy_with_the_manual_count(store: Store) -> None:
    engine = engine_of(store)
    ident = flagged(engine)
    app = create_app(engine)
    task = session(app, "ann").post("/tasks", json={"location": "A-01"}).json()
    assert task["zone"] == "A"  # where the gateway counted it
    body = {"items": [{"sku": SKU_A, "qty": 6}, {"sku": SKU_B, "qty": 5}], "note": "behind pallet"}
    done = session(app, "cleo").post(f"/tasks/{task['id']}/count", json=body)
    assert done.status_code == 200, done.text
    assert done.json()["assigned_to"] == "cleo"  # who counted the unassigned task
    assert done.json()["note"] == "cleo: behind pallet"
    after = engine.discrepancy(ident)
    assert after is not None
    assert after["state"] == "awaiting_approval"
    assert after["count_msg_id"] == f"console:{task['id']}"  # the manual count is the latest
    assert after["scan_id"] == f"manual-{task['id']}"


def test_a_second_submit_is_refused_and_applies_nothing(store: Store) -> None:
    engine = engine_of(store)
    flagged(engine)
    app = create_app(engine)
    task = session(app, "ann").post("/tasks", json={"location": "A-01"}).json()
    cole = session(app, "cole")
    body = {"items": [{"sku": SKU_A, "qty": 6}, {"sku": SKU_B, "qty": 5}]}
    assert cole.post(f"/tasks/{task['id']}/count", json=body).status_code == 200
    before = (len(counts_of(store, "A-01")), outbox_rows(store), engine.list_discrepancies())
    again = cole.post(f"/tasks/{task['id']}/count", json={"items": [{"sku": SKU_A, "qty": 10}]})
    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"count task {task['id']} is done (count console:{task['id']}), not open"
    )
    assert (
        len(counts_of(store, "A-01")),
        outbox_rows(store),
        engine.list_discrepancies(),
    ) == before


def test_a_submit_cut_off_after_storing_its_count_is_finished_once_by_the_retry(
    store: Store,
) -> None:
    engine = engine_of(store)
    ident = flagged(engine)
    task = count_tasks.create(store, location="A-01", by="ann")
    # the first attempt stored the count and died before the engine reacted
    stored = count_tasks.manual_count(
        task, "s", [Counted(SKU_A, 10), Counted(SKU_B, 5)], datetime.now(UTC)
    )
    assert store.record_counts([stored], datetime.now(UTC)) == [stored]
    # the retry (whatever it carries) lets the engine react to the count stored, once
    retry = session(create_app(engine), "cole").post(
        f"/tasks/{task.id}/count", json={"items": [{"sku": SKU_A, "qty": 3}]}
    )
    assert retry.status_code == 200, retry.text
    assert engine.discrepancy(ident)["state"] == "resolved"  # type: ignore[index]
    assert [row.msg_id for row in counts_of(store, "A-01")] == ["gw-1:1", f"console:{task.id}"]
    assert len(outbox_rows(store)) == 1


def test_lines_of_one_sku_are_added_up_after_gtin_normalisation(store: Store) -> None:
    engine = engine_of(store)
    task = count_tasks.create(store, location="A-01", zone="A", by="ann")
    body = {
        "items": [
            {"sku": SKU_A, "qty": 4},
            {"sku": EAN_B, "qty": 2},
            {"sku": f" {SKU_A} ", "qty": 6},
            {"sku": SKU_B, "qty": 3},
        ]
    }
    done = session(create_app(engine), "cole").post(f"/tasks/{task.id}/count", json=body)
    assert done.status_code == 200, done.text
    (manual,) = counts_of(store, "A-01")
    assert sorted((i["sku"], i["qty"]) for i in manual.items) == [(SKU_B, 5), (SKU_A, 10)]
    assert engine.list_discrepancies() == []  # 10 and 5: the book


def test_an_empty_location_is_a_count_without_lines(store: Store) -> None:
    engine = engine_of(store)
    task = count_tasks.create(store, location="A-02", zone="A", by="ann")
    done = session(create_app(engine), "cole").post(f"/tasks/{task.id}/count", json={"items": []})
    assert done.status_code == 200, done.text
    (item,) = engine.list_discrepancies()
    assert (item["location"], [(ln["sku"], ln["counted_qty"]) for ln in item["lines"]]) == (
        "A-02",
        [(SKU_A, 0)],
    )


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"sku": "", "qty": 1}, "sku"),
        ({"sku": "   ", "qty": 1}, "sku"),
        ({"sku": "x" * 65, "qty": 1}, "sku"),
        ({"sku": "AB\x07C", "qty": 1}, "sku"),
        ({"sku": "4012345000031", "qty": 1}, "sku"),  # wrong check digit
        ({"sku": SKU_A, "qty": -1}, "qty"),
        ({"sku": SKU_A, "qty": 1_000_001}, "qty"),
        ({"sku": SKU_A, "qty": 1.5}, "qty"),
        ({"sku": SKU_A, "qty": "3"}, "qty"),
        ({"sku": SKU_A, "qty": True}, "qty"),
        ({"sku": SKU_A}, "qty"),
        ({"sku": SKU_A, "qty": 1, "book_qty": 4}, "book_qty"),
    ],
)
def test_a_bad_line_is_named_by_its_index(store: Store, line: dict[str, Any], field: str) -> None:
    engine = engine_of(store)
    task = count_tasks.create(store, location="A-01", zone="A", by="ann")
    cole = session(create_app(engine), "cole")
    body = {"items": [{"sku": SKU_A, "qty": 10}, {"sku": SKU_B, "qty": 5}, line]}
    answer = cole.post(f"/tasks/{task.id}/count", json=body)
    assert error_locs(answer) == [["body", "items", 2, field]]
    assert count_tasks.get(store, task.id).state is count_tasks.TaskState.OPEN
    assert counts_of(store, "A-01") == []


def test_a_wrong_check_digit_says_which_digit(store: Store) -> None:
    engine = engine_of(store)
    task = count_tasks.create(store, location="A-01", zone="A", by="ann")
    body = {"items": [{"sku": "4012345000031", "qty": 1}]}
    answer = session(create_app(engine), "cole").post(f"/tasks/{task.id}/count", json=body)
    assert answer.status_code == 422
    assert "GTIN 4012345000031 has check digit 1, expected 0" in answer.json()["detail"][0]["msg"]


def test_at_most_200_lines(store: Store) -> None:
    engine = engine_of(store)
    task = count_tasks.create(store, location="A-01", zone="A", by="ann")
    cole = session(create_app(engine), "cole")
    lines = [{"sku": f"SKU-{n}", "qty": 1} for n in range(201)]
    assert error_locs(cole.post(f"/tasks/{task.id}/count", json={"items": lines})) == [
        ["body", "items"]
    ]
    assert cole.post(f"/tasks/{task.id}/count", json={"items": lines[:200]}).status_code == 200


def test_creating_checks_location_zone_and_assignee(store: Store) -> None:
    engine = engine_of(store)
    Feed(engine).count("A-02", {SKU_A: 4}, scan_id="night-1")  # A-02 is in zone A
    ann = session(create_app(engine), "ann")
    assert error_locs(ann.post("/tasks", json={"location": "Z-99", "zone": "Z"})) == [
        ["body", "location"]
    ]
    wrong = ann.post("/tasks", json={"location": "A-02", "zone": "B"})
    assert error_locs(wrong) == [["body", "zone"]]
    assert wrong.json()["detail"][0]["msg"] == "A-02 is in zone A, not B"
    # in the book but never counted: the zone must be given
    assert error_locs(ann.post("/tasks", json={"location": "A-03"})) == [["body", "zone"]]
    assert error_locs(ann.post("/tasks", json={"location": "A/03", "zone": "A"})) == [
        ["body", "location"]
    ]
    for who in ("nobody", "vic"):
        refused = ann.post("/tasks", json={"location": "A-02", "assigned_to": who})
        assert error_locs(refused) == [["body", "assigned_to"]]
    made = ann.post("/tasks", json={"location": "A-03", "zone": "A", "assigned_to": ""})
    assert made.status_code == 201, made.text
    assert made.json()["assigned_to"] is None
    assert count_tasks.tasks(store) == [count_tasks.get(store, made.json()["id"])]


def test_one_open_task_per_location(store: Store) -> None:
    engine = engine_of(store)
    ann = session(create_app(engine), "ann")
    first = ann.post("/tasks", json={"location": "A-01", "zone": "A", "assigned_to": "cole"})
    second = ann.post("/tasks", json={"location": "A-01", "zone": "A"})
    assert second.status_code == 409
    assert second.json()["detail"] == (
        f"location A-01 already has open count task {first.json()['id']}"
        " (requested, by ann, assigned to cole)"
    )
    cancelled = ann.post(f"/tasks/{first.json()['id']}/cancel", json={"note": "moved"})
    assert cancelled.json()["state"] == "cancelled"
    assert ann.post(f"/tasks/{first.json()['id']}/cancel").status_code == 409
    assert ann.post("/tasks", json={"location": "A-01", "zone": "A"}).status_code == 201


def test_assigning(store: Store) -> None:
    engine = engine_of(store)
    ann = session(create_app(engine), "ann")
    task = ann.post("/tasks", json={"location": "A-01", "zone": "A"}).json()
    path = f"/tasks/{task['id']}/assign"
    assert ann.post(path, json={"assigned_to": "cleo"}).json()["assigned_to"] == "cleo"
    assert ann.post(path, json={"assigned_to": None}).json()["assigned_to"] is None
    assert error_locs(ann.post(path, json={"assigned_to": "vic"})) == [["body", "assigned_to"]]
    assert error_locs(ann.post(path, json={"assigned_to": "ghost"})) == [["body", "assigned_to"]]
    assert error_locs(ann.post(path, json={})) == [["body", "assigned_to"]]
    assert ann.post("/tasks/999/assign", json={"assigned_to": None}).status_code == 404
    ann.post(f"/tasks/{task['id']}/cancel")
    assert ann.post(path, json={"assigned_to": "cole"}).status_code == 409


# -- who may do what ---------------------------------------------------------------------------


def test_only_the_assignee_counts_an_assigned_task(store: Store) -> None:
    engine = engine_of(store)
    app = create_app(engine)
    task = count_tasks.create(store, location="A-01", zone="A", assigned_to="cole", by="ann")
    body = {"items": [{"sku": SKU_A, "qty": 10}]}
    refused = session(app, "cleo").post(f"/tasks/{task.id}/count", json=body)
    assert refused.status_code == 403
    assert refused.json()["detail"] == f"count task {task.id} is assigned to cole, not cleo"
    assert session(app, "ann").post(f"/tasks/{task.id}/count", json=body).status_code == 403
    assert counts_of(store, "A-01") == []
    assert session(app, "cole").post(f"/tasks/{task.id}/count", json=body).status_code == 200


def test_roles_and_scopes(store: Store) -> None:
    engine = engine_of(store)
    app = create_app(engine)
    task = count_tasks.create(store, location="A-01", zone="A", by="ann")
    body = {"items": [{"sku": SKU_A, "qty": 10}]}
    vic, cole = session(app, "vic"), session(app, "cole")
    assert vic.post(f"/tasks/{task.id}/count", json=body).status_code == 403
    assert vic.get("/tasks").status_code == 200  # reading is anybody's
    for path, payload in (
        ("/tasks", {"location": "A-02", "zone": "A"}),
        (f"/tasks/{task.id}/assign", {"assigned_to": "cole"}),
        (f"/tasks/{task.id}/cancel", {}),
    ):
        assert cole.post(path, json=payload).status_code == 403, path
    reader = TestClient(app, headers=bearer(store, "ann", Role.APPROVER, frozenset({Scope.READ})))
    assert reader.post(f"/tasks/{task.id}/count", json=body).status_code == 403
    decider = TestClient(app, headers=bearer(store, "ann", Role.APPROVER))
    assert decider.post(f"/tasks/{task.id}/count", json=body).status_code == 200
    del cole.headers["X-CSRF-Token"]
    assert cole.post(f"/tasks/{task.id}/count", json=body).status_code == 403


def test_no_answer_carries_a_book_figure(store: Store) -> None:
    engine = engine_of(store)
    flagged(engine)
    app = create_app(engine)
    ann, cole = session(app, "ann"), session(app, "cole")
    task = ann.post("/tasks", json={"location": "A-01", "assigned_to": "cole"}).json()
    answers = [
        cole.get("/tasks"),
        cole.get(f"/tasks/{task['id']}"),
        cole.get("/tasks", params={"state": "open", "assigned_to": "cole"}),
    ]
    for answer in answers:
        assert answer.status_code == 200
        for item in answer.json() if isinstance(answer.json(), list) else [answer.json()]:
            assert set(item) == TASK_KEYS
    assert "book" not in str([a.json() for a in answers])
    assert cole.get("/tasks", params={"state": "done"}).json() == []
    assert cole.get("/tasks", params={"assigned_to": "cleo"}).json() == []
    assert cole.get("/tasks/999").status_code == 404


# -- the engine's rules ------------------------------------------------------------------------


def test_an_incomplete_last_recount_opens_a_task(pg_or_sqlite: Store) -> None:
    store = pg_or_sqlite
    engine = engine_of(store, max_recounts=1)
    feed = Feed(engine)
    feed.count("A-01", {SKU_A: 6, SKU_B: 5}, scan_id="night-1")
    (item,) = engine.list_discrepancies()
    assert item["state"] == "recount_requested"
    assert count_tasks.tasks(store) == []
    feed.count("A-01", {SKU_A: 2}, scan_id="recount-1", complete=False)
    (task,) = count_tasks.tasks(store)
    assert (task.reason, task.location, task.zone, task.discrepancy_id, task.created_by) == (
        TaskReason.INCOMPLETE,
        "A-01",
        "A",
        item["id"],
        "reconciler",
    )
    assert engine.discrepancy(item["id"])["state"] == "awaiting_approval"  # type: ignore[index]
    feed.count("A-01", {SKU_A: 2}, scan_id="recount-2", complete=False)  # nothing changes
    assert count_tasks.tasks(store) == [task]


FUSION = {
    "rfid": {"total": 10, "complete": True},
    "vision": {"total": 14, "complete": True, "confidence": 0.9},
    "disagreement": True,
    "tolerance": {"abs": 1, "pct": 0.05},
}


def test_a_fused_disagreement_opens_a_task_once(pg_or_sqlite: Store) -> None:
    store = pg_or_sqlite
    engine = engine_of(store)
    feed = Feed(engine)
    agreeing = FUSION | {"disagreement": False}
    feed.count("A-02", {SKU_A: 4}, scan_id="night-1", fusion=agreeing)
    assert count_tasks.tasks(store) == []
    feed.count("A-02", {SKU_A: 4}, scan_id="night-2", fusion=FUSION)  # matches the book
    (task,) = count_tasks.tasks(store)
    assert (task.reason, task.location, task.discrepancy_id) == (
        TaskReason.DISAGREEMENT,
        "A-02",
        None,
    )
    feed.count("A-02", {SKU_A: 9}, scan_id="night-3", fusion=FUSION)
    assert count_tasks.tasks(store) == [task]  # one open task per location


def test_a_recount_a_manual_count_calls_for_goes_to_the_gateway_that_counted(store: Store) -> None:
    engine = engine_of(store, max_recounts=1)
    Feed(engine).count("A-02", {SKU_A: 4}, scan_id="night-1", gateway="gw-7")  # as booked
    task = count_tasks.create(store, location="A-02", by="ann")
    body = {"items": [{"sku": SKU_A, "qty": 1}]}
    done = session(create_app(engine), "cole").post(f"/tasks/{task.id}/count", json=body)
    assert done.status_code == 200, done.text
    (item,) = engine.list_discrepancies()
    assert item["state"] == "recount_requested"
    topics = [topic for topic, _ in outbox_rows(store)]
    assert topics == ["edgecount/v1/s/discrepancy/A/A-02", "edgecount/v1/s/cmd/gw-7/scan"]
