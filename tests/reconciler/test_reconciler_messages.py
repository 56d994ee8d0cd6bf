"""What the reconciler publishes, as the contract's classes: pinned to the byte.

The expected bytes were written by the reconciler before its messages became classes (built
from payload dicts through ``contract.build``); the classes must keep them.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from edgecount import contract
from reconciler import messages
from reconciler.model import Discrepancy, Row, Status
from reconciler.transitions import State

AT = datetime(2026, 11, 21, 3, 4, 5, 678000, tzinfo=UTC)
SKU, STRAY = "80614141123458", "99999999999999"
ROWS = [
    Row("L1", SKU, 10, 7, -3, -7.5, Status.SHORT, 2.5),
    Row("L1", STRAY, 0, 1, 1, 0.0, Status.UNEXPECTED),
]
LINES = (
    b'[{"sku":"80614141123458","book_qty":10,"counted_qty":7,"diff":-3,"diff_value":-7.5,'
    b'"status":"short"},{"sku":"99999999999999","book_qty":0,"counted_qty":1,"diff":1,'
    b'"diff_value":0.0,"status":"unexpected"}]'
)
WAITING = Discrepancy(
    id=12, zone="Z", location="L1", gateway="gw-1", state=State.AWAITING_APPROVAL,
    opened_at=AT, updated_at=AT, closed_at=None, recounts=2, scan_id="s2",
    count_msg_id="gw-1:8", observed_at=AT, lines=messages.exception_lines(ROWS), announced=True,
)  # fmt: skip


def wire(message: contract.Message | None) -> bytes:
    assert message is not None
    return contract.encode(message.to_payload())


def test_exception_lines_are_decision_lines_of_the_rows() -> None:
    first, second = WAITING.lines
    assert first == contract.DecisionLine(
        sku=SKU, book_qty=10, counted_qty=7, diff=-3, diff_value=-7.5, status=Status.SHORT
    )
    assert (second.sku, second.status) == (STRAY, contract.LineStatus.UNEXPECTED)


def test_a_discrepancy_message_keeps_its_bytes() -> None:
    out = messages.discrepancy_message("dc", WAITING)
    assert (out.topic, out.retain) == ("edgecount/v1/dc/discrepancy/Z/L1", True)
    assert isinstance(out.message, contract.DiscrepancyMessage)
    assert wire(out.message) == (
        b'{"schema":"edgecount.discrepancy/1","discrepancy_id":"12","site":"dc","zone":"Z",'
        b'"location":"L1","state":"awaiting_approval","scan_id":"s2","count_msg_id":"gw-1:8",'
        b'"observed_at":"2026-11-21T03:04:05.678Z","detected_at":"2026-11-21T03:04:05.678Z",'
        b'"recounts":2,"lines":' + LINES + b"}"
    )


def test_adjustments_and_the_approval_keep_their_bytes() -> None:
    made = messages.adjustments(
        "dc", WAITING, unit_costs={SKU: 2.5}, reason_code="MISCOUNT", approver="kim",
        note="shelf", at=AT,
    )  # fmt: skip
    assert [wire(a) for a in made] == [
        b'{"schema":"edgecount.adjustment/1","adjustment_id":"adj-12-80614141123458",'
        b'"site":"dc","zone":"Z","location":"L1","sku":"80614141123458","book_qty":10,'
        b'"counted_qty":7,"diff":-3,"diff_value":-7.5,"unit_cost":2.5,"reason_code":"MISCOUNT",'
        b'"approved_by":"kim","approved_at":"2026-11-21T03:04:05.678Z","discrepancy_id":"12",'
        b'"scan_id":"s2","count_msg_id":"gw-1:8","note":"shelf"}',
        b'{"schema":"edgecount.adjustment/1","adjustment_id":"adj-12-99999999999999",'
        b'"site":"dc","zone":"Z","location":"L1","sku":"99999999999999","book_qty":0,'
        b'"counted_qty":1,"diff":1,"diff_value":0.0,"unit_cost":0.0,"reason_code":"MISCOUNT",'
        b'"approved_by":"kim","approved_at":"2026-11-21T03:04:05.678Z","discrepancy_id":"12",'
        b'"scan_id":"s2","count_msg_id":"gw-1:8","note":"shelf"}',
    ]
    ended = messages.Ended(
        WAITING, State.APPROVED, "kim", "MISCOUNT", AT, note="shelf", adjustments=made
    )
    assert wire(messages.decision_message("dc", 3, ended)) == (
        b'{"schema":"edgecount.decision/1","decision_id":"3","discrepancy_id":"12","site":"dc",'
        b'"zone":"Z","location":"L1","outcome":"approved","by":"kim","reason":"MISCOUNT",'
        b'"at":"2026-11-21T03:04:05.678Z","scan_id":"s2","count_msg_id":"gw-1:8","recounts":2,'
        b'"lines":' + LINES + b',"note":"shelf","adjustments":[{"adjustment_id":'
        b'"adj-12-80614141123458","sku":"80614141123458","diff":-3,"diff_value":-7.5},'
        b'{"adjustment_id":"adj-12-99999999999999","sku":"99999999999999","diff":1,'
        b'"diff_value":0.0}]}'
    )


def test_an_end_by_a_count_keeps_its_bytes() -> None:
    ended = messages.Ended(
        WAITING, State.SUPERSEDED, "reconciler", "NEW_COUNT", AT, scan_id="s3",
        count_msg_id="gw-1:9",
    )  # fmt: skip
    assert wire(messages.decision_message("dc", 4, ended)) == (
        b'{"schema":"edgecount.decision/1","decision_id":"4","discrepancy_id":"12","site":"dc",'
        b'"zone":"Z","location":"L1","outcome":"superseded","by":"reconciler",'
        b'"reason":"NEW_COUNT","at":"2026-11-21T03:04:05.678Z","scan_id":"s3",'
        b'"count_msg_id":"gw-1:9","recounts":2,"lines":' + LINES + b"}"
    )


def test_a_recount_request_asks_the_gateway_for_the_location() -> None:
    out = messages.recount_request("dc", "gw-1", "L1", request_id="recount-12-ab", requested_by="r")
    assert (out.topic, out.retain) == ("edgecount/v1/dc/cmd/gw-1/scan", False)
    assert isinstance(out.message, contract.ScanRequestMessage)
    assert (out.message.request_id, out.message.reason, out.message.locations) == (
        "recount-12-ab",
        "recount",
        ("L1",),
    )
    contract.validate(out.message.to_payload())


def test_a_message_the_contract_refuses_fails_where_it_is_made() -> None:
    # a closed discrepancy has no retained message: the step that would publish it fails
    closed = dataclasses.replace(WAITING, state=State.APPROVED)
    with pytest.raises(contract.ContractError, match="state"):
        messages.discrepancy_message("dc", closed)
    # a decision's outcome is an end: an open state is refused
    rejected = messages.Ended(WAITING, State.REJECTED, "kim", "SCAN_ERROR", AT)
    with pytest.raises(contract.ContractError, match="outcome"):
        messages.decision_message("dc", 5, dataclasses.replace(rejected, outcome=State.OPEN))


def test_clearing_a_discrepancy_has_no_message() -> None:
    out = messages.cleared("dc", "Z", "L1")
    assert (out.topic, out.message, out.retain) == ("edgecount/v1/dc/discrepancy/Z/L1", None, True)
