"""The SQLite outbox: durable, ordered, bounded, sequence never reused."""

from __future__ import annotations

import dataclasses
import json
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edgecount import contract
from gateway.outbox import Outbox, OutboxError, OutboxFullError

GW, SITE = "gw-1", "dc-east"
CHILD = Path(__file__).with_name("child.py")


def draft(n: int = 1, gateway: str = GW) -> contract.CountDraft:
    return contract.count_draft(
        gateway=gateway,
        site=SITE,
        zone="z",
        location=f"L{n}",
        scan_id="s1",
        items=[contract.CountItem(sku="80614141123458", qty=n)],
    )


def topic(n: int = 1) -> str:
    return contract.count_topic(SITE, "z", f"L{n}")


def put(outbox: Outbox, n: int = 1) -> int:
    return outbox.put(topic(n), draft(n), True).seq


def test_put_sequences_validates_and_stores(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3", gateway_id=GW) as outbox:
        made = draft(1)
        first = outbox.put(topic(1), made, True)
        second = outbox.put(topic(2), draft(2), True)
        assert (first.seq, second.seq) == (1, 2)
        assert isinstance(first.message, contract.CountMessage)
        assert first.message.msg_id == f"gw-1:{outbox.epoch}:1"
        assert first.message.historical is False
        assert first.message == made.sequenced(1, epoch=outbox.epoch)
        rows = outbox.pending()
        assert [row.seq for row in rows] == [1, 2]
        assert rows[0].retain is True
        assert rows[0].qos == 1
        assert rows[0].payload == contract.encode_message(first.message)
        assert contract.decode_message(rows[1].topic, rows[1].wire_payload()) == second.message
        assert outbox.depth == 2
        assert outbox.last_seq == 2


def test_pending_is_ordered_and_pages(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3", gateway_id=GW) as outbox:
        for n in range(10):
            put(outbox, n)
        assert [r.seq for r in outbox.pending(limit=3)] == [1, 2, 3]
        assert [r.seq for r in outbox.pending(after=3, limit=3)] == [4, 5, 6]
        outbox.ack([5, 1, 9])
        assert [r.seq for r in outbox.pending()] == [2, 3, 4, 6, 7, 8, 10]
        assert outbox.oldest_seq() == 2
        assert outbox.depth == 7


def test_survives_reopen_sequence_continues_and_survivors_are_historical(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.sqlite3"
    with Outbox(path, gateway_id=GW) as outbox:
        for n in range(3):
            put(outbox, n)
        outbox.ack([1])
        epoch = outbox.epoch
    with Outbox(path, gateway_id=GW) as outbox:
        assert outbox.epoch == epoch
        rows = outbox.pending()
        assert [r.seq for r in rows] == [2, 3]
        assert all(r.historical for r in rows)
        replayed = json.loads(rows[0].wire_payload())
        assert replayed["historical"] is True
        assert replayed["msg_id"] == f"gw-1:{epoch}:2"
        assert put(outbox, 9) == 4
        assert outbox.pending(after=3)[0].historical is False


def test_sequence_is_never_reused_after_all_rows_are_gone(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    with Outbox(path, gateway_id=GW) as outbox:
        put(outbox)
        put(outbox)
        outbox.ack([1, 2])
        assert outbox.depth == 0
    with Outbox(path, gateway_id=GW) as outbox:
        assert outbox.oldest_seq() is None
        assert put(outbox) == 3


def test_a_new_outbox_file_never_repeats_a_msg_id_of_a_lost_one(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.sqlite3"
    with Outbox(path, gateway_id=GW) as outbox:
        old = outbox.put(topic(1), draft(1), True).message
    for leftover in path.parent.iterdir():  # the state_dir is lost
        leftover.unlink()
    with Outbox(path, gateway_id=GW) as outbox:
        new = outbox.put(topic(1), draft(1), True).message
    assert isinstance(old, contract.CountMessage)
    assert isinstance(new, contract.CountMessage)
    assert (old.seq, new.seq) == (1, 1)
    assert old.msg_id != new.msg_id
    assert contract.EPOCH_PATTERN.fullmatch(new.msg_id.split(":")[1])


def test_an_outbox_from_before_epochs_gets_one_and_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    with Outbox(path, gateway_id=GW) as outbox:
        put(outbox)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta WHERE key = 'epoch'")
    db.close()
    with Outbox(path, gateway_id=GW) as outbox:
        epoch = outbox.epoch
        assert outbox.pending()[0].historical
        assert put(outbox) == 2
    with Outbox(path, gateway_id=GW) as outbox:
        assert outbox.epoch == epoch


def test_historical_rule_within_one_process(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3", gateway_id=GW) as outbox:
        put(outbox, 1)
        put(outbox, 2)
        assert not any(r.historical for r in outbox.pending())
        assert outbox.pending()[0].wire_payload() == outbox.pending()[0].payload
        outbox.mark_sent([1])
        assert [r.historical for r in outbox.pending()] == [True, False]
        outbox.ack([1])
        put(outbox, 3)
        assert [r.historical for r in outbox.pending()] == [False, False]


def test_bound_rejects_new_messages_with_an_alarm(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3", gateway_id=GW, max_rows=3) as outbox:
        for n in range(3):
            put(outbox, n)
        with pytest.raises(OutboxFullError, match="outbox full"):
            put(outbox, 3)
        with pytest.raises(OutboxFullError):
            put(outbox, 4)
        stats = outbox.stats()
        assert (stats.full, stats.rejected_full, stats.depth) == (True, 2, 3)
        assert outbox.rejected == 2
        outbox.ack([1])  # 2 left, under 90 % of 3: the alarm clears
        assert outbox.full is False
        assert put(outbox, 5) == 4, "rejected puts consume no sequence number"


def test_invalid_payloads_are_rejected_and_not_stored(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3", gateway_id=GW) as outbox:
        with pytest.raises(contract.ContractError, match="total"):
            outbox.put(topic(), dataclasses.replace(draft(), total=99), True)
        with pytest.raises(contract.ContractError, match="location is 'L1' but the topic"):
            outbox.put(topic(2), draft(1), True)
        with pytest.raises(contract.ContractError, match="gateway is 'other' but this outbox"):
            outbox.put(topic(), draft(gateway="other"), True)
        with pytest.raises(contract.ContractError, match="only makes sense retained"):
            outbox.put(topic(), None, False)
        assert outbox.stats().rejected_invalid == 4
        assert outbox.depth == 0
        assert put(outbox) == 1


def test_retained_clear_is_stored_empty(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3", gateway_id="reconciler-1") as outbox:
        enqueued = outbox.put(contract.discrepancy_topic(SITE, "z", "L1"), None, True)
        assert enqueued.message is None
        row = outbox.pending()[0]
        assert (row.payload, row.wire_payload(), row.retain) == (b"", b"", True)


def test_outbox_belongs_to_one_gateway(tmp_path: Path) -> None:
    path = tmp_path / "ob.sqlite3"
    Outbox(path, gateway_id=GW).close()
    with pytest.raises(OutboxError, match="belongs to gateway 'gw-1', not 'gw-2'"):
        Outbox(path, gateway_id="gw-2")


def test_closed_and_corrupt_outboxes_fail_clearly(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "ob.sqlite3", gateway_id=GW)
    outbox.close()
    with pytest.raises(OutboxError, match="closed"):
        put(outbox)
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(junk, gateway_id=GW)


def test_concurrent_puts_get_distinct_contiguous_sequence_numbers(tmp_path: Path) -> None:
    seqs: list[int] = []
    lock = threading.Lock()
    with Outbox(tmp_path / "ob.sqlite3", gateway_id=GW) as outbox:

        def worker(base: int) -> None:
            for n in range(25):
                seq = put(outbox, base + n)
                with lock:
                    seqs.append(seq)

        threads = [threading.Thread(target=worker, args=(100 * i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(seqs) == list(range(1, 101))
        assert [r.seq for r in outbox.pending()] == list(range(1, 101))


def test_committed_messages_survive_kill_9(tmp_path: Path) -> None:
    """Every seq the child saw put() return is in the outbox after SIGKILL."""
    db = tmp_path / "ob.sqlite3"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), "outbox", str(db), GW, SITE, "100000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    confirmed = [int(child.stdout.readline()) for _ in range(50)]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()
    with Outbox(db, gateway_id=GW) as outbox:
        stored = {row.seq for row in outbox.pending()}
        assert set(confirmed) <= stored
        assert all(row.historical for row in outbox.pending(limit=5))
        assert put(outbox) == max(stored) + 1
